//! Job types: a state machine with transitions, timeouts, heartbeats, concurrency, billing and retention.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::DurationSpec;

/// `[jobs.<name>]`: a long-running job type and its state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobType {
    /// Human name.
    pub display_name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Feature a user's plan must grant to create jobs of this type.
    pub feature: Option<String>,
    /// Every state, unique.
    pub states: Vec<String>,
    /// State of a new job; not terminal.
    pub initial: String,
    /// States a job never leaves; at least one.
    #[serde(default)]
    pub terminal: Vec<String>,
    /// Allowed moves between states.
    #[serde(default)]
    pub transitions: Vec<Transition>,
    /// Durable timers keyed by the state they run in.
    #[serde(default)]
    pub timeouts: BTreeMap<String, Timeout>,
    /// Client heartbeat policy.
    pub heartbeat: Option<Heartbeat>,
    /// Cap on active jobs.
    pub concurrency: Option<Concurrency>,
    /// Quota reservation and commit points.
    pub billing: Option<JobBilling>,
    /// How long finished jobs and their events are kept.
    pub retention: Option<Retention>,
}

impl JobType {
    /// Whether `state` is one of this job type's states.
    pub fn has_state(&self, state: &str) -> bool {
        self.states.iter().any(|s| s == state)
    }

    /// Whether `state` is terminal.
    pub fn is_terminal(&self, state: &str) -> bool {
        self.terminal.iter().any(|s| s == state)
    }

    /// The first transition allowing `by` to move a job from `from` to `to`.
    pub fn transition(&self, from: &str, to: &str, by: Actor) -> Option<&Transition> {
        if self.is_terminal(from) {
            return None;
        }
        self.transitions
            .iter()
            .find(|t| t.to == to && t.by == by && t.from.contains(from))
    }

    /// The user transition named `action` out of state `from`.
    pub fn action(&self, from: &str, action: &str) -> Option<&Transition> {
        if self.is_terminal(from) {
            return None;
        }
        self.transitions.iter().find(|t| {
            t.by == Actor::User && t.action.as_deref() == Some(action) && t.from.contains(from)
        })
    }
}

/// Who may perform a transition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The product's own workers, through the service API.
    #[default]
    Service,
    /// The job's owner, through `POST /v1/jobs/{id}/actions/{action}`.
    User,
    /// Keel itself or an operator (admin API); never a client or a worker.
    System,
}

/// `[[jobs.<name>.transitions]]`: one allowed move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// States the move starts from: a list, one state, or `"*"` for any non-terminal state.
    pub from: StateSet,
    /// Target state.
    pub to: String,
    /// Who may perform it; default `service`.
    #[serde(default)]
    pub by: Actor,
    /// Action name (a slug); required when `by = "user"`.
    pub action: Option<String>,
    /// Reason recorded when the caller gives none (e.g. `user_cancelled`).
    pub reason: Option<String>,
}

/// A set of source states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateSet {
    /// Every non-terminal state (`"*"`).
    AnyActive,
    /// The listed states.
    States(Vec<String>),
}

impl StateSet {
    /// Whether the set includes `state` (terminal states are excluded by validation and by [`JobType`]).
    pub fn contains(&self, state: &str) -> bool {
        match self {
            StateSet::AnyActive => true,
            StateSet::States(states) => states.iter().any(|s| s == state),
        }
    }
}

impl Serialize for StateSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StateSet::AnyActive => serializer.serialize_str("*"),
            StateSet::States(states) => states.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for StateSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StateSetVisitor)
    }
}

struct StateSetVisitor;

impl<'de> Visitor<'de> for StateSetVisitor {
    type Value = StateSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"*\", a state name or a list of state names")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StateSet, E> {
        if v == "*" {
            Ok(StateSet::AnyActive)
        } else {
            Ok(StateSet::States(vec![v.to_owned()]))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StateSet, A::Error> {
        let mut states = Vec::new();
        while let Some(state) = seq.next_element::<String>()? {
            states.push(state);
        }
        Ok(StateSet::States(states))
    }
}

/// `[jobs.<name>.timeouts.<STATE>]`: a durable timer started when a job enters the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    /// Time spent in the state before the timer fires.
    pub after: DurationSpec,
    /// State the job moves to.
    pub to: String,
    /// Reason recorded on the transition (e.g. `intervention_timeout`).
    pub reason: String,
}

/// `[jobs.<name>.heartbeat]`: clients must keep a job alive while it is in `states`.
///
/// No heartbeat for `lost_after` marks the heartbeat lost (moving the job to `lost_state` if set,
/// and back on the next heartbeat); `grace` later without one, the job moves to `expire_to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// How often clients should send a heartbeat (told to clients).
    pub interval: DurationSpec,
    /// Silence after which the heartbeat is lost; default three intervals.
    pub lost_after: Option<DurationSpec>,
    /// Time after the loss before the job expires.
    pub grace: DurationSpec,
    /// Non-terminal states in which heartbeats are required; at least one.
    pub states: Vec<String>,
    /// State the job waits in while the heartbeat is lost (e.g. `CLIENT_HEARTBEAT_LOST`).
    pub lost_state: Option<String>,
    /// State the job moves to when the grace period ends.
    pub expire_to: String,
    /// Reason recorded on expiry (e.g. `client_disconnected`).
    pub reason: String,
}

impl Heartbeat {
    /// Silence after which the heartbeat is lost.
    pub fn effective_lost_after(&self) -> DurationSpec {
        self.lost_after.unwrap_or_else(|| {
            let three = self.interval.as_duration().saturating_mul(3);
            DurationSpec::new(three).unwrap_or(self.interval)
        })
    }
}

/// Who a concurrency cap counts jobs for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyScope {
    /// Per user.
    #[default]
    User,
    /// Per tenant.
    Tenant,
}

/// `[jobs.<name>.concurrency]`: at most `max` active jobs per scope (and per input `key` value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// Top-level field of the job input whose value partitions the cap (e.g. `project`).
    pub key: Option<String>,
    /// Active (non-terminal) jobs allowed at once; > 0.
    pub max: u32,
    /// Per user (default) or per tenant.
    #[serde(default)]
    pub scope: ConcurrencyScope,
}

/// When a job's quota reservation is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReserveOn {
    /// When the job is created (creation fails without quota).
    #[default]
    Create,
    /// When the job first leaves its initial state.
    Start,
}

/// `[jobs.<name>.billing]`: reserve quota, commit it on entering `commit_on`, release it otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobBilling {
    /// Meter the job consumes.
    pub meter: String,
    /// Units reserved and committed per job; > 0, default 1.
    #[serde(default = "default_amount")]
    pub amount: i64,
    /// When the reservation is taken; default `create`.
    #[serde(default)]
    pub reserve_on: ReserveOn,
    /// Entering this state commits the reservation (the billing checkpoint).
    pub commit_on: String,
    /// Reasons that make a job non-billable: its reservation is released, an earlier commit refunded.
    #[serde(default)]
    pub non_billable_reasons: Vec<String>,
}

fn default_amount() -> i64 {
    1
}

/// `[jobs.<name>.retention]`: how long a finished job and its events are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days after the job reached a terminal state; > 0.
    pub days: u32,
}
