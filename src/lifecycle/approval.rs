//! Approvals, pure: which decisions count and where they lead. [`super::request`] turns where
//! they lead into the request's next state.

use serde::{Deserialize, Serialize};

use super::State;
use crate::ids::AccountId;

/// Someone who may approve a stage: their email (from the org chart) and, when it could be
/// resolved, their Atlassian account (how their decisions in the ticket are recognised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    /// As the routing named them: someone outside the org chart is kept as written.
    pub email: String,
    pub name: String,
    pub account: Option<AccountId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStage {
    pub name: String,
    pub approvers: Vec<Approver>,
    pub required: usize,
    pub skipped: bool,
    pub why: String,
}

/// The routing as the request keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub stages: Vec<PlannedStage>,
    pub reasons: Vec<String>,
}

impl Plan {
    /// The first stage at or after `from` that is not skipped.
    pub fn open_stage(&self, from: usize) -> Option<usize> {
        (from..self.stages.len()).find(|&i| !self.stages[i].skipped)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Decline,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Decline => "decline",
        }
    }
}

/// Why a decision does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotPending,
    /// The decider is the person the access is for, or who asked for it.
    SelfApproval,
    /// Not an approver of the current stage; who is.
    NotAnApprover {
        stage: String,
        approvers: Vec<String>,
    },
    AlreadyDecided,
}

/// Where a counted decision leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The stage needs more approvals.
    Waiting {
        approvals: usize,
        required: usize,
    },
    /// The stage is done; this one is open now.
    Stage(usize),
    Approved,
    Declined,
}

/// Whether `account`'s `verdict` counts in stage `stage`, and what follows. `decided` are the
/// accounts that already decided this stage (all approvals: a decline ends the request).
pub fn decide(
    state: State,
    plan: &Plan,
    stage: usize,
    requesters: &[&AccountId],
    decided: &[AccountId],
    account: &AccountId,
    verdict: Verdict,
) -> Result<Next, Refusal> {
    if state != State::Pending {
        return Err(Refusal::NotPending);
    }
    if requesters.contains(&account) {
        return Err(Refusal::SelfApproval);
    }
    let Some(current) = plan.stages.get(stage) else {
        return Err(Refusal::NotPending);
    };
    if !current
        .approvers
        .iter()
        .any(|a| a.account.as_ref() == Some(account))
    {
        return Err(Refusal::NotAnApprover {
            stage: current.name.clone(),
            approvers: current.approvers.iter().map(|a| a.name.clone()).collect(),
        });
    }
    if decided.contains(account) {
        return Err(Refusal::AlreadyDecided);
    }
    if verdict == Verdict::Decline {
        return Ok(Next::Declined);
    }
    // Approvers who are also requesters cannot approve, so they do not count towards `all`.
    let eligible = current
        .approvers
        .iter()
        .filter(|a| {
            a.account
                .as_ref()
                .is_none_or(|acc| !requesters.contains(&acc))
        })
        .count();
    let required = current.required.min(eligible).max(1);
    let approvals = decided.len() + 1;
    if approvals < required {
        return Ok(Next::Waiting {
            approvals,
            required,
        });
    }
    Ok(match plan.open_stage(stage + 1) {
        Some(next) => Next::Stage(next),
        None => Next::Approved,
    })
}

/// What a stage's timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    Remind,
    Escalate,
    Decline,
}

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Remind => "remind",
            Self::Escalate => "escalate",
            Self::Decline => "decline",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(id: &str) -> AccountId {
        AccountId(id.to_string())
    }

    fn approver(name: &str) -> Approver {
        Approver {
            email: format!("{name}@x.io"),
            name: name.into(),
            account: Some(acc(&format!("acc-{name}"))),
        }
    }

    fn plan() -> Plan {
        Plan {
            stages: vec![
                PlannedStage {
                    name: "manager".into(),
                    approvers: vec![approver("dan")],
                    required: 1,
                    skipped: false,
                    why: String::new(),
                },
                PlannedStage {
                    name: "skipped".into(),
                    approvers: vec![],
                    required: 1,
                    skipped: true,
                    why: String::new(),
                },
                PlannedStage {
                    name: "owners".into(),
                    approvers: vec![approver("ola"), approver("erin"), approver("kim")],
                    required: 3,
                    skipped: false,
                    why: String::new(),
                },
            ],
            reasons: vec![],
        }
    }

    #[test]
    fn stages_advance_past_skipped_ones_to_approval() {
        let p = plan();
        let go = |stage, decided: &[&str], who: &str, v| {
            let decided: Vec<AccountId> = decided.iter().map(|d| acc(d)).collect();
            decide(
                State::Pending,
                &p,
                stage,
                &[&acc("acc-erin")],
                &decided,
                &acc(who),
                v,
            )
        };
        assert_eq!(go(0, &[], "acc-dan", Verdict::Approve), Ok(Next::Stage(2)));
        // Erin asked for it: she is an owner but cannot approve, and `all` means the other two.
        assert_eq!(
            go(2, &[], "acc-erin", Verdict::Approve),
            Err(Refusal::SelfApproval)
        );
        assert_eq!(
            go(2, &[], "acc-ola", Verdict::Approve),
            Ok(Next::Waiting {
                approvals: 1,
                required: 2
            })
        );
        assert_eq!(
            go(2, &["acc-ola"], "acc-ola", Verdict::Approve),
            Err(Refusal::AlreadyDecided)
        );
        assert_eq!(
            go(2, &["acc-ola"], "acc-kim", Verdict::Approve),
            Ok(Next::Approved)
        );
    }

    #[test]
    fn declines_end_it_and_others_are_refused() {
        let p = plan();
        assert_eq!(
            decide(
                State::Pending,
                &p,
                0,
                &[],
                &[],
                &acc("acc-dan"),
                Verdict::Decline
            ),
            Ok(Next::Declined)
        );
        match decide(
            State::Pending,
            &p,
            0,
            &[],
            &[],
            &acc("acc-ola"),
            Verdict::Approve,
        ) {
            Err(Refusal::NotAnApprover { stage, approvers }) => {
                assert_eq!(
                    (stage.as_str(), approvers),
                    ("manager", vec!["dan".to_string()])
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(
                State::Approved,
                &p,
                0,
                &[],
                &[],
                &acc("acc-dan"),
                Verdict::Approve
            ),
            Err(Refusal::NotPending)
        );
    }
}
