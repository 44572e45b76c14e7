//! Idempotency records: claim, complete, replay, release, takeover, sweep.

use chrono::{DateTime, TimeDelta, Utc};
use keel_core::ids::TenantId;
use keel_store::{Backend, ClaimOutcome, KeptRecord, NewIdempotencyClaim, TenantScope};
use uuid::Uuid;

use crate::fixtures::{now, race, CALLERS};
use crate::{harness, harness_with};

fn scope() -> TenantScope {
    TenantScope::new(TenantId::new())
}

fn claim(id: &str, at: DateTime<Utc>) -> NewIdempotencyClaim {
    NewIdempotencyClaim {
        id: id.to_string(),
        principal: "user:usr_test".into(),
        method: "POST".into(),
        path: "/v1/api-keys".into(),
        fingerprint: vec![1; 32],
        lock: Uuid::now_v7(),
        locked_until: at + TimeDelta::seconds(40),
        expires_at: at + TimeDelta::hours(24),
    }
}

fn id() -> String {
    format!("{}{}", Uuid::now_v7().simple(), Uuid::now_v7().simple())
}

fn kept(body: &[u8]) -> KeptRecord {
    KeptRecord {
        status: 201,
        response: body.to_vec(),
    }
}

async fn a_completed_claim_replays_its_response(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let first = claim(&id(), t0);
    let outcome = h.store.claim_idempotency(&scope, &first, t0).await.unwrap();
    assert_eq!(outcome, ClaimOutcome::Claimed { taken_over: false });
    let held = h.store.find_idempotency(&scope, &first.id).await.unwrap();
    let held = held.unwrap();
    assert_eq!(
        (held.lock, held.locked_until, held.kept.clone()),
        (Some(first.lock), Some(first.locked_until), None)
    );
    assert_eq!((held.created_at, held.expires_at), (t0, first.expires_at));
    assert_eq!(
        (
            held.principal.as_str(),
            held.method.as_str(),
            held.path.as_str()
        ),
        ("user:usr_test", "POST", "/v1/api-keys")
    );
    let until = t0 + TimeDelta::hours(2);
    let done = h
        .store
        .complete_idempotency(&scope, &first.id, first.lock, kept(b"sealed"), until);
    assert!(done.await.unwrap());
    let retry = NewIdempotencyClaim {
        lock: Uuid::now_v7(),
        ..first.clone()
    };
    let later = t0 + TimeDelta::seconds(1);
    let outcome = h
        .store
        .claim_idempotency(&scope, &retry, later)
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::Completed(kept(b"sealed")));
    let stored = h
        .store
        .find_idempotency(&scope, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            stored.lock,
            stored.locked_until,
            stored.kept,
            stored.expires_at
        ),
        (None, None, Some(kept(b"sealed")), until)
    );
    // A completed claim can be neither completed again nor released.
    let again = h
        .store
        .complete_idempotency(&scope, &first.id, first.lock, kept(b"x"), until);
    assert!(!again.await.unwrap());
    assert!(!h
        .store
        .release_idempotency(&scope, &first.id, first.lock)
        .await
        .unwrap());
}

async fn a_live_claim_is_in_progress_for_everyone_else(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let first = claim(&id(), t0);
    h.store.claim_idempotency(&scope, &first, t0).await.unwrap();
    let second = NewIdempotencyClaim {
        lock: Uuid::now_v7(),
        ..first.clone()
    };
    let outcome = h
        .store
        .claim_idempotency(&scope, &second, t0 + TimeDelta::seconds(39));
    assert_eq!(
        outcome.await.unwrap(),
        ClaimOutcome::InProgress {
            locked_until: first.locked_until
        }
    );
    // The loser cannot complete or release the winner's claim.
    let stolen = h
        .store
        .complete_idempotency(&scope, &first.id, second.lock, kept(b"x"), t0);
    assert!(!stolen.await.unwrap());
    assert!(!h
        .store
        .release_idempotency(&scope, &first.id, second.lock)
        .await
        .unwrap());
}

async fn exactly_one_of_many_concurrent_claims_wins(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let (scope, t0, shared) = (scope(), now(), id());
    let outcomes = race(|_| {
        let (store, claim) = (h.store.clone(), claim(&shared, t0));
        async move { store.claim_idempotency(&scope, &claim, t0).await.unwrap() }
    })
    .await;
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, ClaimOutcome::Claimed { .. }))
        .count();
    let waiting = outcomes
        .iter()
        .filter(|o| matches!(o, ClaimOutcome::InProgress { .. }))
        .count();
    assert_eq!((won, waiting), (1, CALLERS - 1), "{outcomes:?}");
}

async fn another_request_under_the_same_key_is_a_mismatch(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let first = claim(&id(), t0);
    h.store.claim_idempotency(&scope, &first, t0).await.unwrap();
    let other = NewIdempotencyClaim {
        lock: Uuid::now_v7(),
        fingerprint: vec![2; 32],
        ..first.clone()
    };
    let outcome = h.store.claim_idempotency(&scope, &other, t0).await.unwrap();
    assert_eq!(outcome, ClaimOutcome::Mismatch, "while in progress");
    let done =
        h.store
            .complete_idempotency(&scope, &first.id, first.lock, kept(b"a"), first.expires_at);
    assert!(done.await.unwrap());
    let outcome = h.store.claim_idempotency(&scope, &other, t0).await.unwrap();
    assert_eq!(outcome, ClaimOutcome::Mismatch, "once completed");
}

