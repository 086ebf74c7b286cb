//! Grants end to end: a real app with a real `slapd` as the IdP, the fake Jira, JSM,
//! Confluence and Admin API, and a manual clock. A request approved in the ticket becomes an
//! LDAP group membership, a project role, a site group membership and a Confluence space
//! role; it expires after a restart; steps retry through 429s; a permanent failure rolls back;
//! extensions, early revocation, the sweep and leavers end access as they should.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use tollgate::app::Mode;
use tollgate::clock::{Clock, ManualClock};
use tollgate::lifecycle::State;
use tollgate::store::grants::{Phase, Status};
use tollgate::store::requests;
use tollgate_fakes::atlassian::connect::{
    FakeSite, InstallKeyServer, TEST_KEY_1, issue_created, issue_updated,
};
use tollgate_fakes::atlassian::{FakeAtlassian, FakeKeys, FakeUser, Fault, World};
use tollgate_fakes::harness::FakeServer;
use tollgate_fakes::okta::FakeOkta;
use tollgate_fakes::slapd;

use crate::support::scim_server::{self, ScimServer};
use crate::support::{self, TestApp, TestDatabase, env, eventually, tenant_key, ticket_key};

const DEV: (&str, &str) = ("acc-dev", "Dev Dean");
const VP: (&str, &str) = ("acc-vp", "Vera Vance");
const CEO: (&str, &str) = ("acc-ceo", "Cleo Chase");
const GROUP_ID: &str = "c1d2e3f4-0000-4000-8000-00000000a001";

const CATALOG: &str = r#"
resources:
  - id: fin-tools
    name: FIN tools
    owner: { user: ceo@example.com }
    default_duration: 7d
    max_duration: 30d
    grants:
      - idp_group: fin-tools
      - jira_project_role: { project: FIN, role: Administrators }
      - jira_group: fin-project-admins
      - confluence_space: { space: ENG, role: Collaborator }
      - atlassian_product: { product: confluence, role: user }
      - atlassian_product: { product: jira-servicedesk, role: admin }
  - id: shared-tools
    name: Shared tools
    owner: { user: ceo@example.com }
    default_duration: 7d
    grants:
      - idp_group: fin-tools
      - jira_project_role: { project: FIN, role: Administrators }
  - id: brief-tools
    name: Brief tools
    owner: { user: ceo@example.com }
    default_duration: 7d
    give_up_after: 1m
    grants:
      - idp_group: fin-tools
      - jira_project_role: { project: FIN, role: Administrators }
  - id: strict-tools
    name: Strict tools
    owner: { user: ceo@example.com }
    default_duration: 7d
    grants:
      - idp_group: fin-tools
      - jira_group: no-such-group
  - id: eng-tools
    name: Engineering tools
    owner: { user: ceo@example.com }
    permanent_allowed: true
    grants:
      - idp_group: eng-tools
      - jira_project_role: { project: FIN, role: Administrators }
  - id: fin-reports
    name: FIN reports
    owner: { user: ceo@example.com }
    default_duration: 7d
    grants:
      - jira_project_role: { project: FIN, role: Administrators }
  - id: fin-birthright
    name: Finance tools
    owner: { user: ceo@example.com }
    permanent_allowed: true
    grants:
      - idp_group: fin-tools
  - id: lenient-tools
    name: Lenient tools
    owner: { user: ceo@example.com }
    default_duration: 7d
    on_failure: keep_partial
    grants:
      - idp_group: fin-tools
      - jira_group: no-such-group
"#;

const WORKFLOW: &str = "workflow: default\napplies_to: { default: true }\nstages:\n  - name: manager\n    approvers: manager\n";

fn workflows(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("workflow file");
    }
    let intake = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/intake.yaml");
    std::fs::copy(intake, dir.path().join("intake.yaml")).expect("intake");
    std::fs::write(dir.path().join("catalog.yaml"), CATALOG).expect("catalog");
    std::fs::write(dir.path().join("default.yaml"), WORKFLOW).expect("workflow");
    dir
}

fn world(resource: &str) -> World {
    let mut world = World::sample();
    for ((account, name), uid) in [(DEV, "dev"), (VP, "vp"), (CEO, "ceo")] {
        world.users.push(FakeUser {
            account_id: account.into(),
            email: format!("{uid}@example.com"),
            display_name: name.into(),
            active: true,
            email_visible: true,
        });
    }
    let issue = world.add_issue("IT-7", DEV.0);
    issue
        .custom
        .insert("customfield_10050".into(), json!({"value": resource}));
    issue.custom.insert("customfield_10052".into(), json!("7d"));
    world
}

fn directory() -> String {
    let mut ldif = slapd::seed(0);
    ldif.push('\n');
    ldif.push_str(&slapd::group("fin-tools", &["ceo"]));
    ldif.push('\n');
    ldif.push_str(&slapd::group("eng-tools", &["ceo"]));
    ldif
}

/// The identity provider a test grants IdP groups in: a real server either way.
enum Idp {
    Ldap(slapd::Slapd),
    Scim(ScimServer),
    Okta(FakeServer<FakeOkta>),
    /// Tollgate's own SCIM endpoint: the test pushes the people (`Env::push`).
    Pushed,
}

impl Idp {
    async fn start(kind: &str) -> Option<Self> {
        match kind {
            "scim" => {
                if !env::require(
                    scim_server::available(),
                    "scim2-server (pip install scim2-server into .venv-scim)",
                ) {
                    return None;
                }
                let server = ScimServer::start().await;
                let ceo = server.user("ceo", None, "CEO").await;
                let vp = server.user("vp", Some(&ceo), "VP Engineering").await;
                server.user("dev", Some(&vp), "Engineer").await;
                server.group("fin-tools", &[&ceo]).await;
                Some(Self::Scim(server))
            }
            "scim_push" => Some(Self::Pushed),
            "okta" => {
                let server = FakeServer::start(FakeOkta::new().api_token("okta-token"))
                    .await
                    .expect("fake Okta");
                {
                    let mut okta = server.vendor();
                    let ceo = okta.add_user("ceo@example.com", "Cleo Chase", None, "CEO");
                    let vp =
                        okta.add_user("vp@example.com", "Vera Vance", Some(&ceo), "VP Engineering");
                    okta.add_user("dev@example.com", "Dev Dean", Some(&vp), "Engineer");
                    okta.add_group("fin-tools", "OKTA_GROUP", &[&ceo]);
                }
                Some(Self::Okta(server))
            }
            _ => {
                if !env::require(
                    slapd::available(),
                    "OpenLDAP slapd (apt-get install slapd ldap-utils)",
                ) {
                    return None;
                }
                Some(Self::Ldap(slapd::Slapd::start(&directory())))
            }
        }
    }

    fn settings(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Ldap(ldap) => ldap.settings(),
            Self::Scim(server) => vec![
                ("TOLLGATE_IDP_KIND", "scim".into()),
                ("TOLLGATE_IDP_SCIM_URL", server.url.clone()),
                ("TOLLGATE_IDP_SCIM_TOKEN", scim_server::TOKEN.into()),
            ],
            Self::Okta(server) => vec![
                ("TOLLGATE_IDP_KIND", "okta".into()),
                ("TOLLGATE_IDP_OKTA_URL", server.url()),
                ("TOLLGATE_IDP_OKTA_TOKEN", "okta-token".into()),
            ],
            Self::Pushed => vec![("TOLLGATE_IDP_KIND", "scim_push".into())],
        }
    }

    fn ldap(&self) -> &slapd::Slapd {
        match self {
            Self::Ldap(ldap) => ldap,
            _ => panic!("this test needs the LDAP directory"),
        }
    }
}

pub(crate) struct Env {
    pub(crate) app: TestApp,
    pub(crate) cloud: FakeAtlassian,
    pub(crate) site: FakeSite,
    pub(crate) clock: ManualClock,
    /// With a pushed chart: what pushes it.
    pub(crate) push: Option<crate::scim_push::PushClient>,
    idp: Idp,
    settings: Vec<(String, String)>,
    _workflows: tempfile::TempDir,
    _keys: InstallKeyServer,
}

async fn start(resource: &str) -> Option<Env> {
    start_on("ldap", resource).await
}

async fn start_on(idp: &str, resource: &str) -> Option<Env> {
    start_with(idp, resource, &[]).await
}

