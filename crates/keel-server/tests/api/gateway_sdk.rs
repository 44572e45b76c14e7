//! The gateway driven by the official `openai` Python package (`tests/sdk/openai_sdk.py`),
//! against keel-sim, on this run's backend; then the ledger checked from Rust.
//!
//! Needs a Python with `openai` installed: `KEEL_PYTHON` names it (`.ci/run` sets it to its
//! venv, where `.ci/requirements.txt` pins `openai`). Without `KEEL_PYTHON` the test says
//! so and passes trivially; CI always sets it, and then a missing package fails the test.

use std::process::Command;

use serde_json::json;

use crate::gateway_fixture::gateway;

#[tokio::test]
async fn the_official_openai_python_sdk_works_against_the_gateway() {
    let Some(python) = std::env::var_os("KEEL_PYTHON") else {
        eprintln!("KEEL_PYTHON unset: the openai SDK suite runs under bash .ci/run");
        return;
    };
    let gw = gateway().await;
    let (pro_access, _) = gw.user_on(Some("pro")).await;
    let (free_access, _) = gw.user_on(None).await;
    // The pro user calls with an API key scoped to the gateway, as an SDK client would.
    let res = gw
        .app
        .post_json(
            "/v1/api-keys",
            Some(&pro_access),
            json!({"name": "sdk", "scopes": ["gateway"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let key = res.json::<serde_json::Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk.py");
    let base = gw.app.url("/v1");
    let free_key = free_access.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("KEEL_BASE_URL", base)
            .env("KEEL_API_KEY", key)
            .env("KEEL_FREE_KEY", free_key)
            .env("KEEL_MODEL", "chat-openai")
            .env("KEEL_PRO_MODEL", "chat-l2")
            .output()
    })
    .await
    .unwrap()
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the SDK suite failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("RESULTS "), "{stdout}");
    eprintln!("{stdout}");
    // Every successful call of the script is on the ledger, exactly once.
    let usage = gw.usage(&pro_access).await;
    let (requests, entries) = usage["requests"];
    // Successful completions in the script: plain, stream+usage, stream, max_completion,
    // tool call, tool follow-up, streamed tool call, response_format = 8.
    assert_eq!(requests, 8, "{usage:?}");
    assert_eq!(entries, 8, "{usage:?}");
    let (tokens, _) = usage["tokens"];
    assert!(tokens > 0);
    // Refused calls bill nothing.
    assert!(gw.usage(&free_access).await.is_empty());
}
