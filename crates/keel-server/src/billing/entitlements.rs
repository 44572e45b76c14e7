//! `GET /v1/entitlements` (and its service twin): the plan, each meter's limit, use,
//! remaining, reset time, percent used and a human proxy, and the feature flags.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keel_core::billing::{
    active_override, limit_code, span, window_zone, OverrideTarget, Sliding, Span,
};
use keel_core::ids::UserId;
use keel_core::manifest::{LimitScope, Window};
use keel_store::{CounterKey, TenantScope};
use serde::Serialize;
use utoipa::ToSchema;

use super::{counter_key, plan_for};
use crate::{ApiError, AppState};

/// One meter's standing.
#[derive(Serialize, ToSchema)]
pub struct MeterOut {
    /// Meter name.
    pub meter: String,
    /// Its unit.
    pub unit: String,
    /// `day`, `week`, `month`, `billing_cycle`, `period`, or `credits`.
    pub window: String,
    /// `user` (the user's own allowance) or `tenant` (one allowance all users of the
    /// tenant share: `used` and `reserved` are then the tenant's).
    pub scope: &'static str,
    /// The limit (with add-ons), or null when unlimited.
    pub limit: Option<i64>,
    /// Settled plus held by reservations.
    pub used: i64,
    /// Held by active reservations (part of `used`).
    pub reserved: i64,
    /// `limit - used`, never negative; null when unlimited.
    pub remaining: Option<i64>,
    /// Whole percent of the limit used (0–100+); null when unlimited.
    pub percent_used: Option<i64>,
    /// When the window resets (RFC 3339); for a rolling window, when the oldest usage it
    /// counts leaves it (null when it counts none).
    pub resets_at: Option<String>,
    /// The code a reservation beyond the limit gets.
    pub code: Option<String>,
    /// Whether an operator's quota override changes this limit now.
    pub overridden: bool,
    /// "about 18 typical refactors left", when the manifest declares a typical amount.
    pub human: Option<String>,
}

/// A user's entitlements.
#[derive(Serialize, ToSchema)]
pub struct EntitlementsOut {
    /// The user.
    pub user_id: String,
    /// The plan in force.
    pub plan: String,
    /// `subscription` or `default`.
    pub plan_source: &'static str,
    /// Every feature of the manifest and whether the plan grants it.
    pub features: BTreeMap<String, bool>,
    /// Model classes the plan may use.
    pub model_classes: Vec<String>,
    /// One entry per limited meter (and per credit allowance).
    pub meters: Vec<MeterOut>,
    /// Prepaid balance, in micros, when the plan is prepaid.
    pub balance_micros: Option<i64>,
    /// Part of the balance held by reservations.
    pub balance_held_micros: Option<i64>,
}

/// (meter, window name, limit, span, code, scope)
type Row = (String, &'static str, i64, Span, &'static str, LimitScope);

fn window_name(w: &Window) -> &'static str {
    match w {
        Window::Day => "day",
        Window::Week => "week",
        Window::Month => "month",
        Window::BillingCycle => "billing_cycle",
        Window::Rolling(_) => "period",
    }
}

