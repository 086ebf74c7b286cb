-- Diagnostic jobs: `tollgate` schedules one to prove the worker runs what was queued,
-- including across restarts. A row records the request and, once, its run.
CREATE TABLE self_checks (
    id UUID PRIMARY KEY,
    requested_at TIMESTAMPTZ NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,
    ran_at TIMESTAMPTZ,
    runs INTEGER NOT NULL DEFAULT 0
);
