//! Confluence v2 space roles (`/wiki/api/v2`): cursor pages with `_links.next` and a `Link`
//! header; setting an assignment without `roleId` removes the principal's role.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use super::{Access, Ops, Scope, SharedWorld, World, page};

type Params = Query<HashMap<String, String>>;
type St = State<SharedWorld>;

pub fn ops() -> Ops {
    use Access::Connect;
    const A: &str = "/wiki/api/v2/spaces/{id}/role-assignments";
    Ops::default()
        .op(
            Method::GET,
            "/wiki/api/v2/space-roles",
            Connect(Scope::Read),
            space_roles,
        )
        .op(
            Method::GET,
            "/wiki/api/v2/spaces",
            Connect(Scope::Read),
            spaces,
        )
        .op(Method::GET, A, Connect(Scope::Read), assignments)
        .op(Method::POST, A, Connect(Scope::SpaceAdmin), set_assignment)
}

fn confluence_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"status": status.as_u16(), "code": status.canonical_reason(), "title": message, "detail": null}]})),
    )
        .into_response()
}

/// One cursor page of `values`: the cursor is opaque to clients (an encoded offset here).
fn cursor_page(
    world: &World,
    values: &[Value],
    q: &HashMap<String, String>,
    path: &str,
) -> Response {
    let start = q
        .get("cursor")
        .and_then(|c| B64.decode(c).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let limit = world.page_size(q.get("limit").and_then(|v| v.parse().ok()), 25, 250);
    let (slice, last) = page(values, start, limit);
    let mut body = json!({"results": slice, "_links": {"base": "/wiki"}});
    let mut response_link = None;
    if !last {
        let mut others: Vec<String> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "cursor")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        others.sort();
        others.push(format!(
            "cursor={}",
            B64.encode((start + limit).to_string())
        ));
        let next = format!("{path}?{}", others.join("&"));
        body["_links"]["next"] = json!(next);
        response_link = Some(format!("<{next}>; rel=\"next\""));
    }
    let mut response = Json(body).into_response();
    if let Some(link) = response_link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert("link", link);
    }
    response
}

async fn space_roles(State(w): St, Query(q): Params) -> Response {
    let world = w.world();
    let roles: Vec<Value> = world
        .space_roles
        .iter()
        .map(|(id, name)| json!({"id": id, "type": "SYSTEM", "displayName": name, "description": name, "spacePermissions": []}))
        .collect();
    cursor_page(&world, &roles, &q, "/wiki/api/v2/space-roles")
}

/// Spaces, filtered by `keys` (comma-separated) when given.
async fn spaces(State(w): St, Query(q): Params) -> Response {
    let world = w.world();
    let keys: Option<Vec<&str>> = q.get("keys").map(|k| k.split(',').collect());
    let values: Vec<Value> = world
        .space_keys
        .iter()
        .filter(|(_, key)| keys.as_ref().is_none_or(|ks| ks.contains(&key.as_str())))
        .map(|(id, key)| json!({"id": id.to_string(), "key": key, "name": key, "type": "global", "status": "current"}))
        .collect();
    cursor_page(&world, &values, &q, "/wiki/api/v2/spaces")
}

fn assignment_json(principal: &str, role: &str) -> Value {
    json!({"principal": {"principalType": "USER", "principalId": principal}, "roleId": role})
}

async fn assignments(State(w): St, Path(id): Path<u64>, Query(q): Params) -> Response {
    let world = w.world();
    let Some(list) = world.space_assignments.get(&id) else {
        return confluence_error(StatusCode::NOT_FOUND, "Space not found");
    };
    let values: Vec<Value> = list
        .iter()
        .filter(|(p, _)| q.get("principal-id").is_none_or(|want| want == p))
        .filter(|(_, r)| q.get("role-id").is_none_or(|want| want == r))
        .map(|(p, r)| assignment_json(p, r))
        .collect();
    cursor_page(
        &world,
        &values,
        &q,
        &format!("/wiki/api/v2/spaces/{id}/role-assignments"),
    )
}

async fn set_assignment(State(w): St, Path(id): Path<u64>, Json(body): Json<Value>) -> Response {
    let Some(principal) = body
        .pointer("/principal/principalId")
        .and_then(Value::as_str)
    else {
        return confluence_error(StatusCode::BAD_REQUEST, "principal is required");
    };
    let role = body.get("roleId").and_then(Value::as_str);
    let mut world = w.world();
    if world.user(principal).is_none() {
        return confluence_error(StatusCode::BAD_REQUEST, "Unknown principal");
    }
    if role.is_some_and(|r| !world.space_roles.iter().any(|(id, _)| id == r)) {
        return confluence_error(StatusCode::BAD_REQUEST, "Unknown role");
    }
    // Not a member of the site's space: Confluence answers 404 for missing spaces and for
    // spaces the app may not manage alike.
    let Some(list) = world.space_assignments.get_mut(&id) else {
        return confluence_error(StatusCode::NOT_FOUND, "Space not found or not permitted");
    };
    list.retain(|(p, _)| p != principal);
    if let Some(role) = role {
        list.push((principal.to_string(), role.to_string()));
    }
    let results: Vec<Value> = list
        .iter()
        .filter(|(p, _)| p == principal)
        .map(|(p, r)| assignment_json(p, r))
        .collect();
    Json(json!({"results": results, "_links": {}})).into_response()
}
