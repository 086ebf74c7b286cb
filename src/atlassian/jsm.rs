//! Jira Service Management operations (`/rest/servicedeskapi`): requests, comments with
//! public/internal visibility, participants, approvals, organization members.

use reqwest::Method;
use serde_json::{Value, json};

use super::api::{Atlassian, AtlassianError, Change, Site, converge, segment, with_query};
use crate::ids::{AccountId, TicketKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Seen by the customer (the requester).
    Public,
    /// Agents only.
    Internal,
}

/// A JSM request as the service desk API shows it.
#[derive(Debug, Clone)]
pub struct CustomerRequest {
    pub issue_key: String,
    pub request_type_id: Option<String>,
    pub request_type_name: Option<String>,
    pub service_desk_id: Option<String>,
    pub reporter: Option<AccountId>,
    /// `[{fieldId, label, value}]` as JSM returned them.
    pub field_values: Vec<Value>,
    pub status: Option<String>,
}

/// A request to raise (`createCustomerRequest`), on someone's behalf when an account is given.
#[derive(Debug, Clone)]
pub struct NewRequest<'a> {
    pub service_desk: &'a str,
    pub request_type: &'a str,
    pub summary: &'a str,
    /// Plain text (JSM's request fields are not ADF unless asked).
    pub description: &'a str,
    pub on_behalf_of: Option<&'a AccountId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approved,
    Declined,
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub name: String,
    pub decision: Decision,
    /// Approvers with their own decision.
    pub approvers: Vec<Vote>,
    pub completed: Option<String>,
}

/// One approver's answer on a JSM approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub account: AccountId,
    /// The approver's display name, as JSM names them.
    pub name: Option<String>,
    pub decision: Decision,
}

fn decision(text: Option<&str>) -> Decision {
    match text {
        Some("approved") => Decision::Approved,
        Some("declined") => Decision::Declined,
        _ => Decision::Pending,
    }
}

fn request_path(key: &TicketKey) -> String {
    format!("/rest/servicedeskapi/request/{}", segment(key))
}

/// A JSM organization's id as its listing gives it (a string of digits, or a number).
pub(super) fn organization_id_of(organization: &Value) -> Option<u64> {
    match &organization["id"] {
        Value::String(id) => id.parse().ok(),
        other => other.as_u64(),
    }
}

fn organization_path(organization_id: u64) -> String {
    format!("/rest/servicedeskapi/organization/{organization_id}/user")
}

fn account_ids(values: &[Value], pointer: &str) -> Vec<AccountId> {
    values
        .iter()
        .filter_map(|v| v.pointer(pointer)?.as_str())
        .map(|id| AccountId(id.to_string()))
        .collect()
}

