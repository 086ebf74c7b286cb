//! The identity connectors against real servers: OpenLDAP `slapd` and `scim2-server`. One
//! sync-and-grant suite runs against each (part 2 runs it against Okta, Entra and Google);
//! then what is particular to each: paged search over 10,000 entries, a group the bind may not
//! change, a full sync resumed after a crash.

use std::sync::Arc;

use tollgate::change::Change;
use tollgate::clock::SystemClock;
use tollgate::config::Secret;
use tollgate::idp::ldap::{Flavor, LdapConfig, LdapDirectory, normalize_dn};
use tollgate::idp::scim::{ScimConfig, ScimDirectory};
use tollgate::idp::{Changes, Directory, GroupWriter, IdpError, Page};
use tollgate::orgchart::PersonId;
use tollgate::people::cache::OrgCache;
use tollgate::people::sync::{self, Quiet, SyncError};
use tollgate::store::Store;
use tollgate::store::org::RunKind;

use tollgate_fakes::slapd;

use crate::support::{self, TestDatabase, env, scim_server};

pub struct People {
    pub ceo: PersonId,
    pub vp: PersonId,
    pub dev: PersonId,
}

/// Whether a source can say what changed since a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Incremental,
    /// No change feed (Google Workspace): every sync is a full read.
    FullReadsOnly,
}

