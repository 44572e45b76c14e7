//! Rate limit checks: positive rates no finer than one request per microsecond, scopes that
//! make sense for their class, and no plan-level IP or service limits.

use super::Checker;
use crate::manifest::error::{Issue, Path};
use crate::manifest::rate::{RateLimit, RateLimits, RouteClass, Scope};

impl Checker<'_> {
    /// Checks `[rate_limits]` (`plan` is `None`) or `[plans.<plan>.rate_limits]`.
    pub(super) fn rate_limits(&mut self, path: &Path, limits: &RateLimits, plan: Option<&str>) {
        for class in RouteClass::ALL {
            let Some(class_limits) = limits.class(class) else {
                continue;
            };
            let class_path = path.key(class.as_str());
            if plan.is_some() && class == RouteClass::Service {
                let message = "service calls have no plan: limit them under [rate_limits.service]";
                self.issues.push(Issue::key(class_path, message));
                continue;
            }
            for (scope, limit) in class_limits.iter() {
                let scope_path = class_path.key(scope.as_str());
                if let Some(message) = misplaced(plan.is_some(), class, scope) {
                    self.issues.push(Issue::key(scope_path.clone(), message));
                }
                self.rate(&scope_path, limit);
                if let Some(tokens) = limit.tokens {
                    self.tokens(&scope_path, class, scope, tokens);
                }
            }
        }
    }

    fn rate(&mut self, path: &Path, limit: &RateLimit) {
        self.positive(path.key("requests"), i64::from(limit.requests));
        if let Some(burst) = limit.burst {
            self.positive(path.key("burst"), i64::from(burst));
        }
        let per_micros = limit.per.as_duration().as_micros();
        if u128::from(limit.requests) > per_micros {
            let message = format!(
                "{} requests per {} is more than one per microsecond: lengthen `per`",
                limit.requests, limit.per
            );
            self.issues
                .push(Issue::value(path.key("requests"), message));
        }
    }
}

impl Checker<'_> {
    fn tokens(&mut self, path: &Path, class: RouteClass, scope: Scope, tokens: u32) {
        let path = path.key("tokens");
        if class != RouteClass::Gateway {
            let message =
                "token budgets apply to the gateway only: declare them under [rate_limits.gateway]";
            self.issues.push(Issue::key(path, message));
        } else if scope == Scope::Ip {
            let message = "token budgets are per key, user or tenant, not per IP";
            self.issues.push(Issue::key(path, message));
        } else {
            self.positive(path, i64::from(tokens));
        }
    }
}

/// Why a scope does not belong where it is declared, if it does not.
fn misplaced(in_plan: bool, class: RouteClass, scope: Scope) -> Option<String> {
    match (in_plan, class, scope) {
        (true, _, Scope::Ip) => Some(format!(
            "an IP limit holds every caller whatever their plan: declare it under [rate_limits.{class}]"
        )),
        (false, RouteClass::Service, Scope::User | Scope::Tenant) => {
            Some("service calls are limited per `key` (the service key) or `ip` only".to_owned())
        }
        _ => None,
    }
}
