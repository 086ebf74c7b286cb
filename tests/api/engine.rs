//! End to end through the real app and the fake Jira/JSM: a signed install, signed webhooks,
//! the request routed through two stages (manager, CFO) from the shipped workflows and org
//! chart, approved once through a JSM approval and once by a comment; refusals for a
//! non-approver and for the requester; duplicates that change nothing; the audit chain intact.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tollgate::app::Mode;
use tollgate::clock::SystemClock;
use tollgate::lifecycle::State;
use tollgate::store::requests;
use tollgate_fakes::atlassian::connect::{
    FakeSite, InstallKeyServer, TEST_KEY_1, issue_created, issue_updated,
};
use tollgate_fakes::atlassian::{FakeAtlassian, FakeUser, World};

use crate::support::{self, TestApp, TestDatabase, eventually, tenant_key, ticket_key};

const ERIN: (&str, &str) = ("acc-erin", "Erin Evans");
const DAN: (&str, &str) = ("acc-dan", "Dan Diaz");
const CAROL: (&str, &str) = ("acc-carol", "Carol Chen");
const FRANK: (&str, &str) = ("acc-frank", "Frank Fox");

fn world() -> World {
    let mut world = World::sample();
    for (account, name) in [ERIN, DAN, CAROL, FRANK] {
        let email = format!("{}@acme.example", name.to_lowercase().replace(' ', "."));
        world.users.push(FakeUser {
            account_id: account.into(),
            email,
            display_name: name.into(),
            active: true,
            email_visible: true,
        });
    }
    world.add_issue("IT-7", ERIN.0);
    world
}

struct Env {
    app: TestApp,
    cloud: FakeAtlassian,
    site: FakeSite,
    _keys: InstallKeyServer,
}

async fn start(db: TestDatabase) -> Env {
    start_with(db, &[]).await
}

async fn start_with(db: TestDatabase, overrides: &[(&str, &str)]) -> Env {
    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish("k1", TEST_KEY_1.1);
    let cloud = FakeAtlassian::start(world(), Default::default())
        .await
        .expect("cloud");
    let keys_url = keys.url();
    let mut settings = vec![
        ("TOLLGATE_BASE_URL", "https://tollgate.example.com"),
        ("TOLLGATE_CONNECT_KEYS_URL", keys_url.as_str()),
    ];
    settings.extend_from_slice(overrides);
    let app = support::spawn_app_on(db, Mode::All, &settings, Arc::new(SystemClock)).await;
    let site = FakeSite::jira(&app.url(""), "acme.atlassian.net", "k1").at(&cloud.site_url());
    let descriptor = site.descriptor().await.expect("descriptor");
    cloud.install(site.fake_tenant(&descriptor));
    assert_eq!(site.install().await.expect("install").status(), 204);
    let synced = eventually(Duration::from_secs(15), || async { app.state.org.index() }).await;
    assert!(synced.is_some(), "the org chart was synced");
    Env {
        app,
        cloud,
        site,
        _keys: keys,
    }
}

impl Env {
    async fn webhook(&self, path: &str, delivery: &str, body: &serde_json::Value) {
        let response = self
            .site
            .send_webhook(path, delivery, body)
            .await
            .expect("sent");
        assert_eq!(
            response.status(),
            204,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }

    /// `who` approves IT-7's JSM approval (whose final decision is then `final_decision`), and
    /// Jira says so with delivery `delivery`.
    async fn answer_in_jsm(&self, who: (&str, &str), final_decision: &str, delivery: &str) {
        self.cloud
            .world()
            .issues
            .get_mut("IT-7")
            .expect("IT-7")
            .approvals = vec![json!({
            "id": "1", "name": "Manager", "finalDecision": final_decision,
            "approvers": [{"approver": {"accountId": who.0}, "approverDecision": "approved"}],
        })];
        self.webhook(
            "/connect/webhooks/issue-updated",
            delivery,
            &issue_updated("IT-7", who),
        )
        .await;
    }

    /// Erin files IT-7 (its `jira:issue_created` webhook, delivery `d-1`).
    async fn file_it_7(&self) {
        self.webhook(
            "/connect/webhooks/issue-created",
            "d-1",
            &issue_created("IT-7", ERIN.0),
        )
        .await;
    }

    /// Waits until the ticket has `n` comments; returns their text.
    async fn comments(&self, n: usize) -> Vec<String> {
        let found = eventually(Duration::from_secs(20), || async {
            let comments = self.cloud.world().issues["IT-7"].app_comments();
            (comments.len() >= n).then_some(comments)
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "expected {n} comments, have {:?}",
                self.cloud.world().issues["IT-7"].app_comments()
            )
        })
    }

    /// Waits for the ticket to reach `status` (transitions follow a notice's comment).
    async fn ticket_reaches(&self, status: &str) -> bool {
        // The notice is a job of its own: on a loaded machine it takes its time.
        eventually(Duration::from_secs(20), || async {
            (self.cloud.world().issues["IT-7"].status == status).then_some(())
        })
        .await
        .is_some()
    }

    async fn request(&self) -> requests::Request {
        requests::by_ticket(
            &self.app.state.store,
            &tenant_key(&self.site.client_key),
            &ticket_key("IT-7"),
        )
        .await
        .expect("read")
        .expect("a request for IT-7")
    }
}

