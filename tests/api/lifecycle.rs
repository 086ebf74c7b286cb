//! The identity lifecycle end to end: a real `slapd` as the IdP, the fake Jira and JSM. A
//! joiner added to the directory gets their birthright (an LDAP group and a Jira project role)
//! within one sync, in a lifecycle ticket raised on their behalf; the run survives a JSM outage
//! and a crash between raising the ticket and storing it, is carried out once, and a wave the
//! brake does not believe waits for a person.

use std::time::Duration;

use tollgate::audit::RunStep;
use tollgate::lifecycle::State;
use tollgate::store::lifecycle_runs::{self as runs, Run, RunEvent, RunState};
use tollgate::store::requests;
use tollgate_fakes::atlassian::{FakeUser, Fault};
use tollgate_fakes::slapd;

use crate::grants::{Env, start_with_files};
use crate::support::eventually;

/// Engineering's birthright, and one that needs the manager (for leads only).
const BIRTHRIGHT: &str = r#"
birthright:
  - id: engineering
    description: The engineering team's everyday tools.
    when: person.department == "ENG"
    grants:
      - { resource: eng-tools }
  - id: finance
    when: person.department == "FIN"
    grants:
      - { resource: fin-birthright }
  - id: engineering-leads
    when: person.department == "ENG" && person.title.contains("Lead")
    approval: manager
    grants:
      - { resource: fin-tools }
"#;

const LIFECYCLE: &[(&str, &str)] = &[
    ("TOLLGATE_LIFECYCLE_SITE", "{site-host}"),
    ("TOLLGATE_LIFECYCLE_SERVICE_DESK", "1"),
    ("TOLLGATE_LIFECYCLE_REQUEST_TYPE", "13"),
    ("TOLLGATE_EVENTS_RETRY_BASE", "1s"),
    ("TOLLGATE_EVENTS_RETRY_MAX", "2s"),
];

async fn start(extra: &[(&'static str, &str)]) -> Option<Env> {
    let mut settings = LIFECYCLE.to_vec();
    settings.extend_from_slice(extra);
    let env = start_with_files(
        "ldap",
        "fin-tools",
        &settings,
        &[("birthright.yaml", BIRTHRIGHT)],
    )
    .await?;
    // The chart as it stands is applied: from here on, new people are joiners.
    tollgate::engine::org_change::apply(&env.app.state)
        .await
        .expect("the first snapshot applied");
    Some(env)
}

impl Env {
    /// `uid` joins engineering under the VP, with an Atlassian account `acc-<uid>`.
    async fn hire(&self, uids: &[&str], title: &str) {
        {
            let mut world = self.cloud.world();
            for uid in uids {
                world.users.push(FakeUser {
                    account_id: format!("acc-{uid}"),
                    email: format!("{uid}@example.com"),
                    display_name: format!("{uid} new"),
                    active: true,
                    email_visible: true,
                });
            }
        }
        let entries: Vec<String> = uids
            .iter()
            .map(|uid| slapd::person(uid, Some("vp"), title, "ENG"))
            .collect();
        self.add_people(&entries).await;
    }

    async fn runs_of(&self, uid: &str) -> Vec<Run> {
        let person = tollgate::orgchart::PersonId(format!("uid={uid},ou=people,{}", slapd::BASE));
        runs::of_person(&self.app.state.store, &person)
            .await
            .expect("runs")
    }

    /// `uid` joins engineering and gets its birthright: their run and its one grant, active.
    async fn joined_engineering(&self, uid: &str) -> (Run, requests::Request) {
        self.hire(&[uid], "Engineer").await;
        self.sync_and_apply().await;
        let joined = self.finished_run(uid).await;
        let grant = self.all_active(&joined).await.remove(0);
        (joined, grant)
    }

    /// Waits until `uid`'s run is finished; returns it.
    async fn finished_run(&self, uid: &str) -> Run {
        self.finished(uid, RunEvent::Joiner, 1).await
    }

    /// Waits until `uid`'s `nth` run of `event` is finished; returns it.
    async fn finished(&self, uid: &str, event: RunEvent, nth: usize) -> Run {
        let done = eventually(Duration::from_secs(30), || async {
            self.runs_of(uid)
                .await
                .into_iter()
                .filter(|r| r.event == event && r.state == RunState::Done)
                .nth(nth - 1)
        })
        .await;
        match done {
            Some(run) => run,
            None => panic!("{uid}'s run never finished: {:?}", self.runs_of(uid).await),
        }
    }

    /// The lifecycle tickets on the site (request type 13), by key.
    fn lifecycle_tickets(&self) -> Vec<(String, String, String)> {
        self.cloud
            .world()
            .issues
            .values()
            .filter(|i| i.request_type_id == "13")
            .map(|i| {
                let description = i
                    .custom
                    .get("description")
                    .and_then(|d| d.as_str())
                    .unwrap_or_default()
                    .to_string();
                (i.key.clone(), i.reporter.clone(), description)
            })
            .collect()
    }

    /// The description of the lifecycle ticket `key`.
    fn description_of(&self, key: &str) -> String {
        self.lifecycle_tickets()
            .into_iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, d)| d)
            .unwrap_or_else(|| panic!("no lifecycle ticket {key}"))
    }

    /// Waits until the grant `id` is in `state`; returns it.
    async fn grant_reaches(&self, id: uuid::Uuid, state: State) -> requests::Request {
        let found = eventually(Duration::from_secs(30), || async {
            let grant = requests::get(&self.app.state.store, id)
                .await
                .expect("read")?;
            (grant.state == state).then_some(grant)
        })
        .await;
        match found {
            Some(grant) => grant,
            None => panic!(
                "grant {id} never became {state:?}: {:?}",
                requests::get(&self.app.state.store, id).await
            ),
        }
    }

    fn holds_fin_role(&self, account: &str) -> bool {
        self.cloud.world().project_roles[&("FIN".to_string(), 10002)]
            .0
            .contains(account)
    }

    async fn grants_of(&self, run: &Run) -> Vec<requests::Request> {
        requests::of_run(&self.app.state.store, run.id)
            .await
            .expect("requests")
    }

    /// The one request of `run` waiting for a decision.
    async fn pending_in(&self, run: &Run) -> requests::Request {
        let waiting: Vec<requests::Request> = self
            .grants_of(run)
            .await
            .into_iter()
            .filter(|r| r.state == State::Pending)
            .collect();
        assert_eq!(waiting.len(), 1, "{waiting:#?}");
        waiting.into_iter().next().expect("one")
    }

    /// `who` comments `text` on ticket `key` (the webhook delivered as `delivery`).
    async fn comment_on(&self, key: &str, delivery: &str, who: (&str, &str), text: &str) {
        let body = self.cloud.comment_by(key, who, text);
        self.webhook("/connect/webhooks/comment-created", delivery, &body)
            .await;
    }

    /// Waits for Tollgate's comment on ticket `key` containing `text`; returns it.
    async fn lifecycle_comment(&self, key: &str, text: &str) -> String {
        let found = eventually(Duration::from_secs(30), || async {
            self.cloud.world().issues[key]
                .app_comments()
                .into_iter()
                .find(|c| c.contains(text))
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no comment with {text:?} on {key}: {:#?}",
                self.cloud.world().issues[key].app_comments()
            )
        })
    }

    /// Waits until every grant of `run` is active.
    async fn all_active(&self, run: &Run) -> Vec<requests::Request> {
        let active = eventually(Duration::from_secs(30), || async {
            let grants = self.grants_of(run).await;
            (!grants.is_empty() && grants.iter().all(|g| g.state == State::Active))
                .then_some(grants)
        })
        .await;
        match active {
            Some(grants) => grants,
            None => panic!("not all active: {:#?}", self.grants_of(run).await),
        }
    }
}

