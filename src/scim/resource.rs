//! Users and groups as stored and returned: what a client sends is checked and normalised
//! (server-assigned attributes dropped, a password never kept, Entra's string booleans and bare
//! manager ids made regular); what is returned gets `id` and `meta`, and `attributes` /
//! `excludedAttributes` applied.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::path::{get_ci, key_ci};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

pub fn is_core_schema(uri: &str) -> bool {
    uri.eq_ignore_ascii_case(USER_SCHEMA) || uri.eq_ignore_ascii_case(GROUP_SCHEMA)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
        }
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            Self::User => "Users",
            Self::Group => "Groups",
        }
    }

    pub fn schema(self) -> &'static str {
        match self {
            Self::User => USER_SCHEMA,
            Self::Group => GROUP_SCHEMA,
        }
    }

    /// The attribute a client names a resource by: `userName`, `displayName`.
    pub fn name_attr(self) -> &'static str {
        match self {
            Self::User => "userName",
            Self::Group => "displayName",
        }
    }
}

/// Attributes the service provider assigns; a client's values for them are ignored.
const ASSIGNED: [&str; 3] = ["id", "meta", "groups"];

/// A resource as a client sent it (POST, PUT, or the result of a PATCH), made ready to store.
pub fn normalize(kind: Kind, body: Value) -> Result<Value, ScimError> {
    let Value::Object(mut object) = body else {
        return Err(ScimError::invalid_syntax(
            "the resource is not a JSON object",
        ));
    };
    for assigned in ASSIGNED {
        if let Some(key) = key_ci(&object, assigned) {
            object.remove(&key);
        }
    }
    // Never kept: Tollgate does not authenticate anyone with it.
    if let Some(key) = key_ci(&object, "password") {
        object.remove(&key);
    }
    let name = get_ci(&object, kind.name_attr());
    match name {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "`{}` must be a non-empty string",
                kind.name_attr()
            )));
        }
        None => {
            return Err(ScimError::invalid_value(format!(
                "`{}` is required",
                kind.name_attr()
            )));
        }
    }
    for single in ["externalId", "displayName", "title", "userType"] {
        if let Some(v) = get_ci(&object, single)
            && !(v.is_string() || v.is_null())
        {
            return Err(ScimError::invalid_value(format!(
                "`{single}` must be a string"
            )));
        }
    }
    if let Some(key) = key_ci(&object, "active") {
        let active = match &object[&key] {
            Value::Bool(b) => Value::Bool(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            Value::Null => Value::Null,
            other => {
                return Err(ScimError::invalid_value(format!(
                    "`active` must be a boolean, not {other}"
                )));
            }
        };
        object.insert(key, active);
    }
    for multi in [
        "emails",
        "phoneNumbers",
        "addresses",
        "members",
        "roles",
        "entitlements",
    ] {
        if let Some(key) = key_ci(&object, multi) {
            match &object[&key] {
                Value::Null => {
                    object.remove(&key);
                }
                Value::Array(items) if items.iter().all(Value::is_object) => {}
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "`{multi}` must be a list of objects"
                    )));
                }
            }
        }
    }
    if kind == Kind::Group
        && let Some(Value::Array(members)) = get_ci(&object, "members")
        && members
            .iter()
            .any(|m| !m.get("value").is_some_and(Value::is_string))
    {
        return Err(ScimError::invalid_value(
            "every member needs a `value`: the id of a user or group",
        ));
    }
    if let Some(key) = key_ci(&object, ENTERPRISE_SCHEMA) {
        let Some(extension) = object.get_mut(&key).and_then(Value::as_object_mut) else {
            return Err(ScimError::invalid_value(format!(
                "`{ENTERPRISE_SCHEMA}` must be an object"
            )));
        };
        // Entra sends the manager as a bare id.
        if let Some(key) = key_ci(extension, "manager") {
            match extension[&key].clone() {
                Value::String(id) if id.is_empty() => {
                    extension.remove(&key);
                }
                Value::String(id) => {
                    extension.insert(key, json!({ "value": id }));
                }
                Value::Object(_) => {}
                Value::Null => {
                    extension.remove(&key);
                }
                other => {
                    return Err(ScimError::invalid_value(format!(
                        "`manager` must be an object with a `value`, not {other}"
                    )));
                }
            }
        }
    }
    // `schemas` names the core schema and every extension present.
    let mut schemas = vec![kind.schema().to_string()];
    if key_ci(&object, ENTERPRISE_SCHEMA).is_some() && kind == Kind::User {
        schemas.push(ENTERPRISE_SCHEMA.to_string());
    }
    if let Some(key) = key_ci(&object, "schemas") {
        object.remove(&key);
    }
    object.insert("schemas".into(), json!(schemas));
    Ok(Value::Object(object))
}

/// What the client sees of a stored resource.
pub struct Meta<'a> {
    pub kind: Kind,
    pub id: &'a str,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub version: i64,
    /// The service's base URL, for `meta.location` (`https://tollgate.example/scim/v2`).
    pub base: &'a str,
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

pub fn location(base: &str, kind: Kind, id: &str) -> String {
    format!("{base}/{}/{id}", kind.endpoint())
}

pub fn with_meta(mut resource: Value, meta: &Meta<'_>) -> Value {
    if let Some(object) = resource.as_object_mut() {
        object.insert("id".into(), json!(meta.id));
        object.insert(
            "meta".into(),
            json!({
                "resourceType": meta.kind.name(),
                "created": meta.created.to_rfc3339_opts(SecondsFormat::Millis, true),
                "lastModified": meta.modified.to_rfc3339_opts(SecondsFormat::Millis, true),
                "version": etag(meta.version),
                "location": location(meta.base, meta.kind, meta.id),
            }),
        );
    }
    resource
}

