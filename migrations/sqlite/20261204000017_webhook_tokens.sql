-- Every Connect webhook token seen, with the body it came with and when, until it expires: qsh
-- signs the path, never the body. The same token with the same body is a duplicate delivery
-- (acknowledged, nothing done twice); with another body, later than the moment it was signed
-- in, a replay (refused). Atlassian's tokens carry no unique id, so two deliveries to one path
-- signed in the same second share a token: those are taken.
CREATE TABLE webhook_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    body_hash TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;
-- One B-tree, keyed by the hash (WITHOUT ROWID), and no index on the expiry: a row per webhook is
-- written in the intake's group commit, and the minute sweep's delete can scan what is at most
-- an hour of tokens.
