//! Checks calls against the vendors' published OpenAPI specs (`../shared/specs`, or
//! `TOLLGATE_SPECS_DIR`): the path template and method must exist; query parameters must be
//! declared, required ones present, typed ones well-typed; a JSON body must match the
//! operation's schema. For Connect-signed calls the operation's `x-atlassian-connect-scope`
//! must be one the descriptor holds, and never `INACCESSIBLE`. Calls made with an API key or
//! token are checked on path and method only, and the Admin API, which has no published spec
//! here, against [`ADMIN_API_OPERATIONS`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use super::atlassian::Scope;

/// The Admin API operations Tollgate uses (API-NOTES §2.5; no authoritative OpenAPI exists).
pub const ADMIN_API_OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/admin/v1/orgs/{orgId}/users"),
    (
        "GET",
        "/admin/v1/orgs/{orgId}/directory/groups/{groupId}/memberships",
    ),
    (
        "POST",
        "/admin/v1/orgs/{orgId}/directory/groups/{groupId}/memberships",
    ),
    (
        "DELETE",
        "/admin/v1/orgs/{orgId}/directory/groups/{groupId}/memberships/{accountId}",
    ),
    (
        "POST",
        "/admin/v1/orgs/{orgId}/users/{accountId}/roles/assign",
    ),
    (
        "POST",
        "/admin/v1/orgs/{orgId}/users/{accountId}/roles/revoke",
    ),
];

pub enum CallerKind {
    /// A Connect JWT; the scopes its descriptor declared.
    Connect(Vec<Scope>),
    /// An API key, token or basic credential.
    Key,
    /// A caller of a vendor with no scope model in its spec (Okta, Google): parameters and
    /// body are checked.
    Vendor,
}

pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: Option<&'a Value>,
    pub caller: CallerKind,
}

struct Operation {
    method: String,
    template: String,
    segments: Vec<Option<String>>,
    /// Index into `Contract::docs`, for `$ref`s.
    doc: usize,
    /// `None` for operations from a list (no parameters or schema known).
    spec: Option<Value>,
    path_item_params: Vec<Value>,
}

pub struct Contract {
    docs: Vec<Value>,
    /// Path prefixes some spec or list covers.
    coverage: Vec<&'static str>,
    ops: Vec<Operation>,
}

const SPEC_FILES: &[(&str, &str, &str)] = &[
    ("atlassian-jira-platform-v3.json", "/rest/api/3/", ""),
    (
        "atlassian-jsm-servicedeskapi.json",
        "/rest/servicedeskapi/",
        "",
    ),
    (
        "atlassian-confluence-v2.json",
        "/wiki/api/v2/",
        "/wiki/api/v2",
    ),
    ("atlassian-confluence-v1.json", "/wiki/rest/api/", ""),
];
const SCIM_FILE: &str = "atlassian-user-provisioning-scim.yaml";

/// The spec file whose name starts with `prefix` (Okta's carries its version).
fn spec_named(dir: &Path, prefix: &str) -> Result<PathBuf, String> {
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .ok_or_else(|| format!("no {prefix}* spec in {}", dir.display()))
}

fn split(path: &str) -> Vec<Option<String>> {
    path.trim_matches('/')
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                None
            } else {
                Some(s.to_string())
            }
        })
        .collect()
}

/// Where the specs are: `TOLLGATE_SPECS_DIR`, else `../shared/specs` beside the crate.
pub fn specs_dir() -> PathBuf {
    std::env::var_os("TOLLGATE_SPECS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/specs"))
}

