//! Commands in the ticket about a grant: `/extend 7d [reason]` by the requester (an extension
//! is a child request routed like any other, asking for the new total duration) and
//! `/revoke [reason]` by an approver, the resource owner or an admin.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::audit::Actor;
use crate::engine::intake::{self, Asked, Outcome};
use crate::failure::Failure;
use crate::grants::run;
use crate::ids::{TenantKey, TicketKey};
use crate::notices as ticket;

use crate::ids::AccountId;
use crate::lifecycle::{Action, EndCause, State};
use crate::people::accounts;
use crate::state::AppState;
use crate::store::requests::{self, Request};
use crate::workflow::Owner;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Extend {
        by: Duration,
        reason: Option<String>,
    },
    Revoke {
        reason: Option<String>,
    },
}

/// `/extend DURATION [reason]` or `/revoke [reason]` on the comment's first line. A malformed
/// `/extend` is returned as an error to answer in the ticket.
pub fn command(text: &str) -> Option<Result<Command, String>> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let reason = |r: &str| (!r.is_empty()).then(|| r.to_string());
    match word.to_ascii_lowercase().as_str() {
        "/revoke" => Some(Ok(Command::Revoke {
            reason: reason(rest),
        })),
        "/extend" => {
            let (amount, why) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            Some(
                crate::duration::parse(amount)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .map(|by| Command::Extend {
                        by,
                        reason: reason(why.trim()),
                    })
                    .ok_or_else(|| {
                        format!("write how much longer, like /extend 7d or /extend 2w (`{amount}` is not a duration)")
                    }),
            )
        }
        _ => None,
    }
}

/// Answers a command that does not count, in the ticket and the audit log.
async fn refuse(
    state: &AppState,
    request: &Request,
    who: Option<&str>,
    account: &AccountId,
    why: &str,
    answer: &str,
) -> Result<(), Failure> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    run::event(
        &mut tx,
        request,
        now,
        Actor::Person(account.to_string()),
        Action::CommandRefused,
        json!({"why": why}),
    )
    .await?;
    let key = format!("{}:refused:{answer}", request.id);
    ticket::enqueue(&mut tx, request, ticket::refused(who, why), key).await?;
    tx.commit().await?;
    Ok(())
}

/// Handles a grant command from a comment; `answer` names the comment (once-only).
pub async fn handle(
    state: &AppState,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
    account: &AccountId,
    who: Option<&str>,
    command: Result<Command, String>,
    answer: &str,
) -> Result<(), Failure> {
    let Some(request) = requests::by_ticket(&state.store, tenant, ticket_key).await? else {
        return Ok(());
    };
    match command {
        Err(why) => refuse(state, &request, who, account, &why, answer).await,
        Ok(Command::Revoke { reason }) => {
            revoke(state, &request, account, who, reason.as_deref(), answer).await
        }
        Ok(Command::Extend { by, reason }) => {
            extend(state, &request, account, who, by, reason.as_deref(), answer).await
        }
    }
}

/// Whether `account` may revoke the grant: one of its approvers, the resource's owner, or a
/// member of the admin group.
async fn may_revoke(
    state: &AppState,
    request: &Request,
    account: &AccountId,
) -> Result<bool, Failure> {
    let mut plans = vec![request.plan.clone().unwrap_or_default()];
    for child in requests::children(&state.store, request.id).await? {
        plans.extend(child.plan);
    }
    let approver = plans
        .iter()
        .flat_map(|p| &p.stages)
        .flat_map(|s| &s.approvers)
        .any(|a| a.account.as_deref() == Some(account));
    if approver {
        return Ok(true);
    }
    let Some(org) = state.org.index() else {
        return Ok(false);
    };
    let (_, site) = state.site(&request.tenant).await?;
    let Some(person) = accounts::person_for_account(
        &state.store,
        &state.atlassian,
        &site,
        &org,
        &AccountId(account.to_string()),
        &*state.clock,
    )
    .await?
    else {
        return Ok(false);
    };
    let in_group = |group: &str| {
        org.group_members(group)
            .is_some_and(|members| members.contains(&person))
    };
    let owner = state
        .workflows()
        .and_then(|w| {
            let resource = w.catalog.get(request.resource.as_deref()?)?;
            Some(match &resource.owner {
                Some(Owner::User(email)) => org.by_email(email) == Some(person),
                Some(Owner::Group(group)) => in_group(group),
                None => false,
            })
        })
        .unwrap_or(false);
    let admin = state
        .config
        .grants
        .admin_group
        .as_deref()
        .is_some_and(in_group);
    Ok(owner || admin)
}

async fn revoke(
    state: &AppState,
    request: &Request,
    account: &AccountId,
    who: Option<&str>,
    reason: Option<&str>,
    answer: &str,
) -> Result<(), Failure> {
    if !matches!(request.state, State::Active | State::RevokeFailed) {
        // A second delivery of the same /revoke finds it revoking: nothing to say again.
        if matches!(
            request.state,
            State::Revoking | State::Revoked | State::Expired
        ) {
            return Ok(());
        }
        let why = format!(
            "there is no active access to revoke (this request is {}).",
            request.state.as_str()
        );
        return refuse(state, request, who, account, &why, answer).await;
    }
    if !may_revoke(state, request, account).await? {
        let why = "only an approver of this request, the resource's owner or an administrator may revoke it.";
        return refuse(state, request, who, account, why, answer).await;
    }
    // An administrator may revoke without being on the plan: named if the event named them.
    let by = who.map(|w| format!(" by {w}")).unwrap_or_default();
    let reason = match reason {
        Some(r) => format!("revoked{by}: {r}"),
        None => format!("revoked{by}"),
    };
    run::revoke_now(
        state,
        request.id,
        EndCause::Revoked,
        &reason,
        Actor::Approver(account.to_string()),
    )
    .await?;
    Ok(())
}

