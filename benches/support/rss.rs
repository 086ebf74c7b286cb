//! Peak resident memory of this process, for benches that report it (Linux `/proc`).

/// The peak RSS so far, in MiB (0 where `/proc` is not there).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak RSS to the current RSS (Linux ≥ 4.0), so a phase's peak is its own.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
