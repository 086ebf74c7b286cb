//! Ticket comments as Jira holds them. A decision made in a comment counts on what these reads
//! return, never on a webhook body's word (qsh signs the path, not the body).

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::Value;

use super::adf;
use super::api::{Atlassian, AtlassianError, Site, segment, with_query};
use super::errors::CallError;
use crate::ids::{AccountId, TicketKey};

/// The comment property naming the notice a comment of Tollgate's carries.
pub const NOTICE_PROPERTY: &str = "tollgate.notice";

/// A comment's id. Jira sends it as a string; Forge's events as a number. Both are one comment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommentId(String);

impl CommentId {
    /// A comment id from an event or a REST answer: a non-empty run of digits, as a string or a
    /// number (anything else is not a Jira comment id, and is never put in a URL).
    pub fn from_json(value: &Value) -> Option<Self> {
        let text = match value {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.as_u64()?.to_string(),
            _ => return None,
        };
        let digits =
            !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit());
        digits.then_some(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CommentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a decision in a comment rests on, as read back from Jira.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: CommentId,
    pub author: AccountId,
    pub author_name: Option<String>,
    /// Written by an app (Tollgate's own comments among them): never a decision.
    pub by_app: bool,
    /// The body as plain text (ADF flattened).
    pub text: String,
    pub created: DateTime<Utc>,
    /// Hidden from the customer (JSM internal) or restricted to a role or group.
    pub restricted: bool,
    /// The notice key a comment of Tollgate's carries (read when properties are expanded).
    pub notice: Option<String>,
}

impl Comment {
    /// `None` for a comment without an author or a readable creation time (not one a decision
    /// can rest on).
    pub fn from_rest(value: &Value) -> Option<Self> {
        let author = value.get("author")?;
        let account = author.get("accountId").and_then(Value::as_str)?;
        let created = value
            .get("created")
            .and_then(Value::as_str)
            .and_then(parse_time)?;
        let restricted = value.get("jsdPublic").and_then(Value::as_bool) == Some(false)
            || value.get("visibility").is_some_and(|v| !v.is_null());
        Some(Self {
            id: CommentId::from_json(value.get("id")?)?,
            author: AccountId(account.to_string()),
            author_name: author
                .get("displayName")
                .and_then(Value::as_str)
                .filter(|n| !n.trim().is_empty())
                .map(str::to_string),
            by_app: author.get("accountType").and_then(Value::as_str) == Some("app"),
            text: match value.get("body") {
                Some(Value::String(plain)) => plain.clone(),
                Some(body) => adf::plain_text(body),
                None => String::new(),
            },
            created,
            restricted,
            notice: value
                .get("properties")
                .and_then(Value::as_array)
                .and_then(|ps| ps.iter().find(|p| p["key"] == NOTICE_PROPERTY))
                .and_then(|p| p.pointer("/value/key"))
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

/// Jira writes `2026-11-28T09:20:00.000+0000` (no colon in the offset); RFC 3339 is taken too.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn comments_path(key: &TicketKey) -> String {
    format!("/rest/api/3/issue/{}/comment", segment(key))
}

impl Atlassian {
    /// The comment `id` on issue `key`, or `None` when Jira has no such comment on that issue
    /// (deleted, never written, or on another issue).
    pub async fn issue_comment(
        &self,
        site: &Site,
        key: &TicketKey,
        id: &CommentId,
    ) -> Result<Option<Comment>, AtlassianError> {
        let path = format!("{}/{}", comments_path(key), id.as_str());
        match self.on_site(site, Method::GET, &path, None).await {
            Ok(reply) => {
                let value: Value = reply.json()?;
                match Comment::from_rest(&value) {
                    Some(comment) if &comment.id == id => Ok(Some(comment)),
                    _ => Err(AtlassianError::Refused(format!(
                        "comment {id} on {key} came back without its id, author or time"
                    ))),
                }
            }
            Err(CallError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every comment on issue `key`, oldest first (all pages). Comments a decision cannot rest
    /// on (no author) are left out.
    pub async fn issue_comments(
        &self,
        site: &Site,
        key: &TicketKey,
    ) -> Result<Vec<Comment>, AtlassianError> {
        let path = with_query(
            &comments_path(key),
            &[("orderBy", "created"), ("expand", "properties")],
        );
        let items = self.jira_pages(site, None, &path, "comments").await?;
        let mut comments: Vec<Comment> = items.iter().filter_map(Comment::from_rest).collect();
        comments.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(comments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comment_ids_are_read_as_strings_or_numbers() {
        assert_eq!(
            CommentId::from_json(&json!("10042")),
            CommentId::from_json(&json!(10042))
        );
        for bad in [
            json!(""),
            json!("../10042"),
            json!("10042?x=1"),
            json!(-1),
            json!(1.5),
            json!(null),
            json!({"id": 1}),
        ] {
            assert_eq!(CommentId::from_json(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_rest_comment_is_read_with_its_author_text_time_and_visibility() {
        let value = json!({
            "id": "10050",
            "author": {"accountId": "acc-dan", "displayName": "Dan", "accountType": "atlassian"},
            "body": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "/approve ok"}]}]},
            "created": "2026-11-28T09:20:00.000+0000",
            "jsdPublic": false
        });
        let comment = Comment::from_rest(&value).expect("comment");
        assert_eq!(comment.author, AccountId("acc-dan".into()));
        assert_eq!(comment.text.trim(), "/approve ok");
        assert!(comment.restricted && !comment.by_app);
        assert_eq!(comment.notice, None);
        let mut tagged = value.clone();
        tagged["properties"] = json!([{"key": NOTICE_PROPERTY, "value": {"key": "r1:v2"}}]);
        assert_eq!(
            Comment::from_rest(&tagged)
                .and_then(|c| c.notice)
                .as_deref(),
            Some("r1:v2")
        );
        assert_eq!(comment.created.to_rfc3339(), "2026-11-28T09:20:00+00:00");
        let mut no_author = value.clone();
        no_author["author"] = json!({"displayName": "Dan"});
        assert_eq!(Comment::from_rest(&no_author), None);
        let mut bad_time = value;
        bad_time["created"] = json!("yesterday");
        assert_eq!(Comment::from_rest(&bad_time), None);
    }
}
