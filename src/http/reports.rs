//! The report API: the same reports as `tollgate report`, streamed as they are produced.
//! Admin only: the bearer token `TOLLGATE_API_TOKEN` (compared in constant time).

use axum::body::Body;
use axum::extract::{Query as Params, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::audit::report::{self, Format, Query, Report, Scope};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    resource: Option<String>,
    person: Option<String>,
    tz: Option<String>,
    format: Option<String>,
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.config.audit.api_token else {
        return Err(ApiError::Forbidden(
            "the report API is closed: set TOLLGATE_API_TOKEN to open it".into(),
        ));
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
    // Hashing both sides first makes the comparison constant-time whatever their lengths.
    let same = Sha256::digest(offered.as_bytes())
        .iter()
        .zip(Sha256::digest(token.expose().as_bytes()).iter())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "the bearer token is not valid".into(),
        ))
    }
}

fn query(params: ReportParams, period: bool) -> Result<(Query, Format), ApiError> {
    let bad = ApiError::BadRequest;
    let tz = report::parse_tz(params.tz.as_deref()).map_err(bad)?;
    let scope = if period {
        let (Some(from), Some(to)) = (params.from, params.to) else {
            return Err(ApiError::BadRequest(
                "from and to are required (YYYY-MM-DD or RFC 3339)".into(),
            ));
        };
        Scope::Period {
            from: report::parse_bound(&from, tz, false).map_err(bad)?,
            to: report::parse_bound(&to, tz, true).map_err(bad)?,
        }
    } else {
        Scope::Active
    };
    let format = Format::parse(params.format.as_deref().unwrap_or("csv")).map_err(bad)?;
    Ok((
        Query {
            scope,
            resource: params.resource,
            person: params.person,
            tz,
        },
        format,
    ))
}

fn stream(state: &AppState, query: Query, format: Format, name: &str) -> Response {
    let report = Report::new(state.store.clone(), query, format);
    let chunks = futures::stream::unfold(Some(report), |report| async move {
        let mut report = report?;
        match report.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(report))),
            Ok(None) => None,
            Err(e) => {
                // Headers are gone: the connection is cut, so a client never takes a
                // truncated export for a whole one.
                tracing::error!(error = %e, "report export failed");
                Some((Err(std::io::Error::other(e.to_string())), None))
            }
        }
    });
    let extension = match format {
        Format::Csv => "csv",
        Format::Json => "json",
    };
    Response::builder()
        .header(header::CONTENT_TYPE, format.content_type())
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"tollgate-{name}.{extension}\""),
        )
        .body(Body::from_stream(chunks))
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct EvidenceParams {
    tenant: Option<String>,
}

pub async fn evidence(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(ticket): axum::extract::Path<String>,
    Params(params): Params<EvidenceParams>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    use crate::audit::evidence::{self, EvidenceError};
    authorize(&state, &headers)?;
    let key = crate::audit::checkpoint::CheckpointKey::derive(&state.secret_key);
    match evidence::bundle(&state.store, &key, params.tenant.as_deref(), &ticket).await {
        Ok(bundle) => Ok(axum::Json(bundle)),
        Err(e @ EvidenceError::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e @ EvidenceError::Ambiguous(_)) => Err(ApiError::BadRequest(e.to_string())),
        Err(EvidenceError::Store(e)) => Err(ApiError::Store(e)),
    }
}

pub async fn access(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(params): Params<ReportParams>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let (query, format) = query(params, true)?;
    Ok(stream(&state, query, format, "access"))
}

pub async fn active(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(params): Params<ReportParams>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let (query, format) = query(params, false)?;
    Ok(stream(&state, query, format, "active"))
}
