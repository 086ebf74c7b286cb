//! Requests whose person the org chart no longer knows, and the explicit remap by email that a
//! change of IdP source needs (a new source gives everyone new ids; without a remap the leaver
//! brake holds what would look like everyone leaving).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::lifecycle::State;
use crate::on_tx;
use crate::orgchart::{Email, OrgSnapshot, PersonId};
use crate::store::holdings;
use crate::store::requests::{self, Request};
use crate::store::{Store, StoreError};

/// States whose requests still matter to whom they are for.
fn live(state: State) -> bool {
    !state.is_final()
}

/// A request that is not over whose person is not in `snapshot`: no person id (they were not
/// in the org chart when it was filed or migrated), or an id the snapshot does not have.
pub async fn unmatched(store: &Store, snapshot: &OrgSnapshot) -> Result<Vec<Request>, StoreError> {
    let known: BTreeSet<&str> = snapshot.people.iter().map(|p| p.id.0.as_str()).collect();
    Ok(requests::in_states(store, live)
        .await?
        .into_iter()
        .filter(|r| {
            r.subject_person
                .as_ref()
                .is_none_or(|id| !known.contains(id.0.as_str()))
        })
        .collect())
}

/// One request's person, found again by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    pub request: Uuid,
    pub ticket: String,
    pub email: String,
    pub from: Option<PersonId>,
    pub to: PersonId,
}

/// What a remap by email would change: every live request whose email names a person of
/// `snapshot` with another id than the request has.
pub async fn plan(store: &Store, snapshot: &OrgSnapshot) -> Result<Vec<Remap>, StoreError> {
    let by_email: HashMap<&str, &PersonId> = snapshot
        .people
        .iter()
        .map(|p| (p.email.as_str(), &p.id))
        .collect();
    Ok(requests::in_states(store, live)
        .await?
        .into_iter()
        .filter_map(|r| {
            let email = Email::parse(r.subject()?).ok()?;
            let to = *by_email.get(email.as_str())?;
            (r.subject_person.as_ref() != Some(to)).then(|| Remap {
                request: r.id,
                ticket: r.ticket_key.to_string(),
                email: email.as_str().to_string(),
                from: r.subject_person.clone(),
                to: to.clone(),
            })
        })
        .collect())
}

/// Applies `remaps` with their holdings, in one transaction with one audit event naming who.
pub async fn apply(
    store: &Store,
    remaps: &[Remap],
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    let mut moved: BTreeSet<(String, String)> = BTreeSet::new();
    for remap in remaps {
        let Some(request) = requests::lock_id(&mut tx, remap.request).await? else {
            continue;
        };
        moved.insert((request.person_key(), remap.to.0.clone()));
        on_tx!(&mut tx, |conn| {
            sqlx::query("UPDATE requests SET subject_person = $1 WHERE id = $2")
                .bind(&remap.to.0)
                .bind(remap.request.to_string())
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })?;
    }
    for (from, to) in &moved {
        holdings::rename_person(&mut tx, from, to).await?;
    }
    audit::append(
        &mut tx,
        &audit::Event {
            at: now,
            tenant: None,
            request_id: None,
            ticket_key: None,
            actor: Actor::System(format!("operator:{by}")),
            action: audit::Action::PersonRemapped,
            target: None,
            details: json!({"requests": remaps.iter().map(|r| json!({
                "ticket": r.ticket, "email": r.email,
                "from": r.from.as_ref().map(|p| &p.0), "to": r.to.0,
            })).collect::<Vec<_>>()}),
            workflow_version: None,
        },
    )
    .await?;
    tx.commit().await
}
