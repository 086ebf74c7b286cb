//! The query string hash (`qsh`) of Atlassian Connect: a SHA-256 over a canonical form of the
//! request, so a token signed for one request cannot be replayed against another.
//!
//! canonical = METHOD "&" URI "&" QUERY, following atlassian-jwt 2.0.3 (`createCanonicalRequest`):
//! - METHOD upper-cased;
//! - URI: the raw path with the base URL's path prefix stripped, empty → `/`, `&` → `%26`,
//!   a leading `/` added, one trailing `/` dropped (unless the path is `/`);
//! - QUERY: form-decoded (`+` is a space), `jwt` dropped, keys sorted by code unit, a repeated
//!   key's raw values sorted and joined with `,`, keys and values encoded per strict RFC 3986.

use crate::outbound::rfc3986;
use sha2::{Digest, Sha256};

/// The literal `qsh` of context tokens (`AP.context.getToken()`), accepted only on routes that
/// say so.
pub const CONTEXT_QSH: &str = "context-qsh";

/// The canonical request for `method` on `path_and_query`, relative to `base_path` (the base
/// URL's path, e.g. `/wiki` for Confluence, empty for most).
pub fn canonical_request(method: &str, path_and_query: &str, base_path: &str) -> String {
    let (path, query) = node_url_parts(path_and_query);
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        canonical_uri(&path, base_path),
        canonical_query(&query)
    )
}

/// Splits a request target into path and query the way atlassian-jwt sees them: it parses with
/// Node's legacy `url.parse`, which trims whitespace, turns backslashes before the query into
/// slashes, drops a `#fragment`, and — off its fast path (a `@` or `#`, whitespace inside, a
/// path not starting with one `/`) — percent-encodes a few characters first.
fn node_url_parts(target: &str) -> (String, String) {
    let is_ws = |c: char| (c as u32) < 33 || c == '\u{a0}' || c == '\u{feff}';
    let trimmed = target.trim_matches(is_ws);
    let split_at = trimmed.find(['?', '#']).unwrap_or(trimmed.len());
    let (before, after) = trimmed.split_at(split_at);
    let rest = format!("{}{after}", before.replace('\\', "/"));
    let has_at = before.contains('@');
    let has_hash = rest.contains('#');
    let path_end = rest.find('?').unwrap_or(rest.len());
    let simple = rest.starts_with('/')
        && !rest[..path_end].starts_with("///")
        && !rest.contains(char::is_whitespace);
    let rest = if simple && !has_at && !has_hash {
        rest
    } else {
        node_auto_escape(&rest)
    };
    let rest = rest.split('#').next().unwrap_or_default();
    match rest.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (rest.to_string(), String::new()),
    }
}

