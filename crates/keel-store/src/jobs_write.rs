//! The transactional writes of the job store (transition, heartbeat, retention; appends are
//! in `jobs_batch`),
//! stamped for each backend as inherent methods the trait impl calls.

macro_rules! job_write_fns {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn jobs_find_by_key(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &str,
                job: &$crate::jobs::NewJob,
            ) -> $crate::StoreResult<Option<$crate::jobs::JobRecord>> {
                let Some(key) = job.idempotency_key.as_deref() else {
                    return Ok(None);
                };
                let row = sqlx::query($crate::jobs_sql::FIND_BY_KEY)
                    .bind(tenant)
                    .bind(job.user_id.to_string())
                    .bind(&job.job_type)
                    .bind(key)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err($crate::error::map_sqlx)?;
                row.as_ref().map($crate::jobs_sql::job).transpose()
            }

            async fn jobs_insert_event(
                conn: &mut <$db as sqlx::Database>::Connection,
                (tenant, job_id, job_type): (&str, keel_core::ids::JobId, &str),
                seq: i64,
                event: &$crate::jobs::NewJobEvent,
            ) -> $crate::StoreResult<$crate::jobs::JobEvent> {
                let at = $crate::micros(event.at);
                sqlx::query($crate::jobs_sql::INSERT_EVENT)
                    .bind(tenant)
                    .bind(job_id.to_string())
                    .bind(seq)
                    .bind(job_type)
                    .bind(&event.event_type)
                    .bind(sqlx::types::Json(&event.data))
                    .bind(event.user_visible)
                    .bind(at)
                    .execute(&mut *conn)
                    .await
                    .map_err($crate::error::map_sqlx)?;
                Ok($crate::jobs::JobEvent {
                    job_id,
                    seq,
                    event_type: event.event_type.clone(),
                    data: event.data.clone(),
                    user_visible: event.user_visible,
                    created_at: at,
                })
            }

            async fn jobs_insert_timers(
                conn: &mut <$db as sqlx::Database>::Connection,
                job: &$crate::jobs::JobRecord,
                timers: &[$crate::jobs::NewTimer],
            ) -> $crate::StoreResult<()> {
                for timer in timers {
                    sqlx::query($crate::jobs_sql::INSERT_TIMER)
                        .bind(job.tenant_id.to_string())
                        .bind(job.id.to_string())
                        .bind(timer.kind.as_str())
                        .bind(&job.state)
                        .bind($crate::micros(timer.fire_at))
                        .execute(&mut *conn)
                        .await
                        .map_err($crate::error::map_sqlx)?;
                }
                Ok(())
            }

            async fn jobs_current(
                &self,
                scope: &$crate::TenantScope,
                id: keel_core::ids::JobId,
            ) -> $crate::StoreResult<$crate::jobs::JobRecord> {
                use $crate::jobs::JobStore;
                self.find_job(scope, id)
                    .await?
                    .ok_or($crate::StoreError::NotFound)
            }

            async fn jobs_transition(
                &self,
                scope: &$crate::TenantScope,
                write: $crate::jobs::TransitionWrite,
            ) -> $crate::StoreResult<$crate::jobs::TransitionOutcome> {
                use $crate::jobs::TransitionOutcome;
                let tenant = scope.tenant().to_string();
                let at = $crate::micros(write.at);
                let mut tx = self.begin_write().await?;
                if let Some(kind) = write.fires {
                    let fired = sqlx::query($crate::jobs_sql::FIRE_TIMER)
                        .bind(&tenant)
                        .bind(write.job_id.to_string())
                        .bind(kind.as_str())
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::error::map_sqlx)?;
                    if fired.rows_affected() == 0 {
                        return Ok(TransitionOutcome::TimerGone);
                    }
                }
                let row = sqlx::query($crate::jobs_sql::TRANSITION)
                    .bind(&tenant)
                    .bind(write.job_id.to_string())
                    .bind(&write.to)
                    .bind(write.reason.as_deref())
                    .bind(write.resume_state.as_deref())
                    .bind(write.reservation_id.map(|r| r.to_string()))
                    .bind(at)
                    .bind(write.finished)
                    .bind(write.heartbeat)
                    .bind(write.expected_version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::error::map_sqlx)?;
                let Some(row) = row else {
                    drop(tx);
                    let current = self.jobs_current(scope, write.job_id).await?;
                    return Ok(TransitionOutcome::Stale(current));
                };
                let job = $crate::jobs_sql::job(&row)?;
                let change = $crate::jobs::NewJobEvent {
                    event_type: "state_change".into(),
                    data: write.event_data,
                    user_visible: true,
                    at,
                };
                let owner = (tenant.as_str(), job.id, job.job_type.as_str());
                let event = Self::jobs_insert_event(&mut tx, owner, job.last_seq, &change).await?;
                let message =
                    $crate::webhook_events::job_state_changed(&job, &event.data, write.at);
                webhook_outbox::enqueue(&mut tx, &tenant, &message).await?;
                sqlx::query($crate::jobs_sql::DELETE_TIMERS)
                    .bind(&tenant)
                    .bind(write.job_id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::error::map_sqlx)?;
                Self::jobs_insert_timers(&mut tx, &job, &write.timers).await?;
                tx.commit().await.map_err($crate::error::map_sqlx)?;
                Ok(TransitionOutcome::Done { job, event })
            }

            async fn jobs_heartbeat(
                &self,
                scope: &$crate::TenantScope,
                write: $crate::jobs::HeartbeatWrite,
            ) -> $crate::StoreResult<$crate::jobs::HeartbeatOutcome> {
                use $crate::jobs::HeartbeatOutcome;
                let tenant = scope.tenant().to_string();
                let mut tx = self.begin_write().await?;
                let row = sqlx::query($crate::jobs_sql::HEARTBEAT)
                    .bind(&tenant)
                    .bind(write.job_id.to_string())
                    .bind($crate::micros(write.at))
                    .bind(write.expected_version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::error::map_sqlx)?;
                let Some(row) = row else {
                    drop(tx);
                    let current = self.jobs_current(scope, write.job_id).await?;
                    return Ok(HeartbeatOutcome::Stale(current));
                };
                let job = $crate::jobs_sql::job(&row)?;
                sqlx::query($crate::jobs_sql::DELETE_HEARTBEAT_TIMERS)
                    .bind(&tenant)
                    .bind(write.job_id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::error::map_sqlx)?;
                Self::jobs_insert_timers(&mut tx, &job, &write.timers).await?;
                tx.commit().await.map_err($crate::error::map_sqlx)?;
                Ok(HeartbeatOutcome::Recorded(job))
            }

            async fn jobs_prune(
                &self,
                job_type: &str,
                cutoff: chrono::DateTime<chrono::Utc>,
                batch: i64,
                force: bool,
            ) -> $crate::StoreResult<$crate::jobs::PruneOutcome> {
                use sqlx::Row;
                use $crate::jobs::PruneOutcome;
                let cutoff = $crate::micros(cutoff);
                let total: i64 = sqlx::query_scalar($crate::jobs_sql::COUNT_TYPE_EVENTS)
                    .bind(job_type)
                    .fetch_one(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                let eligible: i64 =
                    sqlx::query_scalar(&format!("SELECT COUNT(*) {}", $crate::jobs_sql::PRUNABLE))
                        .bind(job_type)
                        .bind(cutoff)
                        .fetch_one(self.pool())
                        .await
                        .map_err($crate::error::map_sqlx)?;
                if eligible.saturating_mul(2) > total && !force {
                    return Ok(PruneOutcome::Refused { eligible, total });
                }
                let select = format!(
                    "SELECT e.tenant_id, e.job_id, e.seq, e.created_at {} LIMIT $3",
                    $crate::jobs_sql::PRUNABLE
                );
                let mut deleted = 0u64;
                loop {
                    let mut tx = self.begin_write().await?;
                    let rows = sqlx::query(&select)
                        .bind(job_type)
                        .bind(cutoff)
                        .bind(batch.max(1))
                        .fetch_all(&mut *tx)
                        .await
                        .map_err($crate::error::map_sqlx)?;
                    if rows.is_empty() {
                        return Ok(PruneOutcome::Pruned { deleted });
                    }
                    let mut times = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let tenant: String = row.try_get("tenant_id")?;
                        let job: String = row.try_get("job_id")?;
                        let seq: i64 = row.try_get("seq")?;
                        let at: chrono::DateTime<chrono::Utc> = row.try_get("created_at")?;
                        let gone = sqlx::query($crate::jobs_sql::DELETE_EVENT)
                            .bind(tenant)
                            .bind(job)
                            .bind(seq)
                            .execute(&mut *tx)
                            .await
                            .map_err($crate::error::map_sqlx)?;
                        // Count only what this run deleted: a concurrent run may have won the row.
                        if gone.rows_affected() > 0 {
                            deleted += 1;
                            times.push(at);
                        }
                    }
                    for (day, events) in $crate::jobs_sql::per_day(&times) {
                        sqlx::query($crate::jobs_sql::ADD_STAT)
                            .bind(day)
                            .bind(job_type)
                            .bind(events)
                            .execute(&mut *tx)
                            .await
                            .map_err($crate::error::map_sqlx)?;
                    }
                    tx.commit().await.map_err($crate::error::map_sqlx)?;
                }
            }
        }
    };
}
pub(crate) use job_write_fns;
