//! Billing arithmetic shared by both backends, with no I/O: the records a reservation or
//! a usage entry becomes, idempotent replays, what settling, releasing or recording adds
//! to each counter and balance (in one lock order), and the comparison behind
//! `verify_counters`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keel_core::billing::Sliding;
use keel_core::ids::UserId;

use crate::{
    CounterKey, CounterMismatch, CounterOwner, Gate, LedgerEntry, NewLedgerEntry, NewReservation,
    ReservationRecord, ReservationStatus, ReserveOutcome, StoreError, StoreResult,
};

/// The meter whose counters count money (micros) instead of units.
pub(crate) const SPEND_METER: &str = "$spend";

/// The `owner` column of a tenant's shared counters; a user's counters hold the user id
/// there (`usr_…`), so the two never collide.
pub(crate) const TENANT_OWNER: &str = "tenant";

/// The `owner` column of `key`'s counter for a reservation or entry of `user`.
pub(crate) fn owner_of<'a>(key: &CounterKey, user: &'a str) -> &'a str {
    match key.owner {
        CounterOwner::Tenant => TENANT_OWNER,
        CounterOwner::User => user,
    }
}

/// A counter key read back from its columns: the owner column says whose it is.
pub(crate) fn stored_key(owner: &str, meter: String, window: String) -> CounterKey {
    let owner = if owner == TENANT_OWNER {
        CounterOwner::Tenant
    } else {
        CounterOwner::User
    };
    CounterKey {
        owner,
        meter,
        window,
    }
}

/// What a ledger entry adds to a counter's committed side: its cost on `$spend`, its
/// units on every other meter.
pub(crate) fn committed_delta(key: &CounterKey, amount: i64, cost_micros: i64) -> i64 {
    if key.meter == SPEND_METER {
        cost_micros
    } else {
        amount
    }
}

/// A sliding-window gate (its window is a `slide:` bucket id): the ids of every bucket it
/// counts, oldest first, and the key both backends serialise its reservations on —
/// one per (tenant, owner, meter, length), whatever the bucket.
pub(crate) struct SlidingGate {
    pub(crate) members: Vec<String>,
    pub(crate) lock_key: String,
}

impl SlidingGate {
    /// `None` for a gate over a fixed window.
    pub(crate) fn of(tenant: &str, owner: &str, key: &CounterKey) -> Option<Self> {
        let bucket = Sliding::parse(&key.window)?;
        Some(Self {
            members: bucket.member_ids(),
            lock_key: format!(
                "slide|{tenant}|{owner}|{}|{}:{}",
                key.meter, bucket.length, bucket.width
            ),
        })
    }
}

/// The gates in key order: every transaction takes counter rows in this order, so two
/// reservations of one user never wait on each other in a cycle.
pub(crate) fn in_lock_order(gates: &[Gate]) -> Vec<&Gate> {
    let mut sorted: Vec<&Gate> = gates.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    sorted
}

/// The answer to a request whose idempotency key already names `found` (stored with
/// `stored_hash`).
pub(crate) fn replay(found: (ReservationRecord, Vec<u8>), request_hash: &[u8]) -> ReserveOutcome {
    let (record, stored_hash) = found;
    if stored_hash == request_hash {
        ReserveOutcome::Replayed(record)
    } else {
        ReserveOutcome::KeyReused
    }
}

/// The active record a reservation becomes, and the request hash stored beside it.
pub(crate) fn new_reservation(
    tenant: &str,
    r: NewReservation,
    now: DateTime<Utc>,
) -> (ReservationRecord, Vec<u8>) {
    let record = ReservationRecord {
        id: r.id,
        tenant_id: tenant.to_string(),
        user_id: r.user_id,
        meter: r.meter,
        amount: r.amount,
        balance_micros: r.balance_micros,
        idempotency_key: r.idempotency_key,
        status: ReservationStatus::Active,
        expires_at: crate::micros(r.expires_at),
        reason: r.reason,
        snapshot: r.snapshot,
        gates: r.gates,
        committed_amount: None,
        created_at: now,
        settled_at: None,
    };
    (record, r.request_hash)
}