async fn start_with(idp: &str, resource: &str, extra: &[(&'static str, &str)]) -> Option<Env> {
    start_with_files(idp, resource, extra, &[]).await
}

/// [`start_with`], with more workflow files (`(name, YAML)`).
pub(crate) async fn start_with_files(
    idp: &str,
    resource: &str,
    extra: &[(&'static str, &str)],
    files: &[(&str, &str)],
) -> Option<Env> {
    let parts = Parts::start(idp, resource, extra, files).await?;
    // Whole seconds: PostgreSQL keeps microseconds, and the tests compare times it stored.
    let clock =
        ManualClock::new(chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("now"));
    let app = spawn(TestDatabase::create().await, &parts.settings, &clock).await;
    let site = FakeSite::jira(&app.url(""), "acme.atlassian.net", "k1").at(&parts.cloud.site_url());
    let descriptor = site.descriptor().await.expect("descriptor");
    parts.cloud.install(site.fake_tenant(&descriptor));
    assert_eq!(site.install().await.expect("install").status(), 204);
    let wiki = FakeSite::confluence(&app.url(""), "acme.atlassian.net", "k1")
        .at(&parts.cloud.confluence_url());
    let descriptor = wiki.descriptor().await.expect("descriptor");
    parts.cloud.install(wiki.fake_tenant(&descriptor));
    assert_eq!(wiki.install().await.expect("install").status(), 204);
    let push = match parts.idp {
        Idp::Pushed => Some(crate::scim_push::PushClient::seeded(&app).await),
        _ => None,
    };
    let synced = eventually(Duration::from_secs(15), || async { app.state.org.index() }).await;
    assert!(synced.is_some(), "the org chart was synced from its source");
    let mut env = parts.into_env(app, site, clock);
    env.push = push;
    Some(env)
}

/// What a test's app runs against, before the app: the IdP, the install keys, the fake cloud,
/// the workflows and the settings naming them.
struct Parts {
    idp: Idp,
    keys: InstallKeyServer,
    cloud: FakeAtlassian,
    workflows: tempfile::TempDir,
    settings: Vec<(String, String)>,
}

impl Parts {
    async fn start(
        idp: &str,
        resource: &str,
        extra: &[(&'static str, &str)],
        files: &[(&str, &str)],
    ) -> Option<Self> {
        let idp = Idp::start(idp).await?;
        let keys = InstallKeyServer::start().await.expect("key server");
        keys.publish("k1", TEST_KEY_1.1);
        let fake_keys = FakeKeys {
            admin_api_key: Some("admin-key".into()),
            scim_key: None,
            site_admin: None,
        };
        let cloud = FakeAtlassian::start(world(resource), fake_keys)
            .await
            .expect("cloud");
        let workflows = workflows(files);
        let mut settings: Vec<(&str, String)> = idp.settings();
        settings.extend([
            ("TOLLGATE_BASE_URL", "https://tollgate.example.com".into()),
            ("TOLLGATE_CONNECT_KEYS_URL", keys.url()),
            (
                "TOLLGATE_WORKFLOWS_DIR",
                workflows.path().display().to_string(),
            ),
            ("TOLLGATE_ATLASSIAN_API_URL", cloud.api_url()),
            ("TOLLGATE_ATLASSIAN_ORG_ID", "org-acme".into()),
            ("TOLLGATE_ATLASSIAN_ADMIN_API_KEY", "admin-key".into()),
            ("TOLLGATE_ATLASSIAN_CLOUD_ID", "acme-cloud".into()),
            ("TOLLGATE_SECRET_KEY", support::test_secret_key()),
        ]);
        // `{site-host}`: the fake site's host, known only now.
        let host = cloud.site_url().trim_start_matches("http://").to_string();
        settings.extend(
            extra
                .iter()
                .map(|(k, v)| (*k, v.replace("{site-host}", &host))),
        );
        let settings = settings
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        Some(Self {
            idp,
            keys,
            cloud,
            workflows,
            settings,
        })
    }

    fn into_env(self, app: TestApp, site: FakeSite, clock: ManualClock) -> Env {
        Env {
            app,
            cloud: self.cloud,
            site,
            clock,
            push: None,
            idp: self.idp,
            settings: self.settings,
            _workflows: self.workflows,
            _keys: self.keys,
        }
    }
}

async fn spawn(db: TestDatabase, settings: &[(String, String)], clock: &ManualClock) -> TestApp {
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    support::spawn_app_on(db, Mode::All, &pairs, Arc::new(clock.clone())).await
}

impl Env {
    pub(crate) async fn webhook(&self, path: &str, delivery: &str, body: &Value) {
        let response = self
            .site
            .send_webhook(path, delivery, body)
            .await
            .expect("sent");
        assert_eq!(response.status(), 204);
    }

    pub(crate) async fn comment(&self, delivery: &str, who: (&str, &str), text: &str) {
        self.webhook(
            "/connect/webhooks/comment-created",
            delivery,
            &self.cloud.comment_by("IT-7", who, text),
        )
        .await;
    }

    /// Moves time on for the app and for the site that signs its webhooks.
    pub(crate) fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
        self.site.advance(by);
    }

    async fn request(&self) -> requests::Request {
        self.request_of("IT-7").await
    }

    async fn request_of(&self, ticket: &str) -> requests::Request {
        requests::by_ticket(
            &self.app.state.store,
            &tenant_key(&self.site.client_key),
            &ticket_key(ticket),
        )
        .await
        .expect("read")
        .unwrap_or_else(|| panic!("a request for {ticket}"))
    }

    pub(crate) async fn reaches(&self, state: State) -> requests::Request {
        self.reaches_of("IT-7", state).await
    }

    async fn reaches_of(&self, ticket: &str, state: State) -> requests::Request {
        let found = eventually(Duration::from_secs(30), || async {
            let request = requests::by_ticket(
                &self.app.state.store,
                &tenant_key(&self.site.client_key),
                &ticket_key(ticket),
            )
            .await
            .expect("read")?;
            (request.state == state).then_some(request)
        })
        .await;
        match found {
            Some(request) => request,
            None => {
                let now = self.request_of(ticket).await;
                panic!(
                    "{ticket} never became {state:?}; it is {:?} ({:?}); comments {:#?}",
                    now.state,
                    now.reason,
                    self.comments()
                )
            }
        }
    }

    /// Waits for a comment containing `text`; returns it.
    pub(crate) async fn comment_with(&self, text: &str) -> String {
        let found = eventually(Duration::from_secs(20), || async {
            self.comments().into_iter().find(|c| c.contains(text))
        })
        .await;
        found.unwrap_or_else(|| panic!("no comment with {text:?} in {:#?}", self.comments()))
    }

    fn comments(&self) -> Vec<String> {
        self.cloud.world().issues["IT-7"].app_comments()
    }

    /// Stores an event as the intake does, without queueing its job (a lost job), received
    /// `ago` before now; returns its id.
    async fn store_event(
        &self,
        delivery: &str,
        kind: &str,
        body: &Value,
        ago: TimeDelta,
    ) -> uuid::Uuid {
        let at = Utc::now() - ago;
        let tenant = &self.site.client_key;
        support::store_event(&self.app.state.store, tenant, delivery, kind, body, at).await
    }

    /// Files IT-7 and has Dev's manager approve it at once.
    async fn file_and_approve(&self) {
        self.webhook(
            "/connect/webhooks/issue-created",
            "d-1",
            &issue_created("IT-7", DEV.0),
        )
        .await;
        self.comment_with("Stage 1").await;
        self.comment("d-2", VP, "/approve").await;
    }

    /// Files IT-7 and, an hour later, has Dev's manager approve it; waits until the grant is
    /// active.
    pub(crate) async fn approved_and_active(&self) -> requests::Request {
        self.webhook(
            "/connect/webhooks/issue-created",
            "d-1",
            &issue_created("IT-7", DEV.0),
        )
        .await;
        self.comment_with("Stage 1").await;
        self.advance(TimeDelta::hours(1));
        self.comment("d-2", VP, "/approve").await;
        self.reaches(State::Active).await
    }

    /// Adds Dev's `tickets` to the site, asking for what IT-7 asks (resource, level, duration).
    fn add_tickets_like_it_7(&self, tickets: &[&str]) {
        let mut world = self.cloud.world();
        let fields = world.issues["IT-7"].custom.clone();
        for ticket in tickets {
            world.add_issue(ticket, DEV.0).custom = fields.clone();
        }
    }

    /// Files `ticket` (another request of Dev's) and has it approved at once; waits until its
    /// grant is active.
    async fn another_active(&self, ticket: &str) -> requests::Request {
        self.add_tickets_like_it_7(&[ticket]);
        self.webhook(
            "/connect/webhooks/issue-created",
            &format!("{ticket}-1"),
            &issue_created(ticket, DEV.0),
        )
        .await;
        self.reaches_of(ticket, State::Pending).await;
        self.webhook(
            "/connect/webhooks/comment-created",
            &format!("{ticket}-2"),
            &self.cloud.comment_by(ticket, VP, "/approve"),
        )
        .await;
        self.reaches_of(ticket, State::Active).await
    }

    /// The members of the IdP group, by uid / userName.
    pub(crate) async fn members(&self, group: &str) -> Vec<String> {
        let ldap = match &self.idp {
            Idp::Scim(server) => return server.members(group).await,
            Idp::Okta(server) => {
                let okta = server.vendor();
                let mut logins: Vec<String> = okta
                    .groups
                    .values()
                    .filter(|g| g.name == group)
                    .flat_map(|g| g.members.iter())
                    .filter_map(|id| okta.users.get(id))
                    .map(|u| u.login.split('@').next().unwrap_or_default().to_string())
                    .collect();
                logins.sort();
                return logins;
            }
            Idp::Ldap(ldap) => ldap,
            Idp::Pushed => panic!("a pushed chart's groups are the identity provider's"),
        };
        let mut members: Vec<String> = ldap
            .members(group)
            .await
            .into_iter()
            .filter_map(|dn| {
                dn.strip_prefix("uid=")
                    .and_then(|r| r.split(',').next())
                    .map(str::to_string)
            })
            .collect();
        members.sort();
        members
    }

    /// People join the directory (each an LDIF entry, as `slapd::person` writes them).
    pub(crate) async fn add_people(&self, entries: &[String]) {
        self.idp.ldap().add(entries).await;
    }

    /// Sets one attribute of `uid`'s entry (a move, a rename).
    pub(crate) async fn set_attribute(&self, uid: &str, attribute: &str, value: &str) {
        let mut ldap = self.idp.ldap().admin().await;
        ldap.modify(
            &format!("uid={uid},ou=people,{}", slapd::BASE),
            vec![ldap3::Mod::Replace(attribute, [value].into())],
        )
        .await
        .expect("modify")
        .success()
        .expect("modified");
    }

    /// People leave the directory (the entries are deleted).
    pub(crate) async fn delete_people(&self, uids: &[&str]) {
        let mut ldap = self.idp.ldap().admin().await;
        for uid in uids {
            ldap.delete(&format!("uid={uid},ou=people,{}", slapd::BASE))
                .await
                .expect("delete")
                .success()
                .expect("deleted");
        }
    }

    /// A full sync, then its application (leavers, the brake): the snapshot and what happened.
    pub(crate) async fn sync_and_apply(&self) -> (i64, tollgate::engine::org_change::Applied) {
        let state = &self.app.state;
        let connector = tollgate::idp::Connector::new(&state.config.idp.source, &state.store);
        let report = tollgate::people::sync::sync(
            &state.store,
            &connector,
            &*state.clock,
            true,
            &tollgate::people::sync::Quiet,
        )
        .await
        .expect("sync");
        let applied = tollgate::engine::org_change::apply(state)
            .await
            .expect("applied");
        (report.version.expect("a new snapshot"), applied)
    }

    /// Project role, site group, space role, and both product roles (Confluence user, Jira
    /// product admin as the Admin API takes it: on the `jira` resource).
    fn holds_atlassian_access(&self) -> [bool; 4] {
        let world = self.cloud.world();
        let product = |role: &str, resource: &str| {
            world.product_roles.contains(&(
                DEV.0.to_string(),
                role.to_string(),
                resource.to_string(),
            ))
        };
        [
            world.project_roles[&("FIN".to_string(), 10002)]
                .0
                .contains(DEV.0),
            world.groups[GROUP_ID].contains(DEV.0),
            world.space_assignments[&98_305]
                .iter()
                .any(|(p, r)| p == DEV.0 && r == "role-collaborator"),
            product("atlassian/user", "ari:cloud:confluence::site/acme-cloud")
                && product("atlassian/admin", "ari:cloud:jira::site/acme-cloud"),
        ]
    }
}

#[tokio::test]
async fn a_grant_reaches_every_system_and_expires_after_a_restart() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    let active = env.approved_and_active().await;
    // The clock starts at the grant (approved an hour after the request), not at the request.
    let granted = active.granted_at.expect("granted");
    assert_eq!(granted, active.created_at + TimeDelta::hours(1));
    assert_eq!(active.expires_at, Some(granted + TimeDelta::days(7)));
    assert_eq!(env.members("fin-tools").await, ["ceo", "dev"]);
    assert_eq!(env.holds_atlassian_access(), [true, true, true, true]);
    let comment = env.comment_with("Access granted").await;
    for part in [
        "IdP group fin-tools",
        "role Administrators in Jira project FIN",
        "Jira group fin-project-admins",
        "role Collaborator in Confluence space ENG",
        "confluence",
    ] {
        assert!(comment.contains(part), "{part} in {comment}");
    }

    // Down over the expiry: the restarted app finds it and removes the access.
    let Env {
        app,
        cloud,
        site,
        clock,
        push,
        idp,
        settings,
        _workflows,
        _keys,
    } = env;
    let db = app.stop().await;
    clock.advance(TimeDelta::days(7) + TimeDelta::minutes(1));
    site.advance(TimeDelta::days(7) + TimeDelta::minutes(1));
    let app = spawn(db, &settings, &clock).await;
    let env = Env {
        app,
        cloud,
        site,
        clock,
        push,
        idp,
        settings,
        _workflows,
        _keys,
    };
    let ended = env.reaches(State::Expired).await;
    assert!(ended.ended_at.is_some());
    assert_eq!(env.members("fin-tools").await, ["ceo"]);
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);
    let comment = env.comment_with("expired and has been removed").await;
    assert!(
        comment.contains("Jira group fin-project-admins"),
        "{comment}"
    );
    let chain = tollgate::audit::verify_chain(&env.app.state.store, &env.site.client_key)
        .await
        .expect("read");
    assert!(chain.is_ok(), "{chain:?}");
    let cloud_violations = env.cloud.take_violations();
    assert!(cloud_violations.is_empty(), "{cloud_violations:#?}");
}

/// Grants expiring together end in one `ExpireMany` transaction and their steps in a
/// `RevokeSteps` job; delivered twice, the batch changes nothing the second time.
#[tokio::test]
async fn expiries_due_together_end_in_one_batch_once() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    let active = env.approved_and_active().await;
    let at = active.expires_at.expect("expires").timestamp_micros();
    env.advance(TimeDelta::days(7) + TimeDelta::minutes(1));
    let gone = uuid::Uuid::now_v7();
    for expected in [1, 0] {
        let ended =
            tollgate::grants::expiry::expire_many(&env.app.state, &[(gone, at), (active.id, at)])
                .await
                .expect("batch");
        assert_eq!(ended, expected);
    }
    let ended = env.reaches(State::Expired).await;
    assert!(ended.ended_at.is_some());
    assert_eq!(env.members("fin-tools").await, ["ceo"]);
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);
    env.comment_with("expired and has been removed").await;
    // Its steps again: already settled, so nothing is called and nothing is said twice.
    let calls = env.cloud.recorded().len();
    tollgate::grants::run::revoke_steps(
        &env.app.state,
        &[
            (active.id, 0, 0),
            (active.id, 1, 0),
            (active.id, 2, 0),
            (active.id, 3, 0),
        ],
    )
    .await
    .expect("no-op");
    assert_eq!(env.cloud.recorded().len(), calls);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expired_comments = env
        .comments()
        .iter()
        .filter(|c| c.contains("expired and has been removed"))
        .count();
    assert_eq!(expired_comments, 1);
    let chain = tollgate::audit::verify_chain(&env.app.state.store, &env.site.client_key)
        .await
        .expect("read");
    assert!(chain.is_ok(), "{chain:?}");
}

#[tokio::test]
async fn a_rate_limited_step_waits_and_then_succeeds() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    // More 429s than one call retries: the step job itself backs off and tries again.
    env.cloud
        .inject(Fault::rate_limited("/rest/api/3/project/FIN/role", 6, 1));
    env.approved_and_active().await;
    assert_eq!(env.holds_atlassian_access(), [true, true, true, true]);
    let steps = tollgate::store::grants::read(&env.app.state.store, env.request().await.id)
        .await
        .expect("steps");
    let role = steps
        .iter()
        .find(|s| s.plan.target_key().starts_with("jira_project_role"))
        .expect("role step");
    assert_eq!(role.grant_status, Status::Done);
    assert!(role.attempts >= 1, "the step was retried: {role:?}");
    // No call during a back-off window: every call after a 429 waited out its Retry-After.
    let calls: Vec<_> = env
        .cloud
        .recorded()
        .into_iter()
        .filter(|r| r.path.starts_with("/rest/api/3/project/FIN/role"))
        .collect();
    for pair in calls.windows(2) {
        if pair[0].status == 429 {
            let gap = pair[1].at - pair[0].at;
            assert!(gap >= TimeDelta::milliseconds(950), "{gap:?} after a 429");
        }
    }
}

