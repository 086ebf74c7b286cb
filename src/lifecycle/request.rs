//! A request's life: its states, what may happen in each, and where that leads.
//!
//! [`apply`] is the only way a request's state changes. It checks the event against the
//! transition table ([`next`]), sets what belongs to the change (the reason, the open stage,
//! when access was granted and when it ends) and returns the audit action the caller records
//! in the same transaction. A table lookup that fails is a [`Conflict`]: the caller asked for a
//! change the request's state does not allow, which is a bug or a race lost, never an outage.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::action::Action;
use super::approval::Plan;
use crate::ids::{AccountId, Email, PersonId, ResourceId, TenantKey, TicketKey};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Taken in, not yet routed: a request is stored once routing has decided its next state.
    Received,
    Pending,
    Approved,
    Declined,
    Cancelled,
    Failed,
    /// Approved; the grant's steps are being applied.
    Provisioning,
    /// Every step applied (or, with `partial`, those the policy kept).
    Active,
    /// The steps are being undone (expiry, revocation, a leaver, or a failed grant's rollback).
    Revoking,
    Expired,
    Revoked,
    /// A step could not be undone: alerted, and retried by the reconcile sweep.
    RevokeFailed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
            Self::Provisioning => "provisioning",
            Self::Active => "active",
            Self::Revoking => "revoking",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::RevokeFailed => "revoke_failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "received" => Self::Received,
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "declined" => Self::Declined,
            "cancelled" => Self::Cancelled,
            "failed" => Self::Failed,
            "provisioning" => Self::Provisioning,
            "active" => Self::Active,
            "revoking" => Self::Revoking,
            "expired" => Self::Expired,
            "revoked" => Self::Revoked,
            "revoke_failed" => Self::RevokeFailed,
            _ => return None,
        })
    }

    /// Nothing more happens to a request in this state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Declined | Self::Cancelled | Self::Failed | Self::Expired | Self::Revoked
        )
    }

    /// Still being decided: a cancelled ticket cancels it.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Received | Self::Pending)
    }

    /// Access was (at least partly) granted and is not yet gone.
    pub fn holds_access(self) -> bool {
        matches!(
            self,
            Self::Provisioning | Self::Active | Self::Revoking | Self::RevokeFailed
        )
    }
}

/// Why a grant's access ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndCause {
    /// It reached `expires_at`.
    Expired,
    /// Revoked early: `/revoke`, a revoking resolution.
    Revoked,
    /// The person left (inactive in, or gone from, the org chart).
    Leaver,
    /// A step failed for good and the policy is all-or-nothing: what was applied is undone.
    Rollback,
}

impl EndCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Leaver => "leaver",
            Self::Rollback => "rollback",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "expired" => Self::Expired,
            "revoked" => Self::Revoked,
            "leaver" => Self::Leaver,
            "rollback" => Self::Rollback,
            _ => return None,
        })
    }

    /// The request's state once every step is undone.
    pub fn final_state(self) -> State {
        match self {
            Self::Expired => State::Expired,
            Self::Revoked | Self::Leaver => State::Revoked,
            Self::Rollback => State::Failed,
        }
    }
}

impl State {
    /// Every state, in the order of a request's life.
    pub const ALL: [State; 12] = [
        Self::Received,
        Self::Pending,
        Self::Approved,
        Self::Declined,
        Self::Cancelled,
        Self::Failed,
        Self::Provisioning,
        Self::Active,
        Self::Revoking,
        Self::Expired,
        Self::Revoked,
        Self::RevokeFailed,
    ];