/// The ledger entry usage becomes (its `id` is set once inserted), and the money it
/// takes from the balance.
pub(crate) fn ledger_entry(
    tenant: &str,
    e: NewLedgerEntry,
    now: DateTime<Utc>,
) -> (LedgerEntry, i64) {
    let entry = LedgerEntry {
        id: 0,
        tenant_id: tenant.to_string(),
        user_id: e.user_id,
        meter: e.meter,
        amount: e.amount,
        overage: e.overage,
        cost_micros: e.cost_micros,
        idempotency_key: e.idempotency_key,
        source: e.source,
        reservation_id: e.reservation_id,
        counters: e.counters,
        created_at: now,
    };
    (entry, e.balance_micros)
}

/// The ledger entry settling `r`: its user, its gates' counters, and the units used
/// beyond it as overage.
pub(crate) fn settled_entry(
    r: &ReservationRecord,
    e: NewLedgerEntry,
    now: DateTime<Utc>,
) -> (LedgerEntry, i64) {
    let overage = (e.amount - r.amount).max(0);
    let (entry, balance) = ledger_entry(&r.tenant_id, e, now);
    let entry = LedgerEntry {
        user_id: r.user_id,
        overage,
        reservation_id: Some(r.id),
        counters: r.gates.iter().map(|g| g.key.clone()).collect(),
        ..entry
    };
    (entry, balance)
}

/// A balance adjustment under a used key, (user, delta, balance after): a replay answers
/// what the first use answered; the key with another change conflicts.
pub(crate) fn adjustment_replay(
    done: (String, i64, i64),
    user: UserId,
    delta: i64,
) -> StoreResult<i64> {
    let (done_user, done_delta, after) = done;
    if done_user == user.to_string() && done_delta == delta {
        Ok(after)
    } else {
        Err(StoreError::Conflict(
            "the idempotency key was used for another balance adjustment".into(),
        ))
    }
}

/// A removal that would leave less than active reservations hold.
pub(crate) fn below_held() -> StoreError {
    StoreError::Conflict("the balance cannot go below the amount held by reservations".into())
}

/// Entries with their positions, sorted by idempotency key so that concurrent batches
/// insert (and wait on) keys in one order.
pub(crate) fn in_key_order(entries: Vec<NewLedgerEntry>) -> Vec<(usize, NewLedgerEntry)> {
    let mut indexed: Vec<_> = entries.into_iter().enumerate().collect();
    indexed.sort_by(|(_, a), (_, b)| a.idempotency_key.cmp(&b.idempotency_key));
    indexed
}

/// One stored counter: a user's, or the tenant's (`owner` is then [`TENANT_OWNER`]).
/// Ordered by tenant, then key (tenant counters first), then owner: the lock order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CounterRef {
    pub(crate) tenant_id: String,
    pub(crate) key: CounterKey,
    pub(crate) owner: String,
}

impl CounterRef {
    /// The counter `key` names for a reservation or entry of `user`.
    pub(crate) fn new(tenant: &str, user: &str, key: &CounterKey) -> Self {
        Self {
            tenant_id: tenant.to_string(),
            key: key.clone(),
            owner: owner_of(key, user).to_string(),
        }
    }

    /// A counter read back from its columns.
    pub(crate) fn stored(tenant: String, owner: String, meter: String, window: String) -> Self {
        Self {
            key: stored_key(&owner, meter, window),
            tenant_id: tenant,
            owner,
        }
    }
}

/// (committed, reserved) per counter, in lock order.
pub(crate) type Tally = BTreeMap<CounterRef, (i64, i64)>;

/// Adds to a counter's (committed, reserved).
pub(crate) fn tally(into: &mut Tally, at: CounterRef, committed: i64, reserved: i64) {
    let value = into.entry(at).or_default();
    value.0 += committed;
    value.1 += reserved;
}

/// The counter and balance changes of one transaction. Applying counters before
/// balances, each in key order, gives every transaction the same lock order.
#[derive(Debug, Default)]
pub(crate) struct Settlement {
    counters: Tally,
    balances: BTreeMap<(String, String), (i64, i64)>,
}

impl Settlement {
    /// Returns a reservation's holds (release, expiry).
    pub(crate) fn release(&mut self, r: &ReservationRecord) {
        let user = r.user_id.to_string();
        for gate in &r.gates {
            self.counter(&r.tenant_id, &user, &gate.key, 0, -gate.amount);
        }
        self.balance(&r.tenant_id, &user, 0, -r.balance_micros);
    }

