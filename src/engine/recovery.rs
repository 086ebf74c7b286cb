//! Nothing missed: webhooks Jira gave up delivering (Tollgate was down for longer than Jira
//! retries) are read back from `/rest/api/3/webhook/failed` and fed through the same ingress writer,
//! where their delivery ids make them count once. As a safety net, tickets created in the last
//! two days but more than ten minutes ago (within the webhook JQL filter, if one is set) that
//! have no request are taken in.

use serde_json::Value;

use crate::failure::Failure;
use crate::ids::{TenantKey, TicketKey};
use crate::ingress::{Delivery, Door, HANDLED_EVENTS};
use crate::state::AppState;
use crate::store::tenants;

/// Reads every active Jira tenant's failed webhooks since the last read; returns how many
/// were handed to the ingress writer (already-seen ones are dropped there).
pub async fn recover(state: &AppState) -> Result<usize, Failure> {
    let mut recovered = 0;
    for tenant in tenants::active_connect_jira(&state.store).await? {
        let (_, site) = match state.site(&tenant).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "cannot read failed webhooks");
                continue;
            }
        };
        let after = tenants::recovery_after(&state.store, &tenant).await?;
        let failed = state.atlassian.failed_webhooks(&site, after).await?;
        let mut newest = after;
        for webhook in failed {
            newest = newest.max(Some(webhook.failure_time));
            let Some(body) = webhook.body else { continue };
            let event_type = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["webhookEvent"].as_str().map(str::to_string));
            let Some(event_type) = event_type.filter(|e| HANDLED_EVENTS.contains(&e.as_str()))
            else {
                continue;
            };
            let delivery = Delivery {
                tenant: tenant.clone(),
                ingress: Door::Connect,
                delivery_id: webhook.id.clone(),
                event_type,
                payload: body,
                received_at: state.clock.now(),
                // Read from Jira's own list of failed deliveries: no token came with it.
                signed: None,
            };
            match state.ingress.accept(delivery).await {
                Ok(_) => recovered += 1,
                Err(e) => {
                    // Not moving the cursor past it: the next run tries again.
                    tracing::warn!(%tenant, id = webhook.id, error = %e, "failed webhook not taken in");
                    return Ok(recovered);
                }
            }
        }
        if let Some(newest) = newest {
            tenants::set_recovery_after(&state.store, &tenant, newest, state.clock.now()).await?;
        }
        // Tickets younger than ten minutes may have their webhook on the way.
        let window = "created >= -2d AND created <= -10m ORDER BY created ASC";
        let jql = match state.config.connect.webhook_jql.as_deref() {
            Some(filter) if !filter.trim().is_empty() => format!("({filter}) AND {window}"),
            _ => window.to_string(),
        };
        for key in state.atlassian.search_keys(&site, &jql).await? {
            let (Ok(tenant), Ok(key)) = (TenantKey::parse(&tenant), TicketKey::parse(&key)) else {
                continue;
            };
            let known = crate::store::requests::by_ticket(&state.store, &tenant, &key).await?;
            if known.is_none()
                && super::intake::ensure_request(state, &tenant, &key)
                    .await?
                    .is_some()
            {
                recovered += 1;
            }
        }
    }
    if recovered > 0 {
        tracing::info!(recovered, "failed webhooks recovered");
    }
    Ok(recovered)
}
