//! The rate-limit layer: classifies the route by path, finds the limits the manifest sets
//! for the caller (IP, API or service key, user, tenant; the user's plan overriding the
//! product's), decides them all at once in the backend, and answers `429 rate_limited` or
//! passes the request on with `RateLimit-*` headers of the most restrictive limit.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use keel_core::integrity::rate::{ceil_secs, Outcome, Verdict};
use keel_core::manifest::{RateLimit, RouteClass, Scope};

use super::client_ip::ip_key;
use super::limiter::{FailMode, KeyedRate, Limiter, LimiterError};
use super::limiter_memory::MemoryLimiter;
use super::limiter_redis::RedisLimiter;
use super::plan_cache::PlanCache;
use crate::http::middleware::RouteTemplate;
use crate::http::principal::{resolve, Principal};
use crate::identity::extract::bearer;
use crate::{ApiError, AppState};

/// `RateLimit-Limit`: requests admitted at once when the limit is fully available.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests still admitted at once.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the limit is fully available again.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The class of a request path; `None` for routes that are never limited (ops, admin).
pub fn classify(path: &str) -> Option<RouteClass> {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/v1/auth") || under("/admin/v1/auth") {
        Some(RouteClass::Auth)
    } else if under("/v1/chat") || under("/v1/models") {
        Some(RouteClass::Gateway)
    } else if under("/v1/jobs") {
        Some(RouteClass::Jobs)
    } else if under("/v1/service") {
        Some(RouteClass::Service)
    } else if under("/v1") {
        Some(RouteClass::Api)
    } else {
        None
    }
}

/// Wraps every route of `router` in the rate-limit layer, with Redis state when Redis is
/// configured and in-process state otherwise.
pub(crate) fn wrap(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let settings = state.settings();
    let backend: Box<dyn Limiter> = match state.redis() {
        Some(conn) => Box::new(RedisLimiter::new(conn.clone(), &settings.redis_prefix)),
        None => Box::new(MemoryLimiter::new()),
    };
    let layer = Layer {
        app: state.clone(),
        shared: Arc::new(Shared {
            backend,
            fail_mode: settings.rate_limit_fail_mode,
            plans: PlanCache::default(),
        }),
    };
    router.layer(middleware::from_fn_with_state(layer, enforce))
}

struct Shared {
    backend: Box<dyn Limiter>,
    fail_mode: FailMode,
    plans: PlanCache,
}

#[derive(Clone)]
struct Layer {
    app: AppState,
    shared: Arc<Shared>,
}

/// One limit that applies to the request, with what the 429 and headers report.
struct Applied {
    scope: Scope,
    limit: RateLimit,
    keyed: KeyedRate,
}

async fn enforce(State(layer): State<Layer>, req: Request, next: Next) -> Response {
    let Some(class) = classify(req.uri().path()) else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let applied = layer.applicable(class, &mut parts).await;
    let req = Request::from_parts(parts, body);
    if applied.is_empty() {
        return next.run(req).await;
    }
    let keyed: Vec<KeyedRate> = applied.iter().map(|a| a.keyed.clone()).collect();
    let outcome = match layer.shared.backend.decide(&keyed).await {
        Ok(outcome) => outcome,
        Err(e) => return layer.unavailable(e, req, next).await,
    };
    if !outcome.allowed {
        let template = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_string());
        let mut res = refused(class, &applied, &outcome);
        if let Some(t) = template {
            res.extensions_mut().insert(RouteTemplate(t));
        }
        return res;
    }
    let mut res = next.run(req).await;
    if let Some(i) = outcome.most_restrictive() {
        set_headers(res.headers_mut(), &applied[i].limit, &outcome.verdicts[i]);
    }
    res
}

impl Layer {
    /// The limits the manifest sets for this caller on this class, in check order.
    async fn applicable(&self, class: RouteClass, parts: &mut Parts) -> Vec<Applied> {
        let manifest = self.app.manifest().clone();
        // Authenticating costs a little: only do it when a limit is keyed by the caller.
        let caller = if manifest.limits_callers(class) {
            resolve(&self.app, parts).await
        } else {
            Principal::Anonymous
        };
        let plan = match &caller {
            Principal::User { tenant, user, .. } if manifest.plans_limit(class) => {
                Some(self.shared.plans.plan(&self.app, *tenant, *user).await)
            }
            _ => None,
        };
        let limits = manifest.rate_limits_for(class, plan.as_deref());
        let mut applied = Vec::new();
        for (scope, limit) in limits.iter() {
            let (Some(id), Some(rate)) = (self.subject(scope, &caller, parts), limit.rate()) else {
                continue;
            };
            applied.push(Applied {
                scope,
                limit: limit.clone(),
                keyed: KeyedRate {
                    key: format!("{class}:{scope}:{id}"),
                    rate,
                },
            });
        }
        applied
    }

