//! Canonical JSON (RFC 8785, JCS) for audit events: the bytes that are hashed must not depend
//! on how a database or a library orders keys or spaces output.
//!
//! Objects' members are sorted by their names' UTF-16 code units; there is no white space;
//! strings are escaped as JCS asks (the short escapes, `\u00XX` for other control characters,
//! nothing else). Integers are written as they are; audit events carry no fractional numbers
//! (a float is written in its shortest round-trip form, which equals ECMAScript's for the
//! values an event could hold).

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
        Value::Number(n) => out.push_str(&n.to_string()),
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

    #[test]
    fn values_are_written_as_jcs_asks() {
        let value = json!({"b": [1, true, null, "x\u{1}\n\"y\\"], "a": {"d": -5, "c": "é/"}});
        assert_eq!(
            to_string(&value),
            r#"{"a":{"c":"é/","d":-5},"b":[1,true,null,"x\u0001\n\"y\\"]}"#
        );
    }
}
