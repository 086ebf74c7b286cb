//! A workflow or catalog file as an admin might write it: loaded into workflows or into
//! file:line diagnostics, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    for name in ["catalog.yaml", "default.yaml", "intake.yaml"] {
        let sources = vec![(std::path::PathBuf::from(name), data.to_string())];
        let _ = tollgate::workflow::load::load_sources(&sources, None);
    }
});
