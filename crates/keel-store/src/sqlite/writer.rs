//! Group commit for billing writes on SQLite. One thread owns one connection and drains a
//! queue: every operation waiting when a transaction starts runs in it, each inside its own
//! savepoint (a refusal or an error undoes only that operation), and each caller is
//! answered only after the `COMMIT`, so nobody hears of a write that could still be lost.
//!
//! SQLite has one writer at a time anyway; doing the writes on one thread, with cached
//! prepared statements and one commit per batch instead of one per operation, removes the
//! per-statement hop to sqlx's connection thread and the sleeping busy-handler waits of
//! many pooled connections contending for the write lock.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::lite::map_lite;
use crate::{StoreError, StoreResult};

/// Most operations in one transaction: bounds how long one commit keeps its callers waiting.
const MAX_BATCH: usize = 512;

/// What an operation asks of its savepoint.
pub(crate) enum Step<T> {
    /// Keep its writes and answer `T`.
    Keep(T),
    /// Undo its writes (a refusal) and answer `T`.
    Undo(T),
}

/// An operation with its caller's answer channel.
trait Job: Send {
    /// Runs inside the open transaction; `false` when the savepoint itself failed and the
    /// transaction can no longer be trusted.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the transaction committed (or did not).
    fn answer(self: Box<Self>, committed: bool);
}

struct Call<T, F> {
    work: Option<F>,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<Step<T>> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return true;
        };
        let (result, sound) = in_savepoint(conn, work);
        self.result = Some(result);
        sound
    }

    fn answer(self: Box<Self>, committed: bool) {
        let this = *self;
        let result = match this.result {
            Some(Err(e)) => Err(e),
            Some(Ok(value)) if committed => Ok(value),
            _ => Err(StoreError::Unavailable(
                "the billing transaction did not commit; nothing was written".into(),
            )),
        };
        let _ = this.reply.send(result);
    }
}

/// Runs `work` in a savepoint (nested ones are fine: each `op` names the innermost); the
/// flag is false when the savepoint could not be closed.
pub(super) fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> StoreResult<Step<T>>,
) -> (StoreResult<T>, bool) {
    if let Err(e) = exec(conn, "SAVEPOINT op") {
        return (Err(e), false);
    }
    let (result, keep) = match work(conn) {
        Ok(Step::Keep(value)) => (Ok(value), true),
        Ok(Step::Undo(value)) => (Ok(value), false),
        Err(e) => (Err(e), false),
    };
    let closed = if keep {
        exec(conn, "RELEASE op")
    } else {
        exec(conn, "ROLLBACK TO op").and_then(|()| exec(conn, "RELEASE op"))
    };
    match closed {
        Ok(()) => (result, true),
        Err(e) => (Err(e), false),
    }
}

fn exec(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(map_lite)
}

enum Msg {
    Job(Box<dyn Job>),
    Stop(oneshot::Sender<()>),
}

/// The handle the store keeps; cloning it shares the one writer.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<Msg>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Opens the writer's connection to an existing, migrated database and starts its
    /// thread. Same settings as the pool: WAL, `synchronous = NORMAL`, a 10 s busy wait.
    pub(crate) fn open(path: &Path) -> StoreResult<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(map_lite)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(map_lite)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(map_lite)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (queue, jobs) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("keel-billing-writer".into())
            .spawn(move || serve(conn, jobs))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the billing writer: {e}"))
            })?;
        Ok(Self { queue })
    }

    /// Runs `work` in the next transaction; answers after it commits.
    pub(crate) async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<Step<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            work: Some(work),
            result: None,
            reply,
        };
        self.queue
            .send(Msg::Job(Box::new(call)))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Finishes what is queued, closes the connection and ends the thread.
    pub(crate) async fn stop(&self) {
        let (ack, done) = oneshot::channel();
        if self.queue.send(Msg::Stop(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite billing writer has stopped".into())
}

/// The writer thread: one transaction per batch of waiting operations, until every handle
/// is dropped or `stop` is called.
fn serve(conn: Connection, mut queue: mpsc::UnboundedReceiver<Msg>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut stop = None;
    while stop.is_none() {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => batch.push(job),
                Msg::Stop(ack) => {
                    stop = Some(ack);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let committed = transaction(&conn, &mut batch);
            for job in batch.drain(..) {
                job.answer(committed);
            }
        }
    }
    drop(conn);
    if let Some(ack) = stop {
        let _ = ack.send(());
    }
}

/// Runs the batch in one transaction; whether it committed.
fn transaction(conn: &Connection, batch: &mut [Box<dyn Job>]) -> bool {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "billing writer could not begin a transaction");
        return false;
    }
    for job in batch.iter_mut() {
        // An I/O or full-disk error makes SQLite roll the whole transaction back; nothing
        // more may run, or it would commit on its own.
        if conn.is_autocommit() || !job.run(conn) {
            tracing::error!("billing writer lost its transaction; the batch is abandoned");
            let _ = conn.execute_batch("ROLLBACK");
            return false;
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "billing writer could not commit");
            let _ = conn.execute_batch("ROLLBACK");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rusqlite::params;

    use super::*;

    fn insert(x: i64, keep: bool) -> impl FnOnce(&Connection) -> StoreResult<Step<i64>> {
        move |conn| {
            conn.execute("INSERT INTO t (x) VALUES (?)", params![x])
                .map_err(map_lite)?;
            Ok(if keep { Step::Keep(x) } else { Step::Undo(x) })
        }
    }

    async fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        let writer = Writer::open(&path).unwrap();
        (dir, writer)
    }

    #[tokio::test]
    async fn a_refusal_or_an_error_undoes_only_its_own_operation() {
        let (_dir, w) = writer().await;
        let (kept, undone, failed, later) = tokio::join!(
            w.run(insert(1, true)),
            w.run(insert(2, false)),
            w.run(insert(1, true)),
            w.run(insert(3, true)),
        );
        assert_eq!((kept.unwrap(), undone.unwrap(), later.unwrap()), (1, 2, 3));
        assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
        let rows = w
            .run(|conn| {
                let mut s = conn
                    .prepare("SELECT x FROM t ORDER BY x")
                    .map_err(map_lite)?;
                let xs = s.query_map([], |r| r.get(0)).map_err(map_lite)?;
                let xs: Result<Vec<i64>, _> = xs.collect();
                Ok(Step::Keep(xs.map_err(map_lite)?))
            })
            .await;
        assert_eq!(rows.unwrap(), vec![1, 3]);
    }

    #[tokio::test]
    async fn a_stopped_writer_refuses_work() {
        let (_dir, w) = writer().await;
        w.run(insert(1, true)).await.unwrap();
        w.stop().await;
        let late = w.run(insert(2, true)).await;
        assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
    }
}
