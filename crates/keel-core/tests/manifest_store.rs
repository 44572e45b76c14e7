//! `[store_products]`: products map to plans of the manifest, with clear errors otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keel_core::manifest;

const HEAD: &str = "[product]\nname = \"p\"\ndefault_plan = \"free\"\n\n[plans.free]\n\n[plans.pro]\n[plans.pro.limits.jobs]\nlimit = 5\nwindow = \"day\"\n[plans.pro.addons.boost]\nmeter = \"jobs\"\npercent = 25\n\n[meters.jobs]\nunit = \"job\"\n";

fn messages(body: &str) -> Vec<String> {
    match manifest::parse_str(&format!("{HEAD}{body}"), "keel.toml") {
        Ok(_) => panic!("expected errors in:\n{body}"),
        Err(e) => {
            e.0.iter()
                .map(|e| format!("{} {}", e.key, e.message))
                .collect()
        }
    }
}

#[test]
fn store_products_map_product_ids_to_plans_with_addons_and_grace() {
    let src = format!("{HEAD}[store_products.appstore.\"com.app.pro.monthly\"]\nplan = \"pro\"\naddons = [\"boost\"]\n[store_products.googleplay.\"pro_monthly\"]\nplan = \"pro\"\ngrace = \"3d\"\n");
    let m = manifest::parse_str(&src, "keel.toml").unwrap().manifest;
    let (id, p) = m
        .store_products
        .find("appstore", &["nope", "com.app.pro.monthly"])
        .unwrap();
    assert_eq!(
        (id, p.plan.as_str(), p.addons.clone()),
        ("com.app.pro.monthly", "pro", vec!["boost".to_string()])
    );
    let g = &m.store_products.googleplay["pro_monthly"];
    assert_eq!(g.grace.unwrap().as_secs(), 3 * 86_400);
    assert!(m.store_products.find("stripe", &["pro_monthly"]).is_none());
    assert!(m.store_products.find("paypal", &["pro_monthly"]).is_none());
}

#[test]
fn bad_store_products_are_reported_with_their_keys() {
    let found = messages("[store_products.stripe.\"price_1\"]\nplan = \"gold\"\n");
    assert!(
        found
            .iter()
            .any(|m| m.starts_with("store_products.stripe.price_1.plan")
                && m.contains("undefined plan `gold`")),
        "{found:?}"
    );
    let found =
        messages("[store_products.stripe.\"price_1\"]\nplan = \"pro\"\naddons = [\"turbo\"]\n");
    assert!(
        found
            .iter()
            .any(|m| m.contains("plan `pro` has no add-on `turbo`")),
        "{found:?}"
    );
    let found = messages("[store_products.stripe.\"price_1\"]\nplan = \"pro\"\ngrace = \"100d\"\n");
    assert!(
        found.iter().any(|m| m.contains("longer than 90 days")),
        "{found:?}"
    );
    let found = messages("[store_products.paypal.\"x\"]\nplan = \"pro\"\n");
    assert!(found.iter().any(|m| m.contains("paypal")), "{found:?}");
    let found = messages("[store_products.stripe.\"x\"]\nplan = \"pro\"\nprice = 5\n");
    assert!(found.iter().any(|m| m.contains("price")), "{found:?}");
    let found = messages("[store_products.stripe.\"\"]\nplan = \"pro\"\n");
    assert!(
        found.iter().any(|m| m.contains("1 to 255 characters")),
        "{found:?}"
    );
}