#[tokio::test]
async fn a_permanent_failure_rolls_back_what_was_granted() {
    let Some(env) = start("strict-tools").await else {
        return;
    };
    env.file_and_approve().await;
    let failed = env.reaches(State::Failed).await;
    assert!(
        failed
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("all-or-nothing")),
        "{failed:?}"
    );
    assert_eq!(env.members("fin-tools").await, ["ceo"], "rolled back");
    let comment = env.comment_with("could not be granted").await;
    assert!(comment.contains("taken back"), "{comment}");
    assert!(comment.contains("no-such-group"), "{comment}");
    assert!(comment.contains("IdP group fin-tools"), "{comment}");
}

#[tokio::test]
async fn keep_partial_keeps_what_worked_and_flags_the_grant() {
    let Some(env) = start("lenient-tools").await else {
        return;
    };
    let active = env.approved_and_active().await;
    assert!(active.partial);
    assert_eq!(env.members("fin-tools").await, ["ceo", "dev"]);
    let comment = env.comment_with("Access granted").await;
    assert!(comment.contains("partial access"), "{comment}");
    assert!(comment.contains("no-such-group"), "{comment}");
}

#[tokio::test]
async fn extensions_are_routed_and_move_the_expiry_only_when_approved() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    let active = env.approved_and_active().await;
    let first = active.expires_at.expect("expires");

    // Declined: nothing moves.
    env.comment("d-3", DEV, "/extend 7d quarter close").await;
    env.comment_with("Extension requested").await;
    env.comment("d-4", VP, "/decline not this time").await;
    env.comment_with("not this time").await;
    assert_eq!(env.request().await.expires_at, Some(first));

    // Approved: the expiry moves by the extension, counted from the grant.
    env.comment("d-5", DEV, "/extend 7d audit prep").await;
    let waiting = eventually(Duration::from_secs(10), || async {
        let kids = requests::children(&env.app.state.store, active.id)
            .await
            .ok()?;
        // Both were filed at the same instant of the test's clock: their order is not defined.
        (kids.len() == 2 && kids.iter().any(|k| k.state == State::Pending)).then_some(())
    })
    .await;
    assert!(waiting.is_some(), "the second extension waits for approval");
    env.comment("d-6", VP, "/approve").await;
    let extended = eventually(Duration::from_secs(20), || async {
        let r = env.request().await;
        (r.expires_at != Some(first)).then_some(r)
    })
    .await
    .expect("extended");
    assert_eq!(extended.expires_at, Some(first + TimeDelta::days(7)));
    assert_eq!(extended.state, State::Active);
    env.comment_with("Extension approved").await;

    // The same /extend delivered again is one extension.
    env.comment("d-5", DEV, "/extend 7d audit prep").await;
    let kids = requests::children(&env.app.state.store, active.id)
        .await
        .expect("children");
    assert_eq!(kids.len(), 2);
}

