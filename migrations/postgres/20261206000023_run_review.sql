-- A mover's run that sends the access they asked for (resources with `review_on_move`) to their
-- manager: decided when the snapshot is applied (a new manager or department), acted on by the run.
ALTER TABLE lifecycle_runs ADD COLUMN review BOOLEAN NOT NULL DEFAULT FALSE;
