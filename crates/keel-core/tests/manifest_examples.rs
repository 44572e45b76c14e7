//! Every shipped manifest parses and validates, and the model reads as the files say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use keel_core::manifest::{
    self, Actor, LimitScope, LoadedManifest, ProviderKind, ReserveOn, SafetyAction, Window,
};
use keel_core::money::Micros;

fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
}

fn load(name: &str) -> LoadedManifest {
    let path = examples_dir().join(name);
    match manifest::load_file(&path) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("{name} is invalid:\n{errors}"),
    }
}

#[test]
fn every_example_manifest_is_valid() {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ameide.toml",
            "builder.toml",
            "demo.toml",
            "iama.toml",
            "kalei.toml",
            "suiftly.toml"
        ]
    );
    for name in &names {
        let loaded = load(name);
        assert!(loaded.source.ends_with(name.as_str()), "{}", loaded.source);
    }
}

#[test]
fn the_built_in_demo_is_the_demo_example_and_summarises_itself() {
    let demo = manifest::demo().unwrap();
    assert_eq!(demo.source, "<built-in demo>");
    assert!(demo.server.is_empty());
    let file = std::fs::read_to_string(examples_dir().join("demo.toml")).unwrap();
    assert_eq!(manifest::DEMO_MANIFEST, file);
    assert_eq!(
        demo.manifest.summary(),
        "product demo (Keel demo), default plan free, timezone UTC
plans (2): free, pro
meters (3): jobs, requests, tokens
features (2): chat, tasks
routes (2): chat-large, chat-small
safety rules (1): crisis
job types (1): task (5 states)
"
    );
}

#[test]
fn the_demo_runs_offline_on_the_simulator() {
    let m = manifest::demo().unwrap().manifest;
    assert_eq!(m.product.default_feature.as_deref(), Some("chat"));
    for route in m.routes.values() {
        assert!(route
            .deployments
            .iter()
            .all(|d| d.provider == ProviderKind::Sim));
    }
    let models: Vec<&str> = m.routes["chat-large"]
        .deployments
        .iter()
        .map(|d| d.model.as_str())
        .collect();
    assert_eq!(models, ["sim-large", "sim-small"]);
    let task = &m.jobs["task"];
    assert_eq!(
        task.states,
        ["queued", "running", "succeeded", "failed", "cancelled"]
    );
    assert_eq!(task.heartbeat.as_ref().unwrap().states, ["running"]);
    assert_eq!(task.timeouts["queued"].after.as_secs(), 3_600);
    assert_eq!(
        m.plans["pro"].effective_limit("jobs", &["more_tasks"]),
        Some(63)
    );
    assert!(m.safety["crisis"].matches("I want to END MY LIFE"));
}

#[test]
fn iama_routes_and_job_follow_the_seed_plan() {
    let m = load("iama.toml").manifest;
    let caps: Vec<(&str, Option<u32>)> = m
        .routes
        .iter()
        .map(|(name, r)| (name.as_str(), r.max_tokens))
        .collect();
    assert_eq!(
        caps,
        [
            ("iama-l1", Some(30_000)),
            ("iama-l2", Some(5_000)),
            ("iama-l3", Some(5_000))
        ]
    );
    assert_eq!(m.plans["free"].limits["refactor_jobs"].window, Window::Day);
    assert_eq!(m.plans["free"].monthly_credits, 0);
    assert_eq!(
        m.plans["pro"].effective_limit("refactor_jobs", &["boost_25"]),
        Some(32)
    );
    let job = &m.jobs["refactor"];
    assert_eq!(job.timeouts["WAITING_INTERVENTION"].after.as_secs(), 1_800);
    assert_eq!(
        job.timeouts["WAITING_ESCALATION_DECISION"].after.as_secs(),
        3_600
    );
    let heartbeat = job.heartbeat.as_ref().unwrap();
    assert_eq!(heartbeat.grace.as_secs(), 300);
    assert_eq!(
        heartbeat.lost_state.as_deref(),
        Some("CLIENT_HEARTBEAT_LOST")
    );
    let billing = job.billing.as_ref().unwrap();
    assert_eq!(
        (billing.commit_on.as_str(), billing.reserve_on),
        ("GENERATING_TESTS", ReserveOn::Start)
    );
    assert_eq!(job.action("PENDING", "start").unwrap().to, "ANALYZING");
}