#[tokio::test]
async fn a_joiner_gets_their_birthright_in_ldap_and_jira_within_one_sync() {
    let Some(env) = start(&[]).await else {
        return;
    };
    env.hire(&["gina"], "Engineer").await;
    // The snapshot is applied once, by this call or by a worker that noticed it first.
    let (version, _) = env.sync_and_apply().await;

    let run = env.finished_run("gina").await;
    assert_eq!(run.version, version);
    assert_eq!(run.outcome.as_deref(), Some("granting eng-tools"));
    let grants = env.all_active(&run).await;
    assert_eq!(grants.len(), 1);
    let grant = &grants[0];
    assert_eq!(grant.resource.as_deref(), Some("eng-tools"));
    assert_eq!(grant.justification, "birthright:engineering");
    assert_eq!(grant.workflow.as_deref(), Some("birthright:engineering"));
    assert_eq!(grant.expires_at, None, "birthright has no end date");
    // Both targets: the LDAP group and the Jira project role.
    assert!(env.members("eng-tools").await.contains(&"gina".to_string()));
    assert!(env.holds_fin_role("acc-gina"));

    // One ticket, raised on Gina's behalf, saying what is granted and carrying the reference.
    let tickets = env.lifecycle_tickets();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let (key, reporter, description) = &tickets[0];
    assert_eq!(reporter, "acc-gina");
    assert_eq!(
        run.ticket.as_ref().map(|t| t.1.to_string()).as_ref(),
        Some(key)
    );
    assert_eq!(grant.ticket_key.as_str(), key);
    assert!(
        description.contains("**eng-tools** (birthright: engineering)"),
        "{description}"
    );
    assert!(!description.contains("manager"), "{description}");
    assert!(
        description.contains(&tollgate::identity::run::reference(run.id)),
        "{description}"
    );
    // The grant tells the ticket, as any grant does.
    let told = eventually(Duration::from_secs(20), || async {
        let world = env.cloud.world();
        world.issues[key]
            .app_comments()
            .into_iter()
            .find(|c| c.contains("Access granted"))
    })
    .await;
    assert!(told.is_some(), "no granted comment on {key}");

    // The ticket is not an access request for the intake: its webhook changes nothing.
    assert!(
        requests::by_ticket(&env.app.state.store, &grant.tenant, &grant.ticket_key)
            .await
            .expect("read")
            .is_none()
    );

    // The audit log has the run's steps and the grant's.
    let store = &env.app.state.store;
    for step in [RunStep::Recorded, RunStep::TicketOpened, RunStep::Finished] {
        let name = format!("lifecycle.{}", step.as_str());
        let events = tollgate::audit::system_events(store, &name)
            .await
            .expect("read");
        let on_tenant = tollgate::audit::events(store, Some(grant.tenant.as_str()), &name)
            .await
            .expect("read");
        assert_eq!(events.len() + on_tenant.len(), 1, "{name}");
    }

    // Carried out again (a job delivered twice): nothing more is raised or granted.
    tollgate::identity::run::execute(&env.app.state, run.id)
        .await
        .expect("a second run");
    assert_eq!(env.lifecycle_tickets().len(), 1);
    assert_eq!(env.grants_of(&run).await.len(), 1);

    // The birthright grant is in `report access` with every other grant: its lifecycle
    // ticket, its reason, where it was granted.
    let report = {
        use tollgate::audit::report::{Format, Query, Report, Scope};
        let query = Query {
            scope: Scope::Active,
            resource: None,
            person: Some("gina@example.com".into()),
            tenant: None,
            tz: chrono_tz::Tz::UTC,
        };
        let mut report = Report::new(store.clone(), query, Format::Json);
        let mut out = Vec::new();
        while let Some(chunk) = report.next_chunk().await.expect("report") {
            out.extend(chunk);
        }
        serde_json::from_slice::<serde_json::Value>(&out).expect("json")
    };
    let rows = report.as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{report:#}");
    assert_eq!(rows[0]["ticket"], key.as_str());
    assert_eq!(rows[0]["for"], "gina@example.com");
    assert_eq!(rows[0]["justification"], "birthright:engineering");
    assert_eq!(rows[0]["state"], "active");
    assert_eq!(
        rows[0]["granted_where"].as_array().map(Vec::len),
        Some(2),
        "{report:#}"
    );

    // The dry run on the synced chart sees what she holds: a run would do nothing more.
    let synced = tollgate::store::org::latest(store).await.expect("read");
    let held = tollgate::cli::lifecycle::held_birthright(&env.app.state.config)
        .await
        .expect("held");
    let args = tollgate::cli::lifecycle::PlanArgs {
        dir: Some(env.app.state.config.workflows_dir.clone()),
        org: None,
        person: Some("gina@example.com".into()),
        format: tollgate::cli::Format::Text,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tollgate::cli::lifecycle::plan(
        &args,
        &args.dir.clone().expect("dir"),
        synced,
        &held,
        chrono::Utc::now(),
        &mut out,
        &mut err,
    )
    .expect("plan");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert!(
        text.contains("  eng-tools: by engineering (held)"),
        "{text}"
    );

    // The same chart applied again records no second run; the next sync neither.
    let (_, again) = env.sync_and_apply().await;
    assert_eq!(again.lifecycle_runs, 0, "{again:?}");
    assert_eq!(env.runs_of("gina").await.len(), 1);
}

/// A lead's birthright that asks for the manager waits in their lifecycle ticket: the lead
/// cannot approve it, someone else is refused, their manager's `/approve` grants it (and moves
/// no ticket status: the ticket carries the run's other grants too).
#[tokio::test]
async fn a_leads_birthright_waits_for_their_manager_in_the_ticket_and_is_granted_once_approved() {
    let Some(env) = start(&[]).await else {
        return;
    };
    env.hire(&["lena"], "Lead Engineer").await;
    env.sync_and_apply().await;
    let run = env.finished_run("lena").await;
    assert_eq!(
        run.outcome.as_deref(),
        Some("granting eng-tools; asked the manager to decide: fin-tools")
    );
    let (_, key, _) = run.ticket.clone().expect("a ticket");
    let key = key.to_string();
    let description = env.description_of(&key);
    assert!(
        description.contains("which vp approves first, in this ticket"),
        "{description}"
    );
    assert!(
        description.contains("**fin-tools** (birthright: engineering-leads)"),
        "{description}"
    );
    let waiting = env.pending_in(&run).await;
    assert_eq!(waiting.resource.as_deref(), Some("fin-tools"));
    assert_eq!(waiting.justification, "birthright:engineering-leads");
    // The manager is asked, and added to the ticket.
    let asked = env
        .lifecycle_comment(&key, "vp, please decide for lena")
        .await;
    assert!(
        asked.contains("fin-tools: birthright (engineering-leads)"),
        "{asked}"
    );
    // Participants are added after the comment, by the same notice job: wait for them too.
    let added = eventually(Duration::from_secs(20), || async {
        env.cloud.world().issues[&key]
            .participants
            .contains(&"acc-vp".to_string())
            .then_some(())
    })
    .await;
    assert!(added.is_some(), "the manager is a participant");
    let status = env.cloud.world().issues[&key].status.clone();

    // Lena cannot approve her own; Dev is not her manager.
    env.comment_on(&key, "l-1", ("acc-lena", "lena new"), "/approve")
        .await;
    env.lifecycle_comment(&key, "you cannot approve access you asked for")
        .await;
    env.comment_on(&key, "l-2", ("acc-dev", "Dev Dean"), "/approve")
        .await;
    env.lifecycle_comment(&key, "only vp may decide").await;
    assert_eq!(
        env.grant_reaches(waiting.id, State::Pending).await.state,
        State::Pending
    );

    env.comment_on(
        &key,
        "l-3",
        ("acc-vp", "Vera Vance"),
        "/approve welcome aboard",
    )
    .await;
    let granted = env.grant_reaches(waiting.id, State::Active).await;
    assert_eq!(granted.expires_at, None, "birthright has no end date");
    assert!(env.members("fin-tools").await.contains(&"lena".to_string()));
    let told = env.lifecycle_comment(&key, "Approved by vp").await;
    assert_eq!(
        told,
        "Approved by vp: \"welcome aboard\". FIN tools will be granted."
    );
    assert_eq!(
        env.cloud.world().issues[&key].status,
        status,
        "no status moved"
    );
    // Recorded like any decision.
    let decided = tollgate::audit::events(
        &env.app.state.store,
        Some(granted.tenant.as_str()),
        "decision.approved",
    )
    .await
    .expect("read");
    assert_eq!(decided.len(), 1, "{decided:?}");
}

/// Undecided by the deadline (`lifecycle.decide_within`), birthright that needs the manager is
/// not granted, and the ticket says so.
#[tokio::test]
async fn a_birthright_approval_left_undecided_is_not_granted() {
    let Some(env) = start(&[("TOLLGATE_LIFECYCLE_DECIDE_WITHIN", "4s")]).await else {
        return;
    };
    env.hire(&["lena"], "Lead Engineer").await;
    env.sync_and_apply().await;
    let run = env.finished_run("lena").await;
    let waiting = env.pending_in(&run).await;
    let (_, key, _) = run.ticket.clone().expect("a ticket");
    let declined = env.grant_reaches(waiting.id, State::Declined).await;
    assert_eq!(declined.reason.as_deref(), Some("no decision within 4s"));
    let told = env
        .lifecycle_comment(key.as_str(), "Not decided in time")
        .await;
    assert!(told.contains("FIN tools is not granted"), "{told}");
    assert!(!env.members("fin-tools").await.contains(&"lena".to_string()));
}

#[tokio::test]
async fn a_jsm_outage_is_waited_out_and_raises_one_ticket() {
    let Some(env) = start(&[]).await else {
        return;
    };
    // Every try within the first calls fails: the job backs off and tries again.
    env.cloud
        .inject(Fault::unavailable("/rest/servicedeskapi/request", 12));
    env.hire(&["omar"], "Engineer").await;
    env.sync_and_apply().await;
    let run = env.finished_run("omar").await;
    assert_eq!(run.outcome.as_deref(), Some("granting eng-tools"));
    env.all_active(&run).await;
    assert_eq!(env.lifecycle_tickets().len(), 1);
}

#[tokio::test]
async fn a_ticket_raised_before_a_crash_is_found_not_raised_again() {
    // No worker runs the job: the test plays the crashed worker and the one after it.
    let Some(env) = start(&[("TOLLGATE_JOBS_POLL_INTERVAL", "1h")]).await else {
        return;
    };
    env.hire(&["pia"], "Engineer").await;
    env.sync_and_apply().await;
    let run = env.runs_of("pia").await.pop().expect("a run");
    assert_eq!(run.state, RunState::Queued);
    // The crashed worker had marked the run and raised its ticket, and died before storing it.
    let store = &env.app.state.store;
    runs::opening(store, run.id, chrono::Utc::now())
        .await
        .expect("mark");
    let raised = {
        let mut world = env.cloud.world();
        let issue = world.add_issue("IT-150", "acc-pia");
        issue.request_type_id = "13".into();
        issue.custom.insert(
            "description".into(),
            serde_json::json!(format!(
                "Welcome. Reference: {}",
                tollgate::identity::run::reference(run.id)
            )),
        );
        issue.key.clone()
    };
    tollgate::identity::run::execute(&env.app.state, run.id)
        .await
        .expect("the run");
    let run = runs::get(store, run.id).await.expect("read").expect("run");
    assert_eq!(run.state, RunState::Done);
    assert_eq!(
        run.ticket.as_ref().map(|t| t.1.to_string()),
        Some(raised.clone())
    );
    assert_eq!(env.lifecycle_tickets().len(), 1, "no second ticket");
    let grants = env.grants_of(&run).await;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].ticket_key.as_str(), raised);
}

