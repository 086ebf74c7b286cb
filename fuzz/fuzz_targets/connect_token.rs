//! A Connect token from anywhere it may come (header, query, form body): finding it, reading
//! its header and claims, and checking an HS256 signature never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::atlassian::jwt;

fuzz_target!(|data: &str| {
    let _ = jwt::extract(Some(data), Some(data), None);
    let _ = jwt::extract(None, Some(data), Some(data));
    if let Ok((_, claims)) = jwt::peek(data) {
        let _ = claims.aud.as_ref().map(|a| a.values());
        let _ = claims.client_key();
        let _ = claims.account_id();
    }
    // A forged token never verifies under a secret it was not made with.
    if let Ok(claims) = jwt::verify_hs256(data, b"the tenant's shared secret") {
        panic!("a fuzzed token verified: {claims:?}");
    }
});
