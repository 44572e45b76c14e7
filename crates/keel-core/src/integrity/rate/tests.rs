#![allow(clippy::unwrap_used)]
use super::*;

const SEC: u64 = 1_000_000;
/// An arbitrary "now" far from zero, like a Unix time in microseconds.
const T0: u64 = 1_700_000_000 * SEC;

fn rate(requests: u32, per_secs: u64, burst: u32) -> Rate {
    Rate::new(requests, Duration::from_secs(per_secs), burst).unwrap()
}

/// Sends requests at the given instants, storing TATs like a backend; returns the verdicts.
fn run(rate: &Rate, instants: &[u64]) -> Vec<Verdict> {
    let mut stored = None;
    instants
        .iter()
        .map(|&now| {
            let v = check(stored, now, rate);
            if v.allowed {
                stored = Some(v.tat);
            }
            v
        })
        .collect()
}

#[test]
fn zero_requests_or_burst_is_no_rate() {
    assert!(Rate::new(0, Duration::from_secs(1), 1).is_none());
    assert!(Rate::new(1, Duration::from_secs(1), 0).is_none());
}

#[test]
fn emission_interval_is_the_period_over_requests_rounded_down() {
    let r = rate(3, 1, 3);
    assert_eq!(r.emission_micros(), 333_333);
    assert_eq!(r.tolerance_micros(), 999_999);
    assert_eq!(r.burst(), 3);
    let fine = Rate::new(1_000, Duration::from_micros(10), 1).unwrap();
    assert_eq!(fine.emission_micros(), 1, "never below one microsecond");
}

#[test]
fn huge_periods_and_bursts_saturate_instead_of_overflowing() {
    let r = Rate::new(1, Duration::from_secs(u64::MAX), u32::MAX).unwrap();
    assert_eq!(r.emission_micros(), MAX_MICROS);
    assert_eq!(r.tolerance_micros(), MAX_MICROS);
    let v = check(None, u64::MAX, &r);
    assert!(v.allowed);
    let v = check(Some(u64::MAX), u64::MAX, &r);
    assert!(v.tat <= MAX_MICROS * 2);
}

#[test]
fn a_fresh_key_admits_exactly_the_burst_at_once() {
    for burst in [1, 2, 10, 100, 1_000] {
        let r = rate(100, 3_600, burst);
        let verdicts = run(&r, &vec![T0; burst as usize + 5]);
        let admitted = verdicts.iter().filter(|v| v.allowed).count();
        assert_eq!(admitted, burst as usize, "burst {burst}");
        assert!(verdicts[..burst as usize].iter().all(|v| v.allowed));
    }
}

#[test]
fn remaining_counts_down_from_burst_minus_one() {
    let r = rate(10, 60, 4);
    let remaining: Vec<u32> = run(&r, &[T0; 6]).iter().map(|v| v.remaining).collect();
    assert_eq!(remaining, [3, 2, 1, 0, 0, 0]);
}

#[test]
fn one_request_is_earned_back_per_emission_interval() {
    // 60 per minute, burst 2: one request per second once the burst is spent.
    let r = rate(60, 60, 2);
    let verdicts = run(&r, &[T0, T0, T0, T0 + SEC, T0 + SEC, T0 + 2 * SEC]);
    let allowed: Vec<bool> = verdicts.iter().map(|v| v.allowed).collect();
    assert_eq!(allowed, [true, true, false, true, false, true]);
}

#[test]
fn the_boundary_is_admitted_and_a_microsecond_earlier_is_not() {
    let r = rate(1, 10, 1);
    let first = check(None, T0, &r);
    assert_eq!(first.tat, T0 + 10 * SEC);
    let early = check(Some(first.tat), T0 + 10 * SEC - 1, &r);
    assert!(!early.allowed);
    assert_eq!(early.retry_after_micros, 1);
    let on_time = check(Some(first.tat), T0 + 10 * SEC, &r);
    assert!(on_time.allowed);
}

#[test]
fn retry_after_is_exactly_the_wait_until_the_next_admission() {
    let r = rate(10, 60, 3);
    let mut stored = None;
    for _ in 0..3 {
        stored = Some(check(stored, T0, &r).tat);
    }
    let refused = check(stored, T0, &r);
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after_micros, 6 * SEC);
    assert!(!check(stored, T0 + refused.retry_after_micros - 1, &r).allowed);
    assert!(check(stored, T0 + refused.retry_after_micros, &r).allowed);
}

