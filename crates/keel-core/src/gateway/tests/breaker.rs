//! The circuit breaker state machine, on a clock driven by hand.

use std::time::{Duration, Instant};

use crate::gateway::breaker::*;

const CONFIG: BreakerConfig = BreakerConfig {
    failure_rate_percent: 50,
    window: Duration::from_secs(10),
    min_calls: 4,
    open_for: Duration::from_secs(5),
    probes: 2,
};

/// A breaker and a clock driven by hand.
struct Rig {
    breaker: Breaker,
    t0: Instant,
    now: Instant,
}

impl Rig {
    fn new(config: BreakerConfig) -> Self {
        let t0 = Instant::now();
        Self {
            breaker: Breaker::new(config, t0),
            t0,
            now: t0,
        }
    }

    fn at(&mut self, ms: u64) {
        self.now = self.t0 + Duration::from_millis(ms);
    }

    fn call(&mut self, result: CallResult) -> Option<BreakerState> {
        let permit = self.breaker.try_acquire(self.now).expect("admitted");
        self.breaker.record(permit, result, self.now)
    }

    fn state(&mut self) -> BreakerState {
        self.breaker.state(self.now)
    }
}

#[test]
fn a_closed_breaker_opens_at_the_failure_rate_once_it_has_enough_calls() {
    let mut rig = Rig::new(CONFIG);
    // Three failures: 100% but below min_calls.
    for _ in 0..3 {
        assert_eq!(rig.call(CallResult::Failure), None);
    }
    assert_eq!(rig.state(), BreakerState::Closed);
    // The fourth outcome reaches min_calls at 4/4 failures.
    assert_eq!(rig.call(CallResult::Failure), Some(BreakerState::Open));
    assert_eq!(rig.state(), BreakerState::Open);
    assert!(rig.breaker.try_acquire(rig.now).is_none());
}

#[test]
fn a_failure_rate_below_the_threshold_keeps_it_closed() {
    let mut rig = Rig::new(CONFIG);
    // 1 failure in 3 (33%) stays closed however many calls.
    for _ in 0..10 {
        rig.call(CallResult::Success);
        rig.call(CallResult::Success);
        assert_eq!(rig.call(CallResult::Failure), None);
    }
    assert_eq!(rig.state(), BreakerState::Closed);
    assert_eq!(rig.breaker.window_counts(rig.now), (10, 30));
}

#[test]
fn exactly_the_threshold_opens_it() {
    let mut rig = Rig::new(CONFIG);
    rig.call(CallResult::Success);
    rig.call(CallResult::Success);
    rig.call(CallResult::Failure);
    assert_eq!(rig.call(CallResult::Failure), Some(BreakerState::Open));
}

#[test]
fn ignored_outcomes_count_neither_way() {
    let mut rig = Rig::new(CONFIG);
    for _ in 0..10 {
        rig.call(CallResult::Ignored);
    }
    assert_eq!(rig.breaker.window_counts(rig.now), (0, 0));
    for _ in 0..3 {
        rig.call(CallResult::Failure);
    }
    assert_eq!(rig.state(), BreakerState::Closed);
}

#[test]
fn old_outcomes_leave_the_rolling_window() {
    let mut rig = Rig::new(CONFIG);
    for _ in 0..3 {
        rig.call(CallResult::Failure);
    }
    // Ten seconds later those three are out of the window: one more failure is 1/1,
    // below min_calls.
    rig.at(10_500);
    assert_eq!(rig.call(CallResult::Failure), None);
    assert_eq!(rig.breaker.window_counts(rig.now), (1, 1));
    assert_eq!(rig.state(), BreakerState::Closed);
    // Within the window they add up.
    rig.at(11_000);
    rig.call(CallResult::Failure);
    rig.call(CallResult::Failure);
    assert_eq!(rig.call(CallResult::Failure), Some(BreakerState::Open));
}

#[test]
fn an_open_breaker_turns_half_open_after_its_open_duration() {
    let mut rig = Rig::new(CONFIG);
    for _ in 0..4 {
        rig.call(CallResult::Failure);
    }
    rig.at(4_999);
    assert_eq!(rig.state(), BreakerState::Open);
    assert!(!rig.breaker.would_admit(rig.now));
    rig.at(5_000);
    assert!(rig.breaker.would_admit(rig.now));
    assert_eq!(rig.state(), BreakerState::HalfOpen);
}

