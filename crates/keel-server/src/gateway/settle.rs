//! The end of a call: bill what it used, correct its token budget, count it, audit it.
//! Usage is the provider's own numbers when it reported them (a stream cut before its
//! usage chunk is estimated from its text, see `keel_core::gateway::metering`); cost comes
//! from the manifest's price table. Settling twice is harmless: commits replay by
//! reservation and the stream guard settles at most once.

use std::sync::Arc;

use keel_core::gateway::metering::usage_cost;
use keel_core::gateway::openai::Usage;
use keel_core::ids::UserId;
use keel_core::manifest::Pricing;
use keel_core::money::Micros;
use keel_store::{NewAuditEvent, TenantScope};
use serde_json::json;

use super::dispatch::Served;
use super::metering::{settle, Held, Used};
use super::tokens::{correct, TokenCharge};
use crate::AppState;

/// Everything settlement needs, captured at admission.
pub struct Call {
    /// The shared state.
    pub state: AppState,
    /// The caller's tenant.
    pub scope: TenantScope,
    /// The caller.
    pub user: UserId,
    /// The request id.
    pub request_id: String,
    /// The route (client-facing model).
    pub route: String,
    /// The feature.
    pub feature: String,
    /// The caller's plan.
    pub plan: String,
    /// The route's model class.
    pub model_class: Option<String>,
    /// Whether the call streams.
    pub stream: bool,
    /// The route's cap on generated tokens.
    pub cap: Option<u32>,
    /// The reservations held.
    pub held: Vec<Held>,
    /// The token budgets charged.
    pub tokens: Option<TokenCharge>,
    /// Safety flag rules that matched.
    pub flagged: Vec<String>,
}

/// How a call ended.
#[derive(Clone, Debug)]
pub struct End {
    /// The deployment that served it, if one did.
    pub served: Option<Served>,
    /// The served deployment's prices.
    pub pricing: Option<Pricing>,
    /// What it used; `None` when nothing was produced (nothing is billed).
    pub usage: Option<Usage>,
    /// `ok`, `error`, `client_closed`, `budget_exceeded`, `upstream_cut`.
    pub outcome: &'static str,
}

impl Call {
    /// Settles on a task of its own and waits for it: a caller that goes away (a client
    /// disconnecting drops the handler) cannot leave a settlement half done.
    pub async fn settle_detached(self: &Arc<Self>, end: End) -> Micros {
        let call = self.clone();
        let task = tokio::spawn(crate::http::request_id::carry(async move {
            call.settle(&end).await
        }));
        task.await.unwrap_or(Micros::ZERO)
    }

    /// Bills, corrects, counts and audits the call; returns its cost.
    pub async fn settle(&self, end: &End) -> Micros {
        let state = &self.state;
        let cost = match (&end.usage, &end.pricing) {
            (Some(usage), Some(pricing)) => usage_cost(pricing, usage),
            _ => Micros::ZERO,
        };
        let over_cap = match (&end.usage, self.cap) {
            (Some(u), Some(cap)) => u.completion_tokens > u64::from(cap),
            _ => false,
        };
        let provider = end.served.as_ref().map_or("none", |s| s.kind.as_str());
        let source = json!({
            "feature": self.feature,
            "route": self.route,
            "request_id": self.request_id,
            "provider": provider,
            "model": end.served.as_ref().map(|s| s.model.clone()),
        });
        let used = end.usage.as_ref().map(|usage| Used {
            tokens: i64::try_from(usage.total_tokens).unwrap_or(i64::MAX),
            cost: cost.0,
        });
        let audit = self.audit_event(end, provider, cost, over_cap);
        settle(state, &self.scope, &self.held, used, &source, audit).await;
        if let Some(charge) = &self.tokens {
            let used = end.usage.as_ref().map_or(0, |u| u.total_tokens);
            correct(state, charge, used).await;
        }
        self.count(end, provider, cost, over_cap);
        cost
    }

    fn count(&self, end: &End, provider: &'static str, cost: Micros, over_cap: bool) {
        let (route, feature) = (self.route.clone(), self.feature.clone());
        metrics::counter!("keel_gateway_calls_total",
            "model" => route.clone(), "feature" => feature.clone(),
            "provider" => provider, "outcome" => end.outcome)
        .increment(1);
        if let Some(usage) = &end.usage {
            for (kind, n) in [
                ("prompt", usage.prompt_tokens),
                ("completion", usage.completion_tokens),
            ] {
                metrics::counter!("keel_gateway_tokens_total",
                    "model" => route.clone(), "feature" => feature.clone(), "kind" => kind)
                .increment(n);
            }
        }
        metrics::counter!("keel_gateway_cost_micros_total", "model" => route.clone(), "feature" => feature)
            .increment(u64::try_from(cost.0).unwrap_or(0));
        if over_cap {
            metrics::counter!("keel_gateway_token_cap_exceeded_total", "model" => route)
                .increment(1);
        }
    }

    fn audit_event(
        &self,
        end: &End,
        provider: &str,
        cost: Micros,
        over_cap: bool,
    ) -> NewAuditEvent {
        let usage = end.usage.unwrap_or_default();
        NewAuditEvent {
            actor: self.user.to_string(),
            action: "gateway.call".to_owned(),
            target: Some(self.route.clone()),
            request_id: Some(self.request_id.clone()),
            data: json!({
                "model": self.route,
                "model_class": self.model_class,
                "feature": self.feature,
                "plan": self.plan,
                "provider": provider,
                "upstream_model": end.served.as_ref().map(|s| s.model.clone()),
                "stream": self.stream,
                "outcome": end.outcome,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost_micros": cost.0,
                "cache_hit": false,
                "over_token_cap": over_cap,
                "safety_flags": self.flagged,
            }),
        }
    }
}

/// A call between admission and its answer: if the handler is dropped before it is
/// defused (the client went away before anything was sent), the call is settled as
/// `client_closed` with nothing billed: holds released, token charge refunded.
pub struct Pending(Option<Arc<Call>>);

impl Pending {
    /// Guards `call`.
    pub fn new(call: &Arc<Call>) -> Self {
        Self(Some(call.clone()))
    }

    /// The call is answered (or handed to a stream, which settles it): nothing to do on drop.
    pub fn defuse(&mut self) {
        self.0 = None;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(call) = self.0.take() else {
            return;
        };
        let end = End {
            served: None,
            pricing: None,
            usage: None,
            outcome: "client_closed",
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                call.settle(&end).await;
            });
        }
    }
}