/// The suite every connector passes: full sync, the manager chain, idempotent grant and
/// revoke, the next sync (incremental where the source has a change feed) seeing both, an
/// unknown group refused.
pub async fn sync_and_grant<D, F>(
    store: &Store,
    directory: &D,
    people: &People,
    feed: Feed,
    change_title: F,
) where
    D: Directory + GroupWriter + Sync,
    F: AsyncFn(&str),
{
    let clock = SystemClock;
    let report = sync::sync(store, directory, &clock, false, &Quiet)
        .await
        .expect("full sync");
    assert_eq!(report.kind, RunKind::Full, "no cursor yet: a full sync");
    assert!(report.people >= 3 && report.groups >= 2, "{report:?}");

    // Two replicas see the snapshot.
    let (replica_a, replica_b) = (OrgCache::new(), OrgCache::new());
    assert!(replica_a.refresh(store).await.expect("refresh"));
    assert!(replica_b.refresh(store).await.expect("refresh"));
    assert!(
        !replica_a.refresh(store).await.expect("refresh"),
        "unchanged: nothing reloaded"
    );
    let org = replica_a.index().expect("index");
    let dev = org.by_id(&people.dev).expect("dev synced");
    let chain: Vec<&PersonId> = org.manager_chain(dev).map(|p| &org.person(p).id).collect();
    assert_eq!(chain, vec![&people.vp, &people.ceo]);
    assert!(
        !org.group_members("jira-admins")
            .unwrap_or_default()
            .contains(&dev)
    );

    assert_eq!(
        directory.set_member("jira-admins", &people.dev, true).await,
        Ok(Change::Applied)
    );
    assert_eq!(
        directory.set_member("jira-admins", &people.dev, true).await,
        Ok(Change::AlreadyInPlace)
    );
    change_title("Staff Engineer").await;

    let report = sync::sync(store, directory, &clock, false, &Quiet)
        .await
        .expect("incremental");
    match feed {
        Feed::Incremental => assert_eq!(report.kind, RunKind::Incremental),
        Feed::FullReadsOnly => assert!(report.fell_back_to_full, "{report:?}"),
    }
    assert!(report.version.is_some(), "changes were found: {report:?}");
    assert!(
        replica_b.refresh(store).await.expect("refresh"),
        "the other replica notices"
    );
    let org = replica_b.index().expect("index");
    let dev = org.by_id(&people.dev).expect("dev");
    assert_eq!(org.person(dev).title.as_deref(), Some("Staff Engineer"));
    assert!(
        org.group_members("jira-admins")
            .unwrap_or_default()
            .contains(&dev),
        "grant synced back"
    );

    assert_eq!(
        directory
            .set_member("jira-admins", &people.dev, false)
            .await,
        Ok(Change::Applied)
    );
    assert_eq!(
        directory
            .set_member("jira-admins", &people.dev, false)
            .await,
        Ok(Change::AlreadyInPlace)
    );
    match directory
        .set_member("no-such-group", &people.dev, true)
        .await
    {
        Err(IdpError::NotFound(what)) => assert!(what.contains("no-such-group"), "{what}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn ldap_config(server: &slapd::Slapd, bind_dn: &str, page_size: i32) -> LdapConfig {
    LdapConfig {
        url: server.url.clone(),
        bind_dn: bind_dn.to_string(),
        bind_password: Secret::new(slapd::PASSWORD),
        base_dn: slapd::BASE.to_string(),
        people_filter: "(objectClass=inetOrgPerson)".into(),
        group_filter: "(objectClass=groupOfNames)".into(),
        flavor: Flavor::OpenLdap,
        page_size,
        empty_group_member: String::new(),
    }
}

fn ldap_person(uid: &str) -> PersonId {
    PersonId(normalize_dn(&format!(
        "uid={uid},ou=people,{}",
        slapd::BASE
    )))
}

fn ldap_people() -> People {
    People {
        ceo: ldap_person("ceo"),
        vp: ldap_person("vp"),
        dev: ldap_person("dev"),
    }
}

/// Changes an attribute as the directory's administrator would.
async fn ldap_replace(server: &slapd::Slapd, dn: &str, attribute: &str, value: &str) {
    let mut ldap = server.admin().await;
    ldap.modify(
        dn,
        vec![ldap3::Mod::Replace(
            attribute,
            std::collections::HashSet::from([value]),
        )],
    )
    .await
    .expect("modify")
    .success()
    .expect("modified");
}

#[tokio::test]
async fn ldap_sync_and_grant() {
    if !env::require(
        slapd::available(),
        "OpenLDAP slapd (apt-get install slapd ldap-utils)",
    ) {
        return;
    }
    let server = slapd::Slapd::start(&slapd::seed(20));
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let directory = LdapDirectory::new(ldap_config(&server, slapd::SERVICE_DN, 7));
    let dev_dn = format!("uid=dev,ou=people,{}", slapd::BASE);
    sync_and_grant(
        &store,
        &directory,
        &ldap_people(),
        Feed::Incremental,
        async |title| ldap_replace(&server, &dev_dn, "title", title).await,
    )
    .await;
}

/// The members of LDAP group `cn`, as the directory reads them.
async fn ldap_members(directory: &LdapDirectory, cn: &str) -> Vec<PersonId> {
    let mut resume = None;
    loop {
        let page = directory.read_page(resume.as_deref()).await.expect("page");
        if let Some(group) = page.groups.into_iter().find(|g| g.name == cn) {
            return group.members;
        }
        match page.next {
            Some(next) => resume = Some(next),
            None => panic!("no group {cn}"),
        }
    }
}

/// A groupOfNames must keep a member, so OpenLDAP refuses to remove the last one (code 65):
/// the connector swaps in the configured placeholder (by default the empty DN) in the same
/// modify, and the placeholder is never read back as a person.
#[tokio::test]
async fn ldap_removes_the_last_member_of_a_group_of_names() {
    if !env::require(slapd::available(), "OpenLDAP slapd") {
        return;
    }
    let mut ldif = slapd::seed(0);
    for group in ["solo", "duo"] {
        ldif.push('\n');
        ldif.push_str(&slapd::group(group, &["dev"]));
    }
    let server = slapd::Slapd::start(&ldif);
    let dev = ldap_person("dev");
    let by_default = LdapDirectory::new(ldap_config(&server, slapd::SERVICE_DN, 100));
    let nobody = format!("cn=nobody,{}", slapd::BASE);
    let with_placeholder = LdapDirectory::new(LdapConfig {
        empty_group_member: nobody.clone(),
        ..ldap_config(&server, slapd::SERVICE_DN, 100)
    });
    for (directory, group) in [(&by_default, "solo"), (&with_placeholder, "duo")] {
        let removed = directory.set_member(group, &dev, false).await;
        assert_eq!(removed.expect("removed"), Change::Applied, "{group}");
        assert!(ldap_members(directory, group).await.is_empty());
        let again = directory.set_member(group, &dev, false).await;
        assert_eq!(again.expect("again"), Change::AlreadyInPlace, "{group}");
        let added = directory.set_member(group, &dev, true).await;
        assert_eq!(added.expect("added"), Change::Applied, "{group}");
        let members: Vec<String> = ldap_members(directory, group)
            .await
            .into_iter()
            .map(|p| normalize_dn(&p.0))
            .collect();
        assert_eq!(members, std::slice::from_ref(&dev.0), "{group}");
    }
    // The named placeholder is what the directory holds while the group is empty.
    with_placeholder
        .set_member("duo", &dev, false)
        .await
        .expect("removed");
    assert_eq!(server.members("duo").await, [nobody]);
}

#[tokio::test]
async fn ldap_refuses_a_group_the_bind_may_not_change() {
    if !env::require(slapd::available(), "OpenLDAP slapd") {
        return;
    }
    let server = slapd::Slapd::start(&slapd::seed(0));
    let reader = LdapDirectory::new(ldap_config(&server, slapd::READER_DN, 100));
    match reader
        .set_member("jira-admins", &ldap_person("dev"), true)
        .await
    {
        Err(IdpError::GroupNotWritable { group, reason }) => {
            assert_eq!(group, "jira-admins");
            assert!(reason.contains("50"), "{reason}");
        }
        other => panic!("expected GroupNotWritable, got {other:?}"),
    }
    let wrong = LdapDirectory::new(LdapConfig {
        bind_password: Secret::new("wrong"),
        ..ldap_config(&server, slapd::SERVICE_DN, 100)
    });
    match wrong.read_page(None).await {
        Err(IdpError::Config(message)) => assert!(message.contains("bind"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// Fails after `pages` pages, as a crash or an outage would.
struct Interrupted<'a> {
    inner: &'a LdapDirectory,
    pages: std::sync::atomic::AtomicUsize,
}

impl Directory for Interrupted<'_> {
    fn source(&self) -> String {
        self.inner.source()
    }
    async fn start_cursor(&self) -> Result<String, IdpError> {
        self.inner.start_cursor().await
    }
    async fn read_page(&self, resume: Option<&str>) -> Result<Page, IdpError> {
        if self.pages.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return Err(IdpError::Unavailable("connection reset".into()));
        }
        self.inner.read_page(resume).await
    }
    async fn changes_since(&self, cursor: &str) -> Result<Changes, IdpError> {
        self.inner.changes_since(cursor).await
    }
}

#[tokio::test]
async fn ldap_pages_through_ten_thousand_people_and_resumes_after_a_crash() {
    if !env::require(slapd::available(), "OpenLDAP slapd") {
        return;
    }
    let server = slapd::Slapd::start(&slapd::seed(10_000));
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let first = LdapDirectory::new(ldap_config(&server, slapd::SERVICE_DN, 500));
    let interrupted = Interrupted {
        inner: &first,
        pages: 4.into(),
    };
    match sync::sync(&store, &interrupted, &SystemClock, true, &Quiet).await {
        Err(SyncError::Idp(IdpError::Unavailable(_))) => {}
        other => panic!("expected the outage, got {other:?}"),
    }
    assert!(OrgCache::new().index().is_none());
    assert_eq!(
        tollgate::store::org::latest_version(&store)
            .await
            .expect("version"),
        None,
        "nothing half-synced"
    );

    // A new process (a new connection: the old paging cookie is gone) resumes the run.
    let second = LdapDirectory::new(ldap_config(&server, slapd::SERVICE_DN, 500));
    let report = sync::sync(&store, &second, &SystemClock, true, &Quiet)
        .await
        .expect("resumed sync");
    assert!(report.resumed, "{report:?}");
    assert_eq!(report.people, 10_003);
    assert_eq!(report.groups, 2);
    assert!(
        report.pages >= 21,
        "10,003 people in pages of 500, then groups: {report:?}"
    );
    let cache = OrgCache::new();
    cache.refresh(&store).await.expect("refresh");
    let org = cache.index().expect("index");
    assert_eq!(org.len(), 10_003);
    let p = org.by_id(&ldap_person("p009999")).expect("the last one");
    assert_eq!(org.manager_chain(p).count(), 3);

    // A bind whose size limit (500) does not allow more through paging gets a clear answer.
    let limited = LdapDirectory::new(ldap_config(&server, slapd::READER_DN, 500));
    let mut resume = None;
    let error = loop {
        match limited.read_page(resume.as_deref()).await {
            Ok(page) => resume = Some(page.next.expect("the limit stops it before the end")),
            Err(e) => break e,
        }
    };
    match error {
        IdpError::Config(message) => assert!(message.contains("size limit"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn scim_sync_and_grant() {
    if !env::require(
        scim_server::available(),
        "scim2-server (pip install scim2-server into .venv-scim)",
    ) {
        return;
    }
    let server = scim_server::ScimServer::start().await;
    let ceo = server.user("ceo", None, "CEO").await;
    let vp = server.user("vp", Some(&ceo), "VP Engineering").await;
    let dev = server.user("dev", Some(&vp), "Engineer").await;
    for i in 0..5 {
        server.user(&format!("p{i}"), Some(&dev), "Engineer").await;
    }
    server.group("jira-admins", &[&ceo]).await;
    server.group("netsuite-users", &[&ceo, &vp]).await;

    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let directory = ScimDirectory::new(ScimConfig {
        url: server.url.clone(),
        token: Secret::new(scim_server::TOKEN),
        // Several pages of users and of groups.
        page_size: 3,
    });
    let people = People {
        ceo: PersonId(ceo),
        vp: PersonId(vp),
        dev: PersonId(dev.clone()),
    };
    let server = Arc::new(server);
    let for_title = server.clone();
    sync_and_grant(
        &store,
        &directory,
        &people,
        Feed::Incremental,
        async move |title| {
            for_title
                .patch(
                    &format!("/Users/{dev}"),
                    serde_json::json!([{"op": "replace", "path": "title", "value": title}]),
                )
                .await
        },
    )
    .await;

    let refused = ScimDirectory::new(ScimConfig {
        url: server.url.clone(),
        token: Secret::new("wrong-token"),
        page_size: 3,
    });
    match refused.read_page(None).await {
        Err(IdpError::Config(message)) => assert!(message.contains("token"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn serve_syncs_the_org_on_start_and_replicas_notice_new_snapshots() {
    // A web-only replica with no org chart yet…
    let replica = support::spawn_app_with(tollgate::app::Mode::WebOnly, &[]).await;
    assert!(replica.state.org.index().is_none());
    // …and a worker process on the same database: its first org sync runs at once.
    let store = support::store(&replica.db).await;
    let worker =
        tollgate::idp::Connector::new(&replica.state.config.idp.source, &replica.state.store);
    sync::sync(&store, &worker, &SystemClock, false, &Quiet)
        .await
        .expect("sync from org.yaml");
    let seen = support::eventually(std::time::Duration::from_secs(15), || async {
        replica.state.org.index().map(|index| index.len())
    })
    .await;
    assert_eq!(
        seen,
        Some(34),
        "the replica loaded the shipped org.yaml's 34 people"
    );

    // A full process schedules and runs the sync itself.
    let app = support::spawn_app().await;
    let synced = support::eventually(std::time::Duration::from_secs(15), || async {
        app.state.org.index().map(|index| index.len())
    })
    .await;
    assert_eq!(synced, Some(34));
}

#[tokio::test]
async fn a_changed_org_file_falls_back_to_a_full_read_and_an_empty_one_is_refused() {
    use tollgate::idp::file::FileDirectory;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("org.yaml");
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/org.yaml"))
            .expect("shipped org.yaml");
    std::fs::write(&path, &shipped).expect("write");
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let file = FileDirectory { path: path.clone() };

    let first = sync::sync(&store, &file, &SystemClock, false, &Quiet)
        .await
        .expect("first");
    assert_eq!((first.kind, first.people), (RunKind::Full, 34));
    let unchanged = sync::sync(&store, &file, &SystemClock, false, &Quiet)
        .await
        .expect("again");
    assert_eq!(
        (unchanged.kind, unchanged.version),
        (RunKind::Incremental, None)
    );

    let fewer: String = shipped.replace("title: Controller,", "title: Chief Controller,");
    std::fs::write(&path, fewer).expect("edit");
    let reloaded = sync::sync(&store, &file, &SystemClock, false, &Quiet)
        .await
        .expect("reload");
    assert!(reloaded.fell_back_to_full, "{reloaded:?}");
    assert!(reloaded.version > first.version);

    std::fs::write(&path, "people: []\n").expect("empty");
    match sync::sync(&store, &file, &SystemClock, true, &Quiet).await {
        Err(SyncError::Empty) => {}
        other => panic!("expected the empty org to be refused, got {other:?}"),
    }
    assert_eq!(
        tollgate::store::org::latest_version(&store)
            .await
            .expect("version"),
        reloaded.version,
        "the previous org chart stays current"
    );
    let connector = tollgate::idp::Connector::File(file.clone());
    let refused = connector
        .set_member("finance", &PersonId("x".into()), true)
        .await;
    assert!(refused.is_err_and(|e| matches!(e, IdpError::ReadOnly(_))));
}

#[test]
fn org_sync_from_the_command_line() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let run = |args: &[&str]| {
        support::binary()
            .args(args)
            .env("DATABASE_URL", &url)
            .env("TOLLGATE_WORKFLOWS_DIR", "workflows")
            .output()
            .expect("runs")
    };
    let out = run(&["org", "sync"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("full sync: 34 people, "), "{stdout}");
    assert!(stdout.contains("snapshot 1 is now current"), "{stdout}");
    let out = run(&["org", "sync"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("incremental sync: 0 people"));
    let out = run(&["org", "sync", "--full"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("snapshot 2 is now current"));

    // What was synced can be seen, in org.yaml's shape or as JSON.
    let shown = run(&["org", "show"]);
    assert!(shown.status.success());
    let yaml = String::from_utf8_lossy(&shown.stdout);
    assert!(yaml.starts_with("# snapshot 2 from file:"), "{yaml}");
    assert!(yaml.contains("email: erin.evans@acme.example"), "{yaml}");
    assert!(yaml.contains("manager: dan.diaz@acme.example"), "{yaml}");
    let shown = run(&["org", "show", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(json["people"].as_array().map(Vec::len), Some(34));
    // `workflows simulate` routes with the synced chart, and says so.
    let simulated = run(&[
        "workflows",
        "simulate",
        "--requester",
        "erin.evans@acme.example",
        "--resource",
        "netsuite",
    ]);
    let told = String::from_utf8_lossy(&simulated.stderr);
    assert!(simulated.status.success(), "{told}");
    assert!(
        told.contains("org chart: the synced one (snapshot 2 from file:"),
        "{told}"
    );
    // Without a database, it is the file beside the workflows.
    let empty = tempfile::tempdir().expect("dir");
    let fresh = format!("sqlite://{}", empty.path().join("none.db").display());
    let simulated = support::binary()
        .args([
            "workflows",
            "simulate",
            "--requester",
            "erin.evans@acme.example",
            "--resource",
            "netsuite",
        ])
        .env("DATABASE_URL", &fresh)
        .env("TOLLGATE_WORKFLOWS_DIR", "workflows")
        .output()
        .expect("runs");
    let told = String::from_utf8_lossy(&simulated.stderr);
    assert!(told.contains("org chart: workflows/org.yaml"), "{told}");
    assert!(
        !empty.path().join("none.db").exists(),
        "no database was created"
    );
    let none = support::binary()
        .args(["org", "show"])
        .env("DATABASE_URL", &fresh)
        .output()
        .expect("runs");
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no org chart has been synced"));

    let bad = support::binary()
        .args(["org", "sync"])
        .env("DATABASE_URL", &url)
        .env("TOLLGATE_IDP_KIND", "ldap")
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("TOLLGATE_IDP_LDAP_URL"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// A source that lists the same person on two pages, as one that pages while it changes can.
struct Repeating;

fn repeated(title: &str) -> tollgate::orgchart::Person {
    tollgate::orgchart::Person {
        id: PersonId("p-1".into()),
        email: tollgate::orgchart::Email::parse("p1@acme.test").expect("email"),
        display_name: "P One".into(),
        title: Some(title.into()),
        department: None,
        cost_center: None,
        manager: None,
        active: true,
        employment_type: tollgate::orgchart::EmploymentType::FullTime,
        atlassian_account_id: None,
        attributes: Default::default(),
    }
}

impl Directory for Repeating {
    fn source(&self) -> String {
        "repeating".into()
    }
    async fn start_cursor(&self) -> Result<String, IdpError> {
        Ok("c".into())
    }
    async fn read_page(&self, resume: Option<&str>) -> Result<Page, IdpError> {
        Ok(match resume {
            None => Page {
                people: vec![repeated("Engineer")],
                next: Some("2".into()),
                ..Page::default()
            },
            Some(_) => Page {
                people: vec![repeated("Staff Engineer")],
                next: None,
                ..Page::default()
            },
        })
    }
    async fn changes_since(&self, _: &str) -> Result<Changes, IdpError> {
        Err(IdpError::CursorExpired("full reads only".into()))
    }
}

#[tokio::test]
async fn a_person_listed_on_two_pages_is_staged_once_as_last_seen() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let report = sync::sync(&store, &Repeating, &SystemClock, true, &Quiet)
        .await
        .expect("the duplicate does not fail the batch");
    assert_eq!(report.people, 1);
    let cache = OrgCache::new();
    cache.refresh(&store).await.expect("refresh");
    let org = cache.index().expect("index");
    let person = org.by_id(&PersonId("p-1".into())).expect("synced");
    assert_eq!(org.person(person).title.as_deref(), Some("Staff Engineer"));
}

/// The real scim2-server behind a proxy that breaks the second page of people (cut off, HTML,
/// the wrong shape): the read fails naming the page, the stored chart stays, nobody leaves.
#[tokio::test]
async fn scim_a_broken_page_fails_the_read() {
    use tollgate_fakes::harness::Broken;

    use crate::support::breaking_proxy::BreakingProxy;
    if !env::require(
        scim_server::available(),
        "scim2-server (pip install scim2-server into .venv-scim)",
    ) {
        return;
    }
    let server = scim_server::ScimServer::start().await;
    let ceo = server.user("ceo", None, "CEO").await;
    for i in 0..7 {
        server.user(&format!("p{i}"), Some(&ceo), "Engineer").await;
    }
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let direct = ScimDirectory::new(ScimConfig {
        url: server.url.clone(),
        token: Secret::new(scim_server::TOKEN),
        page_size: 3,
    });
    let first = sync::sync(&store, &direct, &SystemClock, true, &Quiet)
        .await
        .expect("a clean read");
    assert_eq!(first.people, 8);
    // An early end of the list is read once more before the read fails: it is broken twice.
    for (broken, times) in [
        (Broken::Truncated, 1),
        (Broken::Html, 1),
        (
            Broken::Shape(
                serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 8, "Resources": {"id": "x"}}),
            ),
            1,
        ),
        // A page that is empty though the list says there are more: the end of the list, as
        // the old reading had it.
        (
            Broken::Shape(
                serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 8, "startIndex": 4, "itemsPerPage": 0, "Resources": []}),
            ),
            2,
        ),
    ] {
        let proxy =
            BreakingProxy::start(&server.url, "/Users", "startIndex=4", broken.clone(), times)
                .await;
        let directory = ScimDirectory::new(ScimConfig {
            url: proxy.url.clone(),
            token: Secret::new(scim_server::TOKEN),
            page_size: 3,
        });
        let before = tollgate::store::org::latest_version(&store)
            .await
            .expect("version");
        match sync::sync(&store, &directory, &SystemClock, true, &Quiet).await {
            Err(SyncError::Idp(IdpError::Unreadable(why))) => {
                assert!(why.contains("startIndex=4"), "{broken:?}: {why}")
            }
            other => panic!("{broken:?}: expected the read to fail, got {other:?}"),
        }
        assert_eq!(
            tollgate::store::org::latest_version(&store)
                .await
                .expect("version"),
            before,
            "{broken:?}: the stored org chart is kept"
        );
        // Through the same proxy, now passing everything: the run resumes and reads everyone.
        let resumed = sync::sync(&store, &directory, &SystemClock, true, &Quiet)
            .await
            .expect("the next run");
        assert_eq!(
            tollgate::store::org::latest(&store)
                .await
                .expect("read")
                .expect("a snapshot")
                .1
                .people
                .len(),
            8,
            "{broken:?}: {resumed:?}"
        );
    }
    // Once only: the second reading of the page is whole, and so is the read.
    let early_end = Broken::Shape(
        serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 8, "Resources": []}),
    );
    let proxy = BreakingProxy::start(&server.url, "/Users", "startIndex=4", early_end, 1).await;
    let directory = ScimDirectory::new(ScimConfig {
        url: proxy.url.clone(),
        token: Secret::new(scim_server::TOKEN),
        page_size: 3,
    });
    let once = sync::sync(&store, &directory, &SystemClock, true, &Quiet)
        .await
        .expect("read again, then whole");
    assert_eq!(once.people, 8);
}

/// A periodic sync that keeps failing raises one alert at the third failure in a row.
#[tokio::test]
async fn a_sync_failing_three_times_in_a_row_raises_one_alert() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("no-such-org.yaml").display().to_string();
    let app = support::spawn_app_with(
        tollgate::app::Mode::All,
        &[
            ("TOLLGATE_IDP_FILE", &missing),
            ("TOLLGATE_IDP_SYNC_INTERVAL", "1s"),
        ],
    )
    .await;
    let raised = support::eventually(std::time::Duration::from_secs(20), || async {
        let alerts = tollgate::alerts::raised(&app.state.store, "sync_failing")
            .await
            .expect("read");
        (!alerts.is_empty()).then_some(alerts)
    })
    .await
    .expect("an alert was raised");
    assert_eq!(raised[0]["details"]["failures"], 3, "{raised:?}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let alerts = tollgate::alerts::raised(&app.state.store, "sync_failing")
        .await
        .expect("read");
    assert_eq!(alerts.len(), 1, "once per streak: {alerts:?}");
    assert!(
        app.state
            .metrics
            .render()
            .contains(r#"tollgate_alerts_total{kind="sync_failing"} 1"#)
    );
}

/// A source whose incremental read is overtaken: while it reads, another sync of the same
/// source finishes and moves the cursor on.
struct Overtaken {
    store: Store,
}

impl Directory for Overtaken {
    fn source(&self) -> String {
        "overtaken".into()
    }
    async fn start_cursor(&self) -> Result<String, IdpError> {
        Ok("c1".into())
    }
    async fn read_page(&self, _: Option<&str>) -> Result<Page, IdpError> {
        Ok(Page {
            people: vec![repeated("Engineer")],
            ..Page::default()
        })
    }
    async fn changes_since(&self, _: &str) -> Result<Changes, IdpError> {
        let mut tx = self.store.begin().await.expect("tx");
        tollgate::store::org::set_cursor(&mut tx, "overtaken", "c9", chrono::Utc::now())
            .await
            .expect("the other sync's cursor");
        tx.commit().await.expect("committed");
        Ok(Changes {
            deltas: vec![tollgate::idp::Delta::Person(repeated("Staff Engineer"))],
            cursor: "c2".into(),
        })
    }
}

#[tokio::test]
async fn an_incremental_sync_overtaken_by_another_drops_what_it_read() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let directory = Overtaken {
        store: store.clone(),
    };
    sync::sync(&store, &directory, &SystemClock, true, &Quiet)
        .await
        .expect("the full read");
    let raced = sync::sync(&store, &directory, &SystemClock, false, &Quiet).await;
    assert!(
        matches!(raced, Err(SyncError::Raced)),
        "{raced:?}: an older read must not be written over a newer one"
    );
    assert!(raced.as_ref().is_err_and(SyncError::is_retryable));
    let (_, chart) = tollgate::store::org::latest(&store)
        .await
        .expect("read")
        .expect("a chart");
    assert_eq!(chart.people[0].title.as_deref(), Some("Engineer"));
    assert_eq!(
        tollgate::store::org::cursor(&store, "overtaken")
            .await
            .expect("read")
            .as_deref(),
        Some("c9"),
        "the other sync's cursor stands"
    );
}
