-- The PostgreSQL baselines' tables, made in a scratch database after
-- guildconf's own migrations have run there.
--
-- The trigger peer: one JSONB document per guild, and an AFTER UPDATE
-- trigger that writes a before/after row and a top-level diff to an audit
-- table, in the write's own transaction.
CREATE TABLE peer_configs (guild_id BIGINT PRIMARY KEY, document JSONB NOT NULL,
    version BIGINT NOT NULL, updated_by TEXT NOT NULL);
CREATE TABLE peer_audit (id BIGSERIAL PRIMARY KEY, guild_id BIGINT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now(), actor TEXT NOT NULL,
    before JSONB, after JSONB, diff JSONB NOT NULL);
CREATE INDEX peer_audit_guild ON peer_audit (guild_id, id);
CREATE FUNCTION peer_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE d JSONB;
BEGIN
    SELECT COALESCE(jsonb_object_agg(k, jsonb_build_object('before', OLD.document -> k,
                                                           'after', NEW.document -> k)), '{}')
      INTO d
      FROM jsonb_object_keys(OLD.document || NEW.document) AS k
     WHERE OLD.document -> k IS DISTINCT FROM NEW.document -> k;
    INSERT INTO peer_audit (guild_id, actor, before, after, diff)
    VALUES (NEW.guild_id, NEW.updated_by, OLD.document, NEW.document, d);
    RETURN NEW;
END $$;
CREATE TRIGGER peer_audit_trg AFTER UPDATE ON peer_configs
    FOR EACH ROW EXECUTE FUNCTION peer_audit_fn();
-- The raw-SQL baseline writes copies of guildconf's own tables, made by its
-- migrations in the same database.
CREATE SCHEMA raw;
CREATE TABLE raw.guild_heads (LIKE public.guild_heads INCLUDING ALL);
CREATE TABLE raw.guild_snapshots (LIKE public.guild_snapshots INCLUDING ALL);
CREATE TABLE raw.audit_entries (LIKE public.audit_entries INCLUDING ALL);
