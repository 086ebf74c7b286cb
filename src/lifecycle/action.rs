//! What the audit log calls each thing that happens to a request and its grant. The names are
//! stored in the log and read by reports and by auditors: they never change.

use super::step::Phase;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RequestReceived,
    RequestInvalid,
    RequestDenied,
    RequestAutoApproved,
    RequestRouted,
    RequestRerouted,
    RequestEscalated,
    RequestReminded,
    RequestTimedOut,
    RequestCancelled,
    DecisionApproved,
    DecisionDeclined,
    DecisionRefused,
    CommentUnverified,
    CommandRefused,
    ExtensionRequested,
    ExtensionFailed,
    GrantPlanned,
    GrantRefused,
    GrantActive,
    GrantPartial,
    GrantFailed,
    GrantExtended,
    /// A birthright grant no longer due will end after the grace period.
    GrantEndScheduled,
    /// A birthright grant due again before its end: it no longer ends.
    GrantEndCancelled,
    /// Access up for review (its person moved) re-approved: it stays.
    ReviewKept,
    GrantReminded,
    GrantDrift,
    GrantRevoking,
    GrantExpired,
    GrantRolledBack,
    GrantRevoked,
    GrantRevokeFailed,
    /// A step of `phase` settled: applied, or found already as asked.
    StepDone(Phase),
    /// A step of `phase` had nothing to do.
    StepSkipped(Phase),
    /// A step of `phase` failed for good.
    StepFailed(Phase),
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestReceived => "request.received",
            Self::RequestInvalid => "request.invalid",
            Self::RequestDenied => "request.denied",
            Self::RequestAutoApproved => "request.auto_approved",
            Self::RequestRouted => "request.routed",
            Self::RequestRerouted => "request.rerouted",
            Self::RequestEscalated => "request.escalated",
            Self::RequestReminded => "request.reminded",
            Self::RequestTimedOut => "request.timed_out",
            Self::RequestCancelled => "request.cancelled",
            Self::DecisionApproved => "decision.approved",
            Self::DecisionDeclined => "decision.declined",
            Self::DecisionRefused => "decision.refused",
            Self::CommentUnverified => "comment.unverified",
            Self::CommandRefused => "command.refused",
            Self::ExtensionRequested => "extension.requested",
            Self::ExtensionFailed => "extension.failed",
            Self::GrantPlanned => "grant.planned",
            Self::GrantRefused => "grant.refused",
            Self::GrantActive => "grant.active",
            Self::GrantPartial => "grant.partial",
            Self::GrantFailed => "grant.failed",
            Self::GrantExtended => "grant.extended",
            Self::GrantEndScheduled => "grant.end_scheduled",
            Self::GrantEndCancelled => "grant.end_cancelled",
            Self::ReviewKept => "review.kept",
            Self::GrantReminded => "grant.reminded",
            Self::GrantDrift => "grant.drift",
            Self::GrantRevoking => "grant.revoking",
            Self::GrantExpired => "grant.expired",
            Self::GrantRolledBack => "grant.rolled_back",
            Self::GrantRevoked => "grant.revoked",
            Self::GrantRevokeFailed => "grant.revoke_failed",
            Self::StepDone(Phase::Grant) => "grant.step_done",
            Self::StepDone(Phase::Revoke) => "revoke.step_done",
            Self::StepSkipped(Phase::Grant) => "grant.step_skipped",
            Self::StepSkipped(Phase::Revoke) => "revoke.step_skipped",
            Self::StepFailed(Phase::Grant) => "grant.step_failed",
            Self::StepFailed(Phase::Revoke) => "revoke.step_failed",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
