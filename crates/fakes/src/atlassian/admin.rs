//! `api.atlassian.com`: the organization Admin API (users, group memberships, product roles)
//! and the SCIM directory (users filtered by one `eq` on `userName` or `externalId`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Access, Ops, SharedWorld, World, page};

type Params = Query<HashMap<String, String>>;
type St = State<SharedWorld>;

pub fn ops() -> Ops {
    use Access::{AdminApiKey, ScimKey};
    const M: &str = "/admin/v1/orgs/{orgId}/directory/groups/{groupId}/memberships";
    Ops::default()
        .op(
            Method::GET,
            "/admin/v1/orgs/{orgId}/users",
            AdminApiKey,
            org_users,
        )
        .op(Method::GET, M, AdminApiKey, memberships)
        .op(Method::POST, M, AdminApiKey, add_membership)
        .op(
            Method::DELETE,
            "/admin/v1/orgs/{orgId}/directory/groups/{groupId}/memberships/{accountId}",
            AdminApiKey,
            remove_membership,
        )
        .op(
            Method::POST,
            "/admin/v1/orgs/{orgId}/users/{accountId}/roles/{verb}",
            AdminApiKey,
            product_role,
        )
        .op(
            Method::DELETE,
            "/admin/v1/orgs/{orgId}/directory/users/{accountId}",
            AdminApiKey,
            remove_from_directory,
        )
        .op(
            Method::GET,
            "/admin/v1/orgs/{orgId}/directory/users/{accountId}/last-active-dates",
            AdminApiKey,
            last_active_dates,
        )
        .op(
            Method::POST,
            "/users/{account_id}/manage/lifecycle/disable",
            AdminApiKey,
            disable_account,
        )
        .op(
            Method::GET,
            "/scim/directory/{directoryId}/Groups",
            ScimKey,
            scim_groups,
        )
        .op(
            Method::GET,
            "/scim/directory/{directoryId}/Users",
            ScimKey,
            scim_users,
        )
}

fn admin_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "message": message})),
    )
        .into_response()
}

fn unknown_org() -> Response {
    admin_error(StatusCode::NOT_FOUND, "Organization not found")
}

