//! Forge product events, in the shape the ingress knows. The engine reads Jira webhook bodies
//! (`issue.key`, `comment.author`, `comment.body`, `user`) and re-reads the issue through REST
//! anyway, so a Forge event becomes a Jira webhook body with the same fields, and the engine
//! does not know which door it came through.

use serde_json::{Map, Value, json};

/// Forge's Jira events and the webhook events they stand for.
pub const EVENTS: [(&str, &str); 3] = [
    ("avi:jira:created:issue", "jira:issue_created"),
    ("avi:jira:updated:issue", "jira:issue_updated"),
    ("avi:jira:commented:issue", "comment_created"),
];

/// A product event ready for the ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The Jira webhook event it stands for.
    pub event_type: &'static str,
    /// Stable across Forge's retries of the same event.
    pub delivery_id: String,
    /// A Jira webhook body.
    pub payload: String,
    /// The sites the event names; they must be the invocation token's.
    pub sites: NamedSites,
}

/// The sites an event body names: cloud ids (`cloudId`, `installContext`) and site hosts (the
/// issue's `self`, `siteUrl`). The body is not signed; the token says which site called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedSites {
    pub cloud_ids: Vec<String>,
    pub hosts: Vec<String>,
}

impl NamedSites {
    fn read(value: &Value, into: &mut Self) {
        for pointer in ["/cloudId", "/context/cloudId"] {
            if let Some(id) = value.pointer(pointer).and_then(Value::as_str) {
                into.cloud_ids.push(id.to_string());
            }
        }
        for pointer in ["/installContext", "/context/installContext"] {
            if let Some(ari) = value.pointer(pointer).and_then(Value::as_str) {
                // `ari:cloud:jira::site/{cloudId}`
                into.cloud_ids
                    .push(ari.rsplit('/').next().unwrap_or(ari).to_string());
            }
        }
        for pointer in ["/issue/self", "/siteUrl", "/context/siteUrl"] {
            if let Some(url) = value.pointer(pointer).and_then(Value::as_str) {
                into.hosts.push(host_of(url));
            }
        }
    }

    /// Whether every site named is the one the token was issued for (`site_url` when the token
    /// names it); the reason when not.
    pub fn check(&self, cloud_id: &str, site_url: Option<&str>) -> Result<(), String> {
        if let Some(other) = self.cloud_ids.iter().find(|id| id.as_str() != cloud_id) {
            return Err(format!(
                "the event names cloud {other}, the token cloud {cloud_id}"
            ));
        }
        if let Some(site) = site_url.map(host_of)
            && let Some(other) = self.hosts.iter().find(|h| **h != site)
        {
            return Err(format!(
                "the event names site {other}, the token site {site}"
            ));
        }
        Ok(())
    }
}

/// `https://acme.atlassian.net/rest/…` → `acme.atlassian.net` (lower case).
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("the event body is not JSON: {0}")]
    NotJson(String),
    #[error("the event has no `{0}`")]
    Missing(&'static str),
}

/// `Ok(None)` for events Tollgate does not act on.
pub fn normalize(body: &[u8]) -> Result<Option<Normalized>, EventError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    // Some deliveries wrap the event in `payload`; the event itself names its type.
    let event = match value.get("payload") {
        Some(inner) if inner.get("eventType").is_some() => inner,
        _ => &value,
    };
    let Some(forge_type) = event.get("eventType").and_then(Value::as_str) else {
        return Err(EventError::Missing("eventType"));
    };
    let Some(&(_, event_type)) = EVENTS.iter().find(|(forge, _)| *forge == forge_type) else {
        return Ok(None);
    };
    let mut sites = NamedSites::default();
    NamedSites::read(&value, &mut sites);
    if !std::ptr::eq(event, &value) {
        NamedSites::read(event, &mut sites);
    }
    let issue = event.get("issue").ok_or(EventError::Missing("issue"))?;
    let issue_id = issue
        .get("id")
        .and_then(id_text)
        .ok_or(EventError::Missing("issue.id"))?;
    if issue.get("key").and_then(Value::as_str).is_none() {
        return Err(EventError::Missing("issue.key"));
    }
    let mut payload = Map::new();
    payload.insert("webhookEvent".into(), json!(event_type));
    payload.insert("issue".into(), issue.clone());
    if let Some(account) = event.get("atlassianId").and_then(Value::as_str) {
        payload.insert("user".into(), json!({ "accountId": account }));
    }
    for field in ["comment", "changelog", "timestamp"] {
        if let Some(v) = event.get(field) {
            payload.insert(field.into(), v.clone());
        }
    }
    // What makes one event unique: the comment or the change it reports, else its whole body
    // without the retry bookkeeping Forge adds on a retry.
    let unique = match event_type {
        "comment_created" => event.pointer("/comment/id").and_then(id_text),
        "jira:issue_updated" => event.pointer("/changelog/id").and_then(id_text),
        _ => Some(String::new()),
    };
    let delivery_id = match unique {
        Some(unique) => format!("forge:{forge_type}:{issue_id}:{unique}"),
        None => {
            let mut bare = event.clone();
            if let Some(map) = bare.as_object_mut() {
                map.remove("retryContext");
            }
            format!(
                "forge:sha256:{}",
                crate::ingress::sha256_hex(bare.to_string().as_bytes())
            )
        }
    };
    Ok(Some(Normalized {
        event_type,
        delivery_id,
        payload: Value::Object(payload).to_string(),
        sites,
    }))
}

