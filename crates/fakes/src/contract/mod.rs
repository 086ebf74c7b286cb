//! Checks calls against what the vendors publish: the path template and method must exist;
//! query parameters must be declared, required ones present, typed ones well-typed; a JSON body
//! must match the operation's schema. For Connect-signed calls the operation's
//! `x-atlassian-connect-scope` must be one the descriptor holds, and never `INACCESSIBLE`.
//! Calls made with an API key or token are checked on all but the scope, and operations known
//! only from a list (Atlassian's unofficial SCIM mirror) on path and method only.
//!
//! The checks read the contract data the repository carries (`tests/contract/*.json`, see
//! `tests/contract/README.md`), so a fresh clone checks exactly as CI does. That data is
//! generated from the full published specs by [`generate`] (`cargo run -p tollgate-fakes --bin
//! contract-data`), and CI regenerates it to catch drift when the specs are at hand.

mod data;
pub mod generate;

use std::sync::OnceLock;

use serde_json::Value;

pub use data::{Data, Operation, Param, RequestBody, Source};

use super::atlassian::Scope;

pub enum CallerKind {
    /// A Connect JWT; the scopes its descriptor declared.
    Connect(Vec<Scope>),
    /// An API key, token or basic credential, or a caller of a vendor whose spec has no scope
    /// model (Okta, Google): all but the scope is checked.
    Unscoped,
}

pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: Option<&'a Value>,
    pub caller: CallerKind,
}

/// The data files, by vendor: what each fake is checked against.
pub const FILES: &[(&str, &str)] = &[
    (
        "atlassian",
        include_str!("../../../../tests/contract/atlassian.json"),
    ),
    ("okta", include_str!("../../../../tests/contract/okta.json")),
    (
        "google",
        include_str!("../../../../tests/contract/google.json"),
    ),
];

pub struct Contract {
    vendor: &'static str,
    data: Data,
    /// Each operation's template split into segments (`None` for a parameter).
    segments: Vec<Vec<Option<String>>>,
}