#[tokio::test]
async fn a_request_is_routed_and_approved_in_the_ticket_both_ways() {
    let env = start(TestDatabase::create().await).await;
    env.file_it_7().await;
    let comments = env.comments(1).await;
    assert!(comments[0].contains("NetSuite"), "{}", comments[0]);
    assert!(
        comments[0].contains("Stage 1, manager: 1 of Dan Diaz (now)"),
        "{}",
        comments[0]
    );
    assert!(
        comments[0].contains("Stage 2, cfo: 1 of Carol Chen"),
        "{}",
        comments[0]
    );
    // Participants follow the comment in the same notice.
    let participants = eventually(Duration::from_secs(5), || async {
        let p = env.cloud.world().issues["IT-7"].participants.clone();
        (!p.is_empty()).then_some(p)
    })
    .await;
    assert_eq!(participants, Some(vec![DAN.0.to_string()]));
    // The JSM Approvers field (mapped in intake.yaml) holds the open stage's approvers.
    let approvers_field = || {
        env.cloud.world().issues["IT-7"]
            .custom
            .get("customfield_10054")
            .cloned()
    };
    let shown = eventually(Duration::from_secs(5), || async { approvers_field() }).await;
    assert_eq!(shown, Some(json!([{"accountId": DAN.0}])));
    let request = env.request().await;
    assert_eq!((request.state, request.stage), (State::Pending, 0));
    assert_eq!(
        request.requester_email.as_deref(),
        Some("erin.evans@acme.example")
    );
    assert_eq!(request.duration_seconds, Some(14 * 86_400));

    // The same delivery again is dropped at intake; the ticket is told nothing new.
    env.file_it_7().await;

    // Frank is nobody's approver here; Erin asked for it.
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-2",
        &env.cloud.comment_by("IT-7", FRANK, "/approve"),
    )
    .await;
    let comments = env.comments(2).await;
    assert!(
        comments[1].contains(
            "Frank Fox, your decision was not counted: only Dan Diaz may decide stage 1 (manager)."
        ),
        "{}",
        comments[1]
    );
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-3",
        &env.cloud.comment_by("IT-7", ERIN, "/approve I need it"),
    )
    .await;
    let comments = env.comments(3).await;
    assert!(
        comments[2].contains("Erin Evans, your decision was not counted"),
        "{}",
        comments[2]
    );
    // Ordinary conversation is not a decision.
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-4",
        &env.cloud.comment_by("IT-7", DAN, "Looking at it"),
    )
    .await;

    // Dan approves in JSM's approval panel.
    env.answer_in_jsm(DAN, "approved", "d-5").await;
    let comments = env.comments(4).await;
    assert!(
        comments[3]
            .contains("Dan Diaz approved stage 1 (manager). Next: stage 2, cfo, with Carol Chen."),
        "{}",
        comments[3]
    );
    assert_eq!(env.request().await.stage, 1);
    let moved_on = eventually(Duration::from_secs(5), || async {
        approvers_field().filter(|v| *v == json!([{"accountId": CAROL.0}]))
    })
    .await;
    assert!(
        moved_on.is_some(),
        "the Approvers field follows the open stage"
    );
    // Jira sends more updates for the same answered approval: nothing is counted twice.
    env.webhook(
        "/connect/webhooks/issue-updated",
        "d-6",
        &issue_updated("IT-7", DAN),
    )
    .await;

    // Carol approves by comment.
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-7",
        &env.cloud
            .comment_by("IT-7", CAROL, "/approve within policy"),
    )
    .await;
    // The approval's notice and the refused grant's are separate jobs, posted in the order
    // they were queued.
    let comments = env.comments(5).await;
    assert!(
        comments[4].starts_with("Approved. Carol Chen gave the last approval: \"within policy\""),
        "{comments:#?}"
    );
    let status = eventually(Duration::from_secs(5), || async {
        let status = env.cloud.world().issues["IT-7"].status.clone();
        (status == "Approved").then_some(status)
    })
    .await;
    assert!(status.is_some(), "the ticket was transitioned");
    // The org chart here is org.yaml, which Tollgate cannot change: the grant is refused
    // whole, with the reason in the ticket (the grants suite covers real IdPs).
    let comments = env.comments(6).await;
    assert!(
        comments[5].contains("could not be granted") && comments[5].contains("org.yaml"),
        "{comments:#?}"
    );
    let request = env.request().await;
    assert_eq!(request.state, State::Failed);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        env.cloud.world().issues["IT-7"].app_comments().len(),
        6,
        "no comment for the ignored events"
    );

    // install, received, routed, two refusals, two approvals, the refused grant.
    let chain = tollgate::audit::verify_chain(&env.app.state.store, &env.site.client_key)
        .await
        .expect("read");
    assert_eq!(chain, Ok(8));
}

/// A JSM approval answered by someone who is not the stage's approver is refused by name:
/// JSM names approvers in full, and no answer in a ticket shows a raw account id (the fake
/// fails any test whose comments do).
#[tokio::test]
async fn a_refused_jsm_approval_names_the_person() {
    let env = start(TestDatabase::create().await).await;
    env.file_it_7().await;
    env.comments(1).await;
    env.answer_in_jsm(FRANK, "pending", "d-2").await;
    let comments = env.comments(2).await;
    assert_eq!(
        comments[1],
        "Frank Fox, your decision was not counted: only Dan Diaz may decide stage 1 (manager)."
    );
    assert_eq!(env.request().await.stage, 0);
    assert!(env.cloud.take_violations().is_empty());
}

