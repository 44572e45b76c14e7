//! The identity context: accounts, sessions with rotating refresh tokens, access tokens,
//! API keys, wallet sign-in.

pub(crate) mod account_routes;
pub(crate) mod api_keys;
pub(crate) mod extract;
pub mod keys;
pub(crate) mod me_routes;
pub mod passwords;
pub(crate) mod routes;
pub(crate) mod service;
pub(crate) mod session_ops;
pub(crate) mod throttle;
pub mod tokens;
pub(crate) mod wallet;

use std::time::Duration;

use keel_core::identity::PasswordPolicy;
use keel_core::ids::TenantId;
use keel_store::{DynStore, NewAuditEvent, TenantScope};

pub use extract::{AuthUser, Via};
use keys::KeyRing;
use passwords::Passwords;
use tokens::{SessionCache, VerifiedCache};

/// Identity settings.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token (and session) lifetime.
    pub refresh_ttl: Duration,
    /// How long after a refresh a concurrent refresh with the same token still gets the
    /// same successor instead of revoking the session.
    pub refresh_grace: Duration,
    /// Password rules.
    pub policy: PasswordPolicy,
    /// The `<env>` in `keel_<env>_…` API keys.
    pub api_key_env: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::from_secs(10),
            policy: PasswordPolicy::default(),
            api_key_env: "live".into(),
        }
    }
}

/// Everything the identity context needs, shared by handlers.
#[derive(Clone)]
pub struct Identity {
    pub(crate) store: DynStore,
    pub(crate) keys: KeyRing,
    pub(crate) passwords: Passwords,
    pub(crate) sessions: SessionCache,
    pub(crate) verified: VerifiedCache,
    pub(crate) api_keys: api_keys::KeyCache,
    pub(crate) config: IdentityConfig,
}

impl Identity {
    /// Loads (or creates) the signing keys.
    pub async fn new(store: DynStore, config: IdentityConfig) -> anyhow::Result<Self> {
        let keys = KeyRing::load(store.clone()).await?;
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        Ok(Self {
            store,
            keys,
            passwords: Passwords::new(cores),
            sessions: SessionCache::default(),
            verified: VerifiedCache::default(),
            api_keys: api_keys::KeyCache::default(),
            config,
        })
    }

    /// The signing keys (JWKS, rotation).
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Writes an audit event; a failure to audit is logged, never hidden.
    pub(crate) async fn audit(
        &self,
        tenant: TenantId,
        actor: &str,
        action: &str,
        target: Option<String>,
        data: serde_json::Value,
    ) {
        let event = NewAuditEvent {
            actor: actor.to_string(),
            action: action.to_string(),
            target,
            request_id: crate::http::request_id::current(),
            data,
        };
        if let Err(e) = self
            .store
            .append_audit(&TenantScope::new(tenant), event)
            .await
        {
            tracing::error!(error = %e, action, "audit write failed");
        }
    }
}

/// The tenant that system-level events (failed sign-ins for unknown emails, admin
/// actions) are recorded under.
pub fn system_tenant() -> TenantId {
    TenantId::from_uuid(uuid::Uuid::nil())
}
