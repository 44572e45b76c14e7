//! Jobs: create with idempotency and a concurrency cap, compare-and-set transitions, the
//! event log, heartbeats, listing and tenant isolation.

use keel_core::ids::{JobId, UserId};
use keel_store::jobs::{
    AppendOutcome, ConcurrencyCap, CreateOutcome, HeartbeatOutcome, HeartbeatWrite, JobQuery,
    NewJobEvent, TimerKind, TransitionOutcome,
};
use keel_store::Backend;
use serde_json::json;

use crate::fixtures::{hours, now, race, CALLERS};
use crate::jobs_fixtures::{created, move_to, moved, new_job, scope, timer};
use crate::{harness, harness_with};

fn event(n: usize) -> NewJobEvent {
    NewJobEvent {
        event_type: "log".into(),
        data: json!({"n": n}),
        user_visible: n.is_multiple_of(2),
        at: now(),
    }
}

async fn a_created_job_has_its_first_state_change_and_timers(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let mut job = new_job(UserId::new(), t0);
    job.timers = vec![timer(TimerKind::Timeout, t0 + hours(1))];
    let made = created(&h.store, &scope, job.clone()).await;
    assert_eq!(
        (made.state.as_str(), made.version, made.last_seq),
        ("queued", 1, 1)
    );
    assert_eq!(
        (made.input.clone(), made.created_at),
        (json!({"project": "p1"}), t0)
    );
    assert_eq!(
        h.store.find_job(&scope, made.id).await.unwrap(),
        Some(made.clone())
    );
    let events = h
        .store
        .job_events(&scope, made.id, 0, 10, false)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].seq, events[0].event_type.as_str()),
        (1, "state_change")
    );
    let timers = h.store.job_timers(&scope, made.id).await.unwrap();
    assert_eq!(timers.len(), 1);
    assert_eq!(
        (timers[0].kind, timers[0].fire_at),
        (TimerKind::Timeout, t0 + hours(1))
    );
    assert_eq!(timers[0].state, "queued");
}

async fn a_double_create_with_one_key_returns_the_first_job(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let (scope, user) = (scope(), UserId::new());
    let results = race(|_| {
        let store = h.store.clone();
        let mut job = new_job(user, now());
        job.idempotency_key = Some("click-1".into());
        async move { store.create_job(&scope, job).await.unwrap() }
    })
    .await;
    let created: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            CreateOutcome::Created(j) => Some(j.id),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "{results:?}");
    for r in &results {
        match r {
            CreateOutcome::Created(j) | CreateOutcome::Existing(j) => assert_eq!(j.id, created[0]),
            other => panic!("unexpected {other:?}"),
        }
    }
    let all = JobQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(h.store.list_jobs(&scope, &all).await.unwrap().len(), 1);
}

async fn parallel_creates_under_a_cap_of_one_admit_exactly_one(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let (scope, user) = (scope(), UserId::new());
    let results = race(|_| {
        let store = h.store.clone();
        let mut job = new_job(user, now());
        job.concurrency_key = Some("p1".into());
        job.cap = Some(ConcurrencyCap {
            max: 1,
            per_user: false,
        });
        async move { store.create_job(&scope, job).await.unwrap() }
    })
    .await;
    let made = results
        .iter()
        .filter(|r| matches!(r, CreateOutcome::Created(_)))
        .count();
    let full = results
        .iter()
        .filter(|r| matches!(r, CreateOutcome::AtCapacity { active: 1 }))
        .count();
    assert_eq!((made, full), (1, CALLERS - 1));
    // Another partition is not capped by the first, and a finished job frees its slot.
    let mut other = new_job(user, now());
    other.concurrency_key = Some("p2".into());
    other.cap = Some(ConcurrencyCap {
        max: 1,
        per_user: false,
    });
    let other = created(&h.store, &scope, other).await;
    let mut done = move_to(&other, "failed", now());
    done.finished = true;
    moved(&h.store, &scope, done).await;
    let mut again = new_job(user, now());
    again.concurrency_key = Some("p2".into());
    again.cap = Some(ConcurrencyCap {
        max: 1,
        per_user: false,
    });
    created(&h.store, &scope, again).await;
}

