//! The org chart an identity provider pushes (`TOLLGATE_IDP_KIND=scim_push`): not a remote
//! directory but the SCIM resources `scim_push` stored. It reads like any source, so a push is
//! a sync delta: the incremental read takes the writes after its cursor (a write number), and
//! the full read, the daily net, takes everything stored.

use std::collections::HashMap;

use super::{Changes, Delta, Directory, GroupWriter, IdpError, Page};
use crate::change::Change;
use crate::orgchart::{Group, PersonId};
use crate::scim::person::{PersonKey, person};
use crate::scim::{Kind, path::get_ci};
use crate::store::scim_resources::{self as stored, GoneKind, Row};
use crate::store::{Store, StoreError};

/// Users (then groups) per page of a full read.
const PAGE: i64 = 500;

#[derive(Debug)]
pub struct ScimPushDirectory {
    store: Store,
    key: PersonKey,
    /// Who each user is, as of a write number: a full read asks for every page, and the users'
    /// keys are read again only when something was pushed since.
    names: tokio::sync::Mutex<Option<(i64, std::sync::Arc<Names>)>>,
}

impl ScimPushDirectory {
    pub fn new(store: Store, key: PersonKey) -> Self {
        Self {
            store,
            key,
            names: tokio::sync::Mutex::new(None),
        }
    }

    /// [`Names`] as of the last write.
    async fn names(&self) -> Result<std::sync::Arc<Names>, IdpError> {
        let seq = stored::current_seq(&self.store)
            .await
            .map_err(unavailable)?;
        let mut held = self.names.lock().await;
        if let Some((at, names)) = held.as_ref()
            && *at == seq
        {
            return Ok(names.clone());
        }
        let names = std::sync::Arc::new(Names::read(&self.store).await?);
        *held = Some((seq, names.clone()));
        Ok(names)
    }
}

fn unavailable(e: StoreError) -> IdpError {
    IdpError::Unavailable(format!("the pushed org chart cannot be read: {e}"))
}

/// Who a manager reference or group member names: a user's SCIM id, else (for managers) what
/// the IdP put there: another user's `externalId` or `userName`, else a person id as it is.
#[derive(Debug)]
struct Names {
    by_id: HashMap<String, Option<PersonId>>,
    by_other: HashMap<String, PersonId>,
}

impl Names {
    async fn read(store: &Store) -> Result<Self, IdpError> {
        let keys = stored::user_keys(store).await.map_err(unavailable)?;
        let mut by_other = HashMap::new();
        let mut by_id = HashMap::new();
        for (id, person, user_name, external_id) in keys {
            let person = person.map(PersonId);
            if let Some(p) = &person {
                by_other.insert(user_name, p.clone());
                if let Some(e) = external_id {
                    by_other.insert(e, p.clone());
                }
            }
            by_id.insert(id, person);
        }
        Ok(Self { by_id, by_other })
    }

    fn manager(&self, reference: &str) -> Option<PersonId> {
        match self.by_id.get(reference) {
            Some(person) => person.clone(),
            None => Some(
                self.by_other
                    .get(reference)
                    .or_else(|| self.by_other.get(&reference.to_lowercase()))
                    .cloned()
                    .unwrap_or_else(|| PersonId(reference.to_string())),
            ),
        }
    }

    fn member(&self, id: &str) -> Option<PersonId> {
        self.by_id.get(id).cloned().flatten()
    }
}

impl ScimPushDirectory {
    fn person(&self, names: &Names, row: &Row) -> Option<crate::orgchart::Person> {
        match person(self.key, &row.id, &row.resource, |m| names.manager(m)) {
            Ok(person) => Some(person),
            Err(why) => {
                tracing::debug!(user = %row.id, %why, "a pushed user is not a person of the chart");
                None
            }
        }
    }

