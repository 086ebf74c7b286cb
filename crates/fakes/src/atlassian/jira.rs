//! Jira platform v3: issues, comments, transitions, users, project roles, groups.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    APP_ACCOUNT, Access, FakeComment, FakeUser, Ops, Scope, SharedWorld, World, jira_error, page,
};

type Params = Query<HashMap<String, String>>;
type St = State<SharedWorld>;

pub fn ops() -> Ops {
    use Access::*;
    Ops::default()
        .op(
            Method::GET,
            "/rest/api/3/issue/{issueIdOrKey}",
            Connect(Scope::Read),
            get_issue,
        )
        .op(
            Method::POST,
            "/rest/api/3/issue",
            Connect(Scope::Write),
            create_issue,
        )
        .op(
            Method::PUT,
            "/rest/api/3/issue/{issueIdOrKey}",
            Connect(Scope::Write),
            edit_issue,
        )
        .op(
            Method::POST,
            "/rest/api/3/issue/{issueIdOrKey}/comment",
            Connect(Scope::Write),
            add_comment,
        )
        .op(
            Method::GET,
            "/rest/api/3/issue/{issueIdOrKey}/comment",
            Connect(Scope::Read),
            get_comments,
        )
        .op(
            Method::GET,
            "/rest/api/3/issue/{issueIdOrKey}/comment/{id}",
            Connect(Scope::Read),
            get_comment,
        )
        .op(
            Method::GET,
            "/rest/api/3/issue/{issueIdOrKey}/transitions",
            Connect(Scope::Read),
            get_transitions,
        )
        .op(
            Method::POST,
            "/rest/api/3/issue/{issueIdOrKey}/transitions",
            Connect(Scope::Write),
            do_transition,
        )
        .op(
            Method::GET,
            "/rest/api/3/search/jql",
            Connect(Scope::Read),
            search_jql,
        )
        .op(
            Method::GET,
            "/rest/api/3/webhook/failed",
            Connect(Scope::Read),
            failed_webhooks,
        )
        .op(
            Method::GET,
            "/rest/api/3/user",
            Connect(Scope::Read),
            get_user,
        )
        .op(
            Method::GET,
            "/rest/api/3/serverInfo",
            Connect(Scope::Read),
            server_info,
        )
        .op(
            Method::POST,
            "/rest/api/3/permissions/check",
            Connect(Scope::Read),
            check_permissions,
        )
        .op(
            Method::GET,
            "/rest/api/3/user/search",
            Connect(Scope::Read),
            search_users,
        )
        .op(
            Method::GET,
            "/rest/api/3/project/{projectIdOrKey}/role",
            Connect(Scope::Read),
            project_roles,
        )
        .op(
            Method::GET,
            "/rest/api/3/project/{projectIdOrKey}/role/{id}",
            Connect(Scope::Read),
            get_role,
        )
        .op(
            Method::GET,
            "/rest/api/3/groups/picker",
            Connect(Scope::Read),
            groups_picker,
        )
        .op(
            Method::POST,
            "/rest/api/3/project/{projectIdOrKey}/role/{id}",
            Connect(Scope::ProjectAdmin),
            add_role_actors,
        )
        .op(
            Method::DELETE,
            "/rest/api/3/project/{projectIdOrKey}/role/{id}",
            Connect(Scope::ProjectAdmin),
            remove_role_actor,
        )
        .op(
            Method::GET,
            "/rest/api/3/group/member",
            Connect(Scope::Admin),
            group_members,
        )
        .op(
            Method::POST,
            "/rest/api/3/group/user",
            SiteAdminOnly,
            add_group_user,
        )
        .op(
            Method::DELETE,
            "/rest/api/3/group/user",
            SiteAdminOnly,
            remove_group_user,
        )
}

fn no_issue() -> Response {
    jira_error(
        StatusCode::NOT_FOUND,
        "Issue does not exist or you do not have permission to see it.",
    )
}

