//! LLM routes: which plans may call which upstream deployments, with token caps and pricing.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::DurationSpec;
use super::resilience::{BreakerSpec, RetrySpec};
use crate::money::Micros;

/// `[routes.<name>]`: a client-facing model name served by weighted upstream deployments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Feature a user's plan must grant to use this route.
    pub feature: String,
    /// Plans allowed to use this route; omitted or `["*"]` means all.
    #[serde(default)]
    pub plans: PlanSelector,
    /// Model class (e.g. `L1`); when set, the user's plan must list it in `model_classes`.
    pub model_class: Option<String>,
    /// Cap on generated tokens per request (`max_tokens` / `max_completion_tokens` are
    /// clamped to it, and usage is checked against it after generation); > 0.
    pub max_tokens: Option<u32>,
    /// Meter charged one unit per request.
    pub request_meter: Option<String>,
    /// Meter charged the request's total tokens.
    pub token_meter: Option<String>,
    /// Meter charged the call's cost in micros (a budget: plan limits on it per day, user or
    /// tenant scope); the maximum possible cost is reserved before the upstream call.
    pub cost_meter: Option<String>,
    /// Upstream timeout per attempt (streams: until the first output); default 60s.
    pub timeout: Option<DurationSpec>,
    /// Limit on the whole call, retries, waits and a stream to its end included; default 5m.
    pub total_timeout: Option<DurationSpec>,
    /// Streams: limit on the wait for the first output of an attempt; default `timeout`.
    pub ttft_timeout: Option<DurationSpec>,
    /// Streams: limit on the silence between chunks once output started; default 30s.
    pub idle_timeout: Option<DurationSpec>,
    /// Retries per deployment with exponential backoff and full jitter.
    pub retry: Option<RetrySpec>,
    /// The circuit breaker of each deployment.
    pub breaker: Option<BreakerSpec>,
    /// Free text.
    pub description: Option<String>,
    /// Upstreams in fallback order; at least one.
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    /// Prices for deployments that declare none.
    pub pricing: Option<Pricing>,
}

impl Route {
    /// Whether users on `plan` may use this route (model class aside).
    pub fn allows_plan(&self, plan: &str) -> bool {
        match &self.plans {
            PlanSelector::All => true,
            PlanSelector::Only(plans) => plans.iter().any(|p| p == plan),
        }
    }

    /// The pricing that applies to a deployment of this route.
    pub fn pricing_for<'a>(&'a self, deployment: &'a Deployment) -> Option<&'a Pricing> {
        deployment.pricing.as_ref().or(self.pricing.as_ref())
    }
}

/// Which plans a route serves: all of them, or a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PlanSelector {
    /// Every plan (`"*"`, `["*"]` or omitted).
    #[default]
    All,
    /// Only the listed plans.
    Only(Vec<String>),
}

impl Serialize for PlanSelector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PlanSelector::All => serializer.serialize_str("*"),
            PlanSelector::Only(plans) => plans.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for PlanSelector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PlanSelectorVisitor)
    }
}

struct PlanSelectorVisitor;

impl<'de> Visitor<'de> for PlanSelectorVisitor {
    type Value = PlanSelector;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"*\" or a list of plan names")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PlanSelector, E> {
        if v == "*" {
            Ok(PlanSelector::All)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PlanSelector, A::Error> {
        let mut plans = Vec::new();
        while let Some(plan) = seq.next_element::<String>()? {
            plans.push(plan);
        }
        if plans == ["*"] {
            return Ok(PlanSelector::All);
        }
        Ok(PlanSelector::Only(plans))
    }
}

/// The kind of upstream API a deployment speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Keel's built-in offline simulator.
    Sim,
    /// OpenAI's API.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Any OpenAI-compatible server; needs `base_url`.
    #[serde(rename = "openai_compatible")]
    OpenAiCompatible,
}

impl ProviderKind {
    /// The manifest spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::Sim => "sim",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAiCompatible => "openai_compatible",
        }
    }
}

/// `[[routes.<name>.deployments]]`: one upstream model behind a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Upstream API kind.
    pub provider: ProviderKind,
    /// Upstream model name.
    pub model: String,
    /// Share of traffic among deployments; > 0, default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Upstream base URL (`http://` or `https://`); required for `openai_compatible`.
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key (never the key itself).
    pub api_key_env: Option<String>,
    /// Prices of this deployment, overriding the route's.
    pub pricing: Option<Pricing>,
}

fn default_weight() -> u32 {
    1
}

/// Integer prices per million tokens, in micros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// Price of one million uncached input tokens; >= 0.
    pub input_per_mtok_micros: Micros,
    /// Price of one million output tokens; >= 0.
    pub output_per_mtok_micros: Micros,
    /// Price of one million cached input tokens; >= 0, defaults to the input price.
    pub cached_input_per_mtok_micros: Option<Micros>,
}

impl Pricing {
    /// Cost of a call, rounded up to the next micro; `input` excludes `cached_input`.
    pub fn cost(&self, input: u64, cached_input: u64, output: u64) -> Micros {
        let cached = self
            .cached_input_per_mtok_micros
            .unwrap_or(self.input_per_mtok_micros);
        let total = i128::from(input) * i128::from(self.input_per_mtok_micros.0)
            + i128::from(cached_input) * i128::from(cached.0)
            + i128::from(output) * i128::from(self.output_per_mtok_micros.0);
        // Round up so that many small calls never cost less than their sum.
        let micros = (total + 999_999).div_euclid(1_000_000);
        Micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pricing_rounds_costs_up_to_the_micro() {
        let pricing = Pricing {
            input_per_mtok_micros: Micros(150_000),
            output_per_mtok_micros: Micros(600_000),
            cached_input_per_mtok_micros: Some(Micros(75_000)),
        };
        assert_eq!(pricing.cost(1_000_000, 0, 0), Micros(150_000));
        assert_eq!(pricing.cost(0, 1_000_000, 1_000_000), Micros(675_000));
        // 1 input token costs 0.15 micros: billed as 1.
        assert_eq!(pricing.cost(1, 0, 0), Micros(1));
        assert_eq!(pricing.cost(0, 0, 0), Micros(0));
    }

    #[test]
    fn cached_input_defaults_to_the_input_price() {
        let pricing = Pricing {
            input_per_mtok_micros: Micros(2_000_000),
            output_per_mtok_micros: Micros(0),
            cached_input_per_mtok_micros: None,
        };
        assert_eq!(pricing.cost(0, 500_000, 0), Micros(1_000_000));
    }
}
