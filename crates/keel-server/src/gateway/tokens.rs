//! Tokens per minute: `tokens = N` on a `[rate_limits.gateway]` scope (key, user, tenant;
//! a plan's limits override the product's scope by scope). A request is charged its
//! maximum tokens (prompt upper bound + allowed completion) at admission, all scopes at
//! once, and corrected to its actual usage after. The budget lives where the request
//! limits live: Redis across nodes, in process otherwise.

use axum::http::{header, HeaderValue, StatusCode};
use keel_core::integrity::rate::ceil_secs;
use keel_core::manifest::{RateLimit, RouteClass, Scope};
use serde_json::json;

use super::errors::{rejected, Step};
use crate::identity::extract::{AuthUser, Via};
use crate::integrity::limiter::{FailMode, KeyedRate};
use crate::{ApiError, AppState};

/// The token budgets a request was charged, for the correction after the call.
pub struct TokenCharge {
    limits: Vec<KeyedRate>,
    charged: u64,
}

fn subject(scope: Scope, user: &AuthUser) -> Option<String> {
    match scope {
        Scope::Ip => None,
        Scope::Key => match &user.via {
            Via::ApiKey { id, .. } => Some(id.to_string()),
            Via::Session(_) => None,
        },
        Scope::User => Some(user.token.user.to_string()),
        Scope::Tenant => Some(user.token.tenant.to_string()),
    }
}

/// Charges `tokens` to every token budget of the caller, or refuses with 429.
pub async fn admit(
    state: &AppState,
    user: &AuthUser,
    plan: &str,
    tokens: u64,
) -> Result<Option<TokenCharge>, ApiError> {
    let limits = state
        .manifest()
        .rate_limits_for(RouteClass::Gateway, Some(plan));
    let mut applied: Vec<(Scope, RateLimit, KeyedRate)> = Vec::new();
    for (scope, limit) in limits.iter() {
        let (Some(rate), Some(id)) = (limit.token_rate(), subject(scope, user)) else {
            continue;
        };
        let keyed = KeyedRate {
            key: format!("gateway_tokens:{scope}:{id}"),
            rate,
        };
        applied.push((scope, limit.clone(), keyed));
    }
    if applied.is_empty() {
        return Ok(None);
    }
    let weighted: Vec<KeyedRate> = applied
        .iter()
        .map(|(_, _, k)| KeyedRate {
            key: k.key.clone(),
            rate: k.rate.weighted(tokens),
        })
        .collect();
    let limiter = state.gateway().token_limiter();
    let outcome = match limiter.decide(&weighted).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(error = %e, "token budget unavailable");
            return match state.settings().rate_limit_fail_mode {
                FailMode::Open => Ok(None),
                FailMode::Closed => Err(rejected(
                    Step::RateLimit,
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "rate_limiter_unavailable",
                        "rate limits cannot be checked right now; retry shortly",
                    ),
                )),
            };
        }
    };
    if !outcome.allowed {
        let i = outcome.blocking().unwrap_or(0);
        let (Some((scope, limit, _)), Some(verdict)) = (applied.get(i), outcome.verdicts.get(i))
        else {
            return Err(ApiError::internal("refused without a refusing limit"));
        };
        let retry = ceil_secs(verdict.retry_after_micros).max(1);
        let budget = limit.tokens.unwrap_or_default();
        let message = format!(
            "too many tokens: {budget} per {} per {scope}; this request may use {tokens}; retry in {retry} s",
            limit.per
        );
        let error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .with_details(json!({
                "class": "gateway",
                "scope": scope.as_str(),
                "unit": "tokens",
                "limit": budget,
                "requested": tokens,
                "period": limit.per.to_string(),
                "retry_after": retry,
            }))
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry));
        return Err(rejected(Step::RateLimit, error));
    }
    Ok(Some(TokenCharge {
        limits: applied.into_iter().map(|(_, _, k)| k).collect(),
        charged: tokens,
    }))
}

/// Corrects the charge to the tokens the call actually used.
pub async fn correct(state: &AppState, charge: &TokenCharge, used: u64) {
    for limit in &charge.limits {
        let burst = u64::from(limit.rate.burst());
        // What admission took is capped at the burst (see `Rate::weighted`).
        let taken = charge.charged.clamp(1, burst);
        let delta = i128::from(used.min(burst)) - i128::from(taken);
        let micros = delta * i128::from(limit.rate.emission_micros());
        let micros = i64::try_from(micros).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
        if micros == 0 {
            continue;
        }
        if let Err(e) = state.gateway().token_limiter().adjust(limit, micros).await {
            tracing::warn!(error = %e, "token budget correction failed");
        }
    }
}
