//! What every call to a vendor shares, whichever vendor: when to try again (`retry`), how a
//! query value is encoded, how we introduce ourselves, and how a vendor's error body reads.

pub mod retry;

/// The `User-Agent` of every outbound call.
pub const USER_AGENT: &str = concat!("Tollgate/", env!("CARGO_PKG_VERSION"));

/// Strict RFC 3986 percent-encoding: everything but `A-Za-z0-9-._~`, upper-case hex.
pub fn rfc3986(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The human message of an Atlassian error body: Jira's `{errorMessages[], errors{field: msg}}`,
/// JSM's and Confluence's `{errorMessage}` / `{message}`, SCIM's `{detail}`.
pub fn vendor_message(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let mut parts: Vec<String> = Vec::new();
    if let Some(list) = value.get("errorMessages").and_then(|v| v.as_array()) {
        parts.extend(list.iter().filter_map(|m| m.as_str()).map(str::to_string));
    }
    if let Some(map) = value.get("errors").and_then(|v| v.as_object()) {
        parts.extend(
            map.iter()
                .filter_map(|(field, m)| m.as_str().map(|m| format!("{field}: {m}"))),
        );
    }
    for key in ["errorMessage", "message", "detail"] {
        if let Some(m) = value.get(key).and_then(|v| v.as_str()) {
            parts.push(m.to_string());
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
