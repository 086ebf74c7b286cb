//! `/scim/v2`: the SCIM 2.0 service provider's routes. Thin: the bearer token is checked, the
//! body read as JSON, and `scim_push` does the rest; every answer, errors included, is
//! `application/scim+json` in SCIM's shapes.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::http::Web;
use crate::scim::ScimError;
use crate::scim::discovery;
use crate::scim::resource::{self, Kind, LIST_SCHEMA, Projection};
use crate::scim_push::{self, ListQuery, Pusher};
use crate::state::AppState;
use crate::store::scim_resources::Row;

pub const CONTENT_TYPE: &str = "application/scim+json";

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema))
        .route("/Bulk", post(bulk))
        .route("/.search", post(search_all))
        .route("/{endpoint}", get(list).post(create))
        .route("/{endpoint}/.search", post(search))
        .route(
            "/{endpoint}/{id}",
            get(read).put(replace).patch(patch).delete(delete),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        if self.status >= 500 {
            tracing::error!(status = self.status, detail = %self.detail, "SCIM request failed");
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        reply(status, &self.body())
    }
}

fn reply(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn base(state: &AppState) -> String {
    format!(
        "{}/scim/v2",
        state.config.server.base_url.trim_end_matches('/')
    )
}

/// The identity provider, by its bearer token (only when the chart is pushed here).
pub struct ScimAuth(pub Pusher);

impl FromRequestParts<Web> for ScimAuth {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &Web) -> Result<Self, ScimError> {
        if scim_push::person_key(state).is_none() {
            return Err(ScimError::not_found(
                "SCIM push is not enabled here (TOLLGATE_IDP_KIND=scim_push)",
            ));
        }
        let offered = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.get(..7)
                    .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                    .map(|_| v[7..].trim())
            })
            .ok_or_else(|| ScimError::unauthorized("a bearer token is required"))?;
        scim_push::tokens::authenticate(state, offered)
            .await
            .map(Self)
    }
}

fn kind(endpoint: &str) -> Result<Kind, ScimError> {
    match endpoint {
        "Users" => Ok(Kind::User),
        "Groups" => Ok(Kind::Group),
        other => Err(ScimError::not_found(format!(
            "no resource type at /{other} (there are /Users and /Groups)"
        ))),
    }
}

fn body(bytes: &Bytes) -> Result<Value, ScimError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ScimError> {
    params
        .get(name)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| ScimError::invalid_value(format!("`{name}` is a number, not `{v}`")))
        })
        .transpose()
}

fn projection(params: &HashMap<String, String>) -> Projection {
    Projection::parse(
        params.get("attributes").map(String::as_str),
        params.get("excludedAttributes").map(String::as_str),
    )
}

fn represent(state: &AppState, kind: Kind, row: &Row) -> Value {
    let base = base(state);
    resource::with_meta(
        row.resource.clone(),
        &resource::Meta {
            kind,
            id: &row.id,
            created: row.created_at,
            modified: row.updated_at,
            version: row.version,
            base: &base,
        },
    )
}

