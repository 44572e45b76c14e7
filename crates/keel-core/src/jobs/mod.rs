//! The job state machine engine over a manifest [`JobType`]: which moves are allowed and to
//! whom, and what entering a state does (timers to arm, billing action, whether the job
//! ends). Pure: callers pass the time and the job's facts; storage applies the result.

mod engine;
#[cfg(test)]
mod tests;

use std::fmt;

pub use engine::{
    allowed_targets, check_action, check_transition, enter, heartbeat_timers, on_heartbeat,
    on_timer, BillingAction, Entry, EntryFacts, HeartbeatAction, TimerFire,
};

/// What a durable timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// The state's timeout.
    Timeout,
    /// No heartbeat for `lost_after`.
    HeartbeatLost,
    /// The heartbeat grace period ended.
    HeartbeatExpire,
}

impl TimerKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Timeout => "timeout",
            TimerKind::HeartbeatLost => "heartbeat_lost",
            TimerKind::HeartbeatExpire => "heartbeat_expire",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "timeout" => Some(TimerKind::Timeout),
            "heartbeat_lost" => Some(TimerKind::HeartbeatLost),
            "heartbeat_expire" => Some(TimerKind::HeartbeatExpire),
            _ => None,
        }
    }
}

/// A timer to arm on entering a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerSpec {
    /// What it does.
    pub kind: TimerKind,
    /// When it fires.
    pub fire_at: chrono::DateTime<chrono::Utc>,
}

/// Why a move is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobError {
    /// The job is in a terminal state and never moves again.
    TerminalState {
        /// The terminal state.
        state: String,
    },
    /// The move is not allowed from the current state for this actor.
    InvalidTransition {
        /// The current state.
        from: String,
        /// The requested state.
        to: String,
        /// The states this actor may move the job to from here.
        allowed: Vec<String>,
    },
    /// No user action of that name applies to the job's type.
    UnknownAction {
        /// The requested action.
        action: String,
    },
    /// The action exists but not from the current state.
    ActionNotAllowed {
        /// The requested action.
        action: String,
        /// The current state.
        from: String,
        /// The actions available from here.
        allowed: Vec<String>,
    },
}

impl JobError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            JobError::TerminalState { .. } => "terminal_state",
            JobError::InvalidTransition { .. } | JobError::ActionNotAllowed { .. } => {
                "invalid_transition"
            }
            JobError::UnknownAction { .. } => "unknown_action",
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::TerminalState { state } => {
                write!(
                    f,
                    "the job is in the terminal state {state} and cannot move"
                )
            }
            JobError::InvalidTransition { from, to, .. } => {
                write!(f, "the job cannot move from {from} to {to}")
            }
            JobError::UnknownAction { action } => {
                write!(f, "this job type has no action named {action}")
            }
            JobError::ActionNotAllowed { action, from, .. } => {
                write!(f, "the action {action} is not available in state {from}")
            }
        }
    }
}

impl std::error::Error for JobError {}
