//! Jobs over HTTP: create, dedupe, caps, listing, service transitions, actions, events.

use reqwest::Method;
use serde_json::json;

use crate::helpers::error_of;
use crate::jobs_helpers::spawn_jobs;

#[tokio::test]
async fn a_double_create_with_one_key_makes_one_job() {
    let app = spawn_jobs().await;
    let (token, user) = app.user().await;
    let body = json!({"type": "quick", "input": {"project": "a"}, "idempotency_key": "click-1"});
    let first = app.create_job(&token, body.clone()).await;
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!(
        (first["state"].as_str(), first["version"].as_i64()),
        (Some("queued"), Some(1))
    );
    assert_eq!(first["user_id"], user.as_str());
    let again = app.create_job(&token, body).await;
    assert_eq!(again.status(), 200);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let page: serde_json::Value = app.get_auth("/v1/jobs", &token).await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_creates_get_clear_codes_and_change_nothing() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let cases = [
        (json!({"type": "nope"}), 422, "unknown_job_type"),
        (json!({"type": "quick", "input": [1]}), 422, "invalid_input"),
        (json!({"type": "quick", "input": {}}), 422, "invalid_input"),
        // The demo's task needs the `tasks` feature, which the free plan lacks.
        (json!({"type": "task"}), 403, "feature_not_in_plan"),
    ];
    for (body, status, code) in cases {
        let res = app.create_job(&token, body).await;
        assert_eq!(res.status(), status);
        assert_eq!(error_of(res).await["code"], code);
    }
    let page: serde_json::Value = app.get_auth("/v1/jobs", &token).await.json().await.unwrap();
    assert!(page["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn one_active_job_per_project() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "site-1").await;
    let res = app
        .create_job(
            &token,
            json!({"type": "quick", "input": {"project": "site-1"}}),
        )
        .await;
    assert_eq!(res.status(), 409);
    let err = error_of(res).await;
    assert_eq!(
        (err["code"].as_str(), err["details"]["max"].as_i64()),
        (Some("concurrency_limit"), Some(1))
    );
    app.quick_job(&token, "site-2").await;
    let cancel = app
        .post_json(
            &format!("/v1/jobs/{}/cancel", job["id"].as_str().unwrap()),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status(), 200);
    let cancelled: serde_json::Value = cancel.json().await.unwrap();
    assert_eq!(
        (cancelled["state"].as_str(), cancelled["reason"].as_str()),
        (Some("failed"), Some("user_cancelled"))
    );
    app.quick_job(&token, "site-1").await;
}

#[tokio::test]
async fn another_users_job_is_not_found_and_cursors_are_checked() {
    let app = spawn_jobs().await;
    let (mine, _) = app.user().await;
    let (theirs, _) = app.user().await;
    let mut ids = Vec::new();
    for p in ["a", "b", "c"] {
        ids.push(
            app.quick_job(&mine, p).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let res = app.get_auth(&format!("/v1/jobs/{}", ids[0]), &theirs).await;
    assert_eq!(res.status(), 404);
    assert_eq!(error_of(res).await["code"], "job_not_found");
    let res = app.get_auth("/v1/jobs/job_nonsense", &mine).await;
    assert_eq!(res.status(), 404);
    let res = app.get_auth("/v1/jobs?cursor=garbage", &mine).await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_of(res).await["code"], "invalid_cursor");
    let page: serde_json::Value = app
        .get_auth("/v1/jobs?limit=2", &mine)
        .await
        .json()
        .await
        .unwrap();
    let got: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, vec![ids[2].clone(), ids[1].clone()]);
    let next = page["next_cursor"].as_str().unwrap();
    let page: serde_json::Value = app
        .get_auth(&format!("/v1/jobs?limit=2&cursor={next}"), &mine)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"][0]["id"], ids[0].as_str());
    let theirs_page: serde_json::Value = app
        .get_auth("/v1/jobs", &theirs)
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs_page["data"].as_array().unwrap().is_empty());
    let filtered: serde_json::Value = app
        .get_auth("/v1/jobs?state=running", &mine)
        .await
        .json()
        .await
        .unwrap();
    assert!(filtered["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn service_transitions_are_compare_and_set_and_checked() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p").await;
    let running = app.moved(&job, "running").await;
    assert_eq!(running["version"], 2);
    // Stale: the job moved since version 1.
    let res = app.transition(&job, "waiting").await;
    assert_eq!(res.status(), 409);
    let err = error_of(res).await;
    assert_eq!(err["code"], "version_conflict");
    assert_eq!(
        (
            err["details"]["state"].as_str(),
            err["details"]["version"].as_i64()
        ),
        (Some("running"), Some(2))
    );
    // Invalid: running cannot go back to queued; the allowed targets are listed.
    let res = app.transition(&running, "queued").await;
    assert_eq!(res.status(), 422);
    let err = error_of(res).await;
    assert_eq!(err["code"], "invalid_transition");
    assert_eq!(
        err["details"]["allowed"],
        json!(["waiting", "done", "failed"])
    );
    let done = app.moved(&running, "done").await;
    assert_eq!(done["finished"], true);
    let res = app.transition(&done, "failed").await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_of(res).await["code"], "terminal_state");
    let res = app
        .service(
            Method::POST,
            "/v1/service/jobs/job_00000000000000000000000000000000/transition",
            Some(json!({"to": "done", "expected_version": 1})),
        )
        .await;
    assert_eq!(res.status(), 404);
    let after = app.job(&token, job["id"].as_str().unwrap()).await;
    assert_eq!(
        (after["state"].as_str(), after["version"].as_i64()),
        (Some("done"), Some(3))
    );
}

#[tokio::test]
async fn user_actions_follow_the_manifest() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p").await;
    let res = app.action(&token, &job, "explode").await;
    assert_eq!(res.status(), 404);
    assert_eq!(error_of(res).await["code"], "unknown_action");
    let res = app.action(&token, &job, "resume").await;
    assert_eq!(res.status(), 422);
    assert_eq!(error_of(res).await["code"], "invalid_transition");
    let running = app.moved(&job, "running").await;
    let waiting = app.moved(&running, "waiting").await;
    let res = app.action(&token, &waiting, "resume").await;
    assert_eq!(res.status(), 200);
    let resumed: serde_json::Value = res.json().await.unwrap();
    assert_eq!(resumed["state"], "running");
    let events = app.events(&token, job["id"].as_str().unwrap(), 0).await;
    let states: Vec<_> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, vec!["queued", "running", "waiting", "running"]);
    assert_eq!(events["data"][3]["data"]["by"], "user");
}

