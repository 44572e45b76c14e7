use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;
use crate::{DynStore, StoreError, StoreResult};

/// How to reach the store.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `postgres://…` selects PostgreSQL, `sqlite://…` an explicit SQLite file; `None`
    /// means the embedded default `<data_dir>/keel.db`.
    pub database_url: Option<String>,
    /// Where the embedded database lives.
    pub data_dir: PathBuf,
    /// Upper bound on waiting for the first connection.
    pub connect_timeout: Duration,
    /// Pool size.
    pub max_connections: u32,
}

/// The backend a set of options resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file at this path.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Target {
    /// Picks the backend from the URL scheme, once.
    pub fn resolve(url: Option<&str>, data_dir: &Path) -> StoreResult<Target> {
        match url.map(str::trim) {
            None | Some("") => Ok(Target::Sqlite(data_dir.join("keel.db"))),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Target::Postgres(u.to_string()))
            }
            Some(u) => match u
                .strip_prefix("sqlite://")
                .or_else(|| u.strip_prefix("sqlite:"))
            {
                Some(path) if !path.is_empty() => Ok(Target::Sqlite(PathBuf::from(path))),
                _ => Err(StoreError::Unavailable(format!(
                    "unsupported database URL scheme in `{}`: expected postgres://, \
                     postgresql:// or sqlite://PATH",
                    redact_url(u)
                ))),
            },
        }
    }
}

/// Connects to the chosen backend and brings its schema up to date.
pub async fn connect(opts: &ConnectOptions) -> StoreResult<DynStore> {
    match Target::resolve(opts.database_url.as_deref(), &opts.data_dir)? {
        Target::Sqlite(path) => Ok(Arc::new(
            SqliteStore::open(&path, opts.max_connections).await?,
        )),
        Target::Postgres(url) => Ok(Arc::new(
            PostgresStore::connect(&url, opts.max_connections, opts.connect_timeout).await?,
        )),
    }
}

/// Hides the password of a URL so it can be printed.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        let dir = Path::new("/data");
        assert_eq!(
            Target::resolve(None, dir).unwrap(),
            Target::Sqlite(PathBuf::from("/data/keel.db"))
        );
        assert_eq!(
            Target::resolve(Some("postgres://u@h/db"), dir).unwrap(),
            Target::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            Target::resolve(Some("sqlite:///tmp/x.db"), dir).unwrap(),
            Target::Sqlite(PathBuf::from("/tmp/x.db"))
        );
        let err = Target::resolve(Some("mysql://u:secret@h/db"), dir).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unsupported database URL scheme"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(redact_url("postgres://h/d"), "postgres://h/d");
    }
}
