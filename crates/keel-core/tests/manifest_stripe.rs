//! `[plans.<name>.stripe]`: the Stripe price a checkout subscribes to, validated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keel_core::manifest;

const HEAD: &str =
    "[product]\nname = \"p\"\ndefault_plan = \"free\"\n\n[plans.free]\n\n[plans.pro]\n";

#[test]
fn a_plan_names_its_stripe_price() {
    let src = format!("{HEAD}[plans.pro.stripe]\nprice = \"price_1PkeelPro_monthly\"\n");
    let loaded = manifest::parse_str(&src, "keel.toml").unwrap();
    let pro = &loaded.manifest.plans["pro"];
    assert_eq!(
        pro.stripe.as_ref().unwrap().price,
        "price_1PkeelPro_monthly"
    );
    assert!(loaded.manifest.plans["free"].stripe.is_none());
}

#[test]
fn a_malformed_price_or_an_unknown_key_is_reported_with_its_line() {
    for (body, key) in [
        ("price = \"prod_123\"", "plans.pro.stripe.price"),
        ("price = \"price_\"", "plans.pro.stripe.price"),
        ("price = \"price_a b\"", "plans.pro.stripe.price"),
        (
            "price = \"price_1\"\nproduct = \"prod_1\"",
            "plans.pro.stripe.product",
        ),
    ] {
        let src = format!("{HEAD}[plans.pro.stripe]\n{body}\n");
        let errors = manifest::parse_str(&src, "keel.toml").unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, key, "{errors:?}");
        assert!(errors[0].line >= 9, "{errors:?}");
    }
}
