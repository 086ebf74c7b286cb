//! Every outbound operation against the Atlassian fake, with the credential it declares:
//! pagination across pages, throttling waited out, idempotent membership changes, vendor
//! messages kept, and Connect tokens that Atlassian's own atlassian-jwt accepts. Each call is
//! checked against the published specs by the fake itself.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tollgate::atlassian::client::AtlassianClient;
use tollgate::atlassian::errors::CallError;
use tollgate::atlassian::jsm::{Decision, Visibility};
use tollgate::atlassian::{Atlassian, AtlassianError, Change, Credentials, Site};
use tollgate::config::{AtlassianConfig, Secret};
use tollgate::connect::descriptor::Descriptors;
use tollgate::orgchart::{AccountId, Email};
use tollgate::outbound::retry::RetryPolicy;
use tollgate::workflow::products;
use tollgate_fakes::atlassian::{Caller, FakeAtlassian, FakeKeys, FakeTenant, Fault, World};

use crate::support;
use crate::support::{tenant_key, ticket_key};

const ERIN: &str = "5b10ac8d82e05b22cc7d4e01";
const DAN: &str = "5b10ac8d82e05b22cc7d4e02";
const OLA: &str = "5b10ac8d82e05b22cc7d4e03";
const GROUP: &str = "c1d2e3f4-0000-4000-8000-00000000a001";

pub struct Cloud {
    pub fake: FakeAtlassian,
    pub atlassian: Atlassian,
    pub jira: Site,
    pub wiki: Site,
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(3),
    }
}

/// The fake cloud with the app installed on Jira and Confluence, and `config`'s credentials.
pub async fn cloud_with(world: World, config: impl FnOnce(&str) -> AtlassianConfig) -> Cloud {
    support::init();
    let keys = FakeKeys {
        admin_api_key: Some("admin-key".into()),
        scim_key: Some("scim-key".into()),
        site_admin: Some(("bot@acme.io".into(), "site-token".into())),
    };
    let fake = FakeAtlassian::start(world, keys)
        .await
        .expect("fake starts");
    let descriptors = Descriptors::render("https://tollgate.example", "io.tollgate.access", None);
    let jira = Site::connect(
        &tenant_key("jira:acme"),
        "io.tollgate.access",
        b"jira-secret".to_vec(),
        &fake.site_url(),
    );
    let wiki = Site::connect(
        &tenant_key("confluence:acme"),
        "io.tollgate.access.confluence",
        b"wiki-secret".to_vec(),
        &fake.confluence_url(),
    );
    fake.install(FakeTenant::from_descriptor(
        &descriptors.jira,
        "jira:acme",
        "jira-secret",
        "",
    ));
    fake.install(FakeTenant::from_descriptor(
        &descriptors.confluence,
        "confluence:acme",
        "wiki-secret",
        "/wiki",
    ));
    let credentials = Credentials::from_config(&config(&fake.api_url()));
    let atlassian = Atlassian::new(Arc::new(AtlassianClient::new(policy(), 4)), credentials);
    Cloud {
        fake,
        atlassian,
        jira,
        wiki,
    }
}

pub fn all_credentials(api_url: &str) -> AtlassianConfig {
    AtlassianConfig {
        api_url: api_url.to_string(),
        org_id: Some("org-acme".into()),
        admin_api_key: Some(Secret::new("admin-key")),
        scim_directory_id: Some("dir-acme".into()),
        scim_api_key: Some(Secret::new("scim-key")),
        site_admin_email: Some("bot@acme.io".into()),
        site_admin_token: Some(Secret::new("site-token")),
        cloud_id: None,
        account_index_interval: std::time::Duration::from_secs(21_600),
        synced_groups: Vec::new(),
    }
}

fn paging_world() -> World {
    let mut world = World::sample();
    // Every listing pages one item at a time.
    world.page_size = Some(1);
    world
}

fn id(s: &str) -> AccountId {
    AccountId(s.into())
}

/// How the fake saw the calls to paths starting with `prefix` authenticated.
fn callers(cloud: &Cloud, prefix: &str) -> Vec<Caller> {
    cloud
        .fake
        .recorded()
        .into_iter()
        .filter(|r| r.path.starts_with(prefix))
        .filter_map(|r| r.caller)
        .collect()
}

