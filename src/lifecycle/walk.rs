//! Random lives of a request, driven by the same decision code the engine and the grants use
//! (`approval::decide`, the step rules, `step::settled`) and moved only by [`apply`], with the
//! lifecycle's invariants checked after every move:
//!
//! - no access without a decision by an eligible approver (or the workflow's auto-approval);
//! - every active grant has a scheduled end, or is permanent;
//! - a request that is over leaves no step pending, and every applied step was undone (or
//!   left, on purpose, to another holder);
//! - an event a state does not allow changes nothing.

use crate::ids::{AccountId, Email, ResourceId, TenantKey, TicketKey};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::approval::{self, Approver, Next, Plan, PlannedStage, Verdict};
use super::request::{EndCause, Event, Request, State, apply};
use super::step::{self, Claim, Phase, Progress, Settled, Status};

const ACCOUNTS: usize = 6;

fn account(i: usize) -> AccountId {
    AccountId(format!("acc-{i}"))
}

/// How routing ends.
#[derive(Debug, Clone, Copy)]
enum Routing {
    Invalid,
    Denied,
    Auto,
    ToApprovers,
}

/// What a step's vendor call comes to.
#[derive(Debug, Clone, Copy)]
enum Call {
    Done,
    Skipped,
    Failed,
    Retry,
    /// The worker dies mid-call: the step stays running under its lease.
    Dies,
}

#[derive(Debug, Clone)]
enum Move {
    Route(Routing),
    Decide {
        who: usize,
        approve: bool,
    },
    TimeOut,
    Cancel,
    Plan {
        steps: usize,
    },
    Refuse,
    Step {
        index: usize,
        call: Call,
    },
    Expire,
    Revoke(EndCause),
    Extend {
        seconds: i64,
    },
    Later {
        minutes: i64,
    },
    /// Any event at all, tried on a copy: allowed or not, the table decides, and a refused one
    /// leaves the request as it was.
    Hostile(u8),
}

#[derive(Debug, Clone)]
struct World {
    request: Request,
    plan: Plan,
    requesters: Vec<AccountId>,
    /// The approvals each stage counted, as `approval::decide` accepted them.
    counted: Vec<Vec<AccountId>>,
    auto_approved: bool,
    steps: Vec<Progress>,
    keep_partial: bool,
    now: DateTime<Utc>,
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

fn new_request(duration_seconds: Option<i64>) -> Request {
    Request {
        requester_email: Email::parse("acc-0@x.io").ok(),
        resource: Some(ResourceId("netsuite".into())),
        duration_seconds,
        ..Request::received(
            Uuid::nil(),
            TenantKey::parse("jira:acme").expect("a tenant key"),
            TicketKey::parse("IT-1").expect("a ticket key"),
            "10001".into(),
            account(0),
            "v1".into(),
            start(),
        )
    }
}

impl World {
    fn new(stages: Vec<(Vec<usize>, usize, bool)>, duration: Option<i64>, partial: bool) -> Self {
        let plan = Plan {
            stages: stages
                .iter()
                .enumerate()
                .map(|(i, (who, required, skipped))| PlannedStage {
                    name: format!("stage {i}"),
                    approvers: who
                        .iter()
                        .map(|a| Approver {
                            email: format!("{}@x.io", account(*a)),
                            name: account(*a).to_string(),
                            account: Some(account(*a)),
                        })
                        .collect(),
                    required: *required,
                    skipped: *skipped,
                    why: String::new(),
                })
                .collect(),
            reasons: Vec::new(),
        };
        Self {
            counted: vec![Vec::new(); plan.stages.len()],
            request: new_request(duration),
            plan,
            requesters: vec![account(0)],
            auto_approved: false,
            steps: Vec::new(),
            keep_partial: partial,
            now: start(),
        }
    }

    /// Applies `event`, which the walk's caller logic says is allowed: it must be.
    fn must(&mut self, event: Event) {
        let from = self.request.state;
        if let Err(e) = apply(&mut self.request, event, self.now) {
            panic!("the engine's own move was refused in {from}: {e}");
        }
    }

    /// Applies `event` where the caller only checks the state through the table: refused
    /// ones must change nothing.
    fn try_apply(&mut self, event: Event) {
        let before = self.request.clone();
        if apply(&mut self.request, event, self.now).is_err() {
            assert_eq!(self.request, before, "a refused event changed the request");
        }
    }

    fn statuses(&self) -> Vec<(Status, Option<Status>)> {
        self.steps.iter().map(|p| (p.grant, p.revoke)).collect()
    }

