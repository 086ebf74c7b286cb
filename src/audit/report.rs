//! Compliance reports: `access` (one row per request touching a period: who asked for what,
//! who approved it when and how, what was granted where, until when, and how it ended) and
//! `active` (who holds what through Tollgate right now).
//!
//! A report is produced page by page ([`Report::next_chunk`]): requests are read in keyset
//! pages with their decisions and steps, rendered, and handed on, so an export of any size
//! runs in constant memory, to a file or an HTTP response alike.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::ids::TenantKey;
use crate::lifecycle::State;
use crate::on_db;
use crate::store::grants::{self, Status, StepRow};
use crate::store::{Store, StoreError};

const PAGE: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown format {other:?}: use csv or json")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }
}

/// Which requests a report covers.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// Requests filed, granted or ended in `[from, to)`.
    Period {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// Requests holding access now.
    Active,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub scope: Scope,
    pub resource: Option<String>,
    /// The requester's or the subject's email.
    pub person: Option<String>,
    /// One site's requests (its client key); `None` for every site.
    pub tenant: Option<TenantKey>,
    /// Times are written in this zone.
    pub tz: Tz,
}

/// `--tz`: an IANA zone name (`Europe/Berlin`), default UTC.
pub fn parse_tz(text: Option<&str>) -> Result<Tz, String> {
    match text {
        None => Ok(Tz::UTC),
        Some(name) => name.parse::<Tz>().map_err(|_| {
            format!("unknown time zone {name:?}: use an IANA name such as Europe/Berlin")
        }),
    }
}

/// `--from`/`--to`: a date (midnight in `tz`) or an RFC 3339 time. `--to` given as a date
/// includes that whole day.
pub fn parse_bound(text: &str, tz: Tz, end: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))?;
    let date = if end {
        date.succ_opt()
            .ok_or_else(|| format!("{text:?} is out of range"))?
    } else {
        date
    };
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| format!("{text:?} has no midnight in {tz}"))
}

#[derive(Debug, sqlx::FromRow)]
struct RequestRow {
    id: String,
    ticket_key: String,
    base_url: Option<String>,
    state: String,
    requester_account: String,
    requester_email: Option<String>,
    subject_email: Option<String>,
    resource: Option<String>,
    level: Option<String>,
    justification: String,
    workflow: Option<String>,
    workflow_version: Option<String>,
    reason: Option<String>,
    created_at: DateTime<Utc>,
    granted_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    end_cause: Option<String>,
    parent_id: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct DecisionRow {
    request_id: String,
    stage: i64,
    approver_email: String,
    approver_account: String,
    verdict: String,
    via: String,
    decided_at: DateTime<Utc>,
}

const COLUMNS: &[&str] = &[
    "ticket",
    "ticket_url",
    "requested_at",
    "requester",
    "for",
    "resource",
    "level",
    "justification",
    "workflow",
    "workflow_version",
    "extension_of",
    "state",
    "approvals",
    "granted_at",
    "granted_where",
    "expires_at",
    "ended_at",
    "end_cause",
    "reason",
];

/// A report being produced.
pub struct Report {
    store: Store,
    query: Query,
    format: Format,
    /// Keyset position: the last (created_at, id) written.
    after: Option<(DateTime<Utc>, String)>,
    started: bool,
    done: bool,
    rows: u64,
}

impl Report {
    pub fn new(store: Store, query: Query, format: Format) -> Self {
        Self {
            store,
            query,
            format,
            after: None,
            started: false,
            done: false,
            rows: 0,
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The next piece of the document, `None` after the last.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            match self.format {
                Format::Csv => csv_line(&mut out, COLUMNS.iter().map(|c| c.to_string())),
                Format::Json => out.push(b'['),
            }
        }
        let page = self.page().await?;
        if page.is_empty() {
            self.done = true;
            if self.format == Format::Json {
                out.extend_from_slice(b"]\n");
            }
            return Ok(Some(out));
        }
        let ids: Vec<String> = page.iter().map(|r| r.id.clone()).collect();
        let decisions = self.decisions(&ids).await?;
        let steps = self.steps(&ids).await?;
        let mut decided: HashMap<&str, Vec<&DecisionRow>> = HashMap::new();
        for d in &decisions {
            decided.entry(d.request_id.as_str()).or_default().push(d);
        }
        let mut granted: HashMap<String, Vec<&StepRow>> = HashMap::new();
        for step in &steps {
            granted
                .entry(step.request_id.to_string())
                .or_default()
                .push(step);
        }
        for request in &page {
            let id = request.id.as_str();
            let record = self.record(
                request,
                decided.get(id).map_or(&[][..], Vec::as_slice),
                granted.get(id).map_or(&[][..], Vec::as_slice),
            );
            match self.format {
                Format::Csv => csv_line(&mut out, csv_fields(&record)),
                Format::Json => {
                    if self.rows > 0 {
                        out.push(b',');
                    }
                    out.push(b'\n');
                    out.extend_from_slice(record.to_string().as_bytes());
                }
            }
            self.rows += 1;
        }
        if let Some(last) = page.last() {
            self.after = Some((last.created_at, last.id.clone()));
        }
        Ok(Some(out))
    }