#[tokio::test]
async fn jira_and_jsm_operations_with_connect_tokens() {
    let cloud = cloud_with(paging_world(), all_credentials).await;
    let (a, site) = (&cloud.atlassian, &cloud.jira);
    cloud
        .fake
        .world()
        .issues
        .get_mut("IT-1")
        .expect("IT-1")
        .approvals = vec![json!({
        "id": "1", "name": "Manager approval", "finalDecision": "pending",
        "approvers": [{"approver": {"accountId": DAN}, "approverDecision": "approved"},
                      {"approver": {"accountId": OLA}, "approverDecision": "pending"}],
    })];

    let issue = a.issue(site, &ticket_key("IT-1")).await.expect("issue");
    assert_eq!(issue.reporter, Some(id(ERIN)));
    assert_eq!(issue.project_key.as_deref(), Some("IT"));
    assert_eq!(issue.fields["customfield_10052"], "14d");

    let first = a
        .comment(
            site,
            &ticket_key("IT-1"),
            "Routed to **Dan Diaz**.",
            true,
            Some("r1:v1"),
        )
        .await
        .expect("internal comment");
    a.request_comment(
        site,
        &ticket_key("IT-1"),
        "Your request is with Dan.",
        Visibility::Public,
    )
    .await
    .expect("public comment");
    {
        let world = cloud.fake.world();
        let comments = &world.issues["IT-1"].comments;
        assert_eq!(comments.len(), 2);
        assert!(!comments[0].public, "Jira comment marked internal");
        assert_eq!(comments[0].body["type"], "doc");
        assert_eq!(
            comments[0].body["content"][0]["content"][1]["marks"][0]["type"],
            "strong"
        );
        assert!(comments[1].public);
    }
    // Read back: the listing carries the notice key; one comment is read by its id; an id
    // Jira does not have is `None`.
    let listed = a
        .issue_comments(site, &ticket_key("IT-1"))
        .await
        .expect("comments");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].notice.as_deref(), Some("r1:v1"));
    assert!(listed[0].by_app && listed[0].restricted);
    let first = tollgate::atlassian::comments::CommentId::from_json(&serde_json::json!(first))
        .expect("a comment id");
    let one = a
        .issue_comment(site, &ticket_key("IT-1"), &first)
        .await
        .expect("read");
    assert_eq!(one.map(|c| c.text), Some("Routed to Dan Diaz.".to_string()));
    let missing = tollgate::atlassian::comments::CommentId::from_json(&serde_json::json!(99_999))
        .expect("an id");
    assert_eq!(
        a.issue_comment(site, &ticket_key("IT-1"), &missing)
            .await
            .expect("read"),
        None
    );

    assert_eq!(
        a.transition(site, &ticket_key("IT-1"), "approved").await,
        Ok(Change::Applied)
    );
    assert_eq!(cloud.fake.world().issues["IT-1"].status, "Approved");
    assert_eq!(
        a.transition(site, &ticket_key("IT-1"), "Approved").await,
        Ok(Change::AlreadyInPlace)
    );

    let request = a
        .customer_request(site, &ticket_key("IT-1"))
        .await
        .expect("request");
    assert_eq!(request.request_type_id.as_deref(), Some("12"));
    assert_eq!(request.reporter, Some(id(ERIN)));
    assert!(
        request
            .field_values
            .iter()
            .any(|f| f["fieldId"] == "customfield_10050")
    );

    assert_eq!(
        a.add_participants(site, &ticket_key("IT-1"), &[id(DAN), id(OLA)])
            .await,
        Ok(Change::Applied)
    );
    assert_eq!(
        a.add_participants(site, &ticket_key("IT-1"), &[id(OLA)])
            .await,
        Ok(Change::AlreadyInPlace)
    );
    assert_eq!(
        a.participants(site, &ticket_key("IT-1"))
            .await
            .expect("participants"),
        vec![id(DAN), id(OLA)]
    );

    let approvals = a
        .approvals(site, &ticket_key("IT-1"))
        .await
        .expect("approvals");
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].decision, Decision::Pending);
    let votes: Vec<(AccountId, Option<&str>, Decision)> = approvals[0]
        .approvers
        .iter()
        .map(|v| (v.account.clone(), v.name.as_deref(), v.decision))
        .collect();
    // JSM names each approver: the name is what an answer in the ticket uses.
    assert_eq!(
        votes,
        vec![
            (id(DAN), Some("Dan Diaz"), Decision::Approved),
            (id(OLA), Some("Ola Olsen"), Decision::Pending)
        ]
    );

    let dan = a.user(site, &id(DAN)).await.expect("user");
    assert_eq!(
        dan.email,
        Some(Email::parse("dan.diaz@acme.io").expect("email"))
    );
    let ola = a.user(site, &id(OLA)).await.expect("user");
    assert_eq!(ola.email, None, "a hidden email stays hidden");
    let found = a
        .users_by_email(site, &Email::parse("Dan.Diaz@acme.io").expect("email"))
        .await;
    assert_eq!(
        found
            .expect("search")
            .iter()
            .map(|u| &u.account_id)
            .collect::<Vec<_>>(),
        vec![&id(DAN)]
    );

    // Project role actors: add, add again (Jira refuses it; we read first), remove twice.
    assert_eq!(
        a.set_role_actor(site, "IT", 10002, &id(DAN), true).await,
        Ok(Change::Applied)
    );
    assert_eq!(
        a.set_role_actor(site, "IT", 10002, &id(DAN), true).await,
        Ok(Change::AlreadyInPlace)
    );
    assert_eq!(
        a.role_actors(site, "IT", 10002)
            .await
            .expect("actors")
            .users,
        vec![id(DAN)]
    );
    assert_eq!(
        a.set_role_actor(site, "IT", 10002, &id(DAN), false).await,
        Ok(Change::Applied)
    );
    assert_eq!(
        a.set_role_actor(site, "IT", 10002, &id(DAN), false).await,
        Ok(Change::AlreadyInPlace)
    );

    // JSM organization members.
    assert_eq!(
        a.set_organization_user(site, 7, &id(ERIN), true).await,
        Ok(Change::Applied)
    );
    assert_eq!(
        a.set_organization_user(site, 7, &id(ERIN), true).await,
        Ok(Change::AlreadyInPlace)
    );
    assert!(cloud.fake.world().organizations[&7].contains(ERIN));
    assert_eq!(
        a.set_organization_user(site, 7, &id(ERIN), false).await,
        Ok(Change::Applied)
    );

    assert!(
        callers(&cloud, "/rest/")
            .iter()
            .all(|c| matches!(c, Caller::Connect { client_key } if client_key == "jira:acme")),
        "Jira and JSM calls are made with the Jira install's Connect token"
    );
    // Paging one item at a time: participants (2) and approvals needed several pages.
    let participant_pages = cloud
        .fake
        .recorded()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/participant"))
        .count();
    assert!(
        participant_pages >= 3,
        "participants were read across pages ({participant_pages})"
    );
}

