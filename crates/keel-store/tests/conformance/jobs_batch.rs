//! Batch appends: consecutive sequences in one transaction, all or nothing, never to a
//! finished job, and ordered against concurrent batches.

use keel_core::ids::UserId;
use keel_store::jobs::{BatchLimits, BatchOutcome, BatchRefusal, JobEvent, JobRecord, NewJobEvent};
use keel_store::{Backend, DynStore, TenantScope};
use serde_json::json;

use crate::fixtures::{now, race_n};
use crate::jobs_fixtures::{created, move_to, moved, new_job, scope};
use crate::{harness, harness_with};

const LIMITS: BatchLimits = BatchLimits {
    max_events: 1_000,
    max_event_bytes: 256,
};

fn batch(from: usize, n: usize) -> Vec<NewJobEvent> {
    (from..from + n)
        .map(|i| NewJobEvent {
            event_type: "log".into(),
            data: json!({"n": i}),
            user_visible: i % 3 != 0,
            at: now(),
        })
        .collect()
}

async fn appended(
    store: &DynStore,
    scope: &TenantScope,
    job: &JobRecord,
    events: Vec<NewJobEvent>,
) -> Vec<JobEvent> {
    match store
        .append_job_events(scope, job.id, events, LIMITS)
        .await
        .unwrap()
    {
        BatchOutcome::Appended(events) => events,
        other => panic!("expected an append, got {other:?}"),
    }
}

async fn log(store: &DynStore, scope: &TenantScope, job: &JobRecord) -> Vec<JobEvent> {
    store
        .job_events(scope, job.id, 0, 100_000, false)
        .await
        .unwrap()
}

async fn a_batch_gets_consecutive_sequences_in_order(backend: Backend) {
    let h = harness(backend).await;
    let scope = scope();
    let job = created(&h.store, &scope, new_job(UserId::new(), now())).await;
    let first = appended(&h.store, &scope, &job, batch(0, 1_000)).await;
    let second = appended(&h.store, &scope, &job, batch(1_000, 3)).await;
    let seqs: Vec<i64> = first.iter().chain(&second).map(|e| e.seq).collect();
    assert_eq!(seqs, (2..=1_004).collect::<Vec<i64>>());
    let stored = log(&h.store, &scope, &job).await;
    assert_eq!(stored.len(), 1_004);
    assert_eq!(&stored[1..], [first, second].concat().as_slice());
    assert_eq!(stored[700].data, json!({"n": 699}));
    let job = h.store.find_job(&scope, job.id).await.unwrap().unwrap();
    assert_eq!((job.last_seq, job.version), (1_004, 1));
}

async fn a_batch_with_a_later_oversized_event_writes_nothing(backend: Backend) {
    let h = harness(backend).await;
    let scope = scope();
    let job = created(&h.store, &scope, new_job(UserId::new(), now())).await;
    appended(&h.store, &scope, &job, batch(0, 2)).await;
    // The bad event sits in the second insert chunk: the first chunk must roll back too.
    let mut events = batch(2, 900);
    events[750].data = json!({"blob": "x".repeat(300)});
    let outcome = h
        .store
        .append_job_events(&scope, job.id, events, LIMITS)
        .await
        .unwrap();
    match outcome {
        BatchOutcome::Refused(BatchRefusal::TooLarge { index, size, max }) => {
            assert_eq!((index, max), (750, 256));
            assert!(size > 256);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(log(&h.store, &scope, &job).await.len(), 3);
    let after = h.store.find_job(&scope, job.id).await.unwrap().unwrap();
    assert_eq!(after.last_seq, 3);
    // The next batch continues without a gap.
    let next = appended(&h.store, &scope, &job, batch(2, 1)).await;
    assert_eq!(next[0].seq, 4);
}

async fn an_empty_or_oversized_batch_is_refused(backend: Backend) {
    let h = harness(backend).await;
    let scope = scope();
    let job = created(&h.store, &scope, new_job(UserId::new(), now())).await;
    let empty = h
        .store
        .append_job_events(&scope, job.id, Vec::new(), LIMITS)
        .await
        .unwrap();
    assert_eq!(empty, BatchOutcome::Refused(BatchRefusal::Empty));
    let many = h
        .store
        .append_job_events(&scope, job.id, batch(0, 1_001), LIMITS)
        .await
        .unwrap();
    assert_eq!(
        many,
        BatchOutcome::Refused(BatchRefusal::TooMany {
            count: 1_001,
            max: 1_000
        })
    );
    assert_eq!(log(&h.store, &scope, &job).await.len(), 1);
}

async fn a_finished_job_takes_no_batch(backend: Backend) {
    let h = harness(backend).await;
    let scope = scope();
    let job = created(&h.store, &scope, new_job(UserId::new(), now())).await;
    let mut end = move_to(&job, "cancelled", now());
    end.finished = true;
    moved(&h.store, &scope, end).await;
    let outcome = h
        .store
        .append_job_events(&scope, job.id, batch(0, 10), LIMITS)
        .await
        .unwrap();
    assert_eq!(outcome, BatchOutcome::Finished);
    assert_eq!(log(&h.store, &scope, &job).await.len(), 2);
    let other = h
        .store
        .append_job_events(&crate::jobs_fixtures::scope(), job.id, batch(0, 1), LIMITS)
        .await;
    assert!(matches!(other, Err(keel_store::StoreError::NotFound)));
}

async fn concurrent_batches_do_not_interleave(backend: Backend) {
    let h = harness_with(backend, 8).await;
    let scope = scope();
    let job = created(&h.store, &scope, new_job(UserId::new(), now())).await;
    let runs = race_n(8, |w| {
        let (store, scope, job) = (h.store.clone(), scope, job.clone());
        async move { appended(&store, &scope, &job, batch(w * 100, 100)).await }
    })
    .await;
    for run in &runs {
        let seqs: Vec<i64> = run.iter().map(|e| e.seq).collect();
        let start = seqs[0];
        assert_eq!(seqs, (start..start + 100).collect::<Vec<i64>>());
    }
    let stored: Vec<i64> = log(&h.store, &scope, &job)
        .await
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(stored, (1..=801).collect::<Vec<i64>>());
}

on_both_backends!(
    a_batch_gets_consecutive_sequences_in_order,
    a_batch_with_a_later_oversized_event_writes_nothing,
    an_empty_or_oversized_batch_is_refused,
    a_finished_job_takes_no_batch,
    concurrent_batches_do_not_interleave,
);
