//! PATCH (RFC 7644 §3.5.2): `add`, `replace` and `remove`, with or without a path, on a
//! resource's JSON. The result is normalised and checked like a PUT before it is stored, so a
//! PATCH cannot make what a POST would refuse. Okta sends `{"op":"replace","value":{"active":
//! false}}`; Entra capitalises its ops, sends `"False"`, bare manager ids and member removals as
//! a `value` list; all are accepted.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::Filter;
use super::path::{AttrPath, get_ci, key_ci};
use super::resource::PATCH_SCHEMA;

const MAX_OPERATIONS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub path: AttrPath,
    /// `members[value eq "…"]`: the elements of a multi-valued attribute it applies to.
    pub filter: Option<Filter>,
    /// `emails[type eq "work"].value`: a sub-attribute of the filtered elements.
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub target: Option<Target>,
    pub value: Option<Value>,
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, ScimError> {
        let Some(open) = text.find('[') else {
            return Ok(Self {
                path: AttrPath::parse(text)?,
                filter: None,
                sub: None,
            });
        };
        let close = text
            .rfind(']')
            .filter(|close| *close > open)
            .ok_or_else(|| ScimError::invalid_path(format!("`{text}` does not close its `[`")))?;
        let path = AttrPath::parse(&text[..open])?;
        if path.sub.is_some() {
            return Err(ScimError::invalid_path(format!(
                "`{text}`: a filter applies to a multi-valued attribute, not a sub-attribute"
            )));
        }
        let filter = Filter::parse(&text[open + 1..close])
            .map_err(|e| ScimError::invalid_path(format!("`{text}`: {}", e.detail)))?;
        let sub = match &text[close + 1..] {
            "" => None,
            rest => {
                let sub = rest.strip_prefix('.').ok_or_else(|| {
                    ScimError::invalid_path(format!("`{text}`: unexpected `{rest}`"))
                })?;
                AttrPath::parse(sub)?;
                Some(sub.to_string())
            }
        };
        Ok(Self {
            path,
            filter: Some(filter),
            sub,
        })
    }
}

/// Reads a PatchOp message.
pub fn parse(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let Some(object) = body.as_object() else {
        return Err(ScimError::invalid_syntax(
            "the PATCH body is not a JSON object",
        ));
    };
    let schemas = get_ci(object, "schemas").and_then(Value::as_array);
    if !schemas.is_some_and(|s| s.iter().any(|s| s.as_str() == Some(PATCH_SCHEMA))) {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH body names the schema {PATCH_SCHEMA}"
        )));
    }
    let Some(Value::Array(operations)) = get_ci(object, "Operations") else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body has a list of `Operations`",
        ));
    };
    if operations.len() > MAX_OPERATIONS {
        return Err(ScimError::too_many(format!(
            "a PATCH carries at most {MAX_OPERATIONS} operations"
        )));
    }
    operations
        .iter()
        .map(|operation| {
            let Some(operation) = operation.as_object() else {
                return Err(ScimError::invalid_syntax(
                    "an operation is not a JSON object",
                ));
            };
            let op = match get_ci(operation, "op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => OpKind::Add,
                Some("replace") => OpKind::Replace,
                Some("remove") => OpKind::Remove,
                other => {
                    return Err(ScimError::invalid_syntax(format!(
                        "`op` is add, replace or remove, not {other:?}"
                    )));
                }
            };
            let target = match get_ci(operation, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(path)) => Some(Target::parse(path)?),
                Some(other) => {
                    return Err(ScimError::invalid_path(format!(
                        "`path` is a string, not {other}"
                    )));
                }
            };
            let value = get_ci(operation, "value").cloned();
            match (op, &target, &value) {
                (OpKind::Remove, None, _) => Err(ScimError::no_target("`remove` needs a `path`")),
                (OpKind::Add | OpKind::Replace, _, None) => Err(ScimError::invalid_value(
                    "`add` and `replace` need a `value`",
                )),
                (OpKind::Add | OpKind::Replace, None, Some(v)) if !v.is_object() => {
                    Err(ScimError::invalid_value(
                        "without a `path`, the `value` is an object of attributes",
                    ))
                }
                _ => Ok(Operation { op, target, value }),
            }
        })
        .collect()
}