#[tokio::test]
async fn confluence_space_roles_with_the_confluence_install() {
    let cloud = cloud_with(paging_world(), all_credentials).await;
    let (a, wiki) = (&cloud.atlassian, &cloud.wiki);
    let roles = a.space_roles(wiki).await.expect("roles");
    assert_eq!(
        roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["Viewer", "Editor", "Collaborator", "Admin"]
    );

    assert_eq!(
        a.set_space_role(wiki, 98_305, &id(DAN), "role-editor", true)
            .await,
        Ok(Change::Applied)
    );
    assert_eq!(
        a.set_space_role(wiki, 98_305, &id(DAN), "role-editor", true)
            .await,
        Ok(Change::AlreadyInPlace)
    );
    assert_eq!(
        a.space_roles_of(wiki, 98_305, &id(DAN)).await.expect("of"),
        vec!["role-editor".to_string()]
    );
    assert_eq!(
        a.set_space_role(wiki, 98_305, &id(DAN), "role-editor", false)
            .await,
        Ok(Change::Applied)
    );
    // Removal writes first, and Confluence accepts an unassignment whether or not the role
    // was held: removing again succeeds and changes nothing.
    assert_eq!(
        a.set_space_role(wiki, 98_305, &id(DAN), "role-editor", false)
            .await,
        Ok(Change::Applied)
    );
    assert!(cloud.fake.world().space_assignments[&98_305].is_empty());

    let wiki_calls = callers(&cloud, "/wiki/");
    assert!(
        wiki_calls.iter().all(
            |c| matches!(c, Caller::Connect { client_key } if client_key == "confluence:acme")
        )
    );
    let role_pages = cloud
        .fake
        .recorded()
        .iter()
        .filter(|r| r.path.ends_with("/space-roles"))
        .count();
    assert_eq!(
        role_pages, 4,
        "four roles, one per page, followed through the cursor"
    );
}