/// A user as Jira shows it to apps: the email only if the profile lets it be seen.
pub fn user_json(user: &FakeUser) -> Value {
    let mut value = json!({
        "accountId": user.account_id,
        "accountType": "atlassian",
        "displayName": user.display_name,
        "active": user.active,
    });
    if user.email_visible {
        value["emailAddress"] = json!(user.email);
    }
    value
}

fn issue_json(world: &World, key: &str, only: Option<&str>) -> Option<Value> {
    let issue = world
        .issues
        .values()
        .find(|i| i.key == key || i.id == key)?;
    let reporter = world
        .user(&issue.reporter)
        .map(user_json)
        .unwrap_or(json!({"accountId": issue.reporter}));
    let mut fields = serde_json::Map::new();
    fields.insert("summary".into(), json!(issue.summary));
    fields.insert("status".into(), json!({"name": issue.status}));
    fields.insert("reporter".into(), reporter);
    fields.insert("project".into(), json!({"key": issue.project_key}));
    fields.insert("issuetype".into(), json!({"name": "Access request"}));
    for (k, v) in &issue.custom {
        fields.insert(k.clone(), v.clone());
    }
    if let Some(only) = only {
        let wanted: Vec<&str> = only.split(',').collect();
        fields.retain(|k, _| wanted.contains(&k.as_str()));
    }
    Some(json!({"id": issue.id, "key": issue.key, "fields": fields}))
}

async fn get_issue(State(w): St, Path(key): Path<String>, Query(q): Params) -> Response {
    match issue_json(&w.world(), &key, q.get("fields").map(String::as_str)) {
        Some(issue) => Json(issue).into_response(),
        None => no_issue(),
    }
}

/// Creates an issue in a project the site has (the project of any issue it holds).
async fn create_issue(State(w): St, Json(body): Json<Value>) -> Response {
    let fields = &body["fields"];
    let (Some(project), Some(summary)) = (
        fields.pointer("/project/key").and_then(Value::as_str),
        fields["summary"].as_str().filter(|s| !s.trim().is_empty()),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errorMessages": [], "errors": {"summary": "You must specify a summary of the issue.", "project": "Specify a valid project ID or key"}})),
        )
            .into_response();
    };
    let mut world = w.world();
    if !world.issues.values().any(|i| i.project_key == project) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errorMessages": [], "errors": {"project": "Specify a valid project ID or key"}})),
        )
            .into_response();
    }
    let number = world
        .issues
        .values()
        .filter(|i| i.project_key == project)
        .count()
        + 100;
    let key = format!("{project}-{number}");
    let issue = world.add_issue(&key, "");
    issue.summary = summary.to_string();
    issue.status = "Open".into();
    issue.custom = fields.as_object().cloned().unwrap_or_default();
    let id = issue.id.clone();
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "key": key, "self": format!("/rest/api/3/issue/{id}")})),
    )
        .into_response()
}

async fn add_comment(State(w): St, Path(key): Path<String>, Json(body): Json<Value>) -> Response {
    if body.pointer("/body/type").and_then(Value::as_str) != Some("doc") {
        return jira_error(
            StatusCode::BAD_REQUEST,
            "Comment body is not valid! Operation value must be an Atlassian Document",
        );
    }
    let internal = body["properties"].as_array().is_some_and(|ps| {
        ps.iter().any(|p| {
            p["key"] == "sd.public.comment" && p.pointer("/value/internal") == Some(&json!(true))
        })
    });
    let mut world = w.world();
    w.check_names(
        &world,
        &key,
        &tollgate::atlassian::adf::plain_text(&body["body"]),
    );
    let id = world.next_id();
    let Some(issue) = world.issues.get_mut(&key) else {
        return no_issue();
    };
    issue.comments.push(FakeComment {
        id: id.clone(),
        author: APP_ACCOUNT.0.to_string(),
        body: body["body"].clone(),
        public: !internal,
        created: chrono::Utc::now(),
        properties: body["properties"].as_array().cloned().unwrap_or_default(),
    });
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "body": body["body"], "jsdPublic": !internal})),
    )
        .into_response()
}

