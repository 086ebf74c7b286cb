//! The SCIM 2.0 endpoint identity providers push to (`TOLLGATE_IDP_KIND=scim_push`): what
//! Okta and Entra send is understood, what is malformed or unauthorised is refused in SCIM's
//! shape with nothing stored, scim2-tester finds it conformant, and a push is an org change
//! like a sync's (a pushed person requests and approves, a manager change re-routes, a
//! deactivation ends grants, a mass deactivation is held).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tollgate::app::Mode;
use tollgate::lifecycle::State;
use tollgate::orgchart::PersonId;

use crate::grants::start_with_files;
use crate::support::{self, TestApp, env, eventually};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Pushes as an identity provider would, with a token it was issued.
pub(crate) struct PushClient {
    base: String,
    pub(crate) token: String,
    http: reqwest::Client,
    /// uid → the SCIM id Tollgate gave the user.
    ids: Mutex<HashMap<String, String>>,
}

pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: header::HeaderMap,
}

async fn issue(app: &TestApp, name: &str) -> String {
    let state = &app.state;
    let (_, token) = tollgate::scim_push::tokens::issue(
        &state.store,
        &state.secret_key,
        name,
        "test",
        state.clock.now(),
    )
    .await
    .expect("token issued");
    token
}

impl PushClient {
    pub(crate) async fn new(app: &TestApp, name: &str) -> Self {
        Self {
            base: app.url("/scim/v2"),
            token: issue(app, name).await,
            http: reqwest::Client::new(),
            ids: Mutex::new(HashMap::new()),
        }
    }

    /// A client that pushed Cleo (CEO), Vera (VP, reports to Cleo) and Dev (reports to Vera).
    pub(crate) async fn seeded(app: &TestApp) -> Self {
        let client = Self::new(app, "test-idp").await;
        client.user("ceo", "Cleo Chase", None, "CEO").await;
        client
            .user("vp", "Vera Vance", Some("ceo"), "VP Engineering")
            .await;
        client.user("dev", "Dev Dean", Some("vp"), "Engineer").await;
        // The pushes may span two sync slots: wait for the chart that has all three.
        chart_shows(app, "Dev reporting to Vera", |index| {
            person(index, "dev").is_some_and(|p| p.manager == Some(PersonId("vp".into())))
        })
        .await;
        client
    }

    pub(crate) fn id(&self, uid: &str) -> String {
        self.ids.lock().expect("ids")[uid].clone()
    }

    pub(crate) async fn send_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.send_as(Some(&self.token), method, path, body).await
    }

    /// Pushes a user as Entra does (externalId, enterprise manager by SCIM id); returns its id.
    pub(crate) async fn user(
        &self,
        uid: &str,
        name: &str,
        manager: Option<&str>,
        title: &str,
    ) -> String {
        let mut enterprise = json!({"department": "Engineering"});
        if let Some(manager) = manager {
            enterprise["manager"] = json!({"value": self.id(manager)});
        }
        let reply = self
            .send(
                Method::POST,
                "/Users",
                Some(&json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                    "userName": format!("{uid}@example.com"),
                    "externalId": uid,
                    "displayName": name,
                    "title": title,
                    "active": true,
                    "emails": [{"value": format!("{uid}@example.com"), "type": "work", "primary": true}],
                    ENTERPRISE: enterprise,
                })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let id = reply.body["id"].as_str().expect("an id").to_string();
        self.ids
            .lock()
            .expect("ids")
            .insert(uid.to_string(), id.clone());
        id
    }

    pub(crate) async fn patch(&self, uid: &str, operations: Value) -> Reply {
        let path = format!("/Users/{}", self.id(uid));
        self.send(
            Method::PATCH,
            &path,
            Some(&json!({"schemas": [PATCH], "Operations": operations})),
        )
        .await
    }
}

/// Waits until the org chart applied holds `check`.
async fn chart_shows(
    app: &TestApp,
    what: &str,
    check: impl Fn(&tollgate::orgchart::OrgIndex) -> bool,
) {
    let shown = eventually(Duration::from_secs(20), || async {
        let index = app.state.org.index()?;
        let applied = tollgate::store::org_changes::applied(&app.state.store)
            .await
            .ok()??;
        (check(&index) && Some(applied) == app.state.org.version()).then_some(())
    })
    .await;
    assert!(shown.is_some(), "the chart never showed {what}");
}