impl Contract {
    /// Loaded once per process; `None` when the specs are not there.
    pub fn shared() -> Option<&'static Contract> {
        static CONTRACT: OnceLock<Option<Contract>> = OnceLock::new();
        CONTRACT
            .get_or_init(|| match Contract::load(&specs_dir()) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("contract checks off: {e}");
                    None
                }
            })
            .as_ref()
    }

    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut contract = Contract {
            docs: Vec::new(),
            coverage: Vec::new(),
            ops: Vec::new(),
        };
        for (file, prefix, mount) in SPEC_FILES {
            let path = dir.join(file);
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let doc: Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            contract.add_openapi(doc, prefix, mount);
        }
        let scim = dir.join(SCIM_FILE);
        let text =
            std::fs::read_to_string(&scim).map_err(|e| format!("{}: {e}", scim.display()))?;
        let listed = scim_operations(&text).into_iter().chain(
            ADMIN_API_OPERATIONS
                .iter()
                .map(|(m, p)| (m.to_string(), p.to_string())),
        );
        for (method, template) in listed {
            contract.ops.push(Operation {
                method,
                segments: split(&template),
                template,
                doc: usize::MAX,
                spec: None,
                path_item_params: Vec::new(),
            });
        }
        contract.coverage.extend(["/scim/directory/", "/admin/"]);
        Ok(contract)
    }

    fn empty() -> Self {
        Contract {
            docs: Vec::new(),
            coverage: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// Every operation of an OpenAPI 3 document, its paths mounted under `mount`.
    fn add_openapi(&mut self, doc: Value, prefix: &'static str, mount: &str) {
        let index = self.docs.len();
        for (template, item) in doc["paths"].as_object().into_iter().flatten() {
            let path_item_params = item["parameters"].as_array().cloned().unwrap_or_default();
            for (method, op) in item.as_object().into_iter().flatten() {
                if op.get("responses").is_none() {
                    continue;
                }
                let full = format!("{mount}{template}");
                self.ops.push(Operation {
                    method: method.to_uppercase(),
                    segments: split(&full),
                    template: full,
                    doc: index,
                    spec: Some(op.clone()),
                    path_item_params: path_item_params.clone(),
                });
            }
        }
        self.docs.push(doc);
        self.coverage.push(prefix);
    }

    /// Okta's Management API (`okta-management-minimal-*.yaml`), loaded once per process.
    pub fn okta() -> Option<&'static Contract> {
        static CONTRACT: OnceLock<Option<Contract>> = OnceLock::new();
        CONTRACT
            .get_or_init(|| {
                let load = || -> Result<Contract, String> {
                    let path = spec_named(&specs_dir(), "okta-management")?;
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let doc: Value = serde_saphyr::from_str(&text)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let mut contract = Contract::empty();
                    contract.add_openapi(doc, "/api/v1/", "");
                    Ok(contract)
                };
                load()
                    .map_err(|e| eprintln!("Okta contract checks off: {e}"))
                    .ok()
            })
            .as_ref()
    }

    /// Google's Admin SDK Directory API, from its discovery document.
    pub fn google() -> Option<&'static Contract> {
        static CONTRACT: OnceLock<Option<Contract>> = OnceLock::new();
        CONTRACT
            .get_or_init(|| {
                let load = || -> Result<Contract, String> {
                    let path = specs_dir().join("google-admin-directory_v1.json");
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let doc: Value = serde_json::from_str(&text)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    Ok(Contract::from_discovery(doc))
                };
                load()
                    .map_err(|e| eprintln!("Google contract checks off: {e}"))
                    .ok()
            })
            .as_ref()
    }

    /// A Google discovery document read as OpenAPI: each method's parameters (and the
    /// document's global ones, such as `fields`) and its request schema; schema references
    /// (bare names there) become JSON pointers.
    fn from_discovery(mut doc: Value) -> Self {
        fn pointers(value: &mut Value) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(name)) = map.get_mut("$ref")
                        && !name.starts_with('#')
                    {
                        *name = format!("#/schemas/{name}");
                    }
                    map.values_mut().for_each(pointers);
                }
                Value::Array(items) => items.iter_mut().for_each(pointers),
                _ => {}
            }
        }
        fn parameters(map: &Value) -> Vec<Value> {
            map.as_object()
                .into_iter()
                .flatten()
                .map(|(name, p)| {
                    serde_json::json!({"name": name, "in": p["location"],
                        "required": p["required"] == true, "schema": {"type": p["type"]}})
                })
                .collect()
        }
        fn methods(resource: &Value, found: &mut Vec<Value>) {
            for method in resource["methods"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, m)| m)
            {
                found.push(method.clone());
            }
            for nested in resource["resources"].as_object().into_iter().flatten() {
                methods(nested.1, found);
            }
        }
        pointers(&mut doc);
        let global = parameters(&doc["parameters"]);
        let mut found = Vec::new();
        for resource in doc["resources"].as_object().into_iter().flatten() {
            methods(resource.1, &mut found);
        }
        let mut contract = Contract::empty();
        for method in found {
            let template = format!("/{}", method["path"].as_str().unwrap_or_default());
            let mut spec = serde_json::json!({"parameters": parameters(&method["parameters"])});
            if let Some(schema) = method.get("request") {
                spec["requestBody"] =
                    serde_json::json!({"content": {"application/json": {"schema": schema}}});
            }
            contract.ops.push(Operation {
                method: method["httpMethod"].as_str().unwrap_or("GET").to_string(),
                segments: split(&template),
                template,
                doc: 0,
                spec: Some(spec),
                path_item_params: global.clone(),
            });
        }
        contract.docs.push(doc);
        contract.coverage.push("/admin/directory/v1/");
        contract
    }

    /// The operation `method path` is, preferring literal segments over parameters.
    fn find(&self, method: &str, path: &str) -> Result<&Operation, String> {
        let wanted = split(path);
        let matching: Vec<&Operation> = self
            .ops
            .iter()
            .filter(|op| {
                op.segments.len() == wanted.len()
                    && op.segments.iter().zip(&wanted).all(|(t, s)| match (t, s) {
                        (None, Some(s)) => !s.is_empty(),
                        // A template asked about (the fake's own routes).
                        (None, None) => true,
                        (Some(t), Some(s)) => t == s || t == &percent_decode(s),
                        _ => false,
                    })
            })
            .collect();
        if matching.is_empty() {
            return Err("no such path in the published API".into());
        }
        matching
            .into_iter()
            .filter(|op| op.method == method)
            .max_by_key(|op| op.segments.iter().filter(|s| s.is_some()).count())
            .ok_or_else(|| format!("the published API has this path but not the method {method}"))
    }

    pub fn check(&self, call: &Call<'_>) -> Result<(), String> {
        if !self.coverage.iter().any(|p| call.path.starts_with(p)) {
            return Err("no published API covers this path".into());
        }
        let op = self.find(call.method, call.path)?;
        let Some(spec) = &op.spec else {
            // Listed operations: path and method only.
            return Ok(());
        };
        match &call.caller {
            // Atlassian calls made with a key: path and method only.
            CallerKind::Key => return Ok(()),
            CallerKind::Vendor => {}
            CallerKind::Connect(scopes) => {
                let scope = spec["x-atlassian-connect-scope"].as_str().unwrap_or("");
                if scope == "INACCESSIBLE" {
                    return Err(format!("{} is INACCESSIBLE to Connect apps", op.template));
                }
                let needed = Scope::parse(scope).ok_or_else(|| {
                    format!("{} has no usable Connect scope (`{scope}`)", op.template)
                })?;
                if !scopes.iter().any(|s| s.grants(needed)) {
                    return Err(format!(
                        "{} needs the {scope} scope, which the descriptor does not declare",
                        op.template
                    ));
                }
            }
        }
        let doc = &self.docs[op.doc];
        let params: Vec<Value> = spec["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(&op.path_item_params)
            .map(|p| resolve(doc, p).clone())
            .collect();
        check_path_params(&op.segments, &op.template, call.path, &params)?;
        check_query(call.query.unwrap_or(""), &params)?;
        check_body(doc, spec, call.body)
    }
}

