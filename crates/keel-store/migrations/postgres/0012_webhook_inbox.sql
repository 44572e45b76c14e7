-- Inbound webhooks: every verified delivery from a store or payment provider, kept for
-- good and deduplicated by the provider's own event id, then applied by a worker.
-- A delivery arrives before Keel knows its tenant: `tenant_id` and `user_id` are filled in
-- when the event is resolved to a user.
CREATE TABLE webhook_inbox (
    id                 TEXT PRIMARY KEY NOT NULL,
    provider           TEXT NOT NULL
                       CHECK (provider IN ('stripe', 'appstore', 'googleplay', 'lemonsqueezy')),
    provider_event_id  TEXT NOT NULL,
    event_type         TEXT NOT NULL,
    payload            JSONB NOT NULL,
    status             TEXT NOT NULL
                       CHECK (status IN ('pending', 'applied', 'failed', 'dead')),
    attempts           BIGINT NOT NULL DEFAULT 0,
    next_attempt_at    TIMESTAMPTZ NOT NULL,
    last_error         TEXT,
    outcome            TEXT,
    tenant_id          TEXT,
    user_id            TEXT,
    received_at        TIMESTAMPTZ NOT NULL,
    applied_at         TIMESTAMPTZ,
    CONSTRAINT webhook_inbox_dedupe UNIQUE (provider, provider_event_id)
);
-- The worker's scan: events due for an attempt.
CREATE INDEX webhook_inbox_due ON webhook_inbox (status, next_attempt_at);

-- The provider's own time of the event a subscription was last set from (out-of-order
-- deliveries older than it change nothing), and the provider's subscription reference.
ALTER TABLE subscriptions ADD COLUMN provider_event_at TIMESTAMPTZ;
ALTER TABLE subscriptions ADD COLUMN provider_ref TEXT;

-- Which user a provider's subscription reference (Stripe subscription id, App Store
-- original transaction id, Play purchase token, Lemon Squeezy subscription id) belongs
-- to, for events that do not name the user themselves.
CREATE TABLE webhook_links (
    provider      TEXT NOT NULL,
    provider_ref  TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, provider_ref)
);
