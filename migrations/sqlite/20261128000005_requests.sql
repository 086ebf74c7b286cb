-- Access requests: one per ticket per tenant. `version` is bumped by every transition, which
-- compares and sets it, so two replicas never apply the same transition twice.
CREATE TABLE requests (
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
    UNIQUE (tenant, ticket_key)
);

-- One decision per approver per stage.
CREATE TABLE decisions (
    request_id TEXT NOT NULL REFERENCES requests (id),
    stage INTEGER NOT NULL,
    approver_account TEXT NOT NULL,
    approver_email TEXT NOT NULL,
    verdict TEXT NOT NULL,
    via TEXT NOT NULL,
    answer TEXT NOT NULL,
    reason TEXT,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (request_id, stage, approver_account)
);
