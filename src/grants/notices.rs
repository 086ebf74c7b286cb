//! What the ticket is told about a grant: one comment when it is granted (or fails), one when
//! it ends, reminders before it expires.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::plan::describe;
use crate::notices::Notice;
use crate::store::grants::{Phase, Status, StepRow};
use crate::store::requests::Request;

fn base(request: &Request) -> Value {
    json!({"resource": request.resource, "level": request.level})
}

pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M").to_string()
}

/// A step in words: what, through what, and (for a failure) why.
pub fn line(row: &StepRow, with_error: bool) -> String {
    let mut text = describe(&row.plan.asked);
    if row.plan.applied != row.plan.asked {
        text.push_str(&format!(" (through {})", describe(&row.plan.applied)));
    }
    if row.granted_change.as_deref() == Some("pre_existing") {
        text.push_str(" (already held before this request)");
    }
    if with_error && let Some(e) = &row.error {
        text.push_str(&format!(": {e}"));
    }
    text
}

fn lines(rows: &[StepRow], phase: Phase, status: Status, with_error: bool) -> Vec<String> {
    rows.iter()
        .filter(|r| r.status(phase) == Some(status))
        .map(|r| line(r, with_error))
        .collect()
}

fn notice(template: &str, context: Value) -> Notice {
    Notice {
        template: template.into(),
        context,
        participants: Vec::new(),
        transition: None,
    }
}

pub fn granted(request: &Request, rows: &[StepRow]) -> Notice {
    let mut context = base(request);
    context["expires"] = json!(request.expires_at.map(when));
    context["done"] = json!(lines(rows, Phase::Grant, Status::Done, false));
    context["failed"] = json!(lines(rows, Phase::Grant, Status::Failed, true));
    notice("granted", context)
}

pub fn failed(request: &Request, rows: &[StepRow], reason: Option<&str>) -> Notice {
    let mut context = base(request);
    let rolled_back = rows.iter().any(|r| r.revoke_status == Some(Status::Done));
    context["rolled_back"] = json!(rolled_back);
    context["done"] = json!(lines(rows, Phase::Revoke, Status::Done, false));
    context["failed"] = json!(lines(rows, Phase::Grant, Status::Failed, true));
    context["reason"] = json!(reason);
    notice("grant_failed", context)
}

pub fn ended(request: &Request, rows: &[StepRow], expired: bool) -> Notice {
    let mut context = base(request);
    context["expired"] = json!(expired);
    context["revoked"] = json!(!expired);
    context["reason"] = json!(request.reason);
    context["done"] = json!(lines(rows, Phase::Revoke, Status::Done, false));
    context["kept"] = json!(lines(rows, Phase::Revoke, Status::Skipped, true));
    notice("ended", context)
}

pub fn revoke_failed(request: &Request, rows: &[StepRow]) -> Notice {
    let mut context = base(request);
    context["failed"] = json!(lines(rows, Phase::Revoke, Status::Failed, true));
    notice("revoke_failed", context)
}

/// A step keeps failing on a vendor's outage: said once, while it is still retried.
pub fn delayed(request: &Request, row: &StepRow, why: &str, until: DateTime<Utc>) -> Notice {
    let mut context = base(request);
    context["step"] = json!(describe(&row.plan.asked));
    context["why"] = json!(why);
    context["until"] = json!(when(until));
    notice("grant_delayed", context)
}

pub fn reminder(request: &Request, expires: DateTime<Utc>, left: std::time::Duration) -> Notice {
    let mut context = base(request);
    context["expires"] = json!(when(expires));
    context["left"] = json!(crate::duration::format(left));
    notice("expiry_reminder", context)
}

pub fn extended(request: &Request, approver: Option<&str>) -> Notice {
    let mut context = base(request);
    context["expires"] = json!(request.expires_at.map(when));
    context["approver"] = json!(approver);
    notice("extended", context)
}

pub fn drift(request: &Request, row: &StepRow) -> Notice {
    let mut context = base(request);
    context["target"] = json!(describe(&row.plan.applied));
    notice("drift", context)
}
