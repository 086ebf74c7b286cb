-- Diagnostic jobs: `tollgate` schedules one to prove the worker runs what was queued,
-- including across restarts. A row records the request and, once, its run.
CREATE TABLE self_checks (
    id TEXT PRIMARY KEY NOT NULL,
    requested_at TEXT NOT NULL,
    due_at TEXT NOT NULL,
    ran_at TEXT,
    runs INTEGER NOT NULL DEFAULT 0
);
