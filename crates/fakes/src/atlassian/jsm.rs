//! Jira Service Management (`/rest/servicedeskapi`): requests, comments, participants,
//! approvals, organizations. Pages are `{size, start, limit, isLastPage, values}`, at most 50.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::jira::user_json;
use super::{APP_ACCOUNT, Access, FakeComment, Ops, Scope, SharedWorld, World, page};

type Params = Query<HashMap<String, String>>;
type St = State<SharedWorld>;

pub fn ops() -> Ops {
    use Access::Connect;
    const R: &str = "/rest/servicedeskapi/request/{issueIdOrKey}";
    const O: &str = "/rest/servicedeskapi/organization/{organizationId}/user";
    Ops::default()
        .op(Method::GET, R, Connect(Scope::Read), get_request)
        .op(
            Method::POST,
            "/rest/servicedeskapi/request",
            Connect(Scope::Write),
            create_request,
        )
        .op(
            Method::POST,
            "/rest/servicedeskapi/request/{issueIdOrKey}/comment",
            Connect(Scope::Write),
            add_comment,
        )
        .op(
            Method::GET,
            "/rest/servicedeskapi/request/{issueIdOrKey}/participant",
            Connect(Scope::Read),
            participants,
        )
        .op(
            Method::POST,
            "/rest/servicedeskapi/request/{issueIdOrKey}/participant",
            Connect(Scope::Write),
            add_participants,
        )
        .op(
            Method::GET,
            "/rest/servicedeskapi/request/{issueIdOrKey}/approval",
            Connect(Scope::Read),
            approvals,
        )
        .op(
            Method::GET,
            "/rest/servicedeskapi/organization",
            Connect(Scope::Read),
            organizations,
        )
        .op(Method::GET, O, Connect(Scope::Read), organization_users)
        .op(
            Method::POST,
            O,
            Connect(Scope::Admin),
            add_organization_users,
        )
        .op(
            Method::DELETE,
            O,
            Connect(Scope::Delete),
            remove_organization_users,
        )
}

/// JSM's error body.
fn jsm_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"errorMessage": message, "i18nErrorMessage": {"i18nKey": "sd.error", "parameters": []}})),
    )
        .into_response()
}

fn no_request() -> Response {
    jsm_error(
        StatusCode::NOT_FOUND,
        "The request could not be found or you do not have permission to view it.",
    )
}

fn paged(world: &World, values: &[Value], q: &HashMap<String, String>) -> Value {
    let start = q.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit = world.page_size(q.get("limit").and_then(|v| v.parse().ok()), 50, 50);
    let (slice, last) = page(values, start, limit);
    json!({"size": slice.len(), "start": start, "limit": limit, "isLastPage": last, "values": slice})
}

async fn get_request(State(w): St, Path(key): Path<String>) -> Response {
    let world = w.world();
    let Some(issue) = world.issues.get(&key) else {
        return no_request();
    };
    let reporter = world
        .user(&issue.reporter)
        .map(user_json)
        .unwrap_or(json!({"accountId": issue.reporter}));
    let fields: Vec<Value> = issue
        .custom
        .iter()
        .map(|(id, value)| json!({"fieldId": id, "label": id, "value": value}))
        .collect();
    Json(json!({
        "issueId": issue.id,
        "issueKey": issue.key,
        "requestTypeId": issue.request_type_id,
        "requestType": {"id": issue.request_type_id, "name": issue.request_type_name},
        "serviceDeskId": issue.service_desk_id,
        "reporter": reporter,
        "requestFieldValues": fields,
        "currentStatus": {"status": issue.status},
    }))
    .into_response()
}

/// `createCustomerRequest`: a request of a known type in its service desk, raised by the app
/// or on behalf of a known account; the summary is required. Each call raises a new request
/// (JSM has no idempotency key).
async fn create_request(State(w): St, Json(body): Json<Value>) -> Response {
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str);
    let (Some(desk), Some(type_id)) = (text("/serviceDeskId"), text("/requestTypeId")) else {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            "The serviceDeskId and requestTypeId are required.",
        );
    };
    let Some(summary) = text("/requestFieldValues/summary").filter(|s| !s.trim().is_empty()) else {
        return jsm_error(StatusCode::BAD_REQUEST, "Summary: You must enter a value.");
    };
    let mut world = w.world();
    let Some((type_desk, type_name)) = world.request_types.get(type_id).cloned() else {
        return jsm_error(
            StatusCode::NOT_FOUND,
            &format!("The request type {type_id} does not exist."),
        );
    };
    if type_desk != desk {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            &format!("The request type {type_id} does not belong to service desk {desk}."),
        );
    }
    let Some(project) = world
        .issues
        .values()
        .find(|i| i.service_desk_id == desk)
        .map(|i| i.project_key.clone())
    else {
        return jsm_error(
            StatusCode::NOT_FOUND,
            &format!("The service desk {desk} does not exist."),
        );
    };
    let reporter = match text("/raiseOnBehalfOf") {
        Some(account) if world.user(account).is_none() => {
            return jsm_error(
                StatusCode::BAD_REQUEST,
                &format!("The user {account} does not exist or is not a customer."),
            );
        }
        Some(account) => account.to_string(),
        None => APP_ACCOUNT.0.to_string(),
    };
    let number = world
        .issues
        .values()
        .filter(|i| i.project_key == project)
        .count()
        + 100;
    let key = format!("{project}-{number}");
    let issue = world.add_issue(&key, &reporter);
    issue.summary = summary.to_string();
    issue.status = "Open".into();
    issue.custom = serde_json::Map::new();
    if let Some(description) = text("/requestFieldValues/description") {
        issue
            .custom
            .insert("description".into(), json!(description));
    }
    issue.request_type_id = type_id.to_string();
    issue.request_type_name = type_name;
    issue.service_desk_id = desk.to_string();
    let (id, key) = (issue.id.clone(), issue.key.clone());
    (
        StatusCode::CREATED,
        Json(json!({
            "issueId": id, "issueKey": key, "requestTypeId": type_id, "serviceDeskId": desk,
            "reporter": {"accountId": reporter},
            "currentStatus": {"status": "Open"},
        })),
    )
        .into_response()
}

