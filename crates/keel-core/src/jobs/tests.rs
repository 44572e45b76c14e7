#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{TimeDelta, TimeZone, Utc};

use super::*;
use crate::manifest::parse_str;
use crate::manifest::{Actor, JobType};

fn iama() -> JobType {
    let src = include_str!("../../../../examples/iama.toml");
    let loaded = parse_str(src, "iama.toml").unwrap();
    loaded.manifest.jobs["refactor"].clone()
}

fn demo() -> JobType {
    crate::manifest::demo().unwrap().manifest.jobs["task"].clone()
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn facts<'a>(from: Option<&'a str>, to: &'a str, reason: Option<&'a str>) -> EntryFacts<'a> {
    EntryFacts {
        from,
        to,
        reason,
        reserved: true,
        committed: false,
        now: t0(),
    }
}

#[test]
fn an_invalid_transition_lists_the_allowed_targets() {
    let job = iama();
    let err = check_transition(&job, "ANALYZING", "DELIVERED", Actor::Service).unwrap_err();
    assert_eq!(err.code(), "invalid_transition");
    let JobError::InvalidTransition { allowed, .. } = err else {
        panic!("expected invalid_transition");
    };
    assert_eq!(
        allowed,
        vec!["GENERATING_ANALYSIS_REPORT", "WAITING_STRATEGY", "FAILED"]
    );
}

#[test]
fn a_user_transition_is_refused_to_the_service() {
    let job = iama();
    assert!(check_transition(&job, "PENDING", "ANALYZING", Actor::User).is_ok());
    let err = check_transition(&job, "PENDING", "ANALYZING", Actor::Service).unwrap_err();
    assert_eq!(err.code(), "invalid_transition");
}

#[test]
fn a_terminal_state_never_moves() {
    let job = iama();
    let err = check_transition(&job, "DELIVERED", "FAILED", Actor::Service).unwrap_err();
    assert_eq!(
        err,
        JobError::TerminalState {
            state: "DELIVERED".into()
        }
    );
    let err = check_action(&job, "FAILED", "cancel").unwrap_err();
    assert_eq!(err.code(), "terminal_state");
}

#[test]
fn actions_are_unknown_or_not_available_here() {
    let job = iama();
    assert_eq!(
        check_action(&job, "PENDING", "explode").unwrap_err().code(),
        "unknown_action"
    );
    let err = check_action(&job, "PENDING", "deep_fix").unwrap_err();
    let JobError::ActionNotAllowed { allowed, .. } = err else {
        panic!("expected action_not_allowed");
    };
    assert_eq!(allowed, vec!["start", "cancel", "force_terminate"]);
    let t = check_action(&job, "WAITING_INTERVENTION", "deep_fix").unwrap();
    assert_eq!(t.to, "DEEP_FIX_ACTIVE");
}

#[test]
fn entering_waiting_intervention_arms_its_30_minute_timeout() {
    let job = iama();
    let entry = enter(
        &job,
        facts(Some("SELF_HEALING"), "WAITING_INTERVENTION", None),
    );
    assert_eq!(
        entry.timers,
        vec![TimerSpec {
            kind: TimerKind::Timeout,
            fire_at: t0() + TimeDelta::minutes(30)
        }]
    );
    assert!(!entry.terminal);
    let fire = on_timer(
        &job,
        TimerKind::Timeout,
        "WAITING_INTERVENTION",
        "WAITING_INTERVENTION",
    )
    .unwrap();
    assert_eq!(
        (fire.to.as_str(), fire.reason.as_str()),
        ("FAILED", "intervention_timeout")
    );
    let escalation = enter(&job, facts(None, "WAITING_ESCALATION_DECISION", None));
    assert_eq!(escalation.timers[0].fire_at, t0() + TimeDelta::minutes(60));
}

