//! Job type checks: every state reference defined, terminal states final, every state reachable.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{is_slug, Checker, Kind, SLUG_RULE};
use crate::manifest::error::{Issue, Path};
use crate::manifest::jobs::{Actor, JobType, StateSet, Transition};

/// (from state, user action) -> (target state, transition index), to find ambiguous actions.
type Actions<'j> = BTreeMap<(&'j str, &'j str), (&'j str, usize)>;

/// The declared states of one job type, for reference checks.
struct States<'j> {
    job: &'j JobType,
    all: BTreeSet<&'j str>,
}

impl<'j> States<'j> {
    fn new(job: &'j JobType) -> States<'j> {
        let all = job.states.iter().map(String::as_str).collect();
        States { job, all }
    }

    fn defined(&self, state: &str) -> bool {
        self.all.contains(state)
    }

    fn active(&self, state: &str) -> bool {
        self.defined(state) && !self.job.is_terminal(state)
    }

    /// "undefined state `X` (defined states: A, B)", in declaration order.
    fn undefined(&self, state: &str) -> String {
        let mut listed: Vec<&str> = Vec::new();
        for s in &self.job.states {
            if !listed.contains(&s.as_str()) {
                listed.push(s);
            }
        }
        format!(
            "undefined state `{state}` (defined states: {})",
            listed.join(", ")
        )
    }

    /// Every (from, to) edge: transitions, timeouts and heartbeat loss, return and expiry.
    fn edges(&self) -> Vec<(&'j str, &'j str)> {
        let job = self.job;
        let mut edges = Vec::new();
        for t in &job.transitions {
            for from in self.sources(&t.from) {
                edges.push((from, t.to.as_str()));
            }
        }
        for (state, timeout) in &job.timeouts {
            edges.push((state.as_str(), timeout.to.as_str()));
        }
        if let Some(hb) = &job.heartbeat {
            let expire = hb.expire_to.as_str();
            for state in &hb.states {
                let next = hb.lost_state.as_deref().unwrap_or(expire);
                edges.push((state.as_str(), next));
                if let Some(lost) = &hb.lost_state {
                    edges.push((lost.as_str(), state.as_str()));
                }
            }
            if let Some(lost) = &hb.lost_state {
                edges.push((lost.as_str(), expire));
            }
        }
        edges.retain(|(from, to)| self.active(from) && self.defined(to));
        edges
    }

    /// The active states a transition may start from.
    fn sources(&self, from: &'j StateSet) -> Vec<&'j str> {
        let listed = match from {
            StateSet::AnyActive => &self.job.states,
            StateSet::States(states) => states,
        };
        listed
            .iter()
            .map(String::as_str)
            .filter(|s| self.active(s))
            .collect()
    }
}

impl Checker<'_> {
    pub(super) fn job(&mut self, name: &str, job: &JobType) {
        let path = Path::of(&["jobs", name]);
        let states = States::new(job);
        let before = self.issues.len();
        self.state_list(&path, job);
        self.initial_and_terminal(&path, &states);
        self.transitions(&path, &states);
        self.timeouts(&path, &states);
        self.heartbeat(&path, &states);
        self.job_extras(&path, &states);
        // Graph checks on a machine with broken references would only add noise.
        if self.issues.len() == before && self.complete(&path) {
            self.reachability(&path, &states);
        }
    }

    fn state_ref(&mut self, path: Path, states: &States<'_>, state: &str) -> bool {
        let ok = states.defined(state);
        if !ok {
            self.issues
                .push(Issue::value(path, states.undefined(state)));
        }
        ok
    }

    /// A reference to a state a job must be able to leave.
    fn active_ref(&mut self, path: Path, states: &States<'_>, state: &str, what: &str) {
        if self.state_ref(path.clone(), states, state) && states.job.is_terminal(state) {
            let message = format!("{what} cannot be the terminal state `{state}`");
            self.issues.push(Issue::value(path, message));
        }
    }

    fn state_list(&mut self, path: &Path, job: &JobType) {
        if job.states.is_empty() && self.complete(path) {
            let message = "a job type needs at least one state";
            self.issues.push(Issue::value(path.key("states"), message));
        }
        let mut seen = BTreeSet::new();
        for (i, state) in job.states.iter().enumerate() {
            let at = path.key("states").index(i);
            if !is_state_name(state) {
                let message = format!(
                    "invalid state name `{state}`: use letters, digits and `_`, \
                     starting with a letter"
                );
                self.issues.push(Issue::value(at, message));
            } else if !seen.insert(state.as_str()) {
                self.issues
                    .push(Issue::value(at, format!("duplicate state `{state}`")));
            }
        }
    }

    fn initial_and_terminal(&mut self, path: &Path, states: &States<'_>) {
        let job = states.job;
        self.active_ref(
            path.key("initial"),
            states,
            &job.initial,
            "the initial state",
        );
        if job.terminal.is_empty() && self.complete(path) {
            let message = "a job type needs at least one terminal state";
            self.issues
                .push(Issue::value(path.key("terminal"), message));
        }
        for (i, state) in job.terminal.iter().enumerate() {
            self.state_ref(path.key("terminal").index(i), states, state);
        }
    }

    fn transitions(&mut self, path: &Path, states: &States<'_>) {
        let mut actions = Actions::new();
        for (i, t) in states.job.transitions.iter().enumerate() {
            let at = path.key("transitions").index(i);
            if let StateSet::States(from) = &t.from {
                if from.is_empty() {
                    let message = "lists no state: use \"*\" for every non-terminal state";
                    self.issues.push(Issue::value(at.key("from"), message));
                }
                for (j, state) in from.iter().enumerate() {
                    let what = "a transition's source";
                    self.active_ref(at.key("from").index(j), states, state, what);
                }
            }
            self.state_ref(at.key("to"), states, &t.to);
            self.action(&at, states, (i, t), &mut actions);
        }
    }

    fn action<'j>(
        &mut self,
        at: &Path,
        states: &States<'j>,
        (index, t): (usize, &'j Transition),
        actions: &mut Actions<'j>,
    ) {
        let Some(action) = &t.action else {
            if t.by == Actor::User {
                let message = "a user transition needs an `action` name \
                     (POST /v1/jobs/{id}/actions/{action})";
                self.issues.push(Issue::value(at.key("action"), message));
            }
            return;
        };
        if !is_slug(action) {
            let message = format!("invalid action `{action}`: {SLUG_RULE}");
            self.issues.push(Issue::value(at.key("action"), message));
            return;
        }
        if t.by != Actor::User {
            return;
        }
        for from in states.sources(&t.from) {
            let (to, k) = *actions
                .entry((from, action.as_str()))
                .or_insert((t.to.as_str(), index));
            if to != t.to {
                let message = format!(
                    "action `{action}` from state `{from}` already leads to `{to}` (transitions[{k}])"
                );
                self.issues.push(Issue::value(at.key("action"), message));
            }
        }
    }

    fn timeouts(&mut self, path: &Path, states: &States<'_>) {
        for (state, timeout) in &states.job.timeouts {
            let at = path.key("timeouts").key(state);
            if !states.defined(state) {
                self.issues
                    .push(Issue::key(at.clone(), states.undefined(state)));
            } else if states.job.is_terminal(state) {
                let message = format!("a timeout cannot run in the terminal state `{state}`");
                self.issues.push(Issue::key(at.clone(), message));
            }
            self.state_ref(at.key("to"), states, &timeout.to);
        }
    }

    fn heartbeat(&mut self, path: &Path, states: &States<'_>) {
        let Some(hb) = &states.job.heartbeat else {
            return;
        };
        let at = path.key("heartbeat");
        if hb.states.is_empty() {
            let message = "list the states in which heartbeats are required";
            self.issues.push(Issue::value(at.key("states"), message));
        }
        for (i, state) in hb.states.iter().enumerate() {
            let what = "a heartbeat state";
            self.active_ref(at.key("states").index(i), states, state, what);
        }
        if let Some(lost) = &hb.lost_state {
            self.active_ref(at.key("lost_state"), states, lost, "the lost state");
        }
        self.state_ref(at.key("expire_to"), states, &hb.expire_to);
    }

    fn job_extras(&mut self, path: &Path, states: &States<'_>) {
        let job = states.job;
        if let Some(feature) = &job.feature {
            self.refer(path.key("feature"), Kind::Feature, feature);
        }
        if let Some(concurrency) = &job.concurrency {
            let at = path.key("concurrency");
            self.positive(at.key("max"), i64::from(concurrency.max));
            if concurrency
                .key
                .as_deref()
                .is_some_and(|k| k.trim().is_empty())
            {
                self.issues
                    .push(Issue::value(at.key("key"), "must not be empty"));
            }
        }
        if let Some(billing) = &job.billing {
            let at = path.key("billing");
            self.refer(at.key("meter"), Kind::Meter, &billing.meter);
            self.positive(at.key("amount"), billing.amount);
            self.state_ref(at.key("commit_on"), states, &billing.commit_on);
        }
        if let Some(retention) = &job.retention {
            self.positive(path.key("retention").key("days"), i64::from(retention.days));
        }
    }

    /// Every state must be reachable from the initial state, and every active state must have a way out.
    fn reachability(&mut self, path: &Path, states: &States<'_>) {
        let edges = states.edges();
        let mut reached: BTreeSet<&str> = BTreeSet::new();
        let mut queue = VecDeque::from([states.job.initial.as_str()]);
        while let Some(state) = queue.pop_front() {
            if reached.insert(state) {
                queue.extend(edges.iter().filter(|(f, _)| *f == state).map(|(_, t)| *t));
            }
        }
        let initial = &states.job.initial;
        for (i, state) in states.job.states.iter().enumerate() {
            let at = path.key("states").index(i);
            if !reached.contains(state.as_str()) {
                let message =
                    format!("state `{state}` cannot be reached from the initial state `{initial}`");
                self.issues.push(Issue::value(at, message));
            } else if states.active(state) && !edges.iter().any(|(f, _)| f == state) {
                let message = format!(
                    "state `{state}` is not terminal but nothing leads out of it: \
                     add a transition or timeout, or list it in `terminal`"
                );
                self.issues.push(Issue::value(at, message));
            }
        }
    }
}

/// Whether `name` is a valid state name: `[A-Za-z][A-Za-z0-9_]*`, at most 64 characters.
fn is_state_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
