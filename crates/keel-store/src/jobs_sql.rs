//! The statements of [`JobStore`](crate::jobs::JobStore), portable between both backends
//! (`$n` placeholders, `RETURNING`, row values), and the row decoders. Only the timer claim
//! and the partition lock differ; each backend passes its own to the impl macros.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::jobs::{DueTimer, EventStat, JobEvent, JobRecord, TimerKind};
use crate::rows::Columns;
use crate::{StoreError, StoreResult};

/// The columns of a `jobs` row, in `SELECT` and `RETURNING`.
macro_rules! job_columns {
    () => {
        "id, tenant_id, user_id, job_type, state, version, input, concurrency_key, \
         reservation_id, reason, resume_state, last_seq, created_at, updated_at, finished_at, \
         heartbeat_at"
    };
}

pub(crate) const FIND: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE tenant_id = $1 AND id = $2"
);

pub(crate) const LOCATE: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");

pub(crate) const FIND_BY_KEY: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE tenant_id = $1 AND user_id = $2 AND job_type = $3 AND idempotency_key = $4"
);

pub(crate) const COUNT_ACTIVE: &str = "SELECT COUNT(*) FROM jobs
    WHERE tenant_id = $1 AND job_type = $2 AND finished_at IS NULL
      AND concurrency_key IS NOT DISTINCT FROM $3 AND ($4 = '' OR user_id = $4)";

pub(crate) const INSERT_JOB: &str = concat!(
    "INSERT INTO jobs (",
    job_columns!(),
    ", idempotency_key) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, NULL, NULL, 1, $9, $9, NULL, \
     NULL, $10) RETURNING ",
    job_columns!()
);

pub(crate) const INSERT_EVENT: &str = "INSERT INTO job_events
    (tenant_id, job_id, seq, job_type, event_type, data, user_visible, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) const INSERT_TIMER: &str = "INSERT INTO job_timers
    (tenant_id, job_id, kind, state, fire_at, claimed_by, claimed_until)
    VALUES ($1, $2, $3, $4, $5, NULL, NULL)";

pub(crate) const DELETE_TIMERS: &str =
    "DELETE FROM job_timers WHERE tenant_id = $1 AND job_id = $2";

pub(crate) const DELETE_HEARTBEAT_TIMERS: &str = "DELETE FROM job_timers
    WHERE tenant_id = $1 AND job_id = $2 AND kind IN ('heartbeat_lost', 'heartbeat_expire')";

pub(crate) const DELETE_TIMER: &str =
    "DELETE FROM job_timers WHERE tenant_id = $1 AND job_id = $2 AND kind = $3";

pub(crate) const FIRE_TIMER: &str = "DELETE FROM job_timers
    WHERE tenant_id = $1 AND job_id = $2 AND kind = $3 AND fire_at <= $4";

pub(crate) const TRANSITION: &str = concat!(
    "UPDATE jobs SET state = $3, version = version + 1, last_seq = last_seq + 1, reason = $4, \
     resume_state = $5, reservation_id = COALESCE($6, reservation_id), updated_at = $7, \
     finished_at = CASE WHEN $8 THEN $7 ELSE NULL END, \
     heartbeat_at = CASE WHEN $9 THEN $7 ELSE heartbeat_at END \
     WHERE tenant_id = $1 AND id = $2 AND version = $10 RETURNING ",
    job_columns!()
);

pub(crate) const HEARTBEAT: &str = concat!(
    "UPDATE jobs SET heartbeat_at = $3 WHERE tenant_id = $1 AND id = $2 AND version = $4 \
     RETURNING ",
    job_columns!()
);

pub(crate) const EVENTS: &str = "SELECT job_id, seq, event_type, data, user_visible, created_at
    FROM job_events WHERE tenant_id = $1 AND job_id = $2 AND seq > $3
      AND (user_visible OR NOT $4) ORDER BY seq LIMIT $5";

pub(crate) const LIST: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE tenant_id = $1 AND ($2 = '' OR user_id = $2) \
     AND ($3 = '' OR job_type = $3) AND ($4 = '' OR state = $4) AND ($5 = '' OR id < $5) \
     ORDER BY id DESC LIMIT $6"
);

