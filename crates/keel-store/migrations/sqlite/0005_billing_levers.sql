-- Operator levers over billing: per-user quota overrides and billing kill switches.

-- One user's override of one meter's limit (`target` = 'limit') or credit allowance
-- ('credits'): a custom limit replacing the plan's, plus extra units, until it expires.
CREATE TABLE quota_overrides (
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    meter         TEXT NOT NULL,
    target        TEXT NOT NULL CHECK (target IN ('limit', 'credits')),
    extra         INTEGER NOT NULL,
    custom_limit  INTEGER,
    expires_at    TEXT,
    reason        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, meter, target)
);

-- Engaged kill switches: `target` is 'global' or a user id.
CREATE TABLE kill_switches (
    target      TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT,
    user_id     TEXT,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
