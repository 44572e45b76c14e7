//! The compensating entry that reverses a committed reservation's ledger entry: same
//! user, meter and counters, every quantity negated, so the ledger's sums, the counters'
//! committed sides and the balance return to what they were before the commit.

use chrono::{DateTime, Utc};
use keel_core::ids::ReservationId;
use serde_json::json;

use crate::LedgerEntry;

/// The reversal's idempotency key: one reversal per reservation, whoever races.
pub(crate) fn reversal_key(reservation: ReservationId) -> String {
    format!("reversal:{reservation}")
}

/// The entry reversing `original` (which settled `reservation` and took `paid` micros
/// from the balance), and the money it takes from the balance (`-paid`: it gives it back).
pub(crate) fn reversal_entry(
    original: &LedgerEntry,
    paid: i64,
    reservation: ReservationId,
    reason: &str,
    now: DateTime<Utc>,
) -> (LedgerEntry, i64) {
    let mut source = json!({
        "reversal": true,
        "reverses": original.id,
        "reservation_id": reservation.to_string(),
        "reason": reason,
    });
    // Usage by feature nets to zero only if the reversal counts under the same feature.
    if let Some(feature) = original.source.get("feature") {
        source["feature"] = feature.clone();
    }
    let entry = LedgerEntry {
        id: 0,
        tenant_id: original.tenant_id.clone(),
        user_id: original.user_id,
        meter: original.meter.clone(),
        amount: -original.amount,
        overage: -original.overage,
        cost_micros: -original.cost_micros,
        idempotency_key: reversal_key(reservation),
        source,
        // The reservation is named in `source`: the column holds the one entry that
        // settled it (a unique index), which the reversal is not.
        reservation_id: None,
        counters: original.counters.clone(),
        created_at: now,
    };
    (entry, -paid)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::billing_calc::Settlement;
    use crate::CounterKey;
    use keel_core::ids::UserId;

    fn original() -> LedgerEntry {
        LedgerEntry {
            id: 7,
            tenant_id: "t".into(),
            user_id: UserId::new(),
            meter: "jobs".into(),
            amount: 3,
            overage: 1,
            cost_micros: 3_000,
            idempotency_key: "k".into(),
            source: json!({"feature": "refactor"}),
            reservation_id: Some(ReservationId::new()),
            counters: vec![
                CounterKey::user("jobs", "day:2026-12-04"),
                CounterKey::user("$spend", "month:2026-12"),
                CounterKey::tenant("jobs", "all"),
            ],
            created_at: Utc::now(),
        }
    }

    #[test]
    fn the_reversal_negates_every_quantity_and_names_the_original() {
        let o = original();
        let r = ReservationId::new();
        let (rev, paid) = reversal_entry(&o, 2_500, r, "infra_failure", Utc::now());
        assert_eq!((rev.amount, rev.overage, rev.cost_micros), (-3, -1, -3_000));
        assert_eq!(paid, -2_500);
        assert_eq!(rev.counters, o.counters);
        assert_eq!(rev.reservation_id, None);
        assert_eq!(rev.idempotency_key, format!("reversal:{r}"));
        assert_eq!(rev.source["reverses"], 7);
        assert_eq!(rev.source["reason"], "infra_failure");
        assert_eq!(rev.source["feature"], "refactor");
    }

    #[test]
    fn usage_then_its_reversal_changes_no_counter_or_balance() {
        let o = original();
        let (rev, paid) = reversal_entry(&o, 2_500, ReservationId::new(), "x", Utc::now());
        let mut changes = Settlement::default();
        changes.usage(&o, 2_500);
        changes.usage(&rev, paid);
        assert_eq!(changes.counters().count(), 0);
        assert_eq!(changes.balances().count(), 0);
    }
}
