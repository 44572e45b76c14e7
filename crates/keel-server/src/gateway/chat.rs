//! `POST /v1/chat/completions`: the enforcement order, one step after another, each
//! refusal a clear error and a metric: authenticate → kill switches → entitlement (feature,
//! model, model class) → token budgets → safety precheck → budget admission → upstream
//! call (the `dispatch` seam) → settle.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use keel_core::gateway::metering::{max_cost, prompt_estimate, prompt_upper_bound, text_tokens};
use keel_core::gateway::openai::Usage;
use keel_core::gateway::{
    clamp_max_tokens, resolve, weighted_order, ChatCompletion, ChatRequest, MaxTokensField, Policy,
};
use keel_core::manifest::{Pricing, Route};
use keel_core::money::Micros;
use tokio::time::Instant;

use super::dispatch::{self, DispatchCtx};
use super::errors::{no_deployment, rejected, route_error, upstream_error, Step};
use super::headers::{self, Overhead};
use super::metering::{self, Ask};
use super::registry::Deployed;
use super::resilience::Target;
use super::schema::{ChatCompletionIn, ChatCompletionOut};
use super::settle::{Call, End, Pending};
use super::{request, safety, stream, tokens};
use crate::billing::reservations::Terms;
use crate::billing::{levers, plan_for};
use crate::http::error::ErrorEnvelope;
use crate::identity::extract::AuthUser;
use crate::{ApiError, AppState, RequestId};

/// Generated-token cap when the client sets none and the route has no cap.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Creates a chat completion (OpenAI-compatible; `stream: true` answers with server-sent events).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "gateway", operation_id = "v1.chat.completions.create",
    request_body = ChatCompletionIn,
    params(("x-keel-feature" = Option<String>, Header, description = "The feature the call is for (default: the manifest's default feature)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A chat completion (JSON), or with `stream: true` a `text/event-stream` of chunks ending with `data: [DONE]`", body = ChatCompletionOut),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope)))]
pub(crate) async fn create_chat_completion(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    user: Result<AuthUser, ApiError>,
    req_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let user = user.map_err(|e| rejected(Step::Authenticate, e))?;
    user.require_scope("gateway")
        .map_err(|e| rejected(Step::Authenticate, e))?;
    let body = body.map_err(|e| rejected(Step::Request, body_error(&e)))?;
    let request = request::parse(&body).map_err(|e| rejected(Step::Request, e))?;
    let feature = req_headers
        .get("x-keel-feature")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|f| !f.is_empty());
    let admitted = admit(&state, &user, request, feature, request_id).await?;
    if admitted.request.is_stream() {
        respond_stream(admitted, started).await
    } else {
        respond(admitted, started).await
    }
}

/// A call that passed every step up to the upstream call.
struct Admitted {
    call: Arc<Call>,
    request: ChatRequest,
    /// The deployments in the order to try, with their prices.
    targets: Vec<Target>,
    /// The route's retries, timeouts and breaker settings.
    policy: Policy,
    prices: Vec<Option<Pricing>>,
    deadline: Instant,
    /// The cost reservation, or the route's maximum cost when it has no cost meter.
    reserved: i64,
    budget: Option<i64>,
    prompt_estimate: u64,
}

/// Kill switches → entitlement → token budgets → safety → budget admission.
async fn admit(
    state: &AppState,
    user: &AuthUser,
    mut request: ChatRequest,
    feature: Option<&str>,
    request_id: String,
) -> Result<Admitted, ApiError> {
    let (scope, uid) = (user.scope(), user.token.user);
    levers::check_kill_switch(state.kill_switches(), state.store(), uid)
        .await
        .map_err(|e| rejected(Step::KillSwitch, e))?;
    let now = Utc::now();
    let (plan, overrides) = tokio::join!(
        plan_for(state.store(), state.manifest(), &scope, uid, now),
        levers::overrides_for(state.store(), &scope, uid)
    );
    let plan = plan?;
    let overrides = overrides.map_err(|e| rejected(Step::Budget, e))?;
    let manifest = state.manifest().clone();
    let resolved = resolve(&manifest, &request.model, feature, &plan.plan)
        .map_err(|e| rejected(Step::Entitlement, route_error(e)))?;
    let route = resolved.route;
    let deployed = state.gateway().deployments(resolved.name);
    if deployed.is_empty() {
        return Err(rejected(Step::Upstream, no_deployment(resolved.name)));
    }
    let max_completion = u64::from(clamp_max_tokens(
        &mut request,
        route.max_tokens,
        DEFAULT_MAX_TOKENS,
        MaxTokensField::MaxCompletionTokens,
    ));
    let prompt_bound = prompt_upper_bound(&request);
    let max_tokens = prompt_bound + max_completion;
    let charge = tokens::admit(state, user, &plan.plan, max_tokens).await?;
    let flagged = safety::precheck(state, &scope, uid, resolved.feature, &request_id, &request);
    let flagged = match flagged.await {
        Ok(flagged) => flagged,
        Err(e) => return Err(refund(state, charge, rejected(Step::Safety, e)).await),
    };
    let up = upstreams(resolved.name, route, deployed, prompt_bound, max_completion);
    let call_id = uuid::Uuid::now_v7().simple().to_string();
    let ask = Ask {
        user: uid,
        route,
        call_id: &call_id,
        max_tokens,
        max_cost: up.most.0,
        stream: request.is_stream(),
    };
    let terms = Terms::from_parts(plan.clone(), overrides, now);
    let (held, budget) = match metering::admit(state, &scope, &terms, &ask).await {
        Ok(admitted) => admitted,
        Err(e) => return Err(refund(state, charge, e).await),
    };
    let policy = route.policy();
    let call = Call {
        state: state.clone(),
        scope,
        user: uid,
        request_id,
        route: resolved.name.to_owned(),
        feature: resolved.feature.to_owned(),
        plan: plan.plan,
        model_class: route.model_class.clone(),
        stream: request.is_stream(),
        cap: route.max_tokens,
        held,
        tokens: charge,
        flagged,
    };
    Ok(Admitted {
        call: Arc::new(call),
        targets: up.targets,
        prices: up.prices,
        deadline: Instant::now() + policy.total_timeout,
        policy,
        reserved: budget.unwrap_or(up.most.0),
        budget,
        prompt_estimate: prompt_estimate(&request),
        request,
    })
}