async fn add_comment(State(w): St, Path(key): Path<String>, Json(body): Json<Value>) -> Response {
    let Some(text) = body["body"].as_str().filter(|t| !t.trim().is_empty()) else {
        return jsm_error(StatusCode::BAD_REQUEST, "The comment body is required.");
    };
    let public = body["public"].as_bool().unwrap_or(true);
    let mut world = w.world();
    w.check_names(&world, &key, text);
    let id = world.next_id();
    let Some(issue) = world.issues.get_mut(&key) else {
        return no_request();
    };
    issue.comments.push(FakeComment {
        id: id.clone(),
        author: APP_ACCOUNT.0.to_string(),
        body: json!(text),
        public,
        created: chrono::Utc::now(),
        properties: Vec::new(),
    });
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "body": text, "public": public})),
    )
        .into_response()
}

async fn participants(State(w): St, Path(key): Path<String>, Query(q): Params) -> Response {
    let world = w.world();
    let Some(issue) = world.issues.get(&key) else {
        return no_request();
    };
    let values: Vec<Value> = issue
        .participants
        .iter()
        .filter_map(|id| world.user(id).map(user_json))
        .collect();
    Json(paged(&world, &values, &q)).into_response()
}

async fn add_participants(
    State(w): St,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let ids: Vec<String> = body["accountIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut world = w.world();
    if let Some(unknown) = ids.iter().find(|id| world.user(id).is_none()) {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            &format!("The user {unknown} does not exist."),
        );
    }
    let Some(issue) = world.issues.get_mut(&key) else {
        return no_request();
    };
    for id in ids {
        if !issue.participants.contains(&id) {
            issue.participants.push(id);
        }
    }
    let participants = issue.participants.clone();
    let values: Vec<Value> = participants
        .iter()
        .filter_map(|id| world.user(id).map(user_json))
        .collect();
    Json(paged(&world, &values, &HashMap::new())).into_response()
}

async fn approvals(State(w): St, Path(key): Path<String>, Query(q): Params) -> Response {
    let world = w.world();
    match world.issues.get(&key) {
        Some(issue) => {
            // JSM names each approver in full (a UserDTO), whatever the test wrote.
            let approvals: Vec<Value> = issue
                .approvals
                .iter()
                .cloned()
                .map(|mut approval| {
                    for approver in approval["approvers"].as_array_mut().into_iter().flatten() {
                        let user = approver
                            .pointer("/approver/accountId")
                            .and_then(Value::as_str)
                            .and_then(|id| world.user(id));
                        if let Some(user) = user
                            && approver.pointer("/approver/displayName").is_none()
                        {
                            approver["approver"] = user_json(user);
                        }
                    }
                    approval
                })
                .collect();
            Json(paged(&world, &approvals, &q)).into_response()
        }
        None => no_request(),
    }
}

fn no_organization() -> Response {
    jsm_error(StatusCode::NOT_FOUND, "The organization does not exist.")
}

async fn organizations(State(w): St, Query(q): Params) -> Response {
    let world = w.world();
    let values: Vec<Value> = world
        .organizations
        .keys()
        .map(|id| {
            let name = world
                .organization_names
                .get(id)
                .cloned()
                .unwrap_or_default();
            json!({"id": id.to_string(), "name": name})
        })
        .collect();
    Json(paged(&world, &values, &q)).into_response()
}

async fn organization_users(State(w): St, Path(id): Path<u64>, Query(q): Params) -> Response {
    let world = w.world();
    let Some(members) = world.organizations.get(&id) else {
        return no_organization();
    };
    let values: Vec<Value> = members
        .iter()
        .filter_map(|id| world.user(id).map(user_json))
        .collect();
    Json(paged(&world, &values, &q)).into_response()
}

fn account_ids(body: &Value) -> Vec<String> {
    body["accountIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// JSM answers 204 whether or not the people were already members.
async fn add_organization_users(
    State(w): St,
    Path(id): Path<u64>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = w.world();
    let ids = account_ids(&body);
    if let Some(unknown) = ids.iter().find(|a| world.user(a).is_none()) {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            &format!("The user {unknown} does not exist."),
        );
    }
    let Some(members) = world.organizations.get_mut(&id) else {
        return no_organization();
    };
    members.extend(ids);
    StatusCode::NO_CONTENT.into_response()
}

async fn remove_organization_users(
    State(w): St,
    Path(id): Path<u64>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = w.world();
    let Some(members) = world.organizations.get_mut(&id) else {
        return no_organization();
    };
    for account in account_ids(&body) {
        members.remove(&account);
    }
    StatusCode::NO_CONTENT.into_response()
}
