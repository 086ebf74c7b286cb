//! What an identity provider pushes: a filter, a PATCH body and a resource are each parsed and
//! applied, or refused with a SCIM error, without panicking; a PATCH's result is normalised like
//! a PUT's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tollgate::scim::resource::{Kind, normalize};
use tollgate::scim::{Filter, patch};

fuzz_target!(|data: &str| {
    let user = json!({
        "userName": "ada@example.com",
        "emails": [{"value": "ada@example.com", "type": "work"}],
        "members": [{"value": "u1"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m"}},
    });
    if let Ok(filter) = Filter::parse(data) {
        let _ = filter.matches(&user);
    }
    if let Ok(body) = serde_json::from_str::<serde_json::Value>(data) {
        if let Ok(operations) = patch::parse(&body) {
            let mut patched = user.clone();
            if patch::apply(&mut patched, &operations).is_ok() {
                let _ = normalize(Kind::User, patched);
            }
        }
        let _ = normalize(Kind::User, body.clone());
        let _ = normalize(Kind::Group, body);
    }
});
