-- Secret keys rotate: a checkpoint names the key that signed it (NULL: signed before keys had
-- ids, under the one key of the time).
ALTER TABLE audit_checkpoints ADD COLUMN key_id TEXT;
