//! Safety events: every hit of a manifest safety rule in the gateway's precheck. Rows name
//! the rule, the user, the feature and the request; never the text (a short hash only).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{SafetyEventId, UserId};
use serde::Serialize;

use crate::{StoreResult, TenantScope};

/// A safety event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSafetyEvent {
    /// Whose request matched.
    pub user_id: UserId,
    /// The `[safety.<name>]` rule that matched.
    pub rule: String,
    /// The feature the request was for.
    pub feature: String,
    /// `block` or `flag`.
    pub action: String,
    /// The rule's status code (e.g. `crisis_support`), when it declares one.
    pub status: Option<String>,
    /// The request that matched.
    pub request_id: String,
    /// A short hash of the checked text (never the text itself).
    pub text_hash: String,
}

/// A recorded safety event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SafetyEvent {
    /// Its id (time ordered).
    pub id: SafetyEventId,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// Whose request matched.
    pub user_id: UserId,
    /// The rule that matched.
    pub rule: String,
    /// The feature.
    pub feature: String,
    /// `block` or `flag`.
    pub action: String,
    /// The rule's status code.
    pub status: Option<String>,
    /// The request.
    pub request_id: String,
    /// A short hash of the checked text.
    pub text_hash: String,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// Which safety events to list: newest first.
#[derive(Clone, Debug, Default)]
pub struct SafetyQuery {
    /// Only this user's.
    pub user_id: Option<UserId>,
    /// Only this request's.
    pub request_id: Option<String>,
    /// Only events older than this id (cursor pagination).
    pub before: Option<SafetyEventId>,
    /// At most this many (clamped to 1..=500).
    pub limit: u32,
}

impl SafetyQuery {
    /// The effective page size.
    pub fn page_size(&self) -> i64 {
        i64::from(self.limit.clamp(1, 500))
    }
}

/// The append-only safety event log.
#[async_trait]
pub trait SafetyStore {
    /// Records the hits of one request (several rules may match) in one write.
    async fn record_safety_events(
        &self,
        scope: &TenantScope,
        events: Vec<NewSafetyEvent>,
    ) -> StoreResult<Vec<SafetyEvent>>;
    /// Lists the scope's events, newest first.
    async fn list_safety_events(
        &self,
        scope: &TenantScope,
        query: &SafetyQuery,
    ) -> StoreResult<Vec<SafetyEvent>>;
}

pub(crate) fn stamp(scope: &TenantScope, events: Vec<NewSafetyEvent>) -> Vec<SafetyEvent> {
    let now = crate::now();
    events
        .into_iter()
        .map(|e| SafetyEvent {
            id: SafetyEventId::new(),
            tenant_id: scope.tenant().to_string(),
            user_id: e.user_id,
            rule: e.rule,
            feature: e.feature,
            action: e.action,
            status: e.status,
            request_id: e.request_id,
            text_hash: e.text_hash,
            created_at: now,
        })
        .collect()
}
