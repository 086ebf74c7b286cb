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