/// `attributes` / `excludedAttributes`: comma-separated paths. `id` and `schemas` always stay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

impl Projection {
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Self {
        let split = |v: Option<&str>| -> Vec<String> {
            v.map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
        };
        Self {
            attributes: split(attributes),
            excluded: split(excluded),
        }
    }

    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(object) = resource else {
            return resource;
        };
        let mut out = Map::new();
        for (key, value) in object {
            if matches!(key.as_str(), "id" | "schemas") {
                out.insert(key, value);
                continue;
            }
            let Some(kept) = self.keep(&key, value) else {
                continue;
            };
            out.insert(key, kept);
        }
        Value::Object(out)
    }

    /// The attribute `key` as projected (for complex ones, its kept sub-attributes).
    fn keep(&self, key: &str, value: Value) -> Option<Value> {
        // A path names `key` itself, or one of its sub-attributes (`name.givenName`,
        // `urn:…:User:department`).
        let names = |paths: &[String]| -> (bool, Vec<String>) {
            let mut whole = false;
            let mut subs = Vec::new();
            for path in paths {
                let lower = path.to_ascii_lowercase();
                let key = key.to_ascii_lowercase();
                if lower == key {
                    whole = true;
                } else if let Some(sub) = lower
                    .strip_prefix(&key)
                    .and_then(|rest| rest.strip_prefix('.').or_else(|| rest.strip_prefix(':')))
                {
                    subs.push(sub.to_string());
                } else if key.starts_with("urn:") && !lower.starts_with("urn:") {
                    // An unqualified path may name an extension's attribute.
                    subs.push(lower);
                } else if let Some(attr) = lower
                    .strip_prefix(&format!("{}:", USER_SCHEMA.to_ascii_lowercase()))
                    .or_else(|| {
                        lower.strip_prefix(&format!("{}:", GROUP_SCHEMA.to_ascii_lowercase()))
                    })
                    && attr.split('.').next() == Some(key.as_str())
                {
                    match attr.split_once('.') {
                        Some((_, sub)) => subs.push(sub.to_string()),
                        None => whole = true,
                    }
                }
            }
            (whole, subs)
        };
        if !self.excluded.is_empty() {
            let (whole, subs) = names(&self.excluded);
            if whole {
                return None;
            }
            return Some(filter_subs(value, |sub| !subs.iter().any(|s| s == sub)));
        }
        if self.attributes.is_empty() {
            return Some(value);
        }
        let (whole, subs) = names(&self.attributes);
        if whole {
            return Some(value);
        }
        if subs.is_empty() {
            return None;
        }
        Some(filter_subs(value, |sub| subs.iter().any(|s| s == sub)))
    }
}

fn filter_subs(value: Value, keep: impl Fn(&str) -> bool) -> Value {
    let pick = |o: Map<String, Value>| -> Value {
        Value::Object(
            o.into_iter()
                .filter(|(k, _)| keep(&k.to_ascii_lowercase()))
                .collect(),
        )
    };
    match value {
        Value::Object(o) => pick(o),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::Object(o) => pick(o),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pushed_user_is_normalised() {
        let user = normalize(
            Kind::User,
            json!({
                "schemas": ["urn:whatever"],
                "id": "client-chosen",
                "userName": "ada@acme.example",
                "password": "hunter2",
                "active": "False",
                ENTERPRISE_SCHEMA: {"manager": "m-1", "department": "R&D"},
            }),
        )
        .expect("valid");
        assert_eq!(user.get("id"), None);
        assert_eq!(user.get("password"), None);
        assert_eq!(user["active"], json!(false));
        assert_eq!(user[ENTERPRISE_SCHEMA]["manager"], json!({"value": "m-1"}));
        assert_eq!(user["schemas"], json!([USER_SCHEMA, ENTERPRISE_SCHEMA]));
    }

    #[test]
    fn what_is_not_a_resource_is_refused() {
        let refused = |kind, body: Value| normalize(kind, body).expect_err("refused");
        assert_eq!(
            refused(Kind::User, json!([])).scim_type,
            Some("invalidSyntax")
        );
        assert_eq!(
            refused(Kind::User, json!({})).scim_type,
            Some("invalidValue")
        );
        assert_eq!(
            refused(Kind::User, json!({"userName": " "})).scim_type,
            Some("invalidValue")
        );
        assert_eq!(
            refused(Kind::User, json!({"userName": "a", "active": 3})).scim_type,
            Some("invalidValue")
        );
        assert_eq!(
            refused(Kind::User, json!({"userName": "a", "emails": "a@b"})).scim_type,
            Some("invalidValue")
        );
        assert_eq!(
            refused(
                Kind::Group,
                json!({"displayName": "g", "members": [{"display": "x"}]})
            )
            .scim_type,
            Some("invalidValue")
        );
    }

    #[test]
    fn projections_keep_what_is_asked() {
        let user = json!({
            "id": "1", "schemas": [USER_SCHEMA], "userName": "ada",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "a@x.io", "type": "work"}],
        });
        let only = Projection::parse(Some("userName,name.givenName"), None).apply(user.clone());
        assert_eq!(
            only,
            json!({"id": "1", "schemas": [USER_SCHEMA], "userName": "ada", "name": {"givenName": "Ada"}})
        );
        let without = Projection::parse(None, Some("emails,name.familyName")).apply(user);
        assert_eq!(
            without,
            json!({"id": "1", "schemas": [USER_SCHEMA], "userName": "ada", "name": {"givenName": "Ada"}})
        );
    }
}
