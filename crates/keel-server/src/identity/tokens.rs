//! Access tokens: short-lived EdDSA JWTs. Verification checks the algorithm, the `kid`,
//! the signature, `exp`/`nbf`/`iat`, and then that the session is still live (a cached
//! check, so a revoked session's tokens stop working within [`SESSION_CHECK_TTL`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use jsonwebtoken::{Algorithm, Header, Validation};
use keel_core::ids::{SessionId, TenantId, UserId};
use serde::{Deserialize, Serialize};

use super::keys::KeyRing;

/// How long a "session is live" answer is trusted before asking the store again.
pub const SESSION_CHECK_TTL: Duration = Duration::from_secs(30);

/// The claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The user's tenant.
    pub tid: String,
    /// The session.
    pub sid: String,
    /// `user` or `admin` within the tenant.
    pub role: String,
    /// The plan at issue time.
    pub plan: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Unique id.
    pub jti: String,
}

/// A verified access token.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// The user.
    pub user: UserId,
    /// The tenant.
    pub tenant: TenantId,
    /// The session.
    pub session: SessionId,
    /// Role.
    pub role: String,
    /// Plan.
    pub plan: String,
}

/// Why a token was refused (all answer 401 `invalid_token`; the reason is only logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenRejected(pub &'static str);

/// Signs access tokens.
pub fn issue(
    keys: &KeyRing,
    claims_base: &AccessToken,
    ttl: Duration,
) -> anyhow::Result<(String, i64)> {
    let key = keys
        .signing_key()
        .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
    let now = Utc::now().timestamp();
    let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(900);
    let claims = Claims {
        sub: claims_base.user.to_string(),
        tid: claims_base.tenant.to_string(),
        sid: claims_base.session.to_string(),
        role: claims_base.role.clone(),
        plan: claims_base.plan.clone(),
        exp: now + ttl_secs,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::now_v7().simple().to_string(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, &key.encoding)?;
    Ok((token, ttl_secs))
}

/// Checks everything but session liveness.
pub async fn verify_signature(
    keys: &KeyRing,
    token: &str,
) -> Result<(AccessToken, i64), TokenRejected> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| TokenRejected("malformed header or algorithm"))?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenRejected("algorithm not allowed"));
    }
    let kid = header.kid.ok_or(TokenRejected("no kid"))?;
    let key = keys
        .verifying_key(&kid)
        .await
        .ok_or(TokenRejected("unknown kid"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = 5;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
        .map_err(|_| TokenRejected("signature or time claims invalid"))?;
    let c = data.claims;
    if c.iat > Utc::now().timestamp() + 5 {
        return Err(TokenRejected("issued in the future"));
    }
    let access = AccessToken {
        user: c.sub.parse().map_err(|_| TokenRejected("bad sub"))?,
        tenant: c.tid.parse().map_err(|_| TokenRejected("bad tid"))?,
        session: c.sid.parse().map_err(|_| TokenRejected("bad sid"))?,
        role: c.role,
        plan: c.plan,
    };
    Ok((access, c.exp))
}

/// A short-lived cache of "is this session live" answers, per node.
#[derive(Clone, Default)]
pub struct SessionCache {
    inner: Arc<RwLock<HashMap<SessionId, (bool, Instant)>>>,
}

impl SessionCache {
    /// A fresh cached answer, if there is one.
    pub fn get(&self, id: SessionId) -> Option<bool> {
        let map = self.inner.read().ok()?;
        map.get(&id)
            .filter(|(_, at)| at.elapsed() < SESSION_CHECK_TTL)
            .map(|(live, _)| *live)
    }

    /// Records an answer; revocations on this node are recorded at once.
    pub fn put(&self, id: SessionId, live: bool) {
        if let Ok(mut map) = self.inner.write() {
            if map.len() > 100_000 {
                map.retain(|_, (_, at)| at.elapsed() < SESSION_CHECK_TTL);
            }
            map.insert(id, (live, Instant::now()));
        }
    }
}

/// Tokens whose signature and claims were already verified on this node, until they expire,
/// so a token used many times is verified once (the session check still runs every time).
#[derive(Clone, Default)]
pub struct VerifiedCache {
    inner: Arc<RwLock<HashMap<String, (AccessToken, i64)>>>,
}

/// Most tokens kept; beyond this the cache is swept of expired entries, then emptied.
const VERIFIED_CACHE_MAX: usize = 50_000;

impl VerifiedCache {
    /// A previously verified, unexpired token.
    pub fn get(&self, token: &str) -> Option<AccessToken> {
        let map = self.inner.read().ok()?;
        let (access, exp) = map.get(token)?;
        (*exp > Utc::now().timestamp()).then(|| access.clone())
    }

    /// Remembers a verified token until `exp`.
    pub fn put(&self, token: &str, access: &AccessToken, exp: i64) {
        if let Ok(mut map) = self.inner.write() {
            if map.len() >= VERIFIED_CACHE_MAX {
                let now = Utc::now().timestamp();
                map.retain(|_, (_, e)| *e > now);
                if map.len() >= VERIFIED_CACHE_MAX {
                    map.clear();
                }
            }
            map.insert(token.to_string(), (access.clone(), exp));
        }
    }
}
