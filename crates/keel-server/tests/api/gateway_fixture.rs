//! A Keel server whose routes point at an in-process keel-sim, for the public gateway tests.

use keel_sim::SimHandle;
use reqwest::Method;
use serde_json::{json, Value};

use crate::gateway_sim::{sim, KEY};
use crate::helpers::{spawn_full, TestApp};

pub const KEY_ENV: &str = "KEEL_TEST_SIM_KEY";

/// Per-model sim faults the routes below rely on.
pub const MODES: &[&str] = &[
    "garbage-model:garbage=1",
    "cut-model:disconnect-after=4",
    "slow-model:chunk-delay-ms=40,reply-tokens=400",
    "long-model:reply-tokens=200",
    "down-model:status=503",
    "lag-model:latency-ms=5000",
    "malformed-model:malformed-after=4",
];

fn deployment(route: &str, kind: &str, model: &str, sim: &SimHandle) -> String {
    let base = if kind == "anthropic" {
        sim.base_url()
    } else {
        sim.openai_base()
    };
    format!(
        "[[routes.{route}.deployments]]\nprovider = \"{kind}\"\nmodel = \"{model}\"\nbase_url = \"{base}\"\napi_key_env = \"{KEY_ENV}\"\n"
    )
}

fn route(name: &str, head: &str, kind: &str, model: &str, sim: &SimHandle) -> String {
    format!(
        "[routes.{name}]\n{head}\nrequest_meter = \"requests\"\ntoken_meter = \"tokens\"\ncost_meter = \"cost\"\n\
         [routes.{name}.pricing]\ninput_per_mtok_micros = 1000000\noutput_per_mtok_micros = 2000000\n{}\n",
        deployment(name, kind, model, sim)
    )
}

/// The test manifest: plans `free` (L1, cost budget 1 000 000 µ/day), `pro` (L1 + L2,
/// premium), `tight` (a cost budget of 300 µ/day), `metered` (300 tokens per minute).
pub fn manifest(sim: &SimHandle) -> String {
    let l1 = "feature = \"chat\"\nmodel_class = \"L1\"\nmax_tokens = 1000";
    let mut m = String::from(
        r#"
[product]
name = "gw"
default_plan = "free"
default_feature = "chat"

[meters.requests]
unit = "request"
aggregation = "count"
[meters.tokens]
unit = "token"
overage = true
[meters.cost]
unit = "micro"

[features.chat]
[features.premium]

[plans.free]
features = ["chat"]
model_classes = ["L1"]
[plans.free.limits.cost]
limit = 1000000
window = "day"

[plans.pro]
features = ["chat", "premium"]
model_classes = ["L1", "L2"]

[plans.tight]
features = ["chat"]
model_classes = ["L1"]
[plans.tight.limits.cost]
limit = 300
window = "day"

[plans.metered]
features = ["chat"]
model_classes = ["L1"]
[plans.metered.rate_limits.gateway]
user = { requests = 1000, per = "1m", tokens = 300 }

[safety.crisis]
features = ["chat"]
keywords = ["end my life"]
action = "block"
status = "crisis_support"
message = "Please reach out to a crisis line."

[safety.medical]
keywords = ["medication dose"]
action = "flag"
"#,
    );
    m += &route("chat-openai", l1, "openai", "sim-a", sim);
    m += &route("chat-anthropic", l1, "anthropic", "sim-a", sim);
    m += &route("chat-compat", l1, "openai_compatible", "sim-a", sim);
    let l2 = "feature = \"chat\"\nplans = [\"pro\"]\nmodel_class = \"L2\"";
    m += &route("chat-l2", l2, "openai", "sim-l2", sim);
    m += &route("premium", "feature = \"premium\"", "openai", "sim-p", sim);
    m += &route("garbage", l1, "openai", "garbage-model", sim);
    m += &route("cut", l1, "openai", "cut-model", sim);
    m += &route(
        "slow",
        "feature = \"chat\"\nmodel_class = \"L1\"",
        "openai",
        "slow-model",
        sim,
    );
    m += &route("long", l1, "openai", "long-model", sim);
    m += &route("down", l1, "openai", "down-model", sim);
    m += &route("lag", l1, "openai", "lag-model", sim);
    m += &route("malformed", l1, "openai", "malformed-model", sim);
    let tiny = "feature = \"chat\"\nmodel_class = \"L1\"\nmax_tokens = 1";
    m += &route("tiny", tiny, "openai", "sim-tiny", sim);
    m
}

