//! Webhook bodies as the three doors receive them: a Forge event normalised, a comment read
//! back from Jira, a comment id; any bytes give an answer or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::atlassian::comments::{Comment, CommentId};

fuzz_target!(|data: &[u8]| {
    let _ = tollgate::forge::events::normalize(data);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for candidate in [&value, &value["comment"], &value["payload"]] {
        let _ = Comment::from_rest(candidate);
        if let Some(id) = CommentId::from_json(&candidate["id"]) {
            // An id goes into a URL path: digits only.
            assert!(id.as_str().bytes().all(|b| b.is_ascii_digit()), "{id:?}");
        }
    }
});