/// Applies the operations in order to `resource` (all or none: the caller keeps the original
/// until the result is accepted).
pub fn apply(resource: &mut Value, operations: &[Operation]) -> Result<(), ScimError> {
    for operation in operations {
        match &operation.target {
            None => {
                // Each attribute of the value, as if it were the path.
                let Some(Value::Object(values)) = &operation.value else {
                    return Err(ScimError::invalid_value("the `value` is not an object"));
                };
                for (key, value) in values {
                    let target = Target::parse(key)?;
                    one(resource, operation.op, &target, Some(value))?;
                }
            }
            Some(target) => one(resource, operation.op, target, operation.value.as_ref())?,
        }
    }
    Ok(())
}

fn immutable(path: &AttrPath) -> bool {
    path.schema.is_none()
        && ["id", "meta", "schemas"]
            .iter()
            .any(|a| path.attr.eq_ignore_ascii_case(a))
}

fn one(
    resource: &mut Value,
    op: OpKind,
    target: &Target,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let path = &target.path;
    if immutable(path) {
        return Err(ScimError::mutability(format!(
            "`{}` cannot be changed",
            path.attr
        )));
    }
    let holder = path.holder_mut(resource).ok_or_else(|| {
        ScimError::invalid_path(format!("`{}` has no place in this resource", path.attr))
    })?;
    let key = key_ci(holder, &path.attr).unwrap_or_else(|| path.attr.clone());
    if let Some(filter) = &target.filter {
        return filtered(holder, &key, op, filter, target.sub.as_deref(), value);
    }
    match (op, &path.sub) {
        (OpKind::Remove, None) => {
            match (holder.get_mut(&key), value) {
                // Entra removes members by listing them.
                (Some(Value::Array(items)), Some(Value::Array(gone))) => {
                    items.retain(|item| !gone.iter().any(|g| same_element(item, g)));
                }
                _ => {
                    holder.remove(&key);
                }
            }
        }
        (OpKind::Remove, Some(sub)) => {
            if let Some(Value::Object(complex)) = holder.get_mut(&key)
                && let Some(sub) = key_ci(complex, sub)
            {
                complex.remove(&sub);
            }
        }
        (op, None) => {
            let value = value.cloned().unwrap_or(Value::Null);
            match (op, holder.get_mut(&key), value) {
                // `add` to a multi-valued attribute appends what is not there yet.
                (OpKind::Add, Some(Value::Array(items)), new) => {
                    let new = match new {
                        Value::Array(new) => new,
                        one => vec![one],
                    };
                    for item in new {
                        if !items.iter().any(|i| same_element(i, &item)) {
                            items.push(item);
                        }
                    }
                }
                // `add` to a complex attribute merges sub-attributes.
                (OpKind::Add, Some(Value::Object(complex)), Value::Object(new)) => {
                    merge(complex, new);
                }
                (_, _, new) => {
                    holder.insert(key, new);
                }
            }
        }
        (_, Some(sub)) => {
            let complex = holder
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(complex) = complex else {
                return Err(ScimError::invalid_path(format!(
                    "`{}` has no sub-attributes",
                    path.attr
                )));
            };
            let sub_key = key_ci(complex, sub).unwrap_or_else(|| sub.clone());
            complex.insert(sub_key, value.cloned().unwrap_or(Value::Null));
        }
    }
    Ok(())
}

fn filtered(
    holder: &mut Map<String, Value>,
    key: &str,
    op: OpKind,
    filter: &Filter,
    sub: Option<&str>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let Some(Value::Array(items)) = holder.get_mut(key) else {
        return match op {
            OpKind::Remove => Ok(()),
            _ => Err(ScimError::no_target(format!(
                "`{key}` has no element the filter matches"
            ))),
        };
    };
    let matched = items.iter().filter(|item| filter.matches(item)).count();
    match (op, sub) {
        (OpKind::Remove, None) => items.retain(|item| !filter.matches(item)),
        (OpKind::Remove, Some(sub)) => {
            for item in items.iter_mut().filter(|item| filter.matches(item)) {
                if let Some(object) = item.as_object_mut()
                    && let Some(sub) = key_ci(object, sub)
                {
                    object.remove(&sub);
                }
            }
        }
        (_, _) if matched == 0 => {
            return Err(ScimError::no_target(format!(
                "`{key}` has no element the filter matches"
            )));
        }
        (_, Some(sub)) => {
            for item in items.iter_mut().filter(|item| filter.matches(item)) {
                if let Some(object) = item.as_object_mut() {
                    let sub = key_ci(object, sub).unwrap_or_else(|| sub.to_string());
                    object.insert(sub, value.cloned().unwrap_or(Value::Null));
                }
            }
        }
        (_, None) => {
            let Some(Value::Object(new)) = value else {
                return Err(ScimError::invalid_value(format!(
                    "the value for `{key}[…]` is an object of sub-attributes"
                )));
            };
            for item in items.iter_mut().filter(|item| filter.matches(item)) {
                if let Some(object) = item.as_object_mut() {
                    merge(object, new.clone());
                }
            }
        }
    }
    Ok(())
}