/// `PageOfComments`, oldest first (`orderBy=created`, the default; `-created` reverses).
async fn get_comments(State(w): St, Path(key): Path<String>, Query(q): Params) -> Response {
    let world = w.world();
    let Some(issue) = world.issues.get(&key) else {
        return no_issue();
    };
    let expanded = q
        .get("expand")
        .is_some_and(|e| e.split(',').any(|part| part.trim() == "properties"));
    let mut comments: Vec<Value> = issue
        .comments
        .iter()
        .map(|c| {
            if expanded {
                c.to_rest_expanded(&world)
            } else {
                c.to_rest(&world)
            }
        })
        .collect();
    if q.get("orderBy").map(String::as_str) == Some("-created") {
        comments.reverse();
    }
    let start: usize = q.get("startAt").and_then(|v| v.parse().ok()).unwrap_or(0);
    let size = world.page_size(q.get("maxResults").and_then(|v| v.parse().ok()), 5000, 5000);
    let (slice, _) = page(&comments, start, size);
    Json(json!({
        "startAt": start, "maxResults": size, "total": comments.len(), "comments": slice,
    }))
    .into_response()
}

async fn get_comment(State(w): St, Path((key, id)): Path<(String, String)>) -> Response {
    let world = w.world();
    let Some(issue) = world.issues.get(&key) else {
        return no_issue();
    };
    match issue.comments.iter().find(|c| c.id == id) {
        Some(comment) => Json(comment.to_rest(&world)).into_response(),
        None => jira_error(
            StatusCode::NOT_FOUND,
            &format!("Can not find a comment for the id: {id}."),
        ),
    }
}

async fn get_transitions(State(w): St, Path(key): Path<String>) -> Response {
    let world = w.world();
    let Some(issue) = world.issues.get(&key) else {
        return no_issue();
    };
    let transitions: Vec<Value> = world
        .transitions
        .iter()
        .filter(|t| t.to_status != issue.status)
        .map(|t| json!({"id": t.id, "name": t.name, "to": {"name": t.to_status}}))
        .collect();
    Json(json!({"transitions": transitions})).into_response()
}

async fn do_transition(State(w): St, Path(key): Path<String>, Json(body): Json<Value>) -> Response {
    let id = body
        .pointer("/transition/id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut world = w.world();
    let target = world
        .transitions
        .iter()
        .find(|t| t.id == id)
        .map(|t| t.to_status.clone());
    let Some(issue) = world.issues.get_mut(&key) else {
        return no_issue();
    };
    match target {
        Some(status) if status != issue.status => {
            issue.status = status;
            StatusCode::NO_CONTENT.into_response()
        }
        _ => jira_error(
            StatusCode::BAD_REQUEST,
            &format!("Transition id '{id}' is not valid for this issue."),
        ),
    }
}

async fn get_user(State(w): St, Query(q): Params) -> Response {
    let world = w.world();
    match q.get("accountId").and_then(|id| world.user(id)) {
        Some(user) => Json(user_json(user)).into_response(),
        None => jira_error(
            StatusCode::NOT_FOUND,
            "Specified user does not exist or you do not have required permissions",
        ),
    }
}

async fn server_info(State(w): St) -> Response {
    let world = w.world();
    Json(json!({
        "baseUrl": world.base_url,
        "displayUrl": world.base_url,
        "deploymentType": "Cloud",
        "version": "1001.0.0-SNAPSHOT",
        "versionNumbers": [1001, 0, 0],
        "buildNumber": 100_000,
        "serverTitle": "Jira",
    }))
    .into_response()
}

/// Global permissions this fake knows; Jira refuses a name it does not recognize.
const GLOBAL_PERMISSIONS: [&str; 5] = [
    "ADMINISTER",
    "SYSTEM_ADMIN",
    "USER_PICKER",
    "CREATE_SHARED_OBJECTS",
    "BULK_CHANGE",
];

/// The global permissions an account holds out of those asked about. Apps calling from their
/// server may ask about anyone; an unknown account or permission is a 400.
async fn check_permissions(State(w): St, Json(body): Json<Value>) -> Response {
    let world = w.world();
    let Some(account) = body["accountId"].as_str() else {
        // Asked about itself: the app user holds no global permission.
        return Json(json!({"globalPermissions": [], "projectPermissions": []})).into_response();
    };
    if world.user(account).is_none() {
        return jira_error(StatusCode::BAD_REQUEST, "Specified user does not exist.");
    }
    let asked: Vec<&str> = body["globalPermissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if let Some(unknown) = asked.iter().find(|p| !GLOBAL_PERMISSIONS.contains(p)) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errorMessages": [], "errors": {*unknown: "Unrecognized permission"}})),
        )
            .into_response();
    }
    let admin = world.administrators.contains(account);
    let held: Vec<&str> = asked
        .into_iter()
        .filter(|p| match *p {
            "ADMINISTER" | "SYSTEM_ADMIN" | "BULK_CHANGE" => admin,
            _ => true,
        })
        .collect();
    Json(json!({"globalPermissions": held, "projectPermissions": []})).into_response()
}

