#![allow(clippy::unwrap_used)]
use chrono::{TimeDelta, TimeZone, Utc};

use super::*;
use crate::manifest::DurationSpec;

fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap()
}

fn event(kind: EventKind, day: u32) -> StoreEvent {
    StoreEvent {
        provider: "appstore",
        event_id: "e".into(),
        event_type: "X".into(),
        kind,
        user: None,
        products: vec!["pro.monthly".into()],
        provider_ref: "1000".into(),
        event_at: t(day),
        period_start: None,
        period_end: None,
        grace_until: None,
    }
}

fn pro(grace_days: Option<u64>) -> StoreProduct {
    StoreProduct {
        plan: "pro".into(),
        addons: vec![],
        grace: grace_days.and_then(|d| DurationSpec::from_secs(d * 86_400)),
    }
}

#[test]
fn a_purchase_grants_the_product_plan_for_the_period_it_names() {
    let e = StoreEvent {
        period_start: Some(t(1)),
        period_end: Some(t(29)),
        ..event(EventKind::Purchased, 1)
    };
    let s = next_state(None, &e, Some(&pro(None))).unwrap();
    assert_eq!(
        (
            s.plan.as_str(),
            s.status.as_str(),
            s.period_start,
            s.period_end
        ),
        ("pro", "active", t(1), t(29))
    );
    let google = next_state(None, &event(EventKind::Purchased, 1), Some(&pro(None))).unwrap();
    assert_eq!(google.period_end, t(1) + DEFAULT_PERIOD);
}

#[test]
fn payment_failure_keeps_the_plan_through_grace_or_locks_it_now() {
    let cur = SubState {
        plan: "pro".into(),
        addons: vec![],
        status: "active".into(),
        period_start: t(1),
        period_end: t(10),
    };
    let failed = event(EventKind::PaymentFailed { grace: true }, 10);
    let g = next_state(Some(&cur), &failed, Some(&pro(Some(3)))).unwrap();
    assert_eq!((g.status.as_str(), g.period_end), ("grace", t(13)));
    let apple = StoreEvent {
        grace_until: Some(t(16)),
        ..failed.clone()
    };
    assert_eq!(
        next_state(Some(&cur), &apple, None).unwrap().period_end,
        t(16)
    );
    let locked = next_state(Some(&cur), &failed, Some(&pro(None))).unwrap();
    assert_eq!(
        (locked.status.as_str(), locked.period_end),
        ("past_due", t(10))
    );
    let retry = event(EventKind::PaymentFailed { grace: false }, 10);
    assert_eq!(
        next_state(Some(&cur), &retry, Some(&pro(Some(3))))
            .unwrap()
            .status,
        "past_due"
    );
}

#[test]
fn cancellation_keeps_the_plan_to_period_end_and_expiry_or_refund_ends_it() {
    let cur = SubState {
        plan: "pro".into(),
        addons: vec![],
        status: "active".into(),
        period_start: t(1),
        period_end: t(28),
    };
    let c = next_state(Some(&cur), &event(EventKind::CancelAtPeriodEnd, 5), None).unwrap();
    assert_eq!(
        (c.status.as_str(), c.period_end, c.plan.as_str()),
        ("active", t(28), "pro")
    );
    let e = next_state(Some(&cur), &event(EventKind::Expired, 28), None).unwrap();
    assert_eq!((e.status.as_str(), e.period_end), ("expired", t(28)));
    let r = next_state(Some(&cur), &event(EventKind::Revoked, 6), None).unwrap();
    assert_eq!((r.status.as_str(), r.period_end), ("canceled", t(6)));
}

#[test]
fn an_event_without_a_mapped_product_needs_a_current_subscription() {
    let err = next_state(None, &event(EventKind::Renewed, 1), None).unwrap_err();
    assert!(err.to_string().contains("pro.monthly"), "{err}");
    let cur = SubState {
        plan: "max".into(),
        addons: vec![],
        status: "active".into(),
        period_start: t(1),
        period_end: t(2),
    };
    let s = next_state(Some(&cur), &event(EventKind::Renewed, 2), None).unwrap();
    assert_eq!(s.plan, "max");
    assert_eq!(s.period_end, t(2) + TimeDelta::days(30));
}