async fn a_stale_version_is_refused_with_the_current_job(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let mut job = new_job(UserId::new(), t0);
    job.timers = vec![timer(TimerKind::Timeout, t0 + hours(1))];
    let job = created(&h.store, &scope, job).await;
    let mut write = move_to(&job, "building", t0);
    write.timers = vec![timer(TimerKind::HeartbeatLost, t0 + hours(2))];
    write.reason = Some("started".into());
    let (after, change) = match h.store.transition_job(&scope, write.clone()).await.unwrap() {
        TransitionOutcome::Done { job, event } => (job, event),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (after.state.as_str(), after.version, after.last_seq),
        ("building", 2, 2)
    );
    assert_eq!(
        (after.reason.as_deref(), after.finished_at),
        (Some("started"), None)
    );
    assert_eq!(
        (change.seq, change.event_type.as_str()),
        (2, "state_change")
    );
    let timers = h.store.job_timers(&scope, job.id).await.unwrap();
    assert_eq!(timers.len(), 1, "the queued timeout was replaced");
    assert_eq!(
        (timers[0].kind, timers[0].state.as_str()),
        (TimerKind::HeartbeatLost, "building")
    );
    // The same write again carries version 1: refused, nothing written.
    match h.store.transition_job(&scope, write).await.unwrap() {
        TransitionOutcome::Stale(current) => assert_eq!(current, after),
        other => panic!("{other:?}"),
    }
    let events = h
        .store
        .job_events(&scope, job.id, 0, 10, false)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
}

async fn parallel_transitions_from_one_version_admit_one(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let scope = scope();
    let job = created(&h.store, &scope, new_job(UserId::new(), now())).await;
    let results = race(|_| {
        let store = h.store.clone();
        let write = move_to(&job, "building", now());
        async move { store.transition_job(&scope, write).await.unwrap() }
    })
    .await;
    let done = results
        .iter()
        .filter(|r| matches!(r, TransitionOutcome::Done { .. }))
        .count();
    assert_eq!(done, 1);
    let events = h
        .store
        .job_events(&scope, job.id, 0, 100, false)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
}

async fn parallel_appends_get_gapless_sequences(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let scope = scope();
    let job = created(&h.store, &scope, new_job(UserId::new(), now())).await;
    let seqs = race(|i| {
        let store = h.store.clone();
        async move {
            match store
                .append_job_event(&scope, job.id, event(i))
                .await
                .unwrap()
            {
                AppendOutcome::Appended(e) => e.seq,
                AppendOutcome::Finished => panic!("not finished"),
            }
        }
    })
    .await;
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    let expected: Vec<i64> = (2..=i64::try_from(CALLERS).unwrap() + 1).collect();
    assert_eq!(sorted, expected);
    let page = h
        .store
        .job_events(&scope, job.id, 10, 5, false)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![11, 12, 13, 14, 15]
    );
    let visible = h
        .store
        .job_events(&scope, job.id, 0, 100, true)
        .await
        .unwrap();
    assert!(visible.iter().all(|e| e.user_visible));
    assert_eq!(visible.len(), 1 + CALLERS / 2);
}