    /// Who a limit of `scope` counts this request for; `None` when the scope does not apply.
    fn subject(&self, scope: Scope, caller: &Principal, parts: &Parts) -> Option<String> {
        match (scope, caller) {
            (Scope::Ip, _) => self.client_ip(parts).map(ip_key),
            (Scope::Key, Principal::User { api_key, .. }) => api_key.map(|k| k.to_string()),
            // A claimed service key counts only once proven, so nobody can spend another's.
            (Scope::Key, Principal::Service { key_id }) => {
                self.verified_service_key(parts).filter(|id| id == key_id)
            }
            (Scope::User, Principal::User { user, .. }) => Some(user.to_string()),
            (Scope::Tenant, Principal::User { tenant, .. }) => Some(tenant.to_string()),
            _ => None,
        }
    }

    fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
        let proxies = &self.app.settings().trusted_proxies;
        Some(proxies.client_ip(peer, &parts.headers))
    }

    fn verified_service_key(&self, parts: &Parts) -> Option<String> {
        // Bearer service keys are proven here; a signed call is proven only once its body
        // is read (inside this layer), so it is limited per IP until then.
        let (service, secret) = bearer(parts)?.split_once('.')?;
        let key = self
            .app
            .settings()
            .service_keys
            .verify_bearer(service, secret)
            .ok()?;
        Some(key.service.clone())
    }

    async fn unavailable(&self, error: LimiterError, req: Request, next: Next) -> Response {
        let backend = self.shared.backend.name();
        let mode = self.shared.fail_mode;
        tracing::warn!(backend, error = %error, fail_mode = %mode, "rate limiter unavailable");
        metrics::counter!("keel_rate_limit_errors_total", "backend" => backend).increment(1);
        match mode {
            FailMode::Open => next.run(req).await,
            FailMode::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "rate_limiter_unavailable",
                "rate limits cannot be checked right now; retry shortly",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            .into_response(),
        }
    }
}

/// 429 for the limit the caller must wait longest for.
fn refused(class: RouteClass, applied: &[Applied], outcome: &Outcome) -> Response {
    let i = outcome.blocking().unwrap_or(0);
    let (Some(a), Some(verdict)) = (applied.get(i), outcome.verdicts.get(i)) else {
        return ApiError::internal("refused without a refusing limit").into_response();
    };
    let retry = ceil_secs(verdict.retry_after_micros).max(1);
    let (class, scope) = (class.as_str(), a.scope.as_str());
    metrics::counter!("keel_rate_limited_total", "class" => class, "scope" => scope).increment(1);
    let message = format!(
        "too many requests: {} per {} per {scope}; retry in {retry} s",
        a.limit.requests, a.limit.per
    );
    let details = serde_json::json!({
        "class": class,
        "scope": scope,
        "limit": a.limit.requests,
        "burst": a.limit.burst(),
        "period": a.limit.per.to_string(),
        "retry_after": retry,
    });
    let mut res = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        .with_details(details)
        .with_header(header::RETRY_AFTER, HeaderValue::from(retry))
        .into_response();
    set_headers(res.headers_mut(), &a.limit, verdict);
    res
}

fn set_headers(headers: &mut HeaderMap, limit: &RateLimit, verdict: &Verdict) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(limit.burst()));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(verdict.remaining));
    let reset = ceil_secs(verdict.reset_micros);
    headers.insert(RATELIMIT_RESET, HeaderValue::from(reset));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified_by_path_prefix() {
        let cases = [
            ("/v1/auth/login", Some(RouteClass::Auth)),
            ("/admin/v1/auth/login", Some(RouteClass::Auth)),
            ("/v1/chat/completions", Some(RouteClass::Gateway)),
            ("/v1/models", Some(RouteClass::Gateway)),
            ("/v1/jobs", Some(RouteClass::Jobs)),
            ("/v1/jobs/job_1/events", Some(RouteClass::Jobs)),
            ("/v1/service/usage", Some(RouteClass::Service)),
            ("/v1/me", Some(RouteClass::Api)),
            ("/v1/authority", Some(RouteClass::Api)),
            ("/v1/modelsx", Some(RouteClass::Api)),
            ("/v1", Some(RouteClass::Api)),
            ("/healthz", None),
            ("/readyz", None),
            ("/openapi.json", None),
            ("/.well-known/jwks.json", None),
            ("/admin/v1/accounts", None),
            ("/v10/me", None),
        ];
        for (path, class) in cases {
            assert_eq!(classify(path), class, "{path}");
        }
    }
}