/// Ids come as strings or numbers depending on the event.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() && s.len() <= 100 => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sites_an_event_names_must_be_the_tokens() {
        let body = json!({
            "payload": {
                "eventType": "avi:jira:created:issue",
                "issue": {"id": "1", "key": "IT-1", "self": "https://ACME.atlassian.net/rest/api/3/issue/1"},
            },
            "context": {"cloudId": "c1", "installContext": "ari:cloud:jira::site/c1"},
        });
        let event = normalize(body.to_string().as_bytes())
            .expect("event")
            .expect("handled");
        assert_eq!(event.sites.cloud_ids, ["c1", "c1"]);
        assert_eq!(event.sites.hosts, ["acme.atlassian.net"]);
        assert_eq!(
            event.sites.check("c1", Some("https://acme.atlassian.net")),
            Ok(())
        );
        assert_eq!(event.sites.check("c1", None), Ok(()));
        assert!(event.sites.check("c2", None).is_err());
        assert!(
            event
                .sites
                .check("c1", Some("https://evil.atlassian.net"))
                .is_err()
        );
        // An event that names no site is judged by the token alone.
        assert_eq!(
            NamedSites::default().check("c9", Some("https://x.atlassian.net")),
            Ok(())
        );
    }

    #[test]
    fn a_comment_event_becomes_a_comment_webhook_with_a_stable_id() {
        let body = json!({
            "eventType": "avi:jira:commented:issue",
            "atlassianId": "acc-dan",
            "issue": {"id": "10001", "key": "IT-7", "fields": {"summary": "x"}},
            "comment": {"id": "20002", "author": {"accountId": "acc-dan"},
                        "body": {"type": "doc", "version": 1, "content": []}},
            "context": {"cloudId": "c1"},
        });
        let first = normalize(body.to_string().as_bytes())
            .expect("valid")
            .expect("handled");
        assert_eq!(first.event_type, "comment_created");
        assert_eq!(
            first.delivery_id,
            "forge:avi:jira:commented:issue:10001:20002"
        );
        let payload: Value = serde_json::from_str(&first.payload).expect("json");
        assert_eq!(payload["issue"]["key"], "IT-7");
        assert_eq!(payload["comment"]["author"]["accountId"], "acc-dan");
        assert_eq!(payload["user"]["accountId"], "acc-dan");

        let mut retried = body.clone();
        retried["retryContext"] = json!({"retryCount": 1});
        let again = normalize(retried.to_string().as_bytes())
            .expect("valid")
            .expect("handled");
        assert_eq!(again.delivery_id, first.delivery_id);
    }

    #[test]
    fn updates_without_a_changelog_are_told_apart_by_content_not_by_retries() {
        let update = |summary: &str, retry: Option<u32>| {
            let mut body = json!({
                "eventType": "avi:jira:updated:issue",
                "issue": {"id": 10001, "key": "IT-7", "fields": {"summary": summary}},
            });
            if let Some(n) = retry {
                body["retryContext"] = json!({"retryCount": n});
            }
            normalize(body.to_string().as_bytes())
                .expect("valid")
                .expect("handled")
                .delivery_id
        };
        assert_eq!(update("a", None), update("a", Some(2)));
        assert_ne!(update("a", None), update("b", None));
    }

    #[test]
    fn other_events_are_ignored_and_broken_ones_refused() {
        let ignored = json!({"eventType": "avi:jira:deleted:issue", "issue": {"id": "1"}});
        assert_eq!(normalize(ignored.to_string().as_bytes()), Ok(None));
        assert!(matches!(
            normalize(b"{not json"),
            Err(EventError::NotJson(_))
        ));
        assert_eq!(
            normalize(br#"{"eventType": "avi:jira:created:issue"}"#),
            Err(EventError::Missing("issue"))
        );
        assert_eq!(normalize(b"{}"), Err(EventError::Missing("eventType")));
    }
}
