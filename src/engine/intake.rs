//! A new ticket becomes a request: read it back through REST (webhook payloads are incomplete),
//! map its fields with the intake mapping, find the requester in the org chart, route it, and
//! store the outcome with its audit events and the ticket notice, in one transaction.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::atlassian::adf;
use crate::audit::{self, Actor};
use crate::failure::Failure;
use crate::ids::{ResourceId, TenantKey, TicketKey};
use crate::lifecycle::{self, Action, Approver, Event, Plan, PlannedStage, State};
use crate::notices;
use crate::orgchart::{AccountId, Email, OrgIndex};
use crate::people::accounts;
use crate::state::AppState;
use crate::store::requests::{self, Request};
use crate::workflow::{
    Decision, FieldRef, IntakeMapping, RequestedDuration, RouteRequest, Workflows, route,
};

/// A field's value as text: option fields (`{value}`), users (`{accountId}`), ADF, strings.
fn text_of(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => return items.first().and_then(text_of),
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("doc") {
                adf::plain_text(value)
            } else if let Some(v) = ["value", "accountId", "name", "key", "id"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_str))
            {
                v.to_string()
            } else {
                return None;
            }
        }
        Value::Bool(b) => b.to_string(),
    };
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// A mapped field: by id in the issue's fields, else by id or label among JSM's field values.
fn field(issue_fields: &Value, request_fields: &[Value], field: &FieldRef) -> Option<String> {
    if let Some(v) = issue_fields.get(&field.0).and_then(text_of) {
        return Some(v);
    }
    request_fields
        .iter()
        .find(|f| {
            f["fieldId"] == field.0.as_str()
                || f["label"]
                    .as_str()
                    .is_some_and(|l| l.eq_ignore_ascii_case(&field.0))
        })
        .and_then(|f| text_of(&f["value"]))
}

fn parse_duration(text: Option<&str>) -> Result<RequestedDuration, String> {
    match text.map(str::trim) {
        None | Some("") => Ok(RequestedDuration::Unspecified),
        Some(t) if t.eq_ignore_ascii_case("permanent") => Ok(RequestedDuration::Permanent),
        Some(t) => crate::duration::parse(t)
            .map(RequestedDuration::For)
            .map_err(|e| {
                format!("the duration `{t}` is not understood ({e}); write it like 8h, 14d or 2w")
            }),
    }
}

/// What the ticket asked for, before routing.
pub(crate) struct Asked {
    pub resource: Option<String>,
    pub level: Option<String>,
    pub duration: Option<String>,
    pub justification: String,
    pub on_behalf_of: Option<String>,
}

fn is_access_request(
    mapping: &IntakeMapping,
    type_id: Option<&str>,
    type_name: Option<&str>,
) -> bool {
    mapping.request_types.iter().any(|t| {
        type_id.is_some_and(|id| id == t) || type_name.is_some_and(|n| n.eq_ignore_ascii_case(t))
    })
}

