-- The SCIM 2.0 service provider (TOLLGATE_IDP_KIND=scim_push): what the identity provider
-- pushed, kept as the resources it sent. Every write takes the next number of the one counter
-- row (locked until commit, so numbers commit in order): a resource's version is the number of
-- its last write, and the org sync reads what changed after the number it last saw.
CREATE TABLE scim_counter (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL
);
INSERT INTO scim_counter (id, seq) VALUES (1, 0);

CREATE TABLE scim_users (
    id TEXT PRIMARY KEY,
    -- Lower-cased: userName is unique without regard to case.
    user_name TEXT NOT NULL UNIQUE,
    external_id TEXT,
    -- The person's id (the configured attribute's value when written); NULL: no person yet.
    person_id TEXT UNIQUE,
    resource TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX scim_users_external_id ON scim_users (external_id);
CREATE INDEX scim_users_version ON scim_users (version);

CREATE TABLE scim_groups (
    id TEXT PRIMARY KEY,
    -- Lower-cased, for the IdPs' lookups by name.
    display_name TEXT NOT NULL,
    external_id TEXT,
    resource TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX scim_groups_display_name ON scim_groups (display_name);
CREATE INDEX scim_groups_version ON scim_groups (version);

-- A person or group the chart must drop: deleted, or a person whose id changed (the old id).
CREATE TABLE scim_gone (
    seq BIGINT PRIMARY KEY,
    -- person | group
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);

-- The bearer tokens an identity provider pushes with, sealed with the secret key.
CREATE TABLE scim_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    -- The last change pushed with it (a rotation retires the old token once this stops moving).
    last_pushed_at TIMESTAMPTZ
);

-- People the org chart's application believed gone, when: the leaver brake counts them over a
-- sliding window, so leavers pushed one at a time trip it as one sync's would.
CREATE TABLE org_departures (
    person_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    left_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (person_id, version)
);
CREATE INDEX org_departures_left_at ON org_departures (left_at);

-- Events an identity provider's hooks delivered (Okta event hooks, Graph change notifications),
-- stored before they are acknowledged, once per event id; done when their re-read is applied.
CREATE TABLE idp_events (
    id TEXT PRIMARY KEY,
    -- okta | entra
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    -- JSON: the people and groups to read again.
    targets TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    done_at TIMESTAMPTZ
);

-- The change-notification subscriptions Tollgate holds with the identity provider (Graph's
-- users and groups), renewed before they end.
CREATE TABLE hook_subscriptions (
    resource TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