/// An extension nobody decides is declined when its stage's time is up, like any request (its
/// timers are found by the extension's own id, not the ticket's grant): the expiry stays.
#[tokio::test]
async fn an_extension_left_undecided_is_declined_by_its_timer() {
    let timed = "workflow: fin\napplies_to: { resources: [fin-tools] }\ntimeouts: { decline_after: 5s }\nstages:\n  - name: manager\n    approvers: manager\n";
    let Some(env) = start_with_files("ldap", "fin-tools", &[], &[("fin.yaml", timed)]).await else {
        return;
    };
    let active = env.approved_and_active().await;
    let first = active.expires_at.expect("expires");
    env.comment("d-3", DEV, "/extend 7d quarter close").await;
    env.comment_with("Extension requested").await;
    let declined = eventually(Duration::from_secs(30), || async {
        let kids = requests::children(&env.app.state.store, active.id)
            .await
            .ok()?;
        kids.into_iter().find(|k| k.state == State::Declined)
    })
    .await
    .expect("the extension is declined by its timer");
    assert_eq!(declined.reason.as_deref(), Some("no decision within 5s"));
    assert_eq!(env.request().await.expires_at, Some(first));
    assert_eq!(env.request().await.state, State::Active);
}

#[tokio::test]
async fn an_approver_may_revoke_early_and_the_requester_may_not() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    env.approved_and_active().await;
    env.comment("d-3", DEV, "/revoke no longer needed").await;
    env.comment_with("only an approver of this request").await;
    assert_eq!(env.request().await.state, State::Active);

    env.comment("d-4", VP, "/revoke moved teams").await;
    let revoked = env.reaches(State::Revoked).await;
    assert!(
        revoked
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("moved teams")),
        "{revoked:?}"
    );
    assert_eq!(env.members("fin-tools").await, ["ceo"]);
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);
    env.comment_with("has been revoked").await;
}

#[tokio::test]
async fn a_revoking_resolution_revokes_at_once() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    env.approved_and_active().await;
    env.cloud
        .world()
        .issues
        .get_mut("IT-7")
        .expect("issue")
        .custom
        .insert("resolution".into(), json!({"name": "Access revoked"}));
    env.webhook(
        "/connect/webhooks/issue-updated",
        "d-3",
        &issue_updated("IT-7", VP),
    )
    .await;
    env.reaches(State::Revoked).await;
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);
}

#[tokio::test]
async fn the_sweep_revokes_an_expiry_whose_job_was_lost() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    env.approved_and_active().await;
    env.advance(TimeDelta::days(8));
    // No expiry job exists (the window has not run since, and would have been lost anyway).
    let report = tollgate::grants::sweep::sweep(&env.app.state)
        .await
        .expect("sweep");
    assert_eq!(report.overdue, 1, "{report:?}");
    env.reaches(State::Expired).await;
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);
}

#[tokio::test]
async fn a_step_claimed_twice_is_applied_once() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    let active = env.approved_and_active().await;
    // Revoke by hand, then run one revocation step from two "replicas" at once.
    let state = &env.app.state;
    let id = active.id;
    let mut tx = state.store.begin().await.expect("tx");
    let todo = tollgate::store::grants::start_revoke(&mut tx, id, state.clock.now())
        .await
        .expect("start");
    tx.commit().await.expect("commit");
    let (step, attempt) = todo[1];
    let before = env.cloud.recorded().len();
    let (a, b) = tokio::join!(
        tollgate::grants::run::step(state, id, step, Phase::Revoke, attempt),
        tollgate::grants::run::step(state, id, step, Phase::Revoke, attempt),
    );
    a.expect("a");
    b.expect("b");
    let deletes = env.cloud.recorded()[before..]
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 1, "one replica applied the step");
}

#[tokio::test]
async fn a_leaver_loses_access_after_an_org_sync() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    env.approved_and_active().await;
    // Dev leaves: the directory deletes the entry (refint drops the group membership too).
    env.delete_people(&["dev"]).await;
    // One leaver is below the brake: their access goes at once.
    let (_, applied) = env.sync_and_apply().await;
    assert_eq!(applied.held, 0, "{applied:?}");
    let revoked = env.reaches(State::Revoked).await;
    assert_eq!(
        revoked.end_cause,
        Some(tollgate::lifecycle::EndCause::Leaver)
    );
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);
}

#[tokio::test]
async fn a_scim_idp_group_is_granted_and_revoked_in_a_real_scim_server() {
    let Some(env) = start_on("scim", "fin-tools").await else {
        return;
    };
    env.approved_and_active().await;
    assert_eq!(env.members("fin-tools").await, ["ceo", "dev"]);
    assert_eq!(env.holds_atlassian_access(), [true, true, true, true]);
    env.comment("d-3", VP, "/revoke").await;
    env.reaches(State::Revoked).await;
    assert_eq!(env.members("fin-tools").await, ["ceo"]);
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);
}

#[tokio::test]
async fn an_okta_group_is_granted_and_revoked_through_the_okta_api() {
    let Some(env) = start_on("okta", "fin-tools").await else {
        return;
    };
    env.approved_and_active().await;
    assert_eq!(env.members("fin-tools").await, ["ceo", "dev"]);
    assert_eq!(env.holds_atlassian_access(), [true, true, true, true]);
    env.comment("d-3", VP, "/revoke").await;
    env.reaches(State::Revoked).await;
    assert_eq!(env.members("fin-tools").await, ["ceo"]);
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);
    let Idp::Okta(server) = &env.idp else {
        unreachable!()
    };
    let writes: Vec<String> = server
        .recorded()
        .iter()
        .filter(|r| r.method == "PUT" || r.method == "DELETE")
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(writes, ["PUT", "DELETE"], "one membership change each way");
}

#[tokio::test]
async fn the_requester_is_reminded_before_expiry() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    let active = env.approved_and_active().await;
    let expires = active.expires_at.expect("expires");
    // A day before: the 24-hour reminder is queued by the expiry window and posted.
    env.advance(expires - TimeDelta::hours(24) - env.clock.now());
    tollgate::grants::expiry::queue_window(&env.app.state)
        .await
        .expect("window");
    let reminder = env.comment_with("Reminder: access to").await;
    assert!(reminder.contains("ends in 1d"), "{reminder}");
    assert!(reminder.contains("/extend"), "{reminder}");
    // The window running again does not remind twice.
    tollgate::grants::expiry::queue_window(&env.app.state)
        .await
        .expect("window");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reminders = env
        .comments()
        .iter()
        .filter(|c| c.starts_with("Reminder: access to"))
        .count();
    assert_eq!(reminders, 1);
}

#[tokio::test]
async fn the_sweep_flags_access_removed_outside_tollgate_once() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    env.approved_and_active().await;
    // Nothing changed yet: nothing is flagged.
    let report = tollgate::grants::sweep::sweep(&env.app.state)
        .await
        .expect("sweep");
    assert_eq!(report.drift, 0, "{report:?}");
    // Admins take Dev out of the project role, the site group and the space by hand.
    {
        let mut world = env.cloud.world();
        world
            .project_roles
            .get_mut(&("FIN".to_string(), 10002))
            .expect("role")
            .0
            .remove(DEV.0);
        world.groups.get_mut(GROUP_ID).expect("group").remove(DEV.0);
        world
            .space_assignments
            .get_mut(&98_305)
            .expect("space")
            .retain(|(principal, _)| principal != DEV.0);
    }
    // Product roles stay: the drift check does not read them.
    assert_eq!(env.holds_atlassian_access(), [false, false, false, true]);
    let report = tollgate::grants::sweep::sweep(&env.app.state)
        .await
        .expect("sweep");
    assert_eq!(report.drift, 3, "{report:?}");
    env.comment_with("changed outside Tollgate").await;
    let again = tollgate::grants::sweep::sweep(&env.app.state)
        .await
        .expect("sweep");
    assert_eq!(again.drift, 0, "flagged once");
    assert_eq!(
        env.request().await.state,
        State::Active,
        "not re-granted, not revoked"
    );
}

