//! A grant's steps, one per target, each with a status for granting and one for revoking, and
//! the rules that move them: claiming (a compare-and-set with a lease, so two deliveries of one
//! job never both call the vendor), settling, retrying, and starting the revocation. Pure: the
//! store reads the steps, applies one of these and writes them back compared-and-set.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::State;
use crate::ids::PersonId;

/// Granting or revoking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Grant,
    Revoke,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Revoke => "revoke",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Running,
    Done,
    Failed,
    /// Nothing to do in this phase (revoking a step that was never applied, or access that
    /// was in place before Tollgate granted it, or that another grant still holds).
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}

/// One step's entry in its request's `steps` column. Absent fields are left out: a million
/// grants are a million of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The step's plan, in `step_plans`.
    pub plan: i64,
    /// The person's id in the IdP, for IdP steps (plans are shared; people are not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonId>,
    pub grant: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<Status>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: i64,
    /// A step being applied is leased, so a second delivery of its job does not apply it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DateTime<Utc>>,
    /// When the step last moved, kept while it is unsettled in either phase: the sweep's test
    /// for a lost job. The request's `steps_due` is the earliest of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Since when the step keeps failing on retryable errors: it gives up after its resource's
    /// `give_up_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<DateTime<Utc>>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Progress {
    /// A step just planned: pending, not yet tried.
    pub fn planned(plan: i64, person: Option<PersonId>, now: DateTime<Utc>) -> Self {
        Self {
            plan,
            person,
            grant: Status::Pending,
            revoke: None,
            attempts: 0,
            lease: None,
            granted: None,
            revoked: None,
            error: None,
            drift: None,
            since: Some(now),
            failing: None,
        }
    }

    pub fn status(&self, phase: Phase) -> Option<Status> {
        match phase {
            Phase::Grant => Some(self.grant),
            Phase::Revoke => self.revoke,
        }
    }

    pub fn set(&mut self, phase: Phase, status: Status) {
        match phase {
            Phase::Grant => self.grant = status,
            Phase::Revoke => self.revoke = Some(status),
        }
    }

    pub fn change_mut(&mut self, phase: Phase) -> &mut Option<String> {
        match phase {
            Phase::Grant => &mut self.granted,
            Phase::Revoke => &mut self.revoked,
        }
    }

    pub fn unsettled(&self) -> bool {
        !self.grant.is_settled() || self.revoke.is_some_and(|s| !s.is_settled())
    }

    /// The step moved at `now`.
    pub fn moved(&mut self, now: DateTime<Utc>) {
        self.since = self.unsettled().then_some(now);
    }
}

/// How a claim went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours; `retaken` when an earlier claim's lease ran out (its holder may have applied the
    /// change before it died).
    Taken { retaken: bool },
    /// This attempt is running under a live lease until then: another run of the same job
    /// (taken over from a worker that died mid-call), or one still alive.
    Leased { until: DateTime<Utc> },
    /// Done, failed, or this job's attempt is stale.
    NotOurs,
}

fn nth(steps: &mut [Progress], step: i64) -> Option<&mut Progress> {
    usize::try_from(step).ok().and_then(|i| steps.get_mut(i))
}

