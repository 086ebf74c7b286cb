-- The identity lifecycle: one run per person and event (a joiner, a mover, a leaver) that an
-- org chart snapshot showed. A run owns a lifecycle ticket and the birthright grants made in it.
CREATE TABLE lifecycle_runs (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    event TEXT NOT NULL,
    -- The snapshot that showed the event: one run per person, event and snapshot.
    version INTEGER NOT NULL,
    -- queued | held | done
    state TEXT NOT NULL,
    tenant TEXT,
    ticket_key TEXT,
    issue_id TEXT,
    -- Set before the ticket is asked for: a run found with it and no ticket looks for the ticket
    -- an earlier attempt may have opened before opening one.
    opening_at TEXT,
    outcome TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (person, event, version)
);
CREATE INDEX lifecycle_runs_held ON lifecycle_runs (version) WHERE state = 'held';

-- A birthright grant is a request of its run, on the run's ticket: one ticket carries several,
-- so the one-request-per-ticket rule holds for requests people file, and a run grants each
-- resource and level once.
ALTER TABLE requests ADD COLUMN run_id TEXT REFERENCES lifecycle_runs (id);
DROP INDEX requests_ticket;
CREATE UNIQUE INDEX requests_ticket ON requests (tenant, ticket_key)
    WHERE parent_id IS NULL AND run_id IS NULL;
CREATE UNIQUE INDEX requests_run_grant ON requests (run_id, resource, COALESCE(level, ''))
    WHERE run_id IS NOT NULL;
