//! Canonical JSON (RFC 8785, JCS) for audit events: the bytes that are hashed must not depend
//! on how a database or a library orders keys or spaces output.
//!
//! Objects' members are sorted by their names' UTF-16 code units; there is no white space;
//! strings are escaped as JCS asks (the short escapes, `\u00XX` for other control characters,
//! nothing else); numbers are written as ECMAScript writes them (checked against RFC 8785's own
//! vectors here, and against Node on random doubles in the integration tests).
//!
//! Written here rather than taken from a crate: it is a hundred lines, and it is what every
//! stored event's hash rests on. Verification hashes the bytes stored with each event, so an
//! event written before numbers followed ECMAScript (only a float outside 1e-6..1e21, or an
//! integer beyond 2^53, would differ) still verifies as written.

use serde_json::Value;

pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write(item, out);
            }
            out.push('}');
        }
    }
}

/// A number as ECMAScript's `Number.prototype.toString` writes it, which RFC 8785 §3.2.2.3
/// asks for: the shortest digits that read back as the same double, in plain notation from
/// 1e-6 up to 1e21 and as `d.ddde±n` outside it. serde_json's own formatting differs there
/// (`1e21`, `1e-6`), and for integers beyond 2^53, which a double cannot hold.
fn write_number(number: &serde_json::Number, out: &mut String) {
    const EXACT: u64 = 1 << 53;
    match (number.as_i64(), number.as_u64(), number.as_f64()) {
        (Some(i), _, _) if i.unsigned_abs() <= EXACT => out.push_str(&i.to_string()),
        (_, Some(u), _) if u <= EXACT => out.push_str(&u.to_string()),
        (_, _, Some(x)) => write_double(x, out),
        // Not reachable without serde_json's `arbitrary_precision`.
        _ => out.push_str(&number.to_string()),
    }
}

fn write_double(x: f64, out: &mut String) {
    if x == 0.0 {
        // Minus zero too.
        out.push('0');
        return;
    }
    if x < 0.0 {
        out.push('-');
    }
    // The shortest digits that read back as `x`, and of two such the closest, ties to even:
    // Ryū chooses as ECMAScript does (Rust's own `{:e}` rounds a tie up). It writes them as
    // `123.45`, `1e21` or `1.2e-7`; what counts is the digits and where the point goes.
    let mut buffer = ryu::Buffer::new();
    let written = buffer.format_finite(x.abs());
    let (mantissa, exponent) = written.split_once(['e', 'E']).unwrap_or((written, "0"));
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The value is 0.DIGITS × 10^n.
    let mut n = whole.len() as i32 + exponent.parse::<i32>().unwrap_or(0);
    let mut digits = format!("{whole}{fraction}");
    while digits.len() > 1 && digits.starts_with('0') {
        digits.remove(0);
        n -= 1;
    }
    let digits = digits.trim_end_matches('0').to_string();
    let k = digits.len() as i32;
    let zeros = |count: i32, out: &mut String| {
        out.extend(std::iter::repeat_n('0', count.max(0) as usize));
    };
    if k <= n && n <= 21 {
        out.push_str(&digits);
        zeros(n - k, out);
    } else if 0 < n && n <= 21 {
        let (whole, fraction) = digits.split_at(n as usize);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        zeros(-n, out);
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_sort_by_utf16_code_units_without_white_space() {
        // RFC 8785 §3.2.3's sorting example: "\u{20ac}" (€, U+20AC) sorts before
        // "\u{1f600}" (😀, a surrogate pair starting 0xD83D) by UTF-16, though not by UTF-8…
        // and "\r" before "1" before "\u{80}".
        let value = json!({
            "\u{20ac}": "Euro Sign",
            "\r": "Carriage Return",
            "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\u{1f600}": "Emoji: Grinning Face",
            "\u{80}": "Control",
            "\u{f6}": "Latin Small Letter O With Diaeresis",
        });
        assert_eq!(
            to_string(&value),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    /// RFC 8785 Appendix B: IEEE 754 doubles (as bits) and how they are written.
    #[test]
    fn numbers_are_written_as_rfc_8785_appendix_b_shows() {
        let cases = [
            (0x0000000000000000_u64, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, expected) in cases {
            let value = serde_json::Number::from_f64(f64::from_bits(bits)).map(Value::Number);
            assert_eq!(
                value.as_ref().map(to_string).as_deref(),
                Some(expected),
                "{bits:016x}"
            );
        }
        // Integers a double holds are written whole; beyond 2^53 as the double they become.
        assert_eq!(to_string(&json!(-42)), "-42");
        assert_eq!(
            to_string(&json!(9_007_199_254_740_993_u64)),
            "9007199254740992"
        );
        assert_eq!(to_string(&json!(u64::MAX)), "18446744073709552000");
    }

    #[test]
    fn values_are_written_as_jcs_asks() {
        let value = json!({"b": [1, true, null, "x\u{1}\n\"y\\"], "a": {"d": -5, "c": "é/"}});
        assert_eq!(
            to_string(&value),
            r#"{"a":{"c":"é/","d":-5},"b":[1,true,null,"x\u0001\n\"y\\"]}"#
        );
    }
}
