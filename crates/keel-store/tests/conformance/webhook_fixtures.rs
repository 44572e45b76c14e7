//! Webhook endpoints, messages and attempt results for the conformance tests.

use chrono::{DateTime, Utc};
use keel_core::ids::EndpointId;
use keel_core::outbound::{EndpointSecret, EventType};
use keel_store::{
    AttemptResult, DynStore, EndpointRecord, MessageRecord, NewEndpoint, OutboxMessage, TenantScope,
};

pub fn new_endpoint(types: &[EventType]) -> NewEndpoint {
    NewEndpoint {
        id: EndpointId::new(),
        url: "https://hooks.example.com/keel".into(),
        description: "test".into(),
        event_types: types.to_vec(),
        secret: EndpointSecret::generate().expose(),
    }
}

pub async fn endpoint(
    store: &DynStore,
    scope: &TenantScope,
    types: &[EventType],
) -> EndpointRecord {
    store
        .create_endpoint(scope, new_endpoint(types))
        .await
        .unwrap()
}

pub async fn flagged(store: &DynStore, scope: &TenantScope) -> MessageRecord {
    store
        .enqueue(
            scope,
            OutboxMessage {
                event_type: EventType::SafetyFlagged,
                payload: serde_json::json!({"rule": "self_harm"}),
            },
        )
        .await
        .unwrap()
}

pub fn failed(at: DateTime<Utc>) -> AttemptResult {
    AttemptResult {
        attempted_at: at,
        status_code: Some(503),
        latency_ms: 12,
        error: Some("endpoint answered 503".into()),
        response_body: Some("down".into()),
        succeeded: false,
    }
}

pub fn succeeded(at: DateTime<Utc>) -> AttemptResult {
    AttemptResult {
        succeeded: true,
        status_code: Some(204),
        error: None,
        response_body: None,
        ..failed(at)
    }
}
