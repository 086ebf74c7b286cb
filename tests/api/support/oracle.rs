//! Atlassian's own atlassian-jwt (npm, in `tests/oracle`), run through Node as an independent
//! oracle. `.ci/run` installs it; without it these tests skip (and fail under CI=true).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::env::require;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle")
}

/// Whether the oracle can run here (prints why not, or panics in CI).
pub fn available() -> bool {
    let installed = dir().join("node_modules/atlassian-jwt").is_dir();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    require(
        installed && node,
        "Node.js with atlassian-jwt (run `npm ci --prefix tests/oracle`)",
    )
}

/// Sends one request to the oracle and returns its answer.
pub fn ask(request: &Value) -> Value {
    let mut child = Command::new("node")
        .arg(dir().join("oracle.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("request written");
    let output = child.wait_with_output().expect("oracle finishes");
    assert!(
        output.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("oracle answers JSON")
}