fn merge(into: &mut Map<String, Value>, new: Map<String, Value>) {
    for (k, v) in new {
        let k = key_ci(into, &k).unwrap_or(k);
        into.insert(k, v);
    }
}

/// Elements are the same when their `value`s are (members, emails), else when they are equal.
fn same_element(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(resource: Value, operations: Value) -> Result<Value, ScimError> {
        let mut resource = resource;
        let ops = parse(&json!({"schemas": [PATCH_SCHEMA], "Operations": operations}))?;
        apply(&mut resource, &ops)?;
        Ok(resource)
    }

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    #[test]
    fn okta_and_entra_shapes() {
        let user = json!({"userName": "ada", "active": true, "emails": [{"value": "a@x.io", "type": "work"}]});
        let okta = patched(
            user.clone(),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .expect("okta");
        assert_eq!(okta["active"], json!(false));
        let entra = patched(
            user.clone(),
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "m-2"},
                {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Finance"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada@x.io"},
            ]),
        )
        .expect("entra");
        assert_eq!(
            entra["active"],
            json!("False"),
            "normalised when stored, not here"
        );
        assert_eq!(entra[ENTERPRISE]["manager"], json!("m-2"));
        assert_eq!(entra[ENTERPRISE]["department"], json!("Finance"));
        assert_eq!(entra["emails"][0]["value"], json!("ada@x.io"));
    }

    #[test]
    fn group_members_are_added_and_removed() {
        let group = json!({"displayName": "g", "members": [{"value": "u1"}]});
        let added = patched(
            group,
            json!([{"op": "add", "path": "members", "value": [{"value": "u2"}, {"value": "u1"}]}]),
        )
        .expect("add");
        assert_eq!(
            added["members"],
            json!([{"value": "u1"}, {"value": "u2"}]),
            "no duplicate"
        );
        let by_filter = patched(
            added.clone(),
            json!([{"op": "remove", "path": "members[value eq \"u1\"]"}]),
        )
        .expect("remove");
        assert_eq!(by_filter["members"], json!([{"value": "u2"}]));
        let by_list = patched(
            added,
            json!([{"op": "Remove", "path": "members", "value": [{"value": "u2"}]}]),
        )
        .expect("entra remove");
        assert_eq!(by_list["members"], json!([{"value": "u1"}]));
    }

    #[test]
    fn bad_operations_are_refused() {
        let user = json!({"userName": "ada", "emails": [{"value": "a@x.io", "type": "work"}]});
        let kind = |ops: Value| patched(user.clone(), ops).expect_err("refused").scim_type;
        assert_eq!(kind(json!([{"op": "remove"}])), Some("noTarget"));
        assert_eq!(
            kind(json!([{"op": "move", "path": "x"}])),
            Some("invalidSyntax")
        );
        assert_eq!(
            kind(json!([{"op": "add", "path": "userName"}])),
            Some("invalidValue")
        );
        assert_eq!(
            kind(json!([{"op": "replace", "path": "id", "value": "x"}])),
            Some("mutability")
        );
        assert_eq!(
            kind(
                json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "x"}])
            ),
            Some("noTarget")
        );
        assert_eq!(
            kind(json!([{"op": "replace", "path": "emails[type eq", "value": "x"}])),
            Some("invalidPath")
        );
        assert_eq!(
            kind(json!([{"op": "add", "value": "x"}])),
            Some("invalidValue")
        );
        let no_schema = parse(&json!({"Operations": []})).expect_err("schema");
        assert_eq!(no_schema.scim_type, Some("invalidSyntax"));
    }
}
