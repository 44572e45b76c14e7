//! Sign-in throttling per account and per IP, counted in the store so every node agrees.

use axum::http::{header, HeaderValue, StatusCode};
use chrono::Utc;
use keel_core::identity::ThrottlePolicy;
use serde_json::json;

use super::Identity;
use crate::ApiError;

/// The keys an attempt is counted under.
pub(crate) fn keys(account: &str, ip: Option<&str>) -> Vec<(String, ThrottlePolicy)> {
    let mut keys = vec![(format!("acct:{account}"), ThrottlePolicy::ACCOUNT)];
    if let Some(ip) = ip {
        keys.push((format!("ip:{ip}"), ThrottlePolicy::IP));
    }
    keys
}

impl Identity {
    /// Refuses the attempt with 429 while any of its keys must wait.
    pub(crate) async fn check_throttle(
        &self,
        keys: &[(String, ThrottlePolicy)],
    ) -> Result<(), ApiError> {
        let now = Utc::now();
        for (key, policy) in keys {
            let Some(count) = self.store.failure_count(key).await? else {
                continue;
            };
            if (now - count.window_start).num_seconds() > policy.window_secs {
                continue;
            }
            let since_last = (now - count.last_failure).num_seconds();
            if let Some(wait) = policy.retry_after(count.failures, since_last) {
                return Err(too_many(wait));
            }
        }
        Ok(())
    }

    /// Counts a failure under every key.
    pub(crate) async fn record_failure(
        &self,
        keys: &[(String, ThrottlePolicy)],
    ) -> Result<(), ApiError> {
        let now = Utc::now();
        for (key, policy) in keys {
            self.store
                .record_failure(key, now, policy.window_secs)
                .await?;
        }
        Ok(())
    }
}

fn too_many(wait: i64) -> ApiError {
    let value = HeaderValue::from_str(&wait.to_string()).unwrap_or(HeaderValue::from_static("1"));
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed sign-in attempts; try again in {wait} s"),
    )
    .with_details(json!({ "retry_after_seconds": wait }))
    .with_header(header::RETRY_AFTER, value)
}
