//! Attribute paths (RFC 7644 §3.10): `userName`, `name.givenName`, and the schema-qualified
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`. Attribute names
//! are case-insensitive; a qualified name says which schema's object holds the attribute.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::resource::{ENTERPRISE_SCHEMA, is_core_schema};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The extension schema whose object holds the attribute (`None`: the resource itself).
    pub schema: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn parse(text: &str) -> Result<Self, ScimError> {
        let bad = || ScimError::invalid_path(format!("`{text}` is not an attribute path"));
        // An extension's URN alone names its whole object, a top-level attribute.
        if text.eq_ignore_ascii_case(ENTERPRISE_SCHEMA) {
            return Ok(Self {
                schema: None,
                attr: ENTERPRISE_SCHEMA.to_string(),
                sub: None,
            });
        }
        let urn = text
            .get(..4)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("urn:"));
        let (schema, rest) = if urn && text.len() > 4 {
            let (schema, rest) = text.rsplit_once(':').ok_or_else(bad)?;
            let schema = (!is_core_schema(schema)).then(|| schema.to_string());
            (schema, rest)
        } else {
            (None, text)
        };
        let (attr, sub) = match rest.split_once('.') {
            Some((attr, sub)) => (attr, Some(sub)),
            None => (rest, None),
        };
        let name_ok = |n: &str| {
            n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
        };
        if !name_ok(attr) || sub.is_some_and(|s| !name_ok(s)) {
            return Err(bad());
        }
        Ok(Self {
            schema,
            attr: attr.to_string(),
            sub: sub.map(str::to_string),
        })
    }

    /// The object that holds the attribute: the resource, or its extension's object.
    pub fn holder<'a>(&self, resource: &'a Value) -> Option<&'a Map<String, Value>> {
        let root = resource.as_object()?;
        match &self.schema {
            None => Some(root),
            Some(schema) => get_ci(root, schema)?.as_object(),
        }
    }

    /// [`Self::holder`], created when missing (an extension's object is added on first write).
    pub fn holder_mut<'a>(&self, resource: &'a mut Value) -> Option<&'a mut Map<String, Value>> {
        let root = resource.as_object_mut()?;
        match &self.schema {
            None => Some(root),
            Some(schema) => {
                let key = key_ci(root, schema).unwrap_or_else(|| schema.clone());
                root.entry(key)
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
            }
        }
    }

    /// The attribute's value in `resource`.
    pub fn attribute<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        get_ci(self.holder(resource)?, &self.attr)
    }

    /// The values this path names: each element of a multi-valued attribute (its
    /// sub-attribute, or for complex elements without one, their `value`).
    pub fn values<'a>(&self, resource: &'a Value) -> Vec<&'a Value> {
        let Some(found) = self.attribute(resource) else {
            return Vec::new();
        };
        let items: Vec<&Value> = match found {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        items
            .into_iter()
            .filter_map(|item| match (&self.sub, item) {
                (Some(sub), Value::Object(o)) => get_ci(o, sub),
                (Some(_), _) => None,
                (None, Value::Object(o)) if found.is_array() => get_ci(o, "value"),
                (None, other) => Some(other),
            })
            .filter(|v| !v.is_null())
            .collect()
    }

    /// Whether string comparisons on this attribute are case-exact (RFC 7643's `caseExact`):
    /// identifiers are, names and addresses are not.
    pub fn case_exact(&self) -> bool {
        let attr = self.attr.to_ascii_lowercase();
        match self.sub.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => matches!(attr.as_str(), "id" | "externalid"),
            Some("value") => matches!(attr.as_str(), "members" | "manager" | "groups"),
            Some(_) => attr == "meta",
        }
    }
}

/// A key of `object`, matched without regard to case.
pub fn key_ci(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
}

pub fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn qualified_and_plain_paths() {
        let p = AttrPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .expect("path");
        assert_eq!(
            p.schema.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("manager", Some("value"))
        );
        let core =
            AttrPath::parse("urn:ietf:params:scim:schemas:core:2.0:User:userName").expect("core");
        assert_eq!(core.schema, None);
        assert_eq!(core.attr, "userName");
        let whole = AttrPath::parse(ENTERPRISE_SCHEMA).expect("the extension");
        assert_eq!(
            (whole.schema, whole.attr.as_str()),
            (None, ENTERPRISE_SCHEMA)
        );
        // The last found by fuzzing: a multi-byte character across the `urn:` prefix's end.
        for bad in [
            "",
            ".x",
            "a..b",
            "a b",
            "urn:",
            "9lives",
            "a.b.c",
            "C?u\u{82}",
        ] {
            assert!(AttrPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_flatten_multi_valued_attributes() {
        let user = json!({
            "UserName": "ada",
            "emails": [{"value": "a@x.io", "type": "work"}, {"value": "b@x.io"}],
        });
        let p = |t| AttrPath::parse(t).expect("path");
        assert_eq!(p("username").values(&user), [&json!("ada")]);
        assert_eq!(p("emails").values(&user).len(), 2);
        assert_eq!(p("emails.type").values(&user), [&json!("work")]);
        assert!(p("title").values(&user).is_empty());
    }
}
