//! `stripe_*` settings, and the Stripe secret key (from the environment or a file only).

use std::collections::BTreeMap;

use crate::ConfigError;

/// A Stripe secret key; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct StripeKey(String);

impl StripeKey {
    /// The key, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A key that looks like a Stripe secret (`sk_…`) or restricted (`rk_…`) key.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let ok = (text.starts_with("sk_") || text.starts_with("rk_"))
            && (8..=255).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| Self(text.to_string()))
    }
}

impl std::fmt::Debug for StripeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeKey(<redacted>)")
    }
}

/// How Keel talks to Stripe for checkout and the billing portal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeSettings {
    /// `KEEL_STRIPE_SECRET_KEY` or the file `KEEL_STRIPE_SECRET_KEY_FILE` names.
    pub secret_key: Option<StripeKey>,
    /// Stripe's API (`stripe_api_base`, default `https://api.stripe.com`).
    pub api_base: String,
    /// Where Checkout sends the user after paying (`stripe_success_url`).
    pub success_url: Option<String>,
    /// Where Checkout sends the user who backs out (`stripe_cancel_url`).
    pub cancel_url: Option<String>,
    /// Where the Billing Portal's "return" link goes (`stripe_portal_return_url`).
    pub portal_return_url: Option<String>,
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            secret_key: None,
            api_base: "https://api.stripe.com".into(),
            success_url: None,
            cancel_url: None,
            portal_return_url: None,
        }
    }
}

fn http_url(v: &str) -> Result<String, &'static str> {
    let v = v.trim();
    let ok = (v.starts_with("https://") || v.starts_with("http://"))
        && v.len() > "https://".len()
        && v.len() <= 2048
        && !v.chars().any(char::is_whitespace);
    ok.then(|| v.trim_end_matches('/').to_string())
        .ok_or("an absolute http:// or https:// URL")
}

/// Applies one `stripe_*` key.
pub(crate) fn apply(s: &mut StripeSettings, key: &str, v: &str) -> Result<(), &'static str> {
    let optional = |v: &str| -> Result<Option<String>, &'static str> {
        if v.trim().is_empty() {
            Ok(None)
        } else {
            // Checkout substitutes `{CHECKOUT_SESSION_ID}`; keep the URL as given.
            http_url(v).map(|_| Some(v.trim().to_string()))
        }
    };
    match key {
        "stripe_api_base" => s.api_base = http_url(v)?,
        "stripe_success_url" => s.success_url = optional(v)?,
        "stripe_cancel_url" => s.cancel_url = optional(v)?,
        "stripe_portal_return_url" => s.portal_return_url = optional(v)?,
        _ => return Err("a known setting"),
    }
    Ok(())
}

/// The key from `KEEL_STRIPE_SECRET_KEY`, else from the file `KEEL_STRIPE_SECRET_KEY_FILE`
/// names; never from `keel.toml` or a flag, and never echoed in an error.
pub(crate) fn secret_key(env: &BTreeMap<String, String>) -> Result<Option<StripeKey>, ConfigError> {
    let bad = |key: &str, value: &str, expected: &str| ConfigError {
        key: key.into(),
        value: value.into(),
        expected: expected.into(),
    };
    const EXPECTED: &str = "a Stripe secret key (sk_…) or restricted key (rk_…)";
    if let Some(text) = env.get("KEEL_STRIPE_SECRET_KEY").filter(|t| !t.is_empty()) {
        return StripeKey::parse(text)
            .map(Some)
            .ok_or_else(|| bad("KEEL_STRIPE_SECRET_KEY", "<redacted>", EXPECTED));
    }
    if let Some(path) = env
        .get("KEEL_STRIPE_SECRET_KEY_FILE")
        .filter(|p| !p.is_empty())
    {
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(
                "KEEL_STRIPE_SECRET_KEY_FILE",
                path,
                &format!("a readable key file ({e})"),
            )
        })?;
        return StripeKey::parse(&text)
            .map(Some)
            .ok_or_else(|| bad("KEEL_STRIPE_SECRET_KEY_FILE", path, EXPECTED));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_key_comes_from_the_environment_and_is_never_shown() {
        let mut env = BTreeMap::new();
        env.insert("KEEL_STRIPE_SECRET_KEY".into(), "sk_test_abc123XYZ".into());
        let key = secret_key(&env).unwrap().unwrap();
        assert_eq!(key.expose(), "sk_test_abc123XYZ");
        assert!(!format!("{key:?}").contains("abc123"));
        env.insert("KEEL_STRIPE_SECRET_KEY".into(), "pk_test_public".into());
        let err = secret_key(&env).unwrap_err();
        assert!(!err.to_string().contains("pk_test_public"));
    }

    #[test]
    fn urls_must_be_http() {
        let mut s = StripeSettings::default();
        apply(&mut s, "stripe_api_base", "http://127.0.0.1:9/").unwrap();
        assert_eq!(s.api_base, "http://127.0.0.1:9");
        assert!(apply(&mut s, "stripe_api_base", "ftp://x").is_err());
        apply(
            &mut s,
            "stripe_success_url",
            "https://app.example/ok?s={CHECKOUT_SESSION_ID}",
        )
        .unwrap();
        assert!(s.success_url.unwrap().ends_with("{CHECKOUT_SESSION_ID}"));
    }
}
