//! The house rules a reader relies on, checked over the source so they cannot quietly lapse:
//!
//! - a request's state changes only in `lifecycle` (by its transition table);
//! - no `sqlx::Error` is made up by hand to carry a domain problem (conflicts and unreadable
//!   data have errors of their own);
//! - time is read only in `clock.rs` (the fakes, being the vendors, keep their own).

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

/// Every product source file (not the fakes) as `(path under src/, text)`.
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
        .filter(|(name, _)| !name.starts_with("fakes/"))
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
