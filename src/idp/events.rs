//! What an identity provider says changed, as its event hooks deliver it: Okta's event hook
//! body and Microsoft Graph's change notifications, read into the people and groups to read
//! again (a targeted re-read, `Connector::reread`). Pure: the door checks the caller, stores
//! what this returns, and a job does the reading.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Someone or some group an event named, to be read again on its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Reread {
    Person(String),
    Group(String),
}

/// One delivered event: its id (the IdP's, or a digest of it when it has none), its type, and
/// what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    pub kind: String,
    pub targets: Vec<Reread>,
}

/// Why a delivery is refused (nothing of it is stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the body is not what the identity provider sends: {0}")]
    Malformed(String),
    #[error("a notification's clientState is not this deployment's")]
    WrongClientState,
}

/// The most events one delivery may carry (Okta sends at most 50, Graph batches up to 1,000).
const MAX_EVENTS: usize = 1_000;

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// An Okta event hook delivery (`data.events[]`): each event's User and UserGroup targets.
pub fn okta(body: &Value) -> Result<Vec<Received>, Refused> {
    let malformed = |why: &str| Refused::Malformed(why.to_string());
    let events = body
        .get("data")
        .and_then(|d| d.get("events"))
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `data.events` list"))?;
    if events.len() > MAX_EVENTS {
        return Err(malformed("too many events in one delivery"));
    }
    events
        .iter()
        .map(|event| {
            let id = text(event, "uuid").ok_or_else(|| malformed("an event without its `uuid`"))?;
            let kind = text(event, "eventType")
                .ok_or_else(|| malformed("an event without its `eventType`"))?;
            let targets = event
                .get("target")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| match (text(t, "type"), text(t, "id")) {
                    (Some("User"), Some(id)) => Some(Reread::Person(id.to_string())),
                    (Some("UserGroup"), Some(id)) => Some(Reread::Group(id.to_string())),
                    _ => None,
                })
                .collect();
            Ok(Received {
                id: format!("okta:{id}"),
                kind: kind.to_string(),
                targets,
            })
        })
        .collect()
}

/// A Graph change notification delivery (`value[]`), every item's `clientState` checked against
/// this deployment's (in constant time): one wrong refuses the whole delivery. Lifecycle
/// notifications (`missed`, `subscriptionRemoved`, …) name nobody: they are kept with no
/// target, and the job reads the changes since the last sync instead.
pub fn graph(body: &Value, client_state: &str) -> Result<Vec<Received>, Refused> {
    let malformed = |why: &str| Refused::Malformed(why.to_string());
    let items = body
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `value` list"))?;
    if items.is_empty() || items.len() > MAX_EVENTS {
        return Err(malformed("no notifications, or too many in one delivery"));
    }
    for item in items {
        let state = text(item, "clientState").unwrap_or("");
        if !crate::secrets::same_secret(state, client_state) {
            return Err(Refused::WrongClientState);
        }
    }
    items
        .iter()
        .map(|item| {
            // Graph gives a notification no id: a redelivery is the same body.
            let id = format!(
                "graph:{}",
                hex::encode(Sha256::digest(item.to_string().as_bytes()))
            );
            if let Some(lifecycle) = text(item, "lifecycleEvent") {
                return Ok(Received {
                    id,
                    kind: format!("lifecycle.{lifecycle}"),
                    targets: Vec::new(),
                });
            }
            let change = text(item, "changeType")
                .ok_or_else(|| malformed("a notification without its `changeType`"))?;
            let resource = text(item, "resource").unwrap_or("");
            let data = item.get("resourceData");
            let target_id = data
                .and_then(|d| text(d, "id"))
                .or_else(|| resource.rsplit('/').next().filter(|s| !s.is_empty()))
                .ok_or_else(|| malformed("a notification without the id it is about"))?;
            let odata = data.and_then(|d| text(d, "@odata.type")).unwrap_or("");
            let lower = resource.to_ascii_lowercase();
            let target = if odata.eq_ignore_ascii_case("#Microsoft.Graph.User")
                || lower.starts_with("users/")
            {
                Reread::Person(target_id.to_string())
            } else if odata.eq_ignore_ascii_case("#Microsoft.Graph.Group")
                || lower.starts_with("groups/")
            {
                Reread::Group(target_id.to_string())
            } else {
                return Err(malformed("a notification about neither a user nor a group"));
            };
            Ok(Received {
                id,
                kind: format!(
                    "{}.{change}",
                    if matches!(target, Reread::Person(_)) {
                        "user"
                    } else {
                        "group"
                    }
                ),
                targets: vec![target],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_okta_deactivation_names_its_user_and_a_membership_its_group() {
        let body = json!({
            "eventType": "com.okta.event_hook",
            "data": {"events": [
                {"uuid": "e1", "eventType": "user.lifecycle.deactivate",
                 "target": [{"id": "00u1", "type": "User", "alternateId": "dev@example.com"}]},
                {"uuid": "e2", "eventType": "group.user_membership.add",
                 "target": [{"id": "00u1", "type": "User"}, {"id": "00g9", "type": "UserGroup"}, {"id": "x", "type": "AppInstance"}]},
            ]},
        });
        let received = okta(&body).expect("read");
        assert_eq!(received[0].id, "okta:e1");
        assert_eq!(received[0].targets, [Reread::Person("00u1".into())]);
        assert_eq!(
            received[1].targets,
            [Reread::Person("00u1".into()), Reread::Group("00g9".into())]
        );
        for bad in [
            json!({}),
            json!({"data": {"events": [{"eventType": "x"}]}}),
            json!({"data": {"events": "no"}}),
        ] {
            assert!(matches!(okta(&bad), Err(Refused::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn graph_notifications_are_checked_for_their_client_state() {
        let item = |state: &str| {
            json!({
                "subscriptionId": "s", "changeType": "updated", "clientState": state,
                "resource": "Users/8f2", "resourceData": {"@odata.type": "#Microsoft.Graph.User", "id": "8f2"},
            })
        };
        let received = graph(&json!({"value": [item("ours")]}), "ours").expect("ours");
        assert_eq!(received[0].targets, [Reread::Person("8f2".into())]);
        assert_eq!(received[0].kind, "user.updated");
        assert_eq!(
            graph(&json!({"value": [item("ours"), item("theirs")]}), "ours"),
            Err(Refused::WrongClientState)
        );
        assert_eq!(
            graph(&json!({"value": [item("")]}), "ours"),
            Err(Refused::WrongClientState)
        );
        let missed = graph(
            &json!({"value": [{"lifecycleEvent": "missed", "clientState": "ours"}]}),
            "ours",
        )
        .expect("lifecycle");
        assert!(missed[0].targets.is_empty());
        assert!(matches!(
            graph(&json!({"value": []}), "ours"),
            Err(Refused::Malformed(_))
        ));
        let again = graph(&json!({"value": [item("ours")]}), "ours").expect("again");
        assert_eq!(again[0].id, received[0].id, "a redelivery has the same id");
    }
}