fn person<'a>(
    index: &'a tollgate::orgchart::OrgIndex,
    id: &str,
) -> Option<&'a tollgate::orgchart::Person> {
    index.by_id(&PersonId(id.into())).map(|i| index.person(i))
}

async fn pushed_app(extra: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![("TOLLGATE_IDP_KIND", "scim_push")];
    settings.extend_from_slice(extra);
    support::spawn_app_with(Mode::All, &settings).await
}

async fn scim_events(app: &TestApp, action: &str) -> Vec<Value> {
    tollgate::audit::events(&app.state.store, None, action)
        .await
        .expect("audit")
}

fn assert_scim_error(reply: &Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(reply.body["schemas"], json!([ERROR]), "{}", reply.body);
    assert_eq!(reply.body["status"], json!(status.to_string()));
    assert_eq!(reply.body["scimType"].as_str(), scim_type, "{}", reply.body);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE].to_str().ok(),
        Some("application/scim+json")
    );
}

#[tokio::test]
async fn unauthorised_and_malformed_pushes_are_refused_in_scims_shape_and_store_nothing() {
    let app = pushed_app(&[]).await;
    let anyone = PushClient {
        base: app.url("/scim/v2"),
        token: String::new(),
        http: reqwest::Client::new(),
        ids: Mutex::new(HashMap::new()),
    };
    let ada = json!({"userName": "ada@example.com", "externalId": "ada"});
    // Before any token is issued, and with none, a wrong one, or another scheme.
    let none_issued = anyone
        .send_as(Some("tgscim_guess"), Method::POST, "/Users", Some(&ada))
        .await;
    assert_scim_error(&none_issued, 401, None);
    assert!(
        none_issued.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("scim-push token issue"))
    );
    let client = PushClient::new(&app, "okta").await;
    for token in [None, Some("tgscim_wrong"), Some("")] {
        let refused = client
            .send_as(token, Method::POST, "/Users", Some(&ada))
            .await;
        assert_scim_error(&refused, 401, None);
    }
    let basic = reqwest::Client::new()
        .get(app.url("/scim/v2/Users"))
        .header(header::AUTHORIZATION, format!("Basic {}", client.token))
        .send()
        .await
        .expect("sent");
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    // Malformed bodies and operations.
    let raw = reqwest::Client::new()
        .post(app.url("/scim/v2/Users"))
        .bearer_auth(&client.token)
        .header(header::CONTENT_TYPE, "application/scim+json")
        .body("{\"userName\": ")
        .send()
        .await
        .expect("sent");
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let raw: Value = raw.json().await.expect("a SCIM error");
    assert_eq!(raw["scimType"], "invalidSyntax");
    for (body, scim_type) in [
        (json!({"externalId": "ada"}), "invalidValue"),
        (
            json!({"userName": "ada@example.com", "active": 7}),
            "invalidValue",
        ),
        (
            json!({"userName": "ada@example.com", "emails": "ada@example.com"}),
            "invalidValue",
        ),
        (json!(["not", "an", "object"]), "invalidSyntax"),
    ] {
        let refused = client.send(Method::POST, "/Users", Some(&body)).await;
        assert_scim_error(&refused, 400, Some(scim_type));
    }
    let bad_filter = client
        .send(Method::GET, "/Users?filter=userName%20eq", None)
        .await;
    assert_scim_error(&bad_filter, 400, Some("invalidFilter"));
    assert_scim_error(&client.send(Method::GET, "/Things", None).await, 404, None);
    assert_scim_error(
        &client.send(Method::GET, "/Users/no-such-id", None).await,
        404,
        None,
    );
    assert_scim_error(
        &client.send(Method::POST, "/Bulk", Some(&json!({}))).await,
        501,
        None,
    );
    assert_scim_error(
        &client
            .send(Method::POST, "/Schemas", Some(&json!({})))
            .await,
        405,
        None,
    );
    let too_big = client
        .send(
            Method::POST,
            "/Users",
            Some(&json!({"userName": "x".repeat(2 * 1024 * 1024)})),
        )
        .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.body["schemas"], json!([ERROR]));

    // A PATCH that fails part-way changes nothing.
    let id = client.user("ada", "Ada", None, "Engineer").await;
    let before = client
        .send(Method::GET, &format!("/Users/{id}"), None)
        .await;
    let half = client
        .patch(
            "ada",
            json!([
                {"op": "replace", "path": "title", "value": "Boss"},
                {"op": "replace", "path": "emails[type eq \"home\"].value", "value": "x@y.z"},
            ]),
        )
        .await;
    assert_scim_error(&half, 400, Some("noTarget"));
    let after = client
        .send(Method::GET, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(
        after.body, before.body,
        "nothing of the failed PATCH is kept"
    );
    // Only the one good write is stored and audited.
    let listed = client.send(Method::GET, "/Users", None).await;
    assert_eq!(listed.body["totalResults"], 1);
    assert_eq!(scim_events(&app, "scim.user.created").await.len(), 1);
    assert!(scim_events(&app, "scim.user.patched").await.is_empty());
}