#[tokio::test]
async fn a_decline_by_comment_ends_the_request_with_its_reason() {
    let env = start(TestDatabase::create().await).await;
    // The Resource field offers the catalog's names (`workflows jsm-options`).
    env.cloud
        .world()
        .issues
        .get_mut("IT-7")
        .expect("IT-7")
        .custom
        .insert(
            "customfield_10050".into(),
            json!({"id": "10100", "value": "NetSuite (finance ERP)"}),
        );
    env.file_it_7().await;
    env.comments(1).await;
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-2",
        &env.cloud
            .comment_by("IT-7", DAN, "/decline not during the freeze"),
    )
    .await;
    let comments = env.comments(2).await;
    assert_eq!(
        comments[1],
        "Declined by Dan Diaz: \"not during the freeze\"."
    );
    let request = env.request().await;
    assert_eq!(request.state, State::Declined);
    assert_eq!(
        request.reason.as_deref(),
        Some("declined by Dan Diaz: not during the freeze")
    );
    // A late approval changes nothing but is answered.
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-3",
        &env.cloud.comment_by("IT-7", DAN, "/approve"),
    )
    .await;
    let comments = env.comments(3).await;
    assert!(
        comments[2].contains("this request is already declined"),
        "{}",
        comments[2]
    );
    assert_eq!(env.request().await.state, State::Declined);
}

#[tokio::test]
async fn an_invalid_request_is_declined_with_what_to_fix() {
    let env = start(TestDatabase::create().await).await;
    env.cloud
        .world()
        .issues
        .get_mut("IT-7")
        .expect("IT-7")
        .custom
        .insert("customfield_10052".into(), json!("a fortnight"));
    env.file_it_7().await;
    let comments = env.comments(1).await;
    assert!(
        comments[0]
            .contains("cannot go ahead as filed: the duration `a fortnight` is not understood"),
        "{}",
        comments[0]
    );
    assert_eq!(env.request().await.state, State::Declined);
    let status = eventually(Duration::from_secs(5), || async {
        let status = env.cloud.world().issues["IT-7"].status.clone();
        (status == "Declined").then_some(status)
    })
    .await;
    assert!(status.is_some(), "the ticket was transitioned");
}

/// The shipped workflows with the finance workflow's clock shortened to seconds.
fn fast_workflows() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    for entry in std::fs::read_dir(&shipped).expect("workflows") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let text = text.replace(
            "timeouts: { remind_after: 24h, escalate_after: 48h, decline_after: 7d }",
            "timeouts: { remind_after: 1s, escalate_after: 2s, decline_after: 9s }",
        );
        std::fs::write(dir.path().join(path.file_name().expect("name")), text).expect("write");
    }
    dir
}

/// The shipped workflows on the fast clock, and IT-7 filed by Erin: the returned directory
/// must outlive the app.
async fn filed_on_a_fast_clock() -> (Env, tempfile::TempDir) {
    let workflows = fast_workflows();
    let dir = workflows.path().display().to_string();
    let env = start_with(
        TestDatabase::create().await,
        &[("TOLLGATE_WORKFLOWS_DIR", &dir)],
    )
    .await;
    env.file_it_7().await;
    (env, workflows)
}

/// Erin moves to Frank's team in the org.yaml beside the workflows.
fn move_erin_to_franks_team(workflows: &tempfile::TempDir) {
    let org = workflows.path().join("org.yaml");
    let text = std::fs::read_to_string(&org).expect("org");
    let moved = text.replace(
        "email: erin.evans@acme.example, name: Erin Evans, title: Accountant, department: Finance, cost_center: CC-210, manager: dan.diaz@acme.example",
        "email: erin.evans@acme.example, name: Erin Evans, title: Accountant, department: Finance, cost_center: CC-210, manager: frank.fox@acme.example",
    );
    assert_ne!(moved, text, "the test edits Erin's manager");
    std::fs::write(&org, moved).expect("write");
}

#[tokio::test]
async fn reminders_escalation_and_the_deadline_survive_a_restart() {
    let (env, workflows) = filed_on_a_fast_clock().await;
    let dir = workflows.path().display().to_string();
    env.comments(1).await;

    // The process stops while the request is pending; a new one takes over its timers.
    let Env {
        app,
        cloud,
        site,
        _keys,
    } = env;
    let key = app.state.secret_key.to_base64();
    let db = app.stop().await;
    let app = support::spawn_app_on(
        db,
        Mode::All,
        &[
            ("TOLLGATE_WORKFLOWS_DIR", &dir),
            ("TOLLGATE_SECRET_KEY", &key),
        ],
        Arc::new(SystemClock),
    )
    .await;
    let env = Env {
        app,
        cloud,
        site,
        _keys,
    };

    let declined = eventually(Duration::from_secs(30), || async {
        let request = env.request().await;
        (request.state == State::Declined).then_some(request)
    })
    .await
    .expect("declined when the deadline passed");
    assert_eq!(declined.reason.as_deref(), Some("no decision within 9s"));
    let all = eventually(Duration::from_secs(20), || async {
        let comments = env.comments(1).await.join("\n");
        (comments.contains("Declined:") && comments.contains("Grace Hopper")).then_some(comments)
    })
    .await
    .expect("the ticket was told it was declined");
    assert!(
        all.contains("Reminder: this request is waiting for Dan Diaz to decide stage 1 (manager)."),
        "{all}"
    );
    assert!(
        all.contains("within 2s: Carol Chen can now decide it as well as Dan Diaz."),
        "{all}"
    );
    assert!(
        all.contains("Declined: \"no decision within 9s\"."),
        "{all}"
    );
    // Escalated up the chain every 2 s until nobody is above (Grace is the CEO), then the
    // 9 s deadline; each escalation adds, nobody loses their say.
    assert!(
        all.contains("Grace Hopper can now decide it as well as Dan Diaz, Carol Chen."),
        "{all}"
    );
    let plan = declined.plan.expect("plan");
    let names: Vec<&str> = plan.stages[0]
        .approvers
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["Dan Diaz", "Carol Chen", "Grace Hopper"],
        "{plan:?}"
    );
    let chain = tollgate::audit::verify_chain(&env.app.state.store, &env.site.client_key)
        .await
        .expect("read");
    assert!(chain.as_ref().is_ok_and(|n| *n >= 6), "{chain:?}");
}

