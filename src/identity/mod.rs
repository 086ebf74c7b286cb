//! The identity lifecycle, carried out. What a person is due is decided (purely) in
//! `workflow::birthright`; here an applied org chart snapshot's joiners become runs
//! ([`joiners`]), and each run ([`run`]) opens the person's lifecycle ticket and grants their
//! birthright through the grant engine, as requests of the run on that ticket.

pub mod joiners;
pub mod run;
