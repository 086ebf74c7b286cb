//! Ticket comments: `/approve`, `/decline`, `/extend`, `/revoke` and anything else a person
//! types; a command or nothing, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let _ = tollgate::engine::decisions::command(data);
    let _ = tollgate::engine::commands::command(data);
});
