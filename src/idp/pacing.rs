//! Pacing calls to a rate-limited vendor from many concurrent tasks: pure bookkeeping, no I/O.
//!
//! Each rate-limit family (a vendor's bucket: Okta limits `/api/v1/users` and
//! `/api/v1/groups/{id}/…` separately) keeps what the vendor last said: its limit, what is
//! left and when the window resets. A call reserves one unit before it is sent; when nothing is
//! left it waits for the reset, and as the remainder falls under a tenth of the limit the calls
//! are spread evenly over the rest of the window instead of spending it in a burst. After a 429
//! the whole family waits out the announced reset: no call is sent before it.

pub use crate::config::idp::Budget;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// Sent after an announced reset, so a clock slightly behind the vendor's is not early.
const RESET_MARGIN: TimeDelta = TimeDelta::milliseconds(250);

#[derive(Debug, Default, Clone)]
struct Family {
    limit: Option<u32>,
    /// What the vendor said was left, less the calls sent since.
    remaining: Option<u32>,
    reset: Option<DateTime<Utc>>,
    /// Reserved and not yet answered.
    in_flight: u32,
    /// No call before this (a 429's reset, or a spread-out call's turn).
    not_before: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct Pacer {
    families: HashMap<String, Family>,
    /// The vendor states each family's budget on every answer (Okta): until a family's first
    /// answer says it, one call at a time; and in a new window whose budget is spent by the
    /// calls still on their way, wait for an answer instead of guessing.
    announced: bool,
    /// For a vendor that says nothing of its budget (Graph, Google): the one configured.
    budget: Option<Budget>,
}

/// How soon to ask again while waiting for an answer that tells the budget.
const AWAIT_ANSWER: Duration = Duration::from_millis(20);

/// What the vendor said about a family's window, read off a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u32,
    pub remaining: u32,
    pub reset: DateTime<Utc>,
}

impl Pacer {
    /// For a vendor that announces its budget on every answer.
    pub fn announced() -> Self {
        Self {
            announced: true,
            ..Self::default()
        }
    }

    /// For a vendor that announces nothing: calls are kept within `budget` by Tollgate's own
    /// count (and a `Retry-After` still holds everything).
    pub fn budgeted(budget: Budget) -> Self {
        Self {
            budget: Some(budget),
            ..Self::default()
        }
    }

    /// Reserves a call in `family`: `None` to send it now, else how long to wait before asking
    /// again.
    pub fn reserve(&mut self, family: &str, now: DateTime<Utc>) -> Option<Duration> {
        let f = self.families.entry(family.to_string()).or_default();
        if let Some(at) = f.not_before
            && now < at
        {
            return (at - now).to_std().ok();
        }
        let own_window = self
            .budget
            .map(|b| TimeDelta::from_std(b.per).unwrap_or(TimeDelta::MAX));
        if let (Some(budget), Some(window), None) = (self.budget, own_window, f.limit) {
            f.limit = Some(budget.calls);
            f.remaining = Some(budget.calls);
            f.reset = Some(now + window);
        }
        if f.reset.is_some_and(|reset| now >= reset) {
            // A new window: its budget is the limit, less what is still on its way.
            f.remaining = f.limit.map(|l| l.saturating_sub(f.in_flight));
            // Our own windows follow one another; an announced one is told by the next answer.
            f.reset = own_window.map(|w| now + w);
        }
        if self.announced && f.in_flight > 0 {
            let unknown = f.limit.is_none();
            // A new window whose reset no answer has told yet, with its budget spent.
            let spent = f.reset.is_none() && f.remaining == Some(0);
            if unknown || spent {
                return Some(AWAIT_ANSWER);
            }
        }
        if let (Some(0), Some(reset)) = (f.remaining, f.reset) {
            let at = reset + RESET_MARGIN;
            f.not_before = Some(at);
            return (at - now).to_std().ok();
        }
        if let (Some(left), Some(limit), Some(reset)) = (f.remaining, f.limit, f.reset)
            && left.saturating_mul(10) < limit
        {
            // Spread what is left over the rest of the window.
            let gap = (reset - now) / i32::try_from(left + 1).unwrap_or(i32::MAX);
            f.not_before = Some(now + gap);
        }
        f.remaining = f.remaining.map(|r| r.saturating_sub(1));
        f.in_flight += 1;
        None
    }

    /// A reserved call was answered; `window` is what its headers said, if anything.
    pub fn answered(&mut self, family: &str, window: Option<Window>) {
        let f = self.families.entry(family.to_string()).or_default();
        f.in_flight = f.in_flight.saturating_sub(1);
        let Some(w) = window else { return };
        f.limit = Some(w.limit);
        let told = w.remaining.saturating_sub(f.in_flight);
        let newer = f.reset.is_none_or(|reset| w.reset > reset);
        if newer {
            f.reset = Some(w.reset);
            f.remaining = Some(told);
        } else if Some(w.reset) == f.reset {
            f.remaining = Some(f.remaining.map_or(told, |r| r.min(told)));
        }
    }

    /// The vendor answered 429: nobody in the family calls before `until`.
    pub fn throttled(&mut self, family: &str, until: DateTime<Utc>) {
        let f = self.families.entry(family.to_string()).or_default();
        let at = until + RESET_MARGIN;
        f.not_before = Some(f.not_before.map_or(at, |n| n.max(at)));
        f.remaining = Some(0);
        f.reset = Some(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).expect("valid")
    }

