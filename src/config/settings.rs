//! The settings table: every value Tollgate reads, its TOML key, its environment variable,
//! whether it is a secret, and its default. `docs/configuration.md` lists them all.

/// One configurable value.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Dotted TOML key, `section.key`.
    pub key: &'static str,
    /// Environment variable that overrides the TOML value.
    pub env: &'static str,
    /// Secrets accept a `…_FILE` variant and are never printed.
    pub secret: bool,
    /// Default as written in the docs; `None` when the setting is optional.
    pub default: Option<&'static str>,
    pub help: &'static str,
}

const fn setting(
    key: &'static str,
    env: &'static str,
    default: Option<&'static str>,
    help: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        secret: false,
        default,
        help,
    }
}

const fn secret(key: &'static str, env: &'static str, help: &'static str) -> Setting {
    Setting {
        key,
        env,
        secret: true,
        default: None,
        help,
    }
}

/// Every setting Tollgate reads.
pub const SETTINGS: &[Setting] = &[
    setting(
        "server.bind",
        "TOLLGATE_BIND",
        Some("127.0.0.1:8080"),
        "Address the HTTP server listens on (port 0 picks a free port).",
    ),
    setting(
        "server.base_url",
        "TOLLGATE_BASE_URL",
        Some("http://localhost:8080"),
        "Public URL at which Atlassian reaches this service.",
    ),
    setting(
        "server.request_timeout",
        "TOLLGATE_SERVER_REQUEST_TIMEOUT",
        Some("20s"),
        "Longest time one HTTP request may take, from the end of its headers, before it is answered with 408.",
    ),
    setting(
        "server.header_timeout",
        "TOLLGATE_SERVER_HEADER_TIMEOUT",
        Some("10s"),
        "Longest time a client may take to send a request's headers; a keep-alive connection idle this long is closed.",
    ),
    setting(
        "server.max_connections",
        "TOLLGATE_SERVER_MAX_CONNECTIONS",
        Some("512"),
        "Connections open at once; more wait in the listen backlog until one closes.",
    ),
    setting(
        "server.shutdown_timeout",
        "TOLLGATE_SERVER_SHUTDOWN_TIMEOUT",
        Some("30s"),
        "On SIGTERM/SIGINT, how long in-flight requests and jobs may take to finish.",
    ),
    setting(
        "database.url",
        "DATABASE_URL",
        Some("sqlite://tollgate.db"),
        "`sqlite://PATH` (created if missing) or `postgres://…`.",
    ),
    setting(
        "database.max_connections",
        "TOLLGATE_DATABASE_MAX_CONNECTIONS",
        Some("10"),
        "Size of the connection pool.",
    ),
    setting(
        "database.connect_timeout",
        "TOLLGATE_DATABASE_CONNECT_TIMEOUT",
        Some("10s"),
        "How long to wait for the database at start before giving up.",
    ),
    setting(
        "workflows.dir",
        "TOLLGATE_WORKFLOWS_DIR",
        Some("./workflows"),
        "Directory holding the resource catalog and workflow files.",
    ),
    secret(
        "secrets.key",
        "TOLLGATE_SECRET_KEY",
        "Key that encrypts secrets at rest: 32 bytes, base64; several, comma-separated, newest first, while rotating (`tollgate secrets rotate`). Generated beside a SQLite database if unset; required with PostgreSQL.",
    ),
    setting(
        "log.filter",
        "TOLLGATE_LOG",
        Some("info"),
        "Log filter in `tracing` syntax, e.g. `info,tollgate=debug`.",
    ),
    setting(
        "log.format",
        "TOLLGATE_LOG_FORMAT",
        Some("pretty"),
        "`pretty` for people, `json` for log collectors.",
    ),
    setting(
        "jobs.poll_interval",
        "TOLLGATE_JOBS_POLL_INTERVAL",
        Some("1s"),
        "How often an idle worker looks for due jobs.",
    ),
    setting(
        "connect.key",
        "TOLLGATE_CONNECT_KEY",
        Some("io.tollgate.access"),
        "Atlassian Connect app key (the Confluence descriptor appends `.confluence`).",
    ),
    setting(
        "connect.keys_url",
        "TOLLGATE_CONNECT_KEYS_URL",
        Some("https://connect-install-keys.atlassian.com"),
        "Where the public keys of signed installs are fetched (`/{kid}` is appended).",
    ),
    setting(
        "connect.allowed_sites",
        "TOLLGATE_CONNECT_ALLOWED_SITES",
        Some("https://*.atlassian.net,https://*.jira.com"),
        "Sites that may install the app: comma-separated `scheme://host[:port]`, the host may start with `*.` and the port may be `*`.",
    ),
    setting(
        "connect.webhook_jql",
        "TOLLGATE_CONNECT_WEBHOOK_JQL",
        None,
        "JQL filter on the descriptor's webhooks, e.g. `project = IT`; unset sends all.",
    ),
    setting(
        "connect.jwt_leeway",
        "TOLLGATE_CONNECT_JWT_LEEWAY",
        Some("30s"),
        "Clock skew allowed when checking a token's `exp`.",
    ),
    setting(
        "jobs.concurrency",
        "TOLLGATE_JOBS_CONCURRENCY",
        Some("4"),
        "Jobs one worker process runs at the same time.",
    ),
    setting(
        "jobs.heartbeat",
        "TOLLGATE_JOBS_HEARTBEAT",
        Some("5s"),
        "How often a worker says it is alive. A worker silent for two of these is dead: its jobs, running or only claimed, go back to the queue for any other worker.",
    ),
    setting(
        "events.retry_for",
        "TOLLGATE_EVENTS_RETRY_FOR",
        Some("24h"),
        "How long an acknowledged event whose processing keeps failing (Jira or the IdP down) is retried before it is recorded as dead, with an alert.",
    ),
    setting(
        "events.ticket_block",
        "TOLLGATE_EVENTS_TICKET_BLOCK",
        Some("10m"),
        "How long an event of a ticket that keeps failing holds back that ticket's later events (they are processed in Jira's order); after that they proceed, and the failing one is judged on re-read facts when it succeeds.",
    ),
    setting(
        "events.retry_base",
        "TOLLGATE_EVENTS_RETRY_BASE",
        Some("10s"),
        "The first wait before an event is retried; it doubles with each failure, up to `events.retry_max`, never sooner than the vendor's Retry-After.",
    ),
    setting(
        "events.retry_max",
        "TOLLGATE_EVENTS_RETRY_MAX",
        Some("10m"),
        "The longest wait between two retries of an event.",
    ),
    setting(
        "atlassian.api_url",
        "TOLLGATE_ATLASSIAN_API_URL",
        Some("https://api.atlassian.com"),
        "Base URL of the organization Admin API and the Atlassian SCIM directory.",
    ),
    setting(
        "atlassian.org_id",
        "TOLLGATE_ATLASSIAN_ORG_ID",
        None,
        "Atlassian organization id, for the Admin API (group membership, product access, users).",
    ),
    secret(
        "atlassian.admin_api_key",
        "TOLLGATE_ATLASSIAN_ADMIN_API_KEY",
        "Organization Admin API key (sent as a bearer token).",
    ),
    setting(
        "atlassian.scim_directory_id",
        "TOLLGATE_ATLASSIAN_SCIM_DIRECTORY_ID",
        None,
        "Atlassian SCIM directory id, to map people to accounts and detect SCIM-synced groups.",
    ),
    secret(
        "atlassian.scim_api_key",
        "TOLLGATE_ATLASSIAN_SCIM_API_KEY",
        "API key of that SCIM directory (not the organization key).",
    ),
    setting(
        "atlassian.site_admin_email",
        "TOLLGATE_ATLASSIAN_SITE_ADMIN_EMAIL",
        None,
        "Email of a site-admin service account, for Jira group membership without the Admin API.",
    ),
    secret(
        "atlassian.site_admin_token",
        "TOLLGATE_ATLASSIAN_SITE_ADMIN_TOKEN",
        "API token of that service account (basic auth).",
    ),
    setting(
        "atlassian.cloud_id",
        "TOLLGATE_ATLASSIAN_CLOUD_ID",
        None,
        "The site's cloud id: product access grants (`atlassian_product`) name the site's product by it.",
    ),
    setting(
        "atlassian.synced_groups",
        "TOLLGATE_ATLASSIAN_SYNCED_GROUPS",
        None,
        "Comma-separated Atlassian groups fed from the IdP by SCIM (also detected through the SCIM directory): granted through the IdP group of the same name.",
    ),
    setting(
        "atlassian.account_index_interval",
        "TOLLGATE_ATLASSIAN_ACCOUNT_INDEX_INTERVAL",
        Some("6h"),
        "How often, at most, the organization's account list is read whole into the account index (with the full org sync; the Admin API has no change feed). Between reads, an account missing from the index is found by one targeted query.",
    ),
    setting(
        "grants.remind_before",
        "TOLLGATE_GRANTS_REMIND_BEFORE",
        Some("24h,1h"),
        "When, before temporary access expires, the ticket reminds the requester (comma-separated; `none` for no reminders).",
    ),
    setting(
        "grants.reconcile_interval",
        "TOLLGATE_GRANTS_RECONCILE_INTERVAL",
        Some("5m"),
        "How often the reconcile sweep revokes overdue grants, retries failed revocations and checks membership.",
    ),
    secret(
        "audit.api_token",
        "TOLLGATE_API_TOKEN",
        "Bearer token for the report API (/api/v1/reports/…); unset, the API is closed.",
    ),
    setting(
        "alerts.site",
        "TOLLGATE_ALERTS_SITE",
        None,
        "The Jira site (host, e.g. `acme.atlassian.net`) where each alert also opens an issue; with `alerts.project`.",
    ),
    setting(
        "alerts.project",
        "TOLLGATE_ALERTS_JIRA_PROJECT",
        None,
        "The project key of those alert issues (a JSM or Jira project Tollgate is installed in).",
    ),
    setting(
        "alerts.issue_type",
        "TOLLGATE_ALERTS_ISSUE_TYPE",
        Some("Task"),
        "The issue type of those alert issues.",
    ),
    setting(
        "lifecycle.site",
        "TOLLGATE_LIFECYCLE_SITE",
        None,
        "The Jira site (host) where the identity lifecycle opens a ticket per joiner, mover and leaver; with `lifecycle.service_desk` and `lifecycle.request_type`. Unset, birthright policies are only planned (`tollgate lifecycle plan`).",
    ),
    setting(
        "lifecycle.service_desk",
        "TOLLGATE_LIFECYCLE_SERVICE_DESK",
        None,
        "The JSM service desk id of those tickets.",
    ),
    setting(
        "lifecycle.request_type",
        "TOLLGATE_LIFECYCLE_REQUEST_TYPE",
        None,
        "The JSM request type id of those tickets (not one of the intake's access request types); raised on the person's behalf.",
    ),
    setting(
        "lifecycle.grace_period",
        "TOLLGATE_LIFECYCLE_GRACE_PERIOD",
        Some("7d"),
        "How long someone who moved keeps birthright access their new role no longer brings (announced in their lifecycle ticket); 0s ends it at once.",
    ),
    setting(
        "lifecycle.decide_within",
        "TOLLGATE_LIFECYCLE_DECIDE_WITHIN",
        Some("14d"),
        "How long a manager has to decide in a lifecycle ticket (birthright that asks for `approval: manager`, a `review_on_move` re-approval): reminded halfway; undecided, the birthright is not granted and the reviewed access ends.",
    ),
    setting(
        "lifecycle.inactive_scan_interval",
        "TOLLGATE_LIFECYCLE_INACTIVE_SCAN_INTERVAL",
        Some("24h"),
        "How often every active person's Atlassian last-active dates are read (one Admin API call each) and judged by the inactive-account policy (a workflow file whose top-level key is `inactive`).",
    ),
    setting(
        "leavers.deactivate_atlassian_account",
        "TOLLGATE_LEAVERS_DEACTIVATE_ATLASSIAN_ACCOUNT",
        Some("false"),
        "With the lifecycle ticket configured, also disable a leaver's Atlassian account (managed accounts, through the user-management API; the Admin API key needs `lifecycle.enablement`); an account the organization does not manage loses its product access instead.",
    ),
    setting(
        "audit.checkpoint_interval",
        "TOLLGATE_AUDIT_CHECKPOINT_INTERVAL",
        Some("1h"),
        "How often every audit chain that moved is checkpointed (besides every 1,000 events): the most of a chain's newest events that could be deleted unseen.",
    ),
    setting(
        "grants.admin_group",
        "TOLLGATE_GRANTS_ADMIN_GROUP",
        None,
        "IdP group whose members may `/revoke` any grant (approvers and the resource owner always may).",
    ),
    setting(
        "forge.app_id",
        "TOLLGATE_FORGE_APP_ID",
        None,
        "The Forge app's id (`app.id` in forge/manifest.yml, bare or as `ari:cloud:ecosystem::app/…`); unset, the Forge door (/forge/…) is closed.",
    ),
    setting(
        "forge.jwks_url",
        "TOLLGATE_FORGE_JWKS_URL",
        Some("https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"),
        "Where Forge's invocation-token keys are published (staging: forge.cdn.stg.atlassian-dev.net).",
    ),
    setting(
        "idp.kind",
        "TOLLGATE_IDP_KIND",
        Some("file"),
        "Where the org chart comes from: `file` (org.yaml), `scim`, `ldap`, `okta`, `entra`, `google`, or `scim_push` (the identity provider pushes SCIM 2.0 to `/scim/v2`).",
    ),
    setting(
        "idp.scim_push_person_id",
        "TOLLGATE_IDP_SCIM_PUSH_PERSON_ID",
        Some("externalId"),
        "For `scim_push`: the pushed user's attribute that is the person's id (`externalId`, `userName`, `id` or `employeeNumber`); it must not change while the person stays.",
    ),
    setting(
        "idp.file",
        "TOLLGATE_IDP_FILE",
        None,
        "The org chart file for `file`; default `org.yaml` in the workflows directory.",
    ),
    setting(
        "idp.sync_interval",
        "TOLLGATE_IDP_SYNC_INTERVAL",
        Some("15m"),
        "How often `serve` runs an incremental org sync (a full one at least daily).",
    ),
    setting(
        "idp.leaver_brake_grants",
        "TOLLGATE_IDP_LEAVER_BRAKE_GRANTS",
        Some("100"),
        "…and a sync whose leavers would lose more grants than this at once is held too.",
    ),
    setting(
        "idp.rate_limit",
        "TOLLGATE_IDP_RATE_LIMIT",
        None,
        "For Entra ID and Google, which announce no budget: the calls to keep to, e.g. `100/10s` (their `Retry-After` and rate-limit answers are honoured either way).",
    ),
    setting(
        "idp.leaver_brake_share",
        "TOLLGATE_IDP_LEAVER_BRAKE_SHARE",
        Some("2%"),
        "A sync that would make more than this share of the active people leavers holds their removals for approval (`tollgate org leavers`).",
    ),
    setting(
        "idp.leaver_brake_min",
        "TOLLGATE_IDP_LEAVER_BRAKE_MIN",
        Some("10"),
        "…but never for fewer leavers than this: below it, leavers lose access at once.",
    ),
    setting(
        "idp.leaver_brake_window",
        "TOLLGATE_IDP_LEAVER_BRAKE_WINDOW",
        Some("1h"),
        "Leavers are counted over this sliding window, so a mass removal that arrives one person at a time (pushed changes) trips the brake as one sync would.",
    ),
    setting(
        "idp.scim_url",
        "TOLLGATE_IDP_SCIM_URL",
        None,
        "SCIM 2.0 base URL (the one `/Users` is appended to), for `scim`.",
    ),
    secret(
        "idp.scim_token",
        "TOLLGATE_IDP_SCIM_TOKEN",
        "Bearer token for the SCIM service provider.",
    ),
    setting(
        "idp.scim_page_size",
        "TOLLGATE_IDP_SCIM_PAGE_SIZE",
        Some("100"),
        "`count` asked per SCIM page.",
    ),
    setting(
        "idp.ldap_url",
        "TOLLGATE_IDP_LDAP_URL",
        None,
        "`ldap://host:389` or `ldaps://host:636`, for `ldap`.",
    ),
    setting(
        "idp.ldap_bind_dn",
        "TOLLGATE_IDP_LDAP_BIND_DN",
        None,
        "DN Tollgate binds as (it needs read access, and write access to `member` of granted groups).",
    ),
    secret(
        "idp.ldap_bind_password",
        "TOLLGATE_IDP_LDAP_BIND_PASSWORD",
        "Password of that DN.",
    ),
    setting(
        "idp.ldap_base_dn",
        "TOLLGATE_IDP_LDAP_BASE_DN",
        None,
        "Where people and groups are searched, e.g. `dc=example,dc=com`.",
    ),
    setting(
        "idp.ldap_flavor",
        "TOLLGATE_IDP_LDAP_FLAVOR",
        Some("openldap"),
        "`openldap` (inetOrgPerson, groupOfNames, modifyTimestamp) or `ad` (users, groups, uSNChanged).",
    ),
    setting(
        "idp.ldap_people_filter",
        "TOLLGATE_IDP_LDAP_PEOPLE_FILTER",
        None,
        "Filter selecting people; default `(objectClass=inetOrgPerson)`, or AD's user filter.",
    ),
    setting(
        "idp.ldap_group_filter",
        "TOLLGATE_IDP_LDAP_GROUP_FILTER",
        None,
        "Filter selecting groups; default `(objectClass=groupOfNames)`, or `(objectClass=group)` on AD.",
    ),
    setting(
        "idp.ldap_empty_group_member",
        "TOLLGATE_IDP_LDAP_EMPTY_GROUP_MEMBER",
        None,
        "DN a groupOfNames keeps as `member` when its last person is removed (the schema needs one); default the empty DN.",
    ),
    setting(
        "idp.ldap_page_size",
        "TOLLGATE_IDP_LDAP_PAGE_SIZE",
        Some("500"),
        "Entries per paged-search page (keep it at or under the server's size limit).",
    ),
    setting(
        "idp.concurrency",
        "TOLLGATE_IDP_CONCURRENCY",
        Some("8"),
        "Requests in flight at once to a REST identity provider (Okta, Entra ID, Google) during a sync.",
    ),
    setting(
        "idp.okta_url",
        "TOLLGATE_IDP_OKTA_URL",
        None,
        "The Okta org, e.g. `https://acme.okta.com`, for `okta`.",
    ),
    secret(
        "idp.okta_token",
        "TOLLGATE_IDP_OKTA_TOKEN",
        "An Okta API token (sent as `SSWS`); or use a service app (`idp.okta_client_id`).",
    ),
    setting(
        "idp.okta_client_id",
        "TOLLGATE_IDP_OKTA_CLIENT_ID",
        None,
        "Client id of an Okta API service app (`private_key_jwt`, scopes okta.users.read and okta.groups.manage).",
    ),
    setting(
        "idp.okta_private_key_file",
        "TOLLGATE_IDP_OKTA_PRIVATE_KEY_FILE",
        None,
        "PEM file of the service app's RSA private key.",
    ),
    setting(
        "idp.okta_key_id",
        "TOLLGATE_IDP_OKTA_KEY_ID",
        None,
        "The `kid` of that key as registered in Okta, if it has one.",
    ),
    setting(
        "idp.okta_token_url",
        "TOLLGATE_IDP_OKTA_TOKEN_URL",
        None,
        "Token endpoint of the service app; default `{okta_url}/oauth2/v1/token`.",
    ),
    setting(
        "idp.okta_manager",
        "TOLLGATE_IDP_OKTA_MANAGER",
        Some("managerId"),
        "Where managers come from: `managerId` (profile attribute) or `linked:<name>` (a linked-object relationship).",
    ),
    setting(
        "idp.entra_tenant",
        "TOLLGATE_IDP_ENTRA_TENANT",
        None,
        "The Entra ID directory (tenant) id, for `entra`.",
    ),
    setting(
        "idp.entra_client_id",
        "TOLLGATE_IDP_ENTRA_CLIENT_ID",
        None,
        "Application (client) id of the app registration (User.Read.All, GroupMember.ReadWrite.All).",
    ),
    secret(
        "idp.entra_client_secret",
        "TOLLGATE_IDP_ENTRA_CLIENT_SECRET",
        "Client secret of that app registration.",
    ),
    setting(
        "idp.entra_graph_url",
        "TOLLGATE_IDP_ENTRA_GRAPH_URL",
        Some("https://graph.microsoft.com/v1.0"),
        "Microsoft Graph's base URL (national clouds have their own).",
    ),
    setting(
        "idp.entra_token_url",
        "TOLLGATE_IDP_ENTRA_TOKEN_URL",
        None,
        "Token endpoint; default `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.",
    ),
    secret(
        "idp.entra_client_state",
        "TOLLGATE_IDP_ENTRA_CLIENT_STATE",
        "For `entra`: the `clientState` of the Graph change-notification subscriptions; set, `/hooks/graph` takes notifications (each re-reads the user or group it names).",
    ),
    secret(
        "idp.okta_hook_secret",
        "TOLLGATE_IDP_OKTA_HOOK_SECRET",
        "For `okta`: the `Authorization` header value of the Okta event hook; set, `/hooks/okta` takes events (each re-reads the user or group it names).",
    ),
    setting(
        "idp.entra_page_size",
        "TOLLGATE_IDP_ENTRA_PAGE_SIZE",
        Some("999"),
        "`$top` asked per Graph page (at most 999).",
    ),
    setting(
        "idp.google_credentials_file",
        "TOLLGATE_IDP_GOOGLE_CREDENTIALS_FILE",
        None,
        "The service account's JSON key file (domain-wide delegation for the directory user, group and member scopes), for `google`.",
    ),
    setting(
        "idp.google_admin",
        "TOLLGATE_IDP_GOOGLE_ADMIN",
        None,
        "The Workspace admin the service account acts as.",
    ),
    setting(
        "idp.google_customer",
        "TOLLGATE_IDP_GOOGLE_CUSTOMER",
        Some("my_customer"),
        "The Workspace customer id (`my_customer`: the admin's own).",
    ),
    setting(
        "idp.google_api_url",
        "TOLLGATE_IDP_GOOGLE_API_URL",
        Some("https://admin.googleapis.com"),
        "The Admin SDK's base URL.",
    ),
    setting(
        "idp.google_page_size",
        "TOLLGATE_IDP_GOOGLE_PAGE_SIZE",
        Some("500"),
        "`maxResults` asked per page of users (at most 500; groups and members at most 200).",
    ),
    setting(
        "idp.okta_page_size",
        "TOLLGATE_IDP_OKTA_PAGE_SIZE",
        Some("200"),
        "`limit` asked per Okta page.",
    ),
];
