//! The Forge invocation token (FIT): `Authorization: Bearer …` on every call Forge makes to a
//! remote, RS256-signed with a key from Forge's JWKS. It says which app, which installation,
//! and where to call the product back (`app.apiBaseUrl`).

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::keys::{ForgeKeys, KeyError};
use crate::ids::{AccountId, TenantKey};

pub const ISSUER: &str = "forge/invocation-token";
pub use crate::ids::APP_ARI_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("no bearer token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0} is not accepted (RS256 only)")]
    Algorithm(String),
    #[error("no `kid` in the token header")]
    MissingKid,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("bad signature")]
    Signature,
    #[error("issuer {0:?} is not {ISSUER}")]
    Issuer(Option<String>),
    #[error("audience {0:?} is not this app")]
    Audience(Vec<String>),
    #[error("expired at {0}")]
    Expired(i64),
    #[error("not valid before {0}")]
    NotYet(i64),
    #[error("the token has no `{0}`")]
    MissingClaim(&'static str),
}

impl FitError {
    /// Whether the fault is ours (the key set could not be read), not the caller's.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Key(KeyError::Unavailable(_)))
    }
}

/// What a verified token says about the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `ari:cloud:ecosystem::installation/…`; also the tenant key of a site that came by
    /// Forge alone (no Connect install to continue).
    pub installation_id: TenantKey,
    /// `https://api.atlassian.com/ex/jira/{cloudId}`: where product calls go.
    pub api_base_url: String,
    pub cloud_id: String,
    /// The site, when the token names it (`context.siteUrl`).
    pub site_url: Option<String>,
    /// The user the invocation is for, if any.
    pub principal: Option<AccountId>,
    pub expires_at: i64,
}

/// The `aud` a token for this app carries, from `TOLLGATE_FORGE_APP_ID` (a bare id or the ARI).
pub fn app_ari(app_id: &str) -> String {
    if app_id.starts_with(APP_ARI_PREFIX) {
        app_id.to_string()
    } else {
        format!("{APP_ARI_PREFIX}{app_id}")
    }
}

pub struct Expected<'a> {
    pub app_ari: &'a str,
    pub now: DateTime<Utc>,
    pub leeway_seconds: i64,
}

pub async fn verify(
    keys: &ForgeKeys,
    authorization: Option<&str>,
    expected: &Expected<'_>,
) -> Result<Invocation, FitError> {
    let token = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(FitError::Missing)?;
    // `none`, unknown algorithms and garbage fail here.
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| FitError::Malformed(e.to_string()))?;
    // Fixed, not taken from the token: an HS256 token "signed" with the public key is refused.
    if header.alg != Algorithm::RS256 {
        return Err(FitError::Algorithm(format!("{:?}", header.alg)));
    }
    let kid = header.kid.ok_or(FitError::MissingKid)?;
    let key = keys.get(&kid).await?;
    let mut validation = Validation::new(Algorithm::RS256);
    // Times against the application's clock, audience and issuer below, with clear errors.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|_| FitError::Signature)?
        .claims;
    check(&claims, expected)
}

