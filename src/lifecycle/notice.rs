//! What a ticket is told about its request: a template and its context, the approvers to add
//! as participants, and the transition to move it by. Stored in the notice's job, so written by
//! one release and read by the next: add fields with defaults, never rename.

use crate::ids::AccountId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub template: String,
    pub context: Value,
    /// Accounts to add as request participants (the open stage's approvers).
    pub participants: Vec<AccountId>,
    /// A JSM transition (or target status) to move the ticket by, if the workflow has it.
    pub transition: Option<String>,
}
