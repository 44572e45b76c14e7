use thiserror::Error;

/// Store errors: few and matchable; callers map them to API errors at the boundary.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The row does not exist in the caller's scope.
    #[error("not found")]
    NotFound,
    /// A uniqueness or version constraint refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database was migrated by a newer Keel than this one.
    #[error(
        "the database schema is at version {found}, newer than the {supported} this Keel \
         supports; upgrade Keel (migrations are forward-only and never downgraded)"
    )]
    SchemaTooNew {
        /// The newest migration applied to the database.
        found: i64,
        /// The newest migration this binary knows.
        supported: i64,
    },
    /// The database could not be reached or opened.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else; details are logged, not shown to clients.
    #[error(transparent)]
    Other(#[from] sqlx::Error),
    /// An error of the SQLite billing writer's driver (not sqlx); logged, not shown.
    #[error("SQLite: {0}")]
    Driver(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Maps a driver error, treating unique violations as conflicts.
pub(crate) fn map_sqlx(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        _ => StoreError::Other(err),
    }
}
