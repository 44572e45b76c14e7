//! A job type for tests beside the demo's, and typed calls on jobs.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_full, TestApp};

/// The demo manifest plus `quick`: a keyed cap of one, an hour-long wait timeout, and a
/// heartbeat lost after a minute with a minute of grace.
pub fn quick_manifest() -> String {
    format!(
        "{}\n{}",
        keel_core::manifest::DEMO_MANIFEST,
        r#"
[jobs.quick]
states = ["queued", "running", "waiting", "lost", "done", "failed"]
initial = "queued"
terminal = ["done", "failed"]

[[jobs.quick.transitions]]
from = "queued"
to = "running"

[[jobs.quick.transitions]]
from = "running"
to = "waiting"

[[jobs.quick.transitions]]
from = ["running", "waiting"]
to = "done"

[[jobs.quick.transitions]]
from = "*"
to = "failed"
reason = "infra_failure"

[[jobs.quick.transitions]]
from = "*"
to = "failed"
by = "user"
action = "cancel"
reason = "user_cancelled"

[[jobs.quick.transitions]]
from = "waiting"
to = "running"
by = "user"
action = "resume"

[jobs.quick.timeouts.waiting]
after = "1h"
to = "failed"
reason = "wait_timeout"

[jobs.quick.heartbeat]
interval = "20s"
lost_after = "1m"
grace = "1m"
states = ["running"]
lost_state = "lost"
expire_to = "failed"
reason = "client_disconnected"

[jobs.quick.concurrency]
key = "project"
max = 1
"#
    )
}

/// A server with the quick job type and a fast timer loop.
pub async fn spawn_jobs() -> TestApp {
    spawn_manifest(&quick_manifest()).await
}

pub async fn spawn_manifest(src: &str) -> TestApp {
    spawn_full(src, |s| s.jobs_timer_poll = Duration::from_millis(20)).await
}

impl TestApp {
    pub async fn create_job(&self, token: &str, body: Value) -> reqwest::Response {
        self.post_json("/v1/jobs", Some(token), body).await
    }

    /// Creates a quick job for `project` and returns it.
    pub async fn quick_job(&self, token: &str, project: &str) -> Value {
        let res = self
            .create_job(
                token,
                json!({"type": "quick", "input": {"project": project}}),
            )
            .await;
        assert_eq!(res.status(), 201);
        res.json().await.unwrap()
    }

    pub async fn job(&self, token: &str, id: &str) -> Value {
        let res = self.get_auth(&format!("/v1/jobs/{id}"), token).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// A service transition from the job's current version.
    pub async fn transition(&self, job: &Value, to: &str) -> reqwest::Response {
        let body = json!({"to": to, "expected_version": job["version"]});
        let path = format!(
            "/v1/service/jobs/{}/transition",
            job["id"].as_str().unwrap()
        );
        self.service(Method::POST, &path, Some(body)).await
    }

    /// A service transition that must succeed; returns the job after it.
    pub async fn moved(&self, job: &Value, to: &str) -> Value {
        let res = self.transition(job, to).await;
        assert_eq!(res.status(), 200, "{to}: {:?}", res.text().await);
        res.json().await.unwrap()
    }

    pub async fn action(&self, token: &str, job: &Value, action: &str) -> reqwest::Response {
        let id = job["id"].as_str().unwrap();
        let path = format!("/v1/jobs/{id}/actions/{action}");
        self.post_json(&path, Some(token), json!({})).await
    }

    /// Polls (20 ms apart, at most 10 s) until the job is in `state`.
    pub async fn wait_for_state(&self, token: &str, id: &str, state: &str) -> Value {
        for _ in 0..500 {
            let job = self.job(token, id).await;
            if job["state"] == state {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "job {id} never reached {state}: {:?}",
            self.job(token, id).await
        );
    }

    pub async fn events(&self, token: &str, id: &str, after: i64) -> Value {
        let res = self
            .get_auth(&format!("/v1/jobs/{id}/events?after={after}"), token)
            .await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}
