//! Plain template text to the Atlassian Document Format Jira v3 wants for comment bodies.
//!
//! The text is what workflow templates produce: paragraphs separated by blank lines, lines
//! starting with `- ` or `* ` as bullet lists, `**bold**`, `[label](url)` and bare `http(s)://`
//! links. Anything else stays literal text: ADF is structured, so no input can inject markup.

use serde_json::{Value, json};

pub fn render(text: &str) -> Value {
    let normalized = text.replace("\r\n", "\n");
    let mut content = Vec::new();
    for block in normalized.split("\n\n") {
        let lines: Vec<&str> = block
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .collect();
        if lines.is_empty() {
            continue;
        }
        if lines.iter().all(|l| bullet(l).is_some()) {
            let items: Vec<Value> = lines
                .iter()
                .filter_map(|l| bullet(l))
                .map(|item| json!({"type": "listItem", "content": [paragraph(&[item])]}))
                .collect();
            content.push(json!({"type": "bulletList", "content": items}));
        } else {
            content.push(paragraph(&lines));
        }
    }
    json!({"type": "doc", "version": 1, "content": content})
}

/// The text of an ADF document (or plain text as is): paragraphs and list items on their own
/// lines. Webhooks and v3 reads give ADF; commands and justifications are read from this.
pub fn plain_text(value: &Value) -> String {
    fn walk(node: &Value, out: &mut String) {
        match node {
            Value::String(s) => out.push_str(s),
            Value::Object(map) => {
                if let Some(text) = map.get("text").and_then(Value::as_str) {
                    out.push_str(text);
                }
                if map.get("type").and_then(Value::as_str) == Some("hardBreak") {
                    out.push('\n');
                }
                if let Some(children) = map.get("content").and_then(Value::as_array) {
                    for child in children {
                        walk(child, out);
                    }
                }
                if matches!(
                    map.get("type").and_then(Value::as_str),
                    Some("paragraph" | "heading" | "listItem" | "codeBlock")
                ) && !out.ends_with('\n')
                {
                    out.push('\n');
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    walk(value, &mut out);
    out.trim().to_string()
}

fn bullet(line: &str) -> Option<&str> {
    let line = line.trim_start();
    line.strip_prefix("- ").or_else(|| line.strip_prefix("* "))
}

/// One paragraph; its lines are joined by hard breaks.
fn paragraph(lines: &[&str]) -> Value {
    let mut nodes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            nodes.push(json!({"type": "hardBreak"}));
        }
        inline(line, &mut nodes);
    }
    json!({"type": "paragraph", "content": nodes})
}

/// Splits a line into text nodes with `strong` and `link` marks.
fn inline(line: &str, out: &mut Vec<Value>) {
    let mut rest = line;
    let mut bold = false;
    while !rest.is_empty() {
        let next_bold = rest.find("**");
        let next_link = find_link(rest);
        let next_url = find_url(rest);
        let first = [
            next_bold.map(|i| (i, 0)),
            next_link.map(|(i, ..)| (i, 1)),
            next_url.map(|(i, _)| (i, 2)),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some((at, kind)) = first else {
            push_text(out, rest, bold, None);
            break;
        };
        push_text(out, &rest[..at], bold, None);
        match kind {
            0 => {
                bold = !bold;
                rest = &rest[at + 2..];
            }
            1 => {
                let Some((_, label, url, end)) = next_link else {
                    break;
                };
                push_text(out, label, bold, Some(url));
                rest = &rest[end..];
            }
            _ => {
                let Some((_, end)) = next_url else { break };
                let url = &rest[at..end];
                push_text(out, url, bold, Some(url));
                rest = &rest[end..];
            }
        }
    }
}

fn push_text(out: &mut Vec<Value>, text: &str, bold: bool, link: Option<&str>) {
    if text.is_empty() {
        return;
    }
    let mut marks = Vec::new();
    if bold {
        marks.push(json!({"type": "strong"}));
    }
    if let Some(href) = link {
        marks.push(json!({"type": "link", "attrs": {"href": href}}));
    }
    if marks.is_empty() {
        out.push(json!({"type": "text", "text": text}));
    } else {
        out.push(json!({"type": "text", "text": text, "marks": marks}));
    }
}

/// `[label](http…)`: (start, label, url, end).
fn find_link(text: &str) -> Option<(usize, &str, &str, usize)> {
    let mut from = 0;
    while let Some(open) = text[from..].find('[').map(|i| i + from) {
        let close = text[open..].find("](").map(|i| i + open)?;
        let url_start = close + 2;
        let url_end = text[url_start..].find(')').map(|i| i + url_start)?;
        let url = &text[url_start..url_end];
        if is_url(url) && !text[open + 1..close].contains('[') {
            return Some((open, &text[open + 1..close], url, url_end + 1));
        }
        from = open + 1;
    }
    None
}

/// A bare `http(s)://…` up to white space: (start, end).
fn find_url(text: &str) -> Option<(usize, usize)> {
    let start = ["https://", "http://"]
        .iter()
        .filter_map(|p| text.find(p))
        .min()?;
    let len = text[start..]
        .find(|c: char| c.is_whitespace())
        .unwrap_or(text.len() - start);
    // A sentence's closing punctuation is not part of the link.
    let url = text[start..start + len].trim_end_matches(['.', ',', ';', ':', ')', '!', '?']);
    Some((start, start + url.len()))
}

fn is_url(text: &str) -> bool {
    (text.starts_with("https://") || text.starts_with("http://")) && !text.contains(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_breaks_and_lists() {
        let doc = render("Routed to **Dan Diaz**.\nStage 1 of 2\n\n- Dan Diaz\n- Ola Olsen\n\n");
        assert_eq!(
            doc,
            json!({"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [
                    {"type": "text", "text": "Routed to "},
                    {"type": "text", "text": "Dan Diaz", "marks": [{"type": "strong"}]},
                    {"type": "text", "text": "."},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "Stage 1 of 2"},
                ]},
                {"type": "bulletList", "content": [
                    {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Dan Diaz"}]}]},
                    {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Ola Olsen"}]}]},
                ]},
            ]})
        );
    }

    #[test]
    fn links_with_labels_and_bare() {
        let doc = render("See [the policy](https://wiki.example/p) or https://x.example/a.");
        let content = &doc["content"][0]["content"];
        assert_eq!(content[1]["text"], "the policy");
        assert_eq!(
            content[1]["marks"][0]["attrs"]["href"],
            "https://wiki.example/p"
        );
        assert_eq!(content[3]["text"], "https://x.example/a");
        assert_eq!(content[4]["text"], ".");
    }

    #[test]
    fn plain_text_reads_back_what_render_wrote() {
        let doc = render("/approve looks fine\nsecond line\n\n- a\n- b");
        assert_eq!(plain_text(&doc), "/approve looks fine\nsecond line\na\nb");
        assert_eq!(plain_text(&json!("  plain  ")), "plain");
    }

    #[test]
    fn markup_like_input_stays_text() {
        let doc = render("[not a link](javascript:alert(1)) <b>x</b> **unclosed");
        let texts: String = doc["content"][0]["content"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| n["text"].as_str())
                    .collect::<String>()
            })
            .unwrap_or_default();
        assert_eq!(texts, "[not a link](javascript:alert(1)) <b>x</b> unclosed");
        assert!(!doc.to_string().contains("\"link\""));
    }
}