#[tokio::test]
async fn a_joiner_wave_the_brake_does_not_believe_waits_for_release() {
    let Some(env) = start(&[("TOLLGATE_IDP_LEAVER_BRAKE_MIN", "1")]).await else {
        return;
    };
    env.hire(&["quin", "rhea"], "Engineer").await;
    let (version, _) = env.sync_and_apply().await;
    for uid in ["quin", "rhea"] {
        let runs = env.runs_of(uid).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].state, RunState::Held, "{uid}");
    }
    let raised = tollgate::alerts::raised(&env.app.state.store, "lifecycle_brake")
        .await
        .expect("read");
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert!(
        raised[0]["details"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("tollgate lifecycle release {version}"))),
        "{raised:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        env.lifecycle_tickets().is_empty(),
        "nothing is raised while held"
    );
    assert!(!env.members("eng-tools").await.contains(&"quin".to_string()));

    let store = &env.app.state.store;
    let now = chrono::Utc::now();
    assert_eq!(
        tollgate::identity::changes::release(store, version + 1, "test", now)
            .await
            .expect("release"),
        0,
        "nothing is held for another snapshot"
    );
    assert_eq!(
        tollgate::identity::changes::release(store, version, "test", now)
            .await
            .expect("release"),
        2
    );
    for uid in ["quin", "rhea"] {
        let run = env.finished_run(uid).await;
        env.all_active(&run).await;
        assert!(env.members("eng-tools").await.contains(&uid.to_string()));
    }
    assert_eq!(env.lifecycle_tickets().len(), 2);
}