/// A sync that makes two of the three people leavers at once (the brake allows one here) is
/// not believed: nothing is revoked in the IdP or in Atlassian, an alert is raised, and the
/// removals wait for a person; approved, they go.
#[tokio::test]
async fn the_leaver_brake_holds_a_mass_removal_until_approved() {
    let Some(env) = start_with(
        "ldap",
        "fin-tools",
        &[
            ("TOLLGATE_IDP_LEAVER_BRAKE_MIN", "1"),
            ("TOLLGATE_ALERTS_SITE", "{site-host}"),
            ("TOLLGATE_ALERTS_JIRA_PROJECT", "IT"),
            ("TOLLGATE_API_TOKEN", "operator-token"),
        ],
    )
    .await
    else {
        return;
    };
    env.approved_and_active().await;
    let state = &env.app.state;
    tollgate::engine::org_change::apply(state)
        .await
        .expect("the first snapshot applied");
    env.delete_people(&["dev", "vp"]).await;
    let (version, applied) = env.sync_and_apply().await;
    assert_eq!(applied.held, 2, "{applied:?}");
    // The sweep honours the hold too.
    tollgate::grants::sweep::sweep(state).await.expect("sweep");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.request().await.state, State::Active);
    assert_eq!(env.holds_atlassian_access(), [true, true, true, true]);
    let holds = tollgate::store::org_changes::holds(&state.store)
        .await
        .expect("holds");
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].version, version);
    let alerts: Vec<serde_json::Value> = tollgate::alerts::raised(&state.store, "leaver_brake")
        .await
        .expect("events");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        state
            .metrics
            .render()
            .contains(r#"tollgate_alerts_total{kind="leaver_brake"} 1"#)
    );
    // …and an issue in the alerts project says the same.
    let opened = eventually(Duration::from_secs(10), || async {
        env.cloud
            .world()
            .issues
            .values()
            .find(|i| i.summary == "Tollgate alert: leaver_brake")
            .map(|i| i.custom["description"].clone())
    })
    .await
    .expect("an alert issue was opened");
    let text = tollgate::atlassian::adf::plain_text(&opened);
    assert!(
        text.contains("would make 2 of 3 active people leavers"),
        "{text}"
    );

    // The operator sees the hold through the API (nobody else does).
    let http = reqwest::Client::new();
    let holds_url = env.app.url("/api/v1/org/holds");
    let anonymous = http.get(&holds_url).send().await.expect("sent");
    assert_eq!(anonymous.status(), 401);
    let listed: serde_json::Value = http
        .get(&holds_url)
        .bearer_auth("operator-token")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed[0]["version"], version);
    assert_eq!(listed[0]["state"], "held");
    assert_eq!(listed[0]["people"].as_array().map(Vec::len), Some(2));

    // Approved through the API: the service removes the access.
    let approved = http
        .post(env.app.url(&format!("/api/v1/org/holds/{version}/approve")))
        .bearer_auth("operator-token")
        .send()
        .await
        .expect("sent");
    assert_eq!(approved.status(), 200);
    let revoked = env.reaches(State::Revoked).await;
    assert_eq!(
        revoked.end_cause,
        Some(tollgate::lifecycle::EndCause::Leaver)
    );
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);
    // The approval and its carrying out are in the audit log.
    for what in ["leaver_brake.approved", "leaver_brake.done"] {
        let events = eventually(Duration::from_secs(10), || async {
            let events = tollgate::alerts::raised(&state.store, what)
                .await
                .expect("read");
            (events.len() == 1).then_some(events)
        })
        .await;
        assert!(events.is_some(), "one {what} event");
    }
    // Approving again through the API is a conflict (it is done), not an outage; a snapshot
    // that never held anything is not found.
    let again = http
        .post(env.app.url(&format!("/api/v1/org/holds/{version}/approve")))
        .bearer_auth("operator-token")
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), 409);
    let body: serde_json::Value = again.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    let unknown = http
        .post(env.app.url("/api/v1/org/holds/999999/approve"))
        .bearer_auth("operator-token")
        .send()
        .await
        .expect("sent");
    assert_eq!(unknown.status(), 404);
    // Approving again (`tollgate org leavers --approve`) finds nothing held.
    let mut out = Vec::new();
    let again = tollgate::cli::org_leavers(&state.config, Some(version), "auditor", &mut out).await;
    assert!(again.is_err_and(|e| e.contains("no removals are held")));
    let mut out = Vec::new();
    tollgate::cli::org_leavers(&state.config, None, "auditor", &mut out)
        .await
        .expect("listed");
    let listed = String::from_utf8_lossy(&out);
    assert!(
        listed.contains(&format!(
            "snapshot {version}: 2 of 3 active people, done (by api token)"
        )),
        "{listed}"
    );

    // A hold that cannot be read back is a fault to look into (500, with a correlation id),
    // not an outage to wait out (503).
    crate::support::database::exec(
        &state.store,
        &format!(
            "UPDATE org_holds SET state = 'held', people = '{{not json' WHERE version = {version}"
        ),
        &[],
    )
    .await;
    let damaged = http
        .get(&holds_url)
        .bearer_auth("operator-token")
        .send()
        .await
        .expect("sent");
    assert_eq!(damaged.status(), 500);
    let body: serde_json::Value = damaged.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "internal", "{body}");
    assert!(body["error"]["correlation_id"].is_string(), "{body}");
}

/// People a hold waits on who appear again in a later sync leave the hold; a hold everyone
/// came back from is dropped, and their access never moved.
#[tokio::test]
async fn a_hold_is_dropped_when_its_people_come_back() {
    let Some(env) = start_with(
        "ldap",
        "fin-tools",
        &[("TOLLGATE_IDP_LEAVER_BRAKE_MIN", "1")],
    )
    .await
    else {
        return;
    };
    env.approved_and_active().await;
    let state = &env.app.state;
    tollgate::engine::org_change::apply(state)
        .await
        .expect("the first snapshot applied");
    env.delete_people(&["dev", "vp"]).await;
    assert_eq!(env.sync_and_apply().await.1.held, 2);
    // A directory restored from a backup: both are back.
    env.add_people(&[
        slapd::person("dev", Some("vp"), "Engineer", "ENG"),
        slapd::person("vp", Some("ceo"), "VP Engineering", "ENG"),
    ])
    .await;
    let (_, applied) = env.sync_and_apply().await;
    assert_eq!(applied.held, 0, "{applied:?}");
    let holds = tollgate::store::org_changes::holds(&state.store)
        .await
        .expect("holds");
    assert_eq!(
        holds[0].state,
        tollgate::store::org_changes::HoldState::Dropped
    );
    let dropped = tollgate::alerts::raised(&env.app.state.store, "leaver_brake.dropped")
        .await
        .expect("read");
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.request().await.state, State::Active);
    assert_eq!(env.holds_atlassian_access(), [true, true, true, true]);
}

/// How two grants of the same targets overlap.
#[derive(Debug, Clone, Copy)]
enum Overlap {
    /// IT-8 is granted after IT-7 is active; IT-7 ends first.
    FirstEndsFirst,
    /// The same, but IT-8 ends first.
    SecondEndsFirst,
    /// IT-8 is approved while IT-7's project role step is still being retried; IT-7 ends first.
    SecondWhileFirstProvisions,
}

impl Env {
    /// Ends `ticket`'s grant early (its approver revokes it).
    async fn end(&self, ticket: &str) {
        self.webhook(
            "/connect/webhooks/comment-created",
            &format!("{ticket}-revoke"),
            &self
                .cloud
                .comment_by(ticket, VP, "/revoke no longer needed"),
        )
        .await;
        self.reaches_of(ticket, State::Revoked).await;
    }

    /// Whether Dev is in the IdP group and in the FIN project role of this site.
    async fn dev_holds(&self) -> (bool, bool) {
        let idp = self.members("fin-tools").await.contains(&"dev".to_string());
        (idp, role_holder(&self.cloud, DEV.0))
    }
}

fn role_holder(cloud: &FakeAtlassian, account: &str) -> bool {
    cloud.world().project_roles[&("FIN".to_string(), 10002)]
        .0
        .contains(account)
}

/// Two grants of the same targets for one person, through the real engine, in every order:
/// the access stays while either holds it and goes with the last. The second grant finds the
/// access in place and shares it; it does not take it for access Dev had before Tollgate.
#[tokio::test]
async fn shared_access_ends_with_its_last_holder_in_every_order() {
    for overlap in [
        Overlap::FirstEndsFirst,
        Overlap::SecondEndsFirst,
        Overlap::SecondWhileFirstProvisions,
    ] {
        let Some(env) = start("fin-tools").await else {
            return;
        };
        if let Overlap::SecondWhileFirstProvisions = overlap {
            // More 429s than one call rides out: IT-7's role step backs off as a job.
            env.cloud
                .inject(Fault::rate_limited("/rest/api/3/project/FIN/role", 6, 1));
            env.file_and_approve().await;
            env.reaches(State::Provisioning).await;
            env.another_active("IT-8").await;
            env.reaches(State::Active).await;
        } else {
            env.approved_and_active().await;
            env.another_active("IT-8").await;
        }
        let second = env.request_of("IT-8").await;
        let second_steps = tollgate::store::grants::read(&env.app.state.store, second.id)
            .await
            .expect("steps");
        assert!(
            second_steps
                .iter()
                .all(|s| s.granted_change.as_deref() != Some("pre_existing")),
            "{overlap:?}: shared, not taken for Dev's own: {second_steps:?}"
        );
        let order = match overlap {
            Overlap::SecondEndsFirst => ["IT-8", "IT-7"],
            _ => ["IT-7", "IT-8"],
        };
        for (ticket, stays) in [(order[0], true), (order[1], false)] {
            env.end(ticket).await;
            assert_eq!(
                env.dev_holds().await,
                (stays, stays),
                "{overlap:?}: after {ticket} ended"
            );
            assert_eq!(
                env.holds_atlassian_access(),
                [stays; 4],
                "{overlap:?}: after {ticket} ended"
            );
        }
    }
}

/// Access Dev had before Tollgate (the IdP group, the project role, the site group) is never
/// taken away, whichever of two grants ends last; what Tollgate added (the space role and
/// product access) goes with the last.
#[tokio::test]
async fn access_that_predates_tollgate_is_never_removed() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    {
        let mut ldap = env.idp.ldap().admin().await;
        let dev = format!("uid=dev,ou=people,{}", slapd::BASE);
        ldap.modify(
            &format!("cn=fin-tools,ou=groups,{}", slapd::BASE),
            vec![ldap3::Mod::Add("member", [dev.as_str()].into())],
        )
        .await
        .expect("modify")
        .success()
        .expect("added");
        let mut world = env.cloud.world();
        world
            .project_roles
            .get_mut(&("FIN".to_string(), 10002))
            .expect("role")
            .0
            .insert(DEV.0.to_string());
        world
            .groups
            .get_mut(GROUP_ID)
            .expect("group")
            .insert(DEV.0.to_string());
    }
    env.approved_and_active().await;
    env.another_active("IT-8").await;
    let first = tollgate::store::grants::read(&env.app.state.store, env.request().await.id)
        .await
        .expect("steps");
    let found: Vec<_> = first
        .iter()
        .map(|s| (s.plan.target_key(), s.granted_change.clone()))
        .collect();
    assert!(
        found
            .iter()
            .filter(|(_, c)| c.as_deref() == Some("pre_existing"))
            .count()
            == 3,
        "the group, the role and the site group were there before: {found:?}"
    );
    for ticket in ["IT-8", "IT-7"] {
        env.end(ticket).await;
    }
    assert_eq!(env.dev_holds().await, (true, true));
    let access = env.holds_atlassian_access();
    assert_eq!(access, [true, true, false, false], "{access:?}");
}