/// `{data, links: {next}}` with an opaque cursor; only the page's items are turned into JSON
/// (an organization of 100,000 accounts is listed a page at a time).
fn cursor_page<T>(
    world: &World,
    items: &[T],
    q: &HashMap<String, String>,
    to_json: impl Fn(&T) -> Value,
) -> Value {
    let start: usize = q
        .get("cursor")
        .and_then(|c| c.strip_prefix("c-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let start = start.min(items.len());
    let end = (start + world.page_size(None, 100, 100)).min(items.len());
    let slice: Vec<Value> = items[start..end].iter().map(to_json).collect();
    let last = end >= items.len();
    let mut body = json!({"data": slice, "links": {}});
    if !last {
        body["links"]["next"] = json!(format!("c-{}", start + slice.len()));
    }
    body
}

async fn org_users(State(w): St, Path(org): Path<String>, Query(q): Params) -> Response {
    let world = w.world();
    if org != world.org_id {
        return unknown_org();
    }
    let body = cursor_page(&world, &world.users, &q, |u| {
        json!({
            "account_id": u.account_id, "account_type": "atlassian",
            "account_status": if u.active { "active" } else { "inactive" },
            "name": u.display_name, "email": u.email,
        })
    });
    Json(body).into_response()
}

async fn memberships(
    State(w): St,
    Path((org, group)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let world = w.world();
    if org != world.org_id {
        return unknown_org();
    }
    let Some(members) = world.groups.get(&group) else {
        return admin_error(StatusCode::NOT_FOUND, "Group not found");
    };
    let members: Vec<&String> = members.iter().collect();
    Json(cursor_page(
        &world,
        &members,
        &q,
        |a| json!({"account_id": a}),
    ))
    .into_response()
}

async fn add_membership(
    State(w): St,
    Path((org, group)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = w.world();
    if org != world.org_id {
        return unknown_org();
    }
    let account = body["account_id"].as_str().unwrap_or_default().to_string();
    if world.user(&account).is_none() {
        return admin_error(
            StatusCode::BAD_REQUEST,
            "The user does not exist in this organization",
        );
    }
    let Some(members) = world.groups.get_mut(&group) else {
        return admin_error(StatusCode::NOT_FOUND, "Group not found");
    };
    if members.insert(account) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        admin_error(
            StatusCode::CONFLICT,
            "The user is already a member of the group",
        )
    }
}

async fn remove_membership(
    State(w): St,
    Path((org, group, account)): Path<(String, String, String)>,
) -> Response {
    let mut world = w.world();
    if org != world.org_id {
        return unknown_org();
    }
    let Some(members) = world.groups.get_mut(&group) else {
        return admin_error(StatusCode::NOT_FOUND, "Group not found");
    };
    if members.remove(&account) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        admin_error(
            StatusCode::NOT_FOUND,
            "The user is not a member of the group",
        )
    }
}

/// The Admin API's error list, as it answers a product-role call it refuses.
fn uam_error(code: &str, title: &str, detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(
            json!({"errors": [{"id": uuid::Uuid::new_v4().to_string(), "code": code,
            "status": "400", "title": title, "detail": detail}]}),
        ),
    )
        .into_response()
}

/// The canonical roles the Admin API assigns (API-NOTES §2.5).
const ROLES: &[&str] = &[
    "atlassian/user",
    "atlassian/admin",
    "atlassian/guest",
    "atlassian/customer",
    "atlassian/contributor",
    "atlassian/basic",
    "atlassian/stakeholder",
    "atlassian/user-access-admin",
];

/// Whether `resource` names a product of this site as the API takes it: `ari:cloud:<product>::
/// site/<cloudId>`. The workspace listing's `jira-admin` resource is refused (ID-8887), and
/// Jira's product-admin role is taken only on the `jira` resource.
fn resource_ok(world: &World, role: &str, resource: &str) -> bool {
    let Some((product, site)) = resource
        .strip_prefix("ari:cloud:")
        .and_then(|r| r.split_once("::site/"))
    else {
        return false;
    };
    let known = tollgate::workflow::products::products().any(|p| p == product) || product == "jira";
    let jira_admin_elsewhere = role == "atlassian/admin" && product.starts_with("jira-");
    known && !jira_admin_elsewhere && site == world.cloud_id
}

/// One flat `{role, resource}` a call; any other shape is refused as the API refuses it.
async fn product_role(
    State(w): St,
    Path((org, account, verb)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = w.world();
    if org != world.org_id {
        return unknown_org();
    }
    if world.user(&account).is_none() {
        return admin_error(StatusCode::NOT_FOUND, "User not found");
    }
    let role = body.get("role").and_then(Value::as_str).unwrap_or_default();
    let resource = body
        .get("resource")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !resource_ok(&world, role, resource) {
        return uam_error(
            "ADMIN-UAM-400-5",
            "Empty/Invalid Resource",
            "Cloud Resource is invalid",
        );
    }
    if !ROLES.contains(&role) {
        // [U] the API's code for an unknown role is not documented; it refuses the call.
        return uam_error("ADMIN-UAM-400-1", "Invalid Role", "Role is invalid");
    }
    let entry = (account, role.to_string(), resource.to_string());
    match verb.as_str() {
        "assign" => {
            world.product_roles.insert(entry);
        }
        "revoke" => {
            world.product_roles.remove(&entry);
        }
        _ => return admin_error(StatusCode::NOT_FOUND, "Not found"),
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE …/directory/users/{accountId}`: the account loses its product access in the
/// organization (every product role); the account itself stays.
async fn remove_from_directory(
    State(w): St,
    Path((org, account)): Path<(String, String)>,
) -> Response {
    let mut world = w.world();
    if org != world.org_id {
        return unknown_org();
    }
    if world.user(&account).is_none() {
        return admin_error(StatusCode::NOT_FOUND, "User not found");
    }
    world
        .product_roles
        .retain(|(holder, _, _)| holder != &account);
    StatusCode::NO_CONTENT.into_response()
}

/// `GET …/directory/users/{accountId}/last-active-dates`: `{data: {product_access: [{id, key,
/// last_active}], added_to_org}, links: {next}}`, the products paged by cursor (a product the
/// account never used is not listed); 404 for an account the organization does not have.
async fn last_active_dates(
    State(w): St,
    Path((org, account)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let world = w.world();
    if org != world.org_id {
        return unknown_org();
    }
    if world.user(&account).is_none() {
        return admin_error(StatusCode::NOT_FOUND, "User not found");
    }
    let used: Vec<(String, chrono::NaiveDate)> = world
        .last_active
        .get(&account)
        .map(|products| products.iter().map(|(p, d)| (p.clone(), *d)).collect())
        .unwrap_or_default();
    let page = cursor_page(
        &world,
        &used,
        &q,
        |(product, date)| json!({"id": format!("{product}-{}", world.cloud_id), "key": product, "last_active": date.to_string()}),
    );
    let body = json!({
        "data": {"product_access": page["data"], "added_to_org": "2024-01-15"},
        "links": page["links"],
    });
    Json(body).into_response()
}

/// User management `POST /users/{account_id}/manage/lifecycle/disable` (`{message}`
/// optional): 204 for a managed account, 403 for one the organization does not manage, 404 for
/// an unknown one. Disabling twice is no error.
async fn disable_account(State(w): St, Path(account): Path<String>) -> Response {
    let mut world = w.world();
    if world.user(&account).is_none() {
        return admin_error(StatusCode::NOT_FOUND, "The user was not found.");
    }
    if !world.managed_accounts.contains(&account) {
        return admin_error(
            StatusCode::FORBIDDEN,
            "The user is not managed by your organization.",
        );
    }
    if let Some(user) = world.users.iter_mut().find(|u| u.account_id == account) {
        user.active = false;
    }
    StatusCode::NO_CONTENT.into_response()
}

fn scim_error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/scim+json"),
    );
    response
}

/// Atlassian's SCIM filters only one `eq` on `userName` or `externalId`.
fn parse_filter(filter: &str) -> Option<(&str, String)> {
    let (attribute, rest) = filter.trim().split_once(' ')?;
    let value = rest.trim().strip_prefix("eq ")?.trim();
    let value = value.strip_prefix('"')?.strip_suffix('"')?;
    matches!(attribute, "userName" | "externalId").then(|| (attribute, value.to_string()))
}

/// The directory's groups; a `displayName eq` filter is honoured (Atlassian's SCIM filters
/// groups by display name only).
async fn scim_groups(State(w): St, Path(directory): Path<String>, Query(q): Params) -> Response {
    let world = w.world();
    if directory != world.scim_directory_id {
        return scim_error(StatusCode::NOT_FOUND, None, "Directory not found");
    }
    let wanted = match q.get("filter") {
        None => None,
        Some(f) => {
            let value = f
                .trim()
                .strip_prefix("displayName eq ")
                .and_then(|v| v.trim().strip_prefix('"')?.strip_suffix('"'));
            match value {
                Some(v) => Some(v.to_string()),
                None => {
                    return scim_error(
                        StatusCode::BAD_REQUEST,
                        Some("invalidFilter"),
                        "Only 'displayName eq' filters are supported for groups",
                    );
                }
            }
        }
    };
    let resources: Vec<Value> = world
        .scim_groups
        .iter()
        .filter(|name| wanted.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(name)))
        .map(|name| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "id": format!("scim-group-{}", name.to_lowercase().replace(' ', "-")),
                "displayName": name,
                "members": [],
            })
        })
        .collect();
    let mut response = Json(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    }))
    .into_response();
    response.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/scim+json"),
    );
    response
}

