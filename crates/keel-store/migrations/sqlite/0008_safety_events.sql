-- Safety precheck hits of the gateway: which rule matched whose request. Never the text:
-- only a short hash of it, so repeated inputs can be correlated without storing them.
CREATE TABLE safety_events (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    rule        TEXT NOT NULL,
    feature     TEXT NOT NULL,
    action      TEXT NOT NULL,
    status      TEXT,
    request_id  TEXT NOT NULL,
    text_hash   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX safety_events_by_tenant ON safety_events (tenant_id, id);
CREATE INDEX safety_events_by_user ON safety_events (tenant_id, user_id, id);