/// The deployments in the order to try (the first drawn by weight), their prices, and
/// the most the call may cost on the priciest of them.
struct Upstreams {
    targets: Vec<Target>,
    prices: Vec<Option<Pricing>>,
    most: Micros,
}

fn upstreams(
    name: &str,
    route: &Route,
    deployed: &[Deployed],
    prompt_bound: u64,
    max_completion: u64,
) -> Upstreams {
    let pricing_of = |d: &Deployed| {
        route
            .deployments
            .get(d.index)
            .and_then(|d| route.pricing_for(d))
            .copied()
    };
    let most = deployed
        .iter()
        .filter_map(pricing_of)
        .map(|p| max_cost(&p, prompt_bound, max_completion))
        .max()
        .unwrap_or(Micros::ZERO);
    let weights: Vec<u32> = deployed.iter().map(|d| d.weight).collect();
    let ordered: Vec<&Deployed> = weighted_order(&weights, rand::random())
        .into_iter()
        .filter_map(|i| deployed.get(i))
        .collect();
    Upstreams {
        targets: ordered
            .iter()
            .map(|d| Target::new(format!("{name}/{}", d.index), d.provider.clone()))
            .collect(),
        prices: ordered.iter().map(|d| pricing_of(d)).collect(),
        most,
    }
}

/// Undoes a token charge for a call refused after it, passing the refusal on.
async fn refund(
    state: &AppState,
    charge: Option<tokens::TokenCharge>,
    error: ApiError,
) -> ApiError {
    if let Some(c) = charge {
        tokens::correct(state, &c, 0).await;
    }
    error
}

fn ctx(call: &Call) -> DispatchCtx {
    DispatchCtx {
        route: call.route.clone(),
        request_id: call.request_id.clone(),
    }
}

async fn respond(a: Admitted, started: Instant) -> Result<Response, ApiError> {
    let mut pending = Pending::new(&a.call);
    let upstream_started = Instant::now();
    let result = dispatch::chat(
        &ctx(&a.call),
        a.call.state.gateway().engine(),
        &a.targets,
        &a.request,
        &a.policy,
        a.deadline,
    )
    .await;
    pending.defuse();
    let (mut completion, served) = match result {
        Ok(answered) => answered,
        Err(e) => return Err(failed(&a.call, &e).await),
    };
    let upstream = upstream_started.elapsed();
    let usage = completion
        .usage
        .unwrap_or_else(|| estimate(&completion, a.prompt_estimate));
    completion.usage = Some(usage);
    let kind = served.kind;
    let end = End {
        pricing: a.prices.get(served.position).copied().flatten(),
        served: Some(served),
        usage: Some(usage),
        outcome: "ok",
    };
    let cost = a.call.settle_detached(end).await;
    let overhead = Overhead::new(started, upstream);
    Ok(headers::json(
        Json(completion).into_response(),
        kind,
        cost.0,
        overhead,
    ))
}

async fn respond_stream(a: Admitted, started: Instant) -> Result<Response, ApiError> {
    let include_usage = a
        .request
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let mut pending = Pending::new(&a.call);
    let upstream_started = Instant::now();
    let result = dispatch::chat_stream(
        &ctx(&a.call),
        a.call.state.gateway().engine(),
        &a.targets,
        &a.request,
        &a.policy,
        a.deadline,
    )
    .await;
    pending.defuse();
    let (upstream, served) = match result {
        Ok(opened) => opened,
        Err(e) => return Err(failed(&a.call, &e).await),
    };
    let overhead = Overhead::new(started, upstream_started.elapsed());
    let kind = served.kind;
    let setup = stream::Setup {
        call: a.call,
        upstream,
        pricing: a.prices.get(served.position).copied().flatten(),
        served,
        include_usage,
        budget: a.budget,
        prompt_estimate: a.prompt_estimate,
    };
    Ok(headers::sse(
        stream::body(setup),
        kind,
        a.reserved,
        overhead,
    ))
}

/// Settles a call no upstream answered (nothing billed) and maps the error.
async fn failed(call: &Arc<Call>, error: &super::providers::UpstreamError) -> ApiError {
    let end = End {
        served: None,
        pricing: None,
        usage: None,
        outcome: "error",
    };
    call.settle_detached(end).await;
    rejected(Step::Upstream, upstream_error(error))
}

/// Usage of a completion whose upstream reported none, estimated from its text.
fn estimate(completion: &ChatCompletion, prompt: u64) -> Usage {
    let completion_tokens = completion
        .choices
        .iter()
        .map(|c| {
            let calls: u64 = c
                .message
                .tool_calls
                .iter()
                .flatten()
                .map(|t| text_tokens(&t.function.name) + text_tokens(&t.function.arguments))
                .sum();
            text_tokens(&c.message.text_content()) + calls
        })
        .sum();
    Usage::new(prompt, completion_tokens, 0)
}

fn body_error(e: &BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the configured limit",
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
    }
}