/// `startAt` and the page size; Jira caps `maxResults` silently.
fn offset(world: &World, q: &HashMap<String, String>) -> (usize, usize) {
    let start = q.get("startAt").and_then(|v| v.parse().ok()).unwrap_or(0);
    let asked = q.get("maxResults").and_then(|v| v.parse().ok());
    (start, world.page_size(asked, 50, 50))
}

/// A plain array, as Jira's user search returns; matches email (where visible) or a display
/// name prefix.
async fn search_users(State(w): St, Query(q): Params) -> Response {
    let query = q.get("query").map(|s| s.to_lowercase()).unwrap_or_default();
    let world = w.world();
    let (start, limit) = offset(&world, &q);
    let matched: Vec<Value> = world
        .users
        .iter()
        .filter(|u| {
            (u.email_visible && u.email.to_lowercase().starts_with(&query))
                || u.display_name.to_lowercase().starts_with(&query)
        })
        .map(user_json)
        .collect();
    Json(page(&matched, start, limit).0).into_response()
}

fn role_json(world: &World, project: &str, id: u64) -> Option<Value> {
    let (users, groups) = world.project_roles.get(&(project.to_string(), id))?;
    let mut actors: Vec<Value> = users
        .iter()
        .map(|u| json!({"type": "atlassian-user-role-actor", "actorUser": {"accountId": u}}))
        .collect();
    actors.extend(
        groups
            .iter()
            .map(|g| json!({"type": "atlassian-group-role-actor", "actorGroup": {"groupId": g}})),
    );
    Some(json!({"id": id, "name": "Service Desk Team", "actors": actors}))
}

fn no_role() -> Response {
    jira_error(
        StatusCode::NOT_FOUND,
        "No project could be found with key or the role does not exist.",
    )
}

/// The project's roles: name → the role's URL (which ends in its id).
async fn project_roles(State(w): St, Path(project): Path<String>) -> Response {
    let world = w.world();
    let roles: serde_json::Map<String, Value> = world
        .project_roles
        .keys()
        .filter(|(p, _)| *p == project)
        .filter_map(|(_, id)| {
            let name = world.role_names.get(id)?;
            Some((
                name.clone(),
                json!(format!(
                    "https://fake.atlassian.net/rest/api/3/project/{project}/role/{id}"
                )),
            ))
        })
        .collect();
    if roles.is_empty() {
        return jira_error(
            StatusCode::NOT_FOUND,
            &format!("No project could be found with key '{project}'."),
        );
    }
    Json(Value::Object(roles)).into_response()
}

/// Groups whose name contains the query (case-insensitively), at most `maxResults`.
async fn groups_picker(State(w): St, Query(q): Params) -> Response {
    let world = w.world();
    let query = q.get("query").map(|s| s.to_lowercase()).unwrap_or_default();
    let max = q
        .get("maxResults")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20);
    let found: Vec<Value> = world
        .group_names
        .iter()
        .filter(|(_, name)| name.to_lowercase().contains(&query))
        .take(max)
        .map(|(id, name)| json!({"name": name, "groupId": id, "html": name, "labels": []}))
        .collect();
    Json(json!({
        "header": format!("Showing {} of {} matching groups", found.len(), found.len()),
        "total": found.len(),
        "groups": found,
    }))
    .into_response()
}