#[tokio::test]
async fn admin_api_scim_and_site_admin_operations() {
    let cloud = cloud_with(paging_world(), all_credentials).await;
    let (a, site) = (&cloud.atlassian, &cloud.jira);

    let users = a.org_users().await.expect("org users");
    assert_eq!(users.len(), 3, "all pages");
    assert!(
        users.iter().all(|u| u.email.is_some()),
        "the Admin API shows every email"
    );

    // Site group through the Admin API: the second add is a 409, the second remove a 404;
    // both are confirmed by reading the members, and count as done.
    assert_eq!(
        a.set_site_group_member(GROUP, &id(ERIN), true).await,
        Ok(Change::Applied)
    );
    assert_eq!(
        a.set_site_group_member(GROUP, &id(ERIN), true).await,
        Ok(Change::AlreadyInPlace)
    );
    assert_eq!(
        a.site_group_members(GROUP).await.expect("members"),
        vec![id(ERIN)]
    );
    assert_eq!(
        a.set_site_group_member(GROUP, &id(ERIN), false).await,
        Ok(Change::Applied)
    );
    assert_eq!(
        a.set_site_group_member(GROUP, &id(ERIN), false).await,
        Ok(Change::AlreadyInPlace)
    );
    match a
        .set_site_group_member("no-such-group", &id(ERIN), true)
        .await
    {
        Err(AtlassianError::Call(CallError::NotFound(message))) => {
            assert_eq!(message, "Group not found")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }

    // Every product and role the catalog allows is granted and revoked with the one flat body
    // the Admin API takes.
    for product in products::products() {
        for role in products::roles(product).unwrap_or_default() {
            let assignment = products::assignment(product, role, "acme-cloud").expect("offered");
            assert_eq!(
                a.set_product_role(&id(OLA), &assignment, true).await,
                Ok(Change::Applied),
                "{product} {role}"
            );
            let held = (
                OLA.to_string(),
                assignment.role.clone(),
                assignment.resource.clone(),
            );
            assert!(cloud.fake.world().product_roles.contains(&held));
            a.set_product_role(&id(OLA), &assignment, false)
                .await
                .expect("revoke");
            assert!(
                cloud.fake.world().product_roles.is_empty(),
                "{product} {role}"
            );
        }
    }
    let sent = cloud
        .fake
        .recorded()
        .into_iter()
        .rfind(|r| r.path.ends_with("/roles/revoke"))
        .and_then(|r| r.body)
        .expect("a revoke was sent");
    assert_eq!(
        sent,
        json!({"role": "atlassian/user-access-admin", "resource": "ari:cloud:compass::site/acme-cloud"})
    );
    // The shape the API refuses, and Jira's product-admin role on a per-product resource, are
    // refused as the API refuses them.
    let admin_api = reqwest::Client::new();
    for body in [
        json!({"roles": [{"resource": {"id": "ari:cloud:confluence::site/acme-cloud"}, "role": "atlassian/user"}]}),
        json!({"role": "atlassian/admin", "resource": "ari:cloud:jira-software::site/acme-cloud"}),
        json!({"role": "atlassian/admin", "resource": "ari:cloud:jira-admin::site/acme-cloud"}),
        json!({"role": "atlassian/user", "resource": "ari:cloud:confluence::site/other-site"}),
    ] {
        let reply = admin_api
            .post(format!(
                "{}/admin/v1/orgs/org-acme/users/{OLA}/roles/assign",
                cloud.fake.api_url()
            ))
            .bearer_auth("admin-key")
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(reply.status(), 400, "{body}");
        let answer: Value = reply.json().await.expect("json");
        assert_eq!(answer["errors"][0]["code"], "ADMIN-UAM-400-5", "{body}");
    }
    // The first broke the contract too; the others fit its shape.
    let violations = cloud.fake.take_violations();
    assert!(
        violations.len() == 1 && violations[0].contains("body.roles is not a known property"),
        "{violations:?}"
    );
    assert!(cloud.fake.world().product_roles.is_empty());

    let erin = Email::parse("erin.evans@acme.io").expect("email");
    assert_eq!(a.scim_account_id(&erin).await, Ok(Some(id(ERIN))));
    assert_eq!(
        a.scim_account_id(&Email::parse("nobody@acme.io").expect("email"))
            .await,
        Ok(None)
    );
    // Ola's email is hidden on the site and not in SCIM: the Admin API's list (the account
    // index's source) has her.
    let ola = Email::parse("ola.olsen@acme.io").expect("email");
    let listed = a.org_users().await.expect("org users");
    assert!(
        listed
            .iter()
            .any(|u| u.account_id == id(OLA) && u.email.as_ref() == Some(&ola)),
        "{listed:?}"
    );

    // Jira group membership with the site-admin token (Connect may not).
    assert_eq!(
        a.set_jira_group_member(site, GROUP, &id(DAN), true).await,
        Ok(Change::Applied)
    );
    assert_eq!(
        a.set_jira_group_member(site, GROUP, &id(DAN), true).await,
        Ok(Change::AlreadyInPlace)
    );
    assert_eq!(
        a.jira_group_members(site, GROUP).await.expect("members"),
        vec![id(DAN)]
    );
    assert_eq!(
        a.set_jira_group_member(site, GROUP, &id(DAN), false).await,
        Ok(Change::Applied)
    );

    assert!(
        callers(&cloud, "/admin/")
            .iter()
            .all(|c| *c == Caller::AdminApiKey)
    );
    assert!(
        callers(&cloud, "/scim/")
            .iter()
            .all(|c| *c == Caller::ScimKey)
    );
    assert!(
        callers(&cloud, "/rest/api/3/group/")
            .iter()
            .all(|c| *c == Caller::SiteAdmin)
    );
    assert!(!callers(&cloud, "/rest/api/3/group/").is_empty());
}

#[tokio::test]
async fn a_missing_credential_is_a_clear_error_before_any_call() {
    let cloud = cloud_with(World::sample(), |url| AtlassianConfig {
        api_url: url.to_string(),
        org_id: None,
        admin_api_key: None,
        scim_directory_id: None,
        scim_api_key: None,
        site_admin_email: None,
        site_admin_token: None,
        cloud_id: None,
        account_index_interval: std::time::Duration::from_secs(21_600),
        synced_groups: Vec::new(),
    })
    .await;
    let a = &cloud.atlassian;
    let error = a
        .set_site_group_member(GROUP, &id(ERIN), true)
        .await
        .expect_err("no admin key");
    assert!(
        error
            .to_string()
            .contains("TOLLGATE_ATLASSIAN_ADMIN_API_KEY"),
        "{error}"
    );
    let error = a
        .set_jira_group_member(&cloud.jira, GROUP, &id(ERIN), true)
        .await
        .expect_err("no token");
    assert!(
        error
            .to_string()
            .contains("TOLLGATE_ATLASSIAN_SITE_ADMIN_EMAIL"),
        "{error}"
    );
    assert!(cloud.fake.recorded().is_empty(), "nothing was sent");
    // Without SCIM or the Admin API, the site's user search is the lookup.
    let dan = Email::parse("dan.diaz@acme.io").expect("email");
    let found = a.users_by_email(&cloud.jira, &dan).await.expect("search");
    assert_eq!(
        found.iter().map(|u| &u.account_id).collect::<Vec<_>>(),
        [&id(DAN)]
    );
    let ola = Email::parse("ola.olsen@acme.io").expect("email");
    assert_eq!(
        a.users_by_email(&cloud.jira, &ola).await.map(|u| u.len()),
        Ok(0),
        "hidden email, no other way"
    );
}

#[tokio::test]
async fn throttling_and_outages_are_waited_out() {
    let cloud = cloud_with(World::sample(), all_credentials).await;
    cloud
        .fake
        .inject(Fault::rate_limited("/rest/api/3/issue/", 2, 1));
    cloud.fake.inject(Fault::unavailable("/admin/", 1));
    let issue = cloud
        .atlassian
        .issue(&cloud.jira, &ticket_key("IT-1"))
        .await
        .expect("after two 429s");
    assert_eq!(issue.key, "IT-1");
    let statuses: Vec<u16> = cloud.fake.recorded().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    assert_eq!(cloud.atlassian.org_users().await.map(|u| u.len()), Ok(3));

    // More throttling than the policy's attempts: a typed, retryable error with the wait.
    cloud
        .fake
        .inject(Fault::rate_limited("/rest/api/3/issue/", 10, 1));
    match cloud
        .atlassian
        .issue(&cloud.jira, &ticket_key("IT-1"))
        .await
    {
        Err(
            e @ AtlassianError::Call(CallError::RateLimited {
                retry_after: Some(_),
            }),
        ) => {
            assert!(e.is_retryable())
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn permanent_errors_carry_the_vendors_message() {
    let cloud = cloud_with(World::sample(), all_credentials).await;
    let (a, site) = (&cloud.atlassian, &cloud.jira);
    match a.issue(site, &ticket_key("NOPE-1")).await {
        Err(AtlassianError::Call(CallError::NotFound(m))) => {
            assert_eq!(
                m,
                "Issue does not exist or you do not have permission to see it."
            )
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    match a.transition(site, &ticket_key("IT-1"), "Teleport").await {
        Err(AtlassianError::Refused(m)) => {
            assert!(
                m.contains("no transition `Teleport`") && m.contains("Approve, Decline"),
                "{m}"
            )
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    match a
        .set_role_actor(site, "IT", 10002, &id("nobody"), true)
        .await
    {
        Err(AtlassianError::Call(CallError::Permanent {
            status: 400,
            message,
        })) => {
            assert_eq!(message, "Could not find a user with accountId nobody")
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
    assert!(
        !a.issue(site, &ticket_key("NOPE-1"))
            .await
            .expect_err("404")
            .is_retryable()
    );
}

#[tokio::test]
async fn the_fake_authenticates_and_enforces_scopes_like_atlassian() {
    let cloud = cloud_with(World::sample(), all_credentials).await;
    // A token signed with the wrong secret.
    let forged = Site::connect(
        &tenant_key("jira:acme"),
        "io.tollgate.access",
        b"not-the-secret".to_vec(),
        &cloud.jira.base_url,
    );
    match cloud.atlassian.issue(&forged, &ticket_key("IT-1")).await {
        Err(AtlassianError::Call(CallError::Unauthorized(m))) => {
            assert!(m.contains("signature"), "{m}")
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    // An install whose descriptor declared only READ cannot write.
    cloud.fake.install(FakeTenant {
        scopes: vec![tollgate_fakes::atlassian::Scope::Read],
        ..FakeTenant::from_descriptor(
            &json!({"key": "io.tollgate.access", "scopes": ["READ"]}),
            "jira:acme",
            "jira-secret",
            "",
        )
    });
    match cloud
        .atlassian
        .comment(&cloud.jira, &ticket_key("IT-1"), "hi", false, None)
        .await
    {
        Err(AtlassianError::Call(CallError::Forbidden(m))) => assert!(m.contains("Write"), "{m}"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let violations = cloud.fake.take_violations();
    assert!(
        violations.len() == 1 && violations[0].contains("needs the WRITE scope"),
        "the contract check saw it too: {violations:?}"
    );
    // A call outside the contract is refused and remembered (and would fail the test at drop).
    let reply = reqwest::Client::new()
        .get(format!(
            "{}/rest/api/3/issue/IT-1?colour=blue",
            cloud.fake.site_url()
        ))
        .basic_auth("bot@acme.io", Some("site-token"))
        .send()
        .await
        .expect("sent");
    // Answered as Jira would (it ignores unknown parameters), and remembered: key-authenticated
    // calls are checked on all but the Connect scope.
    assert_eq!(reply.status(), 200);
    let reply = reqwest::Client::new()
        .get(format!("{}/rest/api/3/isue/IT-1", cloud.fake.site_url()))
        .basic_auth("bot@acme.io", Some("site-token"))
        .send()
        .await
        .expect("sent");
    assert_eq!(reply.status(), 404);
    let violations = cloud.fake.take_violations();
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(
        violations[0].contains("`colour` is not declared"),
        "{violations:?}"
    );
    assert!(violations[1].contains("no such path"), "{violations:?}");
}

#[tokio::test]
async fn outbound_connect_tokens_verify_with_atlassian_jwt() {
    let cloud = cloud_with(World::sample(), all_credentials).await;
    let dan = Email::parse("dan.diaz@acme.io").expect("email");
    cloud
        .atlassian
        .users_by_email(&cloud.jira, &dan)
        .await
        .expect("search");
    cloud
        .atlassian
        .space_roles_of(&cloud.wiki, 98_305, &id(DAN))
        .await
        .expect("roles");
    if !support::oracle::available() {
        return;
    }
    for (recorded, secret, base_url) in [
        (
            cloud.fake.recorded()[0].clone(),
            "jira-secret",
            cloud.fake.site_url(),
        ),
        (
            cloud.fake.recorded()[1].clone(),
            "wiki-secret",
            cloud.fake.confluence_url(),
        ),
    ] {
        let token = recorded
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("JWT "))
            .expect("JWT");
        let claims =
            support::oracle::ask(&json!({"op": "decode", "token": token, "secret": secret}));
        let url = match &recorded.query {
            Some(q) => format!("{}?{q}", recorded.path),
            None => recorded.path.clone(),
        };
        let expected = support::oracle::ask(&json!({"op": "qsh", "cases": [{
            "method": recorded.method, "url": url, "baseUrl": base_url,
        }]}));
        assert_eq!(claims["qsh"], expected[0], "{url}");
        assert!(
            claims["iss"]
                .as_str()
                .is_some_and(|i| i.starts_with("io.tollgate.access"))
        );
    }
}

#[tokio::test]
async fn people_are_matched_to_accounts_once_and_the_match_is_stored() {
    use tollgate::clock::SystemClock;
    use tollgate::orgchart::{EmploymentType, Person, PersonId};
    use tollgate::people::accounts::account_for;

    let cloud = cloud_with(World::sample(), all_credentials).await;
    let db = crate::support::TestDatabase::create().await;
    let store = crate::support::store(&db).await;
    let person = |email: &str, account: Option<&str>| Person {
        id: PersonId(email.into()),
        email: Email::parse(email).expect("email"),
        display_name: email.into(),
        title: None,
        department: None,
        cost_center: None,
        manager: None,
        active: true,
        employment_type: EmploymentType::FullTime,
        atlassian_account_id: account.map(id),
        attributes: Default::default(),
    };
    let erin = person("erin.evans@acme.io", None);
    let found = account_for(&store, &cloud.atlassian, &cloud.jira, &erin, &SystemClock).await;
    assert_eq!(found.expect("lookup"), Some(id(ERIN)));
    let calls = cloud.fake.recorded().len();
    assert!(calls > 0);
    let again = account_for(&store, &cloud.atlassian, &cloud.jira, &erin, &SystemClock).await;
    assert_eq!(again.expect("stored"), Some(id(ERIN)));
    assert_eq!(
        cloud.fake.recorded().len(),
        calls,
        "the stored match answered"
    );

    // The source's own account id wins without any call; an unknown email is None.
    let stated = person("x@acme.io", Some(DAN));
    let found = account_for(&store, &cloud.atlassian, &cloud.jira, &stated, &SystemClock).await;
    assert_eq!(found.expect("stated"), Some(id(DAN)));
    let nobody = person("nobody@acme.io", None);
    let found = account_for(&store, &cloud.atlassian, &cloud.jira, &nobody, &SystemClock).await;
    assert_eq!(found.expect("no error"), None);
}