/// The ticket's request, taking it in first if it is new. `None` when the ticket is not an
/// access request (or no workflows are loaded to say what one is).
pub async fn ensure_request(
    state: &AppState,
    tenant_key: &TenantKey,
    ticket_key: &TicketKey,
) -> Result<Option<Request>, Failure> {
    if let Some(existing) = requests::by_ticket(&state.store, tenant_key, ticket_key).await? {
        return Ok(Some(existing));
    }
    let Some(workflows) = state.workflows() else {
        tracing::error!(%ticket_key, "no workflows are loaded: ticket not taken in");
        return Ok(None);
    };
    let (tenant, site) = state.site(tenant_key).await?;
    let Some(mapping) = workflows.intake_for(&tenant.host) else {
        return Ok(None);
    };
    let atlassian = &state.atlassian;
    let customer = atlassian.customer_request(&site, ticket_key).await?;
    if !is_access_request(
        mapping,
        customer.request_type_id.as_deref(),
        customer.request_type_name.as_deref(),
    ) {
        tracing::debug!(%ticket_key, "not an access request type; ignored");
        return Ok(None);
    }
    let issue = atlassian.issue(&site, ticket_key).await?;
    let fields = &mapping.fields;
    let get = |f: &FieldRef| field(&issue.fields, &customer.field_values, f);
    let asked = Asked {
        resource: get(&fields.resource),
        level: fields.level.as_ref().and_then(get),
        duration: fields.duration.as_ref().and_then(get),
        justification: fields
            .justification
            .as_ref()
            .and_then(get)
            .unwrap_or_default(),
        on_behalf_of: fields.on_behalf_of.as_ref().and_then(get),
    };
    let reporter = customer
        .reporter
        .clone()
        .or(issue.reporter.clone())
        .unwrap_or_else(|| AccountId("unknown".into()));

    let now = state.clock.now();
    let mut request = Request {
        // What the ticket wrote, until the catalog names it below.
        resource: asked.resource.clone().map(ResourceId),
        level: asked.level.clone(),
        justification: asked.justification.clone(),
        ..Request::received(
            Uuid::now_v7(),
            tenant_key.clone(),
            ticket_key.clone(),
            issue.id.clone(),
            reporter.clone(),
            workflows.version.clone(),
            now,
        )
    };
    let outcome = decide(state, &site, &workflows, &reporter, &asked, &mut request).await?;

    let mut tx = state.store.begin().await?;
    if !requests::insert(&mut tx, &request).await? {
        // Another worker took the ticket in meanwhile.
        tx.rollback().await?;
        return Ok(requests::by_ticket(&state.store, tenant_key, ticket_key).await?);
    }
    let event = |actor: Actor, action: Action, details: Value| {
        crate::audit::Event::of_request(&request, now, actor, action, details)
    };
    audit::append(
        &mut tx,
        &event(
            Actor::Person(reporter.0.clone()),
            Action::RequestReceived,
            json!({
                "resource": asked.resource, "level": asked.level, "duration": asked.duration,
                "justification": asked.justification, "on_behalf_of": asked.on_behalf_of,
                "requester_email": request.requester_email,
            }),
        ),
    )
    .await?;
    let (action, notice) = match &outcome {
        Outcome::Invalid(reason) => (Action::RequestInvalid, notices::invalid(&request, reason)),
        Outcome::Routed(action) => (
            *action,
            match request.state {
                State::Approved => notices::auto_approved(&request),
                State::Declined => notices::declined(&request, None, request.reason.as_deref()),
                _ => notices::routed(state, &request),
            },
        ),
    };
    audit::append(
        &mut tx,
        &event(
            Actor::System("engine".into()),
            action,
            json!({"state": request.state.as_str(), "workflow": request.workflow, "plan": request.plan, "reason": request.reason}),
        ),
    )
    .await?;
    notices::enqueue(
        &mut tx,
        &request,
        notice,
        format!("{}:{}", request.id, action.as_str()),
    )
    .await?;
    super::timers::schedule(&mut tx, state, &request, false).await?;
    if request.state == State::Approved {
        crate::grants::run::on_approved(&mut tx, &request).await?;
    }
    tx.commit().await?;
    tracing::info!(
        %ticket_key,
        state = request.state.as_str(),
        "request taken in"
    );
    Ok(Some(request))
}

pub(crate) enum Outcome {
    /// Routed, as the audit log names what routing decided.
    Routed(Action),
    /// Declined before routing, with what the requester must fix.
    Invalid(String),
}

/// Resolves the people, routes, and fills in the request's state and plan.
pub(crate) async fn decide(
    state: &AppState,
    site: &crate::atlassian::Site,
    workflows: &Workflows,
    reporter: &AccountId,
    asked: &Asked,
    request: &mut Request,
) -> Result<Outcome, Failure> {
    let now = state.clock.now();
    let invalid = |request: &mut Request, reason: String| {
        lifecycle::apply(
            request,
            Event::Invalid {
                reason: reason.clone(),
            },
            now,
        )?;
        Ok(Outcome::Invalid(reason))
    };
    // Not synced yet (a new deployment, a worker whose first sync is running): the ticket
    // waits for the chart rather than being declined for want of it.
    let Some(org) = state.org.index() else {
        return Err(Failure::NotReady(
            "the org chart has not been synced yet".into(),
        ));
    };
    let clock = &*state.clock;
    let Some(filer) =
        accounts::person_for_account(&state.store, &state.atlassian, site, &org, reporter, clock)
            .await?
    else {
        state.newest_chart().await?;
        return invalid(
            request,
            "your Atlassian account could not be matched to a person in the org chart".into(),
        );
    };
    let filer_email = org.person(filer).email.clone();
    request.requester_email = Some(filer_email.clone());
    request.subject_person = Some(org.person(filer).id.clone());
    let subject_email = match &asked.on_behalf_of {
        None => None,
        Some(account) => {
            let found = accounts::person_for_account(
                &state.store,
                &state.atlassian,
                site,
                &org,
                &AccountId(account.clone()),
                clock,
            )
            .await?;
            match found {
                Some(p) => {
                    request.subject_person = Some(org.person(p).id.clone());
                    Some(org.person(p).email.clone())
                }
                None => {
                    state.newest_chart().await?;
                    return invalid(
                        request,
                        "the person this request is for is not in the org chart".into(),
                    );
                }
            }
        }
    };
    request.subject_email = subject_email.clone();
    let Some(asked_resource) = asked.resource.as_deref() else {
        return invalid(request, "no resource was chosen".into());
    };
    // The Resource field's options are the catalog's names (`workflows jsm-options`); ids work too.
    let resource = workflows
        .catalog
        .resources()
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(asked_resource.trim()))
        .map_or(asked_resource, |r| r.id.0.as_str());
    request.resource = Some(ResourceId(resource.to_string()));
    let duration = match parse_duration(asked.duration.as_deref()) {
        Ok(d) => d,
        Err(reason) => return invalid(request, reason),
    };
    let routing = match route(
        workflows,
        &org,
        &RouteRequest {
            filed_by: &filer_email,
            on_behalf_of: subject_email.as_ref(),
            resource,
            level: asked.level.as_deref(),
            duration,
            justification: &asked.justification,
            now: state.clock.now(),
        },
    ) {
        Ok(r) => r,
        Err(e) => return invalid(request, e.to_string()),
    };
    request.workflow = routing.workflow.clone();
    request.workflow_version = Some(routing.workflow_version.clone());
    request.duration_seconds = routing.duration_seconds.map(|s| s as i64);
    request.level = routing.level.clone();
    let plan = plan_of(state, site, &org, &routing).await?;
    let event = match routing.decision {
        Decision::AutoApproved => Event::AutoApproved,
        Decision::Denied => Event::Denied {
            reason: routing.reasons.join("; "),
        },
        Decision::Pending => match plan.open_stage(0) {
            Some(stage) => Event::Routed { stage },
            None => Event::Denied {
                reason: "no stage has anyone who may approve".into(),
            },
        },
    };
    let routed = lifecycle::apply(request, event, now)?;
    request.plan = Some(plan);
    Ok(Outcome::Routed(routed.action))
}