#[test]
fn half_open_admits_only_its_probes_and_closes_when_they_succeed() {
    let mut rig = Rig::new(CONFIG);
    for _ in 0..4 {
        rig.call(CallResult::Failure);
    }
    rig.at(5_000);
    let a = rig.breaker.try_acquire(rig.now).unwrap();
    let b = rig.breaker.try_acquire(rig.now).unwrap();
    assert!(a.is_probe() && b.is_probe());
    assert!(
        rig.breaker.try_acquire(rig.now).is_none(),
        "two probes only"
    );
    assert!(!rig.breaker.would_admit(rig.now));
    assert_eq!(rig.breaker.record(a, CallResult::Success, rig.now), None);
    // One success of two: still half-open, and the finished probe's slot is not reused.
    assert!(rig.breaker.try_acquire(rig.now).is_none());
    assert_eq!(
        rig.breaker.record(b, CallResult::Success, rig.now),
        Some(BreakerState::Closed)
    );
    assert_eq!(rig.state(), BreakerState::Closed);
    // Closing starts from an empty window.
    assert_eq!(rig.breaker.window_counts(rig.now), (0, 0));
    for _ in 0..3 {
        rig.call(CallResult::Failure);
    }
    assert_eq!(rig.state(), BreakerState::Closed);
}

#[test]
fn a_failed_probe_opens_it_again_for_a_full_period() {
    let mut rig = Rig::new(CONFIG);
    for _ in 0..4 {
        rig.call(CallResult::Failure);
    }
    rig.at(6_000);
    let a = rig.breaker.try_acquire(rig.now).unwrap();
    let b = rig.breaker.try_acquire(rig.now).unwrap();
    assert_eq!(
        rig.breaker.record(a, CallResult::Failure, rig.now),
        Some(BreakerState::Open)
    );
    // The other probe's late success belongs to the old half-open period: ignored.
    assert_eq!(rig.breaker.record(b, CallResult::Success, rig.now), None);
    rig.at(10_999);
    assert_eq!(rig.state(), BreakerState::Open);
    rig.at(11_000);
    assert_eq!(rig.state(), BreakerState::HalfOpen);
}

#[test]
fn an_ignored_probe_gives_its_slot_back() {
    let mut rig = Rig::new(BreakerConfig {
        probes: 1,
        ..CONFIG
    });
    for _ in 0..4 {
        rig.call(CallResult::Failure);
    }
    rig.at(5_000);
    let probe = rig.breaker.try_acquire(rig.now).unwrap();
    assert!(rig.breaker.try_acquire(rig.now).is_none());
    assert_eq!(
        rig.breaker.record(probe, CallResult::Ignored, rig.now),
        None
    );
    let probe = rig.breaker.try_acquire(rig.now).unwrap();
    assert_eq!(
        rig.breaker.record(probe, CallResult::Success, rig.now),
        Some(BreakerState::Closed)
    );
}

#[test]
fn outcomes_of_calls_admitted_before_a_change_are_ignored() {
    let mut rig = Rig::new(CONFIG);
    let slow = rig.breaker.try_acquire(rig.now).unwrap();
    for _ in 0..4 {
        rig.call(CallResult::Failure);
    }
    assert_eq!(rig.state(), BreakerState::Open);
    rig.at(5_000);
    assert_eq!(rig.state(), BreakerState::HalfOpen);
    // The slow call admitted while closed ends now: it is not a probe result.
    assert_eq!(rig.breaker.record(slow, CallResult::Success, rig.now), None);
    assert_eq!(rig.state(), BreakerState::HalfOpen);
}

#[test]
fn gauge_values_are_stable() {
    assert_eq!(BreakerState::Closed.gauge(), 0.0);
    assert_eq!(BreakerState::HalfOpen.gauge(), 1.0);
    assert_eq!(BreakerState::Open.gauge(), 2.0);
    assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
}
