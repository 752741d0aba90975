-- guildconf PostgreSQL schema, version 2: the retention purge gate.
--
-- The append-only trigger function now lets one thing through: a DELETE on
-- audit_entries or guild_snapshots inside a transaction that ran
-- `SET LOCAL guildconf.purge = 'on'` (or set_config(..., true)), which only
-- the purge transaction does. The setting is transaction-local, so it is gone
-- at commit or rollback. UPDATE and TRUNCATE stay refused always, and
-- audit_requests refuses DELETE as before. The triggers keep ENABLE ALWAYS.
CREATE OR REPLACE FUNCTION guildconf_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND TG_TABLE_NAME IN ('audit_entries', 'guild_snapshots')
       AND current_setting('guildconf.purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'guildconf: % is append-only', TG_TABLE_NAME;
END;
$$;