async fn scim_users(State(w): St, Path(directory): Path<String>, Query(q): Params) -> Response {
    let world = w.world();
    if directory != world.scim_directory_id {
        return scim_error(StatusCode::NOT_FOUND, None, "Directory not found");
    }
    let filter = match q.get("filter").map(|f| parse_filter(f)) {
        Some(None) => {
            return scim_error(
                StatusCode::BAD_REQUEST,
                Some("invalidFilter"),
                "Only 'userName eq' and 'externalId eq' filters are supported",
            );
        }
        Some(Some(f)) => Some(f),
        None => None,
    };
    let resources: Vec<Value> = world
        .scim_users
        .iter()
        .filter(|(name, _)| filter.as_ref().is_none_or(|(_, v)| v.eq_ignore_ascii_case(name)))
        .map(|(name, account)| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:scim:schemas:extension:atlassian-external:1.0"],
                "id": format!("scim-{account}"),
                "userName": name,
                "active": true,
                "urn:scim:schemas:extension:atlassian-external:1.0": {"atlassianAccountId": account},
            })
        })
        .collect();
    let start = q
        .get("startIndex")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let count = world.page_size(q.get("count").and_then(|v| v.parse().ok()), 100, 100);
    let (slice, _) = page(&resources, start - 1, count);
    let mut response = Json(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": resources.len(),
        "itemsPerPage": slice.len(),
        "startIndex": start,
        "Resources": slice,
    }))
    .into_response();
    response.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/scim+json"),
    );
    response
}