/// `hex(sha256(canonical_request))`.
pub fn qsh(method: &str, path_and_query: &str, base_path: &str) -> String {
    let digest = Sha256::digest(canonical_request(method, path_and_query, base_path).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical_uri(path: &str, base_path: &str) -> String {
    // A plain prefix strip, as atlassian-jwt does (`path.indexOf(basePath) === 0`).
    let mut uri = path.strip_prefix(base_path).unwrap_or(path).to_string();
    if uri.is_empty() {
        uri.push('/');
    }
    let mut uri = uri.replace('&', "%26");
    if !uri.starts_with('/') {
        uri.insert(0, '/');
    }
    if uri.len() > 1 && uri.ends_with('/') {
        uri.pop();
    }
    uri
}

/// The characters Node's `url.parse` percent-encodes off its fast path.
fn node_auto_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '\'' | '{' | '}' | '|' | '\\' | '^' | '`' | '<' | '>' | '"' | ' ' | '\t' | '\r'
            | '\n' => {
                out.push_str(&format!("%{:02X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(key);
        if key == "jwt" {
            continue;
        }
        let value = form_decode(value);
        match params.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value),
            None => params.push((key, vec![value])),
        }
    }
    // Sorting Rust strings sorts by code point; JavaScript sorts by UTF-16 code unit. They
    // differ only above U+FFFF against U+E000..U+FFFF, so compare as UTF-16 to match exactly.
    let utf16 = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
    params.sort_by_key(|a| utf16(&a.0));
    params
        .into_iter()
        .map(|(key, mut values)| {
            values.sort_by_key(|a| utf16(a));
            let joined = values
                .iter()
                .map(|v| rfc3986(v))
                .collect::<Vec<_>>()
                .join(",");
            format!("{}={joined}", rfc3986(&key))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; malformed
/// escapes are kept as written, and invalid UTF-8 is replaced (as JavaScript's decoder would
/// have thrown, no genuine token can depend on it).
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let escape = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match escape {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors in API-NOTES §1.3, produced by atlassian-jwt 2.0.3.
    #[test]
    fn atlassian_jwt_vectors() {
        let vectors = [
            (
                "GET",
                "/rest/api/3/issue/ABC-1",
                "",
                "GET&/rest/api/3/issue/ABC-1&",
                "ac174a427df09571fabe2f69bd75be7e372f2ebe26d9366ec6958a1f56de503e",
            ),
            (
                "GET",
                "/rest/api/3/user/search?query=a b&maxResults=50",
                "",
                "GET&/rest/api/3/user/search&maxResults=50&query=a%20b",
                "f889cdb70f26126933a183b37ebbfe74648cfd645bf800c2ee8869737b2d01e3",
            ),
            (
                "POST",
                "/rest/api/3/group/user?groupId=abc-123",
                "",
                "POST&/rest/api/3/group/user&groupId=abc-123",
                "50704c5725589c6f3b63c4cee280c76e3e62640cf504e6511df48403a7ca3583",
            ),
            (
                "GET",
                "/rest/api/3/search/jql?jql=project%20%3D%20TEST&fields=summary&fields=status",
                "",
                "GET&/rest/api/3/search/jql&fields=status,summary&jql=project%20%3D%20TEST",
                "0e7eea3637fecf399ab08ebc855685baba5bce4f1f4ac054d7a509a686294ef6",
            ),
            (
                "GET",
                "/app/page?b=2&a=1&a=0&jwt=xyz&lic=none&xdm_e=https%3A%2F%2Fexample.atlassian.net",
                "",
                "GET&/app/page&a=0,1&b=2&lic=none&xdm_e=https%3A%2F%2Fexample.atlassian.net",
                "ac143a6b25de14cfc9f116f5880597c111ce238b8e4d99bb68c75b4357c5b1c5",
            ),
            (
                "POST",
                "/installed",
                "",
                "POST&/installed&",
                "4a2e1de8ca74e6cafe8862d332fa3ac7a8e51e692bc6d798ea4dfedc14948bf4",
            ),
            (
                "GET",
                "/path/with&amp/",
                "",
                "GET&/path/with%26amp&",
                "4fd717ef729633edeb63785af14f0970a66ec80ddac3d5f12fea0e5269b05d0b",
            ),
            (
                "GET",
                "/q?x=%21%27%28%29%2A~",
                "",
                "GET&/q&x=%21%27%28%29%2A~",
                "c9df59df2209527388f2e74500a5e6211ff3186c63e42e9116c84134b23cea21",
            ),
            (
                "GET",
                "/q?Z=1&a=2&_b=3",
                "",
                "GET&/q&Z=1&_b=3&a=2",
                "2370f8584dcee16de910f00732e10b2d4fd80853ca4d1b1920eaa69a104c1bef",
            ),
            (
                "GET",
                "/path/to/service?a=1&A=2&b=3&B=4",
                "",
                "GET&/path/to/service&A=2&B=4&a=1&b=3",
                "70282c7cf82834bd5a3d6dacda1b4ccd5cf5860a63a1fa2fb86b64d576e6a1d5",
            ),
            (
                "GET",
                "/wiki/rest/api/space?limit=10",
                "/wiki",
                "GET&/rest/api/space&limit=10",
                "a0cbb78dba023342885eae52d8bb83a0e04c399d437f4f6601e4f7ae50b901ea",
            ),
        ];
        for (method, url, base, canonical, hash) in vectors {
            assert_eq!(canonical_request(method, url, base), canonical, "{url}");
            assert_eq!(qsh(method, url, base), hash, "{url}");
        }
    }

    #[test]
    fn edge_cases() {
        let query = |q: &str| canonical_request("GET", &format!("/p?{q}"), "");
        assert_eq!(query("a=b+c"), "GET&/p&a=b%20c");
        assert_eq!(query("a=b%2Bc"), "GET&/p&a=b%2Bc");
        assert_eq!(query("a=&b"), "GET&/p&a=&b=");
        assert_eq!(query("ü=ö"), "GET&/p&%C3%BC=%C3%B6");
        assert_eq!(query("a=1&a=1"), "GET&/p&a=1,1");
        assert_eq!(query("bad=%zz&pct=%"), "GET&/p&bad=%25zz&pct=%25");
        assert_eq!(canonical_request("get", "", ""), "GET&/&");
        assert_eq!(canonical_request("GET", "/wiki", "/wiki"), "GET&/&");
        // The base path is stripped as a plain prefix, as atlassian-jwt does.
        assert_eq!(
            canonical_request("GET", "/wikipedia", "/wiki"),
            "GET&/pedia&"
        );
        // Node's url.parse leaves these alone on its fast path, escapes them off it (`@`).
        assert_eq!(canonical_request("GET", "/it's/{a}", ""), "GET&/it's/{a}&");
        assert_eq!(
            canonical_request("GET", "/a@it's/{a}", ""),
            "GET&/a@it%27s/%7Ba%7D&"
        );
        assert_eq!(
            canonical_request("GET", "/a\\b?x=1#frag", ""),
            "GET&/a/b&x=1"
        );
    }
}