/// A step is ours when this job's attempt is current and it is pending, or running under
/// a lease that ran out.
pub fn claim(
    steps: &mut [Progress],
    step: i64,
    phase: Phase,
    attempt: i64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Claim {
    let Some(p) = nth(steps, step) else {
        return Claim::NotOurs;
    };
    let status = p.status(phase);
    let retaken = status == Some(Status::Running);
    if p.attempts != attempt {
        return Claim::NotOurs;
    }
    match (status, p.lease) {
        (Some(Status::Pending), _) => {}
        (Some(Status::Running), Some(until)) if until >= now => {
            return Claim::Leased { until };
        }
        (Some(Status::Running), _) => {}
        _ => return Claim::NotOurs,
    }
    p.set(phase, Status::Running);
    p.lease = Some(lease_until);
    p.moved(now);
    Claim::Taken { retaken }
}

/// Extends the lease of a step this attempt is running; false when it is no longer so.
pub fn renew(
    steps: &mut [Progress],
    step: i64,
    phase: Phase,
    attempt: i64,
    until: DateTime<Utc>,
) -> bool {
    let Some(p) = nth(steps, step) else {
        return false;
    };
    let ours = p.attempts == attempt && p.status(phase) == Some(Status::Running);
    if ours {
        p.lease = Some(until);
    }
    ours
}

pub fn settle(
    steps: &mut [Progress],
    step: i64,
    phase: Phase,
    status: Status,
    change: Option<&str>,
    error: Option<&str>,
    now: DateTime<Utc>,
) {
    let Some(p) = nth(steps, step) else { return };
    p.set(phase, status);
    if let Some(change) = change {
        *p.change_mut(phase) = Some(change.to_string());
    }
    p.error = error.map(str::to_string);
    p.lease = None;
    p.failing = None;
    p.moved(now);
}

pub fn retry(
    steps: &mut [Progress],
    step: i64,
    phase: Phase,
    attempts: i64,
    error: &str,
    now: DateTime<Utc>,
) {
    let Some(p) = nth(steps, step) else { return };
    p.set(phase, Status::Pending);
    p.attempts = attempts;
    p.failing.get_or_insert(now);
    p.error = Some(error.to_string());
    p.lease = None;
    p.moved(now);
}

pub fn drift(steps: &mut [Progress], step: i64, at: DateTime<Utc>) {
    if let Some(p) = nth(steps, step) {
        p.drift.get_or_insert(at);
    }
}

/// Pending again under the next attempt, if nobody moved it since `attempts` was read.
pub fn bump(
    steps: &mut [Progress],
    step: i64,
    phase: Phase,
    attempts: i64,
    now: DateTime<Utc>,
) -> bool {
    let Some(p) = nth(steps, step) else {
        return false;
    };
    if p.attempts != attempts {
        return false;
    }
    p.set(phase, Status::Pending);
    p.attempts += 1;
    p.lease = None;
    p.moved(now);
    true
}

/// Applied steps become pending revocations, the others skipped; failed revocations are
/// tried again. Returns every pending revocation with its attempt number.
pub fn start_revoke(steps: &mut [Progress], now: DateTime<Utc>) -> Vec<(i64, i64)> {
    for p in steps.iter_mut() {
        if matches!(p.revoke, None | Some(Status::Failed)) {
            p.revoke = Some(if p.grant == Status::Done {
                Status::Pending
            } else {
                Status::Skipped
            });
            p.attempts += 1;
            p.error = None;
            p.lease = None;
            p.moved(now);
        }
    }
    (0_i64..)
        .zip(steps.iter())
        .filter(|(_, p)| p.revoke == Some(Status::Pending))
        .map(|(i, p)| (i, p.attempts))
        .collect()
}

/// Rewrites what the grant phase recorded it found (a correction, nothing else moves).
pub fn correct(steps: &mut [Progress], step: i64, granted: &str) {
    if let Some(p) = nth(steps, step) {
        p.granted = Some(granted.to_string());
    }
}

/// The earliest moment a step was left unsettled: the request's `steps_due`.
pub fn due(steps: &[Progress]) -> Option<DateTime<Utc>> {
    steps.iter().filter_map(|p| p.since).min()
}

/// Where a request goes once every step of the phase it is in has settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Access counts as granted; `partial` when some steps failed and the resource's policy
    /// keeps the rest.
    Granted { partial: bool },
    /// No step could be applied.
    NothingApplied { failed: usize },
    /// Some steps failed and the resource is all-or-nothing: what was applied is undone.
    RollBack { failed: usize, of: usize },
    /// Every step is undone (or had nothing to undo).
    Undone,
    /// Some steps could not be undone.
    UndoFailed { failed: usize },
}