#[test]
fn reset_is_the_time_until_the_full_burst_is_back() {
    let r = rate(10, 60, 5);
    let v = run(&r, &[T0, T0]);
    assert_eq!(v[0].reset_micros, 6 * SEC);
    assert_eq!(v[1].reset_micros, 12 * SEC);
    // After the reset the whole burst is available again.
    let after = check(Some(v[1].tat), T0 + v[1].reset_micros, &r);
    assert_eq!(after.remaining, 4);
    let refused = run(&r, &[T0; 6])[5];
    assert_eq!((refused.allowed, refused.reset_micros), (false, 30 * SEC));
}

#[test]
fn burst_may_exceed_or_undercut_the_sustained_rate() {
    let wide = rate(2, 60, 10);
    assert_eq!(
        run(&wide, &[T0; 12]).iter().filter(|v| v.allowed).count(),
        10
    );
    let narrow = rate(100, 60, 1);
    let spaced: Vec<u64> = (0..5).map(|i| T0 + i * 600_000).collect();
    assert!(run(&narrow, &spaced).iter().all(|v| v.allowed));
    let cramped: Vec<u64> = (0..5).map(|i| T0 + i * 599_999).collect();
    let admitted = run(&narrow, &cramped).iter().filter(|v| v.allowed).count();
    assert!(admitted < 5);
}

#[test]
fn a_huge_gap_restores_the_burst_and_no_more() {
    let r = rate(10, 60, 3);
    let mut instants = vec![T0; 3];
    instants.extend([T0 + 1_000_000 * SEC; 5]);
    let verdicts = run(&r, &instants);
    let later = &verdicts[3..];
    assert_eq!(later.iter().filter(|v| v.allowed).count(), 3);
    assert_eq!(later[0].remaining, 2);
    let from_epoch = check(Some(0), u64::MAX / 2, &r);
    assert!(from_epoch.allowed);
}

#[test]
fn time_going_backwards_never_locks_a_caller_out() {
    let r = rate(10, 60, 3);
    // A TAT set by a clock an hour ahead is discarded, not waited out.
    let ahead = Some(T0 + 3_600 * SEC);
    let v = check(ahead, T0, &r);
    assert!(v.allowed);
    assert_eq!((v.tat, v.remaining), (T0 + r.emission_micros(), 2));
    // A full bucket set by the same clock is still full: the boundary holds.
    let full = Some(T0 + r.tolerance_micros());
    assert!(!check(full, T0, &r).allowed);
    // A small step backwards costs at most the step.
    let verdicts = run(&r, &[T0, T0 - 5]);
    assert!(verdicts.iter().all(|v| v.allowed));
    let stored = Some(verdicts[1].tat);
    let refused = check(stored, T0 - 10, &r);
    assert_eq!((refused.allowed, refused.retry_after_micros), (false, 10));
    assert!(check(stored, T0, &r).allowed);
    assert!(check(None, 0, &r).allowed, "time zero is a valid instant");
}

#[test]
fn sustained_overload_admits_the_burst_plus_the_rate() {
    // 10 per second, burst 5, hammered every 10 ms for 10 s.
    let r = rate(10, 1, 5);
    let instants: Vec<u64> = (0..1_000).map(|i| T0 + i * 10_000).collect();
    let admitted = run(&r, &instants).iter().filter(|v| v.allowed).count();
    // 5 at once, then one per 100 ms over the remaining 9.99 s.
    assert_eq!(admitted, 5 + 99);
}

#[test]
fn peek_reports_state_without_consuming() {
    let r = rate(10, 60, 3);
    assert_eq!(peek(None, T0, &r).remaining, 3);
    let tat = check(None, T0, &r).tat;
    let stored = Some(tat);
    let p = peek(stored, T0, &r);
    assert_eq!((p.allowed, p.remaining, p.tat), (true, 2, tat));
    assert_eq!(peek(stored, T0, &r), peek(stored, T0, &r));
    let full = Some(T0 + r.tolerance_micros());
    let p = peek(full, T0, &r);
    assert_eq!((p.allowed, p.remaining), (false, 0));
    assert_eq!(p.retry_after_micros, r.emission_micros());
}

