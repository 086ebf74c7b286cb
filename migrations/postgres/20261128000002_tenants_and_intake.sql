-- Atlassian sites that installed the app (one row per product install: Jira and Confluence
-- installs of one site are two tenants, linked by host). Uninstalling keeps the row.
CREATE TABLE tenants (
    client_key TEXT PRIMARY KEY,
    product TEXT NOT NULL,
    app_key TEXT NOT NULL,
    base_url TEXT NOT NULL,
    host TEXT NOT NULL,
    display_url TEXT,
    shared_secret TEXT NOT NULL,
    state TEXT NOT NULL,
    description TEXT,
    server_version TEXT,
    plugins_version TEXT,
    oauth_client_id TEXT,
    installed_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    uninstalled_at TIMESTAMPTZ
);
CREATE INDEX tenants_by_host ON tenants (host, product);

-- Every install token seen, with the body it came with: the token's qsh does not cover the
-- body, so a replay with another body (say, another sharedSecret) must be refused.
CREATE TABLE install_tokens (
    token_hash TEXT PRIMARY KEY,
    client_key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);

-- Events as they arrived (webhooks, later Forge and plain Jira webhooks), deduplicated per
-- tenant on the sender's delivery id, then processed by a job.
CREATE TABLE inbound_events (
    id UUID PRIMARY KEY,
    tenant TEXT NOT NULL,
    ingress TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    processed_at TIMESTAMPTZ,
    UNIQUE (tenant, delivery_id)
);
