-- Front doors beyond Connect (Forge remote, plain Jira webhooks) on the same tenants.
-- `kind` says how a tenant first came in: 'connect' (shared_secret is its Connect secret),
-- 'forge' (a Forge installation with no Connect install behind it; shared_secret is empty) or
-- 'jira_webhook' (a registered webhook source; shared_secret is its HMAC secret).
ALTER TABLE tenants ADD COLUMN kind TEXT NOT NULL DEFAULT 'connect';
-- The site's cloud id, when known (Connect installs may send it; Forge always does): what ties
-- a Forge installation to the Connect tenant of the same site.
ALTER TABLE tenants ADD COLUMN cloud_id TEXT;
CREATE INDEX tenants_by_cloud_id ON tenants (cloud_id);

-- Forge installations and the tenant each one is. The system token of the newest invocation
-- is kept sealed with TOLLGATE_SECRET_KEY for outbound calls until it expires.
CREATE TABLE forge_installations (
    installation_id TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    app_id TEXT NOT NULL,
    cloud_id TEXT NOT NULL,
    api_base_url TEXT NOT NULL,
    system_token TEXT,
    token_expires_at TIMESTAMPTZ,
    installed_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    uninstalled_at TIMESTAMPTZ
);
CREATE INDEX forge_installations_by_tenant ON forge_installations (tenant);

-- The credential outbound calls of a plain-webhook source use (site-admin email and API token,
-- the token sealed).
CREATE TABLE webhook_sources (
    tenant TEXT PRIMARY KEY NOT NULL,
    api_email TEXT,
    api_token TEXT,
    created_at TIMESTAMPTZ NOT NULL
);
