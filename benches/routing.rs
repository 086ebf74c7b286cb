//! Routing decisions against a generated 100,000-person org chart (8 levels, 5,000 groups).
//!
//! `cargo bench --bench routing` prints the index build time, the resident memory the snapshot
//! and index take, and the distribution of per-decision routing times. Targets (issue 5):
//! median ≤ 20 µs per decision, index build ≤ 1 s, index memory ≤ 200 MB.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use tollgate::orgchart::{Email, EmploymentType, Group, OrgIndex, OrgSnapshot, Person, PersonId};
use tollgate::workflow::{RequestedDuration, RouteRequest, load_sources, route};

const PEOPLE: usize = 100_000;
const GROUPS: usize = 5_000;
const BRANCHING: usize = 5;
const DECISIONS: usize = 20_000;

/// A small deterministic generator, so every run routes the same requests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn email(i: usize) -> Email {
    Email::parse(&format!("p{i}@corp.example")).expect("valid")
}

const DEPARTMENTS: &[&str] = &["Finance", "Engineering", "Sales", "Operations", "People"];

/// A tree: person 0 at the top, each person `i > 0` reporting to `(i - 1) / BRANCHING`, which
/// gives 8 levels for 100,000 people.
fn snapshot(rng: &mut Rng) -> OrgSnapshot {
    let people = (0..PEOPLE)
        .map(|i| {
            let manager = (i > 0).then(|| (i - 1) / BRANCHING);
            let depth = {
                let (mut d, mut j) = (0, i);
                while j > 0 {
                    j = (j - 1) / BRANCHING;
                    d += 1;
                }
                d
            };
            let title = match (i, depth) {
                (1, _) => "Chief Financial Officer".to_string(),
                (_, 0) => "Chief Executive Officer".to_string(),
                (_, d) => format!("Level {d} {}", ["Engineer", "Analyst", "Manager"][i % 3]),
            };
            Person {
                id: PersonId(format!("id-{i}")),
                email: email(i),
                display_name: format!("Person {i}"),
                title: Some(title),
                department: Some(DEPARTMENTS[if i < 6 { i % 5 } else { (i / 6) % 5 }].to_string()),
                cost_center: Some(format!("CC-{}", i % 400)),
                manager: manager.map(|m| PersonId(format!("id-{m}"))),
                active: rng.below(50) != 0,
                employment_type: if rng.below(10) == 0 {
                    EmploymentType::Contractor
                } else {
                    EmploymentType::FullTime
                },
                atlassian_account_id: None,
                attributes: [("location".to_string(), format!("Site {}", i % 30))]
                    .into_iter()
                    .collect(),
            }
        })
        .collect();
    let groups = (0..GROUPS)
        .map(|g| {
            let size = 5 + rng.below(40);
            Group {
                id: format!("g{g}"),
                name: format!("Group {g}"),
                members: (0..size)
                    .map(|_| PersonId(format!("id-{}", rng.below(PEOPLE))))
                    .collect(),
                owners: (0..2)
                    .map(|_| PersonId(format!("id-{}", rng.below(PEOPLE))))
                    .collect(),
            }
        })
        .collect();
    OrgSnapshot {
        people,
        groups,
        departments: vec![],
    }
}