/// A grant on the production site and one on a sandbox site, for the same person: the IdP
/// group is the organization's, so it stays until both end; each site's project role is its
/// own, so it goes with that site's grant.
#[tokio::test]
async fn across_two_sites_org_wide_access_is_shared_and_site_access_is_not() {
    for sandbox_ends_first in [false, true] {
        let Some(env) = start("shared-tools").await else {
            return;
        };
        let sandbox = FakeAtlassian::start(world("shared-tools"), FakeKeys::default())
            .await
            .expect("sandbox cloud");
        let site2 =
            FakeSite::jira(&env.app.url(""), "sandbox.atlassian.net", "k1").at(&sandbox.site_url());
        let descriptor = site2.descriptor().await.expect("descriptor");
        sandbox.install(site2.fake_tenant(&descriptor));
        assert_eq!(site2.install().await.expect("install").status(), 204);
        let send = |site: &FakeSite, delivery: String, path: &'static str, body: Value| {
            let site = site.clone();
            async move {
                let response = site
                    .send_webhook(path, &delivery, &body)
                    .await
                    .expect("sent");
                assert_eq!(response.status(), 204);
            }
        };
        let state_on = |site: &FakeSite, wanted: State| {
            let (store, key) = (env.app.state.store.clone(), site.client_key.clone());
            async move {
                eventually(Duration::from_secs(30), || async {
                    let r = requests::by_ticket(&store, &tenant_key(&key), &ticket_key("IT-7"))
                        .await
                        .expect("read")?;
                    (r.state == wanted).then_some(r)
                })
                .await
                .unwrap_or_else(|| panic!("IT-7 on {key} never became {wanted:?}"))
            }
        };
        for (site, cloud) in [(&env.site, &env.cloud), (&site2, &sandbox)] {
            let created = issue_created("IT-7", DEV.0);
            send(
                site,
                "c-1".into(),
                "/connect/webhooks/issue-created",
                created,
            )
            .await;
            state_on(site, State::Pending).await;
            let approve = cloud.comment_by("IT-7", VP, "/approve");
            send(
                site,
                "c-2".into(),
                "/connect/webhooks/comment-created",
                approve,
            )
            .await;
            state_on(site, State::Active).await;
        }
        assert!(role_holder(&env.cloud, DEV.0) && role_holder(&sandbox, DEV.0));
        let order = if sandbox_ends_first {
            [(&site2, &sandbox), (&env.site, &env.cloud)]
        } else {
            [(&env.site, &env.cloud), (&site2, &sandbox)]
        };
        for (i, (site, cloud)) in order.iter().enumerate() {
            let revoke = cloud.comment_by("IT-7", VP, "/revoke done");
            send(
                site,
                "c-3".into(),
                "/connect/webhooks/comment-created",
                revoke,
            )
            .await;
            state_on(site, State::Revoked).await;
            let idp = env.members("fin-tools").await.contains(&"dev".to_string());
            assert_eq!(
                idp,
                i == 0,
                "the IdP group ends with the last of both sites"
            );
        }
        // Each site's role went with its own grant.
        assert!(!role_holder(&env.cloud, DEV.0) && !role_holder(&sandbox, DEV.0));
    }
}

/// Dev's email changes in the IdP while the grant is active: the same person by their id, so
/// nothing is revoked; the request shows the new email and the audit trail the rename.
#[tokio::test]
async fn an_email_change_is_a_rename_not_a_leaver() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    let active = env.approved_and_active().await;
    assert!(active.subject_person.is_some(), "{active:?}");
    env.set_attribute("dev", "mail", "dev.dean@example.org")
        .await;
    let (_, applied) = env.sync_and_apply().await;
    assert_eq!((applied.leavers, applied.held), (0, 0), "{applied:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = env.request().await;
    assert_eq!(after.state, State::Active);
    assert_eq!(
        after.requester_email.as_deref(),
        Some("dev.dean@example.org")
    );
    assert_eq!(after.subject_person, active.subject_person);
    assert_eq!(env.dev_holds().await, (true, true));
    assert_eq!(env.holds_atlassian_access(), [true; 4]);
    let renamed = tollgate::audit::system_events(&env.app.state.store, "person.renamed")
        .await
        .expect("events");
    assert_eq!(renamed.len(), 1, "{renamed:?}");
    assert_eq!(renamed[0]["details"]["from"], "dev@example.com");
    assert_eq!(renamed[0]["details"]["to"], "dev.dean@example.org");
    assert_eq!(renamed[0]["details"]["tickets"], json!(["IT-7"]));
}

/// Jira answers 503 to every call for about two minutes (1,200 calls) during a burst of 100
/// new tickets, all acknowledged with 204: nothing acknowledged is lost. Once Jira is back,
/// every ticket has exactly one request and one routing comment.
#[tokio::test]
async fn an_outage_during_a_burst_loses_no_acknowledged_event() {
    const TICKETS: usize = 100;
    let quick = [
        ("TOLLGATE_EVENTS_RETRY_BASE", "1s"),
        ("TOLLGATE_EVENTS_RETRY_MAX", "2s"),
    ];
    let Some(env) = start_with("ldap", "fin-tools", &quick).await else {
        return;
    };
    let tickets: Vec<String> = (0..TICKETS).map(|i| format!("IT-{}", 100 + i)).collect();
    env.add_tickets_like_it_7(&tickets.iter().map(String::as_str).collect::<Vec<_>>());
    // Far more 503s than one call's own retries, or the old job's five back-to-back attempts,
    // ride out.
    env.cloud.inject(Fault::unavailable("/rest/", 1_200));
    for (i, ticket) in tickets.iter().enumerate() {
        env.webhook(
            "/connect/webhooks/issue-created",
            &format!("burst-{i}"),
            &issue_created(ticket, DEV.0),
        )
        .await;
    }
    let routed = |ticket: &str| {
        env.cloud.world().issues[ticket]
            .comments
            .iter()
            .filter(|c| tollgate::atlassian::adf::plain_text(&c.body).contains("Stage 1"))
            .count()
    };
    let all = eventually(Duration::from_secs(300), || async {
        tickets.iter().all(|t| routed(t) >= 1).then_some(())
    })
    .await;
    let outage: Vec<_> = env
        .cloud
        .recorded()
        .into_iter()
        .filter(|r| r.status == 503)
        .map(|r| r.at)
        .collect();
    let failed = outage.len();
    if let (Some(first), Some(last)) = (outage.iter().min(), outage.iter().max()) {
        // With retries of 1–2 s here (10 s doubling to 10 min in production), this many rounds
        // of failures stand for an outage of hours.
        println!(
            "outage: {failed} answers were 503 over {:.1} s",
            (*last - *first).num_milliseconds() as f64 / 1000.0
        );
    }
    assert!(
        failed >= 100,
        "the outage was real: {failed} answers were 503"
    );
    assert!(
        all.is_some(),
        "not routed: {:?}",
        tickets
            .iter()
            .filter(|t| routed(t) == 0)
            .collect::<Vec<_>>()
    );
    // Settled: each ticket one request, pending, and one routing comment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for ticket in &tickets {
        assert_eq!(
            env.request_of(ticket).await.state,
            State::Pending,
            "{ticket}"
        );
        assert_eq!(routed(ticket), 1, "{ticket}: one routing comment");
    }
    let dead = tollgate::store::inbound::dead(&env.app.state.store)
        .await
        .expect("dead");
    assert!(dead.is_empty(), "{dead:?}");
}

/// An event whose job was lost (stored, never queued) is found by the sweep and processed;
/// one that fails for good is recorded as dead with an alert, and a person's retry processes
/// it once the cause is fixed.
#[tokio::test]
async fn a_lost_event_is_swept_and_a_dead_one_retried() {
    use tollgate::engine::events;
    use tollgate::store::inbound;
    let Some(env) = start("fin-tools").await else {
        return;
    };
    let state = &env.app.state;
    env.add_tickets_like_it_7(&["IT-8"]);
    let created = |ticket: &str| issue_created(ticket, DEV.0);
    // Written as the intake writes it, but its job never committed (or was deleted).
    let lost = env
        .store_event(
            "lost-1",
            "jira:issue_created",
            &created("IT-7"),
            TimeDelta::minutes(5),
        )
        .await;
    // Too recent to be believed lost: the sweep leaves it to its job.
    let fresh = env
        .store_event(
            "fresh-1",
            "jira:issue_created",
            &created("IT-8"),
            TimeDelta::zero(),
        )
        .await;
    assert_eq!(events::sweep(state, 1).await.expect("sweep"), 1);
    // Swept again in the same slot: its job is keyed, so one job either way (the worker may
    // have processed the event already, and then the sweep finds nothing).
    let again = events::sweep(state, 1).await.expect("again");
    assert!(again <= 1, "{again}");
    let key = format!("inbound_retry:{lost}:s1");
    let jobs: i64 = match state.store.db() {
        tollgate::store::Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE idempotency_key = $1")
                .bind(&key)
                .fetch_one(pool)
                .await
        }
        tollgate::store::Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE idempotency_key = $1")
                .bind(&key)
                .fetch_one(pool)
                .await
        }
    }
    .expect("read the queue");
    assert_eq!(jobs, 1, "its job is keyed");
    env.reaches(State::Pending).await;
    // The request is stored before its event is marked processed (a separate write).
    let processed = eventually(Duration::from_secs(10), || async {
        let event = inbound::get(&state.store, lost).await.expect("read");
        event.filter(|e| e.processed_at.is_some())
    })
    .await;
    assert!(processed.is_some(), "the swept event was processed");

    // IT-8's issue cannot be read (403, permanent): dead, with an alert.
    env.cloud.inject(Fault {
        path_prefix: "/rest/api/3/issue/IT-8".into(),
        remaining: 1,
        status: 403,
        headers: Vec::new(),
        body: json!({"errorMessages": ["You do not have permission"], "errors": {}}),
    });
    let outcome = events::process_one(state, fresh).await.expect("process");
    assert!(matches!(outcome, events::Processed::Dead(_)), "{outcome:?}");
    let dead = inbound::dead(&state.store).await.expect("dead");
    assert_eq!(dead.iter().map(|e| e.id).collect::<Vec<_>>(), [fresh]);
    let alerts = tollgate::alerts::raised(&state.store, "event_dead")
        .await
        .expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    // The permission is fixed; a person retries every dead event.
    assert_eq!(
        events::retry_dead(&state.store, None).await.expect("retry"),
        [fresh]
    );
    env.reaches_of("IT-8", State::Pending).await;
    assert!(inbound::dead(&state.store).await.expect("dead").is_empty());
}