    /// What `grants::run::settle` does once a step settled: moves the request on while the
    /// steps say so.
    fn settle(&mut self) {
        while let Some(settled) =
            step::settled(self.request.state, &self.statuses(), self.keep_partial)
        {
            match settled {
                Settled::Granted { partial } => self.must(Event::Granted { partial }),
                Settled::NothingApplied { .. } => self.must(Event::NothingApplied),
                Settled::RollBack { .. } => {
                    self.revoke(EndCause::Rollback);
                    continue;
                }
                Settled::Undone => self.must(Event::Undone),
                Settled::UndoFailed { .. } => self.must(Event::UndoFailed),
            }
            break;
        }
    }

    /// `grants::run::begin_revoke`: the state first, then every applied step pending undoing.
    fn revoke(&mut self, cause: EndCause) {
        // A retried revocation keeps the cause it started with.
        let cause = match self.request.state {
            State::RevokeFailed => self.request.end_cause.unwrap_or(cause),
            _ => cause,
        };
        self.must(Event::Revoke {
            cause,
            reason: "walk".into(),
        });
        step::start_revoke(&mut self.steps, self.now);
        self.settle();
    }

    fn play(&mut self, m: &Move) {
        let now = self.now;
        match *m {
            Move::Route(routing) => {
                let event = match routing {
                    Routing::Invalid => Event::Invalid {
                        reason: "unknown resource".into(),
                    },
                    Routing::Denied => Event::Denied {
                        reason: "denied".into(),
                    },
                    Routing::Auto => Event::AutoApproved,
                    Routing::ToApprovers => match self.plan.open_stage(0) {
                        Some(stage) => Event::Routed { stage },
                        None => Event::Denied {
                            reason: "no stage has anyone who may approve".into(),
                        },
                    },
                };
                let auto = matches!(event, Event::AutoApproved);
                if self.request.state == State::Received {
                    self.must(event);
                    self.auto_approved = auto && self.request.state == State::Approved;
                } else {
                    self.try_apply(event);
                }
            }
            Move::Decide { who, approve } => {
                let who = account(who);
                let stage = usize::try_from(self.request.stage).unwrap_or(usize::MAX);
                let requesters: Vec<&AccountId> = self.requesters.iter().collect();
                let decided = self.counted.get(stage).cloned().unwrap_or_default();
                let verdict = if approve {
                    Verdict::Approve
                } else {
                    Verdict::Decline
                };
                let Ok(next) = approval::decide(
                    self.request.state,
                    &self.plan,
                    stage,
                    &requesters,
                    &decided,
                    &who,
                    verdict,
                ) else {
                    return;
                };
                if let Some(counted) = self.counted.get_mut(stage) {
                    counted.push(who.clone());
                }
                self.must(match next {
                    Next::Waiting { .. } => Event::Counted,
                    Next::Stage(next) => Event::StageApproved { next },
                    Next::Approved => Event::Approved,
                    Next::Declined => Event::Declined {
                        reason: format!("declined by {who}"),
                    },
                });
            }
            Move::TimeOut => self.try_apply(Event::TimedOut {
                reason: "no decision".into(),
            }),
            Move::Cancel => self.try_apply(Event::Cancelled {
                reason: "cancelled".into(),
            }),
            Move::Plan { steps } => {
                if self.request.state != State::Approved {
                    return self.try_apply(Event::Planned { account: None });
                }
                self.steps = (0..steps)
                    .map(|i| Progress::planned(i as i64, None, now))
                    .collect();
                self.must(Event::Planned {
                    account: Some(account(0)),
                });
                self.settle();
            }
            Move::Refuse => self.try_apply(Event::Refused {
                reason: "no plan".into(),
            }),
            Move::Step { index, call } => {
                let phase = match self.request.state {
                    State::Provisioning => Phase::Grant,
                    State::Revoking => Phase::Revoke,
                    _ => Phase::Grant,
                };
                let Some(attempt) = self.steps.get(index).map(|p| p.attempts) else {
                    return;
                };
                let i = index as i64;
                let lease = now + TimeDelta::seconds(15);
                if !matches!(
                    step::claim(&mut self.steps, i, phase, attempt, now, lease),
                    Claim::Taken { .. }
                ) {
                    return;
                }
                let settle = |steps: &mut [Progress], status, change| {
                    step::settle(steps, i, phase, status, change, None, now);
                };
                match call {
                    Call::Done => settle(&mut self.steps, Status::Done, Some("applied")),
                    Call::Skipped => settle(&mut self.steps, Status::Skipped, None),
                    Call::Failed => settle(&mut self.steps, Status::Failed, None),
                    Call::Retry => step::retry(&mut self.steps, i, phase, attempt + 1, "503", now),
                    Call::Dies => return,
                }
                self.settle();
            }
            Move::Expire => {
                let due = self.request.expires_at.is_some_and(|at| at <= now);
                if self.request.state == State::Active && due {
                    self.revoke(EndCause::Expired);
                }
            }
            Move::Revoke(cause) => {
                if matches!(self.request.state, State::Active | State::RevokeFailed)
                    && cause != EndCause::Rollback
                {
                    self.revoke(cause);
                }
            }
            Move::Extend { seconds } => {
                if let (State::Active, Some(granted), Some(total), Some(current)) = (
                    self.request.state,
                    self.request.granted_at,
                    self.request.duration_seconds,
                    self.request.expires_at,
                ) {
                    let total = total + seconds;
                    let expires_at = (granted + TimeDelta::seconds(total)).max(current);
                    self.must(Event::Extended {
                        expires_at,
                        total_seconds: total,
                    });
                }
            }
            Move::Later { minutes } => self.now += TimeDelta::minutes(minutes),
            Move::Hostile(which) => {
                let mut copy = self.request.clone();
                let before = copy.clone();
                if apply(&mut copy, any_event(which), now).is_err() {
                    assert_eq!(copy, before, "a refused event changed the request");
                }
            }
        }
    }