#[tokio::test]
async fn events_append_in_order_with_limits_and_visibility() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p").await;
    let id = job["id"].as_str().unwrap();
    let path = format!("/v1/service/jobs/{id}/events");
    for (i, visible) in [true, false, true].into_iter().enumerate() {
        let body = json!({"type": "log", "data": {"line": i}, "user_visible": visible});
        let res = app.service(Method::POST, &path, Some(body)).await;
        assert_eq!(res.status(), 201);
        let e: serde_json::Value = res.json().await.unwrap();
        assert_eq!(e["seq"], i as i64 + 2);
    }
    let big = json!({"type": "log", "data": {"blob": "x".repeat(70 * 1024)}});
    let res = app.service(Method::POST, &path, Some(big)).await;
    assert_eq!(res.status(), 413);
    assert_eq!(error_of(res).await["code"], "event_too_large");
    let res = app
        .service(Method::POST, &path, Some(json!({"type": "state_change"})))
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(error_of(res).await["code"], "invalid_event_type");
    assert_eq!(app.job(&token, id).await["last_seq"], 4);
    let page = app.events(&token, id, 1).await;
    let seqs: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        vec![2, 4],
        "the hidden event is not shown to the owner"
    );
    assert_eq!(page["next_after"], 4);
    let res = app
        .get_auth(&format!("/v1/jobs/{id}/events?after=x"), &token)
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_of(res).await["code"], "invalid_cursor");
    let failed = app.moved(&app.job(&token, id).await, "failed").await;
    assert_eq!(failed["reason"], "infra_failure");
    let res = app
        .service(Method::POST, &path, Some(json!({"type": "log"})))
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_of(res).await["code"], "job_finished");
    let res = app
        .post_json(&format!("/v1/jobs/{id}/heartbeat"), Some(&token), json!({}))
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_of(res).await["code"], "job_finished");
}
