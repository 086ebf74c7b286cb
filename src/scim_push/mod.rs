//! The SCIM 2.0 service provider an identity provider pushes users and groups to
//! (`TOLLGATE_IDP_KIND=scim_push`). Each write takes the next write number, stores the
//! resource, records what the chart must drop, audits the change and queues the push sync in
//! one transaction; the sync (`idp::scim_push`) makes it a delta of the org chart like any
//! source's, so joiners, movers, leavers, re-routing and the brake follow.

pub mod tokens;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::audit::{self, Action, ScimStep};
use crate::config::IdpSource;
use crate::scim::patch;
use crate::scim::path::get_ci;
use crate::scim::person::PersonKey;
use crate::scim::resource::{self, Kind};
use crate::scim::{Filter, ScimError};
use crate::state::AppState;
use crate::store::scim_resources::{self as stored, GoneKind, Keys, Narrow, Row};
use crate::store::{StoreError, Tx};
pub use tokens::Pusher;

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(_) => ScimError::internal(e.to_string()),
            other => {
                ScimError::unavailable(format!("storage is unavailable; retry later ({other})"))
            }
        }
    }
}

/// The person-id attribute, when this deployment's org chart is pushed.
pub fn person_key(state: &AppState) -> Option<PersonKey> {
    match &state.config.idp.source {
        IdpSource::ScimPush(config) => Some(config.person_key),
        _ => None,
    }
}

fn key_of(state: &AppState) -> Result<PersonKey, ScimError> {
    person_key(state).ok_or_else(|| {
        ScimError::not_found("SCIM push is not enabled here (TOLLGATE_IDP_KIND=scim_push)")
    })
}

/// `If-Match`: the version the client last saw; `*` or none accepts any.
fn check_version(row: &Row, if_match: Option<&str>) -> Result<(), ScimError> {
    match if_match.map(str::trim) {
        None | Some("*") => Ok(()),
        Some(wanted)
            if wanted
                .split(',')
                .any(|w| w.trim() == resource::etag(row.version)) =>
        {
            Ok(())
        }
        Some(wanted) => Err(ScimError::precondition(format!(
            "the resource is at version {}, not {wanted}",
            resource::etag(row.version)
        ))),
    }
}

