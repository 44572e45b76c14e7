//! Every example manifest, every plan, every limit: a user on that plan reserves exactly up
//! to the limit, and the next unit is refused by the gate the manifest implies.
use reqwest::Method;
use serde_json::json;

use crate::helpers::{error_of, spawn_full};

#[tokio::test]
async fn every_seed_plan_walks_to_its_limit() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut walked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let manifest = keel_core::manifest::parse_str(&src, "walk.toml")
            .unwrap()
            .manifest;
        let app = spawn_full(&src, |_| {}).await;
        for (plan_name, plan) in &manifest.plans {
            for meter in plan.limits.keys() {
                let (_, user) = app.user().await;
                let now = chrono::Utc::now();
                let body = json!({"plan": plan_name, "status": "active",
                    "period_start": now - chrono::Duration::days(1), "period_end": now + chrono::Duration::days(29)});
                let res = app
                    .service(
                        Method::PUT,
                        &format!("/v1/service/users/{user}/subscription"),
                        Some(body),
                    )
                    .await;
                assert_eq!(res.status(), 200);
                let terms =
                    keel_core::billing::plan_gates(&manifest, plan_name, &[], meter, 1, now, None)
                        .unwrap();
                let price = plan.unit_prices_micros.get(meter).map_or(0, |m| m.0);
                // Units each gate admits; the smallest one decides.
                let (cap, code) = terms
                    .gates
                    .iter()
                    .map(|g| {
                        if g.meter == "$spend" {
                            (if price > 0 { g.limit / price } else { i64::MAX }, g.code)
                        } else {
                            (g.limit, g.code)
                        }
                    })
                    .min_by_key(|(units, _)| *units)
                    .unwrap();
                if plan.prepaid {
                    let top = json!({"delta_micros": price.saturating_mul(cap + 10).max(1), "idempotency_key": format!("top-{user}")});
                    app.service(
                        Method::POST,
                        &format!("/v1/service/users/{user}/balance"),
                        Some(top),
                    )
                    .await;
                }
                let res = app.reserve(&user, meter, cap, "all").await;
                assert_eq!(
                    res.status(),
                    201,
                    "{} {plan_name} {meter}: {:?}",
                    path.display(),
                    res.text().await
                );
                let res = app.reserve(&user, meter, 1, "one-more").await;
                let status = res.status();
                let err = error_of(res).await;
                assert_eq!(
                    err["code"],
                    code,
                    "{} {plan_name} {meter}: {err}",
                    path.display()
                );
                assert!(status == 429 || status == 402);
                walked += 1;
            }
        }
    }
    assert!(walked >= 10, "walked {walked} limits");
}