    /// Settles a reservation: each gate's hold goes, what was used is committed, and the
    /// balance pays what was used instead of what was held.
    pub(crate) fn commit(&mut self, r: &ReservationRecord, entry: &LedgerEntry, paid: i64) {
        let user = r.user_id.to_string();
        for gate in &r.gates {
            let used = committed_delta(&gate.key, entry.amount, entry.cost_micros);
            self.counter(&r.tenant_id, &user, &gate.key, used, -gate.amount);
        }
        self.balance(&r.tenant_id, &user, -paid, -r.balance_micros);
    }

    /// Usage recorded without a reservation.
    pub(crate) fn usage(&mut self, entry: &LedgerEntry, paid: i64) {
        let user = entry.user_id.to_string();
        for key in &entry.counters {
            let used = committed_delta(key, entry.amount, entry.cost_micros);
            self.counter(&entry.tenant_id, &user, key, used, 0);
        }
        self.balance(&entry.tenant_id, &user, -paid, 0);
    }

    /// Non-zero counter changes in lock order: (counter, committed, reserved).
    pub(crate) fn counters(&self) -> impl Iterator<Item = (&CounterRef, i64, i64)> {
        self.counters
            .iter()
            .filter(|(_, &v)| v != (0, 0))
            .map(|(at, &(committed, reserved))| (at, committed, reserved))
    }

    /// Non-zero balance changes in lock order: (tenant, user, balance, held).
    pub(crate) fn balances(&self) -> impl Iterator<Item = (&str, &str, i64, i64)> {
        self.balances
            .iter()
            .filter(|(_, &v)| v != (0, 0))
            .map(|((t, u), &(balance, held))| (t.as_str(), u.as_str(), balance, held))
    }

    fn counter(
        &mut self,
        tenant: &str,
        user: &str,
        key: &CounterKey,
        committed: i64,
        reserved: i64,
    ) {
        let at = CounterRef::new(tenant, user, key);
        tally(&mut self.counters, at, committed, reserved);
    }

    fn balance(&mut self, tenant: &str, user: &str, balance: i64, held: i64) {
        let value = self
            .balances
            .entry((tenant.to_string(), user.to_string()))
            .or_default();
        value.0 += balance;
        value.1 += held;
    }
}

/// Counters whose stored value differs from the recount, in counter order; a counter
/// missing on either side counts as (0, 0).
pub(crate) fn mismatches(stored: &Tally, expected: &Tally) -> Vec<CounterMismatch> {
    let keys: std::collections::BTreeSet<&CounterRef> =
        stored.keys().chain(expected.keys()).collect();
    keys.into_iter()
        .filter_map(|at| {
            let stored = stored.get(at).copied().unwrap_or_default();
            let expected = expected.get(at).copied().unwrap_or_default();
            (stored != expected).then(|| CounterMismatch {
                tenant_id: at.tenant_id.clone(),
                user_id: (at.key.owner == CounterOwner::User).then(|| at.owner.clone()),
                key: at.key.clone(),
                stored,
                expected,
            })
        })
        .collect()
}

pub(crate) mod reversal;

#[cfg(test)]
mod tests;

/// Answers a batch of counter keys from the rows one query read (`(owner, meter, window,
/// committed, reserved)` for the user's and the tenant's counters in the keys' windows), in
/// the keys' order; a key without a row reads as zero.
pub(crate) fn counter_values(
    keys: &[CounterKey],
    user: &str,
    rows: Vec<(String, String, String, i64, i64)>,
) -> Vec<crate::CounterValue> {
    let found: std::collections::HashMap<(String, String, String), (i64, i64)> = rows
        .into_iter()
        .map(|(owner, meter, window, c, r)| ((owner, meter, window), (c, r)))
        .collect();
    keys.iter()
        .map(|key| {
            let id = (
                owner_of(key, user).to_string(),
                key.meter.clone(),
                key.window.clone(),
            );
            let (committed, reserved) = found.get(&id).copied().unwrap_or((0, 0));
            crate::CounterValue {
                key: key.clone(),
                committed,
                reserved,
            }
        })
        .collect()
}

/// The distinct windows of a batch of keys (the batched read filters on them).
pub(crate) fn windows_of(keys: &[CounterKey]) -> Vec<String> {
    let mut windows: Vec<String> = keys.iter().map(|k| k.window.clone()).collect();
    windows.sort();
    windows.dedup();
    windows
}
