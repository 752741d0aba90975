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
-- A retention purge deletes old entries and snapshots (through the purge
-- gate: a plain DELETE is still refused by the append-only triggers).
GRANT DELETE ON audit_entries, guild_snapshots TO guildconf_retention;