pub(crate) fn split(path: &str) -> Vec<Option<String>> {
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

impl Contract {
    pub fn new(vendor: &'static str, data: Data) -> Self {
        let segments = data.operations.iter().map(|op| split(&op.path)).collect();
        Self {
            vendor,
            data,
            segments,
        }
    }

    /// The committed data of `vendor`, parsed once per process.
    fn committed(vendor: &'static str) -> &'static Contract {
        static LOADED: OnceLock<Vec<Contract>> = OnceLock::new();
        let all = LOADED.get_or_init(|| {
            FILES
                .iter()
                .map(|(vendor, text)| match serde_json::from_str::<Data>(text) {
                    Ok(data) => Contract::new(vendor, data),
                    // The files are the repository's own; the unit tests parse them too.
                    Err(e) => panic!("tests/contract/{vendor}.json does not parse: {e}"),
                })
                .collect()
        });
        all.iter()
            .find(|c| c.vendor == vendor)
            .unwrap_or_else(|| panic!("no contract data for {vendor}"))
    }

    /// Jira, JSM, Confluence, the Admin API and Atlassian's SCIM.
    pub fn atlassian() -> &'static Contract {
        Self::committed("atlassian")
    }

    /// Okta's Management API.
    pub fn okta() -> &'static Contract {
        Self::committed("okta")
    }

    /// Google's Admin SDK Directory API.
    pub fn google() -> &'static Contract {
        Self::committed("google")
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    /// What the calls are checked against, for a test's output: each source and its version.
    pub fn describe(&self) -> String {
        let sources: Vec<String> = self
            .data
            .sources
            .iter()
            .map(|(key, s)| format!("{key} {}", s.version))
            .collect();
        format!(
            "tests/contract/{}.json ({})",
            self.vendor,
            sources.join("; ")
        )
    }

    /// The operation `method path` is, preferring literal segments over parameters.
    fn find(&self, method: &str, path: &str) -> Result<&Operation, String> {
        let wanted = split(path);
        let matching: Vec<(&Operation, usize)> = self
            .data
            .operations
            .iter()
            .zip(&self.segments)
            .filter(|(_, segments)| {
                segments.len() == wanted.len()
                    && segments.iter().zip(&wanted).all(|(t, s)| match (t, s) {
                        (None, Some(s)) => !s.is_empty(),
                        // A template asked about (the fake's own routes).
                        (None, None) => true,
                        (Some(t), Some(s)) => t == s || t == &percent_decode(s),
                        _ => false,
                    })
            })
            .map(|(op, segments)| (op, segments.iter().filter(|s| s.is_some()).count()))
            .collect();
        if matching.is_empty() {
            return Err(
                "no such path among the documented operations the fakes serve (tests/contract)"
                    .into(),
            );
        }
        matching
            .into_iter()
            .filter(|(op, _)| op.method == method)
            .max_by_key(|(_, literal)| *literal)
            .map(|(op, _)| op)
            .ok_or_else(|| format!("the published API has this path but not the method {method}"))
    }

    pub fn check(&self, call: &Call<'_>) -> Result<(), String> {
        let covered = self
            .data
            .sources
            .values()
            .any(|s| call.path.starts_with(&s.prefix));
        if !covered {
            return Err("no published API covers this path".into());
        }
        let op = self.find(call.method, call.path)?;
        if op.listed {
            return Ok(());
        }
        match &call.caller {
            // A key or token is not scoped like Connect.
            CallerKind::Unscoped => {}
            CallerKind::Connect(scopes) => {
                let scope = op.scope.as_deref().unwrap_or("");
                if scope == "INACCESSIBLE" {
                    return Err(format!("{} is INACCESSIBLE to Connect apps", op.path));
                }
                let needed = Scope::parse(scope).ok_or_else(|| {
                    format!("{} has no usable Connect scope (`{scope}`)", op.path)
                })?;
                if !scopes.iter().any(|s| s.grants(needed)) {
                    return Err(format!(
                        "{} needs the {scope} scope, which the descriptor does not declare",
                        op.path
                    ));
                }
            }
        }
        check_path_params(op, call.path)?;
        check_query(call.query.unwrap_or(""), &op.params)?;
        check_body(op.body.as_ref(), call.body)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn type_ok(kind: Option<&str>, text: &str) -> bool {
    match kind {
        Some("integer") => text.parse::<i64>().is_ok(),
        Some("number") => text.parse::<f64>().is_ok(),
        Some("boolean") => text == "true" || text == "false",
        _ => true,
    }
}

fn check_path_params(op: &Operation, path: &str) -> Result<(), String> {
    let template = op.path.trim_matches('/').split('/');
    for (name, value) in template.zip(path.trim_matches('/').split('/')) {
        let Some(name) = name.strip_prefix('{').and_then(|n| n.strip_suffix('}')) else {
            continue;
        };
        if let Some(p) = op
            .params
            .iter()
            .find(|p| p.location == "path" && p.name == name)
            && !type_ok(p.kind.as_deref(), &percent_decode(value))
        {
            return Err(format!(
                "path parameter {name} = `{value}` is not a {}",
                p.kind.as_deref().unwrap_or("?")
            ));
        }
    }
    Ok(())
}

fn check_query(query: &str, params: &[Param]) -> Result<(), String> {
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
            .find(|p| p.location == "query" && &p.name == name)
            .ok_or_else(|| format!("query parameter `{name}` is not declared"))?;
        if !type_ok(declared.kind.as_deref(), value) {
            return Err(format!(
                "query parameter {name} = `{value}` is not a {}",
                declared.kind.as_deref().unwrap_or("?")
            ));
        }
    }
    for p in params
        .iter()
        .filter(|p| p.location == "query" && p.required)
    {
        if !pairs.iter().any(|(k, _)| k == &p.name) {
            return Err(format!("required query parameter `{}` is missing", p.name));
        }
    }
    Ok(())
}

fn check_body(declared: Option<&RequestBody>, body: Option<&Value>) -> Result<(), String> {
    match (body, declared) {
        (None, Some(declared)) if declared.required => Err("the operation requires a body".into()),
        (None, _) => Ok(()),
        (Some(_), None) => Err("sends a body the operation does not take".into()),
        (Some(body), Some(declared)) => match &declared.schema {
            None => Ok(()),
            Some(schema) => {
                let mut errors = Vec::new();
                validate(schema, body, "body", 0, &mut errors);
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(errors.join("; "))
                }
            }
        },
    }
}

