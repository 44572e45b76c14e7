//! The safety precheck step: every matching `[safety.*]` rule of the feature writes a
//! safety event (rule, user, feature, action, request; a short hash of the text, never the
//! text); a `block` rule refuses the request with 403 `safety_blocked` and the rule's
//! status and message, before any upstream call or reservation.

use axum::http::StatusCode;
use keel_core::gateway::precheck::{checked_text, hits, text_hash};
use keel_core::gateway::ChatRequest;
use keel_core::ids::UserId;
use keel_store::{NewSafetyEvent, TenantScope};
use serde_json::json;

use crate::{ApiError, AppState};

/// Runs the precheck; `Ok(flagged)` names the flag rules that matched.
pub async fn precheck(
    state: &AppState,
    scope: &TenantScope,
    user: UserId,
    feature: &str,
    request_id: &str,
    request: &ChatRequest,
) -> Result<Vec<String>, ApiError> {
    let manifest = state.manifest();
    if manifest.safety.is_empty() {
        return Ok(Vec::new());
    }
    let text = checked_text(request);
    let found = hits(manifest, feature, &text);
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let hash = text_hash(&text);
    let events = found
        .iter()
        .map(|hit| NewSafetyEvent {
            user_id: user,
            rule: hit.name.to_owned(),
            feature: feature.to_owned(),
            action: hit.action().to_owned(),
            status: hit.rule.status.clone(),
            request_id: request_id.to_owned(),
            text_hash: hash.clone(),
        })
        .collect();
    for hit in &found {
        metrics::counter!(
            "keel_gateway_safety_hits_total",
            "rule" => hit.name.to_owned(),
            "action" => hit.action()
        )
        .increment(1);
    }
    // The event must be durable before the decision is acted on: a block is evidence.
    state.store().record_safety_events(scope, events).await?;
    if let Some(block) = found.iter().find(|h| h.blocks()) {
        let message = block
            .rule
            .message
            .clone()
            .unwrap_or_else(|| "this request cannot be answered".to_owned());
        return Err(
            ApiError::new(StatusCode::FORBIDDEN, "safety_blocked", message.clone()).with_details(
                json!({
                    "rule": block.name,
                    "status": block.rule.status,
                    "message": message,
                }),
            ),
        );
    }
    Ok(found.iter().map(|h| h.name.to_owned()).collect())
}
