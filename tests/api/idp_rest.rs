//! The REST identity providers (Okta, Microsoft Graph, Google Workspace) against their
//! stateful fakes: the sync-and-grant suite every connector passes, then what is particular to
//! each vendor: groups it will not let us change, paging, throttling and resuming, its
//! credentials. Every call is checked against the vendor's published spec where one exists.

use std::sync::Arc;

use tollgate::change::Change;
use tollgate::clock::SystemClock;
use tollgate::config::Secret;
use tollgate::idp::google::{GoogleConfig, GoogleDirectory};
use tollgate::idp::graph::{GraphConfig, GraphDirectory};
use tollgate::idp::okta::{ManagerSource, OktaAuth, OktaConfig, OktaDirectory};
use tollgate::idp::{Directory, GroupWriter, IdpError};
use tollgate::orgchart::PersonId;
use tollgate::people::cache::OrgCache;
use tollgate::people::sync::{self, Quiet, SyncError};
use tollgate_fakes::google::{self, FakeGoogle};
use tollgate_fakes::graph::{self, FakeGraph};
use tollgate_fakes::harness::FakeServer;
use tollgate_fakes::okta::{self, FakeOkta};

use crate::idp::{Feed, People, sync_and_grant};
use crate::support::{self, TestDatabase};

pub(crate) const OKTA_TOKEN: &str = "00okta-api-token";

pub(crate) struct OktaOrg {
    pub(crate) server: Arc<FakeServer<FakeOkta>>,
    pub(crate) people: People,
}

/// A CEO, a VP under them, a developer under the VP and five more engineers; two Okta groups,
/// a group imported from AD and Okta's built-in one.
pub(crate) async fn okta_org() -> OktaOrg {
    support::init();
    let server = FakeServer::start(FakeOkta::new().api_token(OKTA_TOKEN))
        .await
        .expect("fake Okta");
    let people = {
        let mut okta = server.vendor();
        let ceo = okta.add_user("ceo@acme.test", "Cee Eo", None, "CEO");
        let vp = okta.add_user("vp@acme.test", "Vee Pee", Some(&ceo), "VP Engineering");
        let dev = okta.add_user("dev@acme.test", "Dee Veloper", Some(&vp), "Engineer");
        for i in 0..5 {
            okta.add_user(
                &format!("p{i}@acme.test"),
                &format!("P {i}"),
                Some(&dev),
                "Engineer",
            );
        }
        let admins = okta.add_group("jira-admins", "OKTA_GROUP", &[&ceo]);
        okta.add_group("netsuite-users", "OKTA_GROUP", &[&ceo, &vp]);
        okta.add_group("ad-engineering", "APP_GROUP", &[&dev]);
        okta.add_group("Everyone", "BUILT_IN", &[&ceo, &vp, &dev]);
        if let Some(group) = okta.groups.get_mut(&admins) {
            group.owners = vec![vp.clone()];
        }
        People {
            ceo: PersonId(ceo),
            vp: PersonId(vp),
            dev: PersonId(dev),
        }
    };
    OktaOrg {
        server: Arc::new(server),
        people,
    }
}

fn okta_config(url: &str, page_size: u32) -> OktaConfig {
    OktaConfig {
        url: url.to_string(),
        auth: OktaAuth::ApiToken(Secret::new(OKTA_TOKEN)),
        manager: ManagerSource::ManagerId,
        page_size,
        concurrency: 8,
        hook_secret: None,
    }
}

#[tokio::test]
async fn okta_sync_and_grant() {
    let org = okta_org().await;
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    // Several pages of users (and of members).
    let directory = OktaDirectory::new(okta_config(&org.server.url(), 3));
    let server = org.server.clone();
    let dev = org.people.dev.0.clone();
    sync_and_grant(
        &store,
        &directory,
        &org.people,
        Feed::Incremental,
        async move |title| {
            server
                .vendor()
                .update_user(&dev, |u| u.title = Some(title.to_string()));
        },
    )
    .await;

    let cache = OrgCache::new();
    cache.refresh(&store).await.expect("refresh");
    let index = cache.index().expect("index");
    let owners: Vec<&PersonId> = index
        .group_owners("jira-admins")
        .expect("synced")
        .iter()
        .map(|p| &index.person(*p).id)
        .collect();
    assert_eq!(owners, vec![&org.people.vp], "owners come from /owners");
    let recorded = org.server.recorded();
    assert!(
        recorded
            .iter()
            .filter(|r| r.path == "/api/v1/users")
            .any(|r| r.query.as_deref().is_some_and(|q| q.contains("after="))),
        "the users were paged by their Link headers"
    );
    assert!(
        recorded.iter().any(|r| r.path == "/api/v1/users"
            && r.query
                .as_deref()
                .is_some_and(|q| q.contains("filter=lastUpdated"))),
        "the incremental sync asked by lastUpdated"
    );
    // Every call above was checked against Okta's spec, as the contract data keeps it.
    assert_eq!(
        org.server.checked_calls(),
        recorded
            .iter()
            .filter(|r| r.path.starts_with("/api/v1/"))
            .count()
    );
}

