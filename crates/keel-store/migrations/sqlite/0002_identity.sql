-- Identity: tenants, users, their sessions and refresh tokens, API keys, and the
-- process-wide material (signing keys, wallet challenges, sign-in throttles, admins).
-- Ids are their prefixed text (`usr_…`), times RFC 3339 text in UTC (which sorts in
-- time order), hashes BLOBs, scopes a JSON array. Emails arrive normalised.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    email           TEXT UNIQUE,
    password_hash   TEXT,
    wallet_address  TEXT UNIQUE,
    role            TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX users_by_tenant ON users (tenant_id, id);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    device_name     TEXT,
    user_agent      TEXT,
    ip              TEXT,
    created_at      TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    revoked_at      TEXT,
    revoked_reason  TEXT
);
CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id, created_at);

-- The successor is inserted after its parent is marked spent, in the same transaction.
CREATE TABLE refresh_tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    session_id    TEXT NOT NULL REFERENCES sessions (id),
    token_hash    BLOB NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    used_at       TEXT,
    successor_id  TEXT REFERENCES refresh_tokens (id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    key_hash      BLOB NOT NULL UNIQUE,
    scopes        TEXT NOT NULL DEFAULT '[]',
    expires_at    TEXT,
    last_used_at  TEXT,
    revoked_at    TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX api_keys_by_user ON api_keys (tenant_id, user_id, created_at);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,
    alg          TEXT NOT NULL,
    private_der  BLOB NOT NULL,
    public_raw   BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    retired_at   TEXT
);

CREATE TABLE wallet_challenges (
    id          TEXT PRIMARY KEY NOT NULL,
    address     TEXT NOT NULL,
    message     TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);

-- Keyed `acct:<email>` or `ip:<addr>`.
CREATE TABLE auth_failures (
    key           TEXT PRIMARY KEY NOT NULL,
    failures      INTEGER NOT NULL,
    window_start  TEXT NOT NULL,
    last_failure  TEXT NOT NULL
);

CREATE TABLE admin_accounts (
    id                    TEXT PRIMARY KEY NOT NULL,
    email                 TEXT NOT NULL UNIQUE,
    password_hash         TEXT NOT NULL,
    role                  TEXT NOT NULL,
    status                TEXT NOT NULL,
    must_change_password  BOOLEAN NOT NULL,
    created_at            TEXT NOT NULL
);

CREATE TABLE admin_sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    admin_id    TEXT NOT NULL REFERENCES admin_accounts (id),
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX admin_sessions_by_admin ON admin_sessions (admin_id);
