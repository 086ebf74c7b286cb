//! A leaver's run: besides the revocation of what Tollgate granted them (the leavers' own path,
//! `grants::leavers`), their Atlassian account is disabled when the organization manages it
//! and the deployment asks for it (else it loses its product access), they leave every JSM
//! customer organization of the site, and the lifecycle ticket says what was done. Each action
//! can be repeated: a retried run does nothing twice.

use chrono::{DateTime, Utc};

use super::run::{finish, open_ticket_once};
use crate::atlassian::admin::Disabled;
use crate::failure::Failure;
use crate::orgchart::Person;
use crate::people::accounts;
use crate::state::AppState;
use crate::store::lifecycle_runs::Run;
use crate::store::requests;

/// What disabling says to whoever looks at the account in admin.atlassian.com.
const DISABLED_BECAUSE: &str = "Left the organization (identity lifecycle, Tollgate)";

pub(super) async fn offboard(
    state: &AppState,
    run: &Run,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let Some(config) = &state.config.lifecycle.ticket else {
        return finish(
            state,
            run,
            "nothing done: no lifecycle ticket is configured",
            now,
        )
        .await;
    };
    let (tenant, site) = state.jira_site_at(&config.site).await?;
    let person = Person::new(run.person.clone(), run.email.clone(), run.name.clone());
    let account = accounts::account_for(
        &state.store,
        &state.atlassian,
        &site,
        &person,
        &*state.clock,
    )
    .await?;
    let mut done = Vec::new();
    match &account {
        None => done.push("no Atlassian account was found for them".to_string()),
        Some(account) => {
            if state.config.lifecycle.deactivate_atlassian_account {
                done.push(
                    match state
                        .atlassian
                        .disable_account(account, DISABLED_BECAUSE)
                        .await?
                    {
                        Disabled::Disabled => "Atlassian account disabled".to_string(),
                        Disabled::NotManaged => {
                            state.atlassian.remove_product_access(account).await?;
                            "Atlassian account not managed by the organization (it cannot be \
                         disabled): its product access was removed"
                                .to_string()
                        }
                    },
                );
            }
            let left = state.atlassian.leave_organizations(&site, account).await?;
            if !left.is_empty() {
                done.push(format!(
                    "removed from the JSM customer organizations {}",
                    left.join(", ")
                ));
            }
        }
    }
    let ending = requests::ended_by_leaving(&state.store, &run.person)
        .await?
        .len();
    if ending > 0 {
        done.push(format!(
            "{ending} grants Tollgate made end with their leaving"
        ));
    }
    let outcome = if done.is_empty() {
        "nothing more to remove".to_string()
    } else {
        done.join("; ")
    };
    let description = super::run::leaver_description(&run.name, &done, run.id);
    let (run, _) = open_ticket_once(
        state,
        run,
        &site,
        &tenant.client_key,
        config,
        None,
        &description,
        now,
    )
    .await?;
    finish(state, &run, &outcome, now).await
}
