//! When to try a vendor call again: pure policy, no I/O.
//!
//! 429 and 503 honour the vendor's `Retry-After` (seconds or an HTTP date) or
//! `X-RateLimit-Reset` (epoch seconds, or an ISO 8601 time as Atlassian sends it); other
//! transient failures back off exponentially with full jitter. Attempts are bounded.

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// What the vendor said, as far as retrying goes.
#[derive(Debug, Clone, Default)]
pub struct Outcome<'a> {
    /// `None` for a connection failure or timeout.
    pub status: Option<u16>,
    pub retry_after: Option<&'a str>,
    pub rate_limit_reset: Option<&'a str>,
}

/// A random number in `[0, 1)` for [`next_delay`]: the one impure helper here, kept apart
/// so the policy itself stays testable.
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// Whether a status is worth another try.
pub fn is_transient(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => s == 408 || s == 425 || s == 429 || (500..=599).contains(&s) && s != 501,
    }
}

/// The wait before attempt `attempt + 1` (attempts count from 1), or `None` to stop.
/// `jitter` is a number in `[0, 1)` supplied by the caller, so the policy stays pure.
pub fn next_delay(
    policy: &RetryPolicy,
    outcome: &Outcome<'_>,
    attempt: u32,
    now: DateTime<Utc>,
    jitter: f64,
) -> Option<Duration> {
    if attempt >= policy.max_attempts || !is_transient(outcome.status) {
        return None;
    }
    if matches!(outcome.status, Some(429 | 503)) {
        let told = outcome
            .retry_after
            .and_then(|v| parse_wait(v, now))
            .or_else(|| outcome.rate_limit_reset.and_then(|v| parse_wait(v, now)));
        if let Some(wait) = told {
            // A vendor that asks for longer than we are willing to wait gets no more tries:
            // the durable job retries later instead of holding a worker.
            return (wait <= policy.max_delay).then_some(wait);
        }
    }
    let exponential = policy
        .base_delay
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(policy.max_delay);
    Some(
        exponential
            .mul_f64(jitter.clamp(0.0, 1.0))
            .max(Duration::from_millis(10)),
    )
}

/// `Retry-After`/`X-RateLimit-Reset` values: delta seconds, epoch seconds, an RFC 2822 HTTP
/// date, or an RFC 3339 / ISO 8601 time (with or without seconds).
pub fn parse_wait(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let until = |at: DateTime<Utc>| (at - now).to_std().ok().or(Some(Duration::ZERO));
    if let Ok(n) = value.parse::<u64>() {
        // Small numbers are delays; numbers that look like epoch seconds are instants.
        return if n > 1_000_000_000 {
            DateTime::from_timestamp(i64::try_from(n).ok()?, 0).and_then(until)
        } else {
            Some(Duration::from_secs(n))
        };
    }
    if let Ok(at) = DateTime::parse_from_rfc2822(value) {
        return until(at.with_timezone(&Utc));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return until(at.with_timezone(&Utc));
    }
    // Atlassian documents e.g. `2024-08-21T15:35Z` (no seconds).
    chrono::NaiveDateTime::parse_from_str(value.trim_end_matches('Z'), "%Y-%m-%dT%H:%M")
        .ok()
        .and_then(|naive| until(naive.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    fn outcome(status: Option<u16>) -> Outcome<'static> {
        Outcome {
            status,
            ..Default::default()
        }
    }

    #[test]
    fn vendor_waits_are_honoured_in_every_format() {
        let policy = RetryPolicy::default();
        let told = |retry_after: Option<&'static str>, reset: Option<&'static str>| {
            next_delay(
                &policy,
                &Outcome {
                    status: Some(429),
                    retry_after,
                    rate_limit_reset: reset,
                },
                1,
                now(),
                0.5,
            )
        };
        assert_eq!(told(Some("7"), None), Some(Duration::from_secs(7)));
        assert_eq!(
            told(Some("Sat, 28 Nov 2026 12:00:30 GMT"), None),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            told(None, Some("2026-11-28T12:01Z")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            told(None, Some("2026-11-28T12:00:05Z")),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            told(None, Some("1795867210")),
            Some(Duration::from_secs(10))
        );
        // A reset in the past means now.
        assert_eq!(
            told(None, Some("2026-11-28T11:00:00Z")),
            Some(Duration::ZERO)
        );
        // Longer than we hold a worker: stop, the job retries later.
        assert_eq!(told(Some("3600"), None), None);
    }

    #[test]
    fn other_transient_failures_back_off_exponentially_with_jitter() {
        let policy = RetryPolicy::default();
        let delay =
            |attempt, jitter| next_delay(&policy, &outcome(Some(502)), attempt, now(), jitter);
        assert_eq!(delay(1, 1.0), Some(Duration::from_millis(250)));
        assert_eq!(delay(3, 1.0), Some(Duration::from_millis(1000)));
        assert_eq!(delay(3, 0.5), Some(Duration::from_millis(500)));
        assert_eq!(delay(5, 1.0), None, "bounded attempts");
        assert!(
            next_delay(&policy, &outcome(None), 1, now(), 1.0).is_some(),
            "timeouts retry"
        );
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let policy = RetryPolicy::default();
        for status in [400, 401, 403, 404, 409, 501] {
            assert_eq!(
                next_delay(&policy, &outcome(Some(status)), 1, now(), 1.0),
                None,
                "{status}"
            );
        }
    }
}