    /// The states `pick` chooses, as an SQL list (`'active', 'revoking'`): queries name states
    /// through this, so the lists cannot drift from the enum.
    pub fn sql_list(pick: impl Fn(State) -> bool) -> String {
        Self::ALL
            .into_iter()
            .filter(|s| pick(*s))
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a request. Which ones a state allows is [`next`]'s table.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Routing found the request cannot be judged as filed (what to fix is the reason).
    Invalid { reason: String },
    /// The workflow denies it, or no stage has anyone who may approve.
    Denied { reason: String },
    /// The workflow approves it without anyone deciding.
    AutoApproved,
    /// Routed to approvers; `stage` is the first one open.
    Routed { stage: usize },
    /// An approval counted and the stage needs more.
    Counted,
    /// An approval finished a stage; `next` is open now.
    StageApproved { next: usize },
    /// An approval finished the last stage.
    Approved,
    /// An approver declined.
    Declined { reason: String },
    /// Nobody decided within the stage's time.
    TimedOut { reason: String },
    /// The ticket was cancelled, or the person left, before a decision.
    Cancelled { reason: String },
    /// The grant's steps are planned; `account` is whom they are for in Atlassian.
    Planned { account: Option<AccountId> },
    /// No grant could be planned (or planning gave up).
    Refused { reason: String },
    /// An approved extension of a grant that is no longer active.
    ExtensionFailed { reason: String },
    /// An approved extension moved its grant's end to `expires_at` (recorded on the grant).
    ExtensionApplied { expires_at: DateTime<Utc> },
    /// The grant's end moved: its total duration is `total_seconds` now.
    Extended {
        expires_at: DateTime<Utc>,
        total_seconds: i64,
    },
    /// A birthright grant no longer due (its person moved): it ends at `at`, after the grace
    /// period, unless they are due it again before then.
    EndScheduled { at: DateTime<Utc> },
    /// Due again before its scheduled end: it no longer ends.
    EndCancelled,
    /// An approved review of access someone holds: the access stays (recorded on the review,
    /// a child request of the grant, which is settled by it).
    ReviewKept,
    /// Every step settled and the access counts as granted (`partial`: only some steps, which
    /// the resource's policy keeps).
    Granted { partial: bool },
    /// Every step settled and none applied.
    NothingApplied,
    /// Taking the access away starts. From `provisioning` only as a rollback.
    Revoke { cause: EndCause, reason: String },
    /// Every step is undone.
    Undone,
    /// A step could not be undone.
    UndoFailed,
}

impl Event {
    /// The event's name, for conflicts and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid",
            Self::Denied { .. } => "denied",
            Self::AutoApproved => "auto_approved",
            Self::Routed { .. } => "routed",
            Self::Counted => "counted",
            Self::StageApproved { .. } => "stage_approved",
            Self::Approved => "approved",
            Self::Declined { .. } => "declined",
            Self::TimedOut { .. } => "timed_out",
            Self::Cancelled { .. } => "cancelled",
            Self::Planned { .. } => "planned",
            Self::Refused { .. } => "refused",
            Self::ExtensionFailed { .. } => "extension_failed",
            Self::ExtensionApplied { .. } => "extension_applied",
            Self::Extended { .. } => "extended",
            Self::EndScheduled { .. } => "end_scheduled",
            Self::EndCancelled => "end_cancelled",
            Self::ReviewKept => "review_kept",
            Self::Granted { .. } => "granted",
            Self::NothingApplied => "nothing_applied",
            Self::Revoke { .. } => "revoke",
            Self::Undone => "undone",
            Self::UndoFailed => "undo_failed",
        }
    }
}

/// A change the request's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a request that is {from} cannot take `{event}`")]
pub struct Conflict {
    pub from: State,
    pub event: &'static str,
}

/// Where an event leads, and what the audit log calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub action: Action,
}