async fn get_role(State(w): St, Path((project, id)): Path<(String, u64)>) -> Response {
    match role_json(&w.world(), &project, id) {
        Some(role) => Json(role).into_response(),
        None => no_role(),
    }
}

async fn add_role_actors(
    State(w): St,
    Path((project, id)): Path<(String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = w.world();
    let users: Vec<String> = body["user"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str().map(str::to_string))
        .collect();
    if let Some(unknown) = users.iter().find(|u| world.user(u).is_none()) {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &format!("Could not find a user with accountId {unknown}"),
        );
    }
    let Some((members, _)) = world.project_roles.get_mut(&(project.clone(), id)) else {
        return no_role();
    };
    // Jira refuses the whole request when one user already holds the role.
    if let Some(present) = users.iter().find(|u| members.contains(*u)) {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &format!("User '{present}' is already a member of the project role."),
        );
    }
    members.extend(users);
    match role_json(&world, &project, id) {
        Some(role) => Json(role).into_response(),
        None => no_role(),
    }
}

async fn remove_role_actor(
    State(w): St,
    Path((project, id)): Path<(String, u64)>,
    Query(q): Params,
) -> Response {
    let mut world = w.world();
    let Some((members, _)) = world.project_roles.get_mut(&(project, id)) else {
        return no_role();
    };
    match q.get("user") {
        Some(user) if members.remove(user) => StatusCode::NO_CONTENT.into_response(),
        _ => jira_error(
            StatusCode::NOT_FOUND,
            "The actor is not in the project role.",
        ),
    }
}

fn no_group() -> Response {
    jira_error(StatusCode::NOT_FOUND, "Specified group does not exist.")
}

async fn group_members(State(w): St, Query(q): Params) -> Response {
    let world = w.world();
    let (start, limit) = offset(&world, &q);
    let Some(members) = q.get("groupId").and_then(|g| world.groups.get(g)) else {
        return no_group();
    };
    let values: Vec<Value> = members
        .iter()
        .map(|id| {
            world
                .user(id)
                .map(user_json)
                .unwrap_or(json!({"accountId": id}))
        })
        .collect();
    let (slice, is_last) = page(&values, start, limit);
    Json(json!({
        "startAt": start, "maxResults": limit, "total": values.len(),
        "isLast": is_last, "values": slice,
    }))
    .into_response()
}

async fn add_group_user(State(w): St, Query(q): Params, Json(body): Json<Value>) -> Response {
    let account = body["accountId"].as_str().unwrap_or_default().to_string();
    let mut world = w.world();
    if world.user(&account).is_none() {
        return jira_error(
            StatusCode::BAD_REQUEST,
            "Cannot add user. User does not exist.",
        );
    }
    let Some(members) = q.get("groupId").and_then(|g| world.groups.get_mut(g)) else {
        return no_group();
    };
    if !members.insert(account) {
        return jira_error(
            StatusCode::BAD_REQUEST,
            "Cannot add user. User is already a member of the group.",
        );
    }
    (
        StatusCode::CREATED,
        Json(json!({"groupId": q.get("groupId")})),
    )
        .into_response()
}

async fn remove_group_user(State(w): St, Query(q): Params) -> Response {
    let mut world = w.world();
    let account = q.get("accountId").cloned().unwrap_or_default();
    let Some(members) = q.get("groupId").and_then(|g| world.groups.get_mut(g)) else {
        return no_group();
    };
    if members.remove(&account) {
        StatusCode::OK.into_response()
    } else {
        jira_error(
            StatusCode::BAD_REQUEST,
            "Cannot remove user. User is not a member of the group.",
        )
    }
}