const WORKFLOWS: &[(&str, &str)] = &[
    (
        "catalog.yaml",
        "resources:
  - { id: erp, name: ERP, owner: { group: Group 7 }, tags: [finance, sox], default_duration: 7d, max_duration: 30d, grants: [{ idp_group: Group 1 }] }
  - { id: repo, name: Repo, owner: { user: p3@corp.example }, tags: [engineering], default_duration: 30d, max_duration: 90d, grants: [{ idp_group: Group 2 }] }
  - { id: space, name: Space, owner: { group: Group 9 }, tags: [docs], default_duration: 90d, max_duration: 365d, grants: [{ confluence_space: { space: ENG, role: Collaborator } }] }
  - id: prod
    name: Prod
    tags: [engineering]
    max_duration: 7d
    levels:
      - { id: read, grants: [{ idp_group: Group 3 }] }
      - { id: admin, grants: [{ idp_group: Group 4 }], workflow: skip-level }
",
    ),
    (
        "finance.yaml",
        "workflow: finance
applies_to: { tags: [finance] }
deny:
  - { name: contractors, when: 'requester.employment_type == \"contractor\" && \"sox\" in resource.tags' }
stages:
  - { name: manager, approvers: manager }
  - { name: cfo, approvers: { title: Chief Financial Officer }, when: 'request.duration > days(7) || \"sox\" in resource.tags', fallback: { group: Group 11 } }
  - { name: owners, approvers: resource_owner, require: 2 }
",
    ),
    (
        "engineering.yaml",
        "workflow: engineering
applies_to: { tags: [engineering] }
auto_approve:
  - { name: short-read, when: 'resource.level == \"read\" && request.duration <= days(1)' }
stages:
  - { name: manager, approvers: manager }
",
    ),
    (
        "skip.yaml",
        "workflow: skip-level
applies_to: { levels: [admin] }
stages:
  - { name: manager, approvers: manager }
  - { name: skip, approvers: { manager: { level: 2 } } }
  - { name: head, approvers: department_head }
",
    ),
    (
        "default.yaml",
        "workflow: default
applies_to: { default: true }
stages:
  - { name: manager, approvers: manager }
  - { name: owners, approvers: resource_owner, require: 2, fallback: { group_owner: Group 9 } }
",
    ),
    (
        "defaults.yaml",
        "defaults:\n  fallback_approvers: { group: Group 0 }\n",
    ),
];

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let rss_start = rss_bytes();
    let snapshot = snapshot(&mut rng);
    let rss_snapshot = rss_bytes();
    let started = Instant::now();
    let index = OrgIndex::build(snapshot);
    let build = started.elapsed();
    let rss_index = rss_bytes();

    let sources: Vec<(PathBuf, String)> = WORKFLOWS
        .iter()
        .map(|(name, text)| (PathBuf::from(name), text.to_string()))
        .collect();
    let outcome = load_sources(&sources, Some(&index));
    let workflows = outcome
        .workflows
        .unwrap_or_else(|| panic!("benchmark workflows invalid: {:#?}", outcome.diagnostics));

    let cases: Vec<(Email, &str, Option<&str>, RequestedDuration)> = (0..DECISIONS)
        .map(|_| {
            let requester = email(1 + rng.below(PEOPLE - 1));
            let (resource, level) = match rng.below(5) {
                0 => ("erp", None),
                1 => ("repo", None),
                2 => ("space", None),
                3 => ("prod", Some("read")),
                _ => ("prod", Some("admin")),
            };
            let days = 1 + rng.below(20) as u64;
            (
                requester,
                resource,
                level,
                RequestedDuration::For(Duration::from_secs(days * 86_400)),
            )
        })
        .collect();
    let now = Utc::now();
    let mut timings = Vec::with_capacity(DECISIONS);
    let mut outcomes = [0usize; 3];
    for round in 0..2 {
        for (requester, resource, level, duration) in &cases {
            let request = RouteRequest {
                filed_by: requester,
                on_behalf_of: None,
                resource,
                level: *level,
                duration: *duration,
                justification: "benchmark",
                now,
            };
            let started = Instant::now();
            let routing = route(&workflows, &index, &request).expect("routes");
            let elapsed = started.elapsed();
            // The first round warms caches and is not counted.
            if round == 1 {
                timings.push(elapsed);
                outcomes[routing.decision as usize] += 1;
            }
            std::hint::black_box(routing);
        }
    }
    timings.sort();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "org chart: {} people, {} groups, depth 8",
        index.len(),
        index.group_count()
    );
    println!("index build: {:.0} ms", build.as_secs_f64() * 1000.0);
    println!(
        "memory (RSS): snapshot {:.1} MiB, snapshot + index {:.1} MiB",
        mib(rss_snapshot.saturating_sub(rss_start)),
        mib(rss_index.saturating_sub(rss_start)),
    );
    println!(
        "routing ({DECISIONS} decisions): median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        percentile(&timings, 0.5).as_secs_f64() * 1e6,
        percentile(&timings, 0.9).as_secs_f64() * 1e6,
        percentile(&timings, 0.99).as_secs_f64() * 1e6,
        timings[timings.len() - 1].as_secs_f64() * 1e6,
    );
    println!(
        "decisions: {} pending, {} auto-approved, {} denied",
        outcomes[0], outcomes[1], outcomes[2]
    );
}
