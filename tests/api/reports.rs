//! Compliance reports over a seeded history: the rows, the period and zone rules, the filters,
//! CSV that a standard reader parses back, and JSON.

use crate::support::database::exec;
use serde_json::{Value, json};
use tollgate::audit::report::{self, Format, Query, Report, Scope};
use tollgate::store::Store;

use tollgate::grants::plan::{Step, Via};
use tollgate::store::grants::{self, Progress, Status};
use tollgate::workflow::GrantTarget;

use crate::support::{self, TestDatabase};

/// The seeded requests' ids (real ones are UUIDs; the step readers insist).
const A: &str = "00000000-0000-7000-8000-00000000000a";
const B: &str = "00000000-0000-7000-8000-00000000000b";
const C: &str = "00000000-0000-7000-8000-00000000000c";
const D: &str = "00000000-0000-7000-8000-00000000000d";

/// A timestamp literal as the store writes one (sqlx's RFC 3339 text on SQLite).
fn ts(rfc3339: &str) -> String {
    let at: chrono::DateTime<chrono::Utc> = rfc3339.parse().expect("time");
    format!("'{}'", at.to_rfc3339())
}

/// A: filed, approved in two stages, granted in two places, expired — all in July 2026.
/// B: filed 30 June 23:30 UTC (1 July in Berlin), declined. C: granted in June, still active.
/// D: filed in August.
async fn seed(store: &Store) {
    let t = ts;
    exec(store, &format!(
        "INSERT INTO tenants (client_key, product, app_key, base_url, host, shared_secret, state, installed_at, updated_at) \
         VALUES ('jira:acme', 'jira', 'tollgate', 'https://acme.atlassian.net', 'acme.atlassian.net', 'x', 'installed', {n}, {n})",
        n = t("2026-01-01T00:00:00Z")
    ), &[]).await;
    let request = |id: &str,
                   key: &str,
                   state: &str,
                   email: &str,
                   resource: &str,
                   justification: &str,
                   created: &str,
                   rest: &str| {
        format!(
            "INSERT INTO requests (id, tenant, ticket_key, issue_id, state, requester_account, requester_email, \
             resource, level, justification, workflow, workflow_version, version, created_at, updated_at{}) \
             VALUES ('{id}', 'jira:acme', '{key}', '1', '{state}', 'acc-{email}', '{email}', '{resource}', 'admin', \
             '{justification}', 'finance-two-stage', 'v7', 1, {c}, {c}{})",
            if rest.is_empty() {
                ""
            } else {
                ", granted_at, expires_at, ended_at, end_cause, reason"
            },
            rest,
            c = t(created),
        )
    };
    exec(
        store,
        &request(
            A,
            "IT-1",
            "expired",
            "alice@example.com",
            "netsuite",
            "Quarter close, \"urgent\"\nsee =1+1",
            "2026-07-01T09:00:00Z",
            &format!(
                ", {}, {}, {}, 'expired', 'the access expired'",
                t("2026-07-01T10:05:00Z"),
                t("2026-07-08T10:05:00Z"),
                t("2026-07-08T10:06:00Z")
            ),
        ),
        &[],
    )
    .await;
    exec(
        store,
        &request(
            B,
            "IT-2",
            "declined",
            "dave@example.com",
            "github",
            "for the demo",
            "2026-06-30T23:30:00Z",
            "",
        ),
        &[],
    )
    .await;
    exec(
        store,
        &request(
            C,
            "IT-3",
            "active",
            "erin@example.com",
            "netsuite",
            "ongoing audit",
            "2026-06-01T08:00:00Z",
            &format!(
                ", {}, {}, NULL, NULL, NULL",
                t("2026-06-01T09:00:00Z"),
                t("2026-12-01T09:00:00Z")
            ),
        ),
        &[],
    )
    .await;
    exec(
        store,
        &request(
            D,
            "IT-4",
            "approved",
            "frank@example.com",
            "netsuite",
            "later",
            "2026-08-01T08:00:00Z",
            "",
        ),
        &[],
    )
    .await;
    exec(
        store,
        &format!("UPDATE requests SET reason = 'not needed' WHERE id = '{B}'"),
        &[],
    )
    .await;
    for (id, stage, who, verdict, via, at) in [
        (A, 0, "bob", "approved", "comment", "2026-07-01T09:30:00Z"),
        (
            A,
            1,
            "carol",
            "approved",
            "jsm_approval",
            "2026-07-01T10:00:00Z",
        ),
        (B, 0, "bob", "declined", "comment", "2026-07-01T08:00:00Z"),
        (C, 0, "bob", "approved", "comment", "2026-06-01T08:30:00Z"),
    ] {
        exec(store, &format!(
            "INSERT INTO decisions (request_id, stage, approver_account, approver_email, verdict, via, answer, decided_at) \
             VALUES ('{id}', {stage}, 'acc-{who}', '{who}@example.com', '{verdict}', '{via}', 'x', {})",
            t(at)
        ), &[]).await;
    }
    // A's two steps were granted and revoked; C's one is granted and still held.
    let finance = Step::direct(
        GrantTarget::IdpGroup {
            group: "finance".into(),
        },
        Via::Idp {
            source: "ldap".into(),
        },
    );
    let role = Step::direct(
        GrantTarget::JiraProjectRole {
            project: "FIN".into(),
            role: "Administrators".into(),
        },
        Via::Connect,
    );
    let at = "2026-07-01T10:05:00Z".parse().expect("time");
    let mut tx = store.begin().await.expect("begin");
    let finance = grants::plan_id(&mut tx, &finance).await.expect("plan");
    let role = grants::plan_id(&mut tx, &role).await.expect("plan");
    tx.commit().await.expect("commit");
    let done = |plan, revoke| Progress {
        grant: Status::Done,
        revoke,
        since: None,
        ..Progress::planned(plan, None, at)
    };
    for (id, steps) in [
        (
            A,
            vec![
                done(finance, Some(Status::Done)),
                done(role, Some(Status::Done)),
            ],
        ),
        (C, vec![done(finance, None)]),
    ] {
        let steps = grants::encode(&steps).expect("encode");
        exec(
            store,
            &format!("UPDATE requests SET steps = '{steps}' WHERE id = '{id}'"),
            &[],
        )
        .await;
    }
}

