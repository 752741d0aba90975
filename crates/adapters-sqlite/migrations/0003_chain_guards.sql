-- guildconf schema, version 3: the database refuses what no guildconf write
-- does, also for a role that may write these tables.
--
-- An entry must extend its guild's last entry: the next seq after the
-- highest stored one, naming that entry's hash. (A guild with no entries
-- yet takes any first entry: seq 1 after the genesis hash, or, for an import
-- of a chain whose start was purged, the first entry kept.)
--
-- A head may only move forward, never to another guild, and only onto an
-- entry that is stored with exactly its seq and hash. guildconf inserts the
-- entry before it moves the head, in the same transaction.
CREATE TRIGGER audit_entries_extend_chain BEFORE INSERT ON audit_entries
WHEN EXISTS (SELECT 1 FROM audit_entries e WHERE e.guild_id = NEW.guild_id)
 AND NOT EXISTS (
     SELECT 1 FROM audit_entries e
     WHERE e.guild_id = NEW.guild_id AND e.seq = NEW.seq - 1 AND e.entry_hash = NEW.prev_hash
       AND e.seq = (SELECT max(m.seq) FROM audit_entries m WHERE m.guild_id = NEW.guild_id))
BEGIN
    SELECT RAISE(ABORT, 'guildconf: an entry must extend its guild''s last entry');
END;

CREATE TRIGGER guild_heads_onto_entry BEFORE INSERT ON guild_heads
WHEN NOT EXISTS (
    SELECT 1 FROM audit_entries e
    WHERE e.guild_id = NEW.guild_id AND e.seq = NEW.seq AND e.entry_hash = NEW.last_hash)
BEGIN
    SELECT RAISE(ABORT, 'guildconf: a head must point at a stored entry');
END;

CREATE TRIGGER guild_heads_forward BEFORE UPDATE ON guild_heads
WHEN NEW.guild_id <> OLD.guild_id OR NEW.seq < OLD.seq
  OR NOT EXISTS (
    SELECT 1 FROM audit_entries e
    WHERE e.guild_id = NEW.guild_id AND e.seq = NEW.seq AND e.entry_hash = NEW.last_hash)
BEGIN
    SELECT RAISE(ABORT, 'guildconf: a head may only move forward onto a stored entry');
END;
