//! A real SCIM 2.0 server (`scim2-server` from PyPI, API-NOTES §7.4), seeded over its API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const TOKEN: &str = "scim-test-token";

pub struct ScimServer {
    pub url: String,
    child: Child,
    http: reqwest::Client,
}

/// `TOLLGATE_SCIM2_SERVER`, else the venv `.ci/run` makes at the repository root.
fn program() -> PathBuf {
    std::env::var_os("TOLLGATE_SCIM2_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-scim/bin/scim2-server")
        })
}

pub fn available() -> bool {
    program().exists()
}

impl ScimServer {
    pub async fn start() -> Self {
        super::init();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = Command::new(program())
            .args(["--port", &port.to_string(), "--bearer-token", TOKEN])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scim2-server starts");
        let server = Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            http: reqwest::Client::new(),
        };
        for _ in 0..200 {
            let ready = server
                .http
                .get(format!("{}/ServiceProviderConfig", server.url))
                .bearer_auth(TOKEN)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("scim2-server did not start");
    }

    pub async fn post(&self, resource: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/{resource}", self.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 201, "create {resource}");
        response.json().await.expect("JSON")
    }

    pub async fn patch(&self, path: &str, operations: Value) {
        let response = self
            .http
            .patch(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}).to_string())
            .send()
            .await
            .expect("PATCH");
        assert!(
            response.status().is_success(),
            "patch {path}: {}",
            response.status()
        );
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON")
    }

    /// The `userName`s of the members of group `name`, sorted.
    pub async fn members(&self, name: &str) -> Vec<String> {
        let groups = self.get("Groups").await;
        let group = groups["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["displayName"] == name)
            .cloned()
            .unwrap_or_default();
        let mut names = Vec::new();
        for member in group["members"].as_array().into_iter().flatten() {
            if let Some(id) = member["value"].as_str() {
                let user = self.get(&format!("Users/{id}")).await;
                names.extend(user["userName"].as_str().map(str::to_string));
            }
        }
        names.sort();
        names
    }

    /// A user with the enterprise extension; returns its id.
    pub async fn user(&self, name: &str, manager: Option<&str>, title: &str) -> String {
        let mut enterprise = json!({"department": "ENG"});
        if let Some(m) = manager {
            enterprise["manager"] = json!({"value": m});
        }
        let created = self
            .post(
                "Users",
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                    "userName": name,
                    "displayName": name,
                    "title": title,
                    "active": true,
                    "emails": [{"value": format!("{name}@example.com"), "primary": true}],
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": enterprise,
                }),
            )
            .await;
        created["id"].as_str().expect("id").to_string()
    }

    pub async fn group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members
            .iter()
            .map(|m| json!({"value": m, "type": "User"}))
            .collect();
        let created = self
            .post(
                "Groups",
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members}),
            )
            .await;
        created["id"].as_str().expect("id").to_string()
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
