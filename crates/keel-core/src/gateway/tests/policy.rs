//! The retry / fallback decision after a failed attempt.

use std::time::Duration;

use crate::gateway::policy::*;

fn policy() -> Policy {
    Policy {
        attempts: 3,
        ..Policy::default()
    }
}

fn failed(class: FailureClass, attempt: u32, has_next: bool) -> Failed {
    Failed {
        class,
        retry_after: None,
        attempt,
        has_next,
        remaining: Duration::from_secs(60),
    }
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn request_faults_are_final_whatever_is_left() {
    for has_next in [false, true] {
        let f = failed(FailureClass::Final, 1, has_next);
        assert_eq!(policy().decide(&f, u64::MAX), Decision::Fail);
    }
}

#[test]
fn a_refused_key_falls_back_without_retrying() {
    let p = policy();
    let f = failed(FailureClass::Deployment, 1, true);
    assert_eq!(p.decide(&f, 0), Decision::FallBack);
    let f = failed(FailureClass::Deployment, 1, false);
    assert_eq!(p.decide(&f, 0), Decision::Fail);
}

#[test]
fn transient_failures_retry_with_full_jitter_then_fall_back() {
    let p = policy();
    // Attempt 1 failed: first retry, ceiling = base (200ms); attempt 2: 400ms.
    let f = failed(FailureClass::Transient, 1, true);
    assert_eq!(p.decide(&f, u64::MAX), Decision::Retry { after: MS(200) });
    assert_eq!(p.decide(&f, 0), Decision::Retry { after: MS(0) });
    let f = failed(FailureClass::Transient, 2, true);
    assert_eq!(p.decide(&f, u64::MAX), Decision::Retry { after: MS(400) });
    // Attempts exhausted.
    let f = failed(FailureClass::Transient, 3, true);
    assert_eq!(p.decide(&f, u64::MAX), Decision::FallBack);
    let f = failed(FailureClass::Transient, 3, false);
    assert_eq!(p.decide(&f, u64::MAX), Decision::Fail);
}

#[test]
fn one_attempt_means_no_retry() {
    let p = Policy {
        attempts: 1,
        ..Policy::default()
    };
    let f = failed(FailureClass::Transient, 1, true);
    assert_eq!(p.decide(&f, 0), Decision::FallBack);
}

#[test]
fn a_rate_limit_falls_back_first_and_waits_only_on_the_last_deployment() {
    let p = policy();
    let mut f = failed(FailureClass::RateLimited, 1, true);
    f.retry_after = Some(Duration::from_secs(2));
    assert_eq!(p.decide(&f, 0), Decision::FallBack);
    f.has_next = false;
    assert_eq!(
        p.decide(&f, u64::MAX),
        Decision::Retry {
            after: Duration::from_secs(2)
        }
    );
}

#[test]
fn retry_after_is_waited_exactly_on_every_attempt_never_multiplied() {
    let p = Policy {
        attempts: 5,
        ..Policy::default()
    };
    for attempt in 1..5 {
        for class in [FailureClass::RateLimited, FailureClass::Transient] {
            let mut f = failed(class, attempt, false);
            f.retry_after = Some(MS(1_500));
            assert_eq!(p.decide(&f, u64::MAX), Decision::Retry { after: MS(1_500) });
        }
    }
    // Retry-After 0 (or a date in the past): retry at once.
    let mut f = failed(FailureClass::RateLimited, 1, false);
    f.retry_after = Some(Duration::ZERO);
    assert_eq!(p.decide(&f, u64::MAX), Decision::Retry { after: MS(0) });
}

#[test]
fn a_long_retry_after_on_a_server_error_falls_back_when_it_can() {
    let p = policy();
    let mut f = failed(FailureClass::Transient, 1, true);
    f.retry_after = Some(Duration::from_secs(30));
    assert_eq!(p.decide(&f, 0), Decision::FallBack);
    // Within the backoff's max, the same deployment is retried after exactly that.
    f.retry_after = Some(Duration::from_secs(5));
    assert_eq!(
        p.decide(&f, 0),
        Decision::Retry {
            after: Duration::from_secs(5)
        }
    );
    // On the last deployment a long one is honoured while the deadline allows.
    f.retry_after = Some(Duration::from_secs(30));
    f.has_next = false;
    assert_eq!(
        p.decide(&f, 0),
        Decision::Retry {
            after: Duration::from_secs(30)
        }
    );
}

#[test]
fn a_wait_beyond_the_deadline_falls_back_or_fails_at_once() {
    let p = policy();
    let mut f = failed(FailureClass::RateLimited, 1, false);
    f.retry_after = Some(Duration::from_secs(30));
    f.remaining = Duration::from_secs(10);
    assert_eq!(p.decide(&f, 0), Decision::Fail);
    let mut f = failed(FailureClass::Transient, 1, true);
    f.retry_after = Some(Duration::from_secs(30));
    f.remaining = Duration::from_secs(10);
    assert_eq!(p.decide(&f, 0), Decision::FallBack);
    // A jittered wait equal to what is left is not taken either.
    let mut f = failed(FailureClass::Transient, 1, false);
    f.remaining = MS(200);
    assert_eq!(p.decide(&f, u64::MAX), Decision::Fail);
    assert_eq!(p.decide(&f, 0), Decision::Retry { after: MS(0) });
}

#[test]
fn defaults_are_sane() {
    let p = Policy::default();
    assert_eq!(p.attempts, 2);
    assert!(p.backoff.base < p.backoff.max);
    assert!(p.attempt_timeout <= p.total_timeout);
    assert!(p.ttft_timeout <= p.attempt_timeout);
    assert_eq!(p.breaker.failure_rate_percent, 50);
}