#[tokio::test]
async fn okta_refuses_groups_it_will_not_let_us_change() {
    let org = okta_org().await;
    let directory = OktaDirectory::new(okta_config(&org.server.url(), 200));
    for (group, says) in [("ad-engineering", "APP_GROUP"), ("Everyone", "BUILT_IN")] {
        match directory.set_member(group, &org.people.vp, true).await {
            Err(IdpError::GroupNotWritable {
                group: named,
                reason,
            }) => {
                assert_eq!(named, group);
                assert!(reason.contains(says), "{reason}");
            }
            other => panic!("expected a group we may not change, got {other:?}"),
        }
    }
    assert!(
        !org.server
            .recorded()
            .iter()
            .any(|r| r.method == "PUT" || r.method == "DELETE"),
        "no change was attempted"
    );
    // A removal of someone who is not a member is in place already; an unknown person is not
    // found, by name.
    assert_eq!(
        directory
            .set_member("jira-admins", &org.people.dev, false)
            .await,
        Ok(Change::AlreadyInPlace)
    );
    match directory
        .set_member("jira-admins", &PersonId("00unobody".into()), true)
        .await
    {
        Err(IdpError::NotFound(what)) => assert!(what.contains("00unobody"), "{what}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // A wrong token is a configuration error, not an outage.
    let wrong = OktaDirectory::new(OktaConfig {
        auth: OktaAuth::ApiToken(Secret::new("wrong")),
        ..okta_config(&org.server.url(), 200)
    });
    match wrong.read_page(None).await {
        Err(IdpError::Config(message)) => assert!(message.contains("E0000011"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn okta_waits_out_a_429_until_its_reset_and_a_storm_resumes_later() {
    let org = okta_org().await;
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let directory = OktaDirectory::new(okta_config(&org.server.url(), 3));

    // Two 429s announcing a reset two seconds away: nothing is sent to that family before it.
    let fault = okta::rate_limited("/api/v1/users", 2, 2);
    let reset: i64 = fault
        .response
        .headers
        .iter()
        .find(|(name, _)| name == "X-Rate-Limit-Reset")
        .and_then(|(_, value)| value.parse().ok())
        .expect("a reset");
    org.server.inject(fault);
    let page = directory
        .read_page(None)
        .await
        .expect("read after the reset");
    assert_eq!(page.people.len(), 3);
    let recorded = org.server.recorded();
    assert_eq!(recorded.iter().filter(|r| r.status == 429).count(), 2);
    for call in recorded.iter().skip(1) {
        assert!(
            call.at.timestamp() >= reset,
            "a call at {} came before the announced reset {reset}",
            call.at
        );
    }
    assert_eq!(recorded.last().map(|r| r.status), Some(200));

    // A 429 whose reset is further away than the client will wait: the sync stops, keeping
    // its pages, and the next run resumes where it stopped.
    org.server.clear_recorded();
    org.server
        .inject(okta::rate_limited("/api/v1/groups", 1, 70));
    match sync::sync(&store, &directory, &SystemClock, true, &Quiet).await {
        Err(SyncError::Idp(IdpError::Throttled { retry_after })) => {
            assert!(
                retry_after.is_some_and(|w| w.as_secs() > 60),
                "{retry_after:?}"
            )
        }
        other => panic!("expected to be throttled, got {other:?}"),
    }
    let user_pages = |server: &FakeServer<FakeOkta>| {
        server
            .recorded()
            .iter()
            .filter(|r| r.path == "/api/v1/users" && r.status == 200)
            .count()
    };
    assert_eq!(user_pages(&org.server), 3, "8 people in pages of 3");
    org.server.clear_recorded();
    // The next run (here a new process: this one would rightly wait for Okta's reset).
    let directory = OktaDirectory::new(okta_config(&org.server.url(), 3));
    let report = sync::sync(&store, &directory, &SystemClock, true, &Quiet)
        .await
        .expect("resumed");
    assert!(report.resumed, "{report:?}");
    assert_eq!(report.people, 8);
    assert_eq!(user_pages(&org.server), 0, "the people were not read again");
}

#[tokio::test]
async fn okta_managers_from_linked_objects_and_a_service_app_token() {
    let org = okta_org().await;
    let (private, public) = tollgate_fakes::atlassian::connect::TEST_KEY_1;
    {
        let mut okta = org.server.vendor();
        // The linked object says the developer reports to the CEO, whatever managerId says.
        okta.linked.insert(
            (org.people.dev.0.clone(), "manager".into()),
            org.people.ceo.0.clone(),
        );
        *okta = std::mem::take(&mut *okta).service_app("0oa-tollgate", public);
    }
    let directory = OktaDirectory::new(OktaConfig {
        auth: OktaAuth::ServiceApp {
            client_id: "0oa-tollgate".into(),
            key_pem: Secret::new(private),
            key_id: None,
            token_url: None,
        },
        manager: ManagerSource::Linked("manager".into()),
        ..okta_config(&org.server.url(), 200)
    });
    let page = directory.read_page(None).await.expect("users");
    let dev = page
        .people
        .iter()
        .find(|p| p.id == org.people.dev)
        .expect("dev");
    assert_eq!(dev.manager.as_ref(), Some(&org.people.ceo));
    let vp = page
        .people
        .iter()
        .find(|p| p.id == org.people.vp)
        .expect("vp");
    assert_eq!(vp.manager, None, "no linked manager: none");
    let tokens = org
        .server
        .recorded()
        .iter()
        .filter(|r| r.path == "/oauth2/v1/token")
        .count();
    assert_eq!(tokens, 1, "one token for every call");

    // Another key: the token endpoint refuses it, and that is a configuration error.
    let (other_private, _) = tollgate_fakes::atlassian::connect::TEST_KEY_2;
    let forged = OktaDirectory::new(OktaConfig {
        auth: OktaAuth::ServiceApp {
            client_id: "0oa-tollgate".into(),
            key_pem: Secret::new(other_private),
            key_id: None,
            token_url: None,
        },
        ..okta_config(&org.server.url(), 200)
    });
    match forged.read_page(None).await {
        Err(IdpError::Config(message)) => assert!(message.contains("invalid_client"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn okta_deprovisioned_people_leave_the_full_read_and_turn_inactive_in_the_incremental() {
    let org = okta_org().await;
    let directory = OktaDirectory::new(okta_config(&org.server.url(), 200));
    let cursor = directory.start_cursor().await.expect("cursor");
    org.server
        .vendor()
        .update_user(&org.people.dev.0, |u| u.status = "DEPROVISIONED".into());
    let page = directory.read_page(None).await.expect("users");
    assert!(!page.people.iter().any(|p| p.id == org.people.dev));
    let changes = directory.changes_since(&cursor).await.expect("changes");
    let dev = changes
        .deltas
        .iter()
        .find_map(|d| match d {
            tollgate::idp::Delta::Person(p) if p.id == org.people.dev => Some(p),
            _ => None,
        })
        .expect("the change is seen");
    assert!(!dev.active);
    match directory.changes_since("yesterday").await {
        Err(IdpError::CursorExpired(_)) => {}
        other => panic!("a cursor that is not a time means a full read, got {other:?}"),
    }
}

pub(crate) const TENANT: &str = "11111111-2222-3333-4444-555555555555";

pub(crate) struct GraphOrg {
    pub(crate) server: Arc<FakeServer<FakeGraph>>,
    pub(crate) people: People,
}

pub(crate) async fn graph_org() -> GraphOrg {
    support::init();
    let server = FakeServer::start(FakeGraph::new(TENANT).client("tollgate-app", "s3cret"))
        .await
        .expect("fake Graph");
    let people = {
        let mut graph = server.vendor();
        let ceo = graph.add_user("ceo@acme.test", "Cee Eo", None, "CEO");
        let vp = graph.add_user("vp@acme.test", "Vee Pee", Some(&ceo), "VP Engineering");
        let dev = graph.add_user("dev@acme.test", "Dee Veloper", Some(&vp), "Engineer");
        for i in 0..5 {
            graph.add_user(
                &format!("p{i}@acme.test"),
                &format!("P {i}"),
                Some(&dev),
                "Engineer",
            );
        }
        let admins = graph.add_group("jira-admins", &[&ceo]);
        graph.add_group("netsuite-users", &[&ceo, &vp]);
        let synced = graph.add_group("ad-engineering", &[&dev]);
        if let Some(group) = graph.groups.get_mut(&synced) {
            group.on_premises_sync = true;
        }
        if let Some(group) = graph.groups.get_mut(&admins) {
            group.owners = vec![vp.clone()];
        }
        People {
            ceo: PersonId(ceo),
            vp: PersonId(vp),
            dev: PersonId(dev),
        }
    };
    GraphOrg {
        server: Arc::new(server),
        people,
    }
}

fn graph_config(url: &str, page_size: u32) -> GraphConfig {
    GraphConfig {
        tenant: TENANT.into(),
        client_id: "tollgate-app".into(),
        client_secret: Secret::new("s3cret"),
        graph_url: format!("{url}/v1.0"),
        token_url: Some(format!("{url}/{TENANT}/oauth2/v2.0/token")),
        page_size,
        concurrency: 8,
        budget: None,
        client_state: None,
    }
}

#[tokio::test]
async fn graph_sync_and_grant() {
    let org = graph_org().await;
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let directory = GraphDirectory::new(graph_config(&org.server.url(), 3));
    let server = org.server.clone();
    let dev = org.people.dev.0.clone();
    sync_and_grant(
        &store,
        &directory,
        &org.people,
        Feed::Incremental,
        async move |title| {
            server
                .vendor()
                .update_user(&dev, |u| u.job_title = Some(title.to_string()));
        },
    )
    .await;
    let cache = OrgCache::new();
    cache.refresh(&store).await.expect("refresh");
    let index = cache.index().expect("index");
    let owners: Vec<&PersonId> = index
        .group_owners("jira-admins")
        .expect("synced")
        .iter()
        .map(|p| &index.person(*p).id)
        .collect();
    assert_eq!(owners, vec![&org.people.vp]);
    let recorded = org.server.recorded();
    assert!(
        recorded.iter().any(|r| r.path == "/v1.0/users"
            && r.query.as_deref().is_some_and(|q| q.contains("skiptoken"))),
        "users were paged by @odata.nextLink"
    );
    assert!(
        recorded.iter().any(|r| r.path == "/v1.0/users/delta"
            && r.query
                .as_deref()
                .is_some_and(|q| q.contains("deltatoken=") && !q.contains("latest"))),
        "the incremental sync followed the stored delta link"
    );
    let tokens = recorded
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .count();
    assert_eq!(tokens, 1, "one client-credentials token, reused");
}

#[tokio::test]
async fn graph_deletions_expired_delta_links_and_synced_groups() {
    let org = graph_org().await;
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let directory = GraphDirectory::new(graph_config(&org.server.url(), 100));
    sync::sync(&store, &directory, &SystemClock, false, &Quiet)
        .await
        .expect("full");

    // A deleted person leaves through the delta (`@removed`), without a full read.
    org.server.vendor().delete_user(&org.people.dev.0);
    let report = sync::sync(&store, &directory, &SystemClock, false, &Quiet)
        .await
        .expect("incremental");
    assert_eq!(report.kind, tollgate::store::org::RunKind::Incremental);
    let cache = OrgCache::new();
    cache.refresh(&store).await.expect("refresh");
    assert!(
        cache
            .index()
            .expect("index")
            .by_id(&org.people.dev)
            .is_none()
    );

    // Delta links expire (7 days): the next sync reads everything instead.
    org.server.vendor().expire_delta_links();
    let report = sync::sync(&store, &directory, &SystemClock, false, &Quiet)
        .await
        .expect("falls back");
    assert!(report.fell_back_to_full, "{report:?}");
    assert_eq!(report.people, 7);

    // A group synced from on-premises AD is named and left alone.
    match directory
        .set_member("ad-engineering", &org.people.vp, true)
        .await
    {
        Err(IdpError::GroupNotWritable { group, reason }) => {
            assert_eq!(group, "ad-engineering");
            assert!(reason.contains("on-premises"), "{reason}");
        }
        other => panic!("expected a group we may not change, got {other:?}"),
    }
    assert!(
        !org.server
            .recorded()
            .iter()
            .any(|r| r.method == "POST" && r.path.contains("$ref"))
    );
    assert_eq!(
        directory
            .set_member("jira-admins", &org.people.vp, false)
            .await,
        Ok(Change::AlreadyInPlace),
        "removing a non-member (404) is in place"
    );

    // A wrong secret is a configuration error.
    let wrong = GraphDirectory::new(GraphConfig {
        client_secret: Secret::new("nope"),
        ..graph_config(&org.server.url(), 100)
    });
    match wrong.read_page(None).await {
        Err(IdpError::Config(message)) => assert!(message.contains("invalid_client"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn graph_honours_retry_after() {
    let org = graph_org().await;
    let directory = GraphDirectory::new(graph_config(&org.server.url(), 100));
    org.server.inject(graph::throttled("/v1.0/users", 1, 2));
    let started = std::time::Instant::now();
    let page = directory.read_page(None).await.expect("after the wait");
    assert_eq!(page.people.len(), 8);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let calls: Vec<_> = org
        .server
        .recorded()
        .into_iter()
        .filter(|r| r.path == "/v1.0/users")
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, 429);
    assert!(calls[1].at - calls[0].at >= chrono::TimeDelta::seconds(2));
}

const SERVICE_ACCOUNT: &str = "tollgate@acme-idp.iam.gserviceaccount.com";
const GOOGLE_ADMIN: &str = "admin@acme.test";

struct GoogleOrg {
    server: Arc<FakeServer<FakeGoogle>>,
    people: People,
}

async fn google_org() -> GoogleOrg {
    support::init();
    let (_, public) = tollgate_fakes::atlassian::connect::TEST_KEY_1;
    let server = FakeServer::start(FakeGoogle::new().service_account(
        SERVICE_ACCOUNT,
        public,
        &[GOOGLE_ADMIN],
    ))
    .await
    .expect("fake Google");
    let people = {
        let mut google = server.vendor();
        let ceo = google.add_user("ceo@acme.test", "Cee Eo", None, "CEO");
        let vp = google.add_user(
            "vp@acme.test",
            "Vee Pee",
            Some("ceo@acme.test"),
            "VP Engineering",
        );
        let dev = google.add_user(
            "dev@acme.test",
            "Dee Veloper",
            Some("vp@acme.test"),
            "Engineer",
        );
        for i in 0..5 {
            google.add_user(
                &format!("p{i}@acme.test"),
                &format!("P {i}"),
                Some("dev@acme.test"),
                "Engineer",
            );
        }
        // The first member of each is its owner.
        google.add_group("jira-admins", &[&vp, &ceo]);
        google.add_group("netsuite-users", &[&ceo, &vp]);
        let dynamic = google.add_group("all-engineers", &[&dev]);
        if let Some(group) = google.groups.get_mut(&dynamic) {
            group.dynamic = true;
        }
        People {
            ceo: PersonId(ceo),
            vp: PersonId(vp),
            dev: PersonId(dev),
        }
    };
    GoogleOrg {
        server: Arc::new(server),
        people,
    }
}

fn google_config(url: &str, page_size: u32) -> GoogleConfig {
    let (private, _) = tollgate_fakes::atlassian::connect::TEST_KEY_1;
    GoogleConfig {
        customer: "my_customer".into(),
        admin: GOOGLE_ADMIN.into(),
        client_email: SERVICE_ACCOUNT.into(),
        private_key: Secret::new(private),
        key_id: Some("k1".into()),
        token_url: format!("{url}/token"),
        api_url: url.to_string(),
        page_size,
        concurrency: 8,
        budget: None,
    }
}

#[tokio::test]
async fn google_sync_and_grant() {
    let org = google_org().await;
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let directory = GoogleDirectory::new(google_config(&org.server.url(), 3));
    let server = org.server.clone();
    let dev = org.people.dev.0.clone();
    sync_and_grant(
        &store,
        &directory,
        &org.people,
        Feed::FullReadsOnly,
        async move |title| {
            if let Some(user) = server.vendor().users.get_mut(&dev) {
                user.title = Some(title.to_string());
            }
        },
    )
    .await;
    let cache = OrgCache::new();
    cache.refresh(&store).await.expect("refresh");
    let index = cache.index().expect("index");
    let owners: Vec<&PersonId> = index
        .group_owners("jira-admins")
        .expect("synced")
        .iter()
        .map(|p| &index.person(*p).id)
        .collect();
    assert_eq!(owners, vec![&org.people.vp], "owners are OWNER members");
    let recorded = org.server.recorded();
    assert!(
        recorded
            .iter()
            .any(|r| r.path == "/admin/directory/v1/users"
                && r.query.as_deref().is_some_and(|q| q.contains("pageToken="))),
        "users were paged by nextPageToken"
    );
    // Managers named by email were resolved to ids without a lookup each: they were on the
    // same page, or looked up once and remembered.
    let lookups = recorded
        .iter()
        .filter(|r| r.path.starts_with("/admin/directory/v1/users/"))
        .count();
    assert!(lookups <= 2, "{lookups} manager lookups");
    // Every call above was checked against the discovery document, as the contract data
    // keeps it.
    assert_eq!(
        org.server.checked_calls(),
        recorded
            .iter()
            .filter(|r| r.path.starts_with("/admin/directory/v1/"))
            .count()
    );
}

#[tokio::test]
async fn google_refuses_dynamic_groups_backs_off_and_checks_its_credential() {
    let org = google_org().await;
    let directory = GoogleDirectory::new(google_config(&org.server.url(), 500));
    match directory
        .set_member("all-engineers", &org.people.vp, true)
        .await
    {
        Err(IdpError::GroupNotWritable { group, reason }) => {
            assert_eq!(group, "all-engineers");
            assert!(reason.contains("dynamic"), "{reason}");
        }
        other => panic!("expected a group we may not change, got {other:?}"),
    }
    // By email too, and removing a non-member is in place.
    assert_eq!(
        directory
            .set_member("jira-admins@acme.test", &org.people.dev, false)
            .await,
        Ok(Change::AlreadyInPlace)
    );
    match directory
        .set_member("no-such@acme.test", &org.people.dev, true)
        .await
    {
        Err(IdpError::NotFound(what)) => assert!(what.contains("no-such@acme.test"), "{what}"),
        other => panic!("expected NotFound, got {other:?}"),
    }

    // Google's rate limit answer says nothing of when: the client backs off and tries again.
    org.server.clear_recorded();
    org.server
        .inject(google::rate_limited("/admin/directory/v1/users", 2));
    let page = directory.read_page(None).await.expect("after backing off");
    assert_eq!(page.people.len(), 8);
    let calls: Vec<_> = org
        .server
        .recorded()
        .into_iter()
        .filter(|r| r.path == "/admin/directory/v1/users")
        .collect();
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![403, 403, 200]
    );
    assert!(
        calls[2].at - calls[1].at
            > calls[1].at - calls[0].at - chrono::TimeDelta::milliseconds(200),
        "the back-off grows"
    );

    // A service account the admin has not delegated to, or a forged key: a configuration error.
    let (other, _) = tollgate_fakes::atlassian::connect::TEST_KEY_2;
    for config in [
        GoogleConfig {
            admin: "someone@acme.test".into(),
            ..google_config(&org.server.url(), 500)
        },
        GoogleConfig {
            private_key: Secret::new(other),
            ..google_config(&org.server.url(), 500)
        },
    ] {
        match GoogleDirectory::new(config).read_page(None).await {
            Err(IdpError::Config(message)) => {
                assert!(message.contains("token endpoint"), "{message}")
            }
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_cli_syncs_from_entra_with_the_secret_in_a_file() {
    let org = graph_org().await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("entra-secret");
    std::fs::write(&secret, "s3cret\n").expect("write");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let run = async |secret_file: &std::path::Path| {
        let mut command = support::binary();
        command
            .args(["org", "sync"])
            .env("DATABASE_URL", &url)
            .env("TOLLGATE_WORKFLOWS_DIR", "workflows")
            .env("TOLLGATE_IDP_KIND", "entra")
            .env("TOLLGATE_IDP_ENTRA_TENANT", TENANT)
            .env("TOLLGATE_IDP_ENTRA_CLIENT_ID", "tollgate-app")
            .env("TOLLGATE_IDP_ENTRA_CLIENT_SECRET_FILE", secret_file)
            .env(
                "TOLLGATE_IDP_ENTRA_GRAPH_URL",
                format!("{}/v1.0", org.server.url()),
            )
            .env(
                "TOLLGATE_IDP_ENTRA_TOKEN_URL",
                format!("{}/{TENANT}/oauth2/v2.0/token", org.server.url()),
            );
        // Off the runtime's threads, so the fake in this process keeps answering.
        tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("joined")
            .expect("runs")
    };
    let out = run(&secret).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("full sync: 8 people, 3 groups"),
        "{stdout}"
    );

    // A wrong secret: a clear error that does not print it.
    std::fs::write(&secret, "not-the-secret").expect("write");
    let out = run(&secret).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid_client"), "{stderr}");
    assert!(!stderr.contains("not-the-secret"), "{stderr}");
}

#[tokio::test]
async fn graph_pages_with_an_expanded_manager_hold_at_most_100_and_the_rest_follows() {
    let org = graph_org().await;
    {
        let mut graph = org.server.vendor();
        for i in 0..150 {
            graph.add_user(
                &format!("extra{i}@acme.test"),
                &format!("Extra {i}"),
                Some(&org.people.dev.0),
                "Engineer",
            );
        }
    }
    let directory = GraphDirectory::new(graph_config(&org.server.url(), 999));
    let first = directory.read_page(None).await.expect("first page");
    assert_eq!(first.people.len(), 100, "Graph's cap, whatever $top asked");
    let second = directory
        .read_page(first.next.as_deref())
        .await
        .expect("second page");
    assert_eq!(second.people.len(), 58);
    assert!(
        second
            .next
            .as_deref()
            .is_some_and(|n| n.starts_with("groups ")),
        "then the groups"
    );
}

/// A full sync whose second page of people comes back broken (cut off, HTML, or valid JSON of
/// the wrong shape) fails naming the page; the stored org chart stays as it was (so nobody
/// becomes a leaver), and the next run resumes and reads everyone.
async fn a_broken_page_fails_the_read<V, D>(
    server: &FakeServer<V>,
    directory: &D,
    people_path: &str,
    later_page: &str,
    wrong_shape: serde_json::Value,
) where
    V: tollgate_fakes::harness::Vendor,
    D: Directory + Sync,
{
    use tollgate_fakes::harness::{Broken, Fault};
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let first = sync::sync(&store, directory, &SystemClock, true, &Quiet)
        .await
        .expect("a clean read");
    assert_eq!(first.people, 8);
    let mut current = first.version;
    for broken in [Broken::Truncated, Broken::Html, Broken::Shape(wrong_shape)] {
        server.inject(Fault::broken(people_path, broken.clone()).when_query_has(later_page));
        match sync::sync(&store, directory, &SystemClock, true, &Quiet).await {
            Err(SyncError::Idp(IdpError::Unreadable(why))) => {
                assert!(why.contains(later_page), "{broken:?}: {why}")
            }
            other => panic!("{broken:?}: expected the read to fail, got {other:?}"),
        }
        assert_eq!(
            tollgate::store::org::latest_version(&store)
                .await
                .expect("version"),
            current,
            "{broken:?}: the stored org chart is kept"
        );
        let resumed = sync::sync(&store, directory, &SystemClock, true, &Quiet)
            .await
            .expect("the next run");
        assert!(resumed.resumed, "{broken:?}: {resumed:?}");
        current = resumed.version;
        let latest = tollgate::store::org::latest(&store)
            .await
            .expect("read")
            .expect("a snapshot");
        assert_eq!(latest.1.people.len(), 8, "{broken:?}: everyone was read");
    }
}

#[tokio::test]
async fn okta_a_broken_page_fails_the_read() {
    let org = okta_org().await;
    let directory = OktaDirectory::new(okta_config(&org.server.url(), 3));
    a_broken_page_fails_the_read(
        &org.server,
        &directory,
        "/api/v1/users",
        "after=",
        serde_json::json!({"users": []}),
    )
    .await;
}

#[tokio::test]
async fn graph_a_broken_page_fails_the_read() {
    let org = graph_org().await;
    let directory = GraphDirectory::new(graph_config(&org.server.url(), 3));
    a_broken_page_fails_the_read(
        &org.server,
        &directory,
        "/v1.0/users",
        "skiptoken",
        serde_json::json!({"value": {"id": "x"}}),
    )
    .await;
}

#[tokio::test]
async fn google_a_broken_page_fails_the_read() {
    let org = google_org().await;
    let directory = GoogleDirectory::new(google_config(&org.server.url(), 3));
    a_broken_page_fails_the_read(
        &org.server,
        &directory,
        "/admin/directory/v1/users",
        "pageToken=",
        serde_json::json!({"error": "not a page"}),
    )
    .await;
}

/// With a budget of 5 calls per 2-second window in every family and 8 calls wanted at once,
/// the connector learns the budget from its first answer and never overruns it: no 429.
#[tokio::test]
async fn okta_pacing_stays_within_a_known_budget() {
    let org = okta_org().await;
    {
        let mut okta = org.server.vendor();
        // Enough groups that reading their members wants eight calls at once.
        for i in 0..8 {
            okta.add_group(&format!("team-{i}"), "OKTA_GROUP", &[&org.people.dev.0]);
        }
        okta.set_budget(5, 2);
    }
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let directory = OktaDirectory::new(okta_config(&org.server.url(), 200));
    let report = sync::sync(&store, &directory, &SystemClock, true, &Quiet)
        .await
        .expect("synced");
    assert_eq!(report.people, 8);
    let throttled = org.server.vendor().counters.clone();
    assert_eq!(throttled.throttled, 0, "{throttled:?}");
    let group_calls = org
        .server
        .recorded()
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/groups/"))
        .count();
    assert!(
        group_calls > 5,
        "more calls than one window's budget: {group_calls}"
    );
}

/// Graph announces no budget: with one configured (3 calls a second), no second holds more.
#[tokio::test]
async fn graph_keeps_to_a_configured_budget() {
    let org = graph_org().await;
    let budget = tollgate::idp::pacing::Budget::parse("3/1s").expect("budget");
    let directory = GraphDirectory::new(GraphConfig {
        budget: Some(budget),
        ..graph_config(&org.server.url(), 3)
    });
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let report = sync::sync(&store, &directory, &SystemClock, true, &Quiet)
        .await
        .expect("synced");
    assert_eq!(report.people, 8);
    let mut sent: Vec<_> = org
        .server
        .recorded()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1.0/"))
        .map(|r| r.at)
        .collect();
    sent.sort();
    assert!(sent.len() > 6, "{} calls", sent.len());
    for window in sent.windows(4) {
        // The 4th call after any call comes a window later (less what the wire may shift).
        let gap = window[3] - window[0];
        assert!(
            gap >= chrono::TimeDelta::milliseconds(900),
            "4 calls within {gap:?}"
        );
    }
}

/// `tollgate org sync` meeting a cut-off page: a non-zero exit, an error naming the page, and
/// the stored chart as it was.
#[tokio::test]
async fn the_cli_fails_a_broken_read_with_a_non_zero_exit() {
    use tollgate_fakes::harness::{Broken, Fault};
    let org = okta_org().await;
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let okta = org.server.url();
    let run = || {
        let url = url.clone();
        let okta = okta.clone();
        tokio::task::spawn_blocking(move || {
            support::binary()
                .args(["org", "sync", "--full"])
                .env("DATABASE_URL", &url)
                .env("TOLLGATE_IDP_KIND", "okta")
                .env("TOLLGATE_IDP_OKTA_URL", &okta)
                .env("TOLLGATE_IDP_OKTA_TOKEN", OKTA_TOKEN)
                .env("TOLLGATE_IDP_OKTA_PAGE_SIZE", "3")
                .output()
                .expect("runs")
        })
    };
    let clean = run().await.expect("ran");
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(String::from_utf8_lossy(&clean.stdout).contains("snapshot 1 is now current"));
    org.server
        .inject(Fault::broken("/api/v1/users", Broken::Truncated).when_query_has("after="));
    let broken = run().await.expect("ran");
    assert_eq!(broken.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains("could not be read")
            && stderr.contains("/api/v1/users?")
            && stderr.contains("after="),
        "{stderr}"
    );
    let store = tollgate::store::Store::connect(&tollgate::config::DatabaseConfig {
        url: tollgate::config::DatabaseUrl::parse(&url).expect("url"),
        max_connections: 1,
        connect_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .expect("store");
    assert_eq!(
        tollgate::store::org::latest_version(&store)
            .await
            .expect("version"),
        Some(1),
        "the stored chart is kept"
    );
}
