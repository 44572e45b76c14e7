//! Transition checks and the effects of entering a state.

use chrono::{DateTime, TimeDelta, Utc};

use super::{JobError, TimerKind, TimerSpec};
use crate::manifest::DurationSpec;
use crate::manifest::{Actor, JobType, ReserveOn, Transition};

/// What billing does around a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingAction {
    /// Nothing.
    None,
    /// Take the job's reservation before moving (reserve on start).
    Reserve,
    /// Commit the reservation (the billing checkpoint).
    Commit,
    /// Release the reservation: the job ended before its checkpoint, or is non-billable.
    Release,
    /// Refund a committed job that ended for a non-billable reason.
    Refund,
}

/// What the caller knows about the job when it enters a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryFacts<'a> {
    /// The state it leaves (`None` at creation).
    pub from: Option<&'a str>,
    /// The state it enters.
    pub to: &'a str,
    /// The reason of the move.
    pub reason: Option<&'a str>,
    /// Whether the job holds a reservation.
    pub reserved: bool,
    /// Whether that reservation was already committed.
    pub committed: bool,
    /// The move time.
    pub now: DateTime<Utc>,
}

/// The effects of entering a state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Whether the state is terminal.
    pub terminal: bool,
    /// Timers to arm; every other pending timer of the job is cancelled.
    pub timers: Vec<TimerSpec>,
    /// The billing action.
    pub billing: BillingAction,
}

/// What a fired timer does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerFire {
    /// The target state.
    pub to: String,
    /// The recorded reason.
    pub reason: String,
    /// Set when the job enters its heartbeat-lost state: where a heartbeat returns it.
    pub resume_state: Option<String>,
}

/// What a heartbeat does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeartbeatAction {
    /// Record it and re-arm these heartbeat timers.
    Rearm(Vec<TimerSpec>),
    /// The heartbeat was lost: move back to this state.
    Resume(String),
}

/// The states `by` may move a job to from `from`, in manifest order, without repeats.
pub fn allowed_targets(job: &JobType, from: &str, by: Actor) -> Vec<String> {
    if job.is_terminal(from) {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for t in job
        .transitions
        .iter()
        .filter(|t| t.by == by && t.from.contains(from))
    {
        if !out.contains(&t.to) {
            out.push(t.to.clone());
        }
    }
    out
}

fn allowed_actions(job: &JobType, from: &str) -> Vec<String> {
    job.transitions
        .iter()
        .filter(|t| t.by == Actor::User && t.from.contains(from))
        .filter_map(|t| t.action.clone())
        .collect()
}

/// Checks that `by` may move a job from `from` to `to`.
pub fn check_transition<'a>(
    job: &'a JobType,
    from: &str,
    to: &str,
    by: Actor,
) -> Result<&'a Transition, JobError> {
    if job.is_terminal(from) {
        return Err(JobError::TerminalState {
            state: from.to_owned(),
        });
    }
    job.transition(from, to, by)
        .ok_or_else(|| JobError::InvalidTransition {
            from: from.to_owned(),
            to: to.to_owned(),
            allowed: allowed_targets(job, from, by),
        })
}

/// Checks that the owner may take `action` from `from`.
pub fn check_action<'a>(
    job: &'a JobType,
    from: &str,
    action: &str,
) -> Result<&'a Transition, JobError> {
    let known = job
        .transitions
        .iter()
        .any(|t| t.by == Actor::User && t.action.as_deref() == Some(action));
    if !known {
        return Err(JobError::UnknownAction {
            action: action.to_owned(),
        });
    }
    if job.is_terminal(from) {
        return Err(JobError::TerminalState {
            state: from.to_owned(),
        });
    }
    job.action(from, action)
        .ok_or_else(|| JobError::ActionNotAllowed {
            action: action.to_owned(),
            from: from.to_owned(),
            allowed: allowed_actions(job, from),
        })
}