/// Gina joins engineering, then moves to finance: she gets finance's birthright at once, keeps
/// engineering's through the grace period (her mover ticket says until when), and loses it
/// after, in the LDAP group and the Jira project role both.
#[tokio::test]
async fn a_mover_gains_the_new_teams_birthright_and_loses_the_old_after_the_grace_period() {
    let Some(env) = start(&[]).await else {
        return;
    };
    let (joined, old) = env.joined_engineering("gina").await;

    env.set_attribute("gina", "departmentNumber", "FIN").await;
    env.sync_and_apply().await;
    let moved = env.finished("gina", RunEvent::Mover, 1).await;
    let ends = moved.created_at + chrono::TimeDelta::days(7);
    assert_eq!(
        moved.outcome.as_deref(),
        Some(
            format!(
                "granting fin-birthright; ending eng-tools on {}",
                ends.format("%Y-%m-%d %H:%M")
            )
            .as_str()
        )
    );
    let (_, ticket, _) = moved.ticket.clone().expect("a mover ticket");
    assert_ne!(
        Some(&ticket),
        joined.ticket.as_ref().map(|t| &t.1),
        "a ticket per event"
    );
    let description = env.description_of(ticket.as_str());
    assert!(
        description.starts_with("gina, your role has changed."),
        "{description}"
    );
    assert!(
        description.contains("**fin-birthright** (birthright: finance)"),
        "{description}"
    );
    assert!(
        description.contains(&format!("ends on {} (UTC)", ends.format("%Y-%m-%d %H:%M"))),
        "{description}"
    );
    assert!(description.contains("- **eng-tools**"), "{description}");
    env.all_active(&moved).await;
    assert!(env.members("fin-tools").await.contains(&"gina".to_string()));

    // Through the grace period she keeps engineering's access.
    let ending = env.grant_reaches(old.id, State::Active).await;
    assert_eq!(ending.expires_at, Some(ends));
    assert!(env.members("eng-tools").await.contains(&"gina".to_string()));
    assert!(env.holds_fin_role("acc-gina"));
    let scheduled = tollgate::audit::events(
        &env.app.state.store,
        Some(old.tenant.as_str()),
        "grant.end_scheduled",
    )
    .await
    .expect("read");
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");

    // After it, it ends in both systems; finance's stays.
    env.advance(chrono::TimeDelta::days(7) + chrono::TimeDelta::minutes(1));
    tollgate::grants::expiry::queue_window(&env.app.state)
        .await
        .expect("window");
    env.grant_reaches(old.id, State::Expired).await;
    assert!(!env.members("eng-tools").await.contains(&"gina".to_string()));
    assert!(!env.holds_fin_role("acc-gina"));
    assert!(env.members("fin-tools").await.contains(&"gina".to_string()));

    // Nothing more to do: a later sync makes no run.
    let (_, again) = env.sync_and_apply().await;
    assert_eq!(again.lifecycle_runs, 0, "{again:?}");
}

/// A move undone within the grace period: what was ending is kept, what the short move
/// brought ends in its turn; a title change no policy reads makes no run.
#[tokio::test]
async fn a_move_undone_within_the_grace_period_keeps_the_access() {
    let Some(env) = start(&[]).await else {
        return;
    };
    let (_, old) = env.joined_engineering("gina").await;
    env.set_attribute("gina", "departmentNumber", "FIN").await;
    env.sync_and_apply().await;
    let first = env.finished("gina", RunEvent::Mover, 1).await;
    let brief = env.all_active(&first).await.remove(0);

    env.advance(chrono::TimeDelta::days(2));
    env.set_attribute("gina", "departmentNumber", "ENG").await;
    env.sync_and_apply().await;
    let back = env.finished("gina", RunEvent::Mover, 2).await;
    let outcome = back.outcome.clone().unwrap_or_default();
    assert!(
        outcome.starts_with("ending fin-birthright on "),
        "{outcome}"
    );
    assert!(
        outcome.ends_with("; no longer ending eng-tools"),
        "{outcome}"
    );
    let kept = env.grant_reaches(old.id, State::Active).await;
    assert_eq!(kept.expires_at, None, "permanent again");
    let cancelled = tollgate::audit::events(
        &env.app.state.store,
        Some(old.tenant.as_str()),
        "grant.end_cancelled",
    )
    .await
    .expect("read");
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    let ending = env.grant_reaches(brief.id, State::Active).await;
    assert!(ending.expires_at.is_some());

    env.set_attribute("gina", "title", "Senior Engineer").await;
    let (_, retitled) = env.sync_and_apply().await;
    assert_eq!(
        retitled.lifecycle_runs, 0,
        "no policy reads the title: {retitled:?}"
    );
}