pub struct Gw {
    pub app: TestApp,
    pub sim: SimHandle,
}

pub async fn gateway() -> Gw {
    gateway_with(|_| {}).await
}

/// As [`gateway`], with settings changed by `tweak`.
pub async fn gateway_with(tweak: impl FnOnce(&mut keel_server::Settings)) -> Gw {
    // Every test sets the same value, so concurrent tests agree.
    std::env::set_var(KEY_ENV, KEY);
    let sim = sim(MODES).await;
    let app = spawn_full(&manifest(&sim), tweak).await;
    Gw { app, sim }
}

/// A second node beside `first`: same database (and data dir), same upstream, `tweak`ed.
pub async fn second_node(first: &Gw, tweak: impl FnOnce(&mut keel_server::Settings)) -> TestApp {
    let shared = first.app.state.settings().clone();
    spawn_full(&manifest(&first.sim), |s| {
        tweak(s);
        s.data_dir = shared.data_dir.clone();
        s.database_url = shared.database_url.clone();
    })
    .await
}

impl Gw {
    pub async fn chat(&self, access: &str, body: Value) -> reqwest::Response {
        self.chat_as(access, None, body).await
    }

    pub async fn chat_as(
        &self,
        access: &str,
        feature: Option<&str>,
        body: Value,
    ) -> reqwest::Response {
        let mut req = self
            .app
            .client
            .post(self.app.url("/v1/chat/completions"))
            .bearer_auth(access)
            .json(&body);
        if let Some(f) = feature {
            req = req.header("x-keel-feature", f);
        }
        req.send().await.unwrap()
    }

    /// A registered user on `plan` (the default when `None`): (access token, user id).
    pub async fn user_on(&self, plan: Option<&str>) -> (String, String) {
        let (access, id) = self.app.user().await;
        if let Some(plan) = plan {
            let now = chrono::Utc::now();
            let body = json!({"plan": plan, "status": "active",
                "period_start": now - chrono::Duration::days(1),
                "period_end": now + chrono::Duration::days(29)});
            let path = format!("/v1/service/users/{id}/subscription");
            let res = self.app.service(Method::PUT, &path, Some(body)).await;
            assert_eq!(res.status(), 200, "{:?}", res.text().await);
        }
        (access, id)
    }

    /// The user's ledger by meter: meter -> (amount, entries).
    pub async fn usage(&self, access: &str) -> std::collections::BTreeMap<String, (i64, i64)> {
        let body: Value = self
            .app
            .get_auth("/v1/usage?group_by=meter", access)
            .await
            .json()
            .await
            .unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let meter = r["meter"].as_str().unwrap().to_owned();
                (
                    meter,
                    (
                        r["amount"].as_i64().unwrap(),
                        r["entries"].as_i64().unwrap(),
                    ),
                )
            })
            .collect()
    }

    /// Polls the ledger until `meter` has an entry (settlement of a dropped stream runs
    /// after the response); panics after 10 s.
    pub async fn usage_once_settled(
        &self,
        access: &str,
        meter: &str,
    ) -> std::collections::BTreeMap<String, (i64, i64)> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let usage = self.usage(access).await;
            if usage.contains_key(meter) {
                return usage;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never settled: {usage:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

pub fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": text},
    ]})
}

/// The SSE `data:` payloads of a stream body, and its comments.
pub fn sse_events(body: &str) -> (Vec<String>, Vec<String>) {
    let mut data = Vec::new();
    let mut comments = Vec::new();
    for line in body.split("\n\n").flat_map(|e| e.lines()) {
        if let Some(d) = line.strip_prefix("data: ") {
            data.push(d.to_owned());
        } else if let Some(c) = line.strip_prefix(": ") {
            comments.push(c.to_owned());
        }
    }
    (data, comments)
}

/// The final cost a stream reported in its trailing comment.
pub fn stream_cost(comments: &[String]) -> i64 {
    comments
        .iter()
        .find_map(|c| c.strip_prefix("keel-cost-micros="))
        .expect("a cost comment")
        .parse()
        .unwrap()
}
