//! Tests that need something beyond the Rust toolchain skip with a printed reason when it is
//! missing, and fail instead when `CI=true`, so nothing is silently skipped in CI.

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns `true` if the test may go on; prints why not (or panics in CI) otherwise.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if in_ci() {
        panic!("{what} is required in CI (CI=true) but is not available");
    }
    eprintln!("SKIPPED: {what} is not available");
    false
}