/// A ticket's events are processed one at a time in the order Jira produced them: the
/// approver's comment, though picked up first, waits for the ticket's creation before it; while
/// the creation keeps failing, the comment waits behind it (up to `events.ticket_block`), and
/// goes on once the creation is through.
#[tokio::test]
async fn a_tickets_events_are_processed_in_jiras_order() {
    use tollgate::engine::events;
    use tollgate::store::inbound;
    let Some(env) = start("fin-tools").await else {
        return;
    };
    let state = &env.app.state;
    let mut created = issue_created("IT-7", DEV.0);
    created["timestamp"] = json!(1_000);
    let mut approved = env.cloud.comment_by("IT-7", VP, "/approve");
    approved["timestamp"] = json!(2_000);
    // The comment arrived first, the creation (produced first) second.
    let now = TimeDelta::zero();
    let comment = env
        .store_event("o-2", "comment_created", &approved, now)
        .await;
    let creation = env
        .store_event("o-1", "jira:issue_created", &created, now)
        .await;
    // Jira cannot be read for now: the creation fails, and the comment waits behind it.
    env.cloud
        .inject(Fault::unavailable("/rest/api/3/issue/IT-7", 10_000));
    let outcome = events::process_one(state, comment).await.expect("process");
    assert!(
        matches!(outcome, events::Processed::Waiting(_)),
        "{outcome:?}"
    );
    let read = |id| async move {
        inbound::get(&state.store, id)
            .await
            .expect("read")
            .expect("event")
    };
    assert!(
        read(creation).await.attempts >= 1,
        "the creation was tried first"
    );
    assert!(read(comment).await.processed_at.is_none());
    assert_eq!(read(comment).await.attempts, 0, "waiting is not failing");
    // Jira is back: the creation, then the comment, in that order.
    env.cloud.clear_faults();
    let outcome = events::process_one(state, comment).await.expect("process");
    let (first, second) = (read(creation).await, read(comment).await);
    // The creation is resting until its next try; after the block it is passed by, or it is
    // due and goes first: either way, the comment counts only once the request exists.
    if outcome == events::Processed::Done {
        assert!(first.processed_at.is_some() || first.next_attempt_at.is_some());
        assert!(second.processed_at.is_some());
    } else {
        assert!(
            matches!(outcome, events::Processed::Waiting(_)),
            "{outcome:?}"
        );
    }
    let approved = eventually(Duration::from_secs(30), || async {
        let done = inbound::get(&state.store, comment)
            .await
            .expect("read")
            .and_then(|e| e.processed_at);
        if done.is_none() {
            let _ = events::process_one(state, comment).await;
        }
        done
    })
    .await;
    assert!(approved.is_some(), "the comment was processed");
    env.reaches(State::Active).await;
}

/// Jira keeps answering 429 to a grant step: the ticket is told once that the grant is
/// delayed and until when Tollgate keeps trying; once the resource's `give_up_after` has
/// passed, the step fails and what was applied is rolled back.
#[tokio::test]
async fn a_step_failing_through_an_outage_says_so_once_and_gives_up_after_its_time() {
    let Some(env) = start("brief-tools").await else {
        return;
    };
    env.cloud.inject(Fault::rate_limited(
        "/rest/api/3/project/FIN/role",
        100_000,
        1,
    ));
    env.file_and_approve().await;
    let delayed = env.comment_with("is delayed").await;
    assert!(
        delayed.contains("role Administrators in Jira project FIN") && delayed.contains("until"),
        "{delayed}"
    );
    assert_eq!(env.request().await.state, State::Provisioning);
    // Past the resource's minute of retries: the next failure is the last.
    env.advance(TimeDelta::minutes(2));
    let failed = env.reaches(State::Failed).await;
    assert!(failed.reason.is_some(), "{failed:?}");
    assert!(
        !env.members("fin-tools").await.contains(&"dev".to_string()),
        "rolled back"
    );
    let said = env
        .comments()
        .iter()
        .filter(|c| c.contains("is delayed"))
        .count();
    assert_eq!(said, 1, "the delay is said once");
}

/// A notice job run twice (its worker died after posting, before the job was marked done)
/// posts its comment once.
#[tokio::test]
async fn a_notice_delivered_twice_comments_once() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    let state = &env.app.state;
    let notice = tollgate::notices::refused(Some("Dev Dean"), "a test of saying things once");
    for _ in 0..2 {
        let tenant = tollgate::ids::TenantKey::parse(&env.site.client_key).expect("tenant");
        let ticket = tollgate::ids::TicketKey::parse("IT-7").expect("ticket");
        tollgate::notices::deliver(state, &tenant, &ticket, &notice, "t:once")
            .await
            .expect("told");
    }
    let said = env
        .comments()
        .iter()
        .filter(|c| c.contains("a test of saying things once"))
        .count();
    assert_eq!(said, 1);
}

/// The IdP is down when the grant starts: the LDAP step fails and is retried; when the
/// directory is back, the grant completes, with the membership applied once.
#[tokio::test]
async fn an_idp_outage_during_a_grant_is_waited_out() {
    let Some(mut env) = start("fin-tools").await else {
        return;
    };
    if let Idp::Ldap(ldap) = &mut env.idp {
        ldap.stop();
    }
    env.file_and_approve().await;
    let provisioning = env.reaches(State::Provisioning).await;
    let state = &env.app.state;
    let tried = eventually(Duration::from_secs(30), || async {
        let steps = tollgate::store::grants::read(&state.store, provisioning.id)
            .await
            .expect("steps");
        steps
            .iter()
            .find(|s| s.plan.target_key().starts_with("idp_group"))
            .filter(|s| s.attempts >= 1 && s.grant_status == Status::Pending)
            .cloned()
    })
    .await;
    assert!(
        tried.is_some(),
        "the LDAP step failed and waits for its retry"
    );
    if let Idp::Ldap(ldap) = &mut env.idp {
        ldap.resume();
    }
    let active = env.reaches(State::Active).await;
    assert_eq!(
        env.members("fin-tools").await,
        ["ceo", "dev"],
        "Dev added once, next to the CEO"
    );
    let steps = tollgate::store::grants::read(&state.store, active.id)
        .await
        .expect("steps");
    assert!(
        steps.iter().all(|s| s.grant_status == Status::Done),
        "{steps:?}"
    );
}

/// The Admin API is down when a grant expires: its site group and product access steps are
/// retried until it is back; then each is removed once, and the grant ends `expired`.
#[tokio::test]
async fn an_admin_api_outage_during_an_expiry_is_waited_out() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    let active = env.approved_and_active().await;
    env.cloud.inject(Fault::unavailable("/admin/", 100_000));
    env.advance(TimeDelta::days(7) + TimeDelta::minutes(1));
    let state = &env.app.state;
    let at = active.expires_at.expect("expires").timestamp_micros();
    tollgate::grants::expiry::expire_many(state, &[(active.id, at)])
        .await
        .expect("expiry");
    let waiting = eventually(Duration::from_secs(30), || async {
        let steps = tollgate::store::grants::read(&state.store, active.id)
            .await
            .expect("steps");
        steps
            .iter()
            .any(|s| {
                matches!(s.plan.via, tollgate::grants::plan::Via::AdminApi)
                    && s.revoke_status == Some(Status::Pending)
                    && s.attempts >= 2
            })
            .then_some(())
    })
    .await;
    assert!(
        waiting.is_some(),
        "the Admin API steps wait for their retries"
    );
    assert_eq!(env.request().await.state, State::Revoking);
    env.cloud.clear_faults();
    let ended = env.reaches(State::Expired).await;
    assert!(ended.ended_at.is_some());
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);
    // Each removal through the Admin API succeeded once.
    let removals: Vec<String> = env
        .cloud
        .recorded()
        .into_iter()
        .filter(|r| r.path.starts_with("/admin/") && r.status < 300)
        .filter(|r| r.method == "DELETE" || r.path.ends_with("/roles/revoke"))
        .map(|r| {
            format!(
                "{} {}",
                r.path,
                r.body.map(|b| b.to_string()).unwrap_or_default()
            )
        })
        .collect();
    let mut unique = removals.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(removals.len(), unique.len(), "{removals:#?}");
    assert_eq!(
        removals.len(),
        3,
        "the site group and two product roles: {removals:#?}"
    );
}

