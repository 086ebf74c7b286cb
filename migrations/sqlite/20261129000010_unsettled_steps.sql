-- The reconcile sweep looks for steps left pending or running (a lost job, a dead worker's
-- lease) every few minutes: with a million active grants a scan of every step row each time
-- would cost seconds. These indexes hold only the unsettled steps, so they stay tiny.
CREATE INDEX grant_steps_grant_unsettled ON grant_steps (updated_at)
    WHERE grant_status IN ('pending', 'running');
CREATE INDEX grant_steps_revoke_unsettled ON grant_steps (updated_at)
    WHERE revoke_status IN ('pending', 'running');
