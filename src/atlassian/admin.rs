//! The organization Admin API and the Atlassian SCIM directory, on `api.atlassian.com`:
//! accounts by email, site group membership and product access, which Connect tokens cannot
//! reach. Paths follow API-NOTES §2.4–§2.5; the Admin API has no published OpenAPI here, so
//! the paths used are listed in `fakes::contract::generate` (`ADMIN_API_OPERATIONS`).

use reqwest::Method;
use serde_json::{Value, json};

use super::api::{Atlassian, AtlassianError, Change, segment, with_query};
use super::client::Credential;
use super::credentials::Operation;
use super::errors::CallError;
use super::jira::AtlassianUser;
use crate::ids::{AccountId, Email};
use crate::workflow::products::Assignment;

/// The Atlassian SCIM extension carrying the account id of a provisioned user.
const ATLASSIAN_SCIM_EXTENSION: &str = "urn:scim:schemas:extension:atlassian-external:1.0";
const MAX_PAGES: usize = 10_000;

/// What disabling an account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {
    Disabled,
    /// The organization does not manage the account: it cannot be disabled.
    NotManaged,
}

/// When an account last used each product, as the Admin API answers (a day, delayed by up to
/// 24 hours; a product the account never used is not listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastActive {
    pub products: Vec<(String, chrono::NaiveDate)>,
}

impl Atlassian {
    /// Every item of an Admin API listing: `{data: [...], links: {next: CURSOR}}`.
    async fn admin_pages(
        &self,
        credential: &Credential,
        path: &str,
    ) -> Result<Vec<Value>, AtlassianError> {
        self.admin_pages_at(credential, path, "/data").await
    }