/// An approver by email: their name from the org chart and their Atlassian account, when
/// either can be found (someone outside the org chart keeps their email as name).
pub(crate) async fn approver(
    state: &AppState,
    site: &crate::atlassian::Site,
    org: &OrgIndex,
    email: &str,
) -> Result<Approver, Failure> {
    let Some(idx) = Email::parse(email).ok().and_then(|e| org.by_email(&e)) else {
        return Ok(Approver {
            email: email.to_string(),
            name: email.to_string(),
            account: None,
        });
    };
    let person = org.person(idx);
    let account =
        accounts::account_for(&state.store, &state.atlassian, site, person, &*state.clock).await?;
    Ok(Approver {
        email: email.to_string(),
        name: person.display_name.clone(),
        account,
    })
}

/// The routing's stages with each approver's name and Atlassian account.
async fn plan_of(
    state: &AppState,
    site: &crate::atlassian::Site,
    org: &OrgIndex,
    routing: &crate::workflow::Routing,
) -> Result<Plan, Failure> {
    let mut stages = Vec::new();
    for stage in &routing.stages {
        let mut approvers = Vec::new();
        for email in &stage.approvers {
            approvers.push(approver(state, site, org, email).await?);
        }
        stages.push(PlannedStage {
            name: stage.name.clone(),
            approvers,
            required: stage.required,
            skipped: stage.skipped,
            why: stage.why.clone(),
        });
    }
    Ok(Plan {
        stages,
        reasons: routing.reasons.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn field_values_read_from_every_shape() {
        assert_eq!(
            text_of(&json!({"id": "1", "value": "netsuite"})).as_deref(),
            Some("netsuite")
        );
        assert_eq!(
            text_of(&json!({"accountId": "abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(
            text_of(&json!([{"value": "a"}, {"value": "b"}])).as_deref(),
            Some("a")
        );
        assert_eq!(text_of(&json!("  ")), None);
        assert_eq!(
            text_of(&adf::render("Quarter close")).as_deref(),
            Some("Quarter close")
        );
        let request_fields = vec![
            json!({"fieldId": "customfield_1", "label": "Access level", "value": {"value": "admin"}}),
        ];
        assert_eq!(
            field(
                &json!({}),
                &request_fields,
                &FieldRef("Access level".into())
            )
            .as_deref(),
            Some("admin")
        );
    }

    #[test]
    fn durations_are_checked() {
        assert_eq!(parse_duration(None), Ok(RequestedDuration::Unspecified));
        assert_eq!(
            parse_duration(Some("Permanent")),
            Ok(RequestedDuration::Permanent)
        );
        assert_eq!(
            parse_duration(Some("14d")),
            Ok(RequestedDuration::For(Duration::from_secs(14 * 86_400)))
        );
        assert!(parse_duration(Some("a fortnight")).is_err_and(|e| e.contains("8h, 14d or 2w")));
    }
}
