//! People to Atlassian accounts: by the id the source states, else the mapping stored once
//! found, else a lookup by email through whatever the deployment permits (the SCIM
//! directory's `atlassianAccountId`, the Admin API's user list, the site's user search).

use crate::atlassian::{Atlassian, AtlassianError, Site};
use crate::clock::Clock;
use crate::orgchart::{AccountId, Person};
use crate::store::org as org_store;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Atlassian(#[from] AtlassianError),
}

/// The person's Atlassian account, or `None` when no permitted lookup finds one.
pub async fn account_for(
    store: &Store,
    atlassian: &Atlassian,
    site: &Site,
    person: &Person,
    clock: &dyn Clock,
) -> Result<Option<AccountId>, AccountError> {
    if let Some(id) = &person.atlassian_account_id {
        return Ok(Some(id.clone()));
    }
    if let Some(id) = org_store::account_for(store, &person.email).await? {
        return Ok(Some(id));
    }
    let Some(found) = atlassian.account_by_email(site, &person.email).await? else {
        return Ok(None);
    };
    org_store::remember_account(store, &person.email, &found, "email lookup", clock.now()).await?;
    Ok(Some(found))
}

/// The org chart person behind an Atlassian account: the id the source states, a stored match,
/// the account's email where Jira shows it, or the Admin API's user list. A match found by a
/// lookup is stored.
pub async fn person_for_account(
    store: &Store,
    atlassian: &Atlassian,
    site: &Site,
    org: &crate::orgchart::OrgIndex,
    account: &AccountId,
    clock: &dyn Clock,
) -> Result<Option<crate::orgchart::PersonIdx>, AccountError> {
    if let Some(idx) = org.by_account(account) {
        return Ok(Some(idx));
    }
    if let Some(email) = org_store::email_for_account(store, account).await? {
        return Ok(org.by_email(&email));
    }
    let mut email = atlassian.user(site, account).await?.email;
    if email.is_none()
        && atlassian
            .credentials()
            .has(crate::atlassian::CredentialKind::AdminApi)
    {
        email = atlassian
            .org_users()
            .await?
            .into_iter()
            .find(|u| &u.account_id == account)
            .and_then(|u| u.email);
    }
    let Some(email) = email else {
        return Ok(None);
    };
    org_store::remember_account(store, &email, account, "account lookup", clock.now()).await?;
    Ok(org.by_email(&email))
}
