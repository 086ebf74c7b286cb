//! The house rules a reader relies on, checked over the source so they cannot quietly lapse:
//!
//! - a request's state changes only in `lifecycle` (by its transition table);
//! - no `sqlx::Error` is made up by hand to carry a domain problem (conflicts and unreadable
//!   data have errors of their own);
//! - time is read only in `clock.rs` (the fakes, being the vendors, keep their own);
//! - the product never depends on the fakes (a dev-dependency only);
//! - the modules depend on each other in one direction ([`LAYERS`], ARCHITECTURE.md): no
//!   module imports one above it, and no import cycle joins any of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every product source file as `(path under src/, text)` (the fakes are a crate of their own).
fn product() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    let read: Vec<(String, String)> = files
        .into_iter()
        .filter_map(|path| {
            let name = path
                .strip_prefix(&root)
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).ok()?;
            Some((name, text))
        })
        .collect();
    assert!(read.len() > 50, "the sources were not found under {root:?}");
    read
}

/// Lines (1-based) of `text` where `hit` says a rule is broken, outside comments.
fn offending(text: &str, hit: impl Fn(&str) -> bool) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.trim_start();
            !code.starts_with("//") && hit(code)
        })
        .map(|(i, _)| i + 1)
        .collect()
}

fn report(broken: Vec<String>, rule: &str) {
    assert!(broken.is_empty(), "{rule}:\n{}", broken.join("\n"));
}

#[test]
fn a_requests_state_changes_only_in_the_lifecycle_module() {
    // What else has a `state` field, and is assigned one, by name of its variable.
    const OTHER_STATES: [&str; 1] = ["hold.state ="];
    let mut broken = Vec::new();
    for (name, text) in product() {
        if name.starts_with("lifecycle/") {
            continue;
        }
        let assigned = offending(&text, |code| {
            code.contains(".state =")
                && !code.contains(".state ==")
                && !OTHER_STATES.iter().any(|o| code.contains(o))
        });
        // A request is made in `received` (the only state it starts in) or read back as stored.
        let built = offending(&text, |code| {
            code.starts_with("state: State::")
                && !code.starts_with("state: State::Received")
                && !code.starts_with("state: State::parse(")
        });
        broken.extend(
            assigned
                .into_iter()
                .chain(built)
                .map(|line| format!("src/{name}:{line}")),
        );
    }
    report(
        broken,
        "a request's state is set outside lifecycle::apply (add an event to the transition table)",
    );
}

#[test]
fn no_sqlx_error_is_made_up_by_hand() {
    let mut broken = Vec::new();
    for (name, text) in product() {
        // Matching on a database's own error is fine; building one to carry something else
        // makes a bug read as an outage.
        let lines = offending(&text, |code| {
            code.match_indices("sqlx::Error::")
                .any(|(at, _)| !code[at..].starts_with("sqlx::Error::Database("))
        });
        broken.extend(lines.into_iter().map(|line| format!("src/{name}:{line}")));
    }
    report(
        broken,
        "an sqlx::Error is built by hand (use StoreError::Corrupt, or a domain conflict)",
    );
}

#[test]
fn time_is_read_only_in_the_clock_module() {
    let mut broken = Vec::new();
    for (name, text) in product() {
        if name == "clock.rs" {
            continue;
        }
        let lines = offending(&text, |code| {
            code.contains("Utc::now()") || code.contains("SystemTime::now()")
        });
        broken.extend(lines.into_iter().map(|line| format!("src/{name}:{line}")));
    }
    report(
        broken,
        "time is read outside clock.rs (use the app's Clock, or clock::wall for the queue and vendors)",
    );
}

#[test]
fn tenant_ticket_and_account_are_passed_as_their_types() {
    // Where text becomes one of these, it may be taken as text: the command line, a stored
    // row or queued job read back (`store::stored_*`, the worker's `stored_ticket`), and the
    // sealing contexts, which every table's key column shares.
    let parses_text = |name: &str, code: &str| {
        name.starts_with("cli/") || code.contains("fn stored_") || code.contains("_context(")
    };
    let mut broken = Vec::new();
    for (name, text) in product() {
        let lines = offending(&text, |code| {
            !parses_text(&name, code)
                && ["tenant", "ticket", "ticket_key", "client_key", "account"]
                    .iter()
                    .any(|param| {
                        code.match_indices(&format!("{param}: &str"))
                            .any(|(at, _)| {
                                !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                            })
                    })
        });
        broken.extend(lines.into_iter().map(|line| format!("src/{name}:{line}")));
    }
    report(
        broken,
        "a tenant, ticket or account is passed as &str (take TenantKey, TicketKey or AccountId, parsed where it comes in)",
    );
}

