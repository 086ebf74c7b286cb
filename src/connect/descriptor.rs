//! The app descriptors Atlassian reads at install: templates in `atlassian-connect/`, with the
//! base URL, app key and webhook JQL filled in from configuration.

use serde_json::Value;

const JIRA_TEMPLATE: &str = include_str!("../../atlassian-connect/atlassian-connect.json");
const CONFLUENCE_TEMPLATE: &str =
    include_str!("../../atlassian-connect/atlassian-connect-confluence.json");

/// Appended to the app key for the Confluence install, which Atlassian treats as another app.
pub const CONFLUENCE_KEY_SUFFIX: &str = ".confluence";

#[derive(Debug, Clone)]
pub struct Descriptors {
    pub jira: Value,
    pub confluence: Value,
}

impl Descriptors {
    /// Fills in the templates. They are compiled into the binary, so a broken one is a build
    /// defect caught by the tests, never a runtime surprise.
    pub fn render(base_url: &str, app_key: &str, webhook_jql: Option<&str>) -> Self {
        let mut jira: Value = serde_json::from_str(JIRA_TEMPLATE).unwrap_or(Value::Null);
        jira["baseUrl"] = Value::from(base_url);
        jira["key"] = Value::from(app_key);
        if let (Some(jql), Some(hooks)) = (
            webhook_jql.filter(|j| !j.trim().is_empty()),
            jira.pointer_mut("/modules/webhooks")
                .and_then(Value::as_array_mut),
        ) {
            for hook in hooks {
                hook["filter"] = Value::from(jql);
            }
        }
        let mut confluence: Value =
            serde_json::from_str(CONFLUENCE_TEMPLATE).unwrap_or(Value::Null);
        confluence["baseUrl"] = Value::from(base_url);
        confluence["key"] = Value::from(format!("{app_key}{CONFLUENCE_KEY_SUFFIX}"));
        Self { jira, confluence }
    }

    /// Every URL the descriptors name, relative to the base URL.
    pub fn urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        for descriptor in [&self.jira, &self.confluence] {
            collect_urls(descriptor, &mut urls);
        }
        urls.sort();
        urls.dedup();
        urls
    }

    /// Whether `key` is one of our app keys.
    pub fn is_our_key(&self, key: &str) -> bool {
        self.jira["key"] == key || self.confluence["key"] == key
    }
}

fn collect_urls(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    // Absolute URLs (the vendor's site) are not ours to serve.
                    ("url" | "self", Value::String(url)) if url.starts_with('/') => {
                        out.push(url.clone())
                    }
                    ("lifecycle", Value::Object(events)) => out.extend(
                        events
                            .values()
                            .filter_map(Value::as_str)
                            .map(str::to_string),
                    ),
                    _ => collect_urls(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_urls(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_with_configuration() {
        let d = Descriptors::render(
            "https://tollgate.acme.example",
            "io.tollgate.access",
            Some("project = IT"),
        );
        assert_eq!(d.jira["baseUrl"], "https://tollgate.acme.example");
        assert_eq!(d.jira["key"], "io.tollgate.access");
        assert_eq!(d.confluence["key"], "io.tollgate.access.confluence");
        assert_eq!(d.jira["authentication"]["type"], "jwt");
        assert_eq!(d.jira["apiMigrations"]["signed-install"], true);
        assert_eq!(d.jira["apiMigrations"]["context-qsh"], true);
        let events: Vec<&str> = d.jira["modules"]["webhooks"]
            .as_array()
            .expect("webhooks")
            .iter()
            .map(|h| {
                assert_eq!(h["filter"], "project = IT");
                h["event"].as_str().expect("event")
            })
            .collect();
        assert_eq!(
            events,
            [
                "jira:issue_created",
                "jira:issue_updated",
                "comment_created"
            ]
        );
        assert!(d.confluence["modules"].get("webhooks").is_none());
        assert!(d.is_our_key("io.tollgate.access.confluence"));
        assert!(!d.is_our_key("someone.else"));
    }

    #[test]
    fn without_jql_no_filter_is_set() {
        let d = Descriptors::render("https://t.example", "k", None);
        assert!(d.jira["modules"]["webhooks"][0].get("filter").is_none());
        assert!(d.urls().contains(&"/connect/installed".to_string()));
    }
}
