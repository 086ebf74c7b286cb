//! Decisions made in the ticket: JSM approvals answered by an approver, or `/approve` and
//! `/decline` comments. Only a current-stage approver who is not the requester decides, once;
//! a refused attempt is answered in the ticket and recorded in the audit log.

use serde_json::{Value, json};

use crate::failure::Failure;
use crate::ids::{AccountId, TenantKey, TicketKey};
use crate::lifecycle::{Action, Event, Next, Refusal, Verdict, approval};
use crate::notices;
use chrono::{DateTime, Utc};

use crate::atlassian::comments::{Comment, CommentId};
use crate::atlassian::jsm::Decision as JsmDecision;
use crate::audit::{self, Actor};
use crate::state::AppState;
use crate::store::requests;

/// `/approve [reason]` or `/decline [reason]` on the comment's first line; anything else is
/// conversation and ignored.
pub fn command(text: &str) -> Option<(Verdict, Option<String>)> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let verdict = match word.to_ascii_lowercase().as_str() {
        "/approve" => Verdict::Approve,
        "/decline" => Verdict::Decline,
        _ => return None,
    };
    let reason = rest.trim();
    Some((verdict, (!reason.is_empty()).then(|| reason.to_string())))
}

/// Names a comment's answer: the same comment seen twice (two deliveries, two doors, a
/// re-read) is one answer.
pub fn answer_of(comment: &Comment) -> String {
    format!("comment:{}", comment.id)
}

/// A decision in a comment read back from Jira (never the webhook body's word).
pub async fn from_comment(
    state: &AppState,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
    comment: &Comment,
) -> Result<(), Failure> {
    match Ballot::of_comment(comment) {
        Some(ballot) => apply(state, tenant, ticket_key, &ballot).await,
        None => Ok(()),
    }
}

/// Reads the request's JSM approvals and applies the answered ones.
pub async fn from_jsm_approvals(
    state: &AppState,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
) -> Result<(), Failure> {
    let (_, site) = state.site(tenant).await?;
    let approvals = state.atlassian.approvals(&site, ticket_key).await?;
    for approval in approvals {
        for vote in &approval.approvers {
            let verdict = match vote.decision {
                JsmDecision::Approved => Verdict::Approve,
                JsmDecision::Declined => Verdict::Decline,
                JsmDecision::Pending => continue,
            };
            let account = &vote.account;
            // Every later update re-reads the same answered approval: it is one answer.
            let ballot = Ballot {
                account,
                who: vote.name.as_deref(),
                verdict,
                reason: None,
                via: "jsm_approval",
                answer: format!("jsm:{}:{}", approval.id, account.0),
                reread: true,
                written: None,
                restricted: false,
                quiet: false,
            };
            apply(state, tenant, ticket_key, &ballot).await?;
        }
    }
    Ok(())
}

impl<'a> Ballot<'a> {
    /// The ballot a comment casts, if its first line is `/approve` or `/decline`.
    fn of_comment(comment: &'a Comment) -> Option<Self> {
        let (verdict, reason) = command(&comment.text)?;
        Some(Ballot {
            account: &comment.author,
            who: comment.author_name.as_deref(),
            verdict,
            reason,
            via: "comment",
            answer: answer_of(comment),
            reread: false,
            written: Some((comment.created, &comment.id)),
            restricted: comment.restricted,
            quiet: false,
        })
    }
}

struct Ballot<'a> {
    account: &'a AccountId,
    /// The person's display name, where the event gave one; never the account id (people
    /// read tickets).
    who: Option<&'a str>,
    verdict: Verdict,
    reason: Option<String>,
    via: &'static str,
    /// Names this answer, so the same answer seen again is answered (refused) once.
    answer: String,
    /// The ticket's approvals and comments were re-read from Jira for this ballot already.
    reread: bool,
    /// When and as which comment it was written (comments only): what came before it.
    written: Option<(DateTime<Utc>, &'a CommentId)>,
    /// The comment was internal or restricted to a role or group (the requester may not see it).
    restricted: bool,
    /// Applied because a later decision needed it first: a refusal is left to its own event.
    quiet: bool,
}

