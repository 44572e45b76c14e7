//! Route resilience checks: retry counts and backoff, timeouts that fit the total, breaker
//! settings in range.

use super::Checker;
use crate::gateway::policy::{DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_TOTAL_TIMEOUT};
use crate::manifest::duration::DurationSpec;
use crate::manifest::error::{Issue, Path};
use crate::manifest::route::Route;

/// Most attempts per deployment: more only multiplies load on a failing upstream.
const MAX_ATTEMPTS: u32 = 10;
/// Most half-open probes.
const MAX_PROBES: u32 = 100;

impl Checker<'_> {
    pub(super) fn resilience(&mut self, path: &Path, route: &Route) {
        if let Some(retry) = &route.retry {
            let at = path.key("retry");
            if let Some(attempts) = retry.attempts {
                self.within(at.key("attempts"), attempts, 1, MAX_ATTEMPTS);
            }
            if let (Some(base), Some(max)) = (retry.base, retry.max) {
                if base > max {
                    let message = format!("must be at least `base` ({base}), found {max}");
                    self.issues.push(Issue::value(at.key("max"), message));
                }
            }
        }
        let total = route.total_timeout;
        for (key, value) in [
            ("timeout", route.timeout),
            ("ttft_timeout", route.ttft_timeout),
            ("idle_timeout", route.idle_timeout),
        ] {
            self.not_beyond_total(path.key(key), value, total);
        }
        if let Some(ttft) = route.ttft_timeout {
            let timeout = route
                .timeout
                .map_or(DEFAULT_ATTEMPT_TIMEOUT, |t| t.as_duration());
            if ttft.as_duration() > timeout {
                // The first output is awaited within the attempt: a longer wait is never used.
                let limit = route
                    .timeout
                    .map_or("the default 1m".to_owned(), |t| t.to_string());
                let message = format!("must not exceed timeout ({limit}), found {ttft}");
                self.issues
                    .push(Issue::value(path.key("ttft_timeout"), message));
            }
        }
        if let Some(breaker) = &route.breaker {
            let at = path.key("breaker");
            if let Some(rate) = breaker.failure_rate {
                self.within(at.key("failure_rate"), rate, 1, 100);
            }
            if let Some(min_calls) = breaker.min_calls {
                self.within(at.key("min_calls"), min_calls, 1, u32::MAX);
            }
            if let Some(probes) = breaker.probes {
                self.within(at.key("probes"), probes, 1, MAX_PROBES);
            }
        }
    }

    fn within(&mut self, path: Path, value: u32, min: u32, max: u32) {
        if value < min || value > max {
            let message = if max == u32::MAX {
                format!("must be at least {min}, found {value}")
            } else {
                format!("must be between {min} and {max}, found {value}")
            };
            self.issues.push(Issue::value(path, message));
        }
    }

    fn not_beyond_total(
        &mut self,
        path: Path,
        value: Option<DurationSpec>,
        total: Option<DurationSpec>,
    ) {
        let total_or_default = total.map_or(DEFAULT_TOTAL_TIMEOUT, |t| t.as_duration());
        if let Some(value) = value {
            if value.as_duration() > total_or_default {
                let total = total.map_or("the default 5m".to_owned(), |t| format!("{t}"));
                let message = format!("must not exceed total_timeout ({total}), found {value}");
                self.issues.push(Issue::value(path, message));
            }
        }
    }
}