#[test]
fn kalei_gates_plans_and_blocks_crisis_language_with_a_status() {
    let m = load("kalei.toml").manifest;
    assert_eq!(
        m.plans.keys().collect::<Vec<_>>(),
        ["free", "prism", "prism_plus"]
    );
    assert_eq!(m.plans["free"].limits["turns"].window, Window::Day);
    let product = &m.product;
    assert_eq!(
        m.plans["free"].effective_timezone(product).to_string(),
        "UTC"
    );
    assert_eq!(
        m.plans["free"].limits["mirror_sessions"].window,
        Window::Week
    );
    assert!(!m.plans["free"].has_feature("spectrum"));
    assert!(m.plans["prism"].has_feature("spectrum"));
    let crisis = &m.safety["crisis"];
    assert_eq!(
        (crisis.action, crisis.status.as_deref()),
        (SafetyAction::Block, Some("crisis_support"))
    );
    assert!(crisis.applies_to("turn") && !crisis.applies_to("lens"));
    assert!(crisis.matches("sometimes I feel suicidal"));
}

#[test]
fn builder_allows_one_build_per_project() {
    let m = load("builder.toml").manifest;
    let build = &m.jobs["build"];
    let concurrency = build.concurrency.as_ref().unwrap();
    assert_eq!(
        (concurrency.key.as_deref(), concurrency.max),
        (Some("project"), 1)
    );
    assert_eq!(build.billing.as_ref().unwrap().meter, "credits");
    assert!(m.meters["credits"].credits);
    assert_eq!(m.plans["pro"].price_micros, Micros(29_990_000));
    assert!(m.routes["premium"].allows_plan("pro") && !m.routes["premium"].allows_plan("free"));
}

#[test]
fn suiftly_plans_are_prepaid_with_a_spend_limit() {
    let m = load("suiftly.toml").manifest;
    for (name, plan) in &m.plans {
        assert!(plan.prepaid, "{name}");
        assert!(plan.monthly_spend_limit_micros.is_some(), "{name}");
        assert!(
            plan.unit_prices_micros.contains_key("api_requests"),
            "{name}"
        );
    }
    let rate = m.plans["pro"]
        .rate_limits
        .api
        .as_ref()
        .unwrap()
        .key
        .as_ref()
        .unwrap();
    assert_eq!((rate.requests, rate.per.as_secs()), (1_000, 1));
    assert!(m.routes.is_empty() && m.jobs.is_empty());
}

#[test]
fn ameide_budgets_are_per_tenant_and_changesets_need_a_human() {
    let m = load("ameide.toml").manifest;
    assert_eq!(m.plans["team"].limits["tokens"].scope, LimitScope::Tenant);
    let zone = |plan: &str| m.plans[plan].effective_timezone(&m.product).to_string();
    assert_eq!(
        (zone("team"), zone("enterprise")),
        ("Europe/Berlin".into(), "UTC".into())
    );
    let changeset = &m.jobs["changeset"];
    let approve = changeset.action("pending_review", "approve").unwrap();
    assert_eq!((approve.to.as_str(), approve.by), ("approved", Actor::User));
    assert!(changeset
        .transition("approved", "committed", Actor::Service)
        .is_some());
    assert!(changeset
        .transition("pending_review", "approved", Actor::Service)
        .is_none());
}

#[test]
fn the_server_table_is_kept_raw_and_unvalidated() {
    let src = "[server]\nbind = \"0.0.0.0:8080\"\nanything = { nested = [1, 2] }\n\n[product]\nname = \"p\"\ndefault_plan = \"free\"\n\n[plans.free]\n";
    let loaded = manifest::parse_str(src, "keel.toml").unwrap();
    assert_eq!(loaded.server["bind"].as_str(), Some("0.0.0.0:8080"));
    assert_eq!(
        loaded.server["anything"]["nested"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(loaded.source, "keel.toml");
}

#[test]
fn the_model_serializes_with_manifest_spellings() {
    let m = load("iama.toml").manifest;
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(
        json["jobs"]["refactor"]["timeouts"]["WAITING_INTERVENTION"]["after"],
        "30m"
    );
    assert_eq!(
        json["plans"]["free"]["limits"]["refactor_jobs"]["window"],
        "day"
    );
    assert_eq!(json["routes"]["iama-l1"]["plans"], "*");
    assert_eq!(
        json["routes"]["iama-l1"]["deployments"][0]["provider"],
        "openai"
    );
    assert_eq!(json["product"]["timezone"], "UTC");
}
