//! Row decoding and attempt bookkeeping for the webhook store, shared by both backends.

use chrono::{DateTime, Utc};
use keel_core::outbound::{next_attempt_after, EventType, DISABLE_AFTER};

use crate::rows::Columns;
use crate::{
    AttemptRecord, AttemptResult, DeliveryStatus, EndpointRecord, MessageRecord, StoreError,
    StoreResult,
};

/// The columns of `webhook_endpoints`, in one place for both backends.
macro_rules! endpoint_columns {
    () => {
        "id, tenant_id, url, description, event_types, secret, previous_secret, \
         previous_until, enabled, disabled_reason, failing_since, created_at, updated_at"
    };
}
/// The columns of `webhook_messages`.
macro_rules! message_columns {
    () => {
        "id, tenant_id, event_type, payload, created_at"
    };
}
/// The columns of `webhook_attempts` read back.
macro_rules! attempt_columns {
    () => {
        "id, message_id, endpoint_id, attempt, attempted_at, status_code, latency_ms, error, \
         response_body, succeeded"
    };
}
pub(crate) use {attempt_columns, endpoint_columns, message_columns};

fn decode(what: &str) -> StoreError {
    StoreError::Driver(format!("stored {what} is malformed"))
}

fn event_types(names: Vec<String>) -> StoreResult<Vec<EventType>> {
    names
        .iter()
        .map(|n| n.parse().map_err(|_| decode("event type")))
        .collect()
}

/// Event types as stored: a JSON array of their names.
pub(crate) fn event_types_json(types: &[EventType]) -> serde_json::Value {
    serde_json::Value::Array(
        types
            .iter()
            .map(|t| serde_json::Value::String(t.as_str().into()))
            .collect(),
    )
}

pub(crate) fn endpoint(row: &impl Columns) -> StoreResult<EndpointRecord> {
    Ok(EndpointRecord {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        url: row.text("url")?,
        description: row.text("description")?,
        event_types: event_types(row.strings("event_types")?)?,
        secret: row.text("secret")?,
        previous_secret: row.opt_text("previous_secret")?,
        previous_until: row.opt_time("previous_until")?,
        enabled: row.flag("enabled")?,
        disabled_reason: row.opt_text("disabled_reason")?,
        failing_since: row.opt_time("failing_since")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn message(row: &impl Columns) -> StoreResult<MessageRecord> {
    Ok(MessageRecord {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        event_type: row
            .text("event_type")?
            .parse()
            .map_err(|_| decode("event type"))?,
        payload: row.json_value("payload")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn attempt(row: &impl Columns) -> StoreResult<AttemptRecord> {
    Ok(AttemptRecord {
        id: row.id("id")?,
        message_id: row.id("message_id")?,
        endpoint_id: row.id("endpoint_id")?,
        attempt: row.int("attempt")?,
        attempted_at: row.time("attempted_at")?,
        status_code: row.opt_int("status_code")?,
        latency_ms: row.int("latency_ms")?,
        error: row.opt_text("error")?,
        response_body: row.opt_text("response_body")?,
        succeeded: row.flag("succeeded")?,
    })
}

pub(crate) fn status(text: &str) -> StoreResult<DeliveryStatus> {
    DeliveryStatus::parse(text).ok_or_else(|| decode("delivery status"))
}

/// `(endpoint_id, status, attempts)` rows decoded.
pub(crate) fn deliveries(
    rows: Vec<(String, String, i64)>,
) -> StoreResult<Vec<(keel_core::ids::EndpointId, DeliveryStatus, i64)>> {
    rows.into_iter()
        .map(|(e, s, n)| {
            let e = e.parse().map_err(|_| decode("endpoint id"))?;
            Ok((e, status(&s)?, n))
        })
        .collect()
}

/// The outcome of an attempt that was recorded before (or whose endpoint is gone).
pub(crate) fn not_recorded() -> crate::AttemptOutcome {
    crate::AttemptOutcome {
        recorded: false,
        status: DeliveryStatus::Pending,
        next_attempt_at: None,
        endpoint_disabled: false,
    }
}

/// What one attempt does to its delivery and endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The delivery's new state.
    pub status: DeliveryStatus,
    /// Failures since the schedule started, after this attempt.
    pub failures: i64,
    /// Due again at, for `Pending`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The endpoint's new `failing_since`.
    pub failing_since: Option<DateTime<Utc>>,
    /// Disable the endpoint now.
    pub disable: bool,
}

/// Success ends the delivery and the endpoint's failure streak; a failure schedules the
/// next attempt (or ends the delivery dead) and disables an endpoint that has failed every
/// attempt for [`DISABLE_AFTER`].
pub(crate) fn verdict(
    failures_before: i64,
    result: &AttemptResult,
    failing_since: Option<DateTime<Utc>>,
    enabled: bool,
) -> Verdict {
    if result.succeeded {
        return Verdict {
            status: DeliveryStatus::Succeeded,
            failures: failures_before,
            next_attempt_at: None,
            failing_since: None,
            disable: false,
        };
    }
    let failures = failures_before.saturating_add(1);
    let next = u32::try_from(failures)
        .ok()
        .and_then(|n| next_attempt_after(n, result.attempted_at));
    let since = failing_since.unwrap_or(result.attempted_at);
    Verdict {
        status: if next.is_some() {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Dead
        },
        failures,
        next_attempt_at: next,
        failing_since: Some(since),
        disable: enabled && result.attempted_at - since >= DISABLE_AFTER,
    }
}

/// The secrets that sign now: the current one, and the previous one until it lapses.
pub(crate) fn signing_secrets(e: &EndpointRecord, now: DateTime<Utc>) -> Vec<String> {
    let mut secrets = vec![e.secret.clone()];
    if let (Some(previous), Some(until)) = (&e.previous_secret, e.previous_until) {
        if until > now {
            secrets.push(previous.clone());
        }
    }
    secrets
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeDelta;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn failed(at: DateTime<Utc>) -> AttemptResult {
        AttemptResult {
            attempted_at: at,
            status_code: Some(500),
            latency_ms: 3,
            error: None,
            response_body: None,
            succeeded: false,
        }
    }

    #[test]
    fn a_failure_schedules_the_next_attempt_and_the_eighth_is_dead() {
        let v = verdict(0, &failed(at(0)), None, true);
        assert_eq!(v.status, DeliveryStatus::Pending);
        assert_eq!(v.next_attempt_at, Some(at(5)));
        assert_eq!(v.failing_since, Some(at(0)));
        let last = verdict(7, &failed(at(0)), Some(at(-10)), true);
        assert_eq!(
            (last.status, last.next_attempt_at),
            (DeliveryStatus::Dead, None)
        );
    }

    #[test]
    fn five_days_of_failures_disable_an_enabled_endpoint() {
        let start = at(0);
        let just_before = start + DISABLE_AFTER - TimeDelta::seconds(1);
        assert!(!verdict(0, &failed(just_before), Some(start), true).disable);
        assert!(verdict(0, &failed(start + DISABLE_AFTER), Some(start), true).disable);
        assert!(!verdict(0, &failed(start + DISABLE_AFTER), Some(start), false).disable);
        let ok = AttemptResult {
            succeeded: true,
            ..failed(start + DISABLE_AFTER)
        };
        let v = verdict(3, &ok, Some(start), true);
        assert_eq!(
            (v.status, v.failing_since, v.disable),
            (DeliveryStatus::Succeeded, None, false)
        );
    }
}
