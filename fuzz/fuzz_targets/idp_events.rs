//! An identity provider's event hook delivery (Okta's events, Graph's notifications): read into
//! what to read again, or refused, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::idp::events;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = events::okta(&body);
        let _ = events::graph(&body, "client-state");
    }
});