    fn group(names: &Names, row: &Row) -> Group {
        let object = row.resource.as_object();
        let name = object
            .and_then(|o| get_ci(o, "displayName"))
            .and_then(|n| n.as_str())
            .unwrap_or(&row.id)
            .to_string();
        let members = object
            .and_then(|o| get_ci(o, "members"))
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("value").and_then(|v| v.as_str()))
            .filter_map(|id| names.member(id))
            .collect();
        Group {
            id: row.id.clone(),
            name,
            members,
            owners: Vec::new(),
        }
    }
}

impl Directory for ScimPushDirectory {
    fn source(&self) -> String {
        "scim_push".into()
    }

    async fn start_cursor(&self) -> Result<String, IdpError> {
        Ok(stored::current_seq(&self.store)
            .await
            .map_err(unavailable)?
            .to_string())
    }

    async fn read_page(&self, resume: Option<&str>) -> Result<Page, IdpError> {
        let resume = resume.unwrap_or("u:");
        let (kind, after) = match resume.split_once(':') {
            Some(("u", after)) => (Kind::User, after),
            Some(("g", after)) => (Kind::Group, after),
            _ => {
                return Err(IdpError::Unreadable(format!(
                    "`{resume}` is not a place in the pushed chart"
                )));
            }
        };
        let rows = stored::page(&self.store, kind, after, PAGE)
            .await
            .map_err(unavailable)?;
        let names = self.names().await?;
        let full = rows.len() as i64 == PAGE;
        let last = rows.last().map(|r| r.id.clone());
        let mut page = Page::default();
        match kind {
            Kind::User => {
                page.people = rows.iter().filter_map(|r| self.person(&names, r)).collect();
                page.next = Some(match (full, last) {
                    (true, Some(last)) => format!("u:{last}"),
                    _ => "g:".into(),
                });
            }
            Kind::Group => {
                page.groups = rows.iter().map(|r| Self::group(&names, r)).collect();
                page.next = match (full, last) {
                    (true, Some(last)) => Some(format!("g:{last}")),
                    _ => None,
                };
            }
        }
        Ok(page)
    }

    async fn changes_since(&self, cursor: &str) -> Result<Changes, IdpError> {
        let from: i64 = cursor
            .parse()
            .map_err(|_| IdpError::CursorExpired(format!("`{cursor}` is not a write number")))?;
        // Every write up to the counter read here has committed (writers hold the counter
        // until they commit), so nothing below it can still appear.
        let upto = stored::current_seq(&self.store)
            .await
            .map_err(unavailable)?;
        if upto < from {
            return Err(IdpError::CursorExpired(format!(
                "the cursor {from} is ahead of the last write {upto} (a restored database?)"
            )));
        }
        let changed = stored::changed(&self.store, from, upto)
            .await
            .map_err(unavailable)?;
        let names = self.names().await?;
        let mut deltas: Vec<(i64, Delta)> = Vec::new();
        for (seq, kind, key) in changed.gone {
            deltas.push((
                seq,
                match kind {
                    GoneKind::Person => Delta::PersonGone(PersonId(key)),
                    GoneKind::Group => Delta::GroupGone(key),
                },
            ));
        }
        for row in &changed.users {
            if let Some(person) = self.person(&names, row) {
                deltas.push((row.version, Delta::Person(person)));
            }
        }
        for row in &changed.groups {
            deltas.push((row.version, Delta::Group(Self::group(&names, row))));
        }
        // In write order: a person dropped and then pushed again under the same id stays.
        deltas.sort_by_key(|(seq, _)| *seq);
        Ok(Changes {
            deltas: deltas.into_iter().map(|(_, d)| d).collect(),
            cursor: upto.to_string(),
        })
    }
}

impl GroupWriter for ScimPushDirectory {
    async fn set_member(&self, _: &str, _: &PersonId, _: bool) -> Result<Change, IdpError> {
        Err(IdpError::ReadOnly(
            "scim_push (its groups belong to the identity provider that pushes them)",
        ))
    }
}
