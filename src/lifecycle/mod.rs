//! The life of a request and of its grant's steps, in one place and without I/O.
//!
//! [`request`] holds the request's states and the transition table that is the only way to
//! change one; [`approval`] decides which approvals count; [`step`] moves a grant's steps
//! (claimed, settled, retried, revoked) and says when the request moves on; [`action`] names
//! each change as the audit log records it. The engine and the grants load a request, apply an
//! event here, and store the result with its audit event in one transaction.
//!
//! This module depends on nothing but [`crate::ids`]: the store, the engine and the grants all
//! use it, so it sits below them.

pub mod action;
pub mod approval;
pub mod notice;
pub mod plan;
pub mod request;
pub mod step;

#[cfg(test)]
mod walk;

pub use action::Action;
pub use approval::{Approver, Next, Plan, PlannedStage, Refusal, Verdict};
pub use request::{
    Conflict, EndCause, Event, INACTIVE_REVIEW, Request, Reviewed, State, Transition, apply,
};