/// A stage escalated to the approver's manager, then decided by `decider`: whoever decides,
/// the original approver or the manager added beside them, the decision counts.
async fn escalated_then_decided_by(decider: (&str, &str)) {
    let (env, _workflows) = filed_on_a_fast_clock().await;
    let escalated = eventually(Duration::from_secs(20), || async {
        let comments = env.comments(1).await.join("\n");
        comments
            .contains("Carol Chen can now decide it as well as Dan Diaz.")
            .then_some(())
    })
    .await;
    assert!(escalated.is_some(), "stage 1 was escalated to Carol");
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-2",
        &env.cloud
            .comment_by("IT-7", decider, "/approve late but fine"),
    )
    .await;
    let approved = eventually(Duration::from_secs(10), || async {
        let comments = env.comments(1).await;
        comments
            .into_iter()
            .find(|c| c.contains("approved stage 1 (manager)") || c.contains("not counted"))
    })
    .await
    .expect("the decision was answered");
    assert!(
        approved.starts_with(&format!(
            "{} approved stage 1 (manager): \"late but fine\"",
            decider.1
        )),
        "{approved}"
    );
    assert_eq!(env.request().await.stage, 1, "stage 2 is open");
}

#[tokio::test]
async fn after_an_escalation_the_original_approver_still_decides() {
    escalated_then_decided_by(DAN).await;
}

#[tokio::test]
async fn after_an_escalation_the_added_manager_decides() {
    escalated_then_decided_by(CAROL).await;
}

#[tokio::test]
async fn cancelling_the_ticket_cancels_the_request() {
    let env = start(TestDatabase::create().await).await;
    env.file_it_7().await;
    env.comments(1).await;
    env.cloud
        .world()
        .issues
        .get_mut("IT-7")
        .expect("IT-7")
        .status = "Canceled".into();
    env.webhook(
        "/connect/webhooks/issue-updated",
        "d-2",
        &issue_updated("IT-7", ERIN),
    )
    .await;
    let cancelled = eventually(Duration::from_secs(10), || async {
        let request = env.request().await;
        (request.state == State::Cancelled).then_some(request)
    })
    .await;
    assert!(
        cancelled.is_some(),
        "the request was cancelled with its ticket"
    );
    // A decision afterwards changes nothing.
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-3",
        &env.cloud.comment_by("IT-7", DAN, "/approve"),
    )
    .await;
    let comments = env.comments(2).await;
    assert!(
        comments[1].contains("this request is already cancelled"),
        "{}",
        comments[1]
    );
    assert_eq!(env.request().await.state, State::Cancelled);
}

#[tokio::test]
async fn two_replicas_receiving_the_same_decision_apply_it_once() {
    let env = start(TestDatabase::create().await).await;
    env.file_it_7().await;
    env.comments(1).await;
    // A second replica (web and worker) on the same database and secret key.
    let key = env.app.state.secret_key.to_base64();
    let replica = support::spawn_app_on(
        env.app.db.share(),
        Mode::All,
        &[("TOLLGATE_SECRET_KEY", &key)],
        Arc::new(SystemClock),
    )
    .await;
    let mut via_replica = env.site.clone();
    via_replica.app_url = replica.url("").trim_end_matches('/').to_string();
    // Jira delivers the decision to both (two deliveries of one comment, as after a retry
    // that reached the other replica), at the same moment.
    let body = env.cloud.comment_by("IT-7", DAN, "/approve");
    let (a, b) = tokio::join!(
        env.site
            .send_webhook("/connect/webhooks/comment-created", "d-2", &body),
        via_replica.send_webhook("/connect/webhooks/comment-created", "d-3", &body),
    );
    assert_eq!(a.expect("sent").status(), 204);
    assert_eq!(b.expect("sent").status(), 204);
    let advanced = eventually(Duration::from_secs(15), || async {
        let request = env.request().await;
        (request.stage == 1).then_some(request)
    })
    .await;
    assert!(
        advanced.is_some(),
        "the decision moved the request to stage 2"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let comments = env.comments(2).await;
    assert_eq!(
        comments.len(),
        2,
        "one routing comment, one stage comment: {comments:?}"
    );
    // install, received, routed, one approval: no fork, no second approval.
    let chain = tollgate::audit::verify_chain(&env.app.state.store, &env.site.client_key)
        .await
        .expect("read");
    assert_eq!(chain, Ok(4));
    drop(replica);
}

#[tokio::test]
async fn a_ticket_whose_webhook_failed_is_recovered() {
    let env = start(TestDatabase::create().await).await;
    // Jira gave up delivering IT-7's creation (Tollgate was down for its retries).
    let body = issue_created("IT-7", ERIN.0).to_string();
    let url = format!("{}/connect/webhooks/issue-created", env.app.url(""));
    env.cloud
        .world()
        .failed_webhooks
        .push(("failed-1".into(), body, url, 1_764_300_000_000));
    // IT-7's failed webhook.
    assert_eq!(
        tollgate::engine::recovery::recover(&env.app.state)
            .await
            .expect("recover"),
        1
    );
    let comments = env.comments(1).await;
    assert!(
        comments[0].contains("Stage 1, manager: 1 of Dan Diaz"),
        "{}",
        comments[0]
    );
    assert_eq!(env.request().await.state, State::Pending);
    // The next read starts after it; the site's other tickets are too new for the safety net.
    assert_eq!(
        tollgate::engine::recovery::recover(&env.app.state)
            .await
            .expect("again"),
        0
    );
    // A ticket an hour old whose webhook never reached even the failed list: the safety net.
    env.cloud.world().add_issue("IT-8", ERIN.0).created =
        chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(
        tollgate::engine::recovery::recover(&env.app.state)
            .await
            .expect("net"),
        1
    );
    let taken = requests::by_ticket(
        &env.app.state.store,
        &tenant_key(&env.site.client_key),
        &ticket_key("IT-8"),
    )
    .await;
    assert_eq!(taken.expect("read").map(|r| r.state), Some(State::Pending));
}

#[tokio::test]
async fn an_org_change_while_pending_re_resolves_the_open_stage() {
    let (env, workflows) = filed_on_a_fast_clock().await;
    env.comments(1).await;
    move_erin_to_franks_team(&workflows);
    let state = &env.app.state;
    let connector = tollgate::idp::Connector::new(&state.config.idp.source, &state.store);
    tollgate::people::sync::sync(
        &state.store,
        &connector,
        &SystemClock,
        false,
        &tollgate::people::sync::Quiet,
    )
    .await
    .expect("sync");
    assert!(state.org.refresh(&state.store).await.expect("refresh"));
    assert_eq!(
        tollgate::engine::reresolve::after_org_change(state)
            .await
            .expect("re-resolve"),
        1
    );
    let comments = env.comments(2).await;
    assert!(
        comments.iter().any(|c| c.contains(
            "The org chart changed: stage 1 (manager) now goes to Frank Fox, instead of Dan Diaz."
        )),
        "{comments:?}"
    );
    // Frank decides now; Dan no longer can.
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-2",
        &env.cloud.comment_by("IT-7", FRANK, "/approve"),
    )
    .await;
    let advanced = eventually(Duration::from_secs(10), || async {
        (env.request().await.stage == 1).then_some(())
    })
    .await;
    assert!(advanced.is_some(), "Frank's approval counted");
}

