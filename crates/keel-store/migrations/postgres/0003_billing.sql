-- Billing: quota counters, reservations, the append-only usage ledger, prepaid balances
-- and subscriptions. Every row carries its tenant. Amounts are BIGINT (meter units, or
-- micros for money), times TIMESTAMPTZ, gates / counter keys / snapshots / sources /
-- add-ons JSONB. Users are referenced by id only, as in the audit log, so billing history
-- never depends on identity rows.

-- One user's usage of one meter in one window: settled (`committed`) and held by active
-- reservations (`reserved`).
CREATE TABLE quota_counters (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    meter      TEXT NOT NULL,
    "window"   TEXT NOT NULL,
    committed  BIGINT NOT NULL DEFAULT 0,
    reserved   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, user_id, meter, "window")
);

CREATE TABLE reservations (
    id                TEXT PRIMARY KEY NOT NULL,
    tenant_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    meter             TEXT NOT NULL,
    amount            BIGINT NOT NULL,
    balance_micros    BIGINT NOT NULL,
    idempotency_key   TEXT NOT NULL,
    request_hash      BYTEA NOT NULL,
    status            TEXT NOT NULL
                      CHECK (status IN ('active', 'committed', 'released', 'expired')),
    expires_at        TIMESTAMPTZ NOT NULL,
    reason            TEXT NOT NULL,
    snapshot          JSONB NOT NULL,
    gates             JSONB NOT NULL,
    committed_amount  BIGINT,
    created_at        TIMESTAMPTZ NOT NULL,
    settled_at        TIMESTAMPTZ,
    CONSTRAINT reservations_idempotency UNIQUE (tenant_id, idempotency_key)
);
-- The sweeper's scan: active reservations past their expiry.
CREATE INDEX reservations_to_expire ON reservations (status, expires_at);

-- Append-only: never updated or deleted (the trigger below refuses it).
CREATE TABLE usage_ledger (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    meter            TEXT NOT NULL,
    amount           BIGINT NOT NULL,
    overage          BIGINT NOT NULL,
    cost_micros      BIGINT NOT NULL,
    balance_micros   BIGINT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    source           JSONB NOT NULL,
    reservation_id   TEXT,
    counters         JSONB NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT usage_ledger_idempotency UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX usage_ledger_by_user ON usage_ledger (tenant_id, user_id, created_at);
-- A reservation settles into at most one entry.
CREATE UNIQUE INDEX usage_ledger_by_reservation ON usage_ledger (tenant_id, reservation_id)
    WHERE reservation_id IS NOT NULL;
CREATE FUNCTION usage_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'usage_ledger is append-only';
END;
$$;
CREATE TRIGGER usage_ledger_append_only BEFORE UPDATE OR DELETE ON usage_ledger
    FOR EACH ROW EXECUTE FUNCTION usage_ledger_append_only();

-- Prepaid money, and the part of it active reservations hold.
CREATE TABLE balances (
    tenant_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    balance_micros  BIGINT NOT NULL DEFAULT 0,
    held_micros     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, user_id)
);

-- Top-ups and removals, one per idempotency key; `balance_after` answers a replay.
CREATE TABLE balance_adjustments (
    tenant_id        TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    delta            BIGINT NOT NULL,
    balance_after    BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);

CREATE TABLE subscriptions (
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    plan          TEXT NOT NULL,
    status        TEXT NOT NULL,
    period_start  TIMESTAMPTZ NOT NULL,
    period_end    TIMESTAMPTZ NOT NULL,
    source        TEXT NOT NULL,
    addons        JSONB NOT NULL DEFAULT '[]'::jsonb,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