/// The crate's top-level modules from the bottom up: a module may use those in its own layer
/// and below, never one above. Within a layer, [`no_import_cycle_joins_the_modules`] keeps the
/// uses one-way. A new module must be placed here.
const LAYERS: &[&[&str]] = &[
    // Pure helpers: no I/O, no domain.
    &[
        "ids", "clock", "duration", "yamlfile", "change", "lease", "shutdown", "metrics",
    ],
    // The domain's model, pure: the org chart, workflows, a request's lifecycle, tenants, and
    // the sealing of secrets.
    &[
        "orgchart",
        "workflow",
        "lifecycle",
        "tenant",
        "secrets",
        "scim",
    ],
    &["config", "telemetry"],
    &["store"],
    // What is stored to run later: the job queue, and the durable webhook writer.
    &["jobs", "ingress"],
    &["audit"],
    // Calls to vendors.
    &["outbound"],
    &["atlassian", "idp"],
    // The org chart as this deployment keeps it: synced, cached, matched to accounts.
    &["people"],
    &["failure"],
    // What every domain call can reach.
    &["state"],
    &["alerts"],
    &["notices"],
    &["grants"],
    // The identity lifecycle: joiners' birthright, through the grants.
    &["identity"],
    &["engine"],
    // The doors.
    &[
        "connect",
        "forge",
        "jira_webhooks",
        "scim_push",
        "idp_hooks",
    ],
    &["http", "worker"],
    &["cli", "app"],
];

/// The top-level module a source file belongs to (`engine/intake.rs` → `engine`).
fn module_of(name: &str) -> &str {
    let first = name.split('/').next().unwrap_or(name);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// The top-level modules `text` names through `crate::` (`crate::store::x`, and each head of
/// `crate::{a, b::c}`), outside comment lines.
fn uses(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The heads at the group's first level, each after `{` or a `,`.
            let mut depth = 1;
            let mut head = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => head = true,
                    c if c.is_whitespace() => {}
                    _ => {
                        if head && depth == 1 {
                            found.insert(ident(&group[i..]));
                        }
                        head = false;
                    }
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

/// Which module uses which, and through which files.
fn import_graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (name, text) in product() {
        let from = module_of(&name);
        if matches!(from, "main" | "lib") {
            continue;
        }
        let edges = graph.entry(from.to_string()).or_default();
        for to in uses(&text) {
            if to != from && LAYERS.iter().flat_map(|l| l.iter()).any(|m| *m == to) {
                edges.entry(to).or_default().insert(format!("src/{name}"));
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn every_module_is_placed_in_a_layer() {
    let unplaced: Vec<String> = import_graph()
        .keys()
        .filter(|m| layer_of(m).is_none())
        .cloned()
        .collect();
    report(
        unplaced,
        "a module is not in tests/architecture.rs LAYERS (place it, and in ARCHITECTURE.md)",
    );
}

#[test]
fn no_module_uses_one_above_it() {
    let mut broken = Vec::new();
    for (from, edges) in import_graph() {
        for (to, files) in edges {
            if let (Some(a), Some(b)) = (layer_of(&from), layer_of(&to))
                && b > a
            {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                broken.push(format!("{from} uses {to}: {}", files.join(", ")));
            }
        }
    }
    report(broken, "a module uses one in a layer above it");
}

#[test]
fn no_import_cycle_joins_the_modules() {
    let graph = import_graph();
    // Depth-first, colouring: a use that reaches a module still on the path closes a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|m| m == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|pair| {
                    let files = &graph[&pair[0]][&pair[1]];
                    let first = files.iter().next().map(String::as_str).unwrap_or("");
                    format!("{} → {} ({first})", pair[0], pair[1])
                })
                .collect();
            cycles.push(steps.join(", "));
            return;
        }
        path.push(node.to_string());
        if let Some(edges) = graph.get(node) {
            for next in edges.keys() {
                visit(next, graph, path, done, cycles);
            }
        }
        path.pop();
        done.insert(node.to_string());
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    report(cycles, "modules import each other in a cycle");
}

#[test]
fn the_import_reader_finds_grouped_and_nested_uses() {
    let text = "use crate::store::{Store, Tx};\n// use crate::engine;\nuse crate::{audit::{self, Event}, ids, jobs::Job};\nlet x = crate::clock::wall();";
    let found: Vec<String> = uses(text).into_iter().collect();
    assert_eq!(found, ["audit", "clock", "ids", "jobs", "store"]);
}

#[test]
fn the_product_never_depends_on_the_fakes() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("Cargo.toml");
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] table");
    assert!(
        !dependencies.contains("tollgate-fakes"),
        "the fakes are a dev-dependency of the tests and benches, never of the product"
    );
    let mentions = product()
        .into_iter()
        .filter(|(_, text)| text.contains("tollgate_fakes"))
        .map(|(name, _)| format!("src/{name}"))
        .collect();
    report(mentions, "product code names the fakes");
}
