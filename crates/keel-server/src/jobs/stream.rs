//! The live event stream (`text/event-stream`) of one job: the stored backlog after the
//! cursor, then live events as notifications wake the reader, then `event: end` once the
//! job is terminal. The reader subscribes before reading the backlog and always reads the
//! store after the last sequence it sent, so a stream has neither gaps nor duplicates.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use keel_core::ids::JobId;
use keel_store::TenantScope;
use tokio::sync::mpsc;

use super::notify::JobWake;

use crate::AppState;

/// Events read from the store per page while catching up.
const PAGE: i64 = 500;

/// Client reconnect hint sent first (milliseconds).
const RETRY: Duration = Duration::from_secs(2);

/// Opens the stream of `job` after sequence `after`.
pub fn open(state: AppState, scope: TenantScope, job: JobId, after: i64) -> Response {
    // Subscribe before the first read so nothing appended in between is missed.
    let wake = state.job_notifier().subscribe(job);
    let keepalive = state.settings().jobs_sse_keepalive;
    let (tx, rx) = mpsc::channel::<Event>(64);
    metrics::gauge!("keel_job_streams_open").increment(1.0);
    tokio::spawn(async move {
        let _ = tx.send(Event::default().retry(RETRY)).await;
        if let Err(e) = pump(&state, scope, job, after, &tx, wake, keepalive).await {
            tracing::warn!(error = %e, job = %job, "job event stream ended on a store error");
        }
        metrics::gauge!("keel_job_streams_open").decrement(1.0);
    });
    Sse::new(events(rx)).into_response()
}

fn events(rx: mpsc::Receiver<Event>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

async fn pump(
    state: &AppState,
    scope: TenantScope,
    job: JobId,
    mut last: i64,
    tx: &mpsc::Sender<Event>,
    mut wake: JobWake,
    keepalive: Duration,
) -> Result<(), keel_store::StoreError> {
    let mut tick = tokio::time::interval(keepalive);
    tick.reset();
    loop {
        // Read the job first: its terminal event is written with `finished_at`, so a drain
        // after seeing it finished reads every event it will ever have.
        let finished = state
            .store()
            .find_job(&scope, job)
            .await?
            .is_none_or(|j| j.finished_at.is_some());
        loop {
            let page = state
                .store()
                .job_events(&scope, job, last, PAGE, true)
                .await?;
            for e in &page {
                if e.seq <= last {
                    continue;
                }
                let data = serde_json::to_string(&super::JobEventOut::from(e))
                    .unwrap_or_else(|_| "{}".to_owned());
                let event = Event::default()
                    .id(e.seq.to_string())
                    .event(e.event_type.as_str())
                    .data(data);
                if tx.send(event).await.is_err() {
                    return Ok(());
                }
                last = e.seq;
            }
            if i64::try_from(page.len()).unwrap_or(PAGE) < PAGE {
                break;
            }
        }
        if finished {
            let _ = tx
                .send(Event::default().event("end").data(last.to_string()))
                .await;
            return Ok(());
        }
        // Wait for a wake-up about this job (or the keep-alive tick, after which the store is
        // read again in case a notification from another node was lost).
        tokio::select! {
            () = wake.changed() => {}
            _ = tick.tick() => {
                if tx.send(Event::default().comment("keep-alive")).await.is_err() {
                    return Ok(());
                }
            }
            () = tx.closed() => return Ok(()),
        }
    }
}
