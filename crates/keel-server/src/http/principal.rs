//! Who is calling, resolved once per request from the headers alone, for the layers that
//! key state by caller (idempotency, rate limits). Route extractors still authenticate
//! (`AuthUser`, `ServiceCaller`); a user resolved here is left in the request extensions
//! so the extractor does not verify the credential twice.

use axum::http::request::Parts;
use keel_core::ids::{ApiKeyId, TenantId, UserId};

use crate::identity::extract::{bearer, AuthUser, Via};
use crate::AppState;

/// The caller of a request, as far as its headers tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A product user, authenticated by an access token or an API key.
    User {
        /// The user's tenant.
        tenant: TenantId,
        /// The user.
        user: UserId,
        /// The API key used, if any.
        api_key: Option<ApiKeyId>,
    },
    /// A product service, by the key id it claims. The signature is checked by the route's
    /// extractor; layers keyed by this must not persist anything for a request it refuses.
    Service {
        /// The claimed key id.
        key_id: String,
    },
    /// No credential, or one that does not authenticate.
    Anonymous,
}

/// Resolves the caller. `/v1/service/*` callers are named by `x-keel-key-id` (its service
/// part) or the id part of `Bearer <id>.<secret>`; once the signature layer has verified
/// the call it leaves the verified principal here. Other bearer credentials are
/// authenticated as users.
/// The answer is kept in the request extensions, so later layers resolve it for free.
pub async fn resolve(state: &AppState, parts: &mut Parts) -> Principal {
    if let Some(p) = parts.extensions.get::<Principal>() {
        return p.clone();
    }
    let principal = resolve_uncached(state, parts).await;
    parts.extensions.insert(principal.clone());
    principal
}

async fn resolve_uncached(state: &AppState, parts: &mut Parts) -> Principal {
    if parts.uri.path().starts_with("/v1/service/") {
        let claimed = parts
            .headers
            .get("x-keel-key-id")
            .and_then(|v| v.to_str().ok())
            // `worker@k2` names one key of the service `worker`; the caller is the service.
            .map(|id| id.split('@').next().unwrap_or(id).to_string())
            .or_else(|| {
                bearer(parts)
                    .and_then(|t| t.split_once('.'))
                    .map(|(id, _)| id.to_string())
            });
        return match claimed {
            Some(key_id) if !key_id.is_empty() => Principal::Service { key_id },
            _ => Principal::Anonymous,
        };
    }
    let user = match parts.extensions.get::<AuthUser>() {
        Some(u) => Some(u.clone()),
        None => match bearer(parts) {
            Some(credential) => state.identity().authenticate(credential).await.ok(),
            None => None,
        },
    };
    match user {
        Some(u) => {
            let principal = Principal::User {
                tenant: u.token.tenant,
                user: u.token.user,
                api_key: match &u.via {
                    Via::ApiKey { id, .. } => Some(*id),
                    Via::Session(_) => None,
                },
            };
            parts.extensions.insert(u);
            principal
        }
        None => Principal::Anonymous,
    }
}
