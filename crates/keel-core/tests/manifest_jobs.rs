//! Job type state machines: every broken reference and graph defect is reported precisely.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keel_core::manifest::{self, Actor, ManifestError};

/// Lines 1-13; the job's states are queued, running, done and failed.
const HEAD: &str = "[product]
name = \"p\"
default_plan = \"free\"

[plans.free]

[meters.jobs]
unit = \"job\"

[jobs.t]
states = [\"queued\", \"running\", \"done\", \"failed\"]
initial = \"queued\"
terminal = [\"done\", \"failed\"]
";

/// Lines 14-22: queued -> running -> done, anything -> failed.
const MOVES: &str = "[[jobs.t.transitions]]
from = [\"queued\"]
to = \"running\"
[[jobs.t.transitions]]
from = [\"running\"]
to = \"done\"
[[jobs.t.transitions]]
from = \"*\"
to = \"failed\"
";

const DEFINED: &str = "(defined states: queued, running, done, failed)";

fn errors(src: &str) -> Vec<ManifestError> {
    match manifest::parse_str(src, "keel.toml") {
        Ok(_) => panic!("expected errors in:\n{src}"),
        Err(errors) => errors.0,
    }
}

/// Asserts exactly these errors, in order: (line, column, key, message fragment).
fn assert_errors(src: &str, expected: &[(usize, usize, &str, &str)]) {
    let found = errors(src);
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), expected.len(), "{shown:#?}");
    for (error, (line, column, key, fragment)) in found.iter().zip(expected) {
        let at = (error.line, error.column, error.key.as_str());
        assert_eq!(at, (*line, *column, *key), "{shown:#?}");
        assert!(
            error.message.contains(fragment),
            "{:?} lacks {fragment:?}",
            error.message
        );
    }
}

#[test]
fn a_well_formed_job_type_is_accepted_and_answers_transition_queries() {
    let extra = "[[jobs.t.transitions]]\nfrom = \"*\"\nto = \"failed\"\nby = \"user\"\naction = \"cancel\"\n";
    let loaded = manifest::parse_str(&format!("{HEAD}{MOVES}{extra}"), "keel.toml").unwrap();
    let job = &loaded.manifest.jobs["t"];
    assert!(job
        .transition("queued", "running", Actor::Service)
        .is_some());
    assert!(job.transition("queued", "done", Actor::Service).is_none());
    assert!(job.transition("done", "failed", Actor::Service).is_none());
    assert_eq!(job.action("running", "cancel").unwrap().to, "failed");
    assert!(job.action("done", "cancel").is_none());
    assert!(job.is_terminal("done") && !job.is_terminal("running"));
}

#[test]
fn undefined_states_are_named_with_the_defined_ones() {
    let src = format!(
        "{HEAD}[[jobs.t.transitions]]
from = [\"queued\", \"paused\"]
to = \"running\"
[[jobs.t.transitions]]
from = [\"running\"]
to = \"finished\"
[[jobs.t.transitions]]
from = \"*\"
to = \"failed\"
[[jobs.t.transitions]]
from = \"running\"
to = \"done\"
[jobs.t.timeouts.waiting]
after = \"30m\"
to = \"failed\"
reason = \"timeout\"
[jobs.t.timeouts.running]
after = \"1h\"
to = \"expired\"
reason = \"timeout\"
[jobs.t.heartbeat]
interval = \"30s\"
grace = \"300s\"
states = [\"running\", \"stalled\"]
lost_state = \"lost\"
expire_to = \"gone\"
reason = \"heartbeat_lost\"
[jobs.t.billing]
meter = \"jobs\"
commit_on = \"delivered\"
"
    );
    let undefined = |state: &str| format!("undefined state `{state}` {DEFINED}");
    assert_errors(
        &src,
        &[
            (
                15,
                19,
                "jobs.t.transitions[0].from[1]",
                &undefined("paused"),
            ),
            (19, 6, "jobs.t.transitions[1].to", &undefined("finished")),
            (26, 18, "jobs.t.timeouts.waiting", &undefined("waiting")),
            (32, 6, "jobs.t.timeouts.running.to", &undefined("expired")),
            (37, 22, "jobs.t.heartbeat.states[1]", &undefined("stalled")),
            (38, 14, "jobs.t.heartbeat.lost_state", &undefined("lost")),
            (39, 13, "jobs.t.heartbeat.expire_to", &undefined("gone")),
            (43, 13, "jobs.t.billing.commit_on", &undefined("delivered")),
        ],
    );
}

#[test]
fn initial_and_terminal_states_must_be_defined() {
    let head = HEAD
        .replace(
            "\"running\", \"done\", \"failed\"]",
            "\"running\", \"done\"]",
        )
        .replace("initial = \"queued\"", "initial = \"new\"");
    assert_errors(
        &format!("{head}{MOVES}"),
        &[
            (
                12,
                11,
                "jobs.t.initial",
                "undefined state `new` (defined states: queued, running, done)",
            ),
            (
                13,
                21,
                "jobs.t.terminal[1]",
                "undefined state `failed` (defined states: queued, running, done)",
            ),
            (
                22,
                6,
                "jobs.t.transitions[2].to",
                "undefined state `failed`",
            ),
        ],
    );
}

#[test]
fn duplicate_states_are_reported() {
    let head = HEAD.replace(
        "\"running\", \"done\", \"failed\"]",
        "\"running\", \"done\", \"running\", \"failed\"]",
    );
    assert_errors(
        &format!("{head}{MOVES}"),
        &[(11, 40, "jobs.t.states[3]", "duplicate state `running`")],
    );
}

#[test]
fn a_job_type_needs_a_terminal_state() {
    let head = HEAD.replace("terminal = [\"done\", \"failed\"]", "terminal = []");
    assert_errors(
        &format!("{head}{MOVES}"),
        &[(
            13,
            12,
            "jobs.t.terminal",
            "a job type needs at least one terminal state",
        )],
    );
    let head = HEAD.replace("terminal = [\"done\", \"failed\"]\n", "");
    assert_errors(
        &format!("{head}{MOVES}"),
        &[(
            10,
            1,
            "jobs.t.terminal",
            "a job type needs at least one terminal state",
        )],
    );
}

#[test]
fn nothing_may_leave_a_terminal_state() {
    let extra = "[[jobs.t.transitions]]
from = [\"done\"]
to = \"running\"
by = \"user\"
action = \"reopen\"
[jobs.t.timeouts.failed]
after = \"1d\"
to = \"queued\"
reason = \"retry\"
";
    assert_errors(
        &format!("{HEAD}{MOVES}{extra}"),
        &[
            (
                24,
                9,
                "jobs.t.transitions[3].from[0]",
                "a transition's source cannot be the terminal state `done`",
            ),
            (
                28,
                18,
                "jobs.t.timeouts.failed",
                "a timeout cannot run in the terminal state `failed`",
            ),
        ],
    );
}

#[test]
fn every_state_must_be_reachable_from_the_initial_state() {
    let head = HEAD.replace("\"failed\"]\ninitial", "\"failed\", \"orphan\"]\ninitial");
    assert_errors(
        &format!("{head}{MOVES}"),
        &[(
            11,
            50,
            "jobs.t.states[4]",
            "state `orphan` cannot be reached from the initial state `queued`",
        )],
    );
}

#[test]
fn timeouts_and_heartbeats_make_states_reachable() {
    let head = HEAD.replace(
        "\"failed\"]\ninitial",
        "\"failed\", \"stalled\", \"lost\"]\ninitial",
    );
    let extra = "[jobs.t.timeouts.running]
after = \"1h\"
to = \"stalled\"
reason = \"slow\"
[jobs.t.heartbeat]
interval = \"30s\"
grace = \"300s\"
states = [\"running\"]
lost_state = \"lost\"
expire_to = \"failed\"
reason = \"client_disconnected\"
";
    let loaded = manifest::parse_str(&format!("{head}{MOVES}{extra}"), "keel.toml").unwrap();
    let heartbeat = loaded.manifest.jobs["t"].heartbeat.clone().unwrap();
    assert_eq!(heartbeat.grace.as_secs(), 300);
    assert_eq!(heartbeat.effective_lost_after().as_secs(), 90);
}

#[test]
fn an_active_state_without_a_way_out_is_reported() {
    let head = HEAD
        .replace(
            "\"done\", \"failed\"]\ninitial",
            "\"waiting\", \"done\"]\ninitial",
        )
        .replace("terminal = [\"done\", \"failed\"]", "terminal = [\"done\"]");
    let moves = "[[jobs.t.transitions]]
from = \"queued\"
to = \"running\"
[[jobs.t.transitions]]
from = \"running\"
to = [\"done\"]
";
    // `to` must be a single state.
    assert_errors(
        &format!("{head}{moves}"),
        &[(
            19,
            6,
            "jobs.t.transitions[1].to",
            "invalid type: sequence, expected a string",
        )],
    );
    let moves = moves.replace("to = [\"done\"]", "to = \"waiting\"")
        + "[[jobs.t.transitions]]\nfrom = \"running\"\nto = \"done\"\n";
    assert_errors(
        &format!("{head}{moves}"),
        &[(
            11,
            32,
            "jobs.t.states[2]",
            "state `waiting` is not terminal but nothing leads out of it",
        )],
    );
}

#[test]
fn user_transitions_need_an_unambiguous_action() {
    let extra = "[[jobs.t.transitions]]
from = [\"running\"]
to = \"failed\"
by = \"user\"
[[jobs.t.transitions]]
from = [\"running\"]
to = \"done\"
by = \"user\"
action = \"stop\"
[[jobs.t.transitions]]
from = \"*\"
to = \"failed\"
by = \"user\"
action = \"stop\"
";
    assert_errors(
        &format!("{HEAD}{MOVES}{extra}"),
        &[
            (
                23,
                1,
                "jobs.t.transitions[3].action",
                "a user transition needs an `action` name",
            ),
            (
                36,
                10,
                "jobs.t.transitions[5].action",
                "action `stop` from state `running` already leads to `done` (transitions[4])",
            ),
        ],
    );
}

#[test]
fn billing_concurrency_and_retention_are_checked() {
    let extra = "[jobs.t.billing]
meter = \"credits\"
amount = 0
commit_on = \"done\"
reserve_on = \"later\"
[jobs.t.concurrency]
key = \"project\"
max = 0
[jobs.t.retention]
days = 0
";
    assert_errors(
        &format!("{HEAD}{MOVES}{extra}"),
        &[
            (
                24,
                9,
                "jobs.t.billing.meter",
                "undefined meter `credits` (defined meters: jobs)",
            ),
            (
                25,
                10,
                "jobs.t.billing.amount",
                "must be greater than 0, found 0",
            ),
            (
                27,
                14,
                "jobs.t.billing.reserve_on",
                "unknown variant `later`, expected `create` or `start`",
            ),
            (
                30,
                7,
                "jobs.t.concurrency.max",
                "must be greater than 0, found 0",
            ),
            (
                32,
                8,
                "jobs.t.retention.days",
                "must be greater than 0, found 0",
            ),
        ],
    );
}

#[test]
fn timeout_durations_are_validated() {
    let extra = "[jobs.t.timeouts.running]
after = \"30 minutes\"
to = \"failed\"
reason = \"slow\"
[jobs.t.timeouts.queued]
after = 30
to = \"failed\"
reason = \"slow\"
";
    assert_errors(
        &format!("{HEAD}{MOVES}{extra}"),
        &[
            (
                24,
                9,
                "jobs.t.timeouts.running.after",
                "invalid duration \"30 minutes\": missing unit",
            ),
            (
                28,
                9,
                "jobs.t.timeouts.queued.after",
                "invalid type: integer `30`, expected a string",
            ),
        ],
    );
}
