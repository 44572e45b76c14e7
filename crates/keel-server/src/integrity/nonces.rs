//! Where signature nonces are remembered: in process on the embedded default, in Redis
//! (`SET keel:nonce:<service>:<nonce> 1 NX EX <ttl>`) when `redis_url` is configured, so
//! every node refuses a nonce any node has seen.

use std::sync::Mutex;
use std::time::Instant;

use ::redis::aio::ConnectionManager;
use keel_core::integrity::{Claim, NonceWindow};

/// Most nonces the in-process window holds (about 1,600 signed calls a second for 10
/// minutes); past that, signed calls get `503 nonce_store_full` until entries expire.
pub const MEMORY_CAPACITY: usize = 1_000_000;

/// Why a nonce could not be checked; the request is refused either way.
#[derive(Debug)]
pub(crate) enum NonceError {
    /// The in-process window is full of live nonces.
    Full,
    /// Redis did not answer or failed.
    Unavailable(String),
}

/// The nonce store.
pub(crate) enum NonceStore {
    /// In process.
    Memory {
        /// The window, in seconds since `started`.
        window: Mutex<NonceWindow>,
        /// Its clock's origin (monotonic, so wall-clock jumps do not expire entries).
        started: Instant,
    },
    /// Shared by every node.
    Redis {
        /// The connection.
        conn: ConnectionManager,
        /// Seconds a nonce is remembered.
        ttl_secs: u64,
    },
}

impl NonceStore {
    /// Redis when a connection is given, else in process; nonces live `ttl_secs`.
    pub(crate) fn new(redis: Option<ConnectionManager>, ttl_secs: u64) -> Self {
        match redis {
            Some(conn) => NonceStore::Redis { conn, ttl_secs },
            None => NonceStore::Memory {
                window: Mutex::new(NonceWindow::new(ttl_secs, MEMORY_CAPACITY)),
                started: Instant::now(),
            },
        }
    }

    /// `Ok(true)` the first time `service` presents `nonce` within the window.
    pub(crate) async fn claim(&self, service: &str, nonce: &str) -> Result<bool, NonceError> {
        match self {
            NonceStore::Memory { window, started } => {
                let now = started.elapsed().as_secs();
                // A panic while holding the lock leaves the window consistent, so go on.
                let mut window = window.lock().unwrap_or_else(|p| p.into_inner());
                match window.claim(&format!("{service}:{nonce}"), now) {
                    Claim::Fresh => Ok(true),
                    Claim::Replayed => Ok(false),
                    Claim::Full => Err(NonceError::Full),
                }
            }
            NonceStore::Redis { conn, ttl_secs } => {
                let set: Option<String> = ::redis::cmd("SET")
                    .arg(format!("keel:nonce:{service}:{nonce}"))
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(*ttl_secs)
                    .query_async(&mut conn.clone())
                    .await
                    .map_err(|e| NonceError::Unavailable(format!("{:?}", e.kind())))?;
                Ok(set.is_some())
            }
        }
    }
}
