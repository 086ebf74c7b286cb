-- Org chart snapshots: each is one consistent org as a sync delivered it. Routing reads the
-- newest; writing a new one is the atomic swap.
CREATE TABLE org_snapshots (
    version BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    taken_at TIMESTAMPTZ NOT NULL,
    people_count BIGINT NOT NULL,
    group_count BIGINT NOT NULL,
    body TEXT NOT NULL
);

-- One sync run; a full run stages what it read so a crash resumes instead of starting over.
CREATE TABLE org_sync_runs (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    resume TEXT,
    start_cursor TEXT,
    pages BIGINT NOT NULL DEFAULT 0,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    error TEXT
);

CREATE TABLE org_sync_items (
    run_id TEXT NOT NULL REFERENCES org_sync_runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    item_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, kind, item_id)
);

-- Where incremental sync of a source goes on from.
CREATE TABLE org_sync_cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- People matched to Atlassian accounts by email, stored once known.
CREATE TABLE atlassian_accounts (
    email TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    found_by TEXT NOT NULL,
    resolved_at TIMESTAMPTZ NOT NULL
);
