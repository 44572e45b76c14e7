//! Unit tests of the billing arithmetic.
#![allow(clippy::unwrap_used)]

use keel_core::ids::{ReservationId, UserId};

use super::*;

fn key(meter: &str, window: &str) -> CounterKey {
    CounterKey::user(meter, window)
}

fn gate(key: CounterKey, amount: i64) -> Gate {
    Gate {
        key,
        limit: 100,
        amount,
        code: "limit_reached".into(),
        resets_at: None,
    }
}

fn reservation(gates: Vec<Gate>, amount: i64, balance_micros: i64) -> ReservationRecord {
    let (record, _) = new_reservation(
        "ten_x",
        NewReservation {
            id: ReservationId::new(),
            user_id: UserId::new(),
            meter: "jobs".into(),
            amount,
            balance_micros,
            idempotency_key: "k".into(),
            request_hash: vec![1],
            expires_at: Utc::now(),
            reason: String::new(),
            snapshot: serde_json::json!({}),
            gates,
        },
        Utc::now(),
    );
    record
}

fn usage(amount: i64, cost_micros: i64, counters: Vec<CounterKey>) -> NewLedgerEntry {
    NewLedgerEntry {
        user_id: UserId::new(),
        meter: "jobs".into(),
        amount,
        overage: 0,
        cost_micros,
        idempotency_key: "u".into(),
        source: serde_json::json!({}),
        reservation_id: None,
        counters,
        balance_micros: 0,
    }
}

#[test]
fn spend_counters_grow_by_cost_and_others_by_units() {
    assert_eq!(committed_delta(&key("$spend", "all"), 3, 250), 250);
    assert_eq!(committed_delta(&key("jobs", "all"), 3, 250), 3);
}

#[test]
fn gates_are_taken_in_key_order() {
    let gates = vec![
        gate(key("jobs", "month:2026-11"), 1),
        gate(key("$spend", "day:2026-11-21"), 1),
        gate(key("jobs", "day:2026-11-21"), 1),
    ];
    let order: Vec<_> = in_lock_order(&gates).iter().map(|g| &g.key).collect();
    assert_eq!(order, vec![&gates[1].key, &gates[2].key, &gates[0].key]);
}

#[test]
fn tenant_counters_are_shared_and_taken_before_any_users_own() {
    let shared = CounterKey::tenant("jobs", "month:2026-11");
    let gates = vec![
        gate(key("$spend", "month:2026-11"), 1),
        gate(shared.clone(), 1),
    ];
    let order: Vec<_> = in_lock_order(&gates).iter().map(|g| &g.key).collect();
    assert_eq!(order, vec![&shared, &gates[0].key]);
    let (one, two) = (reservation(gates.clone(), 1, 0), reservation(gates, 1, 0));
    let mut s = Settlement::default();
    s.release(&one);
    s.release(&two);
    let counters: Vec<_> = s
        .counters()
        .map(|(at, c, h)| (at.owner.clone(), at.key.meter.clone(), c, h))
        .collect();
    let mut users = [one.user_id.to_string(), two.user_id.to_string()];
    users.sort();
    assert_eq!(
        counters,
        vec![
            ("tenant".into(), "jobs".into(), 0, -2),
            (users[0].clone(), "$spend".into(), 0, -1),
            (users[1].clone(), "$spend".into(), 0, -1),
        ]
    );
    let stored = Tally::from([(CounterRef::new("ten_x", "usr_x", &shared), (1, 0))]);
    let found = mismatches(&stored, &Tally::new());
    assert_eq!((found[0].user_id.clone(), &found[0].key), (None, &shared));
    let back = CounterRef::stored("ten_x".into(), "tenant".into(), "jobs".into(), "w".into());
    assert_eq!(back.key, CounterKey::tenant("jobs", "w"));
    let back = CounterRef::stored("ten_x".into(), "usr_x".into(), "jobs".into(), "w".into());
    assert_eq!(back.key, key("jobs", "w"));
}

