-- guildconf PostgreSQL schema, version 8: API tokens (issue 15). The SQLite
-- adapter's migration 0006 makes the same table.
--
-- A token is a bearer secret for the HTTP API. Only the SHA-256 of the
-- secret is stored (`secret_sha256`, lowercase hex, unique): a request is
-- matched by hashing the secret it presents and looking that hash up, so a
-- secret is never compared as text and the database holds nothing that
-- authenticates. A token belongs to no one guild (it may reach several, or
-- all), so its key is its public id rather than a guild id. `guilds` is a
-- JSON array of guild ids as decimal strings, ascending, stored as text like
-- every other JSON column; empty means every guild. Creating and revoking a
-- token also append an event to the chain of every guild it names, in the
-- same transaction.
CREATE TABLE api_tokens (
    id            TEXT NOT NULL PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    secret_sha256 TEXT NOT NULL UNIQUE CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'auditor')),
    guilds        TEXT NOT NULL CHECK (jsonb_typeof(guilds::jsonb) = 'array'),
    label         TEXT NOT NULL,
    human_id      TEXT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT NULL
);

-- Revocation is the one change a token takes, and it is final: no other
-- column changes, a revoked token is never revived, no row is deleted. The
-- application role's column grant (docs/postgres/grants.sql) already limits
-- it to `revoked_at`; the trigger also holds for the owner. ENABLE ALWAYS
-- keeps it firing under session_replication_role = replica.
CREATE FUNCTION guildconf_token_revoke_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'guildconf: api_tokens keeps every token';
    END IF;
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
       OR (NEW.id, NEW.secret_sha256, NEW.role, NEW.guilds, NEW.label, NEW.human_id,
           NEW.created_at)
          IS DISTINCT FROM
          (OLD.id, OLD.secret_sha256, OLD.role, OLD.guilds, OLD.label, OLD.human_id,
           OLD.created_at) THEN
        RAISE EXCEPTION 'guildconf: a token may only be revoked, once';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER api_tokens_revoke_only
    BEFORE UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION guildconf_token_revoke_only();
CREATE TRIGGER api_tokens_no_truncate
    BEFORE TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION guildconf_token_revoke_only();
ALTER TABLE api_tokens ENABLE ALWAYS TRIGGER api_tokens_revoke_only;
ALTER TABLE api_tokens ENABLE ALWAYS TRIGGER api_tokens_no_truncate;
