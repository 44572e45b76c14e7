//! One implementation of [`JobStore`](crate::jobs::JobStore) for both backends, stamped by a
//! macro like the lever store. Each backend gives: how a write transaction begins (SQLite
//! takes the write lock at `BEGIN`), the partition lock statement (an advisory lock on
//! PostgreSQL, a no-op on SQLite where the write lock already serialises), and the timer
//! claim (`FOR UPDATE SKIP LOCKED` on PostgreSQL).

macro_rules! job_store_impl {
    ($store:ty, $db:ty, $lock_sql:expr, $claim_sql:expr) => {
        #[async_trait::async_trait]
        impl $crate::jobs::JobStore for $store {
            async fn create_job(
                &self,
                scope: &$crate::TenantScope,
                job: $crate::jobs::NewJob,
            ) -> $crate::StoreResult<$crate::jobs::CreateOutcome> {
                use $crate::jobs::CreateOutcome;
                let tenant = scope.tenant().to_string();
                let mut tx = self.begin_write().await?;
                if let Some(found) = self.jobs_find_by_key(&mut tx, &tenant, &job).await? {
                    return Ok(CreateOutcome::Existing(found));
                }
                if let Some(cap) = &job.cap {
                    let owner = cap.per_user.then_some(job.user_id);
                    let key = $crate::jobs::partition_lock_key(
                        scope.tenant(),
                        &job.job_type,
                        owner,
                        job.concurrency_key.as_deref(),
                    );
                    sqlx::query($lock_sql)
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::error::map_sqlx)?;
                    let active: i64 = sqlx::query_scalar($crate::jobs_sql::COUNT_ACTIVE)
                        .bind(&tenant)
                        .bind(&job.job_type)
                        .bind(job.concurrency_key.as_deref())
                        .bind(owner.map(|u| u.to_string()).unwrap_or_default())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err($crate::error::map_sqlx)?;
                    if active >= i64::from(cap.max) {
                        return Ok(CreateOutcome::AtCapacity { active });
                    }
                }
                let inserted = sqlx::query($crate::jobs_sql::INSERT_JOB)
                    .bind(job.id.to_string())
                    .bind(&tenant)
                    .bind(job.user_id.to_string())
                    .bind(&job.job_type)
                    .bind(&job.state)
                    .bind(sqlx::types::Json(&job.input))
                    .bind(job.concurrency_key.as_deref())
                    .bind(job.reservation_id.map(|r| r.to_string()))
                    .bind($crate::micros(job.at))
                    .bind(job.idempotency_key.as_deref())
                    .fetch_one(&mut *tx)
                    .await;
                let row = match inserted {
                    Ok(row) => row,
                    Err(e) => match $crate::error::map_sqlx(e) {
                        // A concurrent create with the same key won the race: answer its job.
                        $crate::StoreError::Conflict(_) if job.idempotency_key.is_some() => {
                            drop(tx);
                            let mut tx = self.begin_write().await?;
                            return match self.jobs_find_by_key(&mut tx, &tenant, &job).await? {
                                Some(found) => Ok(CreateOutcome::Existing(found)),
                                None => {
                                    Err($crate::StoreError::Conflict("job idempotency key".into()))
                                }
                            };
                        }
                        other => return Err(other),
                    },
                };
                let record = $crate::jobs_sql::job(&row)?;
                let first = $crate::jobs::NewJobEvent {
                    event_type: "state_change".into(),
                    data: job.event_data.clone(),
                    user_visible: true,
                    at: job.at,
                };
                let owner = (tenant.as_str(), record.id, record.job_type.as_str());
                Self::jobs_insert_event(&mut tx, owner, 1, &first).await?;
                let message =
                    $crate::webhook_events::job_state_changed(&record, &first.data, job.at);
                webhook_outbox::enqueue(&mut tx, &tenant, &message).await?;
                Self::jobs_insert_timers(&mut tx, &record, &job.timers).await?;
                tx.commit().await.map_err($crate::error::map_sqlx)?;
                Ok(CreateOutcome::Created(record))
            }

            async fn find_job(
                &self,
                scope: &$crate::TenantScope,
                id: keel_core::ids::JobId,
            ) -> $crate::StoreResult<Option<$crate::jobs::JobRecord>> {
                let row = sqlx::query($crate::jobs_sql::FIND)
                    .bind(scope.tenant().to_string())
                    .bind(id.to_string())
                    .fetch_optional(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                row.as_ref().map($crate::jobs_sql::job).transpose()
            }

            async fn locate_job(
                &self,
                id: keel_core::ids::JobId,
            ) -> $crate::StoreResult<Option<$crate::jobs::JobRecord>> {
                let row = sqlx::query($crate::jobs_sql::LOCATE)
                    .bind(id.to_string())
                    .fetch_optional(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                row.as_ref().map($crate::jobs_sql::job).transpose()
            }

            async fn list_jobs(
                &self,
                scope: &$crate::TenantScope,
                query: &$crate::jobs::JobQuery,
            ) -> $crate::StoreResult<Vec<$crate::jobs::JobRecord>> {
                use $crate::jobs_sql::or_empty;
                let rows = sqlx::query($crate::jobs_sql::LIST)
                    .bind(scope.tenant().to_string())
                    .bind(or_empty(query.user_id.map(|u| u.to_string())))
                    .bind(or_empty(query.job_type.clone()))
                    .bind(or_empty(query.state.clone()))
                    .bind(or_empty(query.before.map(|j| j.to_string())))
                    .bind(query.limit.max(0))
                    .fetch_all(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                rows.iter().map($crate::jobs_sql::job).collect()
            }

            async fn transition_job(
                &self,
                scope: &$crate::TenantScope,
                write: $crate::jobs::TransitionWrite,
            ) -> $crate::StoreResult<$crate::jobs::TransitionOutcome> {
                self.jobs_transition(scope, write).await
            }

            async fn append_job_event(
                &self,
                scope: &$crate::TenantScope,
                job_id: keel_core::ids::JobId,
                event: $crate::jobs::NewJobEvent,
            ) -> $crate::StoreResult<$crate::jobs::AppendOutcome> {
                use $crate::jobs::{AppendOutcome, BatchLimits, BatchOutcome};
                let one = vec![event];
                match self
                    .jobs_append_batch(scope, job_id, one, BatchLimits::UNCHECKED)
                    .await?
                {
                    BatchOutcome::Appended(mut events) => events
                        .pop()
                        .map(AppendOutcome::Appended)
                        .ok_or($crate::StoreError::NotFound),
                    BatchOutcome::Finished => Ok(AppendOutcome::Finished),
                    BatchOutcome::Refused(r) => Err($crate::StoreError::Conflict(format!("{r:?}"))),
                }
            }

            async fn append_job_events(
                &self,
                scope: &$crate::TenantScope,
                job_id: keel_core::ids::JobId,
                events: Vec<$crate::jobs::NewJobEvent>,
                limits: $crate::jobs::BatchLimits,
            ) -> $crate::StoreResult<$crate::jobs::BatchOutcome> {
                self.jobs_append_batch(scope, job_id, events, limits).await
            }

            async fn job_events(
                &self,
                scope: &$crate::TenantScope,
                job_id: keel_core::ids::JobId,
                after: i64,
                limit: i64,
                user_visible_only: bool,
            ) -> $crate::StoreResult<Vec<$crate::jobs::JobEvent>> {
                let rows = sqlx::query($crate::jobs_sql::EVENTS)
                    .bind(scope.tenant().to_string())
                    .bind(job_id.to_string())
                    .bind(after)
                    .bind(user_visible_only)
                    .bind(limit.max(0))
                    .fetch_all(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                rows.iter().map($crate::jobs_sql::event).collect()
            }

            async fn heartbeat_job(
                &self,
                scope: &$crate::TenantScope,
                write: $crate::jobs::HeartbeatWrite,
            ) -> $crate::StoreResult<$crate::jobs::HeartbeatOutcome> {
                self.jobs_heartbeat(scope, write).await
            }

            async fn claim_due_timers(
                &self,
                owner: &str,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::jobs::DueTimer>> {
                let mut tx = self.begin_write().await?;
                let rows = sqlx::query($claim_sql)
                    .bind(owner)
                    .bind($crate::micros(now))
                    .bind($crate::micros(lease_until))
                    .bind(limit.max(0))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::error::map_sqlx)?;
                tx.commit().await.map_err($crate::error::map_sqlx)?;
                rows.iter().map($crate::jobs_sql::timer).collect()
            }

            async fn discard_timer(
                &self,
                scope: &$crate::TenantScope,
                job_id: keel_core::ids::JobId,
                kind: $crate::jobs::TimerKind,
            ) -> $crate::StoreResult<bool> {
                let done = sqlx::query($crate::jobs_sql::DELETE_TIMER)
                    .bind(scope.tenant().to_string())
                    .bind(job_id.to_string())
                    .bind(kind.as_str())
                    .execute(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                Ok(done.rows_affected() > 0)
            }

            async fn job_timers(
                &self,
                scope: &$crate::TenantScope,
                job_id: keel_core::ids::JobId,
            ) -> $crate::StoreResult<Vec<$crate::jobs::DueTimer>> {
                let rows = sqlx::query($crate::jobs_sql::TIMERS)
                    .bind(scope.tenant().to_string())
                    .bind(job_id.to_string())
                    .fetch_all(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                rows.iter().map($crate::jobs_sql::timer).collect()
            }

            async fn prune_job_events(
                &self,
                job_type: &str,
                cutoff: chrono::DateTime<chrono::Utc>,
                batch: i64,
                force: bool,
            ) -> $crate::StoreResult<$crate::jobs::PruneOutcome> {
                self.jobs_prune(job_type, cutoff, batch, force).await
            }

            async fn job_event_stats(
                &self,
                job_type: &str,
            ) -> $crate::StoreResult<Vec<$crate::jobs::EventStat>> {
                let rows = sqlx::query($crate::jobs_sql::STATS)
                    .bind(job_type)
                    .fetch_all(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                rows.iter().map($crate::jobs_sql::stat).collect()
            }
        }

        $crate::jobs_write::job_write_fns!($store, $db);
        $crate::jobs_batch::job_batch_fns!($store, $db);
    };
}
pub(crate) use job_store_impl;