#[test]
fn a_stored_key_without_an_owner_is_the_users() {
    let old: CounterKey = serde_json::from_str(r#"{"meter":"jobs","window":"all"}"#).unwrap();
    assert_eq!(old, key("jobs", "all"));
    let text = serde_json::to_string(&key("jobs", "all")).unwrap();
    assert_eq!(text, r#"{"meter":"jobs","window":"all"}"#);
    let shared = serde_json::to_value(CounterKey::tenant("jobs", "all")).unwrap();
    assert_eq!(shared["owner"], "tenant");
}

#[test]
fn a_replay_needs_the_same_request_hash() {
    let r = reservation(vec![], 1, 0);
    let same = replay((r.clone(), vec![1, 2]), &[1, 2]);
    assert_eq!(same, ReserveOutcome::Replayed(r.clone()));
    assert_eq!(replay((r, vec![1, 2]), &[1, 3]), ReserveOutcome::KeyReused);
}

#[test]
fn releasing_returns_every_hold() {
    let r = reservation(vec![gate(key("jobs", "all"), 4)], 4, 900);
    let mut s = Settlement::default();
    s.release(&r);
    let counters: Vec<_> = s
        .counters()
        .map(|(at, c, h)| (at.key.clone(), c, h))
        .collect();
    assert_eq!(counters, vec![(key("jobs", "all"), 0, -4)]);
    let balances: Vec<_> = s.balances().map(|(_, _, b, h)| (b, h)).collect();
    assert_eq!(balances, vec![(0, -900)]);
}

#[test]
fn committing_moves_holds_to_what_was_used_and_pays_the_actual_cost() {
    let gates = vec![gate(key("jobs", "all"), 5), gate(key("$spend", "all"), 500)];
    let r = reservation(gates, 5, 500);
    let (entry, paid) = settled_entry(
        &r,
        NewLedgerEntry {
            balance_micros: 300,
            ..usage(3, 300, vec![])
        },
        Utc::now(),
    );
    assert_eq!((entry.user_id, entry.overage, paid), (r.user_id, 0, 300));
    assert_eq!(entry.reservation_id, Some(r.id));
    assert_eq!(
        entry.counters,
        vec![key("jobs", "all"), key("$spend", "all")]
    );
    let mut s = Settlement::default();
    s.commit(&r, &entry, paid);
    let counters: Vec<_> = s
        .counters()
        .map(|(at, c, h)| (at.key.meter.clone(), c, h))
        .collect();
    assert_eq!(
        counters,
        vec![("$spend".into(), 300, -500), ("jobs".into(), 3, -5)]
    );
    let balances: Vec<_> = s.balances().map(|(_, _, b, h)| (b, h)).collect();
    assert_eq!(balances, vec![(-300, -500)]);
}

#[test]
fn units_beyond_the_reservation_are_overage() {
    let r = reservation(vec![], 5, 0);
    let (entry, _) = settled_entry(&r, usage(8, 0, vec![]), Utc::now());
    assert_eq!(entry.overage, 3);
}

#[test]
fn changes_that_cancel_out_are_not_applied() {
    let r = reservation(vec![gate(key("jobs", "all"), 2)], 2, 0);
    let mut s = Settlement::default();
    s.counter("ten_x", &r.user_id.to_string(), &key("jobs", "all"), 0, 2);
    s.release(&r);
    assert_eq!(s.counters().count(), 0);
    assert_eq!(s.balances().count(), 0);
}

#[test]
fn batches_are_inserted_in_key_order_and_remember_their_positions() {
    let entries = ["b", "a", "c"].map(|k| NewLedgerEntry {
        idempotency_key: k.into(),
        ..usage(1, 0, vec![])
    });
    let order: Vec<_> = in_key_order(entries.to_vec())
        .into_iter()
        .map(|(i, e)| (i, e.idempotency_key))
        .collect();
    assert_eq!(
        order,
        vec![(1, "a".into()), (0, "b".into()), (2, "c".into())]
    );
}

#[test]
fn an_adjustment_replay_must_repeat_the_same_change() {
    let user = UserId::new();
    let done = (user.to_string(), -5, 95);
    assert_eq!(adjustment_replay(done.clone(), user, -5).unwrap(), 95);
    let other = adjustment_replay(done.clone(), user, 5);
    assert!(matches!(other, Err(StoreError::Conflict(_))), "{other:?}");
    let someone = adjustment_replay(done, UserId::new(), -5);
    assert!(
        matches!(someone, Err(StoreError::Conflict(_))),
        "{someone:?}"
    );
}

#[test]
fn mismatches_cover_counters_missing_on_either_side() {
    let at = |meter: &str| CounterRef::new("ten_x", "usr_x", &key(meter, "all"));
    let stored = Tally::from([(at("a"), (1, 0)), (at("b"), (2, 1)), (at("c"), (0, 0))]);
    let expected = Tally::from([(at("b"), (2, 1)), (at("d"), (0, 3))]);
    let found: Vec<_> = mismatches(&stored, &expected)
        .into_iter()
        .map(|m| (m.key.meter, m.stored, m.expected))
        .collect();
    assert_eq!(
        found,
        vec![("a".into(), (1, 0), (0, 0)), ("d".into(), (0, 0), (0, 3))]
    );
}