/// A revoking resolution set on the ticket revokes its grant.
pub async fn revoke_for_resolution(
    state: &AppState,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
    resolution: &str,
    by: Option<&str>,
) -> Result<bool, Failure> {
    let Some(request) = requests::by_ticket(&state.store, tenant, ticket_key).await? else {
        return Ok(false);
    };
    let actor = by.map_or_else(|| Actor::System("jira".into()), |a| Actor::Person(a.into()));
    run::revoke_now(
        state,
        request.id,
        EndCause::Revoked,
        &format!("the ticket was resolved as {resolution}"),
        actor,
    )
    .await
}

async fn extend(
    state: &AppState,
    parent: &Request,
    account: &AccountId,
    who: Option<&str>,
    by: Duration,
    reason: Option<&str>,
    answer: &str,
) -> Result<(), Failure> {
    // The same comment seen twice is one extension.
    let child_id = Uuid::new_v5(&parent.id, answer.as_bytes());
    if requests::get(&state.store, child_id).await?.is_some() {
        return Ok(());
    }
    let is_theirs =
        parent.requester_account == *account || parent.subject_account.as_ref() == Some(account);
    let refusal = if !is_theirs {
        Some("only the person who asked for this access may extend it.".to_string())
    } else if parent.state != State::Active || parent.expires_at.is_none() {
        Some(format!(
            "only active temporary access can be extended (this request is {}{}).",
            parent.state.as_str(),
            if parent.state == State::Active {
                ", with no end date"
            } else {
                ""
            }
        ))
    } else if requests::children(&state.store, parent.id)
        .await?
        .iter()
        .any(|c| c.state == State::Pending)
    {
        Some("an extension of this access is already waiting for approval.".to_string())
    } else {
        None
    };
    if let Some(why) = refusal {
        return refuse(state, parent, who, account, &why, answer).await;
    }
    let Some(workflows) = state.workflows() else {
        return Ok(());
    };
    let (_, site) = state.site(&parent.tenant).await?;
    let total = parent.duration_seconds.unwrap_or(0) + by.as_secs() as i64;
    let asked = Asked {
        resource: parent.resource.as_deref().map(str::to_string),
        level: parent.level.clone(),
        duration: Some(format!("{}s", total)),
        justification: reason.unwrap_or("extension").to_string(),
        on_behalf_of: parent
            .subject_email
            .as_ref()
            .and(parent.subject_account.as_deref().map(str::to_string)),
    };
    let now = state.clock.now();
    let mut child = Request {
        justification: asked.justification.clone(),
        ..Request::extension_of(parent, child_id, workflows.version.clone(), now)
    };
    let reporter = parent.requester_account.clone();
    let outcome = intake::decide(state, &site, &workflows, &reporter, &asked, &mut child).await?;

    let mut tx = state.store.begin().await?;
    if !requests::insert(&mut tx, &child).await? {
        tx.rollback().await?;
        return Ok(());
    }
    run::event(
        &mut tx,
        &child,
        now,
        Actor::Person(account.to_string()),
        Action::ExtensionRequested,
        json!({"parent": parent.id, "by_seconds": by.as_secs(), "total_seconds": total, "reason": reason, "state": child.state.as_str(), "plan": child.plan}),
    )
    .await?;
    let notice = match (&outcome, child.state) {
        (Outcome::Invalid(why), _) => ticket::declined(&child, None, Some(why)),
        (_, State::Approved) => {
            run::on_approved(&mut tx, &child).await?;
            ticket::auto_approved(&child)
        }
        (_, State::Declined) => ticket::declined(&child, None, child.reason.as_deref()),
        _ => {
            crate::engine::timers::schedule(&mut tx, state, &child, false).await?;
            let mut notice = ticket::routed(state, &child);
            notice.template = "extension_routed".into();
            notice.context["extra"] = json!(crate::duration::format(by));
            notice.context["reason"] = json!(reason);
            notice
        }
    };
    run::tell(&mut tx, &child, notice).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_from_the_first_line() {
        assert_eq!(
            command("/extend 7d quarter close runs late"),
            Some(Ok(Command::Extend {
                by: Duration::from_secs(7 * 86_400),
                reason: Some("quarter close runs late".into())
            }))
        );
        assert_eq!(
            command("/Revoke\nmore"),
            Some(Ok(Command::Revoke { reason: None }))
        );
        assert!(command("/extend soon").is_some_and(|r| r.is_err()));
        assert!(command("/extend 0d").is_some_and(|r| r.is_err()));
        assert_eq!(command("please /revoke"), None);
        assert_eq!(command("/approve"), None);
    }
}