/// The transition table: `(state, event) → state`, with its audit action. `end` is the
/// request's end cause, which decides where an undone revocation leads.
pub fn next(from: State, event: &Event, end: Option<EndCause>) -> Result<Transition, Conflict> {
    use Event as E;
    use State as S;
    let (to, action) = match (from, event) {
        (S::Received, E::Invalid { .. }) => (S::Declined, Action::RequestInvalid),
        (S::Received, E::Denied { .. }) => (S::Declined, Action::RequestDenied),
        (S::Received, E::AutoApproved) => (S::Approved, Action::RequestAutoApproved),
        (S::Received, E::Routed { .. }) => (S::Pending, Action::RequestRouted),
        (S::Pending, E::Counted | E::StageApproved { .. }) => {
            (S::Pending, Action::DecisionApproved)
        }
        (S::Pending, E::Approved) => (S::Approved, Action::DecisionApproved),
        (S::Pending, E::Declined { .. }) => (S::Declined, Action::DecisionDeclined),
        (S::Pending, E::TimedOut { .. }) => (S::Declined, Action::RequestTimedOut),
        (S::Received | S::Pending, E::Cancelled { .. }) => (S::Cancelled, Action::RequestCancelled),
        (S::Approved, E::Planned { .. }) => (S::Provisioning, Action::GrantPlanned),
        (S::Approved, E::Refused { .. }) => (S::Failed, Action::GrantRefused),
        (S::Approved, E::ExtensionFailed { .. }) => (S::Failed, Action::ExtensionFailed),
        // The extension stays approved, applied (its grant records the change).
        (S::Approved, E::ExtensionApplied { .. }) => (S::Approved, Action::GrantExtended),
        (S::Active, E::Extended { .. }) => (S::Active, Action::GrantExtended),
        (S::Active, E::EndScheduled { .. }) => (S::Active, Action::GrantEndScheduled),
        (S::Active, E::EndCancelled) => (S::Active, Action::GrantEndCancelled),
        // Like an applied extension, the review stays approved, settled.
        (S::Approved, E::ReviewKept) => (S::Approved, Action::ReviewKept),
        (S::Provisioning, E::Granted { partial: false }) => (S::Active, Action::GrantActive),
        (S::Provisioning, E::Granted { partial: true }) => (S::Active, Action::GrantPartial),
        (S::Provisioning, E::NothingApplied) => (S::Failed, Action::GrantFailed),
        (
            S::Provisioning,
            E::Revoke {
                cause: EndCause::Rollback,
                ..
            },
        )
        | (S::Active | S::RevokeFailed, E::Revoke { .. }) => (S::Revoking, Action::GrantRevoking),
        (S::Revoking, E::Undone) => match end.unwrap_or(EndCause::Revoked) {
            EndCause::Expired => (S::Expired, Action::GrantExpired),
            EndCause::Rollback => (S::Failed, Action::GrantRolledBack),
            EndCause::Revoked | EndCause::Leaver => (S::Revoked, Action::GrantRevoked),
        },
        (S::Revoking, E::UndoFailed) => (S::RevokeFailed, Action::GrantRevokeFailed),
        _ => {
            return Err(Conflict {
                from,
                event: event.name(),
            });
        }
    };
    Ok(Transition { from, to, action })
}

/// Moves `request` on by `event` at `now`, or leaves it untouched when its state does not
/// allow the event.
pub fn apply(
    request: &mut Request,
    event: Event,
    now: DateTime<Utc>,
) -> Result<Transition, Conflict> {
    let transition = next(request.state, &event, request.end_cause)?;
    match event {
        Event::Invalid { reason }
        | Event::Denied { reason }
        | Event::Declined { reason }
        | Event::TimedOut { reason }
        | Event::Cancelled { reason }
        | Event::Refused { reason }
        | Event::ExtensionFailed { reason } => request.reason = Some(reason),
        Event::Routed { stage } | Event::StageApproved { next: stage } => {
            request.stage = stage as i64;
            request.stage_started_at = Some(now);
        }
        Event::Planned { account } => request.subject_account = account,
        Event::ExtensionApplied { expires_at } => {
            request.granted_at = Some(now);
            request.expires_at = Some(expires_at);
        }
        Event::Extended {
            expires_at,
            total_seconds,
        } => {
            request.expires_at = Some(expires_at);
            request.duration_seconds = Some(total_seconds);
        }
        Event::EndScheduled { at } => request.expires_at = Some(at),
        // Birthright has no end of its own: the grant is permanent again.
        Event::EndCancelled => request.expires_at = None,
        Event::ReviewKept => request.granted_at = Some(now),
        Event::Granted { partial } => {
            request.partial = partial;
            // The clock of temporary access starts now, not when it was asked for.
            request.granted_at = Some(now);
            request.expires_at = request
                .duration_seconds
                .map(|s| now + TimeDelta::seconds(s));
        }
        Event::NothingApplied => {
            request.reason = Some("no step of the grant could be applied".into());
        }
        Event::Revoke { cause, reason } => {
            request.end_cause = Some(cause);
            request.reason = Some(reason);
        }
        Event::Undone => request.ended_at = Some(now),
        Event::AutoApproved | Event::Counted | Event::Approved | Event::UndoFailed => {}
    }
    request.state = transition.to;
    request.updated_at = now;
    Ok(transition)
}

/// The workflow of a review of Atlassian product access unused too long:
/// `inactive:<product>`.
pub const INACTIVE_REVIEW: &str = "inactive:";

