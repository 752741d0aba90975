-- guildconf schema, version 6: API tokens (issue 15). The PostgreSQL
-- adapter's migration 0008 makes the same table.
--
-- A token is a bearer secret for the HTTP API. Only the SHA-256 of the
-- secret is stored (`secret_sha256`, lowercase hex, unique): a request is
-- matched by hashing the secret it presents and looking that hash up, so a
-- secret is never compared as text and the database holds nothing that
-- authenticates. A token belongs to no one guild (it may reach several, or
-- all), so its key is its public id rather than a guild id. `guilds` is a
-- JSON array of guild ids as decimal strings, ascending; empty means every
-- guild. Creating and revoking a token also append an event to the chain of
-- every guild it names, in the same transaction.
CREATE TABLE api_tokens (
    id            TEXT NOT NULL PRIMARY KEY
                  CHECK (length(id) = 16 AND id NOT GLOB '*[^0-9a-f]*'),
    secret_sha256 TEXT NOT NULL UNIQUE
                  CHECK (length(secret_sha256) = 64 AND secret_sha256 NOT GLOB '*[^0-9a-f]*'),
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'auditor')),
    guilds        TEXT NOT NULL CHECK (json_valid(guilds) AND json_type(guilds) = 'array'),
    label         TEXT NOT NULL,
    human_id      TEXT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT NULL
) STRICT;

-- Revocation is the one change a token takes, and it is final: no other
-- column changes, a revoked token is never revived, no row is deleted.
CREATE TRIGGER api_tokens_revoke_only BEFORE UPDATE ON api_tokens
WHEN OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
  OR NEW.id IS NOT OLD.id OR NEW.secret_sha256 IS NOT OLD.secret_sha256
  OR NEW.role IS NOT OLD.role OR NEW.guilds IS NOT OLD.guilds
  OR NEW.label IS NOT OLD.label OR NEW.human_id IS NOT OLD.human_id
  OR NEW.created_at IS NOT OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'guildconf: a token may only be revoked, once');
END;
CREATE TRIGGER api_tokens_no_delete BEFORE DELETE ON api_tokens
BEGIN
    SELECT RAISE(ABORT, 'guildconf: api_tokens keeps every token');
END;
