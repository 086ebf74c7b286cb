//! Connect JWTs: where a request carries one, what it claims, and checking it.
//! Pure: keys and secrets are passed in; looking them up is the caller's business.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Why a token was refused. Logged, never sent to the caller (who only learns "401").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no JWT in the request")]
    Missing,
    #[error("JWT found in more than one place (query and body)")]
    Ambiguous,
    #[error("malformed JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0} is not accepted here")]
    Algorithm(String),
    #[error("JWT has no `{0}` claim")]
    MissingClaim(&'static str),
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
    #[error("tenant {0} is not active ({1})")]
    InactiveTenant(String, String),
    #[error("bad signature")]
    Signature,
    #[error("expired at {0}")]
    Expired(i64),
    #[error("qsh does not match this request")]
    Qsh,
    #[error("context-qsh token on a route that needs a request-bound token")]
    ContextQshNotAllowed,
    #[error("audience {found:?} is not our base URL {expected}")]
    Audience {
        expected: String,
        found: Vec<String>,
    },
    #[error("body clientKey {body} does not match token iss {iss}")]
    ClientKeyMismatch { body: String, iss: String },
    #[error("no `kid` in the install token header")]
    MissingKid,
    #[error("install key `{0}` is unknown to the key server")]
    UnknownKid(String),
    #[error("install token replayed with a different body")]
    Replayed,
}

/// Where the token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Header,
    Query,
    Form,
}

/// Finds the token: `?jwt=`, form field `jwt`, or `Authorization: JWT …`. A token in the query
/// or body wins over the header (as ACE does); one in both query and body is refused.
pub fn extract(
    authorization: Option<&str>,
    query: Option<&str>,
    form_body: Option<&str>,
) -> Result<(String, TokenSource), TokenError> {
    let find = |text: Option<&str>| {
        text.and_then(|t| {
            t.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "jwt")
                .map(|(_, v)| v.to_string())
        })
    };
    let in_query = find(query);
    let in_form = find(form_body);
    match (in_query, in_form) {
        (Some(_), Some(_)) => Err(TokenError::Ambiguous),
        (Some(token), None) => Ok((token, TokenSource::Query)),
        (None, Some(token)) => Ok((token, TokenSource::Form)),
        (None, None) => authorization
            .and_then(|h| h.strip_prefix("JWT "))
            .map(|t| (t.trim().to_string(), TokenSource::Header))
            .ok_or(TokenError::Missing),
    }
}

/// `aud` may be one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn values(&self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a.clone()],
            Audience::Many(list) => list.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
