//! Viewer tokens: short-lived EdDSA JWTs (the identity signing keys) that let a page without
//! the owner's session read one job's events. The token names the job and tenant, never the
//! user, and carries its own audience so it is never accepted as an access token (nor an
//! access token as a viewer token).

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header, Validation};
use keel_core::ids::{JobId, TenantId};
use serde::{Deserialize, Serialize};

use crate::identity::keys::KeyRing;
use crate::ApiError;

/// The audience of viewer tokens.
pub const AUDIENCE: &str = "keel:job_viewer";

/// How long a viewer token lives.
pub const TTL: Duration = Duration::from_secs(600);

#[derive(Serialize, Deserialize)]
struct ViewerClaims {
    /// The job.
    job: String,
    /// Its tenant.
    tid: String,
    aud: String,
    exp: i64,
    iat: i64,
    nbf: i64,
}

/// Seconds of clock skew a token's `exp` and `nbf` tolerate.
const LEEWAY: i64 = 5;

/// Signs a viewer token for `job` at `now` (the job clock); returns it with its lifetime
/// in seconds.
pub fn issue(
    keys: &KeyRing,
    tenant: TenantId,
    job: JobId,
    now: DateTime<Utc>,
) -> Result<(String, i64), ApiError> {
    let key = keys
        .signing_key()
        .ok_or_else(|| ApiError::internal("no signing key"))?;
    let now = now.timestamp();
    let ttl = i64::try_from(TTL.as_secs()).unwrap_or(600);
    let claims = ViewerClaims {
        job: job.to_string(),
        tid: tenant.to_string(),
        aud: AUDIENCE.to_owned(),
        exp: now + ttl,
        iat: now,
        nbf: now,
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
        .map_err(|e| ApiError::internal(format!("viewer token: {e}")))?;
    Ok((token, ttl))
}

fn rejected() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_viewer_token",
        "the viewer token is invalid, expired or for another job",
    )
}

/// Verifies a viewer token for `job` at `now` (the job clock, so tests can expire one
/// without sleeping) and returns the tenant it was issued in.
pub async fn verify(
    keys: &KeyRing,
    token: &str,
    job: JobId,
    now: DateTime<Utc>,
) -> Result<TenantId, ApiError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| rejected())?;
    if header.alg != Algorithm::EdDSA {
        return Err(rejected());
    }
    let kid = header.kid.ok_or_else(rejected)?;
    let key = keys.verifying_key(&kid).await.ok_or_else(rejected)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    // `exp` and `nbf` are required here and checked below against the job clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "nbf", "aud"]);
    let claims = jsonwebtoken::decode::<ViewerClaims>(token, &key.decoding, &validation)
        .map_err(|_| rejected())?
        .claims;
    let now = now.timestamp();
    if claims.exp + LEEWAY < now || claims.nbf - LEEWAY > now {
        return Err(rejected());
    }
    let for_job: JobId = claims.job.parse().map_err(|_| rejected())?;
    if for_job != job {
        return Err(rejected());
    }
    claims.tid.parse().map_err(|_| rejected())
}
