//! `webhook_*` settings: the delivery worker, its timeouts and which URLs endpoints may have.

use std::time::Duration;

use keel_core::manifest::DurationSpec;

/// How outbound webhooks are delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Whether this node runs the delivery worker (`webhook_worker`, default on).
    pub worker: bool,
    /// How often the worker looks for due deliveries when idle (`webhook_poll_interval`).
    pub poll_interval: Duration,
    /// Longest one attempt may take, connection included (`webhook_timeout`).
    pub timeout: Duration,
    /// Allow endpoint URLs on loopback, private and link-local addresses
    /// (`webhook_allow_private_urls`, default off).
    pub allow_private_urls: bool,
    /// Most response-body bytes kept with an attempt.
    pub max_recorded_body: usize,
    /// Most deliveries one claim takes.
    pub batch: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            worker: true,
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(15),
            allow_private_urls: false,
            max_recorded_body: 4096,
            batch: 32,
        }
    }
}

/// Applies one `webhook_*` key.
pub(crate) fn apply(s: &mut WebhookSettings, key: &str, v: &str) -> Result<(), &'static str> {
    let duration = |v: &str, max: u64| {
        v.parse::<DurationSpec>()
            .ok()
            .map(|d| d.as_duration())
            .filter(|d| *d >= Duration::from_millis(10) && d.as_secs() <= max)
    };
    let flag = |v: &str| match v {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err("on or off"),
    };
    match key {
        "webhook_worker" => s.worker = flag(v)?,
        "webhook_allow_private_urls" => s.allow_private_urls = flag(v)?,
        "webhook_poll_interval" => {
            s.poll_interval = duration(v, 3600).ok_or("a duration from 10ms to 1h, like 1s")?
        }
        "webhook_timeout" => {
            s.timeout = duration(v, 300).ok_or("a duration from 10ms to 5m, like 15s")?
        }
        _ => return Err("a known setting"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn webhook_keys_parse_and_refuse_nonsense() {
        let mut s = WebhookSettings::default();
        apply(&mut s, "webhook_worker", "off").unwrap();
        apply(&mut s, "webhook_timeout", "3s").unwrap();
        apply(&mut s, "webhook_allow_private_urls", "on").unwrap();
        assert!(!s.worker && s.allow_private_urls);
        assert_eq!(s.timeout, Duration::from_secs(3));
        assert!(apply(&mut s, "webhook_timeout", "1h").is_err());
        assert!(apply(&mut s, "webhook_worker", "maybe").is_err());
        assert!(apply(&mut s, "webhook_poll_interval", "0s").is_err());
    }
}
