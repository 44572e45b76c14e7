-- Billing: quota counters, reservations, the append-only usage ledger, prepaid balances
-- and subscriptions. Every row carries its tenant. Amounts are integers (meter units, or
-- micros for money), times RFC 3339 text in UTC, gates / counter keys / snapshots /
-- sources / add-ons JSON text. Users are referenced by id only, as in the audit log, so
-- billing history never depends on identity rows.

-- One user's usage of one meter in one window: settled (`committed`) and held by active
-- reservations (`reserved`).
CREATE TABLE quota_counters (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    meter      TEXT NOT NULL,
    "window"   TEXT NOT NULL,
    committed  INTEGER NOT NULL DEFAULT 0,
    reserved   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, user_id, meter, "window")
);

CREATE TABLE reservations (
    id                TEXT PRIMARY KEY NOT NULL,
    tenant_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    meter             TEXT NOT NULL,
    amount            INTEGER NOT NULL,
    balance_micros    INTEGER NOT NULL,
    idempotency_key   TEXT NOT NULL,
    request_hash      BLOB NOT NULL,
    status            TEXT NOT NULL
                      CHECK (status IN ('active', 'committed', 'released', 'expired')),
    expires_at        TEXT NOT NULL,
    reason            TEXT NOT NULL,
    snapshot          TEXT NOT NULL,
    gates             TEXT NOT NULL,
    committed_amount  INTEGER,
    created_at        TEXT NOT NULL,
    settled_at        TEXT,
    CONSTRAINT reservations_idempotency UNIQUE (tenant_id, idempotency_key)
);
-- The sweeper's scan: active reservations past their expiry.
CREATE INDEX reservations_to_expire ON reservations (status, expires_at);

-- Append-only: never updated or deleted (the triggers below refuse it).
CREATE TABLE usage_ledger (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id        TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    meter            TEXT NOT NULL,
    amount           INTEGER NOT NULL,
    overage          INTEGER NOT NULL,
    cost_micros      INTEGER NOT NULL,
    balance_micros   INTEGER NOT NULL,
    idempotency_key  TEXT NOT NULL,
    source           TEXT NOT NULL,
    reservation_id   TEXT,
    counters         TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    CONSTRAINT usage_ledger_idempotency UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX usage_ledger_by_user ON usage_ledger (tenant_id, user_id, created_at);
-- A reservation settles into at most one entry.
CREATE UNIQUE INDEX usage_ledger_by_reservation ON usage_ledger (tenant_id, reservation_id)
    WHERE reservation_id IS NOT NULL;
CREATE TRIGGER usage_ledger_no_update BEFORE UPDATE ON usage_ledger
BEGIN
    SELECT RAISE(ABORT, 'usage_ledger is append-only');
END;
CREATE TRIGGER usage_ledger_no_delete BEFORE DELETE ON usage_ledger
BEGIN
    SELECT RAISE(ABORT, 'usage_ledger is append-only');
END;

-- Prepaid money, and the part of it active reservations hold.
CREATE TABLE balances (
    tenant_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    balance_micros  INTEGER NOT NULL DEFAULT 0,
    held_micros     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, user_id)
);

-- Top-ups and removals, one per idempotency key; `balance_after` answers a replay.
CREATE TABLE balance_adjustments (
    tenant_id        TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    delta            INTEGER NOT NULL,
    balance_after    INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);

CREATE TABLE subscriptions (
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    plan          TEXT NOT NULL,
    status        TEXT NOT NULL,
    period_start  TEXT NOT NULL,
    period_end    TEXT NOT NULL,
    source        TEXT NOT NULL,
    addons        TEXT NOT NULL DEFAULT '[]',
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
