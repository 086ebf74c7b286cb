-- A ticket's notices are posted in the order they were queued: each is recorded as `queued`
-- with its place among the ticket's notices (`seq`) in the transaction that queues it, and
-- one waits while an earlier one queued less than `events.ticket_block` ago is unposted.
ALTER TABLE notices_sent ADD COLUMN seq BIGINT;
ALTER TABLE notices_sent ADD COLUMN queued_at TEXT;
CREATE INDEX notices_sent_ticket ON notices_sent (tenant, ticket_key, seq);
