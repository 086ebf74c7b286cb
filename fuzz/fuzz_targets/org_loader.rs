//! An org.yaml: a snapshot or diagnostics, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let _ = tollgate::orgchart::file::parse(std::path::Path::new("org.yaml"), data);
});
