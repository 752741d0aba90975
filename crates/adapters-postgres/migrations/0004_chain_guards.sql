-- guildconf PostgreSQL schema, version 4: the database refuses what no
-- guildconf write does, also for the application's role.
--
-- An entry must extend its guild's last entry: the next seq after the
-- highest stored one, naming that entry's hash (a guild with no entries yet
-- takes any first entry: seq 1, or the first entry kept of an imported chain
-- whose start was purged). A head may only move forward, never to another
-- guild, and only onto an entry stored with exactly its seq and hash; that
-- last check is deferred to commit, because guildconf moves the head and
-- inserts the entry in one statement. The errors carry SQLSTATE GC001, which
-- the adapter reads as corrupt data ("run guildconf verify").
CREATE FUNCTION guildconf_extend_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_seq BIGINT;
    last_hash TEXT;
BEGIN
    SELECT e.seq, e.entry_hash INTO last_seq, last_hash FROM audit_entries e
    WHERE e.guild_id = NEW.guild_id ORDER BY e.seq DESC LIMIT 1;
    IF FOUND AND (NEW.seq <> last_seq + 1 OR NEW.prev_hash <> last_hash) THEN
        RAISE EXCEPTION 'guildconf: an entry must extend its guild''s last entry'
            USING ERRCODE = 'GC001';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_entries_extend_chain BEFORE INSERT ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION guildconf_extend_chain();
ALTER TABLE audit_entries ENABLE ALWAYS TRIGGER audit_entries_extend_chain;

CREATE FUNCTION guildconf_head_forward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.guild_id <> OLD.guild_id OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'guildconf: a head may only move forward onto a stored entry'
            USING ERRCODE = 'GC001';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER guild_heads_forward BEFORE UPDATE ON guild_heads
    FOR EACH ROW EXECUTE FUNCTION guildconf_head_forward();
ALTER TABLE guild_heads ENABLE ALWAYS TRIGGER guild_heads_forward;

CREATE FUNCTION guildconf_head_onto_entry() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_entries e
                   WHERE e.guild_id = NEW.guild_id AND e.seq = NEW.seq
                     AND e.entry_hash = NEW.last_hash) THEN
        RAISE EXCEPTION 'guildconf: a head must point at a stored entry'
            USING ERRCODE = 'GC001';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER guild_heads_onto_entry AFTER INSERT OR UPDATE ON guild_heads
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION guildconf_head_onto_entry();
ALTER TABLE guild_heads ENABLE ALWAYS TRIGGER guild_heads_onto_entry;
