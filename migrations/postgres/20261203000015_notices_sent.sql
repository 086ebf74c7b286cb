-- A ticket notice's comment is posted once per key: a notice job re-run (its worker died after
-- posting, before the job was marked done) finds its key here and posts nothing again.
CREATE TABLE notices_sent (
    key TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    ticket_key TEXT NOT NULL,
    sent_at TIMESTAMPTZ NOT NULL
);
