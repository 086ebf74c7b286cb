-- People are keyed by the IdP's stable person id; emails change. `subject_person` is the id of
-- whom the access is for (the subject, else the requester). Rows written before this migration
-- get it from the current org chart snapshot when Tollgate starts (`data_migrations`); those
-- whose person is no longer in it keep only their email (`tollgate org unmatched`).
ALTER TABLE requests ADD COLUMN subject_person TEXT;
CREATE INDEX requests_person ON requests (subject_person, state);

-- One row per person and target that Tollgate has granted: whether the access was there before
-- any Tollgate grant (`predates`; NULL while grants applying it have not all reported). The
-- scope is the tenant for targets that live in one site (project and space roles, JSM
-- organizations), `org` for those the deployment's sites share (IdP groups, the organization's
-- groups and product access). `person`: the IdP person id, or `email:<address>` for someone
-- not in the org chart.
CREATE TABLE holdings (
    scope TEXT NOT NULL,
    target_key TEXT NOT NULL,
    person TEXT NOT NULL,
    predates BOOLEAN,
    since TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, target_key, person)
);

-- Which grants hold each holding: `applying` while its step runs, `holds` once applied,
-- `removing` while the last holder takes the access away (a new grant waits for that).
CREATE TABLE holders (
    scope TEXT NOT NULL,
    target_key TEXT NOT NULL,
    person TEXT NOT NULL,
    request_id TEXT NOT NULL,
    step BIGINT NOT NULL,
    state TEXT NOT NULL,
    since TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, target_key, person, request_id)
);
CREATE INDEX holders_request ON holders (request_id);

-- People matched to Atlassian accounts, per organization (the Admin API's org id, or
-- `site:<host>` for a deployment without one) and by person id.
CREATE TABLE account_matches (
    org TEXT NOT NULL,
    person TEXT NOT NULL,
    email TEXT NOT NULL,
    account_id TEXT NOT NULL,
    found_by TEXT NOT NULL,
    resolved_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org, person)
);
CREATE INDEX account_matches_account ON account_matches (org, account_id);

-- The organization's accounts as the Admin API lists them, read with each full org sync and at
-- most every TOLLGATE_ATLASSIAN_ACCOUNT_INDEX_INTERVAL: a lookup by email is a local read.
CREATE TABLE account_index (
    org TEXT NOT NULL,
    account_id TEXT NOT NULL,
    email TEXT,
    name TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org, account_id)
);
CREATE INDEX account_index_email ON account_index (org, email);
CREATE TABLE account_index_runs (
    org TEXT PRIMARY KEY,
    refreshed_at TIMESTAMPTZ NOT NULL,
    accounts BIGINT NOT NULL
);

-- Data migrations that need more than SQL (the org chart snapshot), done once at start.
CREATE TABLE data_migrations (
    name TEXT PRIMARY KEY,
    done_at TIMESTAMPTZ NOT NULL,
    summary TEXT NOT NULL
);
