//! `PATCH /v1/me`: the user's own time zone.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_app, TestApp};

async fn patch(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client
        .request(Method::PATCH, app.url("/v1/me"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_sets_a_time_zone_once_then_waits_to_change_it() {
    let app = spawn_app().await;
    let (access, _) = app.user().await;
    let me: Value = app.get_auth("/v1/me", &access).await.json().await.unwrap();
    assert_eq!(me["timezone"], Value::Null);

    let res = patch(&app, &access, json!({"timezone": "America/New_York"})).await;
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["timezone"], "America/New_York");

    // Leaving the field out changes nothing; a second change is too soon.
    assert_eq!(patch(&app, &access, json!({})).await.status(), 200);
    let res = patch(&app, &access, json!({"timezone": "Asia/Tokyo"})).await;
    assert_eq!(res.status(), 422);
    assert_eq!(error_of(res).await["code"], "timezone_change_too_soon");
    let me: Value = app.get_auth("/v1/me", &access).await.json().await.unwrap();
    assert_eq!(me["timezone"], "America/New_York");
}

#[tokio::test]
async fn bad_time_zones_and_fields_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (access, _) = app.user().await;
    for (body, code) in [
        (json!({"timezone": "Mars/Olympus"}), "invalid_timezone"),
        (json!({"timezone": "europe/paris"}), "invalid_timezone"),
        (json!({"timezone": 5}), "validation_failed"),
        (json!({"nickname": "x"}), "validation_failed"),
    ] {
        let res = patch(&app, &access, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(error_of(res).await["code"], code, "{body}");
    }
    let me: Value = app.get_auth("/v1/me", &access).await.json().await.unwrap();
    assert_eq!(me["timezone"], Value::Null);
    // Setting it works afterwards: the refusals did not count as a change.
    let res = patch(&app, &access, json!({"timezone": "Europe/Paris"})).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn daily_limits_reset_at_midnight_in_the_users_own_time_zone() {
    use chrono::{Duration, TimeZone, Utc};
    use keel_core::manifest::Tz;
    let app = spawn_app().await;
    let (access, _) = app.user().await;
    let zone = "Pacific/Kiritimati"; // UTC+14: its day rarely matches the UTC day
    assert_eq!(
        patch(&app, &access, json!({"timezone": zone}))
            .await
            .status(),
        200
    );
    let e: Value = app
        .get_auth("/v1/entitlements", &access)
        .await
        .json()
        .await
        .unwrap();
    let daily = e["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["window"] == "day")
        .unwrap()
        .clone();
    let tz: Tz = zone.parse().unwrap();
    let local_tomorrow = Utc::now().with_timezone(&tz).date_naive() + Duration::days(1);
    let expected = tz
        .from_local_datetime(&local_tomorrow.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let resets: chrono::DateTime<Utc> = daily["resets_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(resets, expected, "{daily}");
}