impl Atlassian {
    pub async fn customer_request(
        &self,
        site: &Site,
        key: &TicketKey,
    ) -> Result<CustomerRequest, AtlassianError> {
        let path = with_query(&request_path(key), &[("expand", "requestType,status")]);
        let value: Value = self.on_site(site, Method::GET, &path, None).await?.json()?;
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(CustomerRequest {
            issue_key: text("/issueKey").unwrap_or_else(|| key.to_string()),
            request_type_id: text("/requestTypeId"),
            request_type_name: text("/requestType/name"),
            service_desk_id: text("/serviceDeskId"),
            reporter: text("/reporter/accountId").map(AccountId),
            field_values: value["requestFieldValues"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            status: text("/currentStatus/status"),
        })
    }

    /// Raises a request; returns its key and issue id. Not idempotent: a caller that may ask
    /// twice looks for the first one before asking again.
    pub async fn create_request(
        &self,
        site: &Site,
        new: &NewRequest<'_>,
    ) -> Result<(TicketKey, String), AtlassianError> {
        let mut body = json!({
            "serviceDeskId": new.service_desk,
            "requestTypeId": new.request_type,
            "requestFieldValues": {"summary": new.summary, "description": new.description},
        });
        if let Some(account) = new.on_behalf_of {
            body["raiseOnBehalfOf"] = json!(account.0);
        }
        let value: Value = self
            .on_site(
                site,
                Method::POST,
                "/rest/servicedeskapi/request",
                Some(body),
            )
            .await?
            .json()?;
        let key = value["issueKey"]
            .as_str()
            .and_then(|k| TicketKey::parse(k).ok())
            .ok_or_else(|| {
                AtlassianError::Refused(format!("JSM raised a request without a key: {value}"))
            })?;
        let id = value["issueId"].as_str().unwrap_or_default().to_string();
        Ok((key, id))
    }

    /// A request comment in JSM's own format (plain text / wiki markup, not ADF).
    pub async fn request_comment(
        &self,
        site: &Site,
        key: &TicketKey,
        text: &str,
        visibility: Visibility,
    ) -> Result<String, AtlassianError> {
        let body = json!({"body": text, "public": visibility == Visibility::Public});
        let path = format!("{}/comment", request_path(key));
        let value: Value = self
            .on_site(site, Method::POST, &path, Some(body))
            .await?
            .json()?;
        Ok(value["id"].as_str().unwrap_or_default().to_string())
    }

    pub async fn participants(
        &self,
        site: &Site,
        key: &TicketKey,
    ) -> Result<Vec<AccountId>, AtlassianError> {
        let path = format!("{}/participant", request_path(key));
        let values = self.jsm_pages(site, &path).await?;
        Ok(account_ids(&values, "/accountId"))
    }

    /// Adds request participants (approvers, so they see the request); adding one already
    /// there is no change.
    pub async fn add_participants(
        &self,
        site: &Site,
        key: &TicketKey,
        accounts: &[AccountId],
    ) -> Result<Change, AtlassianError> {
        let present = self.participants(site, key).await?;
        let missing: Vec<&str> = accounts
            .iter()
            .filter(|a| !present.contains(a))
            .map(|a| a.0.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(Change::AlreadyInPlace);
        }
        let path = format!("{}/participant", request_path(key));
        let body = json!({"accountIds": missing});
        self.on_site(site, Method::POST, &path, Some(body)).await?;
        Ok(Change::Applied)
    }

    pub async fn approvals(
        &self,
        site: &Site,
        key: &TicketKey,
    ) -> Result<Vec<Approval>, AtlassianError> {
        let path = format!("{}/approval", request_path(key));
        let values = self.jsm_pages(site, &path).await?;
        Ok(values
            .iter()
            .filter_map(|a| {
                Some(Approval {
                    id: match a.get("id")? {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                    name: a
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    decision: decision(a.get("finalDecision").and_then(Value::as_str)),
                    approvers: a["approvers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| {
                            let id = p.pointer("/approver/accountId")?.as_str()?;
                            Some(Vote {
                                account: AccountId(id.to_string()),
                                name: p
                                    .pointer("/approver/displayName")
                                    .and_then(Value::as_str)
                                    .filter(|n| !n.trim().is_empty())
                                    .map(str::to_string),
                                decision: decision(
                                    p.get("approverDecision").and_then(Value::as_str),
                                ),
                            })
                        })
                        .collect(),
                    completed: a
                        .pointer("/completedDate/iso8601")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
            })
            .collect())
    }

    pub async fn organization_users(
        &self,
        site: &Site,
        organization_id: u64,
    ) -> Result<Vec<AccountId>, AtlassianError> {
        let values = self
            .jsm_pages(site, &organization_path(organization_id))
            .await?;
        Ok(account_ids(&values, "/accountId"))
    }

    /// Takes `account` out of every JSM customer organization of the site; the names of those
    /// it was in (a leaver's offboarding; none when it was in none).
    pub async fn leave_organizations(
        &self,
        site: &Site,
        account: &AccountId,
    ) -> Result<Vec<String>, AtlassianError> {
        let all = self
            .jsm_pages(site, "/rest/servicedeskapi/organization")
            .await?;
        let mut left = Vec::new();
        for organization in &all {
            let Some(id) = organization_id_of(organization) else {
                continue;
            };
            if !self.organization_users(site, id).await?.contains(account) {
                continue;
            }
            self.set_organization_user(site, id, account, false).await?;
            let name = organization["name"].as_str().unwrap_or_default();
            left.push(if name.is_empty() {
                id.to_string()
            } else {
                name.to_string()
            });
        }
        Ok(left)
    }

    /// Adds to or removes from a JSM customer organization (Connect, ADMIN / DELETE).
    pub async fn set_organization_user(
        &self,
        site: &Site,
        organization_id: u64,
        account: &AccountId,
        member: bool,
    ) -> Result<Change, AtlassianError> {
        let is_member = || async {
            Ok(self
                .organization_users(site, organization_id)
                .await?
                .contains(account))
        };
        converge(member, is_member, || async {
            let method = if member { Method::POST } else { Method::DELETE };
            let body = json!({"accountIds": [account.0]});
            self.on_site(
                site,
                method,
                &organization_path(organization_id),
                Some(body),
            )
            .await?;
            Ok(())
        })
        .await
    }
}
