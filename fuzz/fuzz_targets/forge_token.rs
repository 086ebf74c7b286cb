//! A Forge invocation token's claims (after its signature, which the JWT library checks): the
//! claim checks take any JSON without panicking, and accept only what names our app.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::forge::token::{Expected, check};

const APP: &str = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000001";

fuzz_target!(|data: &[u8]| {
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let expected = Expected {
        app_ari: APP,
        now: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        leeway_seconds: 30,
    };
    // Whatever else it holds, an accepted token names our app among its audiences.
    if check(&claims, &expected).is_ok() {
        let aud = &claims["aud"];
        let ours = aud.as_str() == Some(APP)
            || aud
                .as_array()
                .is_some_and(|all| all.iter().any(|a| a.as_str() == Some(APP)));
        assert!(ours, "accepted for {aud}");
    }
});