fn keys(key: PersonKey, kind: Kind, id: &str, resource: &Value) -> Keys {
    let object = resource.as_object();
    let text = |name: &str| {
        object
            .and_then(|o| get_ci(o, name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Keys {
        name: text(kind.name_attr()).unwrap_or_default().to_lowercase(),
        external_id: text("externalId"),
        person_id: match kind {
            Kind::User => key.of(id, resource).map(|p| p.0),
            Kind::Group => None,
        },
    }
}

/// Top-level attributes that differ, with their new values (`null`: removed): what the audit
/// log says a write changed.
fn changed(before: Option<&Value>, after: &Value) -> Value {
    let empty = Map::new();
    let before = before.and_then(Value::as_object).unwrap_or(&empty);
    let after_map = after.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for (k, v) in after_map {
        if k != "schemas" && before.get(k) != Some(v) {
            out.insert(k.clone(), v.clone());
        }
    }
    for k in before.keys() {
        if !after_map.contains_key(k) {
            out.insert(k.clone(), Value::Null);
        }
    }
    Value::Object(out)
}

struct Write<'a> {
    state: &'a AppState,
    pusher: &'a Pusher,
    kind: Kind,
    now: DateTime<Utc>,
}

impl Write<'_> {
    async fn audit(
        &self,
        tx: &mut Tx,
        step: ScimStep,
        id: &str,
        keys: &Keys,
        details: Value,
    ) -> Result<(), ScimError> {
        let mut details = details;
        details["id"] = json!(id);
        details["name"] = json!(keys.name);
        if self.kind == Kind::User {
            details["person"] = json!(keys.person_id);
        }
        audit::append(
            tx,
            &audit::Event {
                at: self.now,
                tenant: None,
                request_id: None,
                ticket_key: None,
                actor: self.pusher.actor(),
                action: Action::ScimPush(step),
                target: Some(keys.person_id.clone().unwrap_or_else(|| id.to_string())),
                details,
                workflow_version: None,
            },
        )
        .await?;
        Ok(())
    }

    /// The end of every write: who pushed, the sync queued, committed.
    async fn finish(&self, mut tx: Tx) -> Result<(), ScimError> {
        stored::token_pushed(&mut tx, &self.pusher.token, self.now).await?;
        crate::jobs::schedule_push_sync(&mut tx)
            .await
            .map_err(|e| ScimError::unavailable(e.to_string()))?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores `resource` as `id` at write `seq` (new when `before` is `None`).
    async fn put(
        &self,
        tx: &mut Tx,
        seq: i64,
        id: &str,
        resource: &Value,
    ) -> Result<Keys, ScimError> {
        let key = key_of(self.state)?;
        let keys = keys(key, self.kind, id, resource);
        if let Some(what) = stored::taken(tx, self.kind, &keys, Some(id)).await? {
            return Err(ScimError::uniqueness(format!(
                "{what} is already another user's"
            )));
        }
        if self.kind == Kind::User
            && let Some(old) = stored::person_of(tx, id).await?
            && keys.person_id.as_deref() != Some(old.as_str())
        {
            // The chart drops the old id: the user is someone else now (or no one yet).
            stored::record_gone(tx, seq, GoneKind::Person, &old, self.now).await?;
        }
        stored::put(tx, self.kind, id, &keys, resource, seq, self.now).await?;
        Ok(keys)
    }
}

fn missing(kind: Kind, id: &str) -> ScimError {
    ScimError::not_found(format!("no {} {id}", kind.name()))
}

/// What a write returns: the stored resource.
pub async fn get(state: &AppState, kind: Kind, id: &str) -> Result<Row, ScimError> {
    key_of(state)?;
    stored::get(&state.store, kind, id)
        .await?
        .ok_or_else(|| missing(kind, id))
}

/// Opens a write on the stored `id`: its number taken (the counter row held until the write
/// ends), the resource read and checked against `If-Match`. A refusal rolls it back.
async fn open_write(
    state: &AppState,
    kind: Kind,
    id: &str,
    if_match: Option<&str>,
) -> Result<(Tx, i64, Row), ScimError> {
    let mut tx = state.store.begin().await?;
    let seq = stored::next_seq(&mut tx).await?;
    let found = stored::get_in(&mut tx, kind, id)
        .await?
        .ok_or_else(|| missing(kind, id))
        .and_then(|row| check_version(&row, if_match).map(|()| row));
    match found {
        Ok(row) => Ok((tx, seq, row)),
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}

pub async fn create(
    state: &AppState,
    pusher: &Pusher,
    kind: Kind,
    body: Value,
) -> Result<Row, ScimError> {
    let resource = resource::normalize(kind, body)?;
    let write = Write {
        state,
        pusher,
        kind,
        now: state.clock.now(),
    };
    let id = Uuid::new_v4().to_string();
    let mut tx = state.store.begin().await?;
    let seq = stored::next_seq(&mut tx).await?;
    let keys = write.put(&mut tx, seq, &id, &resource).await?;
    write
        .audit(
            &mut tx,
            ScimStep::Created(kind),
            &id,
            &keys,
            json!({ "changed": changed(None, &resource) }),
        )
        .await?;
    write.finish(tx).await?;
    get(state, kind, &id).await
}

/// PUT: the resource replaced by `body`.
pub async fn replace(
    state: &AppState,
    pusher: &Pusher,
    kind: Kind,
    id: &str,
    body: Value,
    if_match: Option<&str>,
) -> Result<Row, ScimError> {
    let resource = resource::normalize(kind, body)?;
    update(
        state,
        pusher,
        kind,
        id,
        if_match,
        ScimStep::Replaced(kind),
        |_| Ok(resource),
    )
    .await
}

/// PATCH: the operations applied to the stored resource, the result checked as a PUT's.
pub async fn patch(
    state: &AppState,
    pusher: &Pusher,
    kind: Kind,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Result<Row, ScimError> {
    let operations = patch::parse(body)?;
    update(
        state,
        pusher,
        kind,
        id,
        if_match,
        ScimStep::Patched(kind),
        |before| {
            let mut resource = before.clone();
            patch::apply(&mut resource, &operations)?;
            resource::normalize(kind, resource)
        },
    )
    .await
}

async fn update(
    state: &AppState,
    pusher: &Pusher,
    kind: Kind,
    id: &str,
    if_match: Option<&str>,
    step: ScimStep,
    make: impl FnOnce(&Value) -> Result<Value, ScimError>,
) -> Result<Row, ScimError> {
    key_of(state)?;
    let write = Write {
        state,
        pusher,
        kind,
        now: state.clock.now(),
    };
    let (mut tx, seq, before) = open_write(state, kind, id, if_match).await?;
    let outcome = async {
        let resource = make(&before.resource)?;
        let keys = write.put(&mut tx, seq, id, &resource).await?;
        let diff = changed(Some(&before.resource), &resource);
        write
            .audit(&mut tx, step, id, &keys, json!({ "changed": diff }))
            .await?;
        Ok::<_, ScimError>(())
    }
    .await;
    if let Err(e) = outcome {
        tx.rollback().await?;
        return Err(e);
    }
    write.finish(tx).await?;
    get(state, kind, id).await
}

pub async fn delete(
    state: &AppState,
    pusher: &Pusher,
    kind: Kind,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), ScimError> {
    let key = key_of(state)?;
    let write = Write {
        state,
        pusher,
        kind,
        now: state.clock.now(),
    };
    let (mut tx, seq, before) = open_write(state, kind, id, if_match).await?;
    let keys = keys(key, kind, id, &before.resource);
    let person = match kind {
        Kind::User => stored::person_of(&mut tx, id).await?,
        Kind::Group => None,
    };
    stored::delete(&mut tx, kind, id).await?;
    match (kind, person) {
        (Kind::User, Some(person)) => {
            stored::record_gone(&mut tx, seq, GoneKind::Person, &person, write.now).await?;
        }
        (Kind::User, None) => {}
        (Kind::Group, _) => {
            stored::record_gone(&mut tx, seq, GoneKind::Group, id, write.now).await?;
        }
    }
    if kind == Kind::User {
        // A deleted user is no group's member any more (RFC 7644 §3.6).
        for group in stored::groups_naming(&mut tx, id).await? {
            let mut resource = group.resource.clone();
            if let Some(Value::Array(members)) = resource.get_mut("members") {
                members.retain(|m| m.get("value").and_then(Value::as_str) != Some(id));
            }
            if resource != group.resource {
                let group_keys = self::keys(key, Kind::Group, &group.id, &resource);
                stored::put(
                    &mut tx,
                    Kind::Group,
                    &group.id,
                    &group_keys,
                    &resource,
                    seq,
                    write.now,
                )
                .await?;
            }
        }
    }
    write
        .audit(&mut tx, ScimStep::Deleted(kind), id, &keys, json!({}))
        .await?;
    write.finish(tx).await
}

/// A list's parameters (RFC 7644 §3.4.2).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filter: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
}

/// A page of a list: the matching resources from `startIndex`, and how many match in all.
pub struct Listed {
    pub total: usize,
    pub start_index: usize,
    pub rows: Vec<Row>,
}

pub async fn list(state: &AppState, kind: Kind, query: &ListQuery) -> Result<Listed, ScimError> {
    key_of(state)?;
    let filter = query.filter.as_deref().map(Filter::parse).transpose()?;
    let narrow = filter.as_ref().and_then(|f| {
        f.required_eq("id")
            .map(Narrow::Id)
            .or_else(|| f.required_eq(kind.name_attr()).map(Narrow::Name))
            .or_else(|| f.required_eq("externalId").map(Narrow::ExternalId))
    });
    let rows = stored::list(&state.store, kind, narrow).await?;
    let matching: Vec<Row> = match &filter {
        None => rows,
        Some(filter) => rows
            .into_iter()
            .filter(|row| filter.matches(&with_id(kind, row)))
            .collect(),
    };
    let total = matching.len();
    let (start_index, rows) = query.page(matching);
    Ok(Listed {
        total,
        start_index,
        rows,
    })
}

impl ListQuery {
    /// The page of `all` this query asks for, and its start index. RFC 7644 §3.4.2.4: a start
    /// below 1 is 1, a negative count is 0; no page is longer than the published maximum.
    pub fn page<T>(&self, all: Vec<T>) -> (usize, Vec<T>) {
        use crate::scim::discovery::{DEFAULT_COUNT, MAX_RESULTS};
        let start = usize::try_from(self.start_index.unwrap_or(1).max(1)).unwrap_or(1);
        let count = self
            .count
            .map_or(DEFAULT_COUNT, |c| {
                usize::try_from(c.max(0)).unwrap_or(MAX_RESULTS)
            })
            .min(MAX_RESULTS);
        (start, all.into_iter().skip(start - 1).take(count).collect())
    }

    /// The same filter, every match.
    pub fn everything(&self) -> Self {
        Self {
            filter: self.filter.clone(),
            start_index: None,
            count: Some(i64::MAX),
        }
    }
}

/// A row's resource with the attributes the store keeps apart (`id`, `meta`), as filters see it.
fn with_id(kind: Kind, row: &Row) -> Value {
    resource::with_meta(
        row.resource.clone(),
        &resource::Meta {
            kind,
            id: &row.id,
            created: row.created_at,
            modified: row.updated_at,
            version: row.version,
            base: "",
        },
    )
}
