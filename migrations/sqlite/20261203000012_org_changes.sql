-- What an org chart snapshot led to is applied once, by whichever process runs the job: the
-- leavers it makes and the open stages it re-routes. This row says which snapshot that was.
CREATE TABLE org_applied (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    applied_at TEXT NOT NULL
);

-- A snapshot that would make too many people leavers at once: their removals wait here for a
-- person to approve them (or are dropped when the people come back).
CREATE TABLE org_holds (
    version INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    -- JSON: [{"id", "email", "name"}] of the people held
    people TEXT NOT NULL,
    active_before INTEGER NOT NULL,
    -- held | approved | done | dropped
    state TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT
);

-- Consecutive failed syncs per source: the periodic sync raises an alert at the Nth.
CREATE TABLE org_sync_failures (
    source TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    since TEXT NOT NULL
);
