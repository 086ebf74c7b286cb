-- A site is one tenant whichever door it uses. A plain webhook source (`jira-webhook:<name>`)
-- of a site that also has a Connect or Forge tenant is linked to it: its requests stay on its
-- own audit chain, and lookups, reports and evidence treat the two as one site.
CREATE TABLE tenant_links (
    alias TEXT PRIMARY KEY NOT NULL,
    site_tenant TEXT NOT NULL,
    linked_at TIMESTAMPTZ NOT NULL,
    linked_by TEXT NOT NULL
);
CREATE INDEX tenant_links_site ON tenant_links (site_tenant);
