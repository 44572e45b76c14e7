-- Transport-level idempotency records (the Idempotency-Key header). One row per caller,
-- method, path and key; `id` is a SHA-256 of those, so the key itself is never stored.
-- In progress while `lock_token` is set; completed once `status` and `response` (sealed
-- with a key derived from the caller's key) are. Times are RFC 3339 text in UTC.
CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    principal     TEXT NOT NULL,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    fingerprint   BLOB NOT NULL,
    lock_token    TEXT,
    locked_until  TEXT,
    status        INTEGER,
    response      BLOB,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK ((lock_token IS NULL) = (response IS NOT NULL)),
    CHECK ((status IS NULL) = (response IS NULL))
);
-- The sweeper's scan.
CREATE INDEX idempotency_keys_to_sweep ON idempotency_keys (expires_at);
