-- A ticket notice whose comment could not be posted for as long as retries go on (or for a
-- permanent reason): kept with its reason until an operator retries it
-- (`tollgate events list --dead`, `tollgate events retry <key>|--all`).
CREATE TABLE dead_notices (
    key TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    ticket_key TEXT NOT NULL,
    notice TEXT NOT NULL,
    reason TEXT NOT NULL,
    dead_at TIMESTAMPTZ NOT NULL,
    -- How many times an operator brought it back: names the next round's job.
    rounds BIGINT NOT NULL DEFAULT 0
);