    #[test]
    fn an_announcing_vendor_is_probed_once_and_never_overrun() {
        let mut p = Pacer::announced();
        assert_eq!(p.reserve("users", at(0)), None);
        // Nothing is known of the budget until the first answer: the rest wait for it.
        assert_eq!(p.reserve("users", at(1)), Some(AWAIT_ANSWER));
        let window = |remaining, reset_ms| Window {
            limit: 5,
            remaining,
            reset: at(reset_ms),
        };
        p.answered("users", Some(window(4, 2_000)));
        let sent = (0..8)
            .filter(|_| p.reserve("users", at(10)).is_none())
            .count();
        assert_eq!(sent, 4, "the budget of the window, no more");
        // The window turns over with all four still on their way: the new window's five are
        // shared with them, and once spent nobody goes before an answer tells the reset.
        let sent = (0..8)
            .filter(|_| p.reserve("users", at(2_300)).is_none())
            .count();
        assert_eq!(sent, 1, "5 in the new window less the 4 in flight");
        assert_eq!(p.reserve("users", at(2_301)), Some(AWAIT_ANSWER));
        for _ in 0..5 {
            p.answered("users", Some(window(0, 4_000)));
        }
        assert!(
            p.reserve("users", at(2_400))
                .is_some_and(|w| w > Duration::from_secs(1))
        );
    }

    #[test]
    fn a_configured_budget_holds_a_vendor_that_announces_none() {
        let budget = Budget::parse("3/1s").expect("budget");
        assert_eq!(budget.calls, 3);
        assert!(Budget::parse("0/1s").is_err() && Budget::parse("lots").is_err());
        let mut p = Pacer::budgeted(budget);
        let sent = (0..5)
            .filter(|_| p.reserve("graph", at(0)).is_none())
            .count();
        assert_eq!(sent, 3);
        for _ in 0..3 {
            p.answered("graph", None);
        }
        assert!(p.reserve("graph", at(500)).is_some(), "the window is spent");
        let sent = (0..5)
            .filter(|_| p.reserve("graph", at(1_300)).is_none())
            .count();
        assert_eq!(sent, 3, "a new window of three");
    }

    #[test]
    fn an_unknown_family_goes_at_once() {
        let mut p = Pacer::default();
        assert_eq!(p.reserve("users", at(0)), None);
        assert_eq!(p.reserve("users", at(0)), None);
    }

    #[test]
    fn an_exhausted_window_waits_for_its_reset() {
        let mut p = Pacer::default();
        assert_eq!(p.reserve("users", at(0)), None);
        p.answered(
            "users",
            Some(Window {
                // Small enough that one left is not "low" (no spreading here).
                limit: 5,
                remaining: 1,
                reset: at(60_000),
            }),
        );
        assert_eq!(p.reserve("users", at(10)), None, "the last one goes");
        let wait = p.reserve("users", at(20)).expect("must wait");
        assert_eq!(wait, Duration::from_millis(60_000 - 20 + 250));
        // Other families are not held up.
        assert_eq!(p.reserve("groups", at(20)), None);
        // After the reset the window's budget is back.
        assert_eq!(p.reserve("users", at(60_300)), None);
    }

    #[test]
    fn calls_in_flight_count_against_what_the_vendor_says_is_left() {
        let mut p = Pacer::default();
        for _ in 0..4 {
            assert_eq!(p.reserve("g", at(0)), None);
        }
        // The first answer says 3 are left; 3 more are already on their way.
        p.answered(
            "g",
            Some(Window {
                limit: 100,
                remaining: 3,
                reset: at(60_000),
            }),
        );
        assert!(p.reserve("g", at(1)).is_some(), "nothing left to spend");
    }

    #[test]
    fn a_low_remainder_is_spread_over_the_window() {
        let mut p = Pacer::default();
        assert_eq!(p.reserve("u", at(0)), None);
        p.answered(
            "u",
            Some(Window {
                limit: 600,
                remaining: 9,
                reset: at(50_000),
            }),
        );
        assert_eq!(p.reserve("u", at(0)), None);
        // 9 left over 50 s: one every 5 s.
        assert_eq!(p.reserve("u", at(0)), Some(Duration::from_millis(5_000)));
        assert_eq!(p.reserve("u", at(5_000)), None);
    }

    #[test]
    fn a_429_holds_the_family_until_its_reset() {
        let mut p = Pacer::default();
        assert_eq!(p.reserve("u", at(0)), None);
        p.throttled("u", at(30_000));
        p.answered("u", None);
        assert_eq!(
            p.reserve("u", at(1_000)),
            Some(Duration::from_millis(29_250))
        );
        assert_eq!(p.reserve("u", at(30_250)), None);
    }

    #[test]
    fn an_older_windows_answer_does_not_undo_a_newer_one() {
        let mut p = Pacer::default();
        assert_eq!(p.reserve("u", at(0)), None);
        assert_eq!(p.reserve("u", at(0)), None);
        p.answered(
            "u",
            Some(Window {
                limit: 10,
                remaining: 9,
                reset: at(120_000),
            }),
        );
        p.answered(
            "u",
            Some(Window {
                limit: 10,
                remaining: 2,
                reset: at(60_000),
            }),
        );
        assert_eq!(p.reserve("u", at(1)), None, "9 left in the newer window");
    }
}