async fn run(store: &Store, query: Query, format: Format) -> String {
    let mut report = Report::new(store.clone(), query, format);
    let mut out = Vec::new();
    while let Some(chunk) = report.next_chunk().await.expect("report") {
        out.extend(chunk);
    }
    String::from_utf8(out).expect("utf-8")
}

fn july(tz: &str) -> Query {
    let tz = report::parse_tz(Some(tz)).expect("tz");
    Query {
        scope: Scope::Period {
            from: report::parse_bound("2026-07-01", tz, false).expect("from"),
            to: report::parse_bound("2026-07-31", tz, true).expect("to"),
        },
        resource: None,
        person: None,
        tenant: None,
        tz,
    }
}

/// Parsed back by Python's `csv` module: a standard reader, not ours.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", "import csv, io, json, sys; print(json.dumps(list(csv.reader(io.StringIO(sys.stdin.read(), newline='')))))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3 ran");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("rows")
}

#[tokio::test]
async fn the_access_report_matches_the_history() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    seed(&store).await;

    let json: Value =
        serde_json::from_str(&run(&store, july("UTC"), Format::Json).await).expect("json");
    assert_eq!(
        json,
        json!([{
            "ticket": "IT-1",
            "ticket_url": "https://acme.atlassian.net/browse/IT-1",
            "requested_at": "2026-07-01T09:00:00Z",
            "requester": "alice@example.com",
            "for": "alice@example.com",
            "resource": "netsuite",
            "level": "admin",
            "justification": "Quarter close, \"urgent\"\nsee =1+1",
            "workflow": "finance-two-stage",
            "workflow_version": "v7",
            "extension_of": null,
            "state": "expired",
            "approvals": [
                {"stage": 1, "who": "bob@example.com", "verdict": "approved", "when": "2026-07-01T09:30:00Z", "how": "comment"},
                {"stage": 2, "who": "carol@example.com", "verdict": "approved", "when": "2026-07-01T10:00:00Z", "how": "jsm_approval"}
            ],
            "granted_at": "2026-07-01T10:05:00Z",
            "granted_where": [
                {"target": "idp_group:finance", "granted": "done", "revoked": "done", "error": null},
                {"target": "jira_project_role:FIN:Administrators", "granted": "done", "revoked": "done", "error": null}
            ],
            "expires_at": "2026-07-08T10:05:00Z",
            "ended_at": "2026-07-08T10:06:00Z",
            "end_cause": "expired",
            "reason": "the access expired"
        }])
    );

    // In Berlin, July starts at 22:00 UTC on 30 June: B is in, and times are local.
    let rows = parse_csv(&run(&store, july("Europe/Berlin"), Format::Csv).await);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let header = &rows[0];
    let col = |row: &Vec<String>, name: &str| {
        row[header.iter().position(|h| h == name).expect(name)].clone()
    };
    assert_eq!(col(&rows[1], "ticket"), "IT-2");
    assert_eq!(col(&rows[1], "requested_at"), "2026-07-01T01:30:00+02:00");
    assert_eq!(
        col(&rows[1], "approvals"),
        "stage 1 declined by bob@example.com at 2026-07-01T10:00:00+02:00 via comment"
    );
    assert_eq!(col(&rows[1], "reason"), "not needed");
    assert_eq!(col(&rows[2], "ticket"), "IT-1");
    assert_eq!(
        col(&rows[2], "justification"),
        "Quarter close, \"urgent\"\nsee =1+1",
        "quotes and newlines survive"
    );
    assert_eq!(
        col(&rows[2], "granted_where"),
        "idp_group:finance (done, revoke done); jira_project_role:FIN:Administrators (done, revoke done)"
    );
    assert_eq!(col(&rows[2], "ended_at"), "2026-07-08T12:06:00+02:00");

    // Filters.
    let mut dave = july("Europe/Berlin");
    dave.person = Some("Dave@Example.com".into());
    let rows = parse_csv(&run(&store, dave, Format::Csv).await);
    assert_eq!(
        rows.iter()
            .skip(1)
            .map(|r| r[0].as_str())
            .collect::<Vec<_>>(),
        ["IT-2"]
    );

    let active = Query {
        scope: Scope::Active,
        resource: Some("netsuite".into()),
        person: None,
        tenant: None,
        tz: chrono_tz::Tz::UTC,
    };
    let rows = parse_csv(&run(&store, active, Format::Csv).await);
    assert_eq!(
        rows.iter()
            .skip(1)
            .map(|r| r[0].as_str())
            .collect::<Vec<_>>(),
        ["IT-3"]
    );
    assert_eq!(col(&rows[1], "expires_at"), "2026-12-01T09:00:00Z");

    // An empty period is a header (CSV) or an empty array (JSON), not an error.
    let mut none = july("UTC");
    none.resource = Some("nothing".into());
    assert_eq!(
        parse_csv(&run(&store, none.clone(), Format::Csv).await).len(),
        1
    );
    assert_eq!(
        serde_json::from_str::<Value>(&run(&store, none, Format::Json).await).expect("json"),
        json!([])
    );
}