async fn a_finished_job_takes_no_more_events(backend: Backend) {
    let h = harness(backend).await;
    let scope = scope();
    let job = created(&h.store, &scope, new_job(UserId::new(), now())).await;
    let mut end = move_to(&job, "cancelled", now());
    end.finished = true;
    let ended = moved(&h.store, &scope, end).await;
    assert!(ended.finished_at.is_some());
    let outcome = h
        .store
        .append_job_event(&scope, job.id, event(1))
        .await
        .unwrap();
    assert_eq!(outcome, AppendOutcome::Finished);
    assert_eq!(
        h.store
            .job_events(&scope, job.id, 0, 10, false)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn a_heartbeat_rearms_only_heartbeat_timers(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let mut job = new_job(UserId::new(), t0);
    job.timers = vec![
        timer(TimerKind::Timeout, t0 + hours(1)),
        timer(TimerKind::HeartbeatLost, t0 + hours(2)),
    ];
    let job = created(&h.store, &scope, job).await;
    let beat = HeartbeatWrite {
        job_id: job.id,
        expected_version: 1,
        timers: vec![timer(TimerKind::HeartbeatLost, t0 + hours(3))],
        at: t0 + hours(1),
    };
    match h.store.heartbeat_job(&scope, beat.clone()).await.unwrap() {
        HeartbeatOutcome::Recorded(j) => assert_eq!(j.heartbeat_at, Some(t0 + hours(1))),
        other => panic!("{other:?}"),
    }
    let timers = h.store.job_timers(&scope, job.id).await.unwrap();
    let got: Vec<_> = timers.iter().map(|t| (t.kind, t.fire_at)).collect();
    assert_eq!(
        got,
        vec![
            (TimerKind::Timeout, t0 + hours(1)),
            (TimerKind::HeartbeatLost, t0 + hours(3))
        ]
    );
    moved(&h.store, &scope, move_to(&job, "building", t0)).await;
    let stale = h.store.heartbeat_job(&scope, beat).await.unwrap();
    assert!(matches!(stale, HeartbeatOutcome::Stale(j) if j.version == 2));
}

async fn jobs_list_newest_first_with_filters_and_a_cursor(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user, other) = (scope(), UserId::new(), UserId::new());
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(created(&h.store, &scope, new_job(user, now())).await.id);
    }
    created(&h.store, &scope, new_job(other, now())).await;
    let first = moved(
        &h.store,
        &scope,
        move_to(
            &h.store.find_job(&scope, ids[0]).await.unwrap().unwrap(),
            "building",
            now(),
        ),
    )
    .await;
    let mine = |before: Option<JobId>, state: Option<&str>| JobQuery {
        user_id: Some(user),
        job_type: Some("build".into()),
        state: state.map(str::to_owned),
        before,
        limit: 2,
    };
    let page1 = h.store.list_jobs(&scope, &mine(None, None)).await.unwrap();
    assert_eq!(
        page1.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    let page2 = h
        .store
        .list_jobs(&scope, &mine(Some(ids[3]), None))
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let building = h
        .store
        .list_jobs(&scope, &mine(None, Some("building")))
        .await
        .unwrap();
    assert_eq!(building, vec![first]);
    let none = JobQuery {
        job_type: Some("other".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(h.store.list_jobs(&scope, &none).await.unwrap().is_empty());
}

async fn another_tenant_cannot_see_or_move_a_job(backend: Backend) {
    let h = harness(backend).await;
    let (mine, theirs) = (scope(), scope());
    let job = created(&h.store, &mine, new_job(UserId::new(), now())).await;
    assert_eq!(h.store.find_job(&theirs, job.id).await.unwrap(), None);
    // Only service callers locate a job without a scope; it tells them the tenant.
    let located = h.store.locate_job(job.id).await.unwrap().unwrap();
    assert_eq!(located.tenant_id, mine.tenant());
    assert_eq!(h.store.locate_job(JobId::new()).await.unwrap(), None);
    let moved = h
        .store
        .transition_job(&theirs, move_to(&job, "building", now()))
        .await;
    assert!(
        matches!(moved, Err(keel_store::StoreError::NotFound)),
        "{moved:?}"
    );
    let appended = h.store.append_job_event(&theirs, job.id, event(1)).await;
    assert!(matches!(appended, Err(keel_store::StoreError::NotFound)));
    assert!(h
        .store
        .job_events(&theirs, job.id, 0, 10, false)
        .await
        .unwrap()
        .is_empty());
    let all = JobQuery {
        limit: 10,
        ..Default::default()
    };
    assert!(h.store.list_jobs(&theirs, &all).await.unwrap().is_empty());
}

on_both_backends!(
    a_created_job_has_its_first_state_change_and_timers,
    a_double_create_with_one_key_returns_the_first_job,
    parallel_creates_under_a_cap_of_one_admit_exactly_one,
    a_stale_version_is_refused_with_the_current_job,
    parallel_transitions_from_one_version_admit_one,
    parallel_appends_get_gapless_sequences,
    a_finished_job_takes_no_more_events,
    a_heartbeat_rearms_only_heartbeat_timers,
    jobs_list_newest_first_with_filters_and_a_cursor,
    another_tenant_cannot_see_or_move_a_job,
);
