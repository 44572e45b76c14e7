//! Process-wide identity material: signing keys, wallet challenges, sign-in throttles.

use chrono::TimeDelta;
use keel_core::ids::ChallengeId;
use keel_store::{Backend, ChallengeRecord, FailureCount, SigningKeyRecord, StoreError};

use crate::fixtures::{self, hours, now, race, CALLERS};
use crate::{harness, harness_with};

fn signing_key(kid: &str, age_hours: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        private_der: fixtures::hash(),
        public_raw: fixtures::hash(),
        created_at: now() - hours(age_hours),
        retired_at: None,
    }
}

fn challenge(expires_in: TimeDelta) -> ChallengeRecord {
    ChallengeRecord {
        id: ChallengeId::new(),
        address: fixtures::wallet(),
        message: "Sign in to Keel\nnonce: 8c1f".into(),
        expires_at: now() + expires_in,
        used_at: None,
    }
}

async fn signing_keys_list_oldest_first_and_retire_once(backend: Backend) {
    let h = harness(backend).await;
    assert_eq!(h.store.list_signing_keys().await.unwrap(), vec![]);
    let (middle, newest, oldest) = (
        signing_key("k-middle", 2),
        signing_key("k-newest", 1),
        signing_key("k-oldest", 3),
    );
    for key in [&middle, &newest, &oldest] {
        h.store.insert_signing_key(key.clone()).await.unwrap();
    }
    let listed = h.store.list_signing_keys().await.unwrap();
    assert_eq!(listed, vec![oldest.clone(), middle.clone(), newest.clone()]);

    let at = now();
    h.store.retire_signing_key("k-middle", at).await.unwrap();
    h.store
        .retire_signing_key("k-middle", at + hours(1))
        .await
        .unwrap();
    let retired = SigningKeyRecord {
        retired_at: Some(at),
        ..middle
    };
    let listed = h.store.list_signing_keys().await.unwrap();
    assert_eq!(listed, vec![oldest, retired, newest]);
    let unknown = h.store.retire_signing_key("k-unknown", at).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

async fn a_taken_kid_is_a_conflict(backend: Backend) {
    let h = harness(backend).await;
    let key = signing_key("k-1", 0);
    h.store.insert_signing_key(key.clone()).await.unwrap();
    let err = h
        .store
        .insert_signing_key(signing_key("k-1", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(h.store.list_signing_keys().await.unwrap(), vec![key]);
}

async fn a_challenge_is_consumed_once(backend: Backend) {
    let h = harness(backend).await;
    let issued = challenge(TimeDelta::minutes(5));
    h.store.create_challenge(issued.clone()).await.unwrap();
    let at = now();
    let consumed = h.store.consume_challenge(issued.id, at).await.unwrap();
    let spent = ChallengeRecord {
        used_at: Some(at),
        ..issued.clone()
    };
    assert_eq!(consumed, Some(spent));
    let again = h.store.consume_challenge(issued.id, at).await.unwrap();
    assert_eq!(again, None);
    let unknown = h.store.consume_challenge(ChallengeId::new(), at).await;
    assert_eq!(unknown.unwrap(), None);
    let dup = h.store.create_challenge(issued).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
}

async fn an_expired_challenge_cannot_be_consumed(backend: Backend) {
    let h = harness(backend).await;
    let issued = challenge(TimeDelta::minutes(5));
    h.store.create_challenge(issued.clone()).await.unwrap();
    let late = issued.expires_at + TimeDelta::seconds(1);
    assert_eq!(
        h.store.consume_challenge(issued.id, late).await.unwrap(),
        None
    );
    let at_expiry = h.store.consume_challenge(issued.id, issued.expires_at);
    assert_eq!(at_expiry.await.unwrap(), None);
    // Still unused: an earlier clock may consume it.
    let in_time = issued.expires_at - TimeDelta::seconds(1);
    let consumed = h.store.consume_challenge(issued.id, in_time).await.unwrap();
    assert_eq!(consumed.unwrap().used_at, Some(in_time));
}

async fn concurrent_consumers_of_a_challenge_have_exactly_one_winner(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let issued = challenge(TimeDelta::minutes(5));
    h.store.create_challenge(issued.clone()).await.unwrap();
    let (id, at) = (issued.id, now());
    let results = race(|_| {
        let store = h.store.clone();
        async move { store.consume_challenge(id, at).await }
    })
    .await;
    let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    let winners: Vec<_> = results.iter().flatten().collect();
    let spent = ChallengeRecord {
        used_at: Some(at),
        ..issued
    };
    assert_eq!(winners, vec![&spent], "{results:?}");
}

async fn failures_count_up_within_the_window_and_restart_after_it(backend: Backend) {
    let h = harness(backend).await;
    let (key, window) = ("acct:a@example.com", 300);
    assert_eq!(h.store.failure_count(key).await.unwrap(), None);
    let t0 = now();
    let first = h.store.record_failure(key, t0, window).await.unwrap();
    assert_eq!(
        first,
        FailureCount {
            failures: 1,
            window_start: t0,
            last_failure: t0
        }
    );
    let t1 = t0 + TimeDelta::seconds(window);
    let second = h.store.record_failure(key, t1, window).await.unwrap();
    assert_eq!(
        second,
        FailureCount {
            failures: 2,
            window_start: t0,
            last_failure: t1
        }
    );
    assert_eq!(h.store.failure_count(key).await.unwrap(), Some(second));
    let other = h.store.record_failure("ip:203.0.113.7", t1, window).await;
    assert_eq!(other.unwrap().failures, 1);

    let t2 = t1 + TimeDelta::seconds(1);
    let restarted = h.store.record_failure(key, t2, window).await.unwrap();
    assert_eq!(
        restarted,
        FailureCount {
            failures: 1,
            window_start: t2,
            last_failure: t2
        }
    );

    h.store.clear_failures(key).await.unwrap();
    assert_eq!(h.store.failure_count(key).await.unwrap(), None);
    h.store.clear_failures(key).await.unwrap();
    let ip = h.store.failure_count("ip:203.0.113.7").await.unwrap();
    assert_eq!(ip.unwrap().failures, 1);
}

async fn concurrent_failures_are_each_counted(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let at = now();
    let results = race(|_| {
        let store = h.store.clone();
        async move { store.record_failure("acct:b@example.com", at, 300).await }
    })
    .await;
    let mut counts: Vec<i64> = results.into_iter().map(|r| r.unwrap().failures).collect();
    counts.sort_unstable();
    let expected: Vec<i64> = (1..=CALLERS as i64).collect();
    assert_eq!(counts, expected);
    let total = h.store.failure_count("acct:b@example.com").await.unwrap();
    let full = FailureCount {
        failures: CALLERS as i64,
        window_start: at,
        last_failure: at,
    };
    assert_eq!(total, Some(full));
}

on_both_backends!(
    signing_keys_list_oldest_first_and_retire_once,
    a_taken_kid_is_a_conflict,
    a_challenge_is_consumed_once,
    an_expired_challenge_cannot_be_consumed,
    concurrent_consumers_of_a_challenge_have_exactly_one_winner,
    failures_count_up_within_the_window_and_restart_after_it,
    concurrent_failures_are_each_counted,
);
