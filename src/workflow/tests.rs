//! The loader's checks and the routing rules, each a test, over small inline files; and
//! property tests over random org charts.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::orgchart::{Email, OrgIndex, file as org_file};
use crate::yamlfile::Severity;

const ORG: &str = "\
people:
  - { email: ceo@x.io, title: CEO, department: Exec }
  - { email: cfo@x.io, title: Chief Financial Officer, department: Finance, manager: ceo@x.io }
  - { email: ctl@x.io, title: Controller, department: Finance, manager: cfo@x.io }
  - { email: acc@x.io, title: Accountant, department: Finance, manager: ctl@x.io }
  - { email: temp@x.io, title: Accountant, department: Finance, manager: ctl@x.io, employment_type: contractor }
  - { email: cto@x.io, title: CTO, department: Engineering, manager: ceo@x.io }
  - { email: em@x.io, title: Engineering Manager, department: Engineering, manager: cto@x.io, active: false }
  - { email: dev@x.io, title: Engineer, department: Engineering, manager: em@x.io }
  - { email: dev2@x.io, title: Engineer, department: Engineering, manager: em@x.io }
  - { email: it1@x.io, title: IT Admin, department: IT, manager: cto@x.io }
  - { email: it2@x.io, title: IT Admin, department: IT, manager: cto@x.io }
  - { email: loop1@x.io, title: Looper, department: Loops, manager: loop2@x.io }
  - { email: loop2@x.io, title: Looper, department: Loops, manager: loop1@x.io }
  - { email: lost@x.io, title: Lost, department: Nowhere, manager: ghost@x.io }
groups:
  - { name: IT Admins, members: [it1@x.io, it2@x.io], owners: [cto@x.io] }
  - { name: Owners, members: [ctl@x.io, acc@x.io], owners: [cfo@x.io] }
  - { name: Solo, members: [dev@x.io], owners: [dev@x.io] }
";

fn org() -> OrgIndex {
    let (snapshot, _) = org_file::parse(&PathBuf::from("org.yaml"), ORG);
    OrgIndex::build(snapshot.expect("test org parses"))
}

const CATALOG: &str = "\
resources:
  - id: ledger
    name: Ledger
    owner: { user: ctl@x.io }
    tags: [finance, sox]
    default_duration: 7d
    max_duration: 30d
    grants: [{ idp_group: Ledger Users }]
  - id: wiki
    name: Wiki
    owner: { group: Owners }
    tags: [docs]
    permanent_allowed: true
    grants: [{ confluence_space: { space: W, role: Collaborator } }]
  - id: prod
    name: Prod
    owner: { user: it1@x.io }
    tags: [eng]
    max_duration: 1d
    levels:
      - { id: read, grants: [{ idp_group: Prod Read }] }
      - { id: admin, grants: [{ idp_group: Prod Admin }], workflow: skip }
";

fn sources(files: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    files
        .iter()
        .map(|(name, text)| (PathBuf::from(name), text.to_string()))
        .collect()
}

/// Loads the catalog plus `files`; panics with the diagnostics if they do not load.
fn load(files: &[(&str, &str)]) -> Workflows {
    let mut all = vec![("catalog.yaml", CATALOG)];
    all.extend_from_slice(files);
    let outcome = load_sources(&sources(&all), Some(&org()));
    let rendered: Vec<String> = outcome
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    outcome
        .workflows
        .unwrap_or_else(|| panic!("did not load: {rendered:#?}"))
}

/// The rendered errors of loading the catalog plus `files`.
fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let mut all = vec![("catalog.yaml", CATALOG)];
    all.extend_from_slice(files);
    let outcome = load_sources(&sources(&all), Some(&org()));
    outcome
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect()
}

const DEFAULT: &str = "workflow: default\napplies_to: { default: true }\nstages:\n  - { name: manager, approvers: manager }\n";
const SKIP: &str = "workflow: skip\napplies_to: { levels: [admin] }\nstages:\n  - { name: manager, approvers: manager }\n  - { name: skip, approvers: { manager: { level: 2 } } }\n";

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("valid")
}

fn email(text: &str) -> Email {
    Email::parse(text).expect("valid email")
}

fn route_for(
    workflows: &Workflows,
    filer: &str,
    resource: &str,
    level: Option<&str>,
    duration: RequestedDuration,
) -> Routing {
    let filer = email(filer);
    route(
        workflows,
        &org(),
        &RouteRequest {
            filed_by: &filer,
            on_behalf_of: None,
            resource,
            level,
            duration,
            justification: "because",
            now: now(),
        },
    )
    .expect("routes")
}

fn route_on_behalf(workflows: &Workflows, filer: &str, subject: &str, resource: &str) -> Routing {
    let (filer, subject) = (email(filer), email(subject));
    route(
        workflows,
        &org(),
        &RouteRequest {
            filed_by: &filer,
            on_behalf_of: Some(&subject),
            resource,
            level: None,
            duration: RequestedDuration::Unspecified,
            justification: "",
            now: now(),
        },
    )
    .expect("routes")
}

