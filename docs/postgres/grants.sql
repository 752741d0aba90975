-- What guildconf_app and guildconf_retention may do in guildconf's tables.
-- Run as guildconf_owner, in the database, after every `guildconf migrate`
-- (granting twice is harmless): psql -v ON_ERROR_STOP=1 -f grants.sql
GRANT USAGE ON SCHEMA public TO guildconf_app;
-- `--no-migrate` checks that the schema is the one the binary knows.
GRANT SELECT ON _sqlx_migrations TO guildconf_app;
-- The head is the one row a write changes; every write moves it and takes
-- the next change-feed id.
GRANT SELECT, INSERT, UPDATE ON guild_heads TO guildconf_app;
GRANT USAGE ON SEQUENCE guild_change_id TO guildconf_app;
-- Entries, snapshots and request records are only ever appended.
GRANT SELECT, INSERT ON audit_entries, guild_snapshots, audit_requests TO guildconf_app;
-- API tokens are created, listed and looked up by their secret's hash.
-- Revocation is the one change a token takes, so `revoked_at` is the only
-- column that may be updated (the table's trigger also refuses to clear it
-- or to revoke twice); no token is ever deleted.
GRANT SELECT, INSERT ON api_tokens TO guildconf_app;
GRANT UPDATE (revoked_at) ON api_tokens TO guildconf_app;
-- A retention purge deletes old entries and snapshots (through the purge
-- gate: a plain DELETE is still refused by the append-only triggers).
GRANT DELETE ON audit_entries, guild_snapshots TO guildconf_retention;
