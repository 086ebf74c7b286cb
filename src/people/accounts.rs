//! People to Atlassian accounts. A match is trusted only from the organization's own sources:
//! the id the IdP states, the organization's account index (the Admin API's user list, read
//! whole with the full org sync and at most every `account_index_interval`), its SCIM
//! directory, or a site of the deployment. Matches are stored per organization and by the
//! person's IdP id, so an email change keeps them; a site whose answer disagrees with a stored
//! match makes Tollgate ask the organization's sources again before anything is replaced.
//!
//! Finding an account is a local read of the index; a miss is one targeted query (the SCIM
//! directory's `userName eq` filter, else the site's user search), never a walk of the
//! organization.

use chrono::TimeDelta;

use crate::atlassian::{Atlassian, AtlassianError, CredentialKind, Site};
use crate::clock::Clock;
use crate::orgchart::{AccountId, Email, OrgIndex, Person, PersonIdx};
use crate::store::accounts::{self as store_accounts, Indexed};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Atlassian(#[from] AtlassianError),
}

/// The organization whose accounts people are matched to: the Admin API's organization, else
/// the site itself (without the Admin API each site answers for itself).
pub fn organization(atlassian: &Atlassian, site: &Site) -> String {
    match atlassian
        .credentials()
        .admin_api(crate::atlassian::Operation::OrganizationUsers)
    {
        Ok((org, _)) => org.to_string(),
        Err(_) => format!("site:{}", site.site_url.trim_end_matches('/')),
    }
}

/// Reads the organization's whole account list into the index when it was never read or is
/// older than `max_age`; returns how many accounts it read (0 when it was fresh enough, or the
/// deployment has no Admin API key).
pub async fn refresh_index(
    store: &Store,
    atlassian: &Atlassian,
    clock: &dyn Clock,
    max_age: TimeDelta,
) -> Result<usize, AccountError> {
    let Ok((org, _)) = atlassian
        .credentials()
        .admin_api(crate::atlassian::Operation::OrganizationUsers)
    else {
        return Ok(0);
    };
    let org = org.to_string();
    let now = clock.now();
    if let Some((at, _)) = store_accounts::index_refreshed(store, &org).await?
        && now - at < max_age
    {
        return Ok(0);
    }
    let users = atlassian.org_users().await?;
    let indexed: Vec<Indexed> = users
        .into_iter()
        .map(|u| Indexed {
            account: u.account_id,
            email: u.email,
            name: u.display_name,
            active: u.active,
        })
        .collect();
    store_accounts::replace_index(store, &org, &indexed, now).await?;
    tracing::info!(org, accounts = indexed.len(), "account index read");
    Ok(indexed.len())
}

/// The index of `org`, read once if it never was (a deployment's first request, before its
/// first full sync).
async fn ensure_index(
    store: &Store,
    atlassian: &Atlassian,
    org: &str,
    clock: &dyn Clock,
) -> Result<bool, AccountError> {
    if !atlassian.credentials().has(CredentialKind::AdminApi) {
        return Ok(false);
    }
    if store_accounts::index_refreshed(store, org).await?.is_none() {
        refresh_index(store, atlassian, clock, TimeDelta::zero()).await?;
    }
    Ok(true)
}

/// One targeted query for the account of `email`: the SCIM directory, else the site's user
/// search (which answers only where the email is visible, and only when exactly one matches).
async fn look_up(
    atlassian: &Atlassian,
    site: &Site,
    email: &Email,
) -> Result<Option<(AccountId, &'static str)>, AccountError> {
    if atlassian.credentials().has(CredentialKind::ScimDirectory)
        && let Some(id) = atlassian.scim_account_id(email).await?
    {
        return Ok(Some((id, "scim directory")));
    }
    let found = atlassian.users_by_email(site, email).await?;
    Ok(match found.as_slice() {
        [one] => Some((one.account_id.clone(), "site user search")),
        _ => None,
    })
}

/// What the organization's own sources say the account of `email` is: the index (when there
/// is one), else a targeted query. Found accounts are added to the index.
async fn org_account(
    store: &Store,
    atlassian: &Atlassian,
    site: &Site,
    org: &str,
    email: &Email,
    clock: &dyn Clock,
) -> Result<Option<(AccountId, &'static str)>, AccountError> {
    if ensure_index(store, atlassian, org, clock).await?
        && let Some(found) = store_accounts::indexed_by_email(store, org, email)
            .await?
            .into_iter()
            .next()
    {
        return Ok(Some((found, "account index")));
    }
    let Some((account, how)) = look_up(atlassian, site, email).await? else {
        return Ok(None);
    };
    if atlassian.credentials().has(CredentialKind::AdminApi) {
        let entry = Indexed {
            account: account.clone(),
            email: Some(email.clone()),
            name: String::new(),
            active: true,
        };
        store_accounts::index_one(store, org, &entry, clock.now()).await?;
    }
    Ok(Some((account, how)))
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
    let org = organization(atlassian, site);
    if let Some(found) = store_accounts::match_for(store, &org, &person.id).await? {
        return Ok(Some(found.account));
    }
    let Some((account, how)) =
        org_account(store, atlassian, site, &org, &person.email, clock).await?
    else {
        return Ok(None);
    };
    store_accounts::remember(
        store,
        &org,
        &person.id,
        &person.email,
        &account,
        how,
        clock.now(),
    )
    .await?;
    Ok(Some(account))
}

/// The org chart person behind an Atlassian account: the id the source states, a stored
/// match, the account's email where the site shows it, or the organization's index. A match
/// found by a lookup is stored; a site's answer that contradicts a stored match is checked
/// against the organization's own sources first.
pub async fn person_for_account(
    store: &Store,
    atlassian: &Atlassian,
    site: &Site,
    org: &OrgIndex,
    account: &AccountId,
    clock: &dyn Clock,
) -> Result<Option<PersonIdx>, AccountError> {
    if let Some(idx) = org.by_account(account) {
        return Ok(Some(idx));
    }
    let organization = organization(atlassian, site);
    if let Some(id) = store_accounts::person_for(store, &organization, account).await? {
        return Ok(org.by_id(&id));
    }
    let mut email = atlassian.user(site, account).await?.email;
    let mut how = "site user";
    if email.is_none() && ensure_index(store, atlassian, &organization, clock).await? {
        email = store_accounts::indexed_email(store, &organization, account).await?;
        how = "account index";
    }
    let Some(idx) = email.and_then(|e| org.by_email(&e)) else {
        return Ok(None);
    };
    let person = org.person(idx);
    if let Some(stored) = store_accounts::match_for(store, &organization, &person.id).await?
        && stored.account != *account
    {
        // The site says this account is the person's, a stored match says another is: ask
        // the organization's own sources before believing either.
        let confirmed =
            org_account(store, atlassian, site, &organization, &person.email, clock).await?;
        match confirmed {
            Some((found, _)) if found == *account => {}
            Some((found, _)) => {
                tracing::warn!(
                    person = person.id.0,
                    site = site.site_url,
                    claimed = account.0,
                    kept = found.0,
                    "a site's account for a person disagrees with the organization's; kept the organization's"
                );
                return Ok(None);
            }
            None => {}
        }
        how = "re-checked after a site disagreed";
    }
    store_accounts::remember(
        store,
        &organization,
        &person.id,
        &person.email,
        account,
        how,
        clock.now(),
    )
    .await?;
    Ok(Some(idx))
}