/// Applies the ticket's JSM approvals, and the decisions in comments written before `before`
/// (all of them when it is `None`), as Jira holds them now.
async fn apply_earlier(
    state: &AppState,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
    before: Option<(DateTime<Utc>, &CommentId)>,
) -> Result<(), Failure> {
    match from_jsm_approvals(state, tenant, ticket_key).await {
        Ok(()) => {}
        Err(e) if e.is_retryable() => return Err(e),
        // No approvals to read (not a JSM ticket): what the comments hold still counts.
        Err(e) => tracing::debug!(%ticket_key, error = %e, "approvals not re-read"),
    }
    let (_, site) = state.site(tenant).await?;
    let comments = state.atlassian.issue_comments(&site, ticket_key).await?;
    let earlier = comments
        .iter()
        .filter(|c| !c.by_app)
        .filter(|c| before.is_none_or(|(at, id)| (c.created, &c.id) < (at, id)));
    for comment in earlier {
        if let Some(ballot) = Ballot::of_comment(comment) {
            let ballot = Ballot {
                reread: true,
                quiet: true,
                ..ballot
            };
            apply(state, tenant, ticket_key, &ballot).await?;
        }
    }
    Ok(())
}

/// Applies `ballot` to what it decides: the ticket's request (or its extension waiting), or on
/// a lifecycle ticket each request waiting for a decision in it. One comment decides them all;
/// a refusal is told once.
async fn apply(
    state: &AppState,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
    ballot: &Ballot<'_>,
) -> Result<(), Failure> {
    let waiting = requests::pending_of_runs(&state.store, tenant, ticket_key).await?;
    if waiting.is_empty() {
        return apply_to(state, tenant, ticket_key, ballot, None).await;
    }
    for (n, id) in waiting.into_iter().map(|r| r.id).enumerate() {
        let ballot = Ballot {
            quiet: ballot.quiet || n > 0,
            answer: ballot.answer.clone(),
            reason: ballot.reason.clone(),
            ..*ballot
        };
        apply_to(state, tenant, ticket_key, &ballot, Some(id)).await?;
    }
    Ok(())
}

