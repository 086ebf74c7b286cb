//! The report API: the same reports as `tollgate report`, streamed as they are produced.
//! Admin only: the operator's bearer token, or a Connect token of a Jira administrator, who
//! sees their own site only.

use axum::body::Body;
use axum::extract::{FromRequestParts, Query as Params, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;

use crate::audit::report::{self, Format, Query, Report, Scope};
use crate::connect::auth::{QshRule, Verified};
use crate::http::Web;
use crate::http::connect;
use crate::http::error::ApiError;
use crate::ids::TenantKey;
use crate::orgchart::AccountId;
use crate::state::AppState;
use crate::tenant::Product;

#[derive(Debug, Deserialize)]
pub struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    resource: Option<String>,
    person: Option<String>,
    tz: Option<String>,
    format: Option<String>,
    /// The operator may limit a report to one site (its client key).
    tenant: Option<String>,
}

/// Who reads reports: the operator, with the bearer token `TOLLGATE_API_TOKEN`, sees every
/// site; a Jira administrator, with a Connect token from their site, sees that site only.
#[derive(Debug)]
pub enum Reader {
    Operator,
    SiteAdmin {
        tenant: TenantKey,
        account: AccountId,
    },
}

impl Reader {
    /// The site a read is limited to: the administrator's own, or what the operator asked.
    fn tenant(&self, asked: Option<String>) -> Result<Option<TenantKey>, ApiError> {
        let asked = asked
            .map(|key| TenantKey::parse(&key))
            .transpose()
            .map_err(ApiError::BadRequest)?;
        match self {
            Self::Operator => Ok(asked),
            Self::SiteAdmin { tenant, .. } => match asked {
                Some(other) if other != *tenant => Err(ApiError::Forbidden(
                    "a site's administrators read that site's reports only".into(),
                )),
                _ => Ok(Some(tenant.clone())),
            },
        }
    }

    fn log(&self, what: &str) {
        match self {
            Self::Operator => tracing::info!(reader = "api token", what, "report read"),
            Self::SiteAdmin { tenant, account } => {
                tracing::info!(reader = %account.0, tenant = %tenant, what, "report read");
            }
        }
    }
}

impl FromRequestParts<Web> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Web) -> Result<Self, ApiError> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Some(token) = authorization.and_then(|v| v.strip_prefix("Bearer ")) {
            return operator(state, token).map(|()| Self::Operator);
        }
        let connect_token = authorization.is_some_and(|v| v.starts_with("JWT "))
            || parts
                .uri
                .query()
                .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("jwt=")));
        if !connect_token {
            return Err(ApiError::Unauthorized(
                "a bearer token, or a Connect token of a Jira administrator, is required".into(),
            ));
        }
        let verified = connect::verify_parts(parts, state, QshRule::AllowContext, None).await?;
        site_admin(state, verified).await
    }
}

pub(super) fn operator(state: &AppState, offered: &str) -> Result<(), ApiError> {
    let Some(token) = &state.config.audit.api_token else {
        return Err(ApiError::Forbidden(
            "no API token is configured (TOLLGATE_API_TOKEN); Jira administrators can use a \
             Connect token"
                .into(),
        ));
    };
    if crate::secrets::same_secret(offered, token.expose()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "the bearer token is not valid".into(),
        ))
    }
}

/// Asks the site, at every read, whether the token's user administers Jira: an administrator
/// removed a minute ago reads nothing more.
async fn site_admin(state: &AppState, verified: Verified) -> Result<Reader, ApiError> {
    let tenant = verified.tenant;
    if tenant.product != Product::Jira {
        return Err(ApiError::Forbidden(
            "reports are read through the Jira app".into(),
        ));
    }
    let Some(account) = verified.account_id else {
        return Err(ApiError::Forbidden("the token names no user".into()));
    };
    let site = state.site_of(&tenant).await.map_err(|e| {
        tracing::warn!(error = %e, tenant = %tenant.client_key, "no way to call the site");
        ApiError::Unavailable("Jira cannot be called for this site now; try again".into())
    })?;
    match state.atlassian.is_jira_admin(&site, &account).await {
        Ok(true) => Ok(Reader::SiteAdmin {
            tenant: tenant.client_key,
            account,
        }),
        Ok(false) => Err(ApiError::Forbidden(
            "only Jira administrators can read Tollgate's reports".into(),
        )),
        Err(e) if !e.is_retryable() => {
            // Jira refused the question (an account it does not know): not an administrator.
            tracing::warn!(error = %e, tenant = %tenant.client_key, "admin check refused");
            Err(ApiError::Forbidden(
                "Jira did not confirm that you are an administrator".into(),
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, tenant = %tenant.client_key, "admin check failed");
            Err(ApiError::Unavailable(
                "Jira could not be asked whether you are an administrator; try again".into(),
            ))
        }
    }
}

fn query(reader: &Reader, params: ReportParams, period: bool) -> Result<(Query, Format), ApiError> {
    let tenant = reader.tenant(params.tenant)?;
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
            tenant,
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
    reader: Reader,
    axum::extract::Path(ticket): axum::extract::Path<String>,
    Params(params): Params<EvidenceParams>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    use crate::audit::evidence::{self, EvidenceError};
    let ticket = crate::ids::TicketKey::parse(&ticket).map_err(ApiError::BadRequest)?;
    let tenant = reader.tenant(params.tenant)?;
    reader.log("evidence");
    let key = crate::audit::checkpoint::CheckpointKey::derive(&state.secret_key);
    match evidence::bundle(&state.store, &key, tenant.as_ref(), &ticket).await {
        Ok(bundle) => Ok(axum::Json(bundle)),
        Err(e @ EvidenceError::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e @ EvidenceError::Ambiguous(_)) => Err(ApiError::BadRequest(e.to_string())),
        Err(EvidenceError::Store(e)) => Err(ApiError::Store(e)),
    }
}

pub async fn access(
    State(state): State<AppState>,
    reader: Reader,
    Params(params): Params<ReportParams>,
) -> Result<Response, ApiError> {
    let (query, format) = query(&reader, params, true)?;
    reader.log("access");
    Ok(stream(&state, query, format, "access"))
}

pub async fn active(
    State(state): State<AppState>,
    reader: Reader,
    Params(params): Params<ReportParams>,
) -> Result<Response, ApiError> {
    let (query, format) = query(&reader, params, false)?;
    reader.log("active");
    Ok(stream(&state, query, format, "active"))
}