#[tokio::test]
async fn the_report_command_writes_csv_to_stdout() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    seed(&store).await;
    let out = support::binary()
        .args([
            "report",
            "access",
            "--from",
            "2026-07-01",
            "--to",
            "2026-07-31",
            "--tz",
            "Europe/Berlin",
        ])
        .env("DATABASE_URL", db.url())
        .env("TOLLGATE_SECRET_KEY", support::test_secret_key())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = parse_csv(&String::from_utf8(out.stdout).expect("utf-8"));
    assert_eq!(
        rows.iter()
            .skip(1)
            .map(|r| r[0].as_str())
            .collect::<Vec<_>>(),
        ["IT-2", "IT-1"]
    );

    let bad = support::binary()
        .args([
            "report",
            "access",
            "--from",
            "yesterday",
            "--to",
            "2026-07-31",
        ])
        .env("DATABASE_URL", db.url())
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a date"));
}

#[tokio::test]
async fn the_report_api_streams_to_an_admin_token_only() {
    let app = support::spawn_app_with(
        tollgate::app::Mode::WebOnly,
        &[("TOLLGATE_API_TOKEN", "s3cret-token")],
    )
    .await;
    seed(&app.state.store).await;
    let url = app.url("/api/v1/reports/access?from=2026-07-01&to=2026-07-31&tz=Europe/Berlin");
    let get = |token: Option<&'static str>| {
        let mut request = app.client.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get(None).await.expect("sent").status(), 401);
    assert_eq!(get(Some("s3cret-tokeN")).await.expect("sent").status(), 401);
    let response = get(Some("s3cret-token")).await.expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let rows = parse_csv(&response.text().await.expect("body"));
    assert_eq!(
        rows.iter()
            .skip(1)
            .map(|r| r[0].as_str())
            .collect::<Vec<_>>(),
        ["IT-2", "IT-1"]
    );

    // The operator may narrow a report to one site.
    for (tenant, expected) in [("jira:acme", 2), ("jira:elsewhere", 0)] {
        let body = app
            .client
            .get(format!("{url}&tenant={tenant}"))
            .bearer_auth("s3cret-token")
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("body");
        assert_eq!(parse_csv(&body).len() - 1, expected, "{tenant}");
    }
    // A tenant key no site can have is a bad request, not an empty report.
    let response = app
        .client
        .get(format!("{url}&tenant=acme%0Ajira"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    let said = response.text().await.expect("body");
    assert!(said.contains("not a tenant key"), "{said}");

    let active: Value = app
        .client
        .get(app.url("/api/v1/reports/active?format=json"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(active.as_array().map(|a| a.len()), Some(1));
    assert_eq!(active[0]["ticket"], "IT-3");

    let bad = app
        .client
        .get(app.url("/api/v1/reports/access?from=soon&to=2026-07-31"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("sent");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("is not a date"));
    app.stop().await;

    // Without a configured token the API is closed, not open.
    let closed = support::spawn_app_with(tollgate::app::Mode::WebOnly, &[]).await;
    let response = closed
        .client
        .get(closed.url("/api/v1/reports/active"))
        .bearer_auth("anything")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 403);
    closed.stop().await;
}

/// A Jira administrator reads reports with the Connect token our pages get, limited to their
/// own site; the site is asked at each read; other users, other sites and forged tokens get
/// nothing, and Jira being down is a 503 to retry, not a refusal.
#[tokio::test]
async fn a_jira_administrator_reads_their_own_sites_reports_with_a_connect_token() {
    use tollgate_fakes::atlassian::connect::{FakeSite, InstallKeyServer, TEST_KEY_1};
    use tollgate_fakes::atlassian::{FakeAtlassian, FakeUser, Fault, World};

    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish("k1", TEST_KEY_1.1);
    let mut world = World::sample();
    for account in ["acc-admin", "acc-agent"] {
        world.users.push(FakeUser {
            account_id: account.into(),
            email: format!("{account}@acme.example"),
            display_name: account.into(),
            active: true,
            email_visible: true,
        });
    }
    world.administrators.insert("acc-admin".into());
    let cloud = FakeAtlassian::start(world, Default::default())
        .await
        .expect("cloud");
    let keys_url = keys.url();
    let app = support::spawn_app_with(
        tollgate::app::Mode::WebOnly,
        &[
            ("TOLLGATE_BASE_URL", "https://tollgate.example.com"),
            ("TOLLGATE_CONNECT_KEYS_URL", keys_url.as_str()),
        ],
    )
    .await;
    let site = FakeSite::jira(&app.url(""), "acme.atlassian.net", "k1").at(&cloud.site_url());
    cloud.install(site.fake_tenant(&site.descriptor().await.expect("descriptor")));
    assert_eq!(site.install().await.expect("install").status(), 204);

    // Another site's history (jira:acme) and one request of the installed site.
    seed(&app.state.store).await;
    exec(&app.state.store, &format!(
        "INSERT INTO requests (id, tenant, ticket_key, issue_id, state, requester_account, requester_email, \
         resource, level, justification, workflow, workflow_version, version, created_at, updated_at) \
         VALUES ('own', '{}', 'OPS-5', '5', 'declined', 'acc-gina', 'gina@example.com', 'netsuite', 'read', \
         'month end', 'finance-two-stage', 'v7', 1, {t}, {t})",
        site.client_key,
        t = ts("2026-07-10T12:00:00Z")
    ), &[]).await;

    let get = |path: &str, account: &str| {
        app.client
            .get(app.url(path))
            .header(
                "authorization",
                format!("JWT {}", site.context_token(account)),
            )
            .send()
    };
    let july = "/api/v1/reports/access?from=2026-07-01&to=2026-07-31";
    let response = get(july, "acc-admin").await.expect("sent");
    assert_eq!(response.status(), 200);
    let rows = parse_csv(&response.text().await.expect("body"));
    assert_eq!(
        rows.iter()
            .skip(1)
            .map(|r| r[0].as_str())
            .collect::<Vec<_>>(),
        ["OPS-5"],
        "only the administrator's own site"
    );
    let checks = cloud
        .recorded()
        .iter()
        .filter(|r| r.path == "/rest/api/3/permissions/check")
        .count();
    assert_eq!(checks, 1, "Jira was asked");

    // Asking for another site is refused, not quietly narrowed.
    let response = get(&format!("{july}&tenant=jira:acme"), "acc-admin")
        .await
        .expect("sent");
    assert_eq!(response.status(), 403);
    // Evidence: the own site's ticket; another site's ticket is not there for them.
    assert_eq!(
        get("/api/v1/evidence/OPS-5", "acc-admin")
            .await
            .expect("sent")
            .status(),
        200
    );
    assert_eq!(
        get("/api/v1/evidence/IT-1", "acc-admin")
            .await
            .expect("sent")
            .status(),
        404
    );
    // A path that names no ticket is refused as such, before anything is read.
    let response = get("/api/v1/evidence/OPS-5x", "acc-admin")
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("is not a Jira issue key"),
        "the error says what is wrong"
    );

    // Not an administrator; an account Jira does not know.
    for account in ["acc-agent", "acc-nobody"] {
        let response = get("/api/v1/reports/active", account).await.expect("sent");
        assert_eq!(response.status(), 403, "{account}");
        assert!(!response.text().await.expect("body").contains("OPS-5"));
    }
    // Administrator no more: the next read is refused.
    cloud.world().administrators.clear();
    assert_eq!(get(july, "acc-admin").await.expect("sent").status(), 403);
    cloud.world().administrators.insert("acc-admin".into());

    // Signed with another secret; no token at all.
    let mut forged = site.clone();
    forged.shared_secret = "not-the-secret".into();
    let response = app
        .client
        .get(app.url(july))
        .header(
            "authorization",
            format!("JWT {}", forged.context_token("acc-admin")),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    assert_eq!(
        app.client
            .get(app.url(july))
            .send()
            .await
            .expect("sent")
            .status(),
        401
    );
    // No API token is configured: a bearer token opens nothing.
    let response = app
        .client
        .get(app.url(july))
        .bearer_auth("guess")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 403);

    // Jira unavailable through every retry: try again later, not "you are no admin".
    cloud.inject(Fault::unavailable("/rest/api/3/permissions/check", 10));
    let response = get(july, "acc-admin").await.expect("sent");
    assert_eq!(response.status(), 503);
    assert!(cloud.violations().is_empty(), "{:?}", cloud.violations());
    app.stop().await;
}

/// The evidence bundle checks out on its own: each of the ticket's events hashes to what it
/// says, the links run unbroken from them to a checkpoint, and the checkpoint is signed.
#[tokio::test]
async fn an_evidence_bundle_verifies_without_the_database() {
    use sha2::{Digest, Sha256};
    use tollgate::audit::checkpoint::{Checkpoint, CheckpointKey};
    use tollgate::audit::{Actor, Event, evidence};

    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    seed(&store).await;
    let id = uuid::Uuid::now_v7();
    exec(&store, &format!(
        "INSERT INTO requests (id, tenant, ticket_key, issue_id, state, requester_account, requester_email, \
         resource, justification, routing, version, created_at, updated_at) VALUES ('{id}', 'jira:acme', 'IT-9', '9', \
         'active', 'acc-gina', 'gina@example.com', 'netsuite', 'month end', '{{\"stages\":[{{\"why\":\"manager of gina\"}}]}}', 1, {t}, {t})",
        t = ts("2026-07-02T09:00:00Z")
    ), &[]).await;
    // The ticket's events, with another ticket's in between (their links, not their content).
    use tollgate::lifecycle::Action as Did;
    for (n, action) in [
        Some(Did::RequestReceived),
        None,
        Some(Did::DecisionApproved),
        None,
        Some(Did::GrantActive),
    ]
    .iter()
    .enumerate()
    {
        let mut tx = store.begin().await.expect("begin");
        tollgate::audit::append(
            &mut tx,
            &Event {
                at: chrono::Utc::now(),
                tenant: Some("jira:acme".into()),
                request_id: if action.is_none() {
                    Some(uuid::Uuid::now_v7())
                } else {
                    Some(id)
                },
                ticket_key: Some(if action.is_none() {
                    format!("IT-{}", 100 + n)
                } else {
                    "IT-9".into()
                }),
                actor: Actor::System("test".into()),
                action: action.unwrap_or(Did::RequestReceived).into(),
                target: Some("netsuite".into()),
                details: json!({"n": n}),
                workflow_version: None,
            },
        )
        .await
        .expect("append");
        tx.commit().await.expect("commit");
    }
    let secret = tollgate::secrets::SecretKey::generate().expect("key");
    let key = CheckpointKey::derive(&secret);
    let bundle = evidence::bundle(
        &store,
        &key,
        None,
        &tollgate::ids::TicketKey::parse("IT-9").expect("key"),
    )
    .await
    .expect("bundle");

    assert_eq!(
        bundle["requests"][0]["routing"]["stages"][0]["why"],
        "manager of gina"
    );
    let events = bundle["events"].as_array().expect("events");
    assert_eq!(
        events
            .iter()
            .map(|e| e["seq"].as_i64().unwrap_or(0))
            .collect::<Vec<_>>(),
        [1, 3, 5]
    );
    for e in events {
        let prev = e["prev_hash"].as_str().expect("prev");
        let canonical = e["canonical"].as_str().expect("canonical");
        let hash = Sha256::digest(format!("{prev}{canonical}").as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            e["hash"],
            hex.as_str(),
            "event {} hashes to its hash",
            e["seq"]
        );
    }
    let links = bundle["links"].as_array().expect("links");
    assert_eq!(links.len(), 5);
    for pair in links.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "unbroken links");
    }
    for e in events {
        let link = links.iter().find(|l| l["seq"] == e["seq"]).expect("linked");
        assert_eq!(link["hash"], e["hash"]);
    }
    let cp = &bundle["checkpoint"];
    assert_eq!(
        cp["seq"], 5,
        "a checkpoint was written at the head for the bundle"
    );
    assert_eq!(cp["hash"], links[4]["hash"]);
    let checkpoint = Checkpoint {
        chain: cp["chain"].as_str().expect("chain").into(),
        seq: cp["seq"].as_i64().expect("seq"),
        hash: cp["hash"].as_str().expect("hash").into(),
        at: cp["at"].as_str().expect("at").parse().expect("time"),
        mac: cp["mac"].as_str().expect("mac").into(),
        key_id: cp["key_id"].as_str().map(str::to_string),
    };
    assert!(
        checkpoint.key_id.is_some(),
        "the bundle names the signing key"
    );
    assert!(key.verifies(&checkpoint));

    // The script docs/audit.md gives auditors (jq and sha256sum) agrees, and sees an edit.
    let has_jq = std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_ok();
    if crate::support::env::require(has_jq, "jq (for docs/check-evidence.sh)") {
        let dir = tempfile::tempdir().expect("dir");
        let check = |bundle: &Value| {
            let path = dir.path().join("bundle.json");
            std::fs::write(&path, bundle.to_string()).expect("write");
            std::process::Command::new("sh")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/docs/check-evidence.sh"
                ))
                .arg(&path)
                .output()
                .expect("sh")
        };
        let ok = check(&bundle);
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stdout)
        );
        assert!(String::from_utf8_lossy(&ok.stdout).starts_with("OK: 3 events"));
        let mut edited = bundle.clone();
        edited["events"][1]["canonical"] = Value::String(
            events[1]["canonical"]
                .as_str()
                .unwrap_or("")
                .replace("approved", "declined"),
        );
        let caught = check(&edited);
        assert!(!caught.status.success());
        assert!(String::from_utf8_lossy(&caught.stdout).contains("event 3 does not hash"));
    }

    assert!(matches!(
        evidence::bundle(
            &store,
            &key,
            None,
            &tollgate::ids::TicketKey::parse("IT-404").expect("key")
        )
        .await,
        Err(evidence::EvidenceError::NotFound(_))
    ));
}