async fn an_expired_lock_is_taken_over_and_the_old_holder_is_shut_out(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let dead = claim(&id(), t0);
    h.store.claim_idempotency(&scope, &dead, t0).await.unwrap();
    let after = dead.locked_until + TimeDelta::milliseconds(1);
    let retry = NewIdempotencyClaim {
        lock: Uuid::now_v7(),
        locked_until: after + TimeDelta::seconds(40),
        ..dead.clone()
    };
    let outcome = h
        .store
        .claim_idempotency(&scope, &retry, after)
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::Claimed { taken_over: true });
    let record = h
        .store
        .find_idempotency(&scope, &dead.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.lock, record.locked_until),
        (Some(retry.lock), Some(retry.locked_until))
    );
    let late =
        h.store
            .complete_idempotency(&scope, &dead.id, dead.lock, kept(b"old"), dead.expires_at);
    assert!(
        !late.await.unwrap(),
        "the dead holder's completion is refused"
    );
    assert!(!h
        .store
        .release_idempotency(&scope, &dead.id, dead.lock)
        .await
        .unwrap());
    let done =
        h.store
            .complete_idempotency(&scope, &dead.id, retry.lock, kept(b"new"), dead.expires_at);
    assert!(done.await.unwrap());
    let replay = h
        .store
        .claim_idempotency(&scope, &dead, after)
        .await
        .unwrap();
    assert_eq!(replay, ClaimOutcome::Completed(kept(b"new")));
}

async fn a_released_claim_lets_a_retry_execute(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let first = claim(&id(), t0);
    h.store.claim_idempotency(&scope, &first, t0).await.unwrap();
    assert!(h
        .store
        .release_idempotency(&scope, &first.id, first.lock)
        .await
        .unwrap());
    assert_eq!(
        h.store.find_idempotency(&scope, &first.id).await.unwrap(),
        None
    );
    let retry = NewIdempotencyClaim {
        lock: Uuid::now_v7(),
        fingerprint: vec![3; 32],
        ..first.clone()
    };
    let outcome = h.store.claim_idempotency(&scope, &retry, t0).await.unwrap();
    assert_eq!(outcome, ClaimOutcome::Claimed { taken_over: false });
}

async fn an_expired_record_counts_as_absent(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let first = claim(&id(), t0);
    h.store.claim_idempotency(&scope, &first, t0).await.unwrap();
    let until = t0 + TimeDelta::seconds(5);
    let done = h
        .store
        .complete_idempotency(&scope, &first.id, first.lock, kept(b"a"), until);
    assert!(done.await.unwrap());
    let later = until + TimeDelta::seconds(1);
    let fresh = NewIdempotencyClaim {
        fingerprint: vec![4; 32],
        ..claim(&first.id, later)
    };
    let outcome = h
        .store
        .claim_idempotency(&scope, &fresh, later)
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::Claimed { taken_over: false });
    let record = h
        .store
        .find_idempotency(&scope, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.fingerprint, record.kept, record.created_at),
        (vec![4; 32], None, later)
    );
}

async fn records_of_two_tenants_are_independent(backend: Backend) {
    let h = harness(backend).await;
    let (a, b, t0, shared) = (scope(), scope(), now(), id());
    for scope in [&a, &b] {
        let c = claim(&shared, t0);
        let outcome = h.store.claim_idempotency(scope, &c, t0);
        assert_eq!(
            outcome.await.unwrap(),
            ClaimOutcome::Claimed { taken_over: false }
        );
    }
    let held = h
        .store
        .find_idempotency(&a, &shared)
        .await
        .unwrap()
        .unwrap();
    assert!(h
        .store
        .release_idempotency(&a, &shared, held.lock.unwrap())
        .await
        .unwrap());
    assert!(h
        .store
        .find_idempotency(&b, &shared)
        .await
        .unwrap()
        .is_some());
}

async fn the_sweep_deletes_expired_records_in_batches(backend: Backend) {
    let h = harness(backend).await;
    let (scope, t0) = (scope(), now());
    let mut expired = Vec::new();
    for minutes in 1..=5 {
        let c = NewIdempotencyClaim {
            expires_at: t0 - TimeDelta::minutes(minutes),
            ..claim(&id(), t0)
        };
        h.store
            .claim_idempotency(&scope, &c, t0 - TimeDelta::hours(1))
            .await
            .unwrap();
        expired.push(c.id);
    }
    let live = claim(&id(), t0);
    h.store.claim_idempotency(&scope, &live, t0).await.unwrap();
    assert_eq!(h.store.sweep_idempotency(t0, 2).await.unwrap(), 2);
    assert_eq!(h.store.sweep_idempotency(t0, 0).await.unwrap(), 0);
    assert_eq!(h.store.sweep_idempotency(t0, 10).await.unwrap(), 3);
    assert_eq!(h.store.sweep_idempotency(t0, 10).await.unwrap(), 0);
    for id in &expired {
        assert_eq!(h.store.find_idempotency(&scope, id).await.unwrap(), None);
    }
    assert!(h
        .store
        .find_idempotency(&scope, &live.id)
        .await
        .unwrap()
        .is_some());
}

on_both_backends!(
    a_completed_claim_replays_its_response,
    a_live_claim_is_in_progress_for_everyone_else,
    exactly_one_of_many_concurrent_claims_wins,
    another_request_under_the_same_key_is_a_mismatch,
    an_expired_lock_is_taken_over_and_the_old_holder_is_shut_out,
    a_released_claim_lets_a_retry_execute,
    an_expired_record_counts_as_absent,
    records_of_two_tenants_are_independent,
    the_sweep_deletes_expired_records_in_batches,
);