/// `{values, maxResults, next?}`: failures after `after`, oldest first.
async fn failed_webhooks(State(w): St, Query(q): Params) -> Response {
    let world = w.world();
    let after: i64 = q
        .get("after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MIN);
    let max = world.page_size(q.get("maxResults").and_then(|v| v.parse().ok()), 100, 100);
    let values: Vec<Value> = world
        .failed_webhooks
        .iter()
        .filter(|(_, _, _, at)| *at > after)
        .take(max)
        .map(|(id, body, url, at)| json!({"id": id, "body": body, "url": url, "failureTime": at}))
        .collect();
    let mut page = json!({"values": values, "maxResults": max});
    if let Some(last) = values.last() {
        page["next"] = json!(format!(
            "/rest/api/3/webhook/failed?after={}",
            last["failureTime"]
        ));
    }
    Json(page).into_response()
}

/// `created >= -Nd` / `created <= -Nm` clauses of a JQL query, as (at least, at most) ages.
fn created_window(jql: &str) -> (Option<chrono::Duration>, Option<chrono::Duration>) {
    let age = |op: &str| {
        let rest = jql.split(&format!("created {op} -")).nth(1)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let n: i64 = digits.parse().ok()?;
        match rest[digits.len()..].chars().next()? {
            'm' => Some(chrono::Duration::minutes(n)),
            'h' => Some(chrono::Duration::hours(n)),
            'd' => Some(chrono::Duration::days(n)),
            _ => None,
        }
    };
    (age(">="), age("<="))
}

/// The phrase of a `text ~ "\"…\""` clause (Jira's full-text search of summary, description
/// and comments), if the query has one.
fn text_phrase(jql: &str) -> Option<String> {
    let rest = jql.split("text ~ \"").nth(1)?;
    let rest = rest.strip_prefix("\\\"").unwrap_or(rest);
    let phrase: String = rest
        .chars()
        .take_while(|c| *c != '"' && *c != '\\')
        .collect();
    (!phrase.is_empty()).then(|| phrase.to_lowercase())
}

fn text_holds(issue: &super::FakeIssue, phrase: &str) -> bool {
    let description = issue.custom.get("description").map(Value::to_string);
    std::iter::once(issue.summary.clone())
        .chain(description)
        .chain(issue.comments.iter().map(|c| c.body.to_string()))
        .any(|t| t.to_lowercase().contains(phrase))
}

/// JQL search, understanding only what recovery and the lifecycle ask (a `created` window, a
/// `text ~` phrase), paged with an opaque `nextPageToken`.
async fn search_jql(State(w): St, Query(q): Params) -> Response {
    let Some(jql) = q.get("jql").filter(|j| !j.trim().is_empty()) else {
        return jira_error(StatusCode::BAD_REQUEST, "The JQL query is required.");
    };
    let (newer_than, older_than) = created_window(jql);
    let phrase = text_phrase(jql);
    let now = chrono::Utc::now();
    let world = w.world();
    let start: usize = q
        .get("nextPageToken")
        .and_then(|t| t.strip_prefix("p"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let size = world.page_size(q.get("maxResults").and_then(|v| v.parse().ok()), 50, 100);
    let issues: Vec<Value> = world
        .issues
        .values()
        .filter(|i| newer_than.is_none_or(|age| i.created >= now - age))
        .filter(|i| older_than.is_none_or(|age| i.created <= now - age))
        .filter(|i| phrase.as_deref().is_none_or(|p| text_holds(i, p)))
        .map(|i| json!({"id": i.id, "key": i.key}))
        .collect();
    let (slice, last) = page(&issues, start, size);
    let mut body = json!({"issues": slice, "isLast": last});
    if !last {
        body["nextPageToken"] = json!(format!("p{}", start + size));
    }
    Json(body).into_response()
}

/// Edits fields; only custom fields are kept (what Tollgate sets).
async fn edit_issue(State(w): St, Path(key): Path<String>, Json(body): Json<Value>) -> Response {
    let mut world = w.world();
    let Some(issue) = world.issues.get_mut(&key) else {
        return no_issue();
    };
    let Some(fields) = body["fields"].as_object() else {
        return jira_error(StatusCode::BAD_REQUEST, "No fields to edit.");
    };
    for (name, value) in fields {
        if !name.starts_with("customfield_") {
            return jira_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
                ),
            );
        }
        issue.custom.insert(name.clone(), value.clone());
    }
    StatusCode::NO_CONTENT.into_response()
}