pub struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qsh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Deprecated, but still sent: `context.user.accountId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
}

impl Claims {
    /// The tenant the token speaks for: `aud[0]` when there is an audience (session tokens),
    /// else `iss`.
    pub fn client_key(&self) -> Option<String> {
        self.aud
            .as_ref()
            .and_then(|a| a.values().into_iter().next())
            .or_else(|| self.iss.clone())
    }

    /// The acting user: `context.user.accountId`, else `sub`.
    pub fn account_id(&self) -> Option<String> {
        self.context
            .as_ref()
            .and_then(|c| c.pointer("/user/accountId"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| self.sub.clone())
    }
}

/// The header and claims, not yet verified: enough to find the key to verify with.
pub fn peek(token: &str) -> Result<(Header, Claims), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| {
        // `none` and other algorithms jsonwebtoken does not know fail here.
        TokenError::Malformed(e.to_string())
    })?;
    let mut parts = token.split('.');
    let payload = parts
        .nth(1)
        .ok_or_else(|| TokenError::Malformed("not three parts".into()))?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("payload is not base64url".into()))?;
    let claims: Claims = serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("claims: {e}")))?;
    Ok((header, claims))
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    // Expiry is checked against the application's clock, audience and issuer by the caller.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
}

/// Checks the HS256 signature with `secret` and returns the claims.
pub fn verify_hs256(token: &str, secret: &[u8]) -> Result<Claims, TokenError> {
    let (header, _) = peek(token)?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
    }
    jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret),
        &validation(Algorithm::HS256),
    )
    .map(|data| data.claims)
    .map_err(|_| TokenError::Signature)
}

/// Checks the RS256 signature with the PEM public key and returns the claims.
pub fn verify_rs256(token: &str, public_key_pem: &[u8]) -> Result<Claims, TokenError> {
    let (header, _) = peek(token)?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
    }
    let key = DecodingKey::from_rsa_pem(public_key_pem)
        .map_err(|e| TokenError::Malformed(format!("install key: {e}")))?;
    jsonwebtoken::decode::<Claims>(token, &key, &validation(Algorithm::RS256))
        .map(|data| data.claims)
        .map_err(|_| TokenError::Signature)
}

/// `exp` is required and checked against `now`, allowing `leeway_seconds` of clock skew.
pub fn check_expiry(
    claims: &Claims,
    now: DateTime<Utc>,
    leeway_seconds: i64,
) -> Result<(), TokenError> {
    let exp = claims.exp.ok_or(TokenError::MissingClaim("exp"))?;
    if now.timestamp() >= exp.saturating_add(leeway_seconds) {
        Err(TokenError::Expired(exp))
    } else {
        Ok(())
    }
}

/// Signs claims with HS256 (outbound calls, and the test-side Jira).
pub fn sign_hs256(claims: &Claims, secret: &[u8]) -> Result<String, TokenError> {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret))
        .map_err(|e| TokenError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iss: &str) -> Claims {
        Claims {
            iss: Some(iss.into()),
            qsh: Some("abc".into()),
            exp: Some(2_000_000_000),
            iat: Some(1_999_999_000),
            ..Default::default()
        }
    }

    #[test]
    fn extraction_prefers_query_or_body_and_refuses_both() {
        let header = Some("JWT from-header");
        assert_eq!(
            extract(header, None, None),
            Ok(("from-header".into(), TokenSource::Header))
        );
        assert_eq!(
            extract(header, Some("a=1&jwt=from-query"), None),
            Ok(("from-query".into(), TokenSource::Query))
        );
        assert_eq!(
            extract(header, None, Some("jwt=from-form")),
            Ok(("from-form".into(), TokenSource::Form))
        );
        assert_eq!(
            extract(None, Some("jwt=a"), Some("jwt=b")),
            Err(TokenError::Ambiguous)
        );
        assert_eq!(
            extract(Some("Bearer x"), None, None),
            Err(TokenError::Missing)
        );
    }

    #[test]
    fn hs256_round_trip_and_wrong_secret() {
        let token = sign_hs256(&claims("tenant-a"), b"secret-a").expect("signs");
        let verified = verify_hs256(&token, b"secret-a").expect("verifies");
        assert_eq!(verified.iss.as_deref(), Some("tenant-a"));
        assert_eq!(
            verify_hs256(&token, b"secret-b"),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn alg_none_and_tampering_are_refused() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(r#"{"iss":"t","exp":2000000000,"qsh":"x"}"#)
        );
        assert!(verify_hs256(&none, b"secret").is_err());
        let token = sign_hs256(&claims("tenant-a"), b"secret").expect("signs");
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(r#"{"iss":"tenant-b","exp":2000000000,"qsh":"abc"}"#);
        parts[1] = &forged;
        assert_eq!(
            verify_hs256(&parts.join("."), b"secret"),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn expiry_uses_the_given_clock_with_leeway() {
        let c = claims("t");
        let at = |ts: i64| DateTime::from_timestamp(ts, 0).expect("valid");
        assert!(check_expiry(&c, at(1_999_999_999), 0).is_ok());
        assert_eq!(
            check_expiry(&c, at(2_000_000_000), 0),
            Err(TokenError::Expired(2_000_000_000))
        );
        assert!(check_expiry(&c, at(2_000_000_020), 30).is_ok());
        let no_exp = Claims { exp: None, ..c };
        assert_eq!(
            check_expiry(&no_exp, at(0), 0),
            Err(TokenError::MissingClaim("exp"))
        );
    }

    #[test]
    fn client_key_and_account_come_from_the_right_claims() {
        let mut c = claims("iss-key");
        c.sub = Some("557058:abc".into());
        assert_eq!(c.client_key().as_deref(), Some("iss-key"));
        assert_eq!(c.account_id().as_deref(), Some("557058:abc"));
        c.aud = Some(Audience::Many(vec!["aud-key".into()]));
        c.context = Some(serde_json::json!({"user": {"accountId": "ctx-user"}}));
        assert_eq!(c.client_key().as_deref(), Some("aud-key"));
        assert_eq!(c.account_id().as_deref(), Some("ctx-user"));
    }
}
