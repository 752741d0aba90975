-- guildconf schema, version 2: the retention purge gate.
--
-- Deletes from audit_entries and guild_snapshots stay refused, except for a
-- guild whose purge_gate row exists. Only the purge transaction inserts that
-- row, and deletes it again before it commits, so outside a running purge the
-- table is empty and every DELETE is refused as before. UPDATE stays refused
-- always; audit_requests is untouched.
CREATE TABLE purge_gate (
    guild_id INTEGER PRIMARY KEY
) STRICT;

DROP TRIGGER audit_entries_no_delete;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
WHEN NOT EXISTS (SELECT 1 FROM purge_gate WHERE purge_gate.guild_id = OLD.guild_id)
BEGIN
    SELECT RAISE(ABORT, 'guildconf: audit_entries is append-only');
END;

DROP TRIGGER guild_snapshots_no_delete;
CREATE TRIGGER guild_snapshots_no_delete BEFORE DELETE ON guild_snapshots
WHEN NOT EXISTS (SELECT 1 FROM purge_gate WHERE purge_gate.guild_id = OLD.guild_id)
BEGIN
    SELECT RAISE(ABORT, 'guildconf: guild_snapshots is append-only');
END;
