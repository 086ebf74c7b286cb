//! Verifying what Atlassian sends: HS256 tokens on every Connect route, RS256 signed installs.

use crate::ingress::sha256_hex;
use chrono::{DateTime, Utc};

use super::keys::KeyError;
use super::tenant_cache::TenantCache;
use crate::atlassian::jwt::{self, Claims, TokenError};
use crate::atlassian::qsh;
use crate::ids::{AccountId, TenantKey};
use crate::secrets::SecretKey;
use crate::store::{Store, StoreError};
use crate::tenant::Tenant;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request is not what it claims: answered 401, the reason only logged.
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("install key unavailable: {0}")]
    Keys(KeyError),
}

impl From<KeyError> for AuthError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::BadKid(kid) | KeyError::Unknown(kid) => {
                AuthError::Token(TokenError::UnknownKid(kid))
            }
            other => AuthError::Keys(other),
        }
    }
}

/// Whether a route accepts the literal `qsh: "context-qsh"` of tokens from our own iframes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QshRule {
    /// The token must be bound to this exact request.
    Exact,
    /// Also accept context tokens (`AP.context.getToken()`), for calls from our pages.
    AllowContext,
}

/// What a handler learns from a verified request.
#[derive(Debug, Clone)]
pub struct Verified {
    pub tenant: Tenant,
    pub account_id: Option<AccountId>,
    pub claims: Claims,
}

/// The parts of a request the checks need.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// Path and query as received.
    pub path_and_query: &'a str,
    pub authorization: Option<&'a str>,
    /// An `application/x-www-form-urlencoded` body, if the request has one.
    pub form_body: Option<&'a str>,
}

impl RequestParts<'_> {
    fn query(&self) -> Option<&str> {
        self.path_and_query.split_once('?').map(|(_, q)| q)
    }
}

/// Settings the checks need.
#[derive(Debug, Clone)]
pub struct Checks<'a> {
    /// Our base URL's path (`/tollgate` behind a prefixing proxy), stripped before hashing.
    pub base_path: &'a str,
    pub leeway_seconds: i64,
    pub now: DateTime<Utc>,
}

/// Verifies an HS256 Connect token against the tenant it names.
pub async fn verify_request(
    store: &Store,
    secret_key: &SecretKey,
    cache: &TenantCache,
    request: &RequestParts<'_>,
    checks: &Checks<'_>,
    rule: QshRule,
) -> Result<Verified, AuthError> {
    let (token, _) = jwt::extract(request.authorization, request.query(), request.form_body)?;
    let (header, unverified) = jwt::peek(&token)?;
    if header.alg != jsonwebtoken::Algorithm::HS256 {
        return Err(TokenError::Algorithm(format!("{:?}", header.alg)).into());
    }
    unverified
        .iss
        .as_ref()
        .ok_or(TokenError::MissingClaim("iss"))?;
    let claimed = unverified
        .client_key()
        .ok_or(TokenError::MissingClaim("iss"))?;
    let unknown = || TokenError::UnknownTenant(claimed.clone());
    let client_key = TenantKey::parse(&claimed).map_err(|_| unknown())?;
    let mut found = cache
        .get(store, secret_key, &client_key, false)
        .await?
        .ok_or_else(unknown)?;
    let claims = match jwt::verify_hs256(&token, &found.secret) {
        // The secret may have been rotated by a reinstall seen by another replica.
        Err(TokenError::Signature) if found.from_cache => {
            found = cache
                .get(store, secret_key, &client_key, true)
                .await?
                .ok_or_else(unknown)?;
            jwt::verify_hs256(&token, &found.secret)?
        }
        other => other?,
    };
    let tenant = found.tenant;
    jwt::check_expiry(&claims, checks.now, checks.leeway_seconds)?;
    check_qsh(&claims, request, checks, rule)?;
    // Whether the tenant's state allows the request is the caller's decision: lifecycle
    // callbacks must verify for disabled tenants too.
    Ok(Verified {
        account_id: claims.account_id().map(AccountId),
        tenant,
        claims,
    })
}

fn check_qsh(
    claims: &Claims,
    request: &RequestParts<'_>,
    checks: &Checks<'_>,
    rule: QshRule,
) -> Result<(), TokenError> {
    let claimed = claims
        .qsh
        .as_deref()
        .ok_or(TokenError::MissingClaim("qsh"))?;
    if claimed == qsh::CONTEXT_QSH {
        return match rule {
            QshRule::AllowContext => Ok(()),
            QshRule::Exact => Err(TokenError::ContextQshNotAllowed),
        };
    }
    let expected = qsh::qsh(request.method, request.path_and_query, checks.base_path);
    if constant_time_eq(claimed.as_bytes(), expected.as_bytes()) {
        return Ok(());
    }
    // ACE's `checkBodyForParams`: a form POST with no query may have hashed its body fields.
    if let (Some(body), None) = (request.form_body, request.query()) {
        let path = request.path_and_query;
        let with_body = qsh::qsh(request.method, &format!("{path}?{body}"), checks.base_path);
        if constant_time_eq(claimed.as_bytes(), with_body.as_bytes()) {
            return Ok(());
        }
    }
    Err(TokenError::Qsh)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// A verified signed-install (or uninstall) token.
#[derive(Debug, Clone)]
pub struct VerifiedInstall {
    pub client_key: TenantKey,
    /// sha256 of the token and of the body, to refuse a replay with another body.
    pub token_hash: String,
    pub body_hash: String,
}

/// Verifies an RS256 signed-install token: kid → key, signature, `aud` = our base URL, `qsh`,
/// `exp`, and the body's `clientKey` equal to `iss`.
pub async fn verify_install(
    keys: &super::keys::InstallKeys,
    request: &RequestParts<'_>,
    body: &[u8],
    body_client_key: &TenantKey,
    our_base_url: &str,
    checks: &Checks<'_>,
) -> Result<VerifiedInstall, AuthError> {
    let token = request
        .authorization
        .and_then(|h| h.strip_prefix("JWT "))
        .map(str::trim)
        .ok_or(TokenError::Missing)?;
    let (header, _) = jwt::peek(token)?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(TokenError::Algorithm(format!("{:?}", header.alg)).into());
    }
    let kid = header.kid.ok_or(TokenError::MissingKid)?;
    let key = keys.get(&kid).await?;
    let claims = jwt::verify_rs256(token, &key)?;
    let iss = claims.iss.clone().ok_or(TokenError::MissingClaim("iss"))?;
    let audiences = claims
        .aud
        .as_ref()
        .map(|a| a.values())
        .ok_or(TokenError::MissingClaim("aud"))?;
    let ours = our_base_url.trim_end_matches('/');
    if !audiences.iter().any(|a| a.trim_end_matches('/') == ours) {
        return Err(TokenError::Audience {
            expected: ours.to_string(),
            found: audiences,
        }
        .into());
    }
    jwt::check_expiry(&claims, checks.now, checks.leeway_seconds)?;
    check_qsh(&claims, request, checks, QshRule::Exact)?;
    if *body_client_key != iss {
        return Err(TokenError::ClientKeyMismatch {
            body: body_client_key.to_string(),
            iss,
        }
        .into());
    }
    Ok(VerifiedInstall {
        client_key: body_client_key.clone(),
        token_hash: sha256_hex(token.as_bytes()),
        body_hash: sha256_hex(body),
    })
}
