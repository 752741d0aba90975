-- guildconf schema, version 1. The PostgreSQL adapter uses the same table,
-- column, index and trigger names.

-- Where each guild's config and chain stand now. `document` is the canonical
-- JSON text of the current document, NULL after a delete.
CREATE TABLE guild_heads (
    guild_id    INTEGER PRIMARY KEY,
    version     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    last_hash   TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    actor_id    TEXT    NOT NULL,
    actor_kind  TEXT    NOT NULL,
    actor_label TEXT    NOT NULL,
    document    TEXT    NULL
) STRICT;

-- Every version's full document, canonical JSON text.
CREATE TABLE guild_snapshots (
    guild_id INTEGER NOT NULL,
    version  INTEGER NOT NULL,
    document TEXT    NOT NULL,
    sha256   TEXT    NOT NULL,
    PRIMARY KEY (guild_id, version)
) STRICT;

-- The hash-chained audit trail. `body` is exactly the canonical text that was
-- hashed; the other columns repeat fields of the body for querying.
CREATE TABLE audit_entries (
    guild_id       INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    config_version INTEGER NOT NULL,
    operation      TEXT    NOT NULL,
    occurred_at    TEXT    NOT NULL,
    actor_id       TEXT    NOT NULL,
    request_id     TEXT    NULL,
    body           TEXT    NOT NULL,
    entry_hash     TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    PRIMARY KEY (guild_id, seq)
) STRICT;

CREATE INDEX audit_entries_guild_time ON audit_entries (guild_id, occurred_at);
CREATE INDEX audit_entries_actor_time ON audit_entries (actor_id, occurred_at, guild_id, seq);
CREATE UNIQUE INDEX audit_entries_guild_request ON audit_entries (guild_id, request_id)
    WHERE request_id IS NOT NULL;

-- The first result of each idempotent request, so a retry gets it again.
CREATE TABLE audit_requests (
    guild_id    INTEGER NOT NULL,
    request_id  TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    result      TEXT    NOT NULL,
    PRIMARY KEY (guild_id, request_id)
) STRICT;

-- Append-only: the database itself refuses to rewrite history.
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'guildconf: audit_entries is append-only');
END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'guildconf: audit_entries is append-only');
END;
CREATE TRIGGER guild_snapshots_no_update BEFORE UPDATE ON guild_snapshots
BEGIN
    SELECT RAISE(ABORT, 'guildconf: guild_snapshots is append-only');
END;
CREATE TRIGGER guild_snapshots_no_delete BEFORE DELETE ON guild_snapshots
BEGIN
    SELECT RAISE(ABORT, 'guildconf: guild_snapshots is append-only');
END;
CREATE TRIGGER audit_requests_no_update BEFORE UPDATE ON audit_requests
BEGIN
    SELECT RAISE(ABORT, 'guildconf: audit_requests is append-only');
END;
CREATE TRIGGER audit_requests_no_delete BEFORE DELETE ON audit_requests
BEGIN
    SELECT RAISE(ABORT, 'guildconf: audit_requests is append-only');
END;