/// `(METHOD, template)` pairs of the SCIM YAML, read from its layout (two-space paths,
/// four-space methods) so no YAML parser is needed for path-and-method checks.
fn scim_operations(text: &str) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
            current = Some(format!("/{path}"));
        } else if !line.starts_with(' ') {
            current = None;
        } else if let (Some(path), Some(method)) = (
            &current,
            line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')),
        ) && ["get", "post", "put", "patch", "delete"].contains(&method)
        {
            ops.push((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let mut current = value;
    for _ in 0..16 {
        match current.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix('#').and_then(|p| doc.pointer(p)) {
                Some(target) => current = target,
                None => return current,
            },
            None => return current,
        }
    }
    current
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn type_ok(schema: &Value, text: &str) -> bool {
    match schema["type"].as_str() {
        Some("integer") => text.parse::<i64>().is_ok(),
        Some("number") => text.parse::<f64>().is_ok(),
        Some("boolean") => text == "true" || text == "false",
        _ => true,
    }
}

fn check_path_params(
    segments: &[Option<String>],
    template: &str,
    path: &str,
    params: &[Value],
) -> Result<(), String> {
    let names: Vec<&str> = template
        .trim_matches('/')
        .split('/')
        .zip(segments)
        .filter(|(_, s)| s.is_none())
        .map(|(n, _)| n.trim_matches(['{', '}']))
        .collect();
    let values: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .zip(segments)
        .filter(|(_, s)| s.is_none())
        .map(|(v, _)| v)
        .collect();
    for (name, value) in names.iter().zip(values) {
        if let Some(p) = params
            .iter()
            .find(|p| p["in"] == "path" && p["name"] == *name)
            && !type_ok(&p["schema"], &percent_decode(value))
        {
            return Err(format!(
                "path parameter {name} = `{value}` is not a {}",
                p["schema"]["type"]
            ));
        }
    }
    Ok(())
}

fn check_query(query: &str, params: &[Value]) -> Result<(), String> {
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    for (name, value) in &pairs {
        let declared = params
            .iter()
            .find(|p| p["in"] == "query" && p["name"] == name.as_str())
            .ok_or_else(|| format!("query parameter `{name}` is not declared"))?;
        if !type_ok(&declared["schema"], value) {
            return Err(format!(
                "query parameter {name} = `{value}` is not a {}",
                declared["schema"]["type"]
            ));
        }
    }
    for p in params
        .iter()
        .filter(|p| p["in"] == "query" && p["required"] == true)
    {
        let name = p["name"].as_str().unwrap_or_default();
        if !pairs.iter().any(|(k, _)| k == name) {
            return Err(format!("required query parameter `{name}` is missing"));
        }
    }
    Ok(())
}

fn check_body(doc: &Value, spec: &Value, body: Option<&Value>) -> Result<(), String> {
    let request_body = resolve(doc, &spec["requestBody"]);
    let schema = request_body.pointer("/content/application~1json/schema");
    match (body, schema) {
        (None, _) => {
            if request_body["required"] == true {
                Err("the operation requires a body".into())
            } else {
                Ok(())
            }
        }
        (Some(_), None) if request_body.is_null() => {
            Err("sends a body the operation does not take".into())
        }
        (Some(_), None) => Ok(()),
        (Some(body), Some(schema)) => {
            let mut errors = Vec::new();
            validate(doc, schema, body, "body", 0, &mut errors);
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("; "))
            }
        }
    }
}

