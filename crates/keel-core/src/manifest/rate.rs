//! Request rate limits: `[rate_limits.<class>]` for every caller of a route class, and
//! `[plans.<plan>.rate_limits.<class>]` overriding them, scope by scope, for a plan's users.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::duration::DurationSpec;
use super::model::Manifest;
use crate::integrity::rate::Rate;

/// `{ requests = 10, per = "1s", burst = 20 }`: a GCRA request rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per period; > 0.
    pub requests: u32,
    /// The period.
    pub per: DurationSpec,
    /// Requests allowed at once after idling; defaults to `requests`, must be >= 1.
    pub burst: Option<u32>,
    /// Gateway only: tokens allowed per period (each request is charged its maximum
    /// tokens at admission and corrected to its actual usage after); > 0.
    pub tokens: Option<u32>,
}

impl RateLimit {
    /// Requests admitted at once after idling.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.requests)
    }

    /// The limit in GCRA terms; `None` for a zero rate (refused by validation).
    pub fn rate(&self) -> Option<Rate> {
        Rate::new(self.requests, self.per.as_duration(), self.burst())
    }

    /// The token budget in GCRA terms (one cell per token, the whole budget as burst);
    /// `None` when no token budget is declared.
    pub fn token_rate(&self) -> Option<Rate> {
        let tokens = self.tokens?;
        Rate::new(tokens, self.per.as_duration(), tokens)
    }
}

/// The kinds of routes limits are declared for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteClass {
    /// `/v1/auth/*` (and the admin sign-in): mostly unauthenticated, limited per IP.
    Auth,
    /// `/v1/chat/*`, `/v1/models`: the LLM gateway.
    Gateway,
    /// `/v1/jobs*`: jobs and their event streams.
    Jobs,
    /// `/v1/service/*`: the product's own services.
    Service,
    /// Every other `/v1/*` route of the client API.
    Api,
}

impl RouteClass {
    /// Every class, in declaration order.
    pub const ALL: [RouteClass; 5] = [
        RouteClass::Auth,
        RouteClass::Gateway,
        RouteClass::Jobs,
        RouteClass::Service,
        RouteClass::Api,
    ];

    /// The manifest key and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Auth => "auth",
            RouteClass::Gateway => "gateway",
            RouteClass::Jobs => "jobs",
            RouteClass::Service => "service",
            RouteClass::Api => "api",
        }
    }
}

impl fmt::Display for RouteClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a limit counts requests for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The client IP address (IPv6 by /64), every caller.
    Ip,
    /// The API key (client API) or service key (service API) used.
    Key,
    /// The user, however they authenticate.
    User,
    /// All users of a tenant together.
    Tenant,
}

impl Scope {
    /// Every scope, in the order limits are checked.
    pub const ALL: [Scope; 4] = [Scope::Ip, Scope::Key, Scope::User, Scope::Tenant];