#[tokio::test]
async fn the_endpoint_is_closed_unless_the_chart_is_pushed() {
    let app = support::spawn_app().await;
    let client = PushClient::new(&app, "okta").await;
    let closed = client.send(Method::GET, "/Users", None).await;
    assert_scim_error(&closed, 404, None);
    assert!(
        closed.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("TOLLGATE_IDP_KIND=scim_push"))
    );
}

#[tokio::test]
async fn what_okta_and_entra_send_is_understood() {
    let app = pushed_app(&[]).await;
    let client = PushClient::new(&app, "entra").await;
    // Okta looks a user up by userName before creating it.
    let lookup = client
        .send(
            Method::GET,
            "/Users?filter=userName%20eq%20%22Ada%40Example.com%22&startIndex=1&count=100",
            None,
        )
        .await;
    assert_eq!(lookup.status, StatusCode::OK);
    assert_eq!(lookup.body["totalResults"], 0);
    assert_eq!(
        lookup.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    let boss = client.user("boss", "Bo Ss", None, "CEO").await;
    let ada = client
        .user("ada", "Ada Lovelace", Some("boss"), "Engineer")
        .await;
    let found = client
        .send(
            Method::GET,
            "/Users?filter=userName%20eq%20%22ADA%40example.com%22",
            None,
        )
        .await;
    assert_eq!(
        found.body["totalResults"], 1,
        "userName is matched without regard to case"
    );
    assert_eq!(found.body["Resources"][0]["id"], json!(ada));
    let by_external = client
        .send(
            Method::GET,
            "/Users?filter=externalId%20eq%20%22ada%22",
            None,
        )
        .await;
    assert_eq!(by_external.body["totalResults"], 1);
    // The same userName in other letters is taken.
    let twice = client
        .send(
            Method::POST,
            "/Users",
            Some(&json!({"userName": "ADA@example.com", "externalId": "ada2"})),
        )
        .await;
    assert_scim_error(&twice, 409, Some("uniqueness"));
    chart_shows(&app, "Ada reporting to Boss", |index| {
        person(index, "ada").is_some_and(|p| p.manager == Some(PersonId("boss".into())) && p.active)
    })
    .await;

    // Entra: string booleans, the manager as a bare id, the department by its qualified path.
    let entra = client
        .patch(
            "ada",
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": ada.clone()},
                {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Finance"},
            ]),
        )
        .await;
    assert_eq!(entra.status, StatusCode::OK, "{}", entra.body);
    assert_eq!(entra.body["active"], json!(false));
    assert_eq!(entra.body[ENTERPRISE]["manager"], json!({"value": ada}));
    chart_shows(&app, "Ada inactive in Finance", |index| {
        person(index, "ada")
            .is_some_and(|p| !p.active && p.department.as_deref() == Some("Finance"))
    })
    .await;
    // Okta: a path-less replace.
    let okta = client
        .patch("ada", json!([{"op": "replace", "value": {"active": true}}]))
        .await;
    assert_eq!(okta.body["active"], json!(true));

    // Groups: created with a member, Entra's membership check, members added and removed.
    let group = client
        .send(
            Method::POST,
            "/Groups",
            Some(&json!({"displayName": "FIN Analysts", "externalId": "g-1", "members": [{"value": ada}]})),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.body);
    let gid = group.body["id"].as_str().expect("id").to_string();
    let member_check = |user: String| {
        let client = &client;
        let gid = gid.clone();
        async move {
            let filter = format!("id eq \"{gid}\" and members[value eq \"{user}\"]");
            let url = format!(
                "/Groups?filter={}&excludedAttributes=members",
                urlencode(&filter)
            );
            client.send(Method::GET, &url, None).await.body
        }
    };
    let is_member = member_check(ada.clone()).await;
    assert_eq!(is_member["totalResults"], 1);
    assert_eq!(
        is_member["Resources"][0].get("members"),
        None,
        "excludedAttributes=members"
    );
    assert_eq!(member_check(boss.clone()).await["totalResults"], 0);
    let path = format!("/Groups/{gid}");
    let added = client
        .send(
            Method::PATCH,
            &path,
            Some(&json!({"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": [{"value": boss}]}]})),
        )
        .await;
    assert_eq!(added.body["members"].as_array().map(Vec::len), Some(2));
    let by_name = client
        .send(
            Method::GET,
            "/Groups?filter=displayName%20eq%20%22fin%20analysts%22",
            None,
        )
        .await;
    assert_eq!(by_name.body["totalResults"], 1);
    chart_shows(&app, "the group with both", |index| {
        index
            .group_members("FIN Analysts")
            .is_some_and(|m| m.len() == 2)
    })
    .await;
    let removed = client
        .send(
            Method::PATCH,
            &path,
            Some(&json!({"schemas": [PATCH], "Operations": [{"op": "Remove", "path": "members", "value": [{"value": ada}]}]})),
        )
        .await;
    assert_eq!(removed.body["members"], json!([{"value": boss}]));
    // A deleted user leaves its groups; a deleted group leaves the chart.
    let gone = client
        .send(Method::DELETE, &format!("/Users/{boss}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let group_now = client.send(Method::GET, &path, None).await;
    assert_eq!(
        group_now
            .body
            .get("members")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(
        client
            .send(Method::GET, &format!("/Users/{boss}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    chart_shows(&app, "Boss gone, the group empty", |index| {
        person(index, "boss").is_none()
            && index
                .group_members("FIN Analysts")
                .is_some_and(<[_]>::is_empty)
    })
    .await;
    assert_eq!(
        client.send(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    chart_shows(&app, "the group gone", |index| {
        index.group_members("FIN Analysts").is_none()
    })
    .await;

    // Every change is in the audit log, by the token that pushed it.
    let patched = scim_events(&app, "scim.user.patched").await;
    assert_eq!(patched.len(), 2);
    assert_eq!(patched[0]["actor"]["id"], "scim:entra", "{}", patched[0]);
    assert_eq!(patched[0]["details"]["changed"]["active"], json!(false));
    assert_eq!(patched[0]["target"], "ada");
    assert_eq!(scim_events(&app, "scim.user.deleted").await.len(), 1);
    assert_eq!(scim_events(&app, "scim.group.patched").await.len(), 2);
    assert_eq!(scim_events(&app, "scim.group.deleted").await.len(), 1);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn versions_and_pages_behave_as_rfc_7644_says() {
    let app = pushed_app(&[]).await;
    let client = PushClient::new(&app, "okta").await;
    for uid in ["u1", "u2", "u3", "u4", "u5"] {
        client.user(uid, uid, None, "Engineer").await;
    }
    let page = client
        .send(Method::GET, "/Users?startIndex=2&count=2", None)
        .await;
    assert_eq!(page.body["totalResults"], 5);
    assert_eq!(page.body["startIndex"], 2);
    assert_eq!(page.body["itemsPerPage"], 2);
    assert_eq!(page.body["Resources"][0]["userName"], "u2@example.com");
    let none = client.send(Method::GET, "/Users?count=0", None).await;
    assert_eq!(
        (
            none.body["totalResults"].clone(),
            none.body["itemsPerPage"].clone()
        ),
        (json!(5), json!(0))
    );
    let only = client
        .send(Method::GET, "/Users?attributes=userName&count=1", None)
        .await;
    let first = &only.body["Resources"][0];
    assert!(first.get("userName").is_some() && first.get("id").is_some());
    assert_eq!(first.get("emails"), None);

    let path = format!("/Users/{}", client.id("u1"));
    let read = client.send(Method::GET, &path, None).await;
    let etag = read.headers[header::ETAG]
        .to_str()
        .expect("etag")
        .to_string();
    assert_eq!(read.body["meta"]["version"], json!(etag));
    let unchanged = reqwest::Client::new()
        .get(format!("{}{path}", client.base))
        .bearer_auth(&client.token)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    // A write with the version read goes through; one with an older version does not.
    let put = |version: String, title: &'static str| {
        let client = &client;
        let path = path.clone();
        async move {
            reqwest::Client::new()
                .put(format!("{}{path}", client.base))
                .bearer_auth(&client.token)
                .header(header::IF_MATCH, version)
                .body(
                    json!({"userName": "u1@example.com", "externalId": "u1", "title": title})
                        .to_string(),
                )
                .send()
                .await
                .expect("sent")
        }
    };
    assert_eq!(put(etag.clone(), "Lead").await.status(), StatusCode::OK);
    let stale = put(etag, "Stale").await;
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let now = client.send(Method::GET, &path, None).await;
    assert_eq!(now.body["title"], "Lead");
    assert_eq!(
        now.body.get("emails"),
        None,
        "PUT replaces the whole resource"
    );

    // Two deliveries racing to create the same user: one is created, the other told.
    let body = json!({"userName": "twin@example.com", "externalId": "twin"});
    let (a, b) = tokio::join!(
        client.send(Method::POST, "/Users", Some(&body)),
        client.send(Method::POST, "/Users", Some(&body))
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
}

#[tokio::test]
async fn a_rotated_token_keeps_pushes_flowing_and_a_revoked_one_is_refused() {
    let app = pushed_app(&[]).await;
    let old = PushClient::new(&app, "okta-2025").await;
    old.user("a", "A", None, "Engineer").await;
    let new = PushClient::new(&app, "okta-2026").await;
    assert_eq!(
        old.send(Method::GET, "/Users", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        new.send(Method::GET, "/Users", None).await.status,
        StatusCode::OK
    );
    let tokens = tollgate::store::scim_resources::tokens(&app.state.store, true)
        .await
        .expect("tokens");
    assert_eq!(tokens.len(), 2);
    let old_id = tokens
        .iter()
        .find(|t| t.name == "okta-2025")
        .expect("old")
        .id
        .clone();
    assert!(
        tokens.iter().all(|t| !t.sealed.contains("tgscim_")),
        "stored sealed"
    );
    let old_token = tokens.iter().find(|t| t.name == "okta-2025").expect("old");
    assert!(old_token.last_pushed_at.is_some(), "its push is recorded");
    assert!(
        tollgate::scim_push::tokens::revoke(
            &app.state.store,
            &old_id,
            "ana",
            app.state.clock.now()
        )
        .await
        .expect("revoked")
    );
    assert_scim_error(&old.send(Method::GET, "/Users", None).await, 401, None);
    new.user("b", "B", None, "Engineer").await;
    assert_eq!(scim_events(&app, "scim.token.issued").await.len(), 2);
    assert_eq!(scim_events(&app, "scim.token.revoked").await.len(), 1);
    let created = scim_events(&app, "scim.user.created").await;
    let actors: Vec<&str> = created
        .iter()
        .filter_map(|e| e["actor"]["id"].as_str())
        .collect();
    assert_eq!(actors, ["scim:okta-2025", "scim:okta-2026"]);
}

/// The Python that has scim2-tester (the venv `.ci/run` makes).
fn tester_python() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-scim/bin/python")
}

#[tokio::test]
async fn scim2_tester_finds_the_endpoint_conformant() {
    let python = tester_python();
    let has_tester = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", "import scim2_tester, httpx2"])
            .status()
            .is_ok_and(|s| s.success());
    if !env::require(
        has_tester,
        "scim2-tester (pip install -r tests/scim/requirements.txt into .venv-scim)",
    ) {
        return;
    }
    let app = pushed_app(&[]).await;
    let token = issue(&app, "conformance").await;
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scim/conformance.py");
    let url = app.url("/scim/v2");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&url)
        .arg(&token)
        .output()
        .await
        .expect("the checks ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("\"ERROR\"")).collect();
    assert!(
        output.status.success() && failed.is_empty(),
        "scim2-tester found errors:\n{}\n{}",
        failed.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    let counts: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("the counts");
    let passed = counts["counts"]["SUCCESS"].as_u64().unwrap_or(0);
    assert!(passed >= 100, "{counts}");
}

#[tokio::test]
async fn a_pushed_person_requests_and_their_pushed_manager_approves() {
    let Some(env) = start_with_files("scim_push", "fin-reports", &[], &[]).await else {
        return;
    };
    let active = env.approved_and_active().await;
    assert_eq!(active.subject_person, Some(PersonId("dev".into())));
    let world = env.cloud.world();
    assert!(
        world.project_roles[&("FIN".to_string(), 10002)]
            .0
            .contains("acc-dev")
    );
}

#[tokio::test]
async fn a_manager_change_pushed_by_patch_reroutes_the_open_stage() {
    let Some(env) = start_with_files("scim_push", "fin-reports", &[], &[]).await else {
        return;
    };
    env.webhook(
        "/connect/webhooks/issue-created",
        "d-1",
        &tollgate_fakes::atlassian::connect::issue_created("IT-7", "acc-dev"),
    )
    .await;
    env.comment_with("Stage 1").await;
    let push = env.push.as_ref().expect("pushed");
    // Entra moves Dev under Cleo: the manager as a bare id.
    let moved = push
        .patch(
            "dev",
            json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": push.id("ceo")}]),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let told = env.comment_with("The org chart changed").await;
    assert!(
        told.contains("now goes to Cleo Chase") && told.contains("instead of Vera Vance"),
        "{told}"
    );
    // Vera may not decide any more; Cleo's approval grants it.
    env.comment("d-2", ("acc-ceo", "Cleo Chase"), "/approve")
        .await;
    env.reaches(State::Active).await;
}

#[tokio::test]
async fn a_pushed_deactivation_ends_the_persons_grants() {
    let Some(env) = start_with_files("scim_push", "fin-reports", &[], &[]).await else {
        return;
    };
    env.approved_and_active().await;
    let push = env.push.as_ref().expect("pushed");
    // Okta deactivates with a path-less replace.
    let off = push
        .patch(
            "dev",
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK);
    let revoked = env.reaches(State::Revoked).await;
    assert_eq!(
        revoked.end_cause,
        Some(tollgate::lifecycle::EndCause::Leaver)
    );
    let world = env.cloud.world();
    assert!(
        !world.project_roles[&("FIN".to_string(), 10002)]
            .0
            .contains("acc-dev")
    );
}

#[tokio::test]
async fn a_mass_deactivation_pushed_one_at_a_time_is_held_as_one() {
    let Some(env) = start_with_files(
        "scim_push",
        "fin-reports",
        &[("TOLLGATE_IDP_LEAVER_BRAKE_MIN", "2")],
        &[],
    )
    .await
    else {
        return;
    };
    let push = env.push.as_ref().expect("pushed");
    let app = &env.app;
    for uid in ["u1", "u2", "u3", "u4"] {
        push.user(uid, uid, Some("ceo"), "Engineer").await;
    }
    chart_shows(app, "the four", |index| person(index, "u4").is_some()).await;
    // Each deactivation is its own push, applied before the next: a sync sees one leaver.
    for uid in ["u1", "u2", "u3", "u4"] {
        let off = push
            .patch(uid, json!([{"op": "replace", "value": {"active": false}}]))
            .await;
        assert_eq!(off.status, StatusCode::OK);
        chart_shows(app, "the deactivation", |index| {
            person(index, uid).is_some_and(|p| !p.active)
        })
        .await;
    }
    let holds = tollgate::store::org_changes::holds(&app.state.store)
        .await
        .expect("holds");
    assert_eq!(holds.len(), 1, "one hold, however many pushes: {holds:?}");
    let held: Vec<&str> = holds[0].people.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        held,
        ["u3", "u4"],
        "the first two were within the brake's limit of 2"
    );
    let alerts = tollgate::alerts::raised(&app.state.store, "leaver_brake")
        .await
        .expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    // Approved, the held leavers go.
    let now = app.state.clock.now();
    assert!(
        tollgate::engine::org_change::approve(&app.state.store, holds[0].version, "ana", now)
            .await
            .expect("approved")
    );
    let done = eventually(Duration::from_secs(20), || async {
        let holds = tollgate::store::org_changes::holds(&app.state.store)
            .await
            .ok()?;
        (holds[0].state == tollgate::store::org_changes::HoldState::Done).then_some(())
    })
    .await;
    assert!(done.is_some(), "the approved hold was carried out");
}
