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

fn plan(args: &[&str]) -> std::process::Output {
    tollgate()
        .args([
            "lifecycle",
            "plan",
            "--dir",
            "workflows",
            "--org",
            "workflows/org.yaml",
        ])
        .args(args)
        .output()
        .expect("runs")
}

fn due_of(person: &serde_json::Value) -> Vec<String> {
    person["due"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| match d["level"].as_str() {
            Some(level) => format!("{}:{level}", d["resource"].as_str().unwrap_or("?")),
            None => d["resource"].as_str().unwrap_or("?").to_string(),
        })
        .collect()
}

#[test]
fn lifecycle_plan_shows_what_each_person_is_due_and_by_which_policy() {
    let output = plan(&["--format", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        shown["policies"],
        serde_json::json!(["all-staff", "engineering", "engineering-contractors"])
    );
    let person = |email: &str| {
        shown["people"]
            .as_array()
            .expect("people")
            .iter()
            .find(|p| p["email"] == email)
            .cloned()
            .unwrap_or_else(|| panic!("{email} is not in the plan"))
    };
    let noah = person("noah.nash@acme.example");
    assert_eq!(
        due_of(&noah),
        [
            "zoom",
            "confluence-licence",
            "github",
            "datadog:read",
            "confluence-eng-docs"
        ]
    );
    assert_eq!(
        noah["due"][2]["policies"],
        serde_json::json!(["engineering"])
    );
    assert_eq!(noah["due"][2]["approval"], "none");
    // A contractor in engineering: no staff tools, and the source code after the manager agrees.
    let pablo = person("pablo.perez@acme.example");
    assert_eq!(due_of(&pablo), ["github"]);
    assert_eq!(pablo["due"][0]["approval"], "manager");
    // Nobody holds anything in a file's chart: a run would grant what needs no approval, and
    // leave the rest to the manager.
    assert_eq!(pablo["grant"], serde_json::json!([]));
    assert_eq!(
        pablo["needs_approval"],
        serde_json::json!([{"resource": "github", "level": null}])
    );
    assert_eq!(noah["grant"].as_array().map(Vec::len), Some(5));
    assert_eq!(noah["end"], serde_json::json!([]));
    // Someone inactive is due nothing; finance gets the staff tools only.
    assert!(due_of(&person("quinn.quist@acme.example")).is_empty());
    assert_eq!(
        due_of(&person("erin.evans@acme.example")),
        ["zoom", "confluence-licence"]
    );
}

#[test]
fn lifecycle_plan_for_one_person_reads_as_text() {
    let output = plan(&["--person", "Pablo.Perez@acme.example"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("pablo.perez@acme.example (Pablo Perez)\n  github: by engineering-contractors, approved by the manager first (would wait for the manager)"),
        "{text}"
    );
    assert!(!text.contains("noah"), "{text}");

    let output = plan(&["--person", "nobody@acme.example"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nobody@acme.example is not in the org chart"),
        "{stderr}"
    );
}