    /// The manifest key and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ip => "ip",
            Scope::Key => "key",
            Scope::User => "user",
            Scope::Tenant => "tenant",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[rate_limits.<class>]`: one optional limit per scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassLimits {
    /// Per client IP.
    pub ip: Option<RateLimit>,
    /// Per API key or service key.
    pub key: Option<RateLimit>,
    /// Per user.
    pub user: Option<RateLimit>,
    /// Per tenant.
    pub tenant: Option<RateLimit>,
}

impl ClassLimits {
    /// The limit on `scope`, if any.
    pub fn get(&self, scope: Scope) -> Option<&RateLimit> {
        match scope {
            Scope::Ip => self.ip.as_ref(),
            Scope::Key => self.key.as_ref(),
            Scope::User => self.user.as_ref(),
            Scope::Tenant => self.tenant.as_ref(),
        }
    }

    /// The declared limits with their scopes, in check order.
    pub fn iter(&self) -> impl Iterator<Item = (Scope, &RateLimit)> {
        Scope::ALL
            .into_iter()
            .filter_map(|scope| self.get(scope).map(|limit| (scope, limit)))
    }

    /// Whether no scope is limited.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// These limits with every scope `over` declares replaced by its limit.
    pub fn overlaid(&self, over: &ClassLimits) -> ClassLimits {
        let pick = |a: &Option<RateLimit>, b: &Option<RateLimit>| b.clone().or_else(|| a.clone());
        ClassLimits {
            ip: pick(&self.ip, &over.ip),
            key: pick(&self.key, &over.key),
            user: pick(&self.user, &over.user),
            tenant: pick(&self.tenant, &over.tenant),
        }
    }
}

/// `[rate_limits]` (product-wide) or `[plans.<plan>.rate_limits]`: limits per route class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// `auth`: sign-in, registration, refresh.
    pub auth: Option<ClassLimits>,
    /// `gateway`: chat completions and models.
    pub gateway: Option<ClassLimits>,
    /// `jobs`: the jobs API.
    pub jobs: Option<ClassLimits>,
    /// `service`: the service API (product-wide only).
    pub service: Option<ClassLimits>,
    /// `api`: the rest of the client API.
    pub api: Option<ClassLimits>,
}

impl RateLimits {
    /// The limits of `class`, if declared.
    pub fn class(&self, class: RouteClass) -> Option<&ClassLimits> {
        match class {
            RouteClass::Auth => self.auth.as_ref(),
            RouteClass::Gateway => self.gateway.as_ref(),
            RouteClass::Jobs => self.jobs.as_ref(),
            RouteClass::Service => self.service.as_ref(),
            RouteClass::Api => self.api.as_ref(),
        }
    }

    /// Whether no class declares any limit.
    pub fn is_empty(&self) -> bool {
        RouteClass::ALL
            .into_iter()
            .all(|c| self.class(c).is_none_or(ClassLimits::is_empty))
    }
}

impl Manifest {
    /// The limits a request of `class` is held to: the product-wide ones, overridden scope by
    /// scope by those of `plan` (the caller's plan; `None` for anonymous and service callers).
    pub fn rate_limits_for(&self, class: RouteClass, plan: Option<&str>) -> ClassLimits {
        let base = self.rate_limits.class(class).cloned().unwrap_or_default();
        let over = plan
            .and_then(|p| self.plans.get(p))
            .and_then(|p| p.rate_limits.class(class));
        match over {
            Some(over) => base.overlaid(over),
            None => base,
        }
    }

    /// Whether any plan declares limits for `class` (if not, the caller's plan is irrelevant).
    pub fn plans_limit(&self, class: RouteClass) -> bool {
        self.plans
            .values()
            .any(|p| p.rate_limits.class(class).is_some_and(|c| !c.is_empty()))
    }

    /// Whether a request of `class` may be limited by anything other than its IP.
    pub fn limits_callers(&self, class: RouteClass) -> bool {
        let global = self.rate_limits.class(class);
        let by_caller =
            global.is_some_and(|c| c.key.is_some() || c.user.is_some() || c.tenant.is_some());
        by_caller || self.plans_limit(class)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limit(requests: u32) -> RateLimit {
        RateLimit {
            requests,
            per: DurationSpec::from_secs(60).unwrap(),
            burst: None,
            tokens: None,
        }
    }

    #[test]
    fn a_plan_overrides_only_the_scopes_it_declares() {
        let base = ClassLimits {
            ip: Some(limit(1)),
            user: Some(limit(2)),
            ..Default::default()
        };
        let over = ClassLimits {
            user: Some(limit(20)),
            tenant: Some(limit(30)),
            ..Default::default()
        };
        let merged = base.overlaid(&over);
        let requests: Vec<(Scope, u32)> = merged.iter().map(|(s, l)| (s, l.requests)).collect();
        assert_eq!(
            requests,
            [(Scope::Ip, 1), (Scope::User, 20), (Scope::Tenant, 30)]
        );
    }

    #[test]
    fn burst_defaults_to_requests() {
        assert_eq!(limit(7).burst(), 7);
        let with_burst = RateLimit {
            burst: Some(3),
            ..limit(7)
        };
        assert_eq!(with_burst.burst(), 3);
        assert_eq!(with_burst.rate().unwrap().burst(), 3);
        assert!(limit(0).rate().is_none());
    }

    #[test]
    fn empty_tables_limit_nothing() {
        let mut limits = RateLimits::default();
        assert!(limits.is_empty());
        limits.api = Some(ClassLimits::default());
        assert!(limits.is_empty());
        limits.api = Some(ClassLimits {
            key: Some(limit(1)),
            ..Default::default()
        });
        assert!(!limits.is_empty());
        assert_eq!(RouteClass::Api.to_string(), "api");
        assert_eq!(Scope::Tenant.to_string(), "tenant");
    }
}