/// The same org change synced by `tollgate org sync` (another process): the running service
/// notices the snapshot, moves the open stage and says so; the replaced approver's decision is
/// refused.
#[tokio::test]
async fn an_org_change_synced_by_the_cli_moves_the_open_stage() {
    let (env, workflows) = filed_on_a_fast_clock().await;
    env.comments(1).await;
    move_erin_to_franks_team(&workflows);
    tollgate::cli::org_sync(&env.app.state.config, false)
        .await
        .expect("the CLI synced");
    let told = eventually(Duration::from_secs(20), || async {
        env.comments(1).await.into_iter().find(|c| {
            c.contains("The org chart changed: stage 1 (manager) now goes to Frank Fox, instead of Dan Diaz.")
        })
    })
    .await;
    assert!(told.is_some(), "the ticket was told the stage moved");
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-2",
        &env.cloud.comment_by("IT-7", DAN, "/approve"),
    )
    .await;
    let refused = eventually(Duration::from_secs(10), || async {
        env.comments(1)
            .await
            .into_iter()
            .find(|c| c.starts_with("Dan Diaz, your decision was not counted"))
    })
    .await;
    assert!(refused.is_some(), "Dan's approval was refused");
    assert_eq!(env.request().await.stage, 0);
}

/// A joiner synced by `tollgate org sync` (another process) files a ticket at once, and a
/// worker that has not yet noticed the new snapshot (each looks every 5 s) takes the event:
/// the ticket waits for the chart and is then routed; it is not declined as "not in the org
/// chart".
#[tokio::test]
async fn a_joiner_filing_before_a_worker_reloads_the_chart_is_routed() {
    let workflows = fast_workflows();
    let dir = workflows.path().display().to_string();
    let settings = [("TOLLGATE_WORKFLOWS_DIR", dir.as_str())];
    let env = start_with(TestDatabase::create().await, &settings).await;
    let stale = support::idle_replica(&env.app, &settings, Arc::new(SystemClock)).await;
    {
        let mut world = env.cloud.world();
        world.users.push(FakeUser {
            account_id: "acc-gina".into(),
            email: "gina.gale@acme.example".into(),
            display_name: "Gina Gale".into(),
            active: true,
            email_visible: true,
        });
        world.add_issue("IT-9", "acc-gina");
    }
    let org = workflows.path().join("org.yaml");
    let text = std::fs::read_to_string(&org).expect("org");
    let erin = "  - { email: erin.evans@acme.example,";
    assert!(text.contains(erin), "the test adds Gina beside Erin");
    let gina = "  - { email: gina.gale@acme.example, name: Gina Gale, title: Accountant, department: Finance, cost_center: CC-210, manager: dan.diaz@acme.example }\n";
    std::fs::write(&org, text.replacen(erin, &format!("{gina}{erin}"), 1)).expect("write");
    tollgate::cli::org_sync(&env.app.state.config, false)
        .await
        .expect("the CLI synced");

    let store = &env.app.state.store;
    let tenant = &env.site.client_key;
    let body = issue_created("IT-9", "acc-gina");
    let now = chrono::Utc::now();
    let event = support::store_event(store, tenant, "d-9", "jira:issue_created", &body, now).await;
    let waited = tollgate::engine::events::process_one(stale.state(), event)
        .await
        .expect("recorded");
    assert!(
        matches!(waited, tollgate::engine::events::Processed::RetryAt(_)),
        "{waited:?}"
    );
    let filed = requests::by_ticket(store, &tenant_key(tenant), &ticket_key("IT-9"))
        .await
        .expect("read");
    assert!(filed.is_none(), "not declined: {filed:?}");
    // Its poller loads the chart; the event's retry routes the ticket.
    stale.state().org.refresh(store).await.expect("reload");
    let done = tollgate::engine::events::process_one(stale.state(), event)
        .await
        .expect("processed");
    assert_eq!(done, tollgate::engine::events::Processed::Done);
    let routed = requests::by_ticket(store, &tenant_key(tenant), &ticket_key("IT-9"))
        .await
        .expect("read")
        .expect("IT-9 is a request");
    assert_eq!(
        (routed.state, routed.reason.as_deref()),
        (State::Pending, None),
        "routed, not declined"
    );
    assert_eq!(
        routed.requester_email.as_deref(),
        Some("gina.gale@acme.example")
    );
}