fn after(now: DateTime<Utc>, d: DurationSpec) -> DateTime<Utc> {
    let delta = TimeDelta::from_std(d.as_duration()).unwrap_or(TimeDelta::MAX);
    now.checked_add_signed(delta)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The heartbeat timers of `state` counted from a heartbeat (or entry) at `now`: with a lost
/// state, the loss at `lost_after`; without one, expiry at `lost_after + grace`.
pub fn heartbeat_timers(job: &JobType, state: &str, now: DateTime<Utc>) -> Vec<TimerSpec> {
    let Some(hb) = &job.heartbeat else {
        return Vec::new();
    };
    if hb.lost_state.as_deref() == Some(state) {
        return vec![TimerSpec {
            kind: TimerKind::HeartbeatExpire,
            fire_at: after(now, hb.grace),
        }];
    }
    if !hb.states.iter().any(|s| s == state) {
        return Vec::new();
    }
    let lost = after(now, hb.effective_lost_after());
    match hb.lost_state {
        Some(_) => vec![TimerSpec {
            kind: TimerKind::HeartbeatLost,
            fire_at: lost,
        }],
        None => vec![TimerSpec {
            kind: TimerKind::HeartbeatExpire,
            fire_at: after(lost, hb.grace),
        }],
    }
}

/// The effects of entering `facts.to`.
pub fn enter(job: &JobType, facts: EntryFacts<'_>) -> Entry {
    let terminal = job.is_terminal(facts.to);
    let mut timers = Vec::new();
    if !terminal {
        if let Some(t) = job.timeouts.get(facts.to) {
            timers.push(TimerSpec {
                kind: TimerKind::Timeout,
                fire_at: after(facts.now, t.after),
            });
        }
        timers.extend(heartbeat_timers(job, facts.to, facts.now));
    }
    Entry {
        terminal,
        timers,
        billing: billing_action(job, &facts, terminal),
    }
}

fn billing_action(job: &JobType, facts: &EntryFacts<'_>, terminal: bool) -> BillingAction {
    let Some(b) = &job.billing else {
        return BillingAction::None;
    };
    let non_billable = facts
        .reason
        .is_some_and(|r| b.non_billable_reasons.iter().any(|n| n == r));
    if terminal {
        return match (facts.reserved, facts.committed) {
            (false, _) => BillingAction::None,
            (true, true) if non_billable => BillingAction::Refund,
            (true, true) => BillingAction::None,
            (true, false) if facts.to == b.commit_on && !non_billable => BillingAction::Commit,
            (true, false) => BillingAction::Release,
        };
    }
    let starting = facts.from == Some(job.initial.as_str()) && facts.from != Some(facts.to);
    if !facts.reserved && b.reserve_on == ReserveOn::Start && starting {
        return BillingAction::Reserve;
    }
    if facts.to == b.commit_on && !facts.committed {
        return BillingAction::Commit;
    }
    BillingAction::None
}

/// What a due timer of `kind`, armed in `state`, does to a job now in `current`; `None`
/// when it no longer applies (the job left the state, or the manifest changed).
pub fn on_timer(job: &JobType, kind: TimerKind, state: &str, current: &str) -> Option<TimerFire> {
    if state != current || job.is_terminal(current) {
        return None;
    }
    match kind {
        TimerKind::Timeout => job.timeouts.get(state).map(|t| TimerFire {
            to: t.to.clone(),
            reason: t.reason.clone(),
            resume_state: None,
        }),
        TimerKind::HeartbeatLost => {
            let hb = job.heartbeat.as_ref()?;
            Some(TimerFire {
                to: hb.lost_state.clone()?,
                reason: "heartbeat_lost".into(),
                resume_state: Some(state.to_owned()),
            })
        }
        TimerKind::HeartbeatExpire => job.heartbeat.as_ref().map(|hb| TimerFire {
            to: hb.expire_to.clone(),
            reason: hb.reason.clone(),
            resume_state: None,
        }),
    }
}

/// What a heartbeat does to a job in `state` (`resume_state` set while the heartbeat is lost).
pub fn on_heartbeat(
    job: &JobType,
    state: &str,
    resume_state: Option<&str>,
    now: DateTime<Utc>,
) -> HeartbeatAction {
    let lost = job
        .heartbeat
        .as_ref()
        .and_then(|hb| hb.lost_state.as_deref())
        .is_some_and(|l| l == state);
    match resume_state {
        Some(back) if lost => HeartbeatAction::Resume(back.to_owned()),
        _ => HeartbeatAction::Rearm(heartbeat_timers(job, state, now)),
    }
}
