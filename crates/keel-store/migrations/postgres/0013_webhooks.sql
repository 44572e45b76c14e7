-- Outbound webhooks (Standard Webhooks) from a transactional outbox, and the payment
-- provider customer of each user (for checkout and the billing portal).

-- An endpoint a product registered. `tenant_id` is the tenant whose events it receives;
-- the system tenant (nil id) means every tenant's. The secret is the `whsec_…` signing
-- secret; after a rotation `previous_secret` keeps signing until `previous_until`.
CREATE TABLE webhook_endpoints (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant_id        TEXT NOT NULL,
    url              TEXT NOT NULL,
    description      TEXT NOT NULL,
    event_types      JSONB NOT NULL,
    secret           TEXT NOT NULL,
    previous_secret  TEXT,
    previous_until   TIMESTAMPTZ,
    enabled          BOOLEAN NOT NULL,
    disabled_reason  TEXT,
    failing_since    TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id);

-- The outbox: one row per event, written in the transaction of the change that caused it.
CREATE TABLE webhook_messages (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    payload     JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_messages_tenant ON webhook_messages (tenant_id, created_at);

-- One message to one endpoint. `attempts` counts every attempt made (numbering the
-- attempt rows); `failures` counts failures since the schedule last started (a replay
-- restarts it). A worker claims a due row by setting `locked_until` and `claim_token`.
CREATE TABLE webhook_deliveries (
    message_id       TEXT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    tenant_id        TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    failures         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    locked_until     TIMESTAMPTZ,
    claim_token      TEXT,
    last_attempt_at  TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (message_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_claim ON webhook_deliveries (claim_token);

-- Every attempt, kept after the endpoint is gone. One row per (delivery, attempt number):
-- two workers can never both record the same scheduled attempt.
CREATE TABLE webhook_attempts (
    id             TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    endpoint_id    TEXT NOT NULL,
    attempt        BIGINT NOT NULL,
    attempted_at   TIMESTAMPTZ NOT NULL,
    status_code    BIGINT,
    latency_ms     BIGINT NOT NULL,
    error          TEXT,
    response_body  TEXT,
    succeeded      BOOLEAN NOT NULL,
    CONSTRAINT webhook_attempts_once UNIQUE (message_id, endpoint_id, attempt)
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, attempted_at);

-- `quota.threshold_reached` fires once per counter, window and threshold: the first
-- change that reaches it inserts the row; every later one finds it.
CREATE TABLE webhook_thresholds (
    tenant_id   TEXT NOT NULL,
    owner       TEXT NOT NULL,
    meter       TEXT NOT NULL,
    "window"    TEXT NOT NULL,
    percent     BIGINT NOT NULL,
    message_id  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, owner, meter, "window", percent)
);

-- A user's customer id at a payment provider (e.g. Stripe `cus_…`).
CREATE TABLE billing_customers (
    tenant_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    provider     TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, user_id, provider)
);