/// The subset of OpenAPI 3.0 schemas the Atlassian specs use.
fn validate(schema: &Value, value: &Value, at: &str, depth: usize, errors: &mut Vec<String>) {
    if depth > 40 {
        return;
    }
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        validate(part, value, at, depth + 1, errors);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let fits = options.iter().any(|option| {
                let mut e = Vec::new();
                validate(option, value, at, depth + 1, &mut e);
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
                Some(property) => {
                    validate(property, item, &format!("{at}.{key}"), depth + 1, errors)
                }
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => {
                        errors.push(format!("{at}.{key} is not a known property"))
                    }
                    extra @ Value::Object(_) => {
                        validate(extra, item, &format!("{at}.{key}"), depth + 1, errors)
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(schema_items)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(schema_items, item, &format!("{at}[{i}]"), depth + 1, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
        let c = Contract::atlassian();
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
            caller: CallerKind::Unscoped,
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
        let c = Contract::atlassian();
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
                caller: CallerKind::Unscoped,
                ..connect("GET", "/admin/v1/orgs/o/users", None, None)
            })
            .is_ok()
        );
        assert!(
            c.check(&Call {
                caller: CallerKind::Unscoped,
                ..connect("GET", "/admin/v1/orgs/o/groups", None, None)
            })
            .is_err()
        );
        assert!(
            c.check(&Call {
                caller: CallerKind::Unscoped,
                ..connect("GET", "/scim/directory/d/Users", Some("filter=x"), None)
            })
            .is_ok()
        );
    }

    /// The fake demands the scope the spec documents for each operation it serves, and serves
    /// only documented operations.
    #[test]
    fn the_fakes_access_rules_match_the_specs() {
        use crate::atlassian::{Access, operations};
        let c = Contract::atlassian();
        for (method, path, access) in operations() {
            let op = c
                .find(method.as_str(), &path.replace("{verb}", "assign"))
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            match access {
                Access::Connect(needed) => {
                    assert_eq!(
                        op.scope.as_deref().and_then(Scope::parse),
                        Some(needed),
                        "{method} {path}"
                    )
                }
                Access::SiteAdminOnly => {
                    assert_eq!(op.scope.as_deref(), Some("INACCESSIBLE"), "{method} {path}")
                }
                Access::AdminApiKey | Access::ScimKey => {
                    assert!(op.scope.is_none(), "{method} {path}")
                }
            }
        }
    }

    /// Every committed file parses, names a source for each operation, and each source its
    /// version.
    #[test]
    fn the_committed_data_is_complete() {
        for (vendor, text) in FILES {
            let data: Data = serde_json::from_str(text).expect("parses");
            assert!(!data.operations.is_empty(), "{vendor}");
            for op in &data.operations {
                assert!(data.sources.contains_key(&op.source), "{vendor}: {op:?}");
            }
            for (key, source) in &data.sources {
                assert!(!source.version.is_empty(), "{vendor}: {key}");
            }
        }
    }

    fn vendor<'a>(method: &'a str, path: &'a str, query: Option<&'a str>) -> Call<'a> {
        Call {
            method,
            path,
            query,
            body: None,
            caller: CallerKind::Unscoped,
        }
    }

    #[test]
    fn okta_calls_are_checked_against_its_spec() {
        let c = Contract::okta();
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
        let c = Contract::google();
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
}