/// Applies one decision to the ticket's deciding request, or to request `id` of it.
async fn apply_to(
    state: &AppState,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
    ballot: &Ballot<'_>,
    id: Option<uuid::Uuid>,
) -> Result<(), Failure> {
    let now = state.clock.now();
    let reason = ballot.reason.as_deref();
    let mut tx = state.store.begin().await?;
    let locked = match id {
        Some(id) => requests::lock_id(&mut tx, id).await?,
        None => requests::lock_deciding(&mut tx, tenant, ticket_key).await?,
    };
    let Some(mut request) = locked else {
        tx.rollback().await?;
        return Ok(());
    };
    let plan = request.plan.clone().unwrap_or_default();
    let stage = request.stage as usize;
    if requests::answered(&mut tx, request.id, &ballot.answer).await? {
        // The same answer seen again: a JSM approval re-read on a later update, a comment
        // delivered twice (to two replicas).
        tx.rollback().await?;
        return Ok(());
    }
    let decided = requests::decided(&mut tx, request.id, request.stage).await?;
    // The requester, and whoever the access is for, cannot approve it.
    let mut requesters = vec![&request.requester_account];
    let subject = request
        .subject_email
        .as_deref()
        .or(request.requester_email.as_deref());
    requesters.extend(
        plan.stages
            .iter()
            .flat_map(|s| &s.approvers)
            .filter(|a| Some(a.email.as_str()) == subject)
            .filter_map(|a| a.account.as_ref()),
    );
    let approver = plan.stages.get(stage).and_then(|s| {
        s.approvers
            .iter()
            .find(|a| a.account.as_ref() == Some(ballot.account))
    });
    let name = approver
        .map(|a| a.name.as_str())
        .or(ballot.who)
        .unwrap_or_default()
        .to_string();
    let email = approver.map(|a| a.email.clone()).unwrap_or_default();
    let approver_event = |request: &requests::Request, action: Action, details: Value| {
        crate::audit::Event::of_request(
            request,
            now,
            Actor::Approver(ballot.account.to_string()),
            action,
            details,
        )
    };

    let outcome = approval::decide(
        request.state,
        &plan,
        stage,
        &requesters,
        &decided,
        ballot.account,
        ballot.verdict,
    );
    let next = match outcome {
        Ok(next) => next,
        Err(Refusal::AlreadyDecided) => {
            tx.rollback().await?;
            return Ok(());
        }
        Err(Refusal::NotPending) if ballot.via != "comment" => {
            tx.rollback().await?;
            return Ok(());
        }
        // Not this stage's approver: Jira may hold an earlier decision Tollgate has not seen
        // yet (a JSM approval or a comment whose webhook is late, or still being processed).
        // Judge on the facts: apply what Jira has from before this ballot, then it again.
        Err(Refusal::NotAnApprover { .. }) if !ballot.reread => {
            tx.rollback().await?;
            Box::pin(apply_earlier(state, tenant, ticket_key, ballot.written)).await?;
            let again = Ballot {
                reread: true,
                answer: ballot.answer.clone(),
                reason: ballot.reason.clone(),
                ..*ballot
            };
            return Box::pin(apply_to(state, tenant, ticket_key, &again, id)).await;
        }
        // An earlier comment applied during a re-read: its own event judges it.
        Err(_) if ballot.quiet => {
            tx.rollback().await?;
            return Ok(());
        }
        Err(refusal) => {
            let why = match &refusal {
                Refusal::SelfApproval => {
                    "you cannot approve access you asked for, or that is for you; an approver of this stage must.".to_string()
                }
                Refusal::NotAnApprover { stage: name, approvers } => format!(
                    "only {} may decide stage {} ({name}).",
                    if approvers.is_empty() { "the stage's approvers".to_string() } else { approvers.join(", ") },
                    stage + 1
                ),
                _ => format!("this request is already {}.", request.state.as_str()),
            };
            audit::append(
                &mut tx,
                &approver_event(&request,
                    Action::DecisionRefused,
                    json!({"verdict": ballot.verdict.as_str(), "via": ballot.via, "why": why, "stage": stage}),
                ),
            )
            .await?;
            notices::enqueue(
                &mut tx,
                &request,
                notices::refused(ballot.who.or(approver.map(|a| a.name.as_str())), &why),
                format!(
                    "{}:refused:{}:{}",
                    request.id, ballot.answer, ballot.account
                ),
            )
            .await?;
            tx.commit().await?;
            return Ok(());
        }
    };

    requests::record_decision(
        &mut tx,
        request.id,
        request.stage,
        ballot.account,
        &email,
        ballot.verdict,
        ballot.via,
        &ballot.answer,
        reason,
        now,
    )
    .await?;
    let declined = || {
        reason.map_or_else(
            || format!("declined by {name}"),
            |r| format!("declined by {name}: {r}"),
        )
    };
    let event = match next {
        Next::Waiting { .. } => Event::Counted,
        Next::Stage(open) => Event::StageApproved { next: open },
        Next::Approved => Event::Approved,
        Next::Declined => Event::Declined { reason: declined() },
    };
    // The request row is locked first, then (through the audit append) the chain head.
    let action = crate::lifecycle::apply(&mut request, event, now)?.action;
    let notice = match next {
        Next::Waiting {
            approvals,
            required,
        } => notices::waiting(&request, &name, reason, approvals, required),
        Next::Stage(_) => notices::stage_approved(&request, &name, reason, stage),
        Next::Approved => notices::approved(&request, &name, reason),
        Next::Declined => notices::declined(&request, Some(&name), reason),
    };
    // The row is locked, so a lost write is a bug; nothing half-applied is kept.
    crate::grants::run::save(&mut tx, &mut request).await?;
    if matches!(next, Next::Declined) {
        // Before the audit append: rows are locked before the chain head.
        crate::grants::review::on_declined(&mut tx, state, &request, now).await?;
    }
    audit::append(
        &mut tx,
        &approver_event(
            &request,
            action,
            json!({
                "stage": stage, "stage_name": plan.stages.get(stage).map(|s| &s.name),
                "via": ballot.via, "reason": reason, "approver_email": email,
                "state": request.state.as_str(), "open_stage": request.stage,
                // As read back from Jira: which comment, when, and who could see it.
                "comment": ballot.written.map(|(at, id)| json!({
                    "id": id.as_str(), "created": at, "restricted": ballot.restricted,
                })),
            }),
        ),
    )
    .await?;
    let key = format!("{}:v{}", request.id, request.version);
    notices::enqueue(&mut tx, &request, notice, key).await?;
    if matches!(next, Next::Stage(_)) {
        super::timers::schedule(&mut tx, state, &request, false).await?;
    }
    if matches!(next, Next::Approved) {
        crate::grants::run::on_approved(&mut tx, &request).await?;
    }
    tx.commit().await?;
    tracing::info!(
        %ticket_key,
        verdict = ballot.verdict.as_str(),
        via = ballot.via,
        state = request.state.as_str(),
        "decision recorded"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_the_first_line_only() {
        assert_eq!(command("/approve"), Some((Verdict::Approve, None)));
        assert_eq!(
            command("  /Decline   not for contractors \nmore"),
            Some((Verdict::Decline, Some("not for contractors".into())))
        );
        assert_eq!(command("I will /approve later"), None);
        assert_eq!(command("/approved"), None);
        assert_eq!(command(""), None);
    }
}