fn approvers(routing: &Routing, stage: usize) -> Vec<&str> {
    routing.stages[stage]
        .approvers
        .iter()
        .map(String::as_str)
        .collect()
}

// ---- loading ----

#[test]
fn the_shipped_examples_pass_check_against_the_sample_org() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let (snapshot, warnings) = org_file::load(&dir.join("org.yaml")).expect("sample org loads");
    assert!(warnings.is_empty(), "{warnings:?}");
    let index = OrgIndex::build(snapshot);
    assert!(index.len() >= 30);
    assert!(index.problems().is_empty(), "{:?}", index.problems());
    let outcome = load_dir(&dir, Some(&index));
    assert!(outcome.diagnostics.is_empty(), "{:#?}", outcome.diagnostics);
    let workflows = outcome.workflows.expect("loads");
    assert!(workflows.workflows.len() >= 6);
    assert_eq!(outcome.org_file, Some(dir.join("org.yaml")));
}

#[test]
fn problems_are_reported_at_their_file_line_and_column() {
    let bad = "workflow: w\napplies_to: { tags: [finance] }\nstages:\n  - name: a\n    approvers: manager\n    when: 'request.duration >'\n";
    let errors = errors(&[("default.yaml", DEFAULT), ("k.yaml", SKIP), ("w.yaml", bad)]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("w.yaml:6:11: error: invalid CEL expression"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("when: 'request.duration >'"),
        "{}",
        errors[0]
    );
}

#[test]
fn unknown_keys_types_and_durations_are_errors() {
    let cases = [
        (
            "workflow: w\napplies_to: { default: true }\nstagez: []\n",
            "w.yaml:3:1: error: unknown field `stagez`",
        ),
        (
            "workflow: w\napplies_to: { default: true }\nstages:\n  - { name: a, approvers: manager, require: many }\n",
            "require must be",
        ),
        (
            "workflow: w\napplies_to: { default: true }\ntimeouts: { remind_after: 3 days }\n",
            "needs a unit",
        ),
        (
            "workflow: w\napplies_to: { default: true }\ntimeouts: { remind_after: 2d, escalate_after: 1d }\n",
            "escalate_after must be later than remind_after",
        ),
        (
            "workflow: w\napplies_to: { default: true }\nstages:\n  - { name: a, approvers: boss }\n",
            "unknown approver selector `boss`",
        ),
        (
            "workflow: w\napplies_to: { default: true }\nstages:\n  - { name: a, approvers: { manager: { level: 0 } } }\n",
            "manager level starts at 1",
        ),
        ("workflow: w\napplies_to: {}\n", "applies_to names nothing"),
    ];
    for (text, expected) in cases {
        let errors = errors(&[("w.yaml", text)]);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected `{expected}` in {errors:#?}"
        );
    }
}

#[test]
fn confluence_permissions_are_refused_with_a_hint() {
    let catalog = "resources:\n  - id: space\n    name: S\n    permanent_allowed: true\n    grants:\n      - confluence_space: { space: X, permissions: [read] }\n";
    let outcome = load_sources(&sources(&[("c.yaml", catalog), ("d.yaml", DEFAULT)]), None);
    let text = outcome.diagnostics[0].to_string();
    assert!(text.starts_with("c.yaml:6:9: error:"), "{text}");
    assert!(text.contains("use a space `role`"), "{text}");
}

#[test]
fn catalog_rules_are_checked() {
    let cases = [
        (
            "resources:\n  - { id: a, name: A, grants: [{ idp_group: G }] }\n",
            "needs a max_duration or default_duration",
        ),
        (
            "resources:\n  - { id: a, name: A, permanent_allowed: true }\n",
            "grants nothing",
        ),
        (
            "resources:\n  - { id: a, name: A, default_duration: 9d, max_duration: 2d, grants: [{ idp_group: G }] }\n",
            "longer than max_duration",
        ),
        (
            "resources:\n  - { id: ledger, name: L, permanent_allowed: true, grants: [{ idp_group: G }] }\n",
            "resource `ledger` is defined twice",
        ),
        (
            "resources:\n  - { id: a, name: A, permanent_allowed: true, grants: [{ atlassian_product: { product: jira, role: user } }] }\n",
            "unknown Atlassian product `jira`",
        ),
        (
            "resources:\n  - { id: a, name: A, permanent_allowed: true, grants: [{ atlassian_product: { product: confluence, role: customer } }] }\n",
            "the Admin API offers no `customer` role on confluence",
        ),
        (
            "resources:\n  - { id: a, name: A, permanent_allowed: true, owner: { user: nobody@x.io }, grants: [{ idp_group: G }] }\n",
            "owner nobody@x.io is not in the org chart",
        ),
    ];
    for (text, expected) in cases {
        let errors = errors(&[("more.yaml", text), ("d.yaml", DEFAULT), ("s.yaml", SKIP)]);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected `{expected}` in {errors:#?}"
        );
    }
}

#[test]
fn overlapping_and_missing_workflows_are_check_errors() {
    let finance = "workflow: finance\napplies_to: { tags: [finance] }\nstages: [{ name: m, approvers: manager }]\n";
    let sox =
        "workflow: sox\napplies_to: { tags: [sox] }\nstages: [{ name: m, approvers: manager }]\n";
    let errors_found = errors(&[
        ("f.yaml", finance),
        ("s.yaml", sox),
        ("k.yaml", SKIP),
        ("d.yaml", DEFAULT),
    ]);
    assert!(
        errors_found
            .iter()
            .any(|e| e.contains("resource `ledger` is covered by several workflows (finance, sox)")),
        "{errors_found:#?}"
    );

    // Without a default, a resource nothing covers is an error too.
    let errors_found = errors(&[("f.yaml", finance), ("k.yaml", SKIP)]);
    assert!(
        errors_found
            .iter()
            .any(|e| e.contains("no workflow applies to resource `wiki`")),
        "{errors_found:#?}"
    );
    let errors_found = errors(&[
        ("d.yaml", DEFAULT),
        ("d2.yaml", &DEFAULT.replace("default\n", "default2\n")),
    ]);
    assert!(
        errors_found.iter().any(|e| e.contains("second default")),
        "{errors_found:#?}"
    );
}

#[test]
fn references_to_people_groups_workflows_and_resources_are_checked() {
    let text = "workflow: w\napplies_to: { resources: [ledger, nope] }\nstages:\n  - { name: a, approvers: [{ user: ghost@x.io }, { group: Nobody }] }\n";
    let found = errors(&[("w.yaml", text), ("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    for expected in [
        "w.yaml:2:35: error: applies_to names unknown resource `nope`",
        "approver ghost@x.io is not in the org chart",
        "group `Nobody` is not in the org chart",
    ] {
        assert!(
            found.iter().any(|e| e.contains(expected)),
            "`{expected}` in {found:#?}"
        );
    }
    let found = errors(&[("d.yaml", DEFAULT)]);
    assert!(
        found
            .iter()
            .any(|e| e.contains("level `admin` names unknown workflow `skip`")),
        "{found:#?}"
    );
}

#[test]
fn the_version_is_a_hash_of_the_files() {
    let a = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let b = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let c = load(&[
        ("d.yaml", &DEFAULT.replace("name: manager", "name: boss")),
        ("k.yaml", SKIP),
    ]);
    assert_eq!(a.version, b.version);
    assert_ne!(a.version, c.version);
    assert_eq!(a.version.len(), 16);
}

// ---- routing rules ----

#[test]
fn the_requester_never_approves_and_fallbacks_apply_in_order() {
    // The controller asks for the ledger they own: resource_owner would be themselves.
    let owner = "workflow: o\napplies_to: { tags: [finance] }\nstages:\n  - { name: owner, approvers: resource_owner, fallback: { title: Chief Financial Officer } }\n";
    let workflows = load(&[("o.yaml", owner), ("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "ctl@x.io",
        "ledger",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(routing.decision, Decision::Pending);
    assert_eq!(approvers(&routing, 0), ["cfo@x.io"]);
    assert!(
        routing.stages[0].why.contains("ctl@x.io is the requester"),
        "{}",
        routing.stages[0].why
    );
    assert!(routing.stages[0].why.contains("stage fallback applies"));

    // No stage fallback: the global fallback approvers apply.
    let bare = owner.replace(", fallback: { title: Chief Financial Officer }", "");
    let defaults = "defaults:\n  fallback_approvers: { group: IT Admins }\n";
    let workflows = load(&[
        ("o.yaml", &bare),
        ("x.yaml", defaults),
        ("d.yaml", DEFAULT),
        ("k.yaml", SKIP),
    ]);
    let routing = route_for(
        &workflows,
        "ctl@x.io",
        "ledger",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(approvers(&routing, 0), ["it1@x.io", "it2@x.io"]);
    assert!(routing.stages[0].why.contains("global fallback"));

    // Nothing left: declined, with the reason written out.
    let workflows = load(&[("o.yaml", &bare), ("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "ctl@x.io",
        "ledger",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(routing.decision, Decision::Denied);
    let reason = routing.reasons.last().expect("a reason");
    assert!(
        reason.contains("stage `owner` needs 1 approver(s) but only 0 may approve"),
        "{reason}"
    );
    assert!(reason.contains("ctl@x.io is the requester"), "{reason}");
}

#[test]
fn the_person_it_is_for_never_approves_either() {
    let owner = "workflow: o\napplies_to: { tags: [finance] }\nstages:\n  - { name: owners, approvers: { group: Owners } }\n";
    let workflows = load(&[("o.yaml", owner), ("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_on_behalf(&workflows, "ctl@x.io", "acc@x.io", "ledger");
    // Both group members are excluded: one filed it, the other receives it.
    assert_eq!(routing.decision, Decision::Denied);
    let why = &routing.stages[0].why;
    assert!(why.contains("ctl@x.io filed the request"), "{why}");
    assert!(
        why.contains("acc@x.io is the person the access is for"),
        "{why}"
    );
}

#[test]
fn on_behalf_of_routes_to_the_subjects_manager() {
    let workflows = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_on_behalf(&workflows, "it1@x.io", "acc@x.io", "ledger");
    assert_eq!(approvers(&routing, 0), ["ctl@x.io"]);
}

#[test]
fn an_inactive_manager_is_skipped_for_the_next_one_up() {
    let workflows = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "dev@x.io",
        "wiki",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(approvers(&routing, 0), ["cto@x.io"]);
    assert!(
        routing.stages[0]
            .why
            .contains("em@x.io is inactive, so next up: cto@x.io")
    );
}

/// Someone named as approver who has left hands their approvals to their manager: a workflow's
/// `user`, and a resource's owner.
#[test]
fn a_named_approver_who_left_hands_over_to_their_manager() {
    const NAMED: &str = "workflow: named\napplies_to: { default: true }\nstages:\n  - { name: lead, approvers: { user: em@x.io } }\n";
    let workflows = load(&[("n.yaml", NAMED), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "dev@x.io",
        "wiki",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(approvers(&routing, 0), ["cto@x.io"]);
    assert!(
        routing.stages[0]
            .why
            .contains("em@x.io is inactive, so next up: cto@x.io"),
        "{}",
        routing.stages[0].why
    );
    // An active named approver is themselves, of course.
    const ACTIVE: &str = "workflow: named\napplies_to: { default: true }\nstages:\n  - { name: lead, approvers: { user: cto@x.io } }\n";
    let workflows = load(&[("n.yaml", ACTIVE), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "dev@x.io",
        "wiki",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(approvers(&routing, 0), ["cto@x.io"]);
}

#[test]
fn missing_cyclic_and_dangling_managers_never_loop_or_crash() {
    let workflows = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    // The CEO has no manager: nobody may approve, declined with the reason.
    let top = route_for(
        &workflows,
        "ceo@x.io",
        "wiki",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(top.decision, Decision::Denied);
    assert!(
        top.reasons
            .iter()
            .any(|r| r.contains("ceo@x.io has no manager")),
        "{:?}",
        top.reasons
    );
    // loop1 → loop2 → loop1: the manager is loop2.
    let cycle = route_for(
        &workflows,
        "loop1@x.io",
        "wiki",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(approvers(&cycle, 0), ["loop2@x.io"]);
    // A manager reference to nobody counts as no manager.
    let dangling = route_for(
        &workflows,
        "lost@x.io",
        "wiki",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(dangling.decision, Decision::Denied);

    // With a global fallback, the same requests escalate to it instead.
    let defaults = "defaults:\n  fallback_approvers: { group: IT Admins }\n";
    let workflows = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP), ("x.yaml", defaults)]);
    let top = route_for(
        &workflows,
        "ceo@x.io",
        "wiki",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(top.decision, Decision::Pending);
    assert_eq!(approvers(&top, 0), ["it1@x.io", "it2@x.io"]);
}

#[test]
fn skip_level_and_department_head_selectors() {
    let workflows = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "acc@x.io",
        "prod",
        Some("admin"),
        RequestedDuration::Unspecified,
    );
    assert_eq!(routing.workflow.as_deref(), Some("skip"));
    assert_eq!(approvers(&routing, 0), ["ctl@x.io"]);
    assert_eq!(approvers(&routing, 1), ["cfo@x.io"]);

    let head = "workflow: h\napplies_to: { tags: [finance] }\nstages: [{ name: head, approvers: department_head }]\n";
    let workflows = load(&[("h.yaml", head), ("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "acc@x.io",
        "ledger",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(approvers(&routing, 0), ["cfo@x.io"]);
}

#[test]
fn stages_run_in_order_with_when_and_require_all() {
    let text = "workflow: f\napplies_to: { tags: [finance] }\nstages:\n  - { name: manager, approvers: manager }\n  - name: cfo\n    approvers: { title: Chief Financial Officer }\n    when: 'request.duration > days(7)'\n  - { name: admins, approvers: { group: IT Admins }, require: all }\n";
    let workflows = load(&[("f.yaml", text), ("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let short = route_for(
        &workflows,
        "acc@x.io",
        "ledger",
        None,
        RequestedDuration::For(Duration::from_secs(3 * 86_400)),
    );
    let names: Vec<(&str, bool)> = short
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.skipped))
        .collect();
    assert_eq!(
        names,
        [("manager", false), ("cfo", true), ("admins", false)]
    );
    assert!(short.stages[1].why.contains("does not hold"));
    assert_eq!(short.stages[2].required, 2);
    assert_eq!(short.stages[2].require, "all");

    let long = route_for(
        &workflows,
        "acc@x.io",
        "ledger",
        None,
        RequestedDuration::For(Duration::from_secs(10 * 86_400)),
    );
    assert!(!long.stages[1].skipped);
    assert_eq!(approvers(&long, 1), ["cfo@x.io"]);
}

#[test]
fn two_stages_mean_two_people() {
    // The controller's manager is the CFO, so the CFO stage may not be the same person.
    let text = "workflow: f\napplies_to: { tags: [finance] }\nstages:\n  - { name: manager, approvers: manager }\n  - { name: cfo, approvers: { title: Chief Financial Officer }, fallback: { user: ceo@x.io } }\n";
    let workflows = load(&[("f.yaml", text), ("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "ctl@x.io",
        "ledger",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(approvers(&routing, 0), ["cfo@x.io"]);
    assert_eq!(approvers(&routing, 1), ["ceo@x.io"]);
    assert!(
        routing.stages[1]
            .why
            .contains("cfo@x.io already approves stage `manager`")
    );
}

#[test]
fn deny_beats_auto_approve() {
    let text = "workflow: f\napplies_to: { tags: [finance] }\nauto_approve:\n  - { name: everyone, when: 'true' }\ndeny:\n  - { name: contractors, when: 'requester.employment_type == \"contractor\"', reason: No contractors. }\nstages: [{ name: m, approvers: manager }]\n";
    let workflows = load(&[("f.yaml", text), ("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let temp = route_for(
        &workflows,
        "temp@x.io",
        "ledger",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(temp.decision, Decision::Denied);
    assert_eq!(
        temp.reasons,
        ["denied by rule `contractors`: No contractors."]
    );
    let employee = route_for(
        &workflows,
        "acc@x.io",
        "ledger",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(employee.decision, Decision::AutoApproved);
    assert!(employee.stages.is_empty());
}

#[test]
fn a_deny_rule_that_cannot_be_evaluated_denies() {
    let text = "workflow: f\napplies_to: { tags: [finance] }\ndeny:\n  - { name: badge, when: 'requester.attributes.badge == \"red\"' }\nauto_approve:\n  - { name: broken, when: 'requester.attributes.badge == \"blue\"' }\nstages: [{ name: m, approvers: manager }]\n";
    let workflows = load(&[("f.yaml", text), ("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "acc@x.io",
        "ledger",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(routing.decision, Decision::Denied);
    assert!(routing.reasons[0].contains("could not be evaluated"));
}

#[test]
fn durations_default_and_are_capped_with_a_reason() {
    let workflows = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let default = route_for(
        &workflows,
        "acc@x.io",
        "ledger",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(default.duration_seconds, Some(7 * 86_400));
    assert!(!default.capped);
    let capped = route_for(
        &workflows,
        "acc@x.io",
        "ledger",
        None,
        RequestedDuration::For(Duration::from_secs(90 * 86_400)),
    );
    assert_eq!(capped.duration_seconds, Some(30 * 86_400));
    assert!(capped.capped);
    assert!(
        capped.reasons[0].contains("capped at the maximum of 30d"),
        "{:?}",
        capped.reasons
    );
    let permanent = route_for(
        &workflows,
        "acc@x.io",
        "ledger",
        None,
        RequestedDuration::Permanent,
    );
    assert!(permanent.capped);
    assert_eq!(permanent.duration_seconds, Some(7 * 86_400));
    let allowed = route_for(
        &workflows,
        "acc@x.io",
        "wiki",
        None,
        RequestedDuration::Permanent,
    );
    assert_eq!(allowed.duration_seconds, None);
}

#[test]
fn the_routing_records_the_workflow_and_its_version() {
    let workflows = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "acc@x.io",
        "wiki",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(routing.workflow.as_deref(), Some("default"));
    assert_eq!(routing.workflow_version, workflows.version);
    let json = serde_json::to_value(&routing).expect("json");
    for key in [
        "resource",
        "level",
        "workflow",
        "decision",
        "duration_seconds",
        "capped",
        "stages",
        "reasons",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    assert_eq!(json["decision"], "pending");
    assert_eq!(json["stages"][0]["require"], "any");
}

#[test]
fn bad_requests_are_errors_not_guesses() {
    let workflows = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let org = org();
    let filer = email("acc@x.io");
    let request = |resource, level| RouteRequest {
        filed_by: &filer,
        on_behalf_of: None,
        resource,
        level,
        duration: RequestedDuration::Unspecified,
        justification: "",
        now: now(),
    };
    assert!(matches!(
        route(&workflows, &org, &request("nope", None)),
        Err(RouteError::UnknownResource(_))
    ));
    assert!(matches!(
        route(&workflows, &org, &request("prod", None)),
        Err(RouteError::LevelRequired { .. })
    ));
    assert!(matches!(
        route(&workflows, &org, &request("prod", Some("root"))),
        Err(RouteError::UnknownLevel { .. })
    ));
    assert!(matches!(
        route(&workflows, &org, &request("wiki", Some("read"))),
        Err(RouteError::NoLevels(_))
    ));
    let stranger = email("who@else.io");
    let unknown = RouteRequest {
        filed_by: &stranger,
        ..request("wiki", None)
    };
    assert!(matches!(
        route(&workflows, &org, &unknown),
        Err(RouteError::UnknownPerson(_))
    ));
}

// ---- properties over random org charts ----

mod properties {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::orgchart::{EmploymentType, Group, OrgSnapshot, Person, PersonId};

    fn person(i: usize, manager: Option<usize>, active: bool, title: usize, dept: usize) -> Person {
        Person {
            id: PersonId(format!("p{i}")),
            email: email(&format!("p{i}@x.io")),
            display_name: format!("P{i}"),
            title: Some(format!("T{title}")),
            department: Some(format!("D{dept}")),
            cost_center: None,
            // Indices past the end are dangling references on purpose.
            manager: manager.map(|m| PersonId(format!("p{m}"))),
            active,
            employment_type: EmploymentType::FullTime,
            atlassian_account_id: None,
            attributes: BTreeMap::new(),
        }
    }

    prop_compose! {
        fn org_chart()(size in 2usize..40)
            (people in proptest::collection::vec(
                (proptest::option::of(0usize..45), proptest::bool::weighted(0.85), 0usize..4, 0usize..3),
                size),
             groups in proptest::collection::vec(proptest::collection::vec(0usize..40, 0..6), 1..4))
            -> OrgSnapshot
        {
            let n = people.len();
            OrgSnapshot {
                people: people.iter().enumerate()
                    .map(|(i, &(m, active, title, dept))| person(i, m, active, title, dept))
                    .collect(),
                groups: groups.iter().enumerate().map(|(g, members)| Group {
                    id: format!("g{g}"),
                    name: format!("G{g}"),
                    members: members.iter().filter(|&&m| m < n).map(|m| PersonId(format!("p{m}"))).collect(),
                    owners: members.iter().take(1).filter(|&&m| m < n).map(|m| PersonId(format!("p{m}"))).collect(),
                }).collect(),
                departments: vec![],
            }
        }
    }

    fn selector() -> impl Strategy<Value = Selector> {
        prop_oneof![
            (1u32..4).prop_map(|level| Selector::Manager { level }),
            Just(Selector::DepartmentHead),
            Just(Selector::ResourceOwner),
            (0usize..4).prop_map(|t| Selector::Title(format!("T{t}"))),
            (0usize..4).prop_map(|g| Selector::Group(format!("G{g}"))),
            (0usize..4).prop_map(|g| Selector::GroupOwner(format!("G{g}"))),
            (0usize..40).prop_map(|p| Selector::User(email(&format!("p{p}@x.io")))),
        ]
    }

    fn stage() -> impl Strategy<Value = Stage> {
        (
            proptest::collection::vec(selector(), 1..3),
            prop_oneof![
                Just(Require::Any),
                Just(Require::All),
                (1u32..3).prop_map(Require::AtLeast)
            ],
            proptest::collection::vec(selector(), 0..2),
        )
            .prop_map(|(approvers, require, fallback)| Stage {
                name: "s".into(),
                approvers,
                require,
                when: None,
                fallback,
            })
    }

    fn workflows(stages: Vec<Stage>, fallback: Vec<Selector>) -> Workflows {
        let mut stages = stages;
        for (i, s) in stages.iter_mut().enumerate() {
            s.name = format!("s{i}");
        }
        Workflows {
            catalog: Catalog::new(vec![Resource {
                id: ResourceId("r".into()),
                name: "R".into(),
                description: String::new(),
                owner: Some(Owner::Group("G0".into())),
                tags: vec![],
                levels: vec![],
                max_duration: None,
                default_duration: None,
                permanent_allowed: true,
                grants: vec![GrantTarget::IdpGroup { group: "X".into() }],
                on_failure: Default::default(),
                give_up_after: crate::workflow::definition::DEFAULT_GIVE_UP_AFTER,
                review_on_move: false,
            }]),
            workflows: vec![Workflow {
                id: "w".into(),
                description: String::new(),
                applies_to: AppliesTo {
                    default: true,
                    ..Default::default()
                },
                auto_approve: vec![],
                deny: vec![],
                stages,
                timeouts: Timeouts::default(),
            }],
            intake: vec![],
            fallback_approvers: fallback,
            birthright: vec![],
            inactive: None,
            version: "test".into(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn requester_and_subject_never_approve_and_routing_is_deterministic(
            snapshot in org_chart(),
            stages in proptest::collection::vec(stage(), 1..4),
            fallback in proptest::collection::vec(selector(), 0..2),
            filer in 0usize..40,
            subject in proptest::option::of(0usize..40),
        ) {
            let n = snapshot.people.len();
            let index = OrgIndex::build(snapshot);
            let workflows = workflows(stages, fallback);
            let filer = email(&format!("p{}@x.io", filer % n));
            let subject = subject.map(|s| email(&format!("p{}@x.io", s % n)));
            let request = RouteRequest {
                filed_by: &filer,
                on_behalf_of: subject.as_ref(),
                resource: "r",
                level: None,
                duration: RequestedDuration::Unspecified,
                justification: "",
                now: now(),
            };
            let first = route(&workflows, &index, &request).expect("routes");
            let second = route(&workflows, &index, &request).expect("routes");
            prop_assert_eq!(&first, &second);
            for stage in &first.stages {
                prop_assert!(!stage.approvers.iter().any(|a| a == filer.as_str()));
                if let Some(subject) = &subject {
                    prop_assert!(!stage.approvers.iter().any(|a| a == subject.as_str()));
                }
                for approver in &stage.approvers {
                    let idx = index.by_email(&email(approver)).expect("approver exists");
                    prop_assert!(index.person(idx).active, "inactive approver {}", approver);
                }
                let mut sorted = stage.approvers.clone();
                sorted.sort();
                prop_assert_eq!(&sorted, &stage.approvers);
            }
            match first.decision {
                Decision::Pending => {
                    for stage in first.stages.iter().filter(|s| !s.skipped) {
                        prop_assert!(stage.approvers.len() >= stage.required);
                    }
                }
                Decision::Denied => prop_assert!(!first.reasons.is_empty()),
                Decision::AutoApproved => {}
            }
        }
    }
}

#[test]
fn group_owner_and_group_selectors_resolve_their_people() {
    let text = "workflow: g\napplies_to: { tags: [finance] }\nstages:\n  - { name: owners, approvers: { group_owner: Owners } }\n  - { name: admins, approvers: { group: IT Admins }, require: 2 }\n";
    let workflows = load(&[("g.yaml", text), ("d.yaml", DEFAULT), ("k.yaml", SKIP)]);
    let routing = route_for(
        &workflows,
        "acc@x.io",
        "ledger",
        None,
        RequestedDuration::Unspecified,
    );
    assert_eq!(approvers(&routing, 0), ["cfo@x.io"]);
    assert_eq!(approvers(&routing, 1), ["it1@x.io", "it2@x.io"]);
    assert_eq!(routing.stages[1].required, 2);
}

#[test]
fn a_site_gets_its_own_intake_mapping_else_the_default() {
    let default =
        "intake:\n  request_types: [Request access]\n  fields: { resource: customfield_1 }\n";
    let sandbox = "intake:\n  sites: [Sandbox.Atlassian.net]\n  request_types: [Access (test)]\n  fields: { resource: customfield_9 }\n";
    let workflows = load(&[
        ("d.yaml", DEFAULT),
        ("k.yaml", SKIP),
        ("i1.yaml", default),
        ("i2.yaml", sandbox),
    ]);
    let pick = |host| {
        workflows
            .intake_for(host)
            .map(|m| m.fields.resource.0.as_str())
    };
    assert_eq!(pick("sandbox.atlassian.net"), Some("customfield_9"));
    assert_eq!(pick("acme.atlassian.net"), Some("customfield_1"));
    let twice = errors(&[
        ("d.yaml", DEFAULT),
        ("k.yaml", SKIP),
        ("i1.yaml", default),
        ("i3.yaml", default),
    ]);
    assert!(
        twice
            .iter()
            .any(|e| e.contains("second default intake mapping")),
        "{twice:#?}"
    );
}

const BIRTHRIGHT: &str = "\
birthright:
  - id: finance-staff
    description: Everyone in Finance reads the ledger.
    when: person.department == \"Finance\" && person.employment_type != \"contractor\"
    grants:
      - { resource: ledger }
      - { resource: wiki }
  - id: engineers
    when: person.department == \"Engineering\"
    approval: manager
    grants:
      - { resource: prod, level: read }
";

#[test]
fn birthright_policies_load_and_say_who_is_due_what() {
    let workflows = load(&[
        ("d.yaml", DEFAULT),
        ("k.yaml", SKIP),
        ("b.yaml", BIRTHRIGHT),
    ]);
    let policies = &workflows.birthright;
    assert_eq!(
        policies.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["finance-staff", "engineers"]
    );
    assert_eq!(policies[1].approval, birthright::Approval::Manager);
    let org = org();
    let due = |who: &str| {
        let idx = org.by_email(&email(who)).expect("in the chart");
        let (owed, problems) = birthright::due(policies, &org, idx, now());
        assert!(problems.is_empty(), "{problems:?}");
        owed.iter()
            .map(|d| {
                let e = &d.entitlement;
                format!(
                    "{}{}",
                    e.resource,
                    e.level
                        .as_ref()
                        .map(|l| format!(":{l}"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(due("acc@x.io"), ["ledger", "wiki"]);
    assert!(
        due("temp@x.io").is_empty(),
        "a contractor is not finance staff"
    );
    assert_eq!(due("dev@x.io"), ["prod:read"]);
    assert!(due("em@x.io").is_empty(), "inactive");
    assert!(due("it1@x.io").is_empty());
}

#[test]
fn birthright_mistakes_are_reported_where_they_are_written() {
    let cases = [
        (
            "birthright:\n  - id: a\n    when: requester.department == \"IT\"\n    grants: [{ resource: ledger }]\n",
            "b.yaml:3:11: error: unknown variable `requester` (this condition can read person, now)",
        ),
        (
            "birthright:\n  - id: a\n    when: 'true'\n    grants: [{ resource: ledgr }]\n",
            "b.yaml:4:14: error: birthright grants unknown resource `ledgr`",
        ),
        (
            "birthright:\n  - id: a\n    when: 'true'\n    grants:\n      - { resource: prod }\n",
            "b.yaml:5:9: error: resource `prod` has access levels (read, admin): say which one",
        ),
        (
            "birthright:\n  - id: a\n    when: 'true'\n    grants:\n      - { resource: prod, level: root }\n",
            "b.yaml:5:9: error: resource `prod` has no access level `root` (it has read, admin)",
        ),
        (
            "birthright:\n  - id: a\n    when: 'true'\n    grants:\n      - { resource: ledger, level: read }\n",
            "b.yaml:5:9: error: resource `ledger` has no access levels, but one was given",
        ),
        (
            "birthright:\n  - id: a\n    when: 'true'\n    approval: owner\n    grants: [{ resource: ledger }]\n",
            "b.yaml:4:15: error: approval `owner` is not one of: none, manager",
        ),
        (
            "birthright:\n  - id: a\n    when: 'true'\n    grants: []\n",
            "b.yaml:4:13: error: birthright `a` grants nothing",
        ),
        (
            "birthright:\n  - id: a\n    when: 'true'\n    grants: [{ resource: ledger }]\n  - id: a\n    when: 'false'\n    grants: [{ resource: wiki }]\n",
            "b.yaml:5:9: error: birthright `a` is defined twice",
        ),
        (
            "birthright:\n  - id: a\n    when: 'true'\n    grant: [{ resource: ledger }]\n",
            "b.yaml:4:5: error: unknown field `grant`",
        ),
    ];
    for (text, expected) in cases {
        let errors = errors(&[("d.yaml", DEFAULT), ("k.yaml", SKIP), ("b.yaml", text)]);
        assert_eq!(errors.len(), 1, "{text}\n{errors:#?}");
        assert!(errors[0].starts_with(expected), "{text}\n{}", errors[0]);
    }
}

#[test]
fn a_resource_may_ask_for_review_when_its_holder_moves() {
    let reviewed = "resources:\n  - { id: payroll, name: Payroll, permanent_allowed: true, review_on_move: true, grants: [{ idp_group: Payroll }] }\n";
    let workflows = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP), ("r.yaml", reviewed)]);
    let get = |id: &str| workflows.catalog.get(id).expect("in the catalog");
    assert!(get("payroll").review_on_move);
    assert!(!get("ledger").review_on_move, "off unless asked");
    let typo = "resources:\n  - { id: payroll, name: Payroll, permanent_allowed: true, review_on_move: yes please }\n";
    let errors = errors(&[("d.yaml", DEFAULT), ("k.yaml", SKIP), ("r.yaml", typo)]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("r.yaml:2:"), "{}", errors[0]);
}

#[test]
fn the_inactive_account_policy_loads_and_its_mistakes_are_named_where_written() {
    use crate::workflow::inactive::{Action, Exclusion};
    let policy = "inactive:\n  exclude: [svc-ci@acme.example, \"*@bots.acme.example\", \"account:5b10ac\"]\n  products:\n    - { product: confluence, after: 90d, action: review }\n    - { product: jira-software, after: 180d, action: end, notice: 7d }\n    - { product: opsgenie, after: 30d, action: end }\n";
    let workflows = load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP), ("i.yaml", policy)]);
    let loaded = workflows.inactive.expect("a policy");
    assert_eq!(loaded.rules.len(), 3);
    assert_eq!(loaded.rules[0].action, Action::Review);
    assert_eq!(
        loaded.rules[0].after,
        std::time::Duration::from_secs(90 * 86_400)
    );
    assert_eq!(
        loaded.rules[1].action,
        Action::End {
            notice: std::time::Duration::from_secs(7 * 86_400)
        }
    );
    assert_eq!(
        loaded.rules[2].action,
        Action::End {
            notice: std::time::Duration::from_secs(14 * 86_400)
        },
        "two weeks' notice unless said"
    );
    assert_eq!(
        loaded.exclude[2],
        Exclusion::Account(crate::ids::AccountId("5b10ac".into()))
    );
    assert!(
        load(&[("d.yaml", DEFAULT), ("k.yaml", SKIP)])
            .inactive
            .is_none(),
        "no file, no policy"
    );

    let wrong = "inactive:\n  exclude: [\"not an email\"]\n  products:\n    - { product: jira, after: 90d, action: review }\n    - { product: confluence, after: 0s, action: review }\n    - { product: compass, after: 9d, action: delete }\n    - { product: opsgenie, after: 9d, action: review, notice: 2d }\n    - { product: statuspage, action: end }\n";
    let errors = errors(&[("d.yaml", DEFAULT), ("k.yaml", SKIP), ("i.yaml", wrong)]);
    let at = |line: usize, text: &str| {
        errors
            .iter()
            .any(|e| e.starts_with(&format!("i.yaml:{line}:")) && e.contains(text))
    };
    assert!(at(2, "is not an email"), "{errors:#?}");
    assert!(at(4, "unknown Atlassian product `jira`"), "{errors:#?}");
    assert!(at(5, "longer than zero"), "{errors:#?}");
    assert!(
        at(6, "action `delete` is not one of: review, end"),
        "{errors:#?}"
    );
    assert!(at(7, "`notice` goes with `action: end`"), "{errors:#?}");
    assert!(at(8, "says no `after`"), "{errors:#?}");
    assert_eq!(errors.len(), 6, "{errors:#?}");
    let twice = [
        ("d.yaml", DEFAULT),
        ("k.yaml", SKIP),
        ("i.yaml", policy),
        ("j.yaml", policy),
    ];
    let errors = self::errors(&twice);
    assert!(
        errors.iter().any(|e| e.contains("written in two files")),
        "{errors:#?}"
    );
}
