-- Access the inactive-account policy found unused too long: one case per account, product and
-- day last used (using it again and going quiet again is a new case). Its run raises the
-- person's lifecycle ticket; the case says what became of it.
CREATE TABLE inactive_cases (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    account TEXT NOT NULL,
    product TEXT NOT NULL,
    -- The day the product was last used (YYYY-MM-DD).
    since TEXT NOT NULL,
    -- review | end
    action TEXT NOT NULL,
    -- found | noticed | reviewing | kept | ending | ended | cleared
    state TEXT NOT NULL,
    ends_at TIMESTAMPTZ,
    run_id TEXT REFERENCES lifecycle_runs (id),
    request_id TEXT,
    outcome TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (account, product, since)
);
CREATE INDEX inactive_cases_run ON inactive_cases (run_id);
CREATE INDEX inactive_cases_request ON inactive_cases (request_id);
CREATE INDEX inactive_cases_account ON inactive_cases (account, state);
-- `tollgate lifecycle runs --person EMAIL`.
CREATE INDEX lifecycle_runs_email ON lifecycle_runs (email, created_at);
-- A comment on a lifecycle ticket decides the run's requests waiting in it.
CREATE INDEX requests_run_ticket ON requests (tenant, ticket_key) WHERE run_id IS NOT NULL;