#[test]
fn all_limits_admitting_commits_every_one() {
    let (a, b) = (rate(10, 60, 5), rate(100, 60, 50));
    let out = check_all(&[(None, a), (None, b)], T0);
    assert!(out.allowed);
    assert_eq!(out.verdicts[0].tat, T0 + a.emission_micros());
    assert_eq!(out.verdicts[1].tat, T0 + b.emission_micros());
    assert_eq!(out.most_restrictive(), Some(0));
    assert_eq!(out.blocking(), None);
}

#[test]
fn a_later_refusal_consumes_nothing_from_earlier_limits() {
    let roomy = rate(100, 60, 10);
    let tight = rate(1, 3_600, 1);
    let tight_full = Some(T0 + tight.tolerance_micros());
    let roomy_tat = check(None, T0, &roomy).tat;
    let roomy_used = Some(roomy_tat);
    let out = check_all(&[(roomy_used, roomy), (tight_full, tight)], T0);
    assert!(!out.allowed);
    // The roomy limit reports its state as it was: one used, nine left, TAT unchanged.
    assert_eq!(out.verdicts[0], peek(roomy_used, T0, &roomy));
    assert_eq!(out.verdicts[0].remaining, 9);
    assert_eq!(out.verdicts[0].tat, roomy_tat);
    assert_eq!(out.blocking(), Some(1));
    // Many refused attempts later the roomy limit is still untouched.
    for _ in 0..50 {
        assert!(!check_all(&[(roomy_used, roomy), (tight_full, tight)], T0).allowed);
    }
    let alone = check_all(&[(roomy_used, roomy)], T0);
    assert_eq!(alone.verdicts[0].remaining, 8);
}

#[test]
fn the_longest_wait_blocks_and_the_fewest_remaining_is_advertised() {
    let a = rate(1, 10, 1);
    let b = rate(1, 100, 1);
    let c = rate(100, 1, 100);
    let full = |r: &Rate| Some(T0 + r.tolerance_micros());
    let out = check_all(&[(full(&a), a), (full(&b), b), (None, c)], T0);
    assert_eq!(out.blocking(), Some(1));
    assert_eq!(
        out.most_restrictive(),
        Some(1),
        "ties on remaining go to the longer reset"
    );
    assert!(check_all(&[], T0).allowed);
    assert_eq!(check_all(&[], T0).most_restrictive(), None);
}

#[test]
fn seconds_round_up() {
    assert_eq!(ceil_secs(0), 0);
    assert_eq!(ceil_secs(1), 1);
    assert_eq!(ceil_secs(SEC), 1);
    assert_eq!(ceil_secs(SEC + 1), 2);
}

#[test]
fn a_weighted_request_consumes_its_cost_in_cells() {
    // 1000 tokens per minute: 600 at once, then 400, then nothing until time passes.
    let budget = rate(1000, 60, 1000);
    let first = check(None, T0, &budget.weighted(600));
    assert!(first.allowed);
    let second = check(Some(first.tat), T0, &budget.weighted(400));
    assert!(second.allowed);
    let third = check(Some(second.tat), T0, &budget.weighted(1));
    assert!(!third.allowed);
    // 60 ms earns one token back.
    let later = check(Some(second.tat), T0 + 60_000, &budget.weighted(1));
    assert!(later.allowed);
}

#[test]
fn a_cost_above_the_burst_is_charged_as_the_whole_burst() {
    let budget = rate(100, 60, 100);
    let huge = check(None, T0, &budget.weighted(1_000_000));
    assert!(huge.allowed);
    assert_eq!(huge.tat, T0 + 60 * SEC);
    assert_eq!(budget.weighted(0), budget.weighted(1));
}

#[test]
fn adjusting_refunds_or_charges_within_now_and_the_tolerance() {
    let budget = rate(1000, 60, 1000);
    let charged = check(None, T0, &budget.weighted(1000)).tat;
    // Refund 900 tokens: 900 × 60 ms earlier.
    let refunded = adjust(Some(charged), T0, &budget, -(900 * 60_000));
    assert_eq!(refunded, T0 + 100 * 60_000);
    assert!(check(Some(refunded), T0, &budget.weighted(900)).allowed);
    // A refund never earns more than an idle caller has.
    assert_eq!(adjust(Some(charged), T0, &budget, -(i64::MAX)), T0);
    // An extra charge is capped at the tolerance.
    assert_eq!(adjust(None, T0, &budget, i64::MAX), T0 + 60 * SEC);
}