/// Two workers: one routed and approved a request for someone in a snapshot the other has not
/// loaded yet (it looks every 5 s). The other, planning the grant, waits for the chart rather
/// than failing the request for want of the person; with the chart, the plan is made.
#[tokio::test]
async fn a_worker_holding_an_older_chart_waits_to_plan_the_grant() {
    let Some(env) = start("fin-tools").await else {
        return;
    };
    env.webhook(
        "/connect/webhooks/issue-created",
        "d-1",
        &issue_created("IT-7", DEV.0),
    )
    .await;
    let routed = env.reaches(State::Pending).await;
    // A worker built now holds today's chart, and is never run: only this test drives it.
    let pairs: Vec<(&str, &str)> = env
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let stale = support::idle_replica(&env.app, &pairs, Arc::new(env.clock.clone())).await;
    // Then a joiner's snapshot, and an approved request of theirs (as the other worker
    // would leave it: approved, its plan not made yet).
    let store = &env.app.state.store;
    let (_, mut snapshot) = tollgate::store::org::latest(store)
        .await
        .expect("read")
        .expect("a snapshot");
    let mut joiner = snapshot
        .people
        .iter()
        .find(|p| p.email.as_str() == "dev@example.com")
        .expect("Dev")
        .clone();
    joiner.id = tollgate::orgchart::PersonId(format!("uid=gina,ou=people,{}", slapd::BASE));
    joiner.email = tollgate::orgchart::Email::parse("gina@example.com").expect("email");
    snapshot.people.push(joiner.clone());
    let mut tx = store.begin().await.expect("tx");
    tollgate::store::org::save_snapshot(&mut tx, "ldap", env.clock.now(), &snapshot)
        .await
        .expect("snapshot");
    let mut request = routed.clone();
    request.id = uuid::Uuid::now_v7();
    request.ticket_key = tollgate::ids::TicketKey::parse("IT-8").expect("ticket");
    request.state = State::Approved;
    request.requester_email = Some(joiner.email.clone());
    request.subject_person = Some(joiner.id.clone());
    requests::insert(&mut tx, &request).await.expect("insert");
    tx.commit().await.expect("commit");

    let waited = tollgate::grants::run::provision(stale.state(), request.id).await;
    assert!(
        matches!(waited, Err(tollgate::failure::Failure::NotReady(_))),
        "{waited:?}"
    );
    assert_eq!(env.request_of("IT-8").await.state, State::Approved);
    // Once it has the chart (its poller would load it), the same job plans the grant.
    stale.state().org.refresh(store).await.expect("reload");
    tollgate::grants::run::provision(stale.state(), request.id)
        .await
        .expect("planned");
    let planned = env.request_of("IT-8").await;
    assert_ne!(planned.state, State::Failed, "{:?}", planned.reason);
    let steps = tollgate::store::grants::of_requests(store, &[request.id])
        .await
        .expect("steps");
    assert!(!steps.is_empty(), "the grant was planned");
}

/// The database a release left behind, with the app's clock as it stood then.
struct Fixture {
    db: TestDatabase,
    clock: chrono::DateTime<Utc>,
    active: uuid::Uuid,
    /// The `TOLLGATE_SECRET_KEY` it was written with (a test's key, made for that run).
    secret_key: String,
}

/// `tests/fixtures/release-a01d686` (how it was written: `generate.rs` there), loaded into a
/// fresh database of the kind the suite runs on.
async fn release_fixture() -> Fixture {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-a01d686");
    let db = TestDatabase::create().await;
    let site = match &db {
        TestDatabase::Postgres { url, .. } => {
            use sqlx::Connection;
            let dump = std::fs::read_to_string(dir.join("postgres.sql")).expect("postgres.sql");
            // pg_dump's plain format is for psql: its `\restrict` lines are psql's, not SQL.
            let dump: String = dump
                .lines()
                .filter(|line| !line.starts_with('\\'))
                .map(|line| format!("{line}\n"))
                .collect();
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
                .execute(&mut conn)
                .await
                .expect("the dump loads");
            "site-postgres.json"
        }
        other => {
            let path = other.url().trim_start_matches("sqlite://");
            std::fs::copy(dir.join("tollgate.db"), path).expect("copy the database");
            "site-sqlite.json"
        }
    };
    let site: Value =
        serde_json::from_slice(&std::fs::read(dir.join(site)).expect("site")).expect("JSON");
    Fixture {
        db,
        clock: serde_json::from_value(site["clock"].clone()).expect("clock"),
        active: serde_json::from_value(site["active"].clone()).expect("active"),
        secret_key: site["secret_key"].as_str().expect("secret key").to_string(),
    }
}

/// The previous release's database (an active temporary grant with its expiry queued, a request
/// waiting for its approver with its stage timers queued, the periodic jobs, the audit chain)
/// opens under this release: the queued jobs run, the grant expires everywhere when its time
/// comes, the waiting request is approved and granted, and the audit chain verifies.
#[tokio::test]
async fn a_database_the_previous_release_wrote_upgrades_and_runs_on() {
    let Some(mut parts) = Parts::start("ldap", "fin-tools", &[], &[]).await else {
        return;
    };
    let fixture = release_fixture().await;
    for (name, value) in &mut parts.settings {
        if name == "TOLLGATE_SECRET_KEY" {
            value.clone_from(&fixture.secret_key);
        }
    }
    let clock = ManualClock::new(fixture.clock);
    let app = spawn(fixture.db, &parts.settings, &clock).await;
    // The sites as that release stored them (their keys and secrets), installed again at this
    // test's fake cloud, which is the one thing that moved.
    let state = &app.state;
    // The sites' clocks agree with the app's, which stands where that release left it.
    let skew = fixture.clock - Utc::now();
    let keys: Vec<String> = match state.store.db() {
        tollgate::store::Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT client_key FROM tenants")
                .fetch_all(pool)
                .await
        }
        tollgate::store::Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT client_key FROM tenants")
                .fetch_all(pool)
                .await
        }
    }
    .expect("tenants");
    let mut jira = None;
    for key in keys {
        let tenant = tollgate::store::tenants::get(&state.store, &tenant_key(&key))
            .await
            .expect("read")
            .expect("tenant");
        let context = tollgate::tenant::Tenant::secret_context(&key);
        let secret = state
            .secret_key
            .unseal(&tenant.shared_secret_sealed, &context)
            .expect("the stored secret unseals");
        let confluence = tenant.product == tollgate::tenant::Product::Confluence;
        let mut site = if confluence {
            FakeSite::confluence(&app.url(""), "acme.atlassian.net", "k1")
                .at(&parts.cloud.confluence_url())
        } else {
            FakeSite::jira(&app.url(""), "acme.atlassian.net", "k1").at(&parts.cloud.site_url())
        };
        site.client_key = key;
        site.shared_secret = String::from_utf8(secret).expect("text");
        site.advance(skew);
        let descriptor = site.descriptor().await.expect("descriptor");
        parts.cloud.install(site.fake_tenant(&descriptor));
        assert_eq!(site.install().await.expect("install").status(), 204);
        if !confluence {
            jira = Some(site);
        }
    }
    let site = jira.expect("the fixture has a Jira site");
    // What the grant gave is in place, as it was when that release stopped.
    {
        let mut world = parts.cloud.world();
        world.add_issue("IT-8", DEV.0).custom = world.issues["IT-7"].custom.clone();
        world
            .project_roles
            .entry(("FIN".to_string(), 10002))
            .or_default()
            .0
            .insert(DEV.0.to_string());
        world
            .groups
            .entry(GROUP_ID.to_string())
            .or_default()
            .insert(DEV.0.to_string());
        world
            .space_assignments
            .entry(98_305)
            .or_default()
            .push((DEV.0.to_string(), "role-collaborator".to_string()));
        for (role, resource) in [
            ("atlassian/user", "ari:cloud:confluence::site/acme-cloud"),
            ("atlassian/admin", "ari:cloud:jira::site/acme-cloud"),
        ] {
            world
                .product_roles
                .insert((DEV.0.to_string(), role.to_string(), resource.to_string()));
        }
    }
    let mut ldap = parts.idp.ldap().admin().await;
    ldap.modify(
        &format!("cn=fin-tools,ou=groups,{}", slapd::BASE),
        vec![ldap3::Mod::Add(
            "member".to_string(),
            std::collections::HashSet::from([format!("uid=dev,ou=people,{}", slapd::BASE)]),
        )],
    )
    .await
    .expect("modify")
    .success()
    .expect("dev is in fin-tools");
    let env = parts.into_env(app, site, clock);
    assert_eq!(env.holds_atlassian_access(), [true, true, true, true]);

    // The notice the old release could not post (its job queued for a retry) is posted now.
    let routed = eventually(Duration::from_secs(30), || async {
        let world = env.cloud.world();
        let comments = world.issues["IT-8"].app_comments();
        comments.into_iter().find(|c| c.contains("Stage 1"))
    })
    .await;
    assert!(
        routed.is_some(),
        "IT-8's routing comment was posted after the upgrade"
    );

    // A day later, the request the old release routed is approved under this one, and granted.
    env.advance(TimeDelta::days(1));
    env.webhook(
        "/connect/webhooks/comment-created",
        "IT-8-2",
        &env.cloud.comment_by("IT-8", VP, "/approve"),
    )
    .await;
    env.reaches_of("IT-8", State::Active).await;

    // A week after it was granted, the old release's grant expires, and the ticket is told.
    env.advance(TimeDelta::days(6) + TimeDelta::minutes(1));
    let ended = env.reaches(State::Expired).await;
    assert_eq!(ended.id, fixture.active);
    assert!(ended.ended_at.is_some());
    env.comment_with("expired").await;
    // IT-8 holds the same access, so it all stays, with IT-8, until IT-8 ends.
    assert_eq!(env.request_of("IT-8").await.state, State::Active);
    assert_eq!(env.members("fin-tools").await, ["ceo", "dev"]);
    assert_eq!(env.holds_atlassian_access(), [true, true, true, true]);
    env.advance(TimeDelta::days(1));
    env.reaches_of("IT-8", State::Expired).await;
    assert_eq!(env.members("fin-tools").await, ["ceo"]);
    assert_eq!(env.holds_atlassian_access(), [false, false, false, false]);

    // The chain the old release started, and this one continued, verifies.
    let chain = tollgate::audit::verify_chain(&env.app.state.store, &env.site.client_key)
        .await
        .expect("read");
    assert!(chain.is_ok(), "{chain:?}");
    let violations = env.cloud.take_violations();
    assert!(violations.is_empty(), "{violations:#?}");
}
