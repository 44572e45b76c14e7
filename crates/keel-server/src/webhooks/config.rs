//! Inbound webhook settings. Secrets and trust anchors come from the environment or from
//! files it names, never from `keel.toml` or flags, and are never printed (`Debug` shows
//! only how many there are).

use std::collections::BTreeMap;
use std::time::Duration;

use keel_core::manifest::DurationSpec;

use crate::config::ConfigError;

/// The webhook settings the server runs with.
#[derive(Clone)]
pub struct WebhookSettings {
    /// Stripe endpoint secrets (`whsec_…`); several while rotating.
    pub stripe_secrets: Vec<Vec<u8>>,
    /// How far Stripe's `t` may be from now.
    pub stripe_tolerance: Duration,
    /// Lemon Squeezy signing secrets.
    pub lemonsqueezy_secrets: Vec<Vec<u8>>,
    /// DER certificates App Store chains must reach (Apple Root CA - G3 in production).
    pub appstore_roots: Vec<Vec<u8>>,
    /// When set, notifications for another bundle id are refused.
    pub appstore_bundle_id: Option<String>,
    /// The Pub/Sub push token's expected audience; Google Play is off without it.
    pub google_audience: Option<String>,
    /// The token's expected issuer.
    pub google_issuer: String,
    /// When set, the token's `email` claim must equal it (the push subscription's service account).
    pub google_email: Option<String>,
    /// The JWKS (JSON) whose keys sign push tokens, from a file.
    pub google_jwks: Option<String>,
    /// Or the URL it is fetched from (cached for an hour, refreshed on an unknown key).
    pub google_jwks_url: Option<String>,
    /// When set, notifications for another package are refused.
    pub google_package: Option<String>,
    /// Whether this node runs the inbox worker.
    pub worker: bool,
    /// Attempts before an event is dead-lettered.
    pub max_attempts: i64,
    /// How often the worker looks for due events.
    pub poll_interval: Duration,
    /// The first retry's delay; each next one doubles, up to an hour.
    pub retry_base: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            stripe_secrets: Vec::new(),
            stripe_tolerance: Duration::from_secs(300),
            lemonsqueezy_secrets: Vec::new(),
            appstore_roots: Vec::new(),
            appstore_bundle_id: None,
            google_audience: None,
            google_issuer: "https://accounts.google.com".into(),
            google_email: None,
            google_jwks: None,
            google_jwks_url: None,
            google_package: None,
            worker: true,
            max_attempts: 8,
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("stripe_secrets", &self.stripe_secrets.len())
            .field("lemonsqueezy_secrets", &self.lemonsqueezy_secrets.len())
            .field("appstore_roots", &self.appstore_roots.len())
            .field("google_audience", &self.google_audience)
            .field("worker", &self.worker)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// The environment variables read here.
pub const ENV_KEYS: &[&str] = &[
    "KEEL_STRIPE_WEBHOOK_SECRETS",
    "KEEL_STRIPE_WEBHOOK_SECRETS_FILE",
    "KEEL_STRIPE_WEBHOOK_TOLERANCE",
    "KEEL_LEMONSQUEEZY_WEBHOOK_SECRETS",
    "KEEL_LEMONSQUEEZY_WEBHOOK_SECRETS_FILE",
    "KEEL_APPSTORE_ROOT_CERTS",
    "KEEL_APPSTORE_BUNDLE_ID",
    "KEEL_GOOGLEPLAY_AUDIENCE",
    "KEEL_GOOGLEPLAY_ISSUER",
    "KEEL_GOOGLEPLAY_EMAIL",
    "KEEL_GOOGLEPLAY_JWKS_FILE",
    "KEEL_GOOGLEPLAY_JWKS_URL",
    "KEEL_GOOGLEPLAY_PACKAGE",
    "KEEL_INBOX_WORKER",
    "KEEL_INBOX_MAX_ATTEMPTS",
    "KEEL_INBOX_POLL_INTERVAL",
    "KEEL_INBOX_RETRY_BASE",
];

fn bad(key: &str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

fn read_file(key: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| bad(key, path, format!("a readable file ({e})")))
}

/// Secrets from `<key>` (comma separated) and the file `<key>_FILE` names (one a line).
fn secrets(env: &BTreeMap<String, String>, key: &str) -> Result<Vec<Vec<u8>>, ConfigError> {
    let mut out: Vec<String> = env
        .get(key)
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    let file_key = format!("{key}_FILE");
    if let Some(path) = env.get(&file_key).filter(|p| !p.is_empty()) {
        let text = String::from_utf8(read_file(&file_key, path)?)
            .map_err(|_| bad(&file_key, path, "a UTF-8 text file"))?;
        out.extend(text.lines().map(|l| l.trim().to_string()));
    }
    out.retain(|s| !s.is_empty());
    if out.iter().any(|s| s.len() < 16) {
        return Err(bad(key, "<redacted>", "secrets of at least 16 characters"));
    }
    Ok(out.into_iter().map(String::into_bytes).collect())
}

/// PEM (one or more `CERTIFICATE` blocks) or DER certificate files, comma separated.
fn certificates(key: &str, paths: &str) -> Result<Vec<Vec<u8>>, ConfigError> {
    let mut out = Vec::new();
    for path in paths.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        out.extend(
            super::appstore::parse_certificates(&read_file(key, path)?)
                .map_err(|e| bad(key, path, e))?,
        );
    }
    Ok(out)
}

