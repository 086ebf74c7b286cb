-- A grant's steps move into their request's row, and what a step is moves into `step_plans`,
-- stored once however many grants share it. With a row per step, a million scheduled grants
-- took 1.4 GB: every step row and its key repeated the request id, the person and the target,
-- and every plan was written out again. Now a grant costs its request row plus a short JSON
-- array of `{"plan": id, "person": …, "grant": status, …}` (see `store::grants::Progress`).
CREATE TABLE step_plans (
    id INTEGER PRIMARY KEY,
    -- The step as planned (JSON) without the person: its target, system and credential.
    plan TEXT NOT NULL UNIQUE,
    -- What the step changes, as `kind:name`, to find another grant of the same thing.
    target_key TEXT NOT NULL
);
CREATE INDEX step_plans_target ON step_plans (target_key);

ALTER TABLE requests ADD COLUMN steps TEXT;
-- The earliest moment one of the steps was left pending or running (NULL when all settled):
-- the reconcile sweep's way to a lost job without reading every grant.
ALTER TABLE requests ADD COLUMN steps_due TEXT;
CREATE INDEX requests_steps_due ON requests (steps_due) WHERE steps_due IS NOT NULL;
-- Does another live grant for this person hold the same target?
CREATE INDEX requests_subject ON requests (COALESCE(subject_email, requester_email))
    WHERE state IN ('active', 'provisioning');

INSERT INTO step_plans (plan, target_key)
SELECT DISTINCT json_remove(plan, '$.idp_person'), target_key FROM grant_steps WHERE true
ON CONFLICT (plan) DO NOTHING;

UPDATE requests SET steps = (
    SELECT json_group_array(json(entry)) FROM (
        SELECT json_object(
            'plan', p.id,
            'person', json_extract(s.plan, '$.idp_person'),
            'grant', s.grant_status,
            'revoke', s.revoke_status,
            'attempts', s.attempts,
            'lease', s.leased_until,
            'granted', s.granted_change,
            'revoked', s.revoked_change,
            'error', s.error,
            'drift', s.drift_at,
            'since', CASE WHEN s.grant_status IN ('pending', 'running')
                OR s.revoke_status IN ('pending', 'running') THEN s.updated_at END
        ) AS entry
        FROM grant_steps s JOIN step_plans p ON p.plan = json_remove(s.plan, '$.idp_person')
        WHERE s.request_id = requests.id ORDER BY s.step
    )
), steps_due = (
    SELECT MIN(s.updated_at) FROM grant_steps s WHERE s.request_id = requests.id
    AND (s.grant_status IN ('pending', 'running') OR s.revoke_status IN ('pending', 'running'))
)
WHERE id IN (SELECT request_id FROM grant_steps);

DROP TABLE grant_steps;
