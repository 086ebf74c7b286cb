//! `tollgate workflows check` and `simulate`, through the real binary, on the shipped examples.

use std::path::PathBuf;

use crate::support::binary as tollgate;

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workflows")
}

#[test]
fn check_passes_on_the_shipped_workflows() {
    let output = tollgate()
        .args(["workflows", "check", "workflows"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains(": OK, version "), "{stdout}");
    assert!(
        stdout.contains("checked against workflows/org.yaml"),
        "{stdout}"
    );
}

#[test]
fn check_reports_every_problem_with_its_position_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["catalog.yaml", "org.yaml", "engineering.yaml"] {
        std::fs::copy(shipped().join(name), dir.path().join(name)).expect("copy");
    }
    std::fs::write(
        dir.path().join("broken.yaml"),
        "workflow: broken\napplies_to: { default: true }\nstages:\n  - name: a\n    approvers: { group: No Such Group }\n    when: 'requester.title =='\n",
    )
    .expect("write");
    let output = tollgate()
        .args(["workflows", "check"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let broken = dir.path().join("broken.yaml");
    assert!(
        stdout.contains(&format!(
            "{}:6:11: error: invalid CEL expression",
            broken.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{}:5:16: error: group `No Such Group` is not in the org chart",
            broken.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("error(s)"), "{stdout}");
}

#[test]
fn simulate_prints_the_documented_json() {
    let output = tollgate()
        .args([
            "workflows",
            "simulate",
            "--dir",
            "workflows",
            "--org",
            "workflows/org.yaml",
            "--requester",
            "erin.evans@acme.example",
            "--resource",
            "netsuite",
            "--duration",
            "60d",
            "--justification",
            "quarter close",
            "--format",
            "json",
        ])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let routing: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(routing["resource"], "netsuite");
    assert_eq!(routing["workflow"], "finance-systems");
    assert_eq!(routing["decision"], "pending");
    assert_eq!(routing["duration_seconds"], 30 * 86_400);
    assert_eq!(routing["capped"], true);
    assert_eq!(routing["stages"][0]["name"], "manager");
    assert_eq!(
        routing["stages"][0]["approvers"],
        serde_json::json!(["dan.diaz@acme.example"])
    );
    assert_eq!(
        routing["stages"][1]["approvers"],
        serde_json::json!(["carol.chen@acme.example"])
    );
    assert_eq!(routing["stages"][1]["skipped"], false);
}

#[test]
fn simulate_explains_a_bad_request() {
    let output = tollgate()
        .args([
            "workflows",
            "simulate",
            "--dir",
            "workflows",
            "--requester",
            "erin.evans@acme.example",
            "--resource",
            "datadog",
        ])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("has access levels (read, admin)"),
        "{stderr}"
    );
}

#[test]
fn jsm_options_list_the_catalog_for_the_resource_field() {
    let output = crate::support::binary()
        .args(["workflows", "jsm-options", "workflows"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let options: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    assert!(options.contains(&"NetSuite (finance ERP)"), "{text}");
    assert!(text.contains("# Datadog: read, admin"), "{text}");
}