/// Builds the entitlements of `user` in `scope`.
pub async fn entitlements(
    state: &AppState,
    scope: &TenantScope,
    user: UserId,
) -> Result<EntitlementsOut, ApiError> {
    let manifest = state.manifest();
    let now: DateTime<Utc> = Utc::now();
    let choice = plan_for(state.store(), manifest, scope, user, now).await?;
    let plan = manifest
        .plans
        .get(&choice.plan)
        .ok_or_else(|| ApiError::internal("plan vanished from the manifest"))?;
    let tz = window_zone(manifest, plan, choice.timezone);
    let addons: Vec<&str> = choice.addons.iter().map(String::as_str).collect();
    let mut rows: Vec<Row> = Vec::new();
    for (meter, limit) in &plan.limits {
        let s = span(&limit.window, tz, now, choice.cycle);
        let value = plan.effective_limit(meter, &addons).unwrap_or(limit.limit);
        rows.push((
            meter.clone(),
            window_name(&limit.window),
            value,
            s,
            limit_code(&limit.window),
            limit.scope,
        ));
    }
    if plan.monthly_credits > 0 {
        for meter in manifest
            .meters
            .iter()
            .filter(|(_, m)| m.credits)
            .map(|(n, _)| n)
        {
            let mut s = span(&Window::BillingCycle, tz, now, choice.cycle);
            s.id = format!("credits:{}", s.id);
            rows.push((
                meter.clone(),
                "credits",
                plan.monthly_credits,
                s,
                "insufficient_credits",
                LimitScope::User,
            ));
        }
    }
    let usages = usage_of(state, scope, user, &rows).await?;
    let overrides = super::levers::overrides_for(state.store(), scope, user).await?;
    let mut meters = Vec::new();
    for ((meter, window, limit, _, code, limit_scope), v) in rows.into_iter().zip(usages) {
        let active = OverrideTarget::of_gate_code(code)
            .filter(|_| limit_scope != LimitScope::Tenant)
            .and_then(|t| active_override(&overrides, &meter, t, now));
        let limit = active.map_or(limit, |o| o.apply(limit));
        let used = v.used;
        let remaining = (limit - used).max(0);
        let def = manifest.meters.get(&meter);
        let human = def.and_then(|d| {
            let n = d.typical_remaining(remaining)?;
            let label = &d.typical.as_ref()?.label;
            Some(format!("about {n} typical {} left", plural(label, n)))
        });
        meters.push(MeterOut {
            unit: def.map(|d| d.unit.clone()).unwrap_or_default(),
            meter,
            window: window.to_string(),
            scope: match limit_scope {
                LimitScope::User => "user",
                LimitScope::Tenant => "tenant",
            },
            limit: Some(limit),
            used,
            reserved: v.reserved,
            remaining: Some(remaining),
            percent_used: Some(if limit > 0 {
                used.saturating_mul(100) / limit
            } else {
                100
            }),
            resets_at: v.resets_at.map(|t| t.to_rfc3339()),
            code: Some(code.to_string()),
            overridden: active.is_some(),
            human,
        });
    }
    let (balance_micros, balance_held_micros) = if plan.prepaid {
        let (b, h) = state.store().balance(scope, user).await?;
        (Some(b), Some(h))
    } else {
        (None, None)
    };
    Ok(EntitlementsOut {
        user_id: user.to_string(),
        plan: choice.plan.clone(),
        plan_source: if choice.cycle.is_some() {
            "subscription"
        } else {
            "default"
        },
        features: manifest
            .features
            .keys()
            .map(|f| (f.clone(), plan.has_feature(f)))
            .collect(),
        model_classes: plan.model_classes.clone(),
        meters,
        balance_micros,
        balance_held_micros,
    })
}

/// One row's standing: committed + reserved, the reserved part, and when it resets.
struct Usage {
    used: i64,
    reserved: i64,
    resets_at: Option<DateTime<Utc>>,
}

/// Reads every row's counters in one call: a fixed window's one counter, or every bucket
/// a rolling window counts (summed; it resets when its oldest bucket with usage leaves).
async fn usage_of(
    state: &AppState,
    scope: &TenantScope,
    user: UserId,
    rows: &[Row],
) -> Result<Vec<Usage>, ApiError> {
    let windows: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, _, _, s, _, _)| {
            Sliding::parse(&s.id).map_or_else(|| vec![s.id.clone()], |b| b.member_ids())
        })
        .collect();
    let keys: Vec<CounterKey> = rows
        .iter()
        .zip(&windows)
        .flat_map(|((m, _, _, _, _, limit_scope), ids)| {
            ids.iter().map(|id| counter_key(*limit_scope, m, id))
        })
        .collect();
    let values = state.store().counters(scope, user, &keys).await?;
    let mut values = values.into_iter();
    let mut out = Vec::with_capacity(rows.len());
    for ((_, _, _, s, _, _), ids) in rows.iter().zip(&windows) {
        let part: Vec<_> = values.by_ref().take(ids.len()).collect();
        let per_bucket: Vec<i64> = part.iter().map(|v| v.committed + v.reserved).collect();
        let resets_at = match Sliding::parse(&s.id) {
            Some(bucket) => bucket.frees_at(&per_bucket),
            None => Some(s.end),
        };
        out.push(Usage {
            used: per_bucket.iter().sum(),
            reserved: part.iter().map(|v| v.reserved).sum(),
            resets_at,
        });
    }
    Ok(out)
}

/// English plural of a label: `refactor` → `refactors`, `reply` → `replies`.
fn plural(label: &str, n: i64) -> String {
    if n == 1 {
        return label.to_string();
    }
    let consonant_y = label.ends_with('y')
        && !label.ends_with("ay")
        && !label.ends_with("ey")
        && !label.ends_with("oy");
    if consonant_y {
        format!("{}ies", &label[..label.len() - 1])
    } else if label.ends_with('s')
        || label.ends_with("sh")
        || label.ends_with("ch")
        || label.ends_with('x')
    {
        format!("{label}es")
    } else {
        format!("{label}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_pluralise() {
        assert_eq!(super::plural("refactor", 18), "refactors");
        assert_eq!(super::plural("chat reply", 2), "chat replies");
        assert_eq!(super::plural("day", 2), "days");
        assert_eq!(super::plural("batch", 3), "batches");
        assert_eq!(super::plural("session", 1), "session");
    }
}