/// Gina's account is managed by the organization, Omar's is not: when both leave, Gina's is
/// disabled and Omar's loses its product access; Gina leaves the JSM customer organization she
/// was in; each gets a leaver ticket saying what was done, and their birthright is revoked.
#[tokio::test]
async fn a_leavers_managed_account_is_disabled_and_an_unmanaged_one_loses_product_access() {
    let Some(env) = start(&[("TOLLGATE_LEAVERS_DEACTIVATE_ATLASSIAN_ACCOUNT", "true")]).await
    else {
        return;
    };
    env.hire(&["gina", "omar"], "Engineer").await;
    env.sync_and_apply().await;
    for uid in ["gina", "omar"] {
        let run = env.finished_run(uid).await;
        env.all_active(&run).await;
    }
    const PRODUCT: (&str, &str) = ("atlassian/user", "ari:cloud:confluence::site/acme-cloud");
    {
        let mut world = env.cloud.world();
        world.managed_accounts.insert("acc-gina".into());
        world
            .organizations
            .get_mut(&7)
            .expect("Acme Finance")
            .insert("acc-gina".into());
        for account in ["acc-gina", "acc-omar"] {
            world
                .product_roles
                .insert((account.into(), PRODUCT.0.into(), PRODUCT.1.into()));
        }
    }

    env.delete_people(&["gina", "omar"]).await;
    env.sync_and_apply().await;
    let gina = env.finished("gina", RunEvent::Leaver, 1).await;
    let omar = env.finished("omar", RunEvent::Leaver, 1).await;
    let gina_outcome = gina.outcome.clone().unwrap_or_default();
    assert!(
        gina_outcome.starts_with(
            "Atlassian account disabled; removed from the JSM customer organizations Acme Finance"
        ),
        "{gina_outcome}"
    );
    assert!(
        gina_outcome.ends_with("1 grants Tollgate made end with their leaving"),
        "{gina_outcome}"
    );
    let omar_outcome = omar.outcome.clone().unwrap_or_default();
    assert!(
        omar_outcome.starts_with("Atlassian account not managed by the organization (it cannot be disabled): its product access was removed"),
        "{omar_outcome}"
    );
    {
        let world = env.cloud.world();
        let active = |id: &str| world.user(id).expect("account").active;
        assert!(!active("acc-gina"), "the managed account is disabled");
        assert!(active("acc-omar"), "the unmanaged account cannot be");
        assert!(!world.organizations[&7].contains("acc-gina"));
        assert!(
            !world.product_roles.iter().any(|(a, _, _)| a == "acc-omar"),
            "{:?}",
            world.product_roles
        );
    }
    // Each has a leaver ticket saying what was done, raised by the app (they have left).
    for (run, said) in [
        (&gina, "Atlassian account disabled"),
        (&omar, "product access was removed"),
    ] {
        let key = run
            .ticket
            .as_ref()
            .map(|t| t.1.to_string())
            .expect("a ticket");
        let tickets = env.lifecycle_tickets();
        let (_, reporter, description) = tickets
            .iter()
            .find(|(k, _, _)| *k == key)
            .expect("the leaver ticket");
        assert_eq!(reporter, tollgate_fakes::atlassian::APP_ACCOUNT.0);
        assert!(
            description.contains("has left the organization"),
            "{description}"
        );
        assert!(description.contains(said), "{description}");
    }
    // Their birthright is revoked by the leavers' own path.
    let revoked = eventually(Duration::from_secs(30), || async {
        let members = env.members("eng-tools").await;
        (!members.contains(&"gina".to_string()) && !members.contains(&"omar".to_string()))
            .then_some(())
    })
    .await;
    assert!(revoked.is_some(), "{:?}", env.members("eng-tools").await);
    // A leaver run done twice does nothing twice.
    tollgate::identity::run::execute(&env.app.state, gina.id)
        .await
        .expect("again");
    assert_eq!(
        env.runs_of("gina").await.len(),
        2,
        "a joiner's and a leaver's"
    );
}

/// Leavers the leaver brake holds are not offboarded until a person approves.
#[tokio::test]
async fn held_leavers_are_offboarded_only_once_approved() {
    let Some(env) = start(&[
        ("TOLLGATE_LEAVERS_DEACTIVATE_ATLASSIAN_ACCOUNT", "true"),
        ("TOLLGATE_IDP_LEAVER_BRAKE_MIN", "1"),
    ])
    .await
    else {
        return;
    };
    env.cloud
        .world()
        .managed_accounts
        .insert(DEV_ACCOUNT.into());
    env.delete_people(&["dev", "vp"]).await;
    let (version, applied) = env.sync_and_apply().await;
    assert_eq!(applied.held, 2, "{applied:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.runs_of("dev").await.is_empty(), "held: no offboarding");
    assert!(env.cloud.world().user(DEV_ACCOUNT).expect("dev").active);
    let store = &env.app.state.store;
    assert!(
        tollgate::engine::org_change::approve(
            store,
            version,
            "ana",
            tollgate::clock::Clock::now(&env.clock)
        )
        .await
        .expect("approve")
    );
    let run = env.finished("dev", RunEvent::Leaver, 1).await;
    assert!(
        run.outcome
            .as_deref()
            .is_some_and(|o| o.starts_with("Atlassian account disabled")),
        "{run:?}"
    );
    assert!(!env.cloud.world().user(DEV_ACCOUNT).expect("dev").active);
}

const DEV_ACCOUNT: &str = "acc-dev";

/// A reorganisation the brake does not believe (more movers at once than it allows) waits for
/// release like a joiner wave: nothing is granted or ended meanwhile.
#[tokio::test]
async fn a_mover_wave_the_brake_does_not_believe_waits_for_release() {
    let Some(env) = start(&[("TOLLGATE_IDP_LEAVER_BRAKE_MIN", "1")]).await else {
        return;
    };
    // Two joiners would trip it too: they join one at a time.
    let (_, gina) = env.joined_engineering("gina").await;
    let (_, omar) = env.joined_engineering("omar").await;
    for uid in ["gina", "omar"] {
        env.set_attribute(uid, "departmentNumber", "FIN").await;
    }
    let (version, _) = env.sync_and_apply().await;
    for uid in ["gina", "omar"] {
        let movers: Vec<Run> = env
            .runs_of(uid)
            .await
            .into_iter()
            .filter(|r| r.event == RunEvent::Mover)
            .collect();
        assert_eq!(movers.len(), 1, "{uid}");
        assert_eq!(movers[0].state, RunState::Held, "{uid}");
    }
    let raised = tollgate::alerts::raised(&env.app.state.store, "lifecycle_brake")
        .await
        .expect("read");
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["details"]["event"], "mover");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for grant in [&gina, &omar] {
        let held = env.grant_reaches(grant.id, State::Active).await;
        assert_eq!(held.expires_at, None, "nothing ends while held");
    }
    assert!(!env.members("fin-tools").await.contains(&"gina".to_string()));

    let released = tollgate::identity::changes::release(
        &env.app.state.store,
        version,
        "test",
        chrono::Utc::now(),
    )
    .await
    .expect("release");
    assert_eq!(released, 2);
    let moved = env.finished("gina", RunEvent::Mover, 1).await;
    env.all_active(&moved).await;
    assert!(env.members("fin-tools").await.contains(&"gina".to_string()));
    assert!(
        env.grant_reaches(gina.id, State::Active)
            .await
            .expires_at
            .is_some()
    );
}

/// A resource whose holders' access goes to their new manager when they move.
const REVIEWED: &str = "resources:\n  - id: payroll\n    name: Payroll\n    owner: { user: ceo@example.com }\n    default_duration: 30d\n    review_on_move: true\n    grants:\n      - idp_group: fin-tools\n";

