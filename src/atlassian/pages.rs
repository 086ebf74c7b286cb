//! The three paging styles of Atlassian's APIs, as pure "where is the next page" rules:
//! Jira `startAt`/`maxResults`/`total`/`isLast` (or a bare array), JSM `start`/`limit`/
//! `isLastPage`, and Confluence v2 cursors (`_links.next`, or a `Link: <…>; rel="next"` header).

use serde_json::Value;

/// Where the next page is, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Ask again with this offset (`startAt` for Jira, `start` for JSM).
    Offset(u64),
    /// Follow this URL or path (Confluence cursors).
    Link(String),
    Done,
}

/// Jira: `{startAt, maxResults, total?, isLast?, values|issues|…}` or a plain array (which the
/// user search returns: a short page means the end). `asked_start`/`asked_max` are what the
/// request asked for.
pub fn jira(page: &Value, items_key: &str, asked_start: u64, asked_max: u64) -> (Vec<Value>, Next) {
    if let Some(list) = page.as_array() {
        let next = if (list.len() as u64) < asked_max || list.is_empty() {
            Next::Done
        } else {
            Next::Offset(asked_start + list.len() as u64)
        };
        return (list.clone(), next);
    }
    let items = page
        .get(items_key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let start = page
        .get("startAt")
        .and_then(Value::as_u64)
        .unwrap_or(asked_start);
    let read_to = start + items.len() as u64;
    let is_last = page.get("isLast").and_then(Value::as_bool);
    let total = page.get("total").and_then(Value::as_u64);
    let next = match (is_last, total) {
        _ if items.is_empty() => Next::Done,
        (Some(true), _) => Next::Done,
        (Some(false), _) => Next::Offset(read_to),
        (None, Some(total)) if read_to >= total => Next::Done,
        (None, Some(_)) => Next::Offset(read_to),
        (None, None) if (items.len() as u64) < asked_max => Next::Done,
        (None, None) => Next::Offset(read_to),
    };
    (items, next)
}

/// JSM: `{start, limit, size, isLastPage, values}`.
pub fn jsm(page: &Value) -> (Vec<Value>, Next) {
    let items = page
        .get("values")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let start = page.get("start").and_then(Value::as_u64).unwrap_or(0);
    let last = page
        .get("isLastPage")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let next = if last || items.is_empty() {
        Next::Done
    } else {
        Next::Offset(start + items.len() as u64)
    };
    (items, next)
}

/// Confluence v2: `{results, _links: {next}}`, or the `Link` header's `rel="next"`.
pub fn confluence(page: &Value, link_header: Option<&str>) -> (Vec<Value>, Next) {
    let items = page
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let from_body = page
        .pointer("/_links/next")
        .and_then(Value::as_str)
        .map(str::to_string);
    let next = from_body
        .or_else(|| link_header.and_then(next_link))
        .map_or(Next::Done, Next::Link);
    (items, next)
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            p.trim()
                .replace(' ', "")
                .eq_ignore_ascii_case("rel=\"next\"")
                || p.trim().eq_ignore_ascii_case("rel=next")
        });
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn jira_pages_end_by_is_last_total_or_a_short_page() {
        let page = json!({"startAt": 0, "maxResults": 2, "total": 3, "values": [1, 2]});
        assert_eq!(jira(&page, "values", 0, 2).1, Next::Offset(2));
        let page = json!({"startAt": 2, "maxResults": 2, "total": 3, "values": [3]});
        assert_eq!(jira(&page, "values", 0, 2).1, Next::Done);
        let page = json!({"startAt": 0, "maxResults": 2, "isLast": false, "values": [1, 2]});
        assert_eq!(jira(&page, "values", 0, 2).1, Next::Offset(2));
        let page = json!({"startAt": 4, "isLast": true, "values": [5]});
        assert_eq!(jira(&page, "values", 0, 2).1, Next::Done);
        // The user search returns a bare array.
        assert_eq!(
            jira(&json!([1, 2]), "values", 4, 2),
            (vec![json!(1), json!(2)], Next::Offset(6))
        );
        assert_eq!(jira(&json!([1]), "values", 0, 2).1, Next::Done);
        assert_eq!(
            jira(&json!({"issues": [], "total": 9}), "issues", 0, 2).1,
            Next::Done
        );
    }

    #[test]
    fn jsm_pages_end_by_is_last_page() {
        let page = json!({"start": 50, "limit": 50, "size": 50, "isLastPage": false, "values": vec![0; 50]});
        assert_eq!(jsm(&page).1, Next::Offset(100));
        let page =
            json!({"start": 100, "limit": 50, "size": 3, "isLastPage": true, "values": [1, 2, 3]});
        assert_eq!(jsm(&page).1, Next::Done);
    }

    #[test]
    fn confluence_cursors_come_from_the_body_or_the_link_header() {
        let page = json!({"results": [1], "_links": {"next": "/wiki/api/v2/spaces?cursor=abc"}});
        assert_eq!(
            confluence(&page, None).1,
            Next::Link("/wiki/api/v2/spaces?cursor=abc".into())
        );
        let page = json!({"results": [1], "_links": {}});
        let header =
            r#"</wiki/api/v2/spaces?cursor=def>; rel="next", </wiki/api/v2/spaces>; rel="base""#;
        assert_eq!(
            confluence(&page, Some(header)).1,
            Next::Link("/wiki/api/v2/spaces?cursor=def".into())
        );
        assert_eq!(confluence(&page, None).1, Next::Done);
        assert_eq!(next_link(r#"<https://x/a?after=1>; rel="self""#), None);
    }
}
