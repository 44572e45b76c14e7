-- Jobs: durable state machines, their append-only event log, their durable timers and the
-- daily statistics kept when old events are deleted. Times are RFC 3339 text in UTC.
CREATE TABLE jobs (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    job_type         TEXT NOT NULL,
    state            TEXT NOT NULL,
    version          INTEGER NOT NULL,
    input            TEXT NOT NULL,
    idempotency_key  TEXT,
    concurrency_key  TEXT,
    reservation_id   TEXT,
    reason           TEXT,
    resume_state     TEXT,
    last_seq         INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT,
    heartbeat_at     TEXT,
    PRIMARY KEY (tenant_id, id)
);
-- A double create with one key finds the first job.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, user_id, job_type, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Service callers find a job by id alone.
CREATE UNIQUE INDEX jobs_by_id ON jobs (id);
-- Listing a user's jobs, newest first.
CREATE INDEX jobs_by_user ON jobs (tenant_id, user_id, id);
-- Counting active jobs for a concurrency cap.
CREATE INDEX jobs_active ON jobs (tenant_id, job_type, concurrency_key) WHERE finished_at IS NULL;
-- Retention's scan of finished jobs.
CREATE INDEX jobs_finished ON jobs (job_type, finished_at) WHERE finished_at IS NOT NULL;

-- Append-only: rows are only inserted, and deleted by retention.
CREATE TABLE job_events (
    tenant_id     TEXT NOT NULL,
    job_id        TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    job_type      TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    data          TEXT NOT NULL,
    user_visible  INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, job_id, seq)
);

-- At most one pending timer of each kind per job; firing deletes it in the same
-- transaction as the transition it causes.
CREATE TABLE job_timers (
    tenant_id      TEXT NOT NULL,
    job_id         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    state          TEXT NOT NULL,
    fire_at        TEXT NOT NULL,
    claimed_by     TEXT,
    claimed_until  TEXT,
    PRIMARY KEY (tenant_id, job_id, kind)
);
CREATE INDEX job_timers_due ON job_timers (fire_at);

CREATE TABLE job_event_stats (
    day       TEXT NOT NULL,
    job_type  TEXT NOT NULL,
    events    INTEGER NOT NULL,
    PRIMARY KEY (day, job_type)
);
