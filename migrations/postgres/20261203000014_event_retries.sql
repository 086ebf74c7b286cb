-- An acknowledged event is Tollgate's to keep: when processing it fails, it is retried with
-- backoff (times on the queue's wall clock) for `events.retry_for`, then recorded as dead with
-- its reason. The sweep queues again any event that is neither processed, due for a retry
-- nor dead (its job was lost).
ALTER TABLE inbound_events ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE inbound_events ADD COLUMN first_failed_at TIMESTAMPTZ;
ALTER TABLE inbound_events ADD COLUMN next_attempt_at TIMESTAMPTZ;
ALTER TABLE inbound_events ADD COLUMN last_error TEXT;
ALTER TABLE inbound_events ADD COLUMN dead_at TIMESTAMPTZ;
CREATE INDEX inbound_events_unsettled ON inbound_events (received_at)
    WHERE processed_at IS NULL AND dead_at IS NULL;

-- Events of one ticket are processed one at a time, in the order Jira produced them: the
-- ticket and Jira's own timestamp (ms) are read from the payload when it is stored, and a
-- short lease per ticket says who is processing its events.
ALTER TABLE inbound_events ADD COLUMN ticket_key TEXT;
ALTER TABLE inbound_events ADD COLUMN event_at BIGINT;
CREATE INDEX inbound_events_ticket ON inbound_events (tenant, ticket_key)
    WHERE processed_at IS NULL AND dead_at IS NULL;
CREATE TABLE ticket_leases (
    tenant TEXT NOT NULL,
    ticket_key TEXT NOT NULL,
    holder TEXT NOT NULL,
    until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, ticket_key)
);
