//! What the audit log calls everything it records. The names are stored in the log and read by
//! reports and auditors: they never change. A request's own actions are `lifecycle::Action`
//! (each belongs to a transition); the rest happen to tenants, people, secrets and alerts.

use crate::lifecycle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Something that happened to a request or its grant.
    Request(lifecycle::Action),
    Tenant(TenantAction),
    /// Every stored secret sealed again under the newest key (`tollgate secrets rotate`).
    SecretsRotated,
    /// A person's email changed in the identity source: their grants follow them.
    PersonRenamed,
    /// A grant's holder moved to another person id (`tollgate org remap`).
    PersonRemapped,
    /// Requests and holders keyed by email moved to person ids (a one-time migration).
    PeopleMigrated,
    /// An alert raised (its kind, `alerts::Alert::kind`).
    Alert(&'static str),
    /// What became of a leaver-brake hold (its raising is [`Action::Alert`]).
    LeaverBrake(HoldStep),
    /// A step of an identity lifecycle run (a joiner's birthright).
    Lifecycle(RunStep),
    /// What became of access found unused too long (the case's new state).
    Inactive(crate::store::inactive_cases::CaseState),
    /// A change an identity provider pushed through SCIM, or its token's issue and revocation.
    ScimPush(ScimStep),
    /// An identity provider's event hook delivered an event (its re-read follows).
    IdpEventReceived,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimStep {
    Created(crate::scim::Kind),
    Replaced(crate::scim::Kind),
    Patched(crate::scim::Kind),
    Deleted(crate::scim::Kind),
    TokenIssued,
    TokenRevoked,
}

impl ScimStep {
    pub fn name(self) -> String {
        let of = |kind: crate::scim::Kind, what: &str| {
            format!("scim.{}.{what}", kind.name().to_ascii_lowercase())
        };
        match self {
            Self::Created(kind) => of(kind, "created"),
            Self::Replaced(kind) => of(kind, "replaced"),
            Self::Patched(kind) => of(kind, "patched"),
            Self::Deleted(kind) => of(kind, "deleted"),
            Self::TokenIssued => "scim.token.issued".into(),
            Self::TokenRevoked => "scim.token.revoked".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStep {
    /// A sync showed the person's event; the run is queued (or held by the brake).
    Recorded,
    /// Held runs let go by an operator (`tollgate lifecycle release`).
    Released,
    /// The lifecycle ticket was raised (or found, after a crash).
    TicketOpened,
    /// The run finished: what it granted, or why nothing.
    Finished,
}

impl RunStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recorded => "recorded",
            Self::Released => "released",
            Self::TicketOpened => "ticket_opened",
            Self::Finished => "finished",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantAction {
    Installed,
    Reinstalled,
    Uninstalled,
    Enabled,
    Disabled,
    /// A plain webhook source joined its site's tenant.
    Linked,
    /// A Forge installation joined its site's tenant.
    ForgeLinked,
    ForgeUninstalled,
    /// A plain webhook source was given a new secret.
    SecretRotated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStep {
    Approved,
    Done,
    Dropped,
}

impl HoldStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Done => "done",
            Self::Dropped => "dropped",
        }
    }
}

impl TenantAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "tenant.installed",
            Self::Reinstalled => "tenant.reinstalled",
            Self::Uninstalled => "tenant.uninstalled",
            Self::Enabled => "tenant.enabled",
            Self::Disabled => "tenant.disabled",
            Self::Linked => "tenant.linked",
            Self::ForgeLinked => "tenant.forge_linked",
            Self::ForgeUninstalled => "tenant.forge_uninstalled",
            Self::SecretRotated => "tenant.secret_rotated",
        }
    }
}

impl Action {
    /// The name the log stores.
    pub fn name(self) -> String {
        match self {
            Self::Request(action) => action.as_str().to_string(),
            Self::Tenant(action) => action.as_str().to_string(),
            Self::SecretsRotated => "secrets.rotated".into(),
            Self::PersonRenamed => "person.renamed".into(),
            Self::PersonRemapped => "person.remapped".into(),
            Self::PeopleMigrated => "migration.people_and_holders".into(),
            Self::Alert(kind) => format!("alert.{kind}"),
            Self::LeaverBrake(step) => format!("alert.leaver_brake.{}", step.as_str()),
            Self::Lifecycle(step) => format!("lifecycle.{}", step.as_str()),
            Self::Inactive(state) => format!("inactive.{}", state.as_str()),
            Self::ScimPush(step) => step.name(),
            Self::IdpEventReceived => "idp.event_received".into(),
        }
    }
}

impl From<lifecycle::Action> for Action {
    fn from(action: lifecycle::Action) -> Self {
        Self::Request(action)
    }
}

impl From<TenantAction> for Action {
    fn from(action: TenantAction) -> Self {
        Self::Tenant(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names already in stored logs, written before these were types.
    #[test]
    fn names_are_the_stored_ones() {
        let names = [
            (Action::Tenant(TenantAction::Installed), "tenant.installed"),
            (
                Action::Tenant(TenantAction::SecretRotated),
                "tenant.secret_rotated",
            ),
            (Action::SecretsRotated, "secrets.rotated"),
            (Action::PersonRenamed, "person.renamed"),
            (Action::PersonRemapped, "person.remapped"),
            (Action::PeopleMigrated, "migration.people_and_holders"),
            (Action::Alert("leaver_brake"), "alert.leaver_brake"),
            (
                Action::LeaverBrake(HoldStep::Approved),
                "alert.leaver_brake.approved",
            ),
            (
                Action::Request(lifecycle::Action::GrantActive),
                "grant.active",
            ),
            (
                Action::Lifecycle(RunStep::TicketOpened),
                "lifecycle.ticket_opened",
            ),
            (
                Action::Inactive(crate::store::inactive_cases::CaseState::Ended),
                "inactive.ended",
            ),
            (
                Action::ScimPush(ScimStep::Patched(crate::scim::Kind::User)),
                "scim.user.patched",
            ),
            (
                Action::ScimPush(ScimStep::Deleted(crate::scim::Kind::Group)),
                "scim.group.deleted",
            ),
            (Action::ScimPush(ScimStep::TokenIssued), "scim.token.issued"),
        ];
        for (action, name) in names {
            assert_eq!(action.name(), name);
        }
    }
}