fn one(
    state: &AppState,
    kind: Kind,
    row: &Row,
    status: StatusCode,
    projection: &Projection,
) -> Response {
    let mut response = reply(status, &projection.apply(represent(state, kind, row)));
    if let Ok(etag) = HeaderValue::from_str(&resource::etag(row.version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    if status == StatusCode::CREATED
        && let Ok(location) =
            HeaderValue::from_str(&resource::location(&base(state), kind, &row.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

async fn list_reply(
    state: &AppState,
    kind: Kind,
    query: ListQuery,
    projection: Projection,
) -> Result<Response, ScimError> {
    let listed = scim_push::list(state, kind, &query).await?;
    let resources: Vec<Value> = listed
        .rows
        .iter()
        .map(|row| projection.apply(represent(state, kind, row)))
        .collect();
    Ok(list_response(listed.total, listed.start_index, resources))
}

async fn list(
    ScimAuth(_): ScimAuth,
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let kind = kind(&endpoint)?;
    let query = ListQuery {
        filter: params.get("filter").cloned(),
        start_index: number(&params, "startIndex")?,
        count: number(&params, "count")?,
    };
    list_reply(&state, kind, query, projection(&params)).await
}

/// `POST /Users/.search`: a list whose parameters come in the body.
async fn search(
    ScimAuth(_): ScimAuth,
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let kind = kind(&endpoint)?;
    let (query, projection) = search_request(&body(&bytes)?);
    list_reply(&state, kind, query, projection).await
}

/// `POST /.search`: users and groups together (users first), paged as one list.
async fn search_all(
    ScimAuth(_): ScimAuth,
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let (query, projection) = search_request(&body(&bytes)?);
    let mut all = Vec::new();
    for kind in [Kind::User, Kind::Group] {
        let listed = scim_push::list(&state, kind, &query.everything()).await?;
        all.extend(listed.rows.into_iter().map(|row| (kind, row)));
    }
    let total = all.len();
    let (start, page) = query.page(all);
    let resources: Vec<Value> = page
        .iter()
        .map(|(kind, row)| projection.apply(represent(&state, *kind, row)))
        .collect();
    Ok(list_response(total, start, resources))
}

/// A SearchRequest's parameters (RFC 7644 §3.4.3).
fn search_request(request: &Value) -> (ListQuery, Projection) {
    let text = |name: &str| -> Option<String> {
        match request.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        }
    };
    let int = |name: &str| request.get(name).and_then(Value::as_i64);
    let query = ListQuery {
        filter: text("filter"),
        start_index: int("startIndex"),
        count: int("count"),
    };
    let projection = Projection::parse(
        text("attributes").as_deref(),
        text("excludedAttributes").as_deref(),
    );
    (query, projection)
}

async fn read(
    ScimAuth(_): ScimAuth,
    State(state): State<AppState>,
    Path((endpoint, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let kind = kind(&endpoint)?;
    let row = scim_push::get(&state, kind, &id).await?;
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == resource::etag(row.version))
        });
    if unchanged {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    Ok(one(
        &state,
        kind,
        &row,
        StatusCode::OK,
        &projection(&params),
    ))
}

async fn create(
    ScimAuth(pusher): ScimAuth,
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let kind = kind(&endpoint)?;
    let row = scim_push::create(&state, &pusher, kind, body(&bytes)?).await?;
    Ok(one(
        &state,
        kind,
        &row,
        StatusCode::CREATED,
        &projection(&params),
    ))
}

async fn replace(
    ScimAuth(pusher): ScimAuth,
    State(state): State<AppState>,
    Path((endpoint, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let kind = kind(&endpoint)?;
    let row = scim_push::replace(
        &state,
        &pusher,
        kind,
        &id,
        body(&bytes)?,
        if_match(&headers),
    )
    .await?;
    Ok(one(
        &state,
        kind,
        &row,
        StatusCode::OK,
        &projection(&params),
    ))
}

async fn patch(
    ScimAuth(pusher): ScimAuth,
    State(state): State<AppState>,
    Path((endpoint, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let kind = kind(&endpoint)?;
    let row = scim_push::patch(
        &state,
        &pusher,
        kind,
        &id,
        &body(&bytes)?,
        if_match(&headers),
    )
    .await?;
    Ok(one(
        &state,
        kind,
        &row,
        StatusCode::OK,
        &projection(&params),
    ))
}

async fn delete(
    ScimAuth(pusher): ScimAuth,
    State(state): State<AppState>,
    Path((endpoint, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let kind = kind(&endpoint)?;
    scim_push::delete(&state, &pusher, kind, &id, if_match(&headers)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn service_provider_config(ScimAuth(_): ScimAuth, State(state): State<AppState>) -> Response {
    reply(
        StatusCode::OK,
        &discovery::service_provider_config(&base(&state)),
    )
}

fn listing(items: Vec<Value>) -> Response {
    list_response(items.len(), 1, items)
}

/// A ListResponse: one page of `total` matches, from `start`.
fn list_response(total: usize, start: usize, resources: Vec<Value>) -> Response {
    reply(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

async fn resource_types(ScimAuth(_): ScimAuth, State(state): State<AppState>) -> Response {
    listing(discovery::resource_types(&base(&state)))
}

async fn resource_type(
    ScimAuth(_): ScimAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    discovery::resource_types(&base(&state))
        .into_iter()
        .find(|rt| rt["id"] == id.as_str())
        .map(|rt| reply(StatusCode::OK, &rt))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {id}")))
}

async fn schemas(ScimAuth(_): ScimAuth, State(state): State<AppState>) -> Response {
    listing(discovery::schemas(&base(&state)))
}

async fn schema(
    ScimAuth(_): ScimAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    discovery::schemas(&base(&state))
        .into_iter()
        .find(|s| s["id"] == id.as_str())
        .map(|s| reply(StatusCode::OK, &s))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id}")))
}

async fn bulk(ScimAuth(_): ScimAuth) -> ScimError {
    ScimError::not_implemented("bulk operations are not supported (ServiceProviderConfig says so)")
}

async fn no_route() -> ScimError {
    ScimError::not_found("no such SCIM endpoint")
}

async fn no_method() -> ScimError {
    ScimError {
        status: 405,
        scim_type: None,
        detail: "this method is not supported on this endpoint".into(),
    }
}
