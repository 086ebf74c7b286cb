-- The audit log: one hash chain per tenant, and `system` for events without one. Rows are only
-- ever inserted. The head row is locked by each append, so a chain never forks or gaps.
CREATE TABLE audit_chains (
    chain TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL
);

CREATE TABLE audit_events (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    at TIMESTAMPTZ NOT NULL,
    tenant TEXT,
    request_id TEXT,
    ticket_key TEXT,
    actor_kind TEXT NOT NULL,
    actor TEXT,
    action TEXT NOT NULL,
    target TEXT,
    workflow_version TEXT,
    canonical TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);

CREATE INDEX audit_events_request ON audit_events (request_id);
