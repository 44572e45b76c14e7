use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::AuditId;
use serde::Serialize;

use crate::{StoreResult, TenantScope};

/// An audit event to record. Never put a secret in any field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// Who acted: a user id, an admin id, `system`, or a service key id.
    pub actor: String,
    /// What happened, dotted and stable, e.g. `auth.login_failed`.
    pub action: String,
    /// What it happened to, e.g. a session id.
    pub target: Option<String>,
    /// The request that caused it, when there was one.
    pub request_id: Option<String>,
    /// Extra structured facts.
    pub data: serde_json::Value,
}

/// A recorded audit event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Its id (time ordered).
    pub id: AuditId,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// What it happened to.
    pub target: Option<String>,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// Extra structured facts.
    pub data: serde_json::Value,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// The row `event` becomes in `tenant`, recorded at `at`.
pub(crate) fn audit_row(tenant: &str, event: NewAuditEvent, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: AuditId::new(),
        tenant_id: tenant.to_owned(),
        actor: event.actor,
        action: event.action,
        target: event.target,
        request_id: event.request_id,
        data: event.data,
        created_at: at,
    }
}

/// Which audit events to list: newest first, before an optional cursor.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Only this action.
    pub action: Option<String>,
    /// Only events older than this id (cursor pagination).
    pub before: Option<AuditId>,
    /// At most this many (clamped to 1..=500).
    pub limit: u32,
}

impl AuditQuery {
    /// The effective page size.
    pub fn page_size(&self) -> i64 {
        i64::from(self.limit.clamp(1, 500))
    }
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore {
    /// Appends one event in the scope's tenant.
    async fn append_audit(
        &self,
        scope: &TenantScope,
        event: NewAuditEvent,
    ) -> StoreResult<AuditEvent>;
    /// Lists the scope's events, newest first.
    async fn list_audit(
        &self,
        scope: &TenantScope,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEvent>>;
}
