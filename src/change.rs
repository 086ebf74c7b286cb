//! What an idempotent change did, wherever it was made (Atlassian, an IdP).

/// A re-run after a crash finds its effect in place and records a no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Applied,
    AlreadyInPlace,
}