#[tokio::test]
async fn a_decision_arriving_before_its_ticket_is_applied_after_taking_it_in() {
    let workflows = fast_workflows();
    let dir = workflows.path().display().to_string();
    // This deployment's JSM workflow calls its approving transition "Start progress".
    let intake = workflows.path().join("intake.yaml");
    let text = std::fs::read_to_string(&intake)
        .expect("intake")
        .replace("approved: Approved", "approved: Start progress");
    std::fs::write(&intake, text).expect("write");
    let env = start_with(
        TestDatabase::create().await,
        &[("TOLLGATE_WORKFLOWS_DIR", &dir)],
    )
    .await;
    // Out of order: Dan's approval comes before Jira's issue_created for the ticket.
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-1",
        &env.cloud.comment_by("IT-7", DAN, "/approve"),
    )
    .await;
    let advanced = eventually(Duration::from_secs(10), || async {
        requests::by_ticket(
            &env.app.state.store,
            &tenant_key(&env.site.client_key),
            &ticket_key("IT-7"),
        )
        .await
        .expect("read")
        .filter(|r| r.stage == 1)
    })
    .await;
    assert!(advanced.is_some(), "taken in, then Dan's approval applied");
    // The late issue_created changes nothing.
    env.webhook(
        "/connect/webhooks/issue-created",
        "d-2",
        &issue_created("IT-7", ERIN.0),
    )
    .await;
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-3",
        &env.cloud.comment_by("IT-7", CAROL, "/approve"),
    )
    .await;
    assert!(
        env.ticket_reaches("In Progress").await,
        "the configured transition was used"
    );
    let state = env.request().await.state;
    assert!(
        matches!(state, State::Approved | State::Provisioning | State::Failed),
        "{state:?}"
    );
}

/// Dan's JSM approval (stage 1) and, a moment later, Carol's `/approve` comment (stage 2), 20
/// tickets for each order of arrival: processed together, or with the approval's webhook
/// delivered last. Carol's comment is judged on what Jira holds (the approval is re-read
/// before a refusal), so every approval counts and nobody is refused.
#[tokio::test]
async fn a_decision_is_judged_on_the_facts_whatever_order_its_events_arrive_in() {
    const TRIALS: usize = 20;
    let env = start(TestDatabase::create().await).await;
    for approval_last in [false, true] {
        let tickets: Vec<String> = (0..TRIALS)
            .map(|i| format!("IT-{}", if approval_last { 200 } else { 100 } + i))
            .collect();
        {
            let mut world = env.cloud.world();
            let fields = world.issues["IT-7"].custom.clone();
            for t in &tickets {
                world.add_issue(t, ERIN.0).custom = fields.clone();
            }
        }
        for t in &tickets {
            env.webhook(
                "/connect/webhooks/issue-created",
                &format!("{t}-c"),
                &issue_created(t, ERIN.0),
            )
            .await;
        }
        let state_of = |t: &str| {
            let (store, key, t) = (
                env.app.state.store.clone(),
                env.site.client_key.clone(),
                t.to_string(),
            );
            async move {
                requests::by_ticket(&store, &tenant_key(&key), &ticket_key(&t))
                    .await
                    .expect("read")
                    .map(|r| (r.state, r.stage))
            }
        };
        for t in &tickets {
            let pending = eventually(Duration::from_secs(20), || async {
                (state_of(t).await == Some((State::Pending, 0))).then_some(())
            })
            .await;
            assert!(pending.is_some(), "{t} was routed");
        }
        let sends = tickets.iter().map(|t| {
            let env = &env;
            async move {
                env.cloud.world().issues.get_mut(t.as_str()).expect("issue").approvals =
                    vec![json!({
                        "id": "1", "name": "Manager", "finalDecision": "approved",
                        "approvers": [{"approver": {"accountId": DAN.0}, "approverDecision": "approved"}],
                    })];
                let (a_id, a_body) = (format!("{t}-a"), issue_updated(t, DAN));
                let (c_id, c_body) = (format!("{t}-b"), env.cloud.comment_by(t, CAROL, "/approve"));
                let approval = env.webhook("/connect/webhooks/issue-updated", &a_id, &a_body);
                let comment = env.webhook("/connect/webhooks/comment-created", &c_id, &c_body);
                if approval_last {
                    comment.await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    approval.await;
                } else {
                    tokio::join!(approval, comment);
                }
            }
        });
        futures::future::join_all(sends).await;
        for t in &tickets {
            // Both approvals count: the request leaves `pending` (the grant then fails, as
            // org.yaml cannot be changed, which is not what this test is about).
            let decided = eventually(Duration::from_secs(30), || async {
                state_of(t)
                    .await
                    .filter(|(s, _)| *s != State::Pending)
                    .map(|(s, _)| s)
            })
            .await;
            let comments = env.cloud.world().issues[t.as_str()].app_comments();
            assert!(
                decided.is_some_and(|s| s != State::Declined),
                "{t} (approval last: {approval_last}): {decided:?} {comments:#?}"
            );
            assert!(
                !comments.iter().any(|c| c.contains("not counted")),
                "{t} (approval last: {approval_last}): {comments:#?}"
            );
        }
    }
}