    async fn page(&self) -> Result<Vec<RequestRow>, StoreError> {
        let mut sql = String::from(
            "SELECT r.id, r.ticket_key, t.base_url, r.state, r.requester_account, \
             r.requester_email, r.subject_email, r.resource, r.level, r.justification, \
             r.workflow, r.workflow_version, r.reason, r.created_at, r.granted_at, r.expires_at, \
             r.ended_at, r.end_cause, r.parent_id \
             FROM requests r LEFT JOIN tenants t ON t.client_key = r.tenant WHERE ",
        );
        sql.push_str(&match self.query.scope {
            Scope::Period { .. } => "((r.created_at >= $1 AND r.created_at < $2) \
                 OR (r.granted_at >= $1 AND r.granted_at < $2) \
                 OR (r.ended_at >= $1 AND r.ended_at < $2))"
                .to_string(),
            // No period (both NULL), so every variant binds the same parameters.
            Scope::Active => format!(
                "r.state IN ({}) AND $1 IS NULL AND $2 IS NULL",
                State::sql_list(State::holds_access)
            ),
        });
        sql.push_str(
            " AND ($3 IS NULL OR r.resource = $3) \
             AND ($4 IS NULL OR lower(r.requester_email) = lower($4) OR lower(r.subject_email) = lower($4)) \
             AND ($8 IS NULL OR r.tenant = $8 \
                  OR r.tenant IN (SELECT alias FROM tenant_links WHERE site_tenant = $8))",
        );
        // A row-value keyset walks the (created_at, id) index in order and stops at the page's
        // end: each page costs its own rows, not a scan and sort of the whole table.
        sql.push_str(if self.after.is_some() {
            " AND (r.created_at, r.id) > ($5, $6)"
        } else {
            " AND $5 IS NULL AND $6 IS NULL"
        });
        sql.push_str(" ORDER BY r.created_at, r.id LIMIT $7");
        let (from, to) = match self.query.scope {
            Scope::Period { from, to } => (Some(from), Some(to)),
            Scope::Active => (None, None),
        };
        let (after_at, after_id) = match &self.after {
            Some((at, id)) => (Some(*at), Some(id.clone())),
            None => (None, None),
        };
        let rows = on_db!(self.store.db(), |pool| {
            sqlx::query_as::<_, RequestRow>(sqlx::AssertSqlSafe(sql.clone()))
                .bind(from)
                .bind(to)
                .bind(&self.query.resource)
                .bind(&self.query.person)
                .bind(after_at)
                .bind(after_id.clone())
                .bind(PAGE)
                .bind(self.query.tenant.as_deref())
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    async fn decisions(&self, ids: &[String]) -> Result<Vec<DecisionRow>, StoreError> {
        let sql = format!(
            "SELECT request_id, stage, approver_email, approver_account, verdict, via, decided_at \
             FROM decisions WHERE request_id IN ({}) ORDER BY decided_at, stage",
            placeholders(ids.len())
        );
        on_db!(self.store.db(), |pool| {
            let mut q = sqlx::query_as::<_, DecisionRow>(sqlx::AssertSqlSafe(sql.clone()));
            for id in ids {
                q = q.bind(id);
            }
            q.fetch_all(pool).await
        })
        .map_err(Into::into)
    }

    async fn steps(&self, ids: &[String]) -> Result<Vec<StepRow>, StoreError> {
        let ids: Vec<Uuid> = ids
            .iter()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect();
        grants::of_requests(&self.store, &ids).await
    }

    fn time(&self, at: Option<DateTime<Utc>>) -> Value {
        at.map(|at| {
            Value::String(
                at.with_timezone(&self.query.tz)
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
            )
        })
        .unwrap_or(Value::Null)
    }

    fn record(&self, r: &RequestRow, decisions: &[&DecisionRow], steps: &[&StepRow]) -> Value {
        let url = r
            .base_url
            .as_ref()
            .map(|base| format!("{}/browse/{}", base.trim_end_matches('/'), r.ticket_key));
        let requester = r
            .requester_email
            .clone()
            .unwrap_or_else(|| r.requester_account.clone());
        json!({
            "ticket": r.ticket_key,
            "ticket_url": url,
            "requested_at": self.time(Some(r.created_at)),
            "requester": requester,
            "for": r.subject_email.clone().unwrap_or_else(|| requester.clone()),
            "resource": r.resource,
            "level": r.level,
            "justification": r.justification,
            "workflow": r.workflow,
            "workflow_version": r.workflow_version,
            "extension_of": r.parent_id,
            "state": r.state,
            "approvals": decisions.iter().map(|d| json!({
                "stage": d.stage + 1,
                "who": if d.approver_email.is_empty() { &d.approver_account } else { &d.approver_email },
                "verdict": d.verdict,
                "when": self.time(Some(d.decided_at)),
                "how": d.via,
            })).collect::<Vec<_>>(),
            "granted_at": self.time(r.granted_at),
            "granted_where": steps.iter().map(|s| json!({
                "target": s.plan.target_key(),
                "granted": s.grant_status.as_str(),
                "revoked": s.revoke_status.map(Status::as_str),
                "error": s.error,
            })).collect::<Vec<_>>(),
            "expires_at": self.time(r.expires_at),
            "ended_at": self.time(r.ended_at),
            "end_cause": r.end_cause,
            "reason": r.reason,
        })
    }
}

/// `$1, $2, …, $n` for an `IN (…)` list (at least one, so an empty list stays valid SQL).
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n.max(1))
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The CSV cells of a record: lists joined with `; `, so one request stays one row.
fn csv_fields(record: &Value) -> Vec<String> {
    COLUMNS
        .iter()
        .map(|column| match (*column, &record[*column]) {
            ("approvals", Value::Array(all)) => all
                .iter()
                .map(|d| {
                    format!(
                        "stage {} {} by {} at {} via {}",
                        d["stage"],
                        text(&d["verdict"]),
                        text(&d["who"]),
                        text(&d["when"]),
                        text(&d["how"])
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            ("granted_where", Value::Array(all)) => all
                .iter()
                .map(|s| {
                    let mut cell = format!("{} ({}", text(&s["target"]), text(&s["granted"]));
                    if let Value::String(revoked) = &s["revoked"] {
                        cell.push_str(&format!(", revoke {revoked}"));
                    }
                    cell.push(')');
                    cell
                })
                .collect::<Vec<_>>()
                .join("; "),
            (_, value) => text(value),
        })
        .collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One RFC 4180 record, CRLF-terminated. A cell a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) is prefixed with `'`, so a justification cannot become one.
/// Written here rather than with the `csv` crate: quoting is these few lines, the formula
/// guard would sit outside the crate anyway, and the report tests read the output back with an
/// independent reader (Python's `csv`).
pub fn csv_line(out: &mut Vec<u8>, cells: impl IntoIterator<Item = String>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let cell = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{cell}")
        } else {
            cell
        };
        if cell.contains([',', '"', '\r', '\n']) {
            out.push(b'"');
            out.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(cell.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_as_rfc_4180_asks_and_never_formulas() {
        let mut out = Vec::new();
        csv_line(
            &mut out,
            [
                "plain",
                "a,b",
                "say \"hi\"",
                "two\nlines",
                "=HYPERLINK(\"x\")",
                "",
            ]
            .map(String::from),
        );
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"'=HYPERLINK(\"\"x\"\")\",\r\n"
        );
    }

    #[test]
    fn bounds_are_dates_in_the_zone_or_exact_times() {
        let berlin = parse_tz(Some("Europe/Berlin")).expect("zone");
        assert_eq!(
            parse_bound("2026-07-01", berlin, false).expect("from"),
            "2026-06-30T22:00:00Z".parse::<DateTime<Utc>>().expect("t")
        );
        // A `to` date includes its whole day.
        assert_eq!(
            parse_bound("2026-07-01", Tz::UTC, true).expect("to"),
            "2026-07-02T00:00:00Z".parse::<DateTime<Utc>>().expect("t")
        );
        assert_eq!(
            parse_bound("2026-07-01T10:30:00+02:00", Tz::UTC, false).expect("time"),
            "2026-07-01T08:30:00Z".parse::<DateTime<Utc>>().expect("t")
        );
        assert!(parse_bound("July 1st", Tz::UTC, false).is_err());
        assert!(parse_tz(Some("Mars/Olympus")).is_err());
    }
}
