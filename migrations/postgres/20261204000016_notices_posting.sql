-- A notice's comment is marked `posting` before the call and `sent` after it. A re-run that
-- finds `posting` (its worker died in between) looks for the comment in the ticket, by the
-- notice key it carries as a comment property, before posting it again.
ALTER TABLE notices_sent ADD COLUMN state TEXT NOT NULL DEFAULT 'sent';
