//! A CEL condition from a workflow file: compiled or refused with a reason; a compiled one
//! evaluates (to a verdict or an error) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::workflow::condition::{Condition, Facts, PersonFacts, RequestFacts, ResourceFacts};

fuzz_target!(|data: &str| {
    let Ok(condition) = Condition::compile(data) else {
        return;
    };
    let person = PersonFacts {
        email: "dev@example.com".into(),
        department: "Engineering".into(),
        groups: vec!["eng".into()],
        attributes: vec![("location".into(), "Berlin".into())],
        ..Default::default()
    };
    let resource = ResourceFacts {
        id: "netsuite".into(),
        tags: vec!["finance".into()],
        ..Default::default()
    };
    let request = RequestFacts {
        duration: Some(std::time::Duration::from_secs(86_400)),
        ..Default::default()
    };
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    let _ = condition.evaluate(&Facts::new(&person, &resource, &request, now));
});
