-- How far each tenant's failed-webhook list (`/rest/api/3/webhook/failed`) has been read.
CREATE TABLE webhook_recovery (
    tenant TEXT PRIMARY KEY,
    after_ms BIGINT NOT NULL,
    checked_at TEXT NOT NULL
);
