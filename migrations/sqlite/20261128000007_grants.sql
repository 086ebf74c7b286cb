-- no-transaction
-- Grants. A request row carries its grant (when it became active, when it expires, why it
-- ended); `grant_steps` holds one row per target with its own grant and revoke status.
-- An extension is a child request on the same ticket, so the ticket is unique only among
-- root requests: SQLite cannot drop a table constraint, so the table is rebuilt (the
-- documented procedure, with foreign keys off while `decisions` points at the old table).
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE requests_new (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    ticket_key TEXT NOT NULL,
    issue_id TEXT NOT NULL,
    state TEXT NOT NULL,
    stage INTEGER NOT NULL DEFAULT 0,
    requester_account TEXT NOT NULL,
    requester_email TEXT,
    subject_email TEXT,
    resource TEXT,
    level TEXT,
    duration_seconds INTEGER,
    justification TEXT NOT NULL DEFAULT '',
    workflow TEXT,
    workflow_version TEXT,
    routing TEXT,
    reason TEXT,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    stage_started_at TEXT,
    parent_id TEXT REFERENCES requests (id),
    subject_account TEXT,
    granted_at TEXT,
    expires_at TEXT,
    ended_at TEXT,
    end_cause TEXT,
    partial INTEGER NOT NULL DEFAULT 0
);
INSERT INTO requests_new (id, tenant, ticket_key, issue_id, state, stage, requester_account,
    requester_email, subject_email, resource, level, duration_seconds, justification, workflow,
    workflow_version, routing, reason, version, created_at, updated_at, stage_started_at)
SELECT id, tenant, ticket_key, issue_id, state, stage, requester_account, requester_email,
    subject_email, resource, level, duration_seconds, justification, workflow, workflow_version,
    routing, reason, version, created_at, updated_at, stage_started_at FROM requests;
DROP TABLE requests;
ALTER TABLE requests_new RENAME TO requests;
CREATE UNIQUE INDEX requests_ticket ON requests (tenant, ticket_key) WHERE parent_id IS NULL;
CREATE INDEX requests_children ON requests (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX requests_state_expiry ON requests (state, expires_at);

CREATE TABLE grant_steps (
    request_id TEXT NOT NULL REFERENCES requests (id),
    step INTEGER NOT NULL,
    -- The step as planned (JSON): its target, the system and credential it goes through.
    plan TEXT NOT NULL,
    -- What the step changes, as `kind:name` (`idp_group:NetSuite Users`), to find overlaps.
    target_key TEXT NOT NULL,
    -- Whom it is for (email), with target_key: does another grant still hold this?
    subject TEXT NOT NULL DEFAULT '',
    grant_status TEXT NOT NULL,
    revoke_status TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- A step being applied is leased, so a second delivery of its job does not apply it too.
    leased_until TEXT,
    -- "applied" or "already_in_place", per phase.
    granted_change TEXT,
    revoked_change TEXT,
    error TEXT,
    drift_at TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (request_id, step)
);
CREATE INDEX grant_steps_subject ON grant_steps (subject, target_key);
COMMIT;
PRAGMA foreign_keys = ON;
