//! Durable timers claimed and fired exactly once by racing nodes, and event retention.

use std::collections::HashSet;

use chrono::TimeDelta;
use keel_core::ids::UserId;
use keel_store::jobs::{PruneOutcome, TimerKind, TransitionOutcome};
use keel_store::Backend;

use crate::fixtures::{hours, now, race_n, CALLERS};
use crate::jobs_fixtures::{created, move_to, moved, new_job, scope, timer};
use crate::{harness, harness_with};

async fn two_claimers_never_get_the_same_timer(backend: Backend) {
    let h = harness_with(backend, 8).await;
    let (scope, t0) = (scope(), now());
    let mut ids = HashSet::new();
    for i in 0..40 {
        let mut job = new_job(UserId::new(), t0);
        job.timers = vec![timer(TimerKind::Timeout, t0 - TimeDelta::seconds(40 - i))];
        ids.insert(created(&h.store, &scope, job).await.id);
    }
    // One job whose timer is not due yet.
    let mut later = new_job(UserId::new(), t0);
    later.timers = vec![timer(TimerKind::Timeout, t0 + hours(1))];
    created(&h.store, &scope, later).await;
    let claims = race_n(2, |i| {
        let store = h.store.clone();
        async move {
            let mut got = Vec::new();
            loop {
                let batch = store
                    .claim_due_timers(&format!("node-{i}"), t0, t0 + hours(1), 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|t| t.job_id));
            }
        }
    })
    .await;
    let all: Vec<_> = claims.iter().flatten().copied().collect();
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), 40, "each due timer claimed once");
    assert_eq!(unique, ids);
    // A live lease hides them; an expired lease gives them out again.
    assert!(h
        .store
        .claim_due_timers("node-x", t0, t0 + hours(1), 100)
        .await
        .unwrap()
        .is_empty());
    let reclaimed = h
        .store
        .claim_due_timers("node-x", t0 + hours(1), t0 + hours(2), 100);
    assert_eq!(reclaimed.await.unwrap().len(), 41);
}

async fn a_timer_fires_exactly_once_under_racing_fires(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let (scope, t0) = (scope(), now());
    let mut job = new_job(UserId::new(), t0);
    job.timers = vec![timer(TimerKind::Timeout, t0)];
    let job = created(&h.store, &scope, job).await;
    let results = race_n(CALLERS, |_| {
        let store = h.store.clone();
        let mut write = move_to(&job, "failed", now());
        write.fires = Some(TimerKind::Timeout);
        write.finished = true;
        write.reason = Some("queue_timeout".into());
        async move { store.transition_job(&scope, write).await.unwrap() }
    })
    .await;
    let done = results
        .iter()
        .filter(|r| matches!(r, TransitionOutcome::Done { .. }))
        .count();
    assert_eq!(done, 1);
    assert!(results.iter().all(|r| matches!(
        r,
        TransitionOutcome::Done { .. } | TransitionOutcome::TimerGone
    )));
    let events = h
        .store
        .job_events(&scope, job.id, 0, 100, false)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(h.store.job_timers(&scope, job.id).await.unwrap().is_empty());
}

async fn a_timer_not_yet_due_does_not_fire(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let mut job = new_job(UserId::new(), t0);
    job.timers = vec![timer(TimerKind::Timeout, t0 + hours(1))];
    let job = created(&h.store, &scope, job).await;
    let mut write = move_to(&job, "failed", t0);
    write.fires = Some(TimerKind::Timeout);
    let outcome = h.store.transition_job(&scope, write).await.unwrap();
    assert_eq!(outcome, TransitionOutcome::TimerGone);
    let current = h.store.find_job(&scope, job.id).await.unwrap().unwrap();
    assert_eq!((current.state.as_str(), current.version), ("queued", 1));
    assert!(h
        .store
        .discard_timer(&scope, job.id, TimerKind::Timeout)
        .await
        .unwrap());
    assert!(h.store.job_timers(&scope, job.id).await.unwrap().is_empty());
}

/// Three finished jobs of 3 events each, one running job of 3 events.
async fn retention_fixture(h: &crate::Harness, job_type: &str) -> chrono::DateTime<chrono::Utc> {
    let (scope, t0) = (scope(), now());
    for i in 0..4 {
        let mut job = new_job(UserId::new(), t0);
        job.job_type = job_type.into();
        let job = created(&h.store, &scope, job).await;
        let job = moved(&h.store, &scope, move_to(&job, "building", t0)).await;
        if i < 3 {
            let mut end = move_to(&job, "failed", t0);
            end.finished = true;
            moved(&h.store, &scope, end).await;
        } else {
            moved(&h.store, &scope, move_to(&job, "queued", t0)).await;
        }
    }
    t0
}

async fn retention_refuses_to_delete_most_events_unless_forced(backend: Backend) {
    let h = harness(backend).await;
    let job_type = format!("t{}", uuid::Uuid::now_v7().simple());
    let t0 = retention_fixture(&h, &job_type).await;
    let cutoff = t0 + TimeDelta::seconds(1);
    let refused = h
        .store
        .prune_job_events(&job_type, cutoff, 2, false)
        .await
        .unwrap();
    assert_eq!(
        refused,
        PruneOutcome::Refused {
            eligible: 9,
            total: 12
        }
    );
    assert!(h.store.job_event_stats(&job_type).await.unwrap().is_empty());
    // Nothing is eligible before the jobs finished.
    let early = h
        .store
        .prune_job_events(&job_type, t0, 2, false)
        .await
        .unwrap();
    assert_eq!(early, PruneOutcome::Pruned { deleted: 0 });
    let forced = h
        .store
        .prune_job_events(&job_type, cutoff, 2, true)
        .await
        .unwrap();
    assert_eq!(forced, PruneOutcome::Pruned { deleted: 9 });
    let stats = h.store.job_event_stats(&job_type).await.unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].day.clone(), stats[0].events),
        (t0.format("%Y-%m-%d").to_string(), 9)
    );
    let again = h
        .store
        .prune_job_events(&job_type, cutoff, 2, false)
        .await
        .unwrap();
    assert_eq!(again, PruneOutcome::Pruned { deleted: 0 });
}

on_both_backends!(
    two_claimers_never_get_the_same_timer,
    a_timer_fires_exactly_once_under_racing_fires,
    a_timer_not_yet_due_does_not_fire,
    retention_refuses_to_delete_most_events_unless_forced,
);