/// Whether the steps of the request's phase (`provisioning`: granting, `revoking`: revoking)
/// have all settled, and where that leads. `steps` are each step's grant and revoke status;
/// `keep_partial` is the resource's policy. `None` while a step is unsettled, or in any other
/// state.
pub fn settled(
    state: State,
    steps: &[(Status, Option<Status>)],
    keep_partial: bool,
) -> Option<Settled> {
    let grants = |status| steps.iter().filter(|(grant, _)| *grant == status).count();
    match state {
        State::Provisioning => {
            if steps.iter().any(|(grant, _)| !grant.is_settled()) {
                return None;
            }
            let done = grants(Status::Done);
            let failed = grants(Status::Failed);
            Some(if failed == 0 || (keep_partial && done > 0) {
                Settled::Granted {
                    partial: failed > 0,
                }
            } else if done == 0 {
                Settled::NothingApplied { failed }
            } else {
                Settled::RollBack {
                    failed,
                    of: steps.len(),
                }
            })
        }
        State::Revoking => {
            if steps
                .iter()
                .any(|(_, revoke)| revoke.is_some_and(|s| !s.is_settled()))
            {
                return None;
            }
            let failed = steps
                .iter()
                .filter(|(_, revoke)| *revoke == Some(Status::Failed))
                .count();
            Some(if failed > 0 {
                Settled::UndoFailed { failed }
            } else {
                Settled::Undone
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap_or_default()
    }

    fn applied(steps: &mut [Progress], step: i64, at: DateTime<Utc>) {
        settle(
            steps,
            step,
            Phase::Grant,
            Status::Done,
            Some("applied"),
            None,
            at,
        );
    }

    fn two() -> Vec<Progress> {
        vec![
            Progress::planned(7, Some(PersonId("uid=erin".into())), t(0)),
            Progress::planned(9, None, t(0)),
        ]
    }

    #[test]
    fn a_step_is_claimed_once_until_its_lease_runs_out() {
        let mut steps = two();
        let lease = t(10) + TimeDelta::minutes(5);
        let first = claim(&mut steps, 0, Phase::Grant, 0, t(10), lease);
        assert_eq!(first, Claim::Taken { retaken: false });
        assert_eq!(steps[0].grant, Status::Running);
        // A second run of the job while the lease holds is told until when; a stale attempt
        // gets nothing.
        assert_eq!(
            claim(&mut steps, 0, Phase::Grant, 0, t(20), t(400)),
            Claim::Leased { until: lease }
        );
        assert_eq!(
            claim(&mut steps, 1, Phase::Grant, 3, t(20), t(400)),
            Claim::NotOurs
        );
        // The other step is claimed on its own.
        assert_eq!(
            claim(&mut steps, 1, Phase::Grant, 0, t(20), t(400)),
            Claim::Taken { retaken: false }
        );
        // The runner renews its lease; a stale attempt cannot.
        assert!(!renew(&mut steps, 0, Phase::Grant, 3, t(30)));
        assert!(renew(&mut steps, 0, Phase::Grant, 0, lease));
        assert_eq!(steps[0].lease, Some(lease));
        // After the lease the step may be taken again, and the taker is told.
        assert_eq!(
            claim(
                &mut steps,
                0,
                Phase::Grant,
                0,
                t(10) + TimeDelta::minutes(6),
                t(900)
            ),
            Claim::Taken { retaken: true }
        );
        // No such step, or a phase not started, is not ours.
        assert_eq!(
            claim(&mut steps, 5, Phase::Grant, 0, t(20), t(400)),
            Claim::NotOurs
        );
        assert_eq!(
            claim(&mut steps, 0, Phase::Revoke, 0, t(20), t(400)),
            Claim::NotOurs
        );
    }

    #[test]
    fn settling_keeps_the_change_releases_the_lease_and_clears_since() {
        let mut steps = two();
        claim(&mut steps, 0, Phase::Grant, 0, t(1), t(300));
        applied(&mut steps, 0, t(2));
        let step = &steps[0];
        assert_eq!(
            (step.grant, step.granted.as_deref(), step.lease, step.since),
            (Status::Done, Some("applied"), None, None)
        );
        // The other step is still pending since it was planned: the request is due then.
        assert_eq!(due(&steps), Some(t(0)));
        settle(
            &mut steps,
            1,
            Phase::Grant,
            Status::Failed,
            None,
            Some("403"),
            t(3),
        );
        assert_eq!(due(&steps), None);
        assert_eq!(steps[1].error.as_deref(), Some("403"));
        // A later settle without a change keeps the one recorded.
        settle(&mut steps, 0, Phase::Grant, Status::Done, None, None, t(4));
        assert_eq!(steps[0].granted.as_deref(), Some("applied"));
    }

    #[test]
    fn revoking_starts_applied_steps_skips_the_rest_and_retries_failures() {
        let mut steps = two();
        applied(&mut steps, 0, t(1));
        settle(
            &mut steps,
            1,
            Phase::Grant,
            Status::Failed,
            None,
            Some("x"),
            t(1),
        );
        assert_eq!(start_revoke(&mut steps, t(5)), vec![(0, 1)]);
        assert_eq!(steps[1].revoke, Some(Status::Skipped));
        assert_eq!(due(&steps), Some(t(5)));
        // Started twice: nothing new, the pending one is still returned.
        assert_eq!(start_revoke(&mut steps, t(6)), vec![(0, 1)]);
        settle(
            &mut steps,
            0,
            Phase::Revoke,
            Status::Failed,
            None,
            Some("503"),
            t(7),
        );
        assert_eq!(start_revoke(&mut steps, t(8)), vec![(0, 2)]);
        assert_eq!(steps[0].error, None);
    }

    #[test]
    fn a_retry_and_a_bump_move_the_attempt_on() {
        let mut steps = two();
        claim(&mut steps, 0, Phase::Grant, 0, t(1), t(300));
        retry(&mut steps, 0, Phase::Grant, 1, "429", t(2));
        assert_eq!((steps[0].grant, steps[0].attempts), (Status::Pending, 1));
        assert_eq!(steps[0].since, Some(t(2)));
        // A bump with a stale attempt count is refused; with the current one it moves on.
        assert!(!bump(&mut steps, 0, Phase::Grant, 0, t(3)));
        assert!(bump(&mut steps, 0, Phase::Grant, 1, t(3)));
        assert_eq!(steps[0].attempts, 2);
        drift(&mut steps, 1, t(4));
        drift(&mut steps, 1, t(5));
        assert_eq!(steps[1].drift, Some(t(4)));
    }
}