/// The claim checks, apart from the signature (unit-tested on their own).
pub fn check(claims: &Value, expected: &Expected<'_>) -> Result<Invocation, FitError> {
    let text = |pointer: &str| claims.pointer(pointer).and_then(Value::as_str);
    let iss = text("/iss");
    if iss != Some(ISSUER) {
        return Err(FitError::Issuer(iss.map(str::to_string)));
    }
    let audiences: Vec<String> = match &claims["aud"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    // The app the token is for must be us, in `aud` and in `app.id` alike.
    if !audiences.iter().any(|a| a == expected.app_ari)
        || text("/app/id").is_some_and(|id| id != expected.app_ari)
    {
        return Err(FitError::Audience(audiences));
    }
    let now = expected.now.timestamp();
    let exp = claims["exp"]
        .as_i64()
        .ok_or(FitError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(expected.leeway_seconds) {
        return Err(FitError::Expired(exp));
    }
    if let Some(nbf) = claims["nbf"].as_i64()
        && now.saturating_add(expected.leeway_seconds) < nbf
    {
        return Err(FitError::NotYet(nbf));
    }
    let installation_id = text("/app/installationId")
        .or_else(|| text("/app/installation/id"))
        .filter(|id| id.len() <= 200)
        .and_then(|id| TenantKey::parse(id).ok())
        .ok_or(FitError::MissingClaim("app.installationId"))?;
    let api_base_url = text("/app/apiBaseUrl")
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
        .ok_or(FitError::MissingClaim("app.apiBaseUrl"))?
        .trim_end_matches('/')
        .to_string();
    let cloud_id = text("/context/cloudId")
        .map(str::to_string)
        .or_else(|| cloud_id_of(&api_base_url))
        .ok_or(FitError::MissingClaim("cloudId"))?;
    Ok(Invocation {
        installation_id,
        api_base_url,
        cloud_id,
        site_url: text("/context/siteUrl").map(|u| u.trim_end_matches('/').to_string()),
        principal: text("/principal")
            .filter(|p| !p.is_empty())
            .map(|p| AccountId(p.to_string())),
        expires_at: exp,
    })
}

/// `…/ex/{product}/{cloudId}` → `cloudId`.
fn cloud_id_of(api_base_url: &str) -> Option<String> {
    let mut segments = api_base_url.rsplit('/');
    let id = segments.next()?;
    let _product = segments.next()?;
    (segments.next()? == "ex" && !id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const APP: &str = "ari:cloud:ecosystem::app/0f6e5e67-2a39-4b7b-9d0c-4c3b0f0e6a11";

    fn expected(now: i64) -> Expected<'static> {
        Expected {
            app_ari: APP,
            now: DateTime::from_timestamp(now, 0).unwrap_or_default(),
            leeway_seconds: 0,
        }
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": APP, "iat": 1000, "nbf": 1000, "exp": 1300,
            "app": {
                "id": APP,
                "installationId": "ari:cloud:ecosystem::installation/5e0c",
                "apiBaseUrl": "https://api.atlassian.com/ex/jira/a1b2-c3/",
            },
            "principal": "557058:abc",
        })
    }

    #[test]
    fn a_token_for_this_app_names_its_installation_and_site() {
        let invocation = check(&claims(), &expected(1100)).expect("valid");
        assert_eq!(
            invocation.installation_id,
            "ari:cloud:ecosystem::installation/5e0c"
        );
        assert_eq!(
            invocation.api_base_url,
            "https://api.atlassian.com/ex/jira/a1b2-c3"
        );
        assert_eq!(invocation.cloud_id, "a1b2-c3");
        assert_eq!(invocation.principal, Some(AccountId("557058:abc".into())));
    }

    #[test]
    fn wrong_issuer_audience_app_and_times_are_refused() {
        let with = |pointer: &str, value: Value| {
            let mut c = claims();
            if let Some(slot) = c.pointer_mut(pointer) {
                *slot = value;
            }
            c
        };
        let other = "ari:cloud:ecosystem::app/other";
        assert!(matches!(
            check(&with("/iss", json!("someone")), &expected(1100)),
            Err(FitError::Issuer(_))
        ));
        assert!(matches!(
            check(&with("/aud", json!(other)), &expected(1100)),
            Err(FitError::Audience(_))
        ));
        assert!(matches!(
            check(&with("/app/id", json!(other)), &expected(1100)),
            Err(FitError::Audience(_))
        ));
        assert!(matches!(
            check(&claims(), &expected(1300)),
            Err(FitError::Expired(1300))
        ));
        assert!(matches!(
            check(&claims(), &expected(900)),
            Err(FitError::NotYet(1000))
        ));
        assert!(matches!(
            check(&with("/app/apiBaseUrl", json!("ftp://x")), &expected(1100)),
            Err(FitError::MissingClaim("app.apiBaseUrl"))
        ));
        // `aud` as a list is fine when this app is in it.
        assert!(check(&with("/aud", json!([other, APP])), &expected(1100)).is_ok());
    }
}