    /// [`Self::admin_pages`], the items at `pointer` of each page.
    async fn admin_pages_at(
        &self,
        credential: &Credential,
        path: &str,
        pointer: &str,
    ) -> Result<Vec<Value>, AtlassianError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let url = match &cursor {
                None => path.to_string(),
                Some(c) => with_query(path, &[("cursor", c)]),
            };
            let page: Value = self
                .on_api(credential.clone(), Method::GET, &url, None)
                .await?
                .json()?;
            // A page without its list is not an empty page: it must not pass for the end.
            let Some(found) = page.pointer(pointer).and_then(Value::as_array) else {
                return Err(AtlassianError::Refused(format!(
                    "a page of {path} has no `{pointer}` list"
                )));
            };
            items.extend(found.iter().cloned());
            match page.pointer("/links/next").and_then(Value::as_str) {
                Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => {
                    cursor = Some(next.to_string());
                }
                _ => return Ok(items),
            }
        }
        Err(AtlassianError::Refused(format!(
            "listing {path} did not end after {MAX_PAGES} pages"
        )))
    }

    /// Every managed account of the organization, with its email.
    pub async fn org_users(&self) -> Result<Vec<AtlassianUser>, AtlassianError> {
        let (org, credential) = self.credentials().admin_api(Operation::OrganizationUsers)?;
        let path = format!("/admin/v1/orgs/{}/users", segment(org));
        let values = self.admin_pages(&credential, &path).await?;
        Ok(values
            .iter()
            .filter_map(|u| {
                Some(AtlassianUser {
                    account_id: AccountId(u.get("account_id")?.as_str()?.to_string()),
                    email: u
                        .get("email")
                        .and_then(Value::as_str)
                        .and_then(|e| Email::parse(e).ok()),
                    display_name: u
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    active: u.get("account_status").and_then(Value::as_str) != Some("inactive"),
                })
            })
            .collect())
    }

    fn group_memberships_path(org: &str, group_id: &str) -> String {
        format!(
            "/admin/v1/orgs/{}/directory/groups/{}/memberships",
            segment(org),
            segment(group_id)
        )
    }

    pub async fn site_group_members(
        &self,
        group_id: &str,
    ) -> Result<Vec<AccountId>, AtlassianError> {
        let (org, credential) = self
            .credentials()
            .admin_api(Operation::SiteGroupMembership)?;
        let path = Self::group_memberships_path(org, group_id);
        let values = self.admin_pages(&credential, &path).await?;
        Ok(values
            .iter()
            .filter_map(|m| m.get("account_id")?.as_str())
            .map(|id| AccountId(id.to_string()))
            .collect())
    }

    /// Adds to or removes from a site group through the Admin API. The membership is written
    /// first and confirmed by a listing only when the write is refused: listing a group of
    /// thousands before every grant would be the expensive path.
    pub async fn set_site_group_member(
        &self,
        group_id: &str,
        account: &AccountId,
        member: bool,
    ) -> Result<Change, AtlassianError> {
        let (org, credential) = self
            .credentials()
            .admin_api(Operation::SiteGroupMembership)?;
        let path = Self::group_memberships_path(org, group_id);
        let write = async {
            if member {
                let body = json!({"account_id": account.0});
                self.on_api(credential.clone(), Method::POST, &path, Some(body))
                    .await?;
            } else {
                let path = format!("{path}/{}", segment(&account.0));
                self.on_api(credential.clone(), Method::DELETE, &path, None)
                    .await?;
            }
            Ok::<_, AtlassianError>(())
        };
        match write.await {
            Ok(()) => Ok(Change::Applied),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                let members = self.site_group_members(group_id).await?;
                if members.contains(account) == member {
                    Ok(Change::AlreadyInPlace)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Grants or revokes one product role on one resource: the Admin API takes exactly one
    /// flat `{role, resource}` a call.
    pub async fn set_product_role(
        &self,
        account: &AccountId,
        assignment: &Assignment,
        granted: bool,
    ) -> Result<Change, AtlassianError> {
        let (org, credential) = self.credentials().admin_api(Operation::ProductAccess)?;
        let verb = if granted { "assign" } else { "revoke" };
        let path = format!(
            "/admin/v1/orgs/{}/users/{}/roles/{verb}",
            segment(org),
            segment(&account.0)
        );
        let body = json!({"role": assignment.role, "resource": assignment.resource});
        self.on_api(credential, Method::POST, &path, Some(body))
            .await?;
        Ok(Change::Applied)
    }

    /// Disables a leaver's Atlassian account (user management; managed accounts only). An
    /// account the organization does not manage is refused with 403: for it the caller removes
    /// product access instead ([`Self::remove_product_access`]).
    pub async fn disable_account(
        &self,
        account: &AccountId,
        message: &str,
    ) -> Result<Disabled, AtlassianError> {
        let (_, credential) = self.credentials().admin_api(Operation::AccountLifecycle)?;
        let path = format!("/users/{}/manage/lifecycle/disable", segment(&account.0));
        let body = json!({"message": message});
        match self
            .on_api(credential, Method::POST, &path, Some(body))
            .await
        {
            Ok(_) => Ok(Disabled::Disabled),
            Err(CallError::Forbidden(_)) => Ok(Disabled::NotManaged),
            Err(e) => Err(e.into()),
        }
    }

    /// When `account` last used each product; `None` for an account the organization does not
    /// have. An entry that names no product or no day is refused, not skipped: a date misread
    /// would end someone's access.
    pub async fn last_active(
        &self,
        account: &AccountId,
    ) -> Result<Option<LastActive>, AtlassianError> {
        let (org, credential) = self.credentials().admin_api(Operation::AccountActivity)?;
        let path = format!(
            "/admin/v1/orgs/{}/directory/users/{}/last-active-dates",
            segment(org),
            segment(&account.0)
        );
        let items = match self
            .admin_pages_at(&credential, &path, "/data/product_access")
            .await
        {
            Ok(items) => items,
            Err(AtlassianError::Call(CallError::NotFound(_))) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut products = Vec::with_capacity(items.len());
        for item in &items {
            let key = item.get("key").and_then(Value::as_str);
            let day = item.get("last_active").and_then(Value::as_str);
            let (Some(key), Some(day)) = (key, day) else {
                return Err(AtlassianError::Refused(format!(
                    "a last-active entry of {account} without a product or a date: {item}"
                )));
            };
            // A day, or a time of day (`2026-01-02T10:00:00Z`): the day is what counts.
            let date = chrono::NaiveDate::parse_from_str(day.get(..10).unwrap_or(day), "%Y-%m-%d")
                .map_err(|e| {
                    AtlassianError::Refused(format!("last-active date `{day}` of {account}: {e}"))
                })?;
            products.push((key.to_string(), date));
        }
        Ok(Some(LastActive { products }))
    }

    /// Removes every product access of `account` in the organization (the account stays).
    pub async fn remove_product_access(&self, account: &AccountId) -> Result<(), AtlassianError> {
        let (org, credential) = self.credentials().admin_api(Operation::ProductAccess)?;
        let path = format!(
            "/admin/v1/orgs/{}/directory/users/{}",
            segment(org),
            segment(&account.0)
        );
        self.on_api(credential, Method::DELETE, &path, None).await?;
        Ok(())
    }

    /// The account id the SCIM directory holds for a provisioned user, by email (`userName`).
    pub async fn scim_account_id(
        &self,
        email: &Email,
    ) -> Result<Option<AccountId>, AtlassianError> {
        let (directory, credential) = self.credentials().scim(Operation::ScimUserLookup)?;
        let filter = format!("userName eq \"{}\"", email.as_str().replace('"', ""));
        let path = with_query(
            &format!("/scim/directory/{}/Users", segment(directory)),
            &[("filter", &filter)],
        );
        let page: Value = self
            .on_api(credential, Method::GET, &path, None)
            .await?
            .json()?;
        Ok(page["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|u| {
                u.pointer(&format!("/{ATLASSIAN_SCIM_EXTENSION}/atlassianAccountId"))?
                    .as_str()
            })
            .map(|id| AccountId(id.to_string())))
    }
}
