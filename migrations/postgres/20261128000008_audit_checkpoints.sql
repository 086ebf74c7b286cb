-- Checkpoints of the audit chains: a chain head's hash at a position, with an HMAC keyed from
-- TOLLGATE_SECRET_KEY (which is not in the database). Someone who can write the database can
-- re-hash a chain or delete its newest events, but cannot forge a checkpoint, so `audit verify`
-- sees both. Rows are only ever inserted; an archive keeps the checkpoints of what it removed.
CREATE TABLE audit_checkpoints (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    mac TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);

-- Reports page through requests in the order they were filed.
CREATE INDEX requests_created ON requests (created_at, id);
