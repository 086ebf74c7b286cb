//! A bench's knobs: a size or rate from the environment, else its default.

/// `name` from the environment as a number, else `default`.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