/// A signed `comment_created` body is only a hint: a comment Jira does not have, or a real
/// comment whose author and text the body misstates, decides nothing. Jira is asked for the
/// comment by id, and the attempt is kept in the audit trail.
#[tokio::test]
async fn a_comment_counts_only_as_jira_holds_it() {
    let env = start(TestDatabase::create().await).await;
    env.file_it_7().await;
    env.comments(1).await;
    // A body naming a comment that was never written, with Dan's name and `/approve`.
    let mut forged = tollgate_fakes::atlassian::connect::comment_created("IT-7", DAN, "/approve");
    forged["comment"]["id"] = json!("77777");
    env.webhook("/connect/webhooks/comment-created", "f-1", &forged)
        .await;
    // A real comment (Erin saying thanks), its body rewritten to Dan's `/approve`.
    let mut rewritten = env.cloud.comment_by("IT-7", ERIN, "thanks!");
    rewritten["comment"]["author"] = json!({"accountId": DAN.0, "displayName": DAN.1});
    rewritten["comment"]["body"] = json!("/approve");
    env.webhook("/connect/webhooks/comment-created", "f-2", &rewritten)
        .await;
    let unverified = eventually(Duration::from_secs(10), || async {
        let events = tollgate::audit::events(
            &env.app.state.store,
            Some(&env.site.client_key),
            "comment.unverified",
        )
        .await
        .expect("events");
        (!events.is_empty()).then_some(events)
    })
    .await
    .expect("the forged comment is recorded");
    assert_eq!(unverified[0]["details"]["comment_id"], "77777");
    assert_eq!(unverified[0]["details"]["claimed_author"], DAN.0);
    let asked = |path: &str| {
        env.cloud
            .recorded()
            .iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .map(|r| r.status)
            .collect::<Vec<_>>()
    };
    assert_eq!(asked("/rest/api/3/issue/IT-7/comment/77777"), [404]);
    let real = rewritten["comment"]["id"].as_str().expect("id");
    let real_path = format!("/rest/api/3/issue/IT-7/comment/{real}");
    // The two events are processed in turn: wait for the second's read.
    let read = eventually(Duration::from_secs(10), || async {
        let asked = asked(&real_path);
        (!asked.is_empty()).then_some(asked)
    })
    .await;
    assert_eq!(read, Some(vec![200]));
    // Both events are processed, and nothing was decided.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let request = env.request().await;
    assert_eq!((request.state, request.stage), (State::Pending, 0));
    assert_eq!(env.comments(1).await.len(), 1, "no decision was announced");
    // Dan's real `/approve` counts.
    env.webhook(
        "/connect/webhooks/comment-created",
        "d-2",
        &env.cloud.comment_by("IT-7", DAN, "/approve"),
    )
    .await;
    let comments = env.comments(2).await;
    assert!(
        comments[1].contains("Dan Diaz approved stage 1"),
        "{comments:?}"
    );
}

/// Dan approves stage 1 in a comment and Carol stage 2 right after, but Carol's webhook
/// arrives first (Dan's is late): Carol's comment is judged on what Jira holds, so Dan's earlier
/// comment is applied first and both count; Dan's late webhook then changes nothing.
#[tokio::test]
async fn an_earlier_comment_whose_webhook_is_late_is_applied_first() {
    let env = start(TestDatabase::create().await).await;
    env.file_it_7().await;
    env.comments(1).await;
    let dan = env.cloud.comment_by("IT-7", DAN, "/approve fine by me");
    let carol = env
        .cloud
        .comment_by("IT-7", CAROL, "/approve within budget");
    env.webhook("/connect/webhooks/comment-created", "d-3", &carol)
        .await;
    let approved = eventually(Duration::from_secs(15), || async {
        let request = env.request().await;
        (request.state != State::Pending).then_some(request.state)
    })
    .await;
    assert!(
        approved.is_some_and(|s| s != State::Declined),
        "{approved:?}"
    );
    env.webhook("/connect/webhooks/comment-created", "d-2", &dan)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let comments = env.comments(3).await;
    assert!(
        comments
            .iter()
            .any(|c| c.contains("Dan Diaz approved stage 1")),
        "{comments:#?}"
    );
    assert!(
        !comments.iter().any(|c| c.contains("not counted")),
        "nobody was refused: {comments:#?}"
    );
    let decisions = tollgate::audit::events(
        &env.app.state.store,
        Some(&env.site.client_key),
        "decision.approved",
    )
    .await
    .expect("events");
    let stages: Vec<_> = decisions
        .iter()
        .map(|e| e["details"]["stage"].clone())
        .collect();
    assert_eq!(stages, [json!(0), json!(1)], "one decision each, in order");
}

/// A ticket notice's comment is posted once per key: a re-run after it was posted posts
/// nothing, and a re-run after a worker died between the post and its record finds the comment
/// in the ticket by the key it carries, and posts nothing either.
#[tokio::test]
async fn a_notice_is_posted_once_even_when_its_worker_died_after_posting() {
    use tollgate::notices;
    use tollgate::store::notices::{self as sent, Posting};
    let env = start(TestDatabase::create().await).await;
    let state = &env.app.state;
    let (tenant, ticket) = (tenant_key(&env.site.client_key), ticket_key("IT-7"));
    let notice = notices::refused(Some("Frank Fox"), "a test");
    let said = || {
        env.cloud.world().issues["IT-7"]
            .app_comments()
            .iter()
            .filter(|c| c.contains("a test"))
            .count()
    };
    notices::deliver(state, &tenant, &ticket, &notice, "k-1")
        .await
        .expect("delivered");
    notices::deliver(state, &tenant, &ticket, &notice, "k-1")
        .await
        .expect("re-run");
    assert_eq!(said(), 1, "a re-run says nothing again");
    // A run that posted `k-2` and died before recording it.
    let now = state.clock.now();
    assert_eq!(
        sent::begin(&state.store, "k-2", &tenant, &ticket, now)
            .await
            .expect("begin"),
        Posting::New
    );
    let (_, site) = state.site(&tenant).await.expect("site");
    state
        .atlassian
        .comment(&site, &ticket, "Frank Fox: a test", false, Some("k-2"))
        .await
        .expect("posted");
    assert_eq!(said(), 2);
    notices::deliver(state, &tenant, &ticket, &notice, "k-2")
        .await
        .expect("re-run");
    assert_eq!(said(), 2, "found in the ticket, not posted again");
    assert_eq!(
        sent::begin(&state.store, "k-2", &tenant, &ticket, now)
            .await
            .expect("begin"),
        Posting::Sent
    );
    // A run that recorded `k-3` as being posted and died before the call: posted once now.
    sent::begin(&state.store, "k-3", &tenant, &ticket, now)
        .await
        .expect("begin");
    notices::deliver(state, &tenant, &ticket, &notice, "k-3")
        .await
        .expect("re-run");
    assert_eq!(said(), 3);
}