/// The subset of OpenAPI 3.0 schemas the Atlassian specs use.
fn validate(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    depth: usize,
    errors: &mut Vec<String>,
) {
    if depth > 40 {
        return;
    }
    let schema = resolve(doc, schema);
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        validate(doc, part, value, at, depth + 1, errors);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let fits = options.iter().any(|option| {
                let mut e = Vec::new();
                validate(doc, option, value, at, depth + 1, &mut e);
                e.is_empty()
            });
            if !fits {
                errors.push(format!("{at} matches none of its {key} schemas"));
            }
        }
    }
    let kind = schema["type"]
        .as_str()
        .or_else(|| schema.get("properties").map(|_| "object"));
    let type_fits = match kind {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_fits {
        errors.push(format!("{at} should be {}", kind.unwrap_or("?")));
        return;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        errors.push(format!(
            "{at} = {value} is not one of {}",
            Value::Array(options.clone())
        ));
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                errors.push(format!("{at}.{name} is required"));
            }
        }
        let properties = schema["properties"].as_object();
        for (key, item) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(property) => validate(
                    doc,
                    property,
                    item,
                    &format!("{at}.{key}"),
                    depth + 1,
                    errors,
                ),
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => {
                        errors.push(format!("{at}.{key} is not a known property"))
                    }
                    extra @ Value::Object(_) => {
                        validate(doc, extra, item, &format!("{at}.{key}"), depth + 1, errors)
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(schema_items)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(
                doc,
                schema_items,
                item,
                &format!("{at}[{i}]"),
                depth + 1,
                errors,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn contract() -> Option<&'static Contract> {
        let c = Contract::shared();
        if c.is_none() {
            eprintln!("SKIPPED: specs not found at {}", specs_dir().display());
        }
        c
    }

    fn connect<'a>(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        body: Option<&'a Value>,
    ) -> Call<'a> {
        Call {
            method,
            path,
            query,
            body,
            caller: CallerKind::Connect(vec![
                Scope::Read,
                Scope::Write,
                Scope::Delete,
                Scope::ProjectAdmin,
                Scope::Admin,
            ]),
        }
    }

    #[test]
    fn documented_calls_pass_and_others_do_not() {
        let Some(c) = contract() else { return };
        assert_eq!(
            c.check(&connect("GET", "/rest/api/3/issue/IT-1", None, None)),
            Ok(())
        );
        assert!(
            c.check(&connect("GET", "/rest/api/3/isue/IT-1", None, None))
                .is_err()
        );
        assert!(
            c.check(&connect("PATCH", "/rest/api/3/issue/IT-1", None, None))
                .is_err()
        );
        let unknown_param = c.check(&connect(
            "GET",
            "/rest/api/3/user/search",
            Some("query=a&colour=blue"),
            None,
        ));
        assert!(unknown_param.is_err_and(|e| e.contains("colour")));
        // Connect may not add people to groups, with any scope.
        let body = json!({"accountId": "x"});
        let inaccessible = c.check(&connect(
            "POST",
            "/rest/api/3/group/user",
            Some("groupId=g"),
            Some(&body),
        ));
        assert!(inaccessible.is_err_and(|e| e.contains("INACCESSIBLE")));
        // …but a site-admin token may.
        let as_admin = Call {
            caller: CallerKind::Key,
            ..connect(
                "POST",
                "/rest/api/3/group/user",
                Some("groupId=g"),
                Some(&body),
            )
        };
        assert_eq!(c.check(&as_admin), Ok(()));
    }

    #[test]
    fn scopes_types_and_bodies_are_checked() {
        let Some(c) = contract() else { return };
        let read_only = Call {
            caller: CallerKind::Connect(vec![Scope::Read]),
            ..connect("POST", "/rest/api/3/issue/IT-1/transitions", None, None)
        };
        assert!(c.check(&read_only).is_err_and(|e| e.contains("WRITE")));
        let bad_body = json!({"principal": "USER"});
        let call = Call {
            caller: CallerKind::Connect(vec![Scope::SpaceAdmin]),
            ..connect(
                "POST",
                "/wiki/api/v2/spaces/98305/role-assignments",
                None,
                Some(&bad_body),
            )
        };
        assert!(c.check(&call).is_err_and(|e| e.contains("body.principal")));
        let not_a_number = Call {
            caller: CallerKind::Connect(vec![Scope::Read]),
            ..connect(
                "GET",
                "/wiki/api/v2/spaces/abc/role-assignments",
                None,
                None,
            )
        };
        assert!(c.check(&not_a_number).is_err_and(|e| e.contains("id")));
        assert!(
            c.check(&Call {
                caller: CallerKind::Key,
                ..connect("GET", "/admin/v1/orgs/o/users", None, None)
            })
            .is_ok()
        );
        assert!(
            c.check(&Call {
                caller: CallerKind::Key,
                ..connect("GET", "/admin/v1/orgs/o/groups", None, None)
            })
            .is_err()
        );
        assert!(
            c.check(&Call {
                caller: CallerKind::Key,
                ..connect("GET", "/scim/directory/d/Users", Some("filter=x"), None)
            })
            .is_ok()
        );
    }

    /// The fake demands the scope the spec documents for each operation it serves, and serves
    /// only documented operations.
    #[test]
    fn the_fakes_access_rules_match_the_specs() {
        use crate::fakes::atlassian::{Access, operations};
        let Some(c) = contract() else { return };
        for (method, path, access) in operations() {
            let op = c
                .find(method.as_str(), &path.replace("{verb}", "assign"))
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let scope = op
                .spec
                .as_ref()
                .and_then(|s| s["x-atlassian-connect-scope"].as_str());
            match access {
                Access::Connect(needed) => {
                    assert_eq!(
                        scope.and_then(Scope::parse),
                        Some(needed),
                        "{method} {path}"
                    )
                }
                Access::SiteAdminOnly => assert_eq!(scope, Some("INACCESSIBLE"), "{method} {path}"),
                Access::AdminApiKey | Access::ScimKey => {
                    assert!(op.spec.is_none(), "{method} {path}")
                }
            }
        }
    }

    fn vendor<'a>(method: &'a str, path: &'a str, query: Option<&'a str>) -> Call<'a> {
        Call {
            method,
            path,
            query,
            body: None,
            caller: CallerKind::Vendor,
        }
    }

    #[test]
    fn okta_calls_are_checked_against_its_spec() {
        let Some(c) = Contract::okta() else {
            eprintln!("SKIPPED: no Okta spec");
            return;
        };
        for (method, path, query) in [
            (
                "GET",
                "/api/v1/users",
                Some("limit=200&filter=lastUpdated%20gt%20%222026-01-01T00%3A00%3A00.000Z%22"),
            ),
            ("GET", "/api/v1/users", Some("limit=200&after=abc")),
            (
                "GET",
                "/api/v1/groups",
                Some("search=profile.name%20eq%20%22x%22"),
            ),
            ("GET", "/api/v1/groups/00g1/users", Some("limit=200")),
            ("GET", "/api/v1/groups/00g1/owners", Some("limit=200")),
            ("GET", "/api/v1/users/00u1/groups", None),
            ("GET", "/api/v1/users/00u1/linkedObjects/manager", None),
            ("PUT", "/api/v1/groups/00g1/users/00u1", None),
            ("DELETE", "/api/v1/groups/00g1/users/00u1", None),
        ] {
            assert_eq!(
                c.check(&vendor(method, path, query)),
                Ok(()),
                "{method} {path}"
            );
        }
        for (method, path, query, why) in [
            ("GET", "/api/v1/users", Some("colour=blue"), "colour"),
            ("GET", "/api/v1/users", Some("limit=many"), "limit"),
            ("GET", "/api/v1/users/00u1/groups", Some("limit=2"), "limit"),
            ("POST", "/api/v1/groups/00g1/users/00u1", None, "POST"),
            ("GET", "/api/v1/people", None, "no such path"),
        ] {
            let result = c.check(&vendor(method, path, query));
            assert!(
                result.as_ref().is_err_and(|e| e.contains(why)),
                "{method} {path}: {result:?}"
            );
        }
    }

    #[test]
    fn google_calls_are_checked_against_its_discovery_document() {
        let Some(c) = Contract::google() else {
            eprintln!("SKIPPED: no Google discovery document");
            return;
        };
        for (method, path, query) in [
            (
                "GET",
                "/admin/directory/v1/users",
                Some("customer=my_customer&maxResults=500&projection=full&pageToken=x"),
            ),
            (
                "GET",
                "/admin/directory/v1/users/boss%40acme.test",
                Some("fields=id"),
            ),
            (
                "GET",
                "/admin/directory/v1/groups",
                Some("customer=my_customer&query=name%3D%27x%27"),
            ),
            (
                "GET",
                "/admin/directory/v1/groups/g1/members",
                Some("maxResults=200"),
            ),
            ("DELETE", "/admin/directory/v1/groups/g1/members/u1", None),
        ] {
            assert_eq!(
                c.check(&vendor(method, path, query)),
                Ok(()),
                "{method} {path}"
            );
        }
        let member = serde_json::json!({"id": "1001", "role": "MEMBER"});
        let insert = Call {
            body: Some(&member),
            ..vendor("POST", "/admin/directory/v1/groups/g1/members", None)
        };
        assert_eq!(c.check(&insert), Ok(()));
        let wrong_type = serde_json::json!({"id": 1001});
        let insert = Call {
            body: Some(&wrong_type),
            ..vendor("POST", "/admin/directory/v1/groups/g1/members", None)
        };
        assert!(c.check(&insert).is_err_and(|e| e.contains("body.id")));
        for (method, path, query, why) in [
            ("GET", "/admin/directory/v1/users", Some("limit=5"), "limit"),
            (
                "GET",
                "/admin/directory/v1/users",
                Some("maxResults=many"),
                "maxResults",
            ),
            ("PUT", "/admin/directory/v1/groups/g1/members", None, "PUT"),
            (
                "GET",
                "/admin/directory/v1/groups/g1/owners",
                None,
                "no such path",
            ),
        ] {
            let result = c.check(&vendor(method, path, query));
            assert!(
                result.as_ref().is_err_and(|e| e.contains(why)),
                "{method} {path}: {result:?}"
            );
        }
    }

    #[test]
    fn scim_paths_come_from_the_yaml_layout() {
        let ops = scim_operations(
            "paths:\n  /scim/directory/{d}/Users:\n    get:\n      tags: [x]\n    post:\n      x: 1\ncomponents:\n    get:\n",
        );
        assert_eq!(
            ops,
            vec![
                ("GET".to_string(), "/scim/directory/{d}/Users".to_string()),
                ("POST".to_string(), "/scim/directory/{d}/Users".to_string()),
            ]
        );
    }
}
