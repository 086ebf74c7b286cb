//! Human-written durations (`500ms`, `30s`, `5m`, `24h`, `7d`, `2w`), shared by configuration
//! and workflow files so an admin writes durations the same way everywhere.
//!
//! Not `humantime`: it also takes `1month` (30.44 days) and `1y`, spelled-out units and spaces,
//! and writes `7days`; here the six units are exact, a unit is required, the errors say what
//! to write, and a duration is written back (`format`) the way an admin wrote it, in tickets too.

use std::time::Duration;

/// Parses `<integer><unit>` where unit is one of `ms`, `s`, `m`, `h`, `d`, `w`.
/// Several parts may be joined (`1h30m`). A bare number is rejected: a unit is always required,
/// because "30" meaning seconds in one file and days in another is how outages start.
pub fn parse(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration: expected a number followed by ms, s, m, h, d or w"
            ));
        }
        let (number, tail) = rest.split_at(digits);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("`{number}` is too large in `{text}`"))?;
        let unit_len = tail.chars().take_while(char::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let seconds_per_unit: Option<u64> = match unit {
            "ms" => None,
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3_600),
            "d" => Some(86_400),
            "w" => Some(604_800),
            "" => return Err(format!("`{text}` needs a unit (ms, s, m, h, d or w)")),
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}`: use ms, s, m, h, d or w"
                ));
            }
        };
        let part = match seconds_per_unit {
            None => Duration::from_millis(value),
            Some(factor) => value
                .checked_mul(factor)
                .map(Duration::from_secs)
                .ok_or_else(|| format!("`{text}` is too large"))?,
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("`{text}` is too large"))?;
        rest = tail;
    }
    Ok(total)
}

/// Formats a duration in days, hours, minutes and seconds (`90m` → `1h30m`, `14d` → `14d`);
/// weeks are accepted on input but never printed, since `12w6d` reads worse than `90d`.
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let mut secs = duration.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse("2w"), Ok(Duration::from_secs(1_209_600)));
        assert_eq!(parse(" 1h30m "), Ok(Duration::from_secs(5_400)));
    }

    #[test]
    fn rejects_what_is_ambiguous_or_broken() {
        assert!(parse("").is_err());
        assert!(parse("30").unwrap_err().contains("needs a unit"));
        assert!(parse("3 days").is_err());
        assert!(parse("5y").unwrap_err().contains("unknown unit"));
        assert!(parse("h").is_err());
        assert!(parse("99999999999999999999999w").is_err());
        assert!(
            parse("9999999999999999w")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn format_round_trips() {
        for text in ["1h30m", "6d", "250ms", "15d", "90d", "45s"] {
            let parsed = parse(text).expect("valid");
            assert_eq!(format(parsed), text);
        }
    }
}