/// One comment, its id sent once as a number (as Forge sends it) and once as a string (as Jira
/// does), under two delivery ids: one comment, one decision.
#[tokio::test]
async fn a_comment_id_as_a_number_or_a_string_is_one_comment() {
    let env = start(TestDatabase::create().await).await;
    env.file_it_7().await;
    env.comments(1).await;
    let as_string = env.cloud.comment_by("IT-7", DAN, "/approve");
    let mut as_number = as_string.clone();
    let id = tollgate_fakes::atlassian::connect::comment_id(&as_string);
    as_number["comment"]["id"] = json!(id);
    env.webhook("/connect/webhooks/comment-created", "d-2", &as_number)
        .await;
    env.webhook("/connect/webhooks/comment-created", "d-3", &as_string)
        .await;
    let comments = env.comments(2).await;
    assert!(
        comments[1].contains("Dan Diaz approved stage 1"),
        "{comments:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let comments = env.comments(2).await;
    assert_eq!(
        comments.len(),
        2,
        "said once, nobody refused: {comments:#?}"
    );
    let decisions = tollgate::audit::events(
        &env.app.state.store,
        Some(&env.site.client_key),
        "decision.approved",
    )
    .await
    .expect("events");
    assert_eq!(decisions.len(), 1);
}

/// A ticket that cannot be told (Jira refuses the comment for good) is not dropped: the notice
/// is kept as dead with its reason and raises `notice_dead`; once the cause is fixed, an
/// operator's retry posts it, once.
#[tokio::test]
async fn a_notice_that_cannot_be_posted_is_kept_dead_and_retried() {
    use tollgate_fakes::atlassian::Fault;
    let env = start(TestDatabase::create().await).await;
    env.cloud.inject(Fault {
        path_prefix: "/rest/api/3/issue/IT-7/comment".into(),
        remaining: 1,
        status: 403,
        headers: Vec::new(),
        body: json!({"errorMessages": ["You do not have permission to comment"], "errors": {}}),
    });
    env.file_it_7().await;
    let store = &env.app.state.store;
    let dead = eventually(Duration::from_secs(15), || async {
        let dead = tollgate::store::notices::dead(store).await.expect("read");
        (!dead.is_empty()).then_some(dead)
    })
    .await
    .expect("the routing notice is kept as dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].ticket_key, "IT-7");
    assert!(
        dead[0].reason.contains("permission"),
        "{:?}",
        dead[0].reason
    );
    let alerts = tollgate::alerts::raised(store, "notice_dead")
        .await
        .expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(env.cloud.world().issues["IT-7"].app_comments().is_empty());
    // The permission is fixed; the operator retries every dead notice.
    let revived = tollgate::notices::retry_dead(store, None)
        .await
        .expect("retry");
    assert_eq!(revived, [dead[0].key.clone()]);
    let comments = env.comments(1).await;
    assert!(comments[0].contains("Stage 1"), "{comments:?}");
    assert!(
        tollgate::store::notices::dead(store)
            .await
            .expect("read")
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.comments(1).await.len(), 1, "posted once");
}

/// Two notices of one ticket, the first failing (Jira's 503s outlast the client's own five
/// tries, so its job retries later) before the second is queued: the second waits for it, so
/// the ticket reads in the order things happened.
#[tokio::test]
async fn a_tickets_notices_are_posted_in_the_order_they_were_queued() {
    use tollgate_fakes::atlassian::Fault;
    let env = start_with(
        TestDatabase::create().await,
        &[("TOLLGATE_EVENTS_RETRY_BASE", "1s")],
    )
    .await;
    env.file_it_7().await;
    env.comments(1).await;
    let request = env.request().await;
    let store = &env.app.state.store;
    let comment_path = "/rest/api/3/issue/IT-7/comment";
    env.cloud.inject(Fault::unavailable(comment_path, 5));
    let queue = |why: &'static str, key: &'static str| {
        let request = request.clone();
        async move {
            let mut tx = store.begin().await.expect("tx");
            let notice = tollgate::notices::refused(None, why);
            tollgate::notices::enqueue(&mut tx, &request, notice, key.into())
                .await
                .expect("queued");
            tx.commit().await.expect("commit");
        }
    };
    queue("the first thing happened", "order-1").await;
    let failed = eventually(Duration::from_secs(10), || async {
        let calls = env.cloud.recorded();
        let refused = calls
            .iter()
            .filter(|c| c.method == "POST" && c.path == comment_path && c.status == 503);
        (refused.count() == 5).then_some(())
    })
    .await;
    assert!(failed.is_some(), "the first notice's job failed");
    queue("the second thing happened", "order-2").await;
    let comments = env.comments(3).await;
    let first = comments.iter().position(|c| c.contains("the first thing"));
    let second = comments.iter().position(|c| c.contains("the second thing"));
    assert!(
        matches!((first, second), (Some(a), Some(b)) if a < b),
        "{comments:#?}"
    );
}