    /// Whether each stage that is not skipped has as many approvals by its eligible approvers
    /// as it requires.
    fn decided_by_eligible_approvers(&self) -> bool {
        self.plan.stages.iter().enumerate().all(|(i, stage)| {
            if stage.skipped {
                return true;
            }
            let eligible = |a: &AccountId| {
                stage
                    .approvers
                    .iter()
                    .any(|x| x.account.as_ref() == Some(a))
                    && !self.requesters.contains(a)
            };
            let eligible_count = stage
                .approvers
                .iter()
                .filter(|a| a.account.as_ref().is_some_and(eligible))
                .count();
            let required = stage.required.min(eligible_count).max(1);
            let counted = &self.counted[i];
            counted.iter().all(eligible) && counted.len() >= required
        })
    }

    fn check(&self, history: &[Move]) {
        let r = &self.request;
        let granted = matches!(
            r.state,
            State::Approved
                | State::Provisioning
                | State::Active
                | State::Revoking
                | State::RevokeFailed
                | State::Expired
                | State::Revoked
        ) || !self.steps.is_empty();
        assert!(
            !granted || self.auto_approved || self.decided_by_eligible_approvers(),
            "{} without a decision by an eligible approver: {:?} after {history:?}",
            r.state,
            self.counted
        );
        if r.state == State::Active {
            assert!(r.granted_at.is_some(), "active without a grant time");
            assert_eq!(
                r.expires_at.is_some(),
                r.duration_seconds.is_some(),
                "an active grant must end when it is temporary and only then: {r:?}"
            );
            assert!(r.expires_at.is_none_or(|at| Some(at) > r.granted_at));
        }
        if r.state.is_final() {
            for (i, p) in self.steps.iter().enumerate() {
                assert!(
                    p.grant.is_settled() && p.revoke.is_none_or(Status::is_settled),
                    "{} with step {i} unsettled: {p:?} after {history:?}",
                    r.state
                );
                // Undone, or left because someone else holds it (or held it before): never
                // simply forgotten.
                assert!(
                    p.grant != Status::Done
                        || matches!(p.revoke, Some(Status::Done | Status::Skipped)),
                    "{} with step {i} never undone: {p:?} after {history:?}",
                    r.state
                );
            }
        }
        if matches!(r.state, State::Expired | State::Revoked) {
            assert!(r.ended_at.is_some(), "ended without an end time");
        }
    }
}

fn any_event(which: u8) -> Event {
    let now = start();
    match which % 20 {
        0 => Event::Invalid { reason: "x".into() },
        1 => Event::Denied { reason: "x".into() },
        2 => Event::AutoApproved,
        3 => Event::Routed { stage: 0 },
        4 => Event::Counted,
        5 => Event::StageApproved { next: 1 },
        6 => Event::Approved,
        7 => Event::Declined { reason: "x".into() },
        8 => Event::TimedOut { reason: "x".into() },
        9 => Event::Cancelled { reason: "x".into() },
        10 => Event::Planned { account: None },
        11 => Event::Refused { reason: "x".into() },
        12 => Event::ExtensionFailed { reason: "x".into() },
        13 => Event::ExtensionApplied { expires_at: now },
        14 => Event::Extended {
            expires_at: now,
            total_seconds: 60,
        },
        15 => Event::Granted { partial: false },
        16 => Event::NothingApplied,
        17 => Event::Revoke {
            cause: EndCause::Revoked,
            reason: "x".into(),
        },
        18 => Event::Undone,
        _ => Event::UndoFailed,
    }
}

fn a_move() -> impl Strategy<Value = Move> {
    let call = prop_oneof![
        3 => Just(Call::Done),
        1 => Just(Call::Skipped),
        2 => Just(Call::Failed),
        2 => Just(Call::Retry),
        1 => Just(Call::Dies),
    ];
    let routing = prop_oneof![
        1 => Just(Routing::Invalid),
        1 => Just(Routing::Denied),
        1 => Just(Routing::Auto),
        4 => Just(Routing::ToApprovers),
    ];
    let cause = prop_oneof![
        Just(EndCause::Revoked),
        Just(EndCause::Leaver),
        Just(EndCause::Expired),
    ];
    prop_oneof![
        2 => routing.prop_map(Move::Route),
        6 => (0..ACCOUNTS, prop::bool::weighted(0.85))
            .prop_map(|(who, approve)| Move::Decide { who, approve }),
        1 => Just(Move::TimeOut),
        1 => Just(Move::Cancel),
        2 => (0..4usize).prop_map(|steps| Move::Plan { steps }),
        1 => Just(Move::Refuse),
        8 => (0..4usize, call).prop_map(|(index, call)| Move::Step { index, call }),
        1 => Just(Move::Expire),
        1 => cause.prop_map(Move::Revoke),
        1 => (1..86_400i64).prop_map(|seconds| Move::Extend { seconds }),
        2 => (1..600i64).prop_map(|minutes| Move::Later { minutes }),
        2 => any::<u8>().prop_map(Move::Hostile),
    ]
}

fn a_stage() -> impl Strategy<Value = (Vec<usize>, usize, bool)> {
    (
        prop::collection::vec(0..ACCOUNTS, 0..4),
        1..4usize,
        prop::bool::weighted(0.2),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_walk_keeps_the_lifecycle_invariants(
        stages in prop::collection::vec(a_stage(), 1..4),
        duration in prop::option::of(60..86_400i64),
        keep_partial in any::<bool>(),
        moves in prop::collection::vec(a_move(), 1..80),
    ) {
        let mut world = World::new(stages, duration, keep_partial);
        for (i, m) in moves.iter().enumerate() {
            let was_final = world.request.state.is_final().then_some(world.request.state);
            world.play(m);
            world.check(&moves[..=i]);
            if let Some(over) = was_final {
                prop_assert_eq!(world.request.state, over, "a request left {} by {:?}", over, m);
            }
        }
    }
}

#[test]
fn walks_reach_every_state() {
    // The walk is only worth its invariants if it gets everywhere: a fixed life through each
    // end, with the same moves the random walks use.
    let life = |stages: Vec<(Vec<usize>, usize, bool)>, moves: &[Move]| {
        let mut world = World::new(stages, Some(3_600), false);
        for (i, m) in moves.iter().enumerate() {
            world.play(m);
            world.check(&moves[..=i]);
        }
        world.request.state
    };
    let one_approver = || vec![(vec![1], 1, false)];
    let approve = Move::Decide {
        who: 1,
        approve: true,
    };
    let step = |index, call| Move::Step { index, call };
    let granted = [
        Move::Route(Routing::ToApprovers),
        approve.clone(),
        Move::Plan { steps: 2 },
        step(0, Call::Done),
        step(1, Call::Done),
    ];
    assert_eq!(life(one_approver(), &granted), State::Active);
    let mut expired = granted.to_vec();
    expired.extend([
        Move::Later { minutes: 61 },
        Move::Expire,
        step(0, Call::Done),
        step(1, Call::Done),
    ]);
    assert_eq!(life(one_approver(), &expired), State::Expired);
    let mut stuck = granted.to_vec();
    stuck.extend([
        Move::Revoke(EndCause::Leaver),
        step(0, Call::Failed),
        step(1, Call::Done),
    ]);
    assert_eq!(life(one_approver(), &stuck), State::RevokeFailed);
    stuck.extend([Move::Revoke(EndCause::Revoked), step(0, Call::Done)]);
    assert_eq!(life(one_approver(), &stuck), State::Revoked);
    let rolled_back = [
        Move::Route(Routing::ToApprovers),
        approve.clone(),
        Move::Plan { steps: 2 },
        step(0, Call::Done),
        step(1, Call::Failed),
        step(0, Call::Done),
    ];
    assert_eq!(life(one_approver(), &rolled_back), State::Failed);
    // The requester is the only approver: nobody eligible can approve, so it waits.
    let own = [
        Move::Route(Routing::ToApprovers),
        Move::Decide {
            who: 0,
            approve: true,
        },
    ];
    assert_eq!(life(vec![(vec![0], 1, false)], &own), State::Pending);
    let declined = [
        Move::Route(Routing::ToApprovers),
        Move::Decide {
            who: 1,
            approve: false,
        },
    ];
    assert_eq!(life(one_approver(), &declined), State::Declined);
    assert_eq!(
        life(
            one_approver(),
            &[Move::Route(Routing::ToApprovers), Move::Cancel]
        ),
        State::Cancelled
    );
}