pub(crate) const TIMERS: &str = "SELECT tenant_id, job_id, kind, state, fire_at FROM job_timers
    WHERE tenant_id = $1 AND job_id = $2 ORDER BY fire_at, kind";

pub(crate) const PRUNABLE: &str = "FROM job_events e WHERE e.job_type = $1 AND EXISTS (
    SELECT 1 FROM jobs j WHERE j.tenant_id = e.tenant_id AND j.id = e.job_id
      AND j.finished_at IS NOT NULL AND j.finished_at < $2)";

pub(crate) const COUNT_TYPE_EVENTS: &str = "SELECT COUNT(*) FROM job_events WHERE job_type = $1";

pub(crate) const DELETE_EVENT: &str =
    "DELETE FROM job_events WHERE tenant_id = $1 AND job_id = $2 AND seq = $3";

pub(crate) const ADD_STAT: &str = "INSERT INTO job_event_stats (day, job_type, events)
    VALUES ($1, $2, $3) ON CONFLICT (day, job_type)
    DO UPDATE SET events = job_event_stats.events + excluded.events";

pub(crate) const STATS: &str =
    "SELECT day, job_type, events FROM job_event_stats WHERE job_type = $1 ORDER BY day";

/// The timer claim: the subquery picks due, unclaimed (or lease-expired) timers.
macro_rules! claim_timers_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE job_timers SET claimed_by = $1, claimed_until = $3
             WHERE (tenant_id, job_id, kind) IN (
                 SELECT tenant_id, job_id, kind FROM job_timers
                 WHERE fire_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2)
                 ORDER BY fire_at LIMIT $4 ",
            $lock,
            ") RETURNING tenant_id, job_id, kind, state, fire_at"
        )
    };
}
pub(crate) use claim_timers_sql;

fn bad(message: String) -> StoreError {
    StoreError::Other(sqlx::Error::Decode(message.into()))
}

pub(crate) fn job(row: &impl Columns) -> StoreResult<JobRecord> {
    Ok(JobRecord {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        user_id: row.id("user_id")?,
        job_type: row.text("job_type")?,
        state: row.text("state")?,
        version: row.int("version")?,
        input: row.json_value("input")?,
        concurrency_key: row.opt_text("concurrency_key")?,
        reservation_id: row.opt_id("reservation_id")?,
        reason: row.opt_text("reason")?,
        resume_state: row.opt_text("resume_state")?,
        last_seq: row.int("last_seq")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        finished_at: row.opt_time("finished_at")?,
        heartbeat_at: row.opt_time("heartbeat_at")?,
    })
}

pub(crate) fn event(row: &impl Columns) -> StoreResult<JobEvent> {
    Ok(JobEvent {
        job_id: row.id("job_id")?,
        seq: row.int("seq")?,
        event_type: row.text("event_type")?,
        data: row.json_value("data")?,
        user_visible: row.flag("user_visible")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn timer(row: &impl Columns) -> StoreResult<DueTimer> {
    let kind = row.text("kind")?;
    Ok(DueTimer {
        tenant_id: row.id("tenant_id")?,
        job_id: row.id("job_id")?,
        kind: TimerKind::parse(&kind).ok_or_else(|| bad(format!("unknown timer kind {kind}")))?,
        state: row.text("state")?,
        fire_at: row.time("fire_at")?,
    })
}

pub(crate) fn stat(row: &impl Columns) -> StoreResult<EventStat> {
    Ok(EventStat {
        day: row.text("day")?,
        job_type: row.text("job_type")?,
        events: row.int("events")?,
    })
}

/// Events per UTC day, for the statistics retention keeps.
pub(crate) fn per_day(times: &[DateTime<Utc>]) -> BTreeMap<String, i64> {
    let mut days = BTreeMap::new();
    for at in times {
        *days.entry(at.format("%Y-%m-%d").to_string()).or_insert(0) += 1;
    }
    days
}

/// `''` for "no filter", so one statement serves filtered and unfiltered reads.
pub(crate) fn or_empty(value: Option<String>) -> String {
    value.unwrap_or_default()
}
