//! The identity lifecycle, carried out. What a person is due is decided (purely) in
//! `workflow::birthright`; here an applied org chart snapshot's joiners and movers become runs
//! ([`changes`]), and each run ([`run`]) opens the person's lifecycle ticket, grants what they
//! are newly due through the grant engine (requests of the run on that ticket), and schedules
//! the end of what they are no longer due after the grace period; what needs the manager
//! (birthright behind an approval, access a move sends to review) is asked in that ticket
//! ([`asks`]); a leaver's run offboards them from Atlassian ([`offboard`]).

pub mod asks;
pub mod changes;
pub mod inactive;
mod offboard;
pub mod run;
