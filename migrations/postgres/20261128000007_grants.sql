-- Grants. A request row carries its grant (when it became active, when it expires, why it
-- ended); `grant_steps` holds one row per target with its own grant and revoke status.
-- An extension is a child request on the same ticket: the ticket is unique among roots only.
ALTER TABLE requests DROP CONSTRAINT requests_tenant_ticket_key_key;
ALTER TABLE requests ADD COLUMN parent_id TEXT REFERENCES requests (id);
ALTER TABLE requests ADD COLUMN subject_account TEXT;
ALTER TABLE requests ADD COLUMN granted_at TIMESTAMPTZ;
ALTER TABLE requests ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE requests ADD COLUMN ended_at TIMESTAMPTZ;
ALTER TABLE requests ADD COLUMN end_cause TEXT;
ALTER TABLE requests ADD COLUMN partial BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX requests_ticket ON requests (tenant, ticket_key) WHERE parent_id IS NULL;
CREATE INDEX requests_children ON requests (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX requests_state_expiry ON requests (state, expires_at);

CREATE TABLE grant_steps (
    request_id TEXT NOT NULL REFERENCES requests (id),
    step BIGINT NOT NULL,
    plan TEXT NOT NULL,
    -- What the step changes, as `kind:name` (`idp_group:NetSuite Users`), to find overlaps.
    target_key TEXT NOT NULL,
    -- Whom it is for (email), with target_key: does another grant still hold this?
    subject TEXT NOT NULL DEFAULT '',
    grant_status TEXT NOT NULL,
    revoke_status TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    leased_until TIMESTAMPTZ,
    granted_change TEXT,
    revoked_change TEXT,
    error TEXT,
    drift_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (request_id, step)
);
CREATE INDEX grant_steps_subject ON grant_steps (subject, target_key);