#[test]
fn heartbeat_states_arm_the_loss_and_the_lost_state_arms_the_grace() {
    let job = iama();
    let entry = enter(&job, facts(Some("PENDING"), "ANALYZING", None));
    assert_eq!(
        entry.timers,
        vec![TimerSpec {
            kind: TimerKind::HeartbeatLost,
            fire_at: t0() + TimeDelta::seconds(90)
        }]
    );
    let fire = on_timer(&job, TimerKind::HeartbeatLost, "ANALYZING", "ANALYZING").unwrap();
    assert_eq!(fire.to, "CLIENT_HEARTBEAT_LOST");
    assert_eq!(fire.resume_state.as_deref(), Some("ANALYZING"));
    let lost = enter(
        &job,
        facts(Some("ANALYZING"), "CLIENT_HEARTBEAT_LOST", None),
    );
    assert_eq!(
        lost.timers,
        vec![TimerSpec {
            kind: TimerKind::HeartbeatExpire,
            fire_at: t0() + TimeDelta::seconds(300)
        }]
    );
    let expire = on_timer(
        &job,
        TimerKind::HeartbeatExpire,
        "CLIENT_HEARTBEAT_LOST",
        "CLIENT_HEARTBEAT_LOST",
    )
    .unwrap();
    assert_eq!(
        (expire.to.as_str(), expire.reason.as_str()),
        ("FAILED", "client_disconnected")
    );
}

#[test]
fn a_heartbeat_while_lost_resumes_and_otherwise_rearms() {
    let job = iama();
    assert_eq!(
        on_heartbeat(&job, "CLIENT_HEARTBEAT_LOST", Some("REFACTORING"), t0()),
        HeartbeatAction::Resume("REFACTORING".into())
    );
    assert_eq!(
        on_heartbeat(&job, "REFACTORING", None, t0()),
        HeartbeatAction::Rearm(vec![TimerSpec {
            kind: TimerKind::HeartbeatLost,
            fire_at: t0() + TimeDelta::seconds(90)
        }])
    );
    assert_eq!(
        on_heartbeat(&job, "WAITING_STRATEGY", None, t0()),
        HeartbeatAction::Rearm(Vec::new())
    );
}

#[test]
fn without_a_lost_state_the_heartbeat_expires_after_loss_plus_grace() {
    let job = demo();
    // interval 30 s → lost after 90 s, then 2 minutes of grace.
    assert_eq!(
        heartbeat_timers(&job, "running", t0()),
        vec![TimerSpec {
            kind: TimerKind::HeartbeatExpire,
            fire_at: t0() + TimeDelta::seconds(210)
        }]
    );
    assert!(heartbeat_timers(&job, "queued", t0()).is_empty());
}

#[test]
fn a_timer_for_a_state_the_job_left_does_nothing() {
    let job = iama();
    assert_eq!(
        on_timer(
            &job,
            TimerKind::Timeout,
            "WAITING_INTERVENTION",
            "SELF_HEALING"
        ),
        None
    );
}

#[test]
fn the_billing_checkpoint_commits_and_failures_before_it_release() {
    let job = iama();
    let start = EntryFacts {
        reserved: false,
        ..facts(Some("PENDING"), "ANALYZING", None)
    };
    assert_eq!(enter(&job, start).billing, BillingAction::Reserve);
    let checkpoint = facts(Some("WAITING_SPEC_APPROVAL"), "GENERATING_TESTS", None);
    assert_eq!(enter(&job, checkpoint).billing, BillingAction::Commit);
    let early_fail = facts(Some("ANALYZING"), "FAILED", Some("client_disconnected"));
    assert_eq!(enter(&job, early_fail).billing, BillingAction::Release);
    let late_fail = EntryFacts {
        committed: true,
        ..facts(Some("REFACTORING"), "FAILED", Some("client_disconnected"))
    };
    assert_eq!(enter(&job, late_fail).billing, BillingAction::None);
    let infra = EntryFacts {
        committed: true,
        ..facts(Some("REFACTORING"), "FAILED", Some("infra_failure"))
    };
    assert_eq!(enter(&job, infra).billing, BillingAction::Refund);
    let cancelled_unreserved = EntryFacts {
        reserved: false,
        ..facts(Some("PENDING"), "FAILED", Some("user_cancelled"))
    };
    assert_eq!(
        enter(&job, cancelled_unreserved).billing,
        BillingAction::None
    );
}

#[test]
fn a_terminal_commit_state_commits_unless_non_billable() {
    let job = demo();
    let ok = facts(Some("running"), "succeeded", None);
    assert_eq!(enter(&job, ok).billing, BillingAction::Commit);
    let timeout = facts(Some("queued"), "failed", Some("queue_timeout"));
    let entry = enter(&job, timeout);
    assert_eq!(entry.billing, BillingAction::Release);
    assert!(entry.terminal && entry.timers.is_empty());
}
