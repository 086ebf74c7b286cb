//! A ticket moved to a cancelled status (or resolved as cancelled) cancels its pending request.

use serde_json::json;

use crate::audit::{self, Actor};
use crate::failure::Failure;
use crate::ids::{TenantKey, TicketKey};
use crate::lifecycle::Event;
use crate::state::AppState;
use crate::store::requests;

/// Status and resolution names that mean the requester withdrew the request.
const CANCELLED: &[&str] = &["cancelled", "canceled", "withdrawn", "won't do"];

fn means_cancelled(name: Option<&str>) -> bool {
    name.is_some_and(|n| CANCELLED.iter().any(|c| n.eq_ignore_ascii_case(c)))
}

/// Cancels the request if the ticket (read back through REST) says it was cancelled.
pub async fn if_ticket_cancelled(
    state: &AppState,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
) -> Result<(), Failure> {
    let (tenant_row, site) = state.site(tenant).await?;
    let issue = state.atlassian.issue(&site, ticket_key).await?;
    let resolution = issue
        .fields
        .pointer("/resolution/name")
        .and_then(serde_json::Value::as_str);
    // A resolution the intake mapping names as revoking ends an active grant now.
    let revoking = state.workflows().is_some_and(|w| {
        w.intake_for(&tenant_row.host).is_some_and(|m| {
            resolution.is_some_and(|r| {
                m.revoke_resolutions
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(r))
            })
        })
    });
    if revoking && let Some(resolution) = resolution {
        crate::engine::commands::revoke_for_resolution(state, tenant, ticket_key, resolution, None)
            .await?;
        return Ok(());
    }
    if !means_cancelled(issue.status.as_deref()) && !means_cancelled(resolution) {
        return Ok(());
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let Some(mut request) = requests::lock(&mut tx, tenant, ticket_key).await? else {
        tx.rollback().await?;
        return Ok(());
    };
    if !request.state.is_open() {
        tx.rollback().await?;
        return Ok(());
    }
    let cancelled = Event::Cancelled {
        reason: "the ticket was cancelled".into(),
    };
    let action = crate::lifecycle::apply(&mut request, cancelled, now)?.action;
    if !requests::update(&mut tx, &request).await? {
        tx.rollback().await?;
        return Ok(());
    }
    let actor = Actor::Person(request.requester_account.to_string());
    let details = json!({"status": issue.status, "resolution": resolution});
    audit::append(
        &mut tx,
        &crate::audit::Event::of_request(&request, now, actor, action, details),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%ticket_key, "request cancelled with its ticket");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_statuses_are_recognised() {
        assert!(means_cancelled(Some("Canceled")));
        assert!(means_cancelled(Some("Won't Do")));
        assert!(!means_cancelled(Some("Waiting for approval")));
        assert!(!means_cancelled(None));
    }
}
