-- guildconf PostgreSQL schema, version 5: documents are stored as the exact
-- RFC 8785 text that was hashed, as SQLite always stored them.
--
-- This file only adds the text columns. Filling them needs an RFC 8785
-- canonicaliser, which SQL does not have, so the adapter finishes the
-- upgrade in Rust right after this migration, in one transaction of its own
-- (crates/adapters-postgres/src/upgrade.rs): it writes each existing jsonb
-- document's canonical text into `canonical`, drops the jsonb `document`,
-- renames `canonical` to `document`, and adds `document_jsonb`, a jsonb
-- column the server generates from that text for SQL users. Until it has
-- run, the adapter refuses the database ("run guildconf migrate").
ALTER TABLE guild_snapshots ADD COLUMN canonical TEXT NULL;
ALTER TABLE guild_heads ADD COLUMN canonical TEXT NULL;