/// What a review decides about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reviewed {
    /// A grant the person holds (the review is its child request; `review_on_move`).
    Grant(Uuid),
    /// Atlassian product access unused too long (an inactive case).
    Inactive,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Uuid,
    pub tenant: TenantKey,
    pub ticket_key: TicketKey,
    pub issue_id: String,
    pub state: State,
    /// Index of the open stage in `plan`.
    pub stage: i64,
    pub requester_account: AccountId,
    pub requester_email: Option<Email>,
    /// Whom the access is for, when not the requester.
    pub subject_email: Option<Email>,
    /// The IdP person id of whom the access is for (the subject, else the requester): how
    /// leavers, holders and account matches know them, since emails change. `None` for someone
    /// not in the org chart (`tollgate org unmatched` lists them).
    pub subject_person: Option<PersonId>,
    pub resource: Option<ResourceId>,
    pub level: Option<String>,
    pub duration_seconds: Option<i64>,
    pub justification: String,
    pub workflow: Option<String>,
    pub workflow_version: Option<String>,
    pub plan: Option<Plan>,
    /// Why it was declined or failed, in words for the ticket.
    pub reason: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub stage_started_at: Option<DateTime<Utc>>,
    /// For an extension: the grant it extends (same ticket).
    pub parent_id: Option<Uuid>,
    /// The Atlassian account of whom the access is for, once resolved for the grant.
    pub subject_account: Option<AccountId>,
    /// When every step was applied: the clock of temporary access starts here.
    pub granted_at: Option<DateTime<Utc>>,
    /// `None` while not granted, or for permanent access.
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_cause: Option<EndCause>,
    /// Active with only some steps applied (the resource's policy keeps partial access).
    pub partial: bool,
    /// For a birthright grant: the identity lifecycle run that made it (on the run's ticket).
    pub run_id: Option<Uuid>,
}

impl Request {
    /// A request as its ticket brings it in: `received`, nothing resolved or decided yet (the
    /// only state a request is made in; routing moves it on before it is stored).
    /// What this request reviews, if it is a review (rather than an extension, or a grant):
    /// a request of a lifecycle run on the person's lifecycle ticket, of a grant (its child)
    /// or of product access (its workflow says `inactive:`).
    pub fn reviews(&self) -> Option<Reviewed> {
        self.run_id?;
        match self.parent_id {
            Some(grant) => Some(Reviewed::Grant(grant)),
            None => self
                .workflow
                .as_deref()
                .is_some_and(|w| w.starts_with(INACTIVE_REVIEW))
                .then_some(Reviewed::Inactive),
        }
    }

    pub fn received(
        id: Uuid,
        tenant: TenantKey,
        ticket_key: TicketKey,
        issue_id: String,
        requester: AccountId,
        workflow_version: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            tenant,
            ticket_key,
            issue_id,
            state: State::Received,
            stage: 0,
            requester_account: requester,
            requester_email: None,
            subject_email: None,
            subject_person: None,
            resource: None,
            level: None,
            duration_seconds: None,
            justification: String::new(),
            workflow: None,
            workflow_version: Some(workflow_version),
            plan: None,
            reason: None,
            version: 1,
            created_at: now,
            updated_at: now,
            stage_started_at: None,
            parent_id: None,
            subject_account: None,
            granted_at: None,
            expires_at: None,
            ended_at: None,
            end_cause: None,
            partial: false,
            run_id: None,
        }
    }

    /// An extension of `parent` (`/extend` in its ticket): a child request for the same
    /// ticket, person and resource, received.
    pub fn extension_of(
        parent: &Request,
        id: Uuid,
        workflow_version: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            parent_id: Some(parent.id),
            requester_email: parent.requester_email.clone(),
            subject_email: parent.subject_email.clone(),
            subject_person: parent.subject_person.clone(),
            subject_account: parent.subject_account.clone(),
            resource: parent.resource.clone(),
            level: parent.level.clone(),
            duration_seconds: parent.duration_seconds,
            ..Self::received(
                id,
                parent.tenant.clone(),
                parent.ticket_key.clone(),
                parent.issue_id.clone(),
                parent.requester_account.clone(),
                workflow_version,
                now,
            )
        }
    }

    /// Whether the access is for someone other than who filed it, by email.
    pub fn subject(&self) -> Option<&str> {
        self.subject_email
            .as_deref()
            .or(self.requester_email.as_deref())
    }

    /// How whom the access is for is known to holders: their IdP person id, else their email
    /// (`email:<address>`), else the requester's account (`account:<id>`).
    pub fn person_key(&self) -> String {
        match (&self.subject_person, self.subject()) {
            (Some(id), _) => id.0.clone(),
            (None, Some(email)) => format!("email:{}", email.to_ascii_lowercase()),
            (None, None) => format!("account:{}", self.requester_account),
        }
    }
}