/// Dev holds `payroll` (asked for in IT-7, approved by the VP), then reports to the CEO: their
/// mover run sends it to the CEO in Dev's lifecycle ticket. Returns the review waiting and the
/// ticket's key.
async fn moved_with_payroll(env: &Env) -> (requests::Request, requests::Request, String) {
    let grant = env.approved_and_active().await;
    assert!(env.members("fin-tools").await.contains(&"dev".to_string()));
    let ceo = format!("uid=ceo,ou=people,{}", slapd::BASE);
    env.set_attribute("dev", "manager", &ceo).await;
    env.sync_and_apply().await;
    let moved = env.finished("dev", RunEvent::Mover, 1).await;
    assert!(moved.review, "{moved:?}");
    assert_eq!(
        moved.outcome.as_deref(),
        Some("granting eng-tools; asked the manager to decide: payroll")
    );
    let (_, key, _) = moved.ticket.clone().expect("a mover ticket");
    let review = env.pending_in(&moved).await;
    assert_eq!(review.parent_id, Some(grant.id));
    assert_eq!(review.resource.as_deref(), Some("payroll"));
    (grant, review, key.to_string())
}

async fn start_reviewing(extra: &[(&'static str, &str)]) -> Option<Env> {
    let mut settings = LIFECYCLE.to_vec();
    settings.extend_from_slice(extra);
    let files = [("birthright.yaml", BIRTHRIGHT), ("reviewed.yaml", REVIEWED)];
    let env = start_with_files("ldap", "payroll", &settings, &files).await?;
    tollgate::engine::org_change::apply(&env.app.state)
        .await
        .expect("the first snapshot applied");
    Some(env)
}

/// A new manager re-approves what their report asked for before the move: it stays. The old
/// manager no longer decides it.
#[tokio::test]
async fn a_review_on_move_grant_re_approved_by_the_new_manager_stays() {
    let Some(env) = start_reviewing(&[]).await else {
        return;
    };
    let (grant, review, key) = moved_with_payroll(&env).await;
    let description = env.description_of(&key);
    assert!(
        description.contains(
            "is reviewed by ceo, in this ticket; it ends unless approved:\n\n- **payroll**"
        ),
        "{description}"
    );
    let asked = env
        .lifecycle_comment(&key, "ceo, please decide for dev")
        .await;
    assert!(
        asked.contains("payroll: asked for before the move"),
        "{asked}"
    );

    env.comment_on(&key, "r-1", ("acc-vp", "Vera Vance"), "/decline")
        .await;
    env.lifecycle_comment(&key, "only ceo may decide").await;
    env.comment_on(
        &key,
        "r-2",
        ("acc-ceo", "Cleo Chase"),
        "/approve still needed",
    )
    .await;
    let kept = eventually(Duration::from_secs(30), || async {
        let review = requests::get(&env.app.state.store, review.id)
            .await
            .expect("read")?;
        review.granted_at.is_some().then_some(review)
    })
    .await
    .expect("the review settled");
    assert_eq!(kept.state, State::Approved);
    env.lifecycle_comment(&key, "Payroll stays.").await;
    let still = env.grant_reaches(grant.id, State::Active).await;
    assert_eq!(still.expires_at, grant.expires_at, "its end is unchanged");
    assert!(env.members("fin-tools").await.contains(&"dev".to_string()));
    let audit = tollgate::audit::events(
        &env.app.state.store,
        Some(grant.tenant.as_str()),
        "review.kept",
    )
    .await
    .expect("read");
    assert_eq!(audit.len(), 1, "{audit:?}");

    // Nothing more is reviewed on the next sync; a further move reviews it again.
    let (_, again) = env.sync_and_apply().await;
    assert_eq!(again.lifecycle_runs, 0, "{again:?}");
}

/// Declined by the new manager, the access ends at once in the IdP; the ticket it was asked
/// in is told.
#[tokio::test]
async fn a_review_on_move_grant_declined_by_the_new_manager_ends() {
    let Some(env) = start_reviewing(&[]).await else {
        return;
    };
    let (grant, review, key) = moved_with_payroll(&env).await;
    env.comment_on(
        &key,
        "r-1",
        ("acc-ceo", "Cleo Chase"),
        "/decline not in this team",
    )
    .await;
    env.grant_reaches(review.id, State::Declined).await;
    let ended = env.grant_reaches(grant.id, State::Revoked).await;
    assert_eq!(
        ended.reason.as_deref(),
        Some("not re-approved in review (declined by ceo: not in this team)")
    );
    assert!(!env.members("fin-tools").await.contains(&"dev".to_string()));
    let told = env.lifecycle_comment(&key, "Declined by ceo").await;
    assert!(told.contains("Payroll ends now."), "{told}");
}

/// Left undecided by the deadline, reviewed access ends.
#[tokio::test]
async fn a_review_on_move_grant_left_undecided_ends_at_the_deadline() {
    let Some(env) = start_reviewing(&[("TOLLGATE_LIFECYCLE_DECIDE_WITHIN", "4s")]).await else {
        return;
    };
    let (grant, review, key) = moved_with_payroll(&env).await;
    env.grant_reaches(review.id, State::Declined).await;
    let ended = env.grant_reaches(grant.id, State::Revoked).await;
    assert_eq!(
        ended.reason.as_deref(),
        Some("not re-approved in review (no decision within 4s)")
    );
    assert!(!env.members("fin-tools").await.contains(&"dev".to_string()));
    env.lifecycle_comment(&key, "Not decided in time").await;
}

/// Confluence unused for 90 days goes to the manager; Jira Software unused for 30 days ends
/// after a notice; the CEO's account is a service account here.
const INACTIVE: &str = "inactive:\n  exclude: [ceo@example.com]\n  products:\n    - { product: confluence, after: 90d, action: review }\n    - { product: jira-software, after: 30d, action: end, notice: NOTICE }\n";

const SEAT_CONFLUENCE: &str = "ari:cloud:confluence::site/acme-cloud";
const SEAT_JIRA: &str = "ari:cloud:jira-software::site/acme-cloud";

async fn start_inactive(notice: &str, extra: &[(&'static str, &str)]) -> Option<Env> {
    let mut settings = LIFECYCLE.to_vec();
    settings.extend_from_slice(extra);
    let policy = INACTIVE.replace("NOTICE", notice);
    let files = [
        ("birthright.yaml", BIRTHRIGHT),
        ("inactive.yaml", policy.as_str()),
    ];
    let env = start_with_files("ldap", "fin-tools", &settings, &files).await?;
    tollgate::engine::org_change::apply(&env.app.state)
        .await
        .expect("the first snapshot applied");
    // Dev last used Confluence 200 days ago and Jira 60; the VP used Confluence yesterday; the
    // CEO (excluded) has not used it for a year.
    let today = env.app.state.clock.now().date_naive();
    let ago = |days: i64| today - chrono::TimeDelta::days(days);
    {
        let mut world = env.cloud.world();
        for (account, product, days) in [
            ("acc-dev", "confluence", 200),
            ("acc-dev", "jira-software", 60),
            ("acc-vp", "confluence", 1),
            ("acc-ceo", "confluence", 365),
        ] {
            world
                .last_active
                .entry(account.into())
                .or_default()
                .insert(product.into(), ago(days));
            let seat = format!("ari:cloud:{product}::site/acme-cloud");
            world
                .product_roles
                .insert((account.into(), "atlassian/user".into(), seat));
        }
        // Pages of one product each: the reader must follow the cursor.
        world.page_size = Some(1);
    }
    Some(env)
}

impl Env {
    fn has_seat(&self, account: &str, seat: &str) -> bool {
        self.cloud.world().product_roles.contains(&(
            account.to_string(),
            "atlassian/user".to_string(),
            seat.to_string(),
        ))
    }

    async fn case_of(&self, product: &str) -> tollgate::store::inactive_cases::Case {
        tollgate::store::inactive_cases::all(&self.app.state.store)
            .await
            .expect("read")
            .into_iter()
            .find(|c| c.product == product)
            .unwrap_or_else(|| panic!("no {product} case"))
    }

    async fn case_reaches(
        &self,
        product: &str,
        state: tollgate::store::inactive_cases::CaseState,
    ) -> tollgate::store::inactive_cases::Case {
        let found = eventually(Duration::from_secs(30), || async {
            let case = self.case_of(product).await;
            (case.state == state).then_some(case)
        })
        .await;
        match found {
            Some(case) => case,
            None => panic!(
                "{product} never became {state:?}: {:?}",
                self.case_of(product).await
            ),
        }
    }
}

/// Inactive accounts end to end: the scan reads last-active dates through the Admin API,
/// Dev's unused Confluence goes to their manager in a lifecycle ticket and, unanswered by the
/// deadline, ends; their unused Jira ends after its notice; the VP (active) and the CEO
/// (excluded) keep theirs; `report inactive` says what happened.
#[tokio::test]
async fn an_inactive_account_is_reviewed_and_unanswered_ended() {
    use tollgate::store::inactive_cases::CaseState;
    let Some(env) = start_inactive("3s", &[("TOLLGATE_LIFECYCLE_DECIDE_WITHIN", "4s")]).await
    else {
        return;
    };
    // Dev also holds FIN tools through Tollgate, which gives a Confluence seat among others.
    let grant = env.approved_and_active().await;
    let scanned = tollgate::identity::inactive::scan(&env.app.state)
        .await
        .expect("scan");
    assert_eq!(
        (scanned.found, scanned.runs, scanned.cleared),
        (2, 1, 0),
        "{scanned:?}"
    );
    let run = env.finished("dev", RunEvent::Inactive, 1).await;
    let outcome = run.outcome.clone().unwrap_or_default();
    assert!(
        outcome.starts_with("confluence to review; jira-software ends on "),
        "{outcome}"
    );
    let (_, key, _) = run.ticket.clone().expect("a ticket");
    let key = key.to_string();
    let description = env.description_of(&key);
    // The dates as they were set (the clock has moved on since, maybe past midnight).
    let last_used = |product: &str| env.cloud.world().last_active["acc-dev"][product].to_string();
    assert!(
        description.contains(&format!(
            "vp decides in this ticket whether you keep it:\n\n- **confluence**: last used {}",
            last_used("confluence")
        )),
        "{description}"
    );
    assert!(
        description.contains(&format!(
            "- **jira-software**: last used {}; ends on",
            last_used("jira-software")
        )),
        "{description}"
    );
    let review = env.pending_in(&run).await;
    assert_eq!(review.resource.as_deref(), Some("confluence"));
    env.lifecycle_comment(&key, "vp, please decide for dev")
        .await;
    assert_eq!(env.case_of("confluence").await.state, CaseState::Reviewing);

    // Nobody decides: the review is declined at the deadline and the seat goes; the notice
    // over, Jira's goes too.
    env.grant_reaches(review.id, State::Declined).await;
    let ended = env.case_reaches("confluence", CaseState::Ended).await;
    assert_eq!(ended.outcome.as_deref(), Some("product access removed"));
    env.case_reaches("jira-software", CaseState::Ended).await;
    assert!(!env.has_seat("acc-dev", SEAT_CONFLUENCE));
    assert!(!env.has_seat("acc-dev", SEAT_JIRA));
    assert!(env.has_seat("acc-vp", SEAT_CONFLUENCE), "used yesterday");
    assert!(env.has_seat("acc-ceo", SEAT_CONFLUENCE), "excluded");
    // The grant that gave Confluence ended with it: no report says Dev holds what Atlassian
    // no longer gives.
    let revoked = env.grant_reaches(grant.id, State::Revoked).await;
    assert_eq!(
        revoked.reason,
        Some(format!(
            "confluence not used since {} (inactive-account policy)",
            last_used("confluence")
        ))
    );
    env.lifecycle_comment(&key, "Your access to confluence has ended")
        .await;
    env.lifecycle_comment(&key, "Your access to jira-software has ended")
        .await;

    let store = &env.app.state.store;
    let tenant = review.tenant.as_str();
    for (name, count) in [
        ("inactive.found", 2),
        ("inactive.reviewing", 1),
        ("inactive.ending", 1),
        ("inactive.noticed", 1),
        ("inactive.ended", 2),
    ] {
        let events = tollgate::audit::events(store, Some(tenant), name)
            .await
            .expect("read");
        let system = tollgate::audit::system_events(store, name)
            .await
            .expect("read");
        assert_eq!(
            events.len() + system.len(),
            count,
            "{name}: {events:?} {system:?}"
        );
    }

    // The same day's scan again: nothing new.
    let again = tollgate::identity::inactive::scan(&env.app.state)
        .await
        .expect("scan");
    assert_eq!((again.found, again.runs), (0, 0), "{again:?}");

    // The report says what happened.
    let (mut out, config) = (Vec::new(), env.app.state.config.clone());
    let rows = tollgate::cli::lifecycle::inactive_report(
        &config,
        Some("dev@example.com"),
        false,
        true,
        &mut out,
    )
    .await
    .expect("report");
    assert_eq!(rows, 2);
    let report: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let confluence = report
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["product"] == "confluence"))
        .expect("a confluence row");
    assert_eq!(confluence["state"], "ended");
    assert_eq!(confluence["action"], "review");
    assert_eq!(confluence["unused_days"], 200);
    assert_eq!(confluence["ticket"], key.as_str());
    let mut csv = Vec::new();
    tollgate::cli::lifecycle::inactive_report(&config, None, true, false, &mut csv)
        .await
        .expect("report");
    assert_eq!(
        String::from_utf8_lossy(&csv).lines().count(),
        1,
        "--open: nothing open, the header alone"
    );
}

/// Kept: the manager approves the review, and the seat stays; used again before its notice
/// is over, the Jira seat stays too and the ticket is told.
#[tokio::test]
async fn inactive_access_kept_by_the_manager_or_used_again_stays() {
    use tollgate::store::inactive_cases::CaseState;
    let Some(env) = start_inactive("1h", &[]).await else {
        return;
    };
    tollgate::identity::inactive::scan(&env.app.state)
        .await
        .expect("scan");
    let run = env.finished("dev", RunEvent::Inactive, 1).await;
    let (_, key, _) = run.ticket.clone().expect("a ticket");
    let key = key.to_string();
    let review = env.pending_in(&run).await;
    env.comment_on(
        &key,
        "i-1",
        ("acc-vp", "Vera Vance"),
        "/approve still needed",
    )
    .await;
    let kept = env.case_reaches("confluence", CaseState::Kept).await;
    assert_eq!(kept.outcome.as_deref(), Some("kept by the manager"));
    env.lifecycle_comment(&key, "confluence stays.").await;
    assert_eq!(
        requests::get(&env.app.state.store, review.id)
            .await
            .expect("read")
            .map(|r| r.state),
        Some(State::Approved)
    );

    // Dev opens Jira: the next scan clears the case, and its end does nothing.
    let today = env.app.state.clock.now().date_naive();
    env.cloud
        .world()
        .last_active
        .entry("acc-dev".into())
        .or_default()
        .insert("jira-software".into(), today);
    let scanned = tollgate::identity::inactive::scan(&env.app.state)
        .await
        .expect("scan");
    assert_eq!((scanned.found, scanned.cleared), (0, 1), "{scanned:?}");
    let cleared = env.case_reaches("jira-software", CaseState::Cleared).await;
    env.lifecycle_comment(&key, "jira-software was used again: it stays")
        .await;
    env.advance(chrono::TimeDelta::hours(2));
    tollgate::identity::inactive::end(&env.app.state, cleared.id)
        .await
        .expect("end");
    assert!(env.has_seat("acc-dev", SEAT_CONFLUENCE));
    assert!(env.has_seat("acc-dev", SEAT_JIRA));
}

/// A last-active page that does not say what it should (no product list, an entry without its
/// date) or an Admin API outage fails the scan: nothing is judged on it, nothing ends. The
/// next scan, on good pages, finds what is unused.
#[tokio::test]
async fn a_broken_last_active_page_fails_the_scan_and_ends_nothing() {
    let Some(env) = start_inactive("1h", &[]).await else {
        return;
    };
    let path = "/admin/v1/orgs/org-acme/directory/users/acc-dev/last-active-dates";
    let page = |body: serde_json::Value| Fault {
        path_prefix: path.into(),
        remaining: 1,
        status: 200,
        headers: Vec::new(),
        body,
    };
    let broken = [
        serde_json::json!({"data": {"added_to_org": "2024-01-15"}, "links": {}}),
        serde_json::json!({"data": {"product_access": [{"id": "x", "key": "confluence"}]}, "links": {}}),
        serde_json::json!({"data": {"product_access": [{"key": "confluence", "last_active": "last spring"}]}, "links": {}}),
    ];
    for body in broken {
        env.cloud.inject(page(body.clone()));
        let failed = tollgate::identity::inactive::scan(&env.app.state).await;
        assert!(failed.is_err(), "{body}: {failed:?}");
    }
    env.cloud.inject(Fault::unavailable(path, 12));
    let outage = tollgate::identity::inactive::scan(&env.app.state)
        .await
        .expect_err("an outage");
    assert!(outage.is_retryable(), "{outage}");
    let cases = tollgate::store::inactive_cases::all(&env.app.state.store)
        .await
        .expect("read");
    assert!(cases.is_empty(), "{cases:?}");
    assert!(env.has_seat("acc-dev", SEAT_CONFLUENCE));

    // The outage's last failures are waited out by later scans (the job is retried).
    let mut scanned = None;
    for _ in 0..12 {
        match tollgate::identity::inactive::scan(&env.app.state).await {
            Ok(done) => {
                scanned = Some(done);
                break;
            }
            Err(e) => assert!(e.is_retryable(), "{e}"),
        }
    }
    let scanned = scanned.expect("a scan after the outage");
    assert_eq!(scanned.found, 2, "{scanned:?}");
}

/// One comment decides everything waiting in a lifecycle ticket: Dev moves to the CEO as a
/// lead, so the CEO reviews `payroll` and approves the leads' birthright in one ticket; one
/// `/approve`, delivered twice, decides each once.
#[tokio::test]
async fn one_comment_decides_everything_waiting_in_the_ticket_once() {
    let Some(env) = start_reviewing(&[]).await else {
        return;
    };
    let grant = env.approved_and_active().await;
    let ceo = format!("uid=ceo,ou=people,{}", slapd::BASE);
    env.set_attribute("dev", "manager", &ceo).await;
    env.set_attribute("dev", "title", "Lead Engineer").await;
    env.sync_and_apply().await;
    let moved = env.finished("dev", RunEvent::Mover, 1).await;
    assert_eq!(
        moved.outcome.as_deref(),
        Some("granting eng-tools; asked the manager to decide: fin-tools, payroll")
    );
    let (_, key, _) = moved.ticket.clone().expect("a ticket");
    let key = key.to_string();
    let waiting: Vec<requests::Request> = env
        .grants_of(&moved)
        .await
        .into_iter()
        .filter(|r| r.state == State::Pending)
        .collect();
    assert_eq!(waiting.len(), 2, "{waiting:#?}");
    let asked = env
        .lifecycle_comment(&key, "ceo, please decide for dev")
        .await;
    assert!(
        asked.contains("fin-tools: birthright (engineering-leads)"),
        "{asked}"
    );
    assert!(
        asked.contains("payroll: asked for before the move"),
        "{asked}"
    );

    let body = env
        .cloud
        .comment_by(&key, ("acc-ceo", "Cleo Chase"), "/approve");
    for delivery in ["m-1", "m-2"] {
        env.webhook("/connect/webhooks/comment-created", delivery, &body)
            .await;
    }
    let birthright = waiting
        .iter()
        .find(|r| r.parent_id.is_none())
        .expect("the birthright");
    env.grant_reaches(birthright.id, State::Active).await;
    let review = waiting
        .iter()
        .find(|r| r.parent_id.is_some())
        .expect("the review");
    let kept = eventually(Duration::from_secs(30), || async {
        let r = requests::get(&env.app.state.store, review.id)
            .await
            .ok()??;
        r.granted_at.is_some().then_some(r)
    })
    .await;
    assert!(kept.is_some(), "the review was kept");
    env.grant_reaches(grant.id, State::Active).await;
    let decided = tollgate::audit::events(
        &env.app.state.store,
        Some(grant.tenant.as_str()),
        "decision.approved",
    )
    .await
    .expect("read");
    let on_ticket: Vec<_> = decided
        .iter()
        .filter(|e| e["ticket_key"] == key.as_str())
        .collect();
    assert_eq!(on_ticket.len(), 2, "one decision each: {on_ticket:#?}");
}
