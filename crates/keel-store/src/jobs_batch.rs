//! Batch appends to a job's event log: every event of a batch in one transaction with
//! consecutive sequence numbers, or none of them.

use crate::jobs::JobEvent;

/// What a batch append checks inside its transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most events in one batch.
    pub max_events: usize,
    /// Most bytes of one event's JSON data.
    pub max_event_bytes: usize,
}

impl BatchLimits {
    /// No limit: for callers that checked the events already.
    pub const UNCHECKED: Self = Self {
        max_events: usize::MAX,
        max_event_bytes: usize::MAX,
    };
}

/// Why a batch was refused; nothing of it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchRefusal {
    /// The batch has no events.
    Empty,
    /// More events than [`BatchLimits::max_events`].
    TooMany {
        /// Events in the batch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One event's data is bigger than [`BatchLimits::max_event_bytes`].
    TooLarge {
        /// The event's position in the batch (from 0).
        index: usize,
        /// Its size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// What a batch append did.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchOutcome {
    /// Appended, in order, with consecutive sequence numbers.
    Appended(Vec<JobEvent>),
    /// The job is finished; nothing was written.
    Finished,
    /// The batch broke a limit; nothing was written.
    Refused(BatchRefusal),
}

/// Rows per multi-row `INSERT` (8 parameters each: well under both backends' limits).
pub(crate) const INSERT_CHUNK: usize = 500;

pub(crate) const NEXT_SEQS: &str = "UPDATE jobs SET last_seq = last_seq + $3
    WHERE tenant_id = $1 AND id = $2 AND finished_at IS NULL RETURNING last_seq, job_type";

pub(crate) const INSERT_EVENTS_HEAD: &str = "INSERT INTO job_events
    (tenant_id, job_id, seq, job_type, event_type, data, user_visible, created_at) ";

/// The refusal of a batch's count, if any (its sizes are checked while it is written).
pub(crate) fn check_count(count: usize, limits: BatchLimits) -> Option<BatchRefusal> {
    if count == 0 {
        return Some(BatchRefusal::Empty);
    }
    (count > limits.max_events).then_some(BatchRefusal::TooMany {
        count,
        max: limits.max_events,
    })
}

/// The refusal of one event's size, if any.
pub(crate) fn check_size(
    index: usize,
    data: &serde_json::Value,
    limits: BatchLimits,
) -> Option<BatchRefusal> {
    if limits.max_event_bytes == usize::MAX {
        return None;
    }
    let size = serde_json::to_vec(data).map_or(usize::MAX, |v| v.len());
    (size > limits.max_event_bytes).then_some(BatchRefusal::TooLarge {
        index,
        size,
        max: limits.max_event_bytes,
    })
}

macro_rules! job_batch_fns {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn jobs_append_batch(
                &self,
                scope: &$crate::TenantScope,
                job_id: keel_core::ids::JobId,
                events: Vec<$crate::jobs::NewJobEvent>,
                limits: $crate::jobs::BatchLimits,
            ) -> $crate::StoreResult<$crate::jobs::BatchOutcome> {
                use sqlx::Row;
                use $crate::jobs::{BatchOutcome, JobEvent};
                use $crate::jobs_batch as b;
                if let Some(refusal) = b::check_count(events.len(), limits) {
                    return Ok(BatchOutcome::Refused(refusal));
                }
                let count = i64::try_from(events.len())
                    .map_err(|_| $crate::StoreError::Conflict("batch too long".into()))?;
                let tenant = scope.tenant().to_string();
                let job = job_id.to_string();
                let mut tx = self.begin_write().await?;
                // The row lock this update takes orders concurrent appends: no gap, no repeat.
                let row = sqlx::query(b::NEXT_SEQS)
                    .bind(&tenant)
                    .bind(&job)
                    .bind(count)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::error::map_sqlx)?;
                let Some(row) = row else {
                    drop(tx);
                    self.jobs_current(scope, job_id).await?;
                    return Ok(BatchOutcome::Finished);
                };
                let last: i64 = row.try_get("last_seq")?;
                let job_type: String = row.try_get("job_type")?;
                let first = last - count + 1;
                let mut written = Vec::with_capacity(events.len());
                for (c, chunk) in events.chunks(b::INSERT_CHUNK).enumerate() {
                    let base = c * b::INSERT_CHUNK;
                    let mut insert = sqlx::QueryBuilder::<$db>::new(b::INSERT_EVENTS_HEAD);
                    let mut rows = Vec::with_capacity(chunk.len());
                    for (i, event) in chunk.iter().enumerate() {
                        if let Some(refusal) = b::check_size(base + i, &event.data, limits) {
                            // Dropping the transaction rolls back the sequence bump and
                            // every chunk already inserted.
                            drop(tx);
                            return Ok(BatchOutcome::Refused(refusal));
                        }
                        let offset = i64::try_from(base + i).unwrap_or(i64::MAX);
                        rows.push((first + offset, event));
                    }
                    insert.push_values(&rows, |mut q, (seq, event)| {
                        q.push_bind(&tenant)
                            .push_bind(&job)
                            .push_bind(*seq)
                            .push_bind(&job_type)
                            .push_bind(&event.event_type)
                            .push_bind(sqlx::types::Json(&event.data))
                            .push_bind(event.user_visible)
                            .push_bind($crate::micros(event.at));
                    });
                    insert
                        .build()
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::error::map_sqlx)?;
                    written.extend(rows.into_iter().map(|(seq, event)| JobEvent {
                        job_id,
                        seq,
                        event_type: event.event_type.clone(),
                        data: event.data.clone(),
                        user_visible: event.user_visible,
                        created_at: $crate::micros(event.at),
                    }));
                }
                tx.commit().await.map_err($crate::error::map_sqlx)?;
                Ok(BatchOutcome::Appended(written))
            }
        }
    };
}
pub(crate) use job_batch_fns;
