//! qsh canonicalisation of any method, path and query: never panics, and the hash is always
//! 64 lowercase hex digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::atlassian::qsh;

fuzz_target!(|data: &str| {
    let mut parts = data.splitn(3, '\n');
    let method = parts.next().unwrap_or_default();
    let path_and_query = parts.next().unwrap_or_default();
    let base_path = parts.next().unwrap_or_default();
    let _ = qsh::canonical_request(method, path_and_query, base_path);
    let hash = qsh::qsh(method, path_and_query, base_path);
    assert_eq!(hash.len(), 64);
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let _ = tollgate::outbound::rfc3986(data);
});