impl WebhookSettings {
    /// Reads the settings from `KEEL_*` variables.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut s = WebhookSettings {
            stripe_secrets: secrets(env, "KEEL_STRIPE_WEBHOOK_SECRETS")?,
            lemonsqueezy_secrets: secrets(env, "KEEL_LEMONSQUEEZY_WEBHOOK_SECRETS")?,
            ..Default::default()
        };
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let duration = |k: &str, v: &str| {
            v.parse::<DurationSpec>()
                .map(|d| d.as_duration())
                .map_err(|_| bad(k, v, "a duration like 5s or 5m"))
        };
        if let Some(v) = get("KEEL_STRIPE_WEBHOOK_TOLERANCE") {
            s.stripe_tolerance = duration("KEEL_STRIPE_WEBHOOK_TOLERANCE", v)?;
        }
        if let Some(v) = get("KEEL_APPSTORE_ROOT_CERTS") {
            s.appstore_roots = certificates("KEEL_APPSTORE_ROOT_CERTS", v)?;
        }
        s.appstore_bundle_id = get("KEEL_APPSTORE_BUNDLE_ID").map(String::from);
        s.google_audience = get("KEEL_GOOGLEPLAY_AUDIENCE").map(String::from);
        if let Some(v) = get("KEEL_GOOGLEPLAY_ISSUER") {
            s.google_issuer = v.to_string();
        }
        s.google_email = get("KEEL_GOOGLEPLAY_EMAIL").map(String::from);
        s.google_package = get("KEEL_GOOGLEPLAY_PACKAGE").map(String::from);
        if let Some(path) = get("KEEL_GOOGLEPLAY_JWKS_FILE") {
            let text = String::from_utf8(read_file("KEEL_GOOGLEPLAY_JWKS_FILE", path)?)
                .map_err(|_| bad("KEEL_GOOGLEPLAY_JWKS_FILE", path, "a JSON Web Key Set"))?;
            super::googleplay::parse_jwks(&text)
                .map_err(|e| bad("KEEL_GOOGLEPLAY_JWKS_FILE", path, e))?;
            s.google_jwks = Some(text);
        }
        if let Some(url) = get("KEEL_GOOGLEPLAY_JWKS_URL") {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(bad("KEEL_GOOGLEPLAY_JWKS_URL", url, "an https:// URL"));
            }
            s.google_jwks_url = Some(url.to_string());
        }
        if let Some(v) = get("KEEL_INBOX_WORKER") {
            s.worker = match v {
                "on" | "true" => true,
                "off" | "false" => false,
                _ => return Err(bad("KEEL_INBOX_WORKER", v, "on or off")),
            };
        }
        if let Some(v) = get("KEEL_INBOX_MAX_ATTEMPTS") {
            s.max_attempts = v
                .parse()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| bad("KEEL_INBOX_MAX_ATTEMPTS", v, "a whole number from 1 to 100"))?;
        }
        if let Some(v) = get("KEEL_INBOX_POLL_INTERVAL") {
            s.poll_interval = duration("KEEL_INBOX_POLL_INTERVAL", v)?;
        }
        if let Some(v) = get("KEEL_INBOX_RETRY_BASE") {
            s.retry_base = duration("KEEL_INBOX_RETRY_BASE", v)?;
        }
        Ok(s)
    }

    /// The delay before attempt `attempts + 1`: `retry_base` doubling, capped at one hour.
    pub fn backoff(&self, attempts: i64) -> Duration {
        let factor = 1u32 << attempts.clamp(1, 20).saturating_sub(1) as u32;
        self.retry_base
            .saturating_mul(factor)
            .min(Duration::from_secs(3600))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secrets_come_from_the_env_and_files_and_errors_never_show_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stripe");
        std::fs::write(&file, "whsec_from_file_0123456789\n\n").unwrap();
        let s = WebhookSettings::from_env(&env(&[
            (
                "KEEL_STRIPE_WEBHOOK_SECRETS",
                "whsec_old_0123456789, whsec_new_0123456789",
            ),
            ("KEEL_STRIPE_WEBHOOK_SECRETS_FILE", file.to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(s.stripe_secrets.len(), 3);
        assert!(!format!("{s:?}").contains("whsec"));
        let err =
            WebhookSettings::from_env(&env(&[("KEEL_LEMONSQUEEZY_WEBHOOK_SECRETS", "short")]))
                .unwrap_err();
        assert_eq!(err.key, "KEEL_LEMONSQUEEZY_WEBHOOK_SECRETS");
        assert!(!err.to_string().contains("short"));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("KEEL_INBOX_WORKER", "maybe"),
            ("KEEL_INBOX_MAX_ATTEMPTS", "0"),
            ("KEEL_INBOX_RETRY_BASE", "soon"),
            ("KEEL_APPSTORE_ROOT_CERTS", "/nonexistent/root.pem"),
            ("KEEL_GOOGLEPLAY_JWKS_FILE", "/nonexistent/jwks.json"),
        ] {
            let err = WebhookSettings::from_env(&env(&[(key, value)])).unwrap_err();
            assert_eq!(err.key, key);
        }
    }

    #[test]
    fn retries_back_off_by_doubling_up_to_an_hour() {
        let s = WebhookSettings::default();
        let delays: Vec<u64> = (1..=4).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40]);
        assert_eq!(s.backoff(30).as_secs(), 3600);
    }
}
