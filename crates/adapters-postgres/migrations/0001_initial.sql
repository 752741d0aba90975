-- guildconf PostgreSQL schema, version 1.
-- Names are unqualified on purpose: the migration runs inside whatever schema
-- the connection's search_path names first.
-- Times are fixed-width UTC text (2026-11-22T04:45:44.123456Z) compared in
-- byte order, hence COLLATE "C" whatever the database collation.

CREATE TABLE guild_heads (
    guild_id    BIGINT PRIMARY KEY,
    version     BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    last_hash   TEXT NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL,
    actor_id    TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_label TEXT NOT NULL,
    document    JSONB NULL -- NULL = deleted
);

CREATE TABLE guild_snapshots (
    guild_id BIGINT NOT NULL,
    version  BIGINT NOT NULL,
    document JSONB NOT NULL,
    sha256   TEXT NOT NULL,
    PRIMARY KEY (guild_id, version)
);

CREATE TABLE audit_entries (
    guild_id       BIGINT NOT NULL,
    seq            BIGINT NOT NULL,
    config_version BIGINT NOT NULL,
    operation      TEXT NOT NULL,
    occurred_at    TEXT COLLATE "C" NOT NULL,
    actor_id       TEXT NOT NULL,
    request_id     TEXT NULL,
    body           TEXT NOT NULL, -- exactly the canonical (hashed) body bytes
    entry_hash     TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    PRIMARY KEY (guild_id, seq)
);

CREATE INDEX audit_entries_guild_time ON audit_entries (guild_id, occurred_at);
CREATE INDEX audit_entries_actor_time
    ON audit_entries (actor_id, occurred_at DESC, guild_id DESC, seq DESC);
CREATE UNIQUE INDEX audit_entries_guild_request
    ON audit_entries (guild_id, request_id) WHERE request_id IS NOT NULL;

CREATE TABLE audit_requests (
    guild_id    BIGINT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result      TEXT NOT NULL,
    PRIMARY KEY (guild_id, request_id)
);

-- Append-only: the audit trail, the snapshots and the request records refuse
-- UPDATE, DELETE and TRUNCATE. ENABLE ALWAYS keeps the triggers firing under
-- session_replication_role = replica.
CREATE FUNCTION guildconf_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'guildconf: % is append-only', TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER audit_entries_append_only
    BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION guildconf_append_only();
CREATE TRIGGER audit_entries_no_truncate
    BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION guildconf_append_only();
ALTER TABLE audit_entries ENABLE ALWAYS TRIGGER audit_entries_append_only;
ALTER TABLE audit_entries ENABLE ALWAYS TRIGGER audit_entries_no_truncate;

CREATE TRIGGER guild_snapshots_append_only
    BEFORE UPDATE OR DELETE ON guild_snapshots
    FOR EACH ROW EXECUTE FUNCTION guildconf_append_only();
CREATE TRIGGER guild_snapshots_no_truncate
    BEFORE TRUNCATE ON guild_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION guildconf_append_only();
ALTER TABLE guild_snapshots ENABLE ALWAYS TRIGGER guild_snapshots_append_only;
ALTER TABLE guild_snapshots ENABLE ALWAYS TRIGGER guild_snapshots_no_truncate;

CREATE TRIGGER audit_requests_append_only
    BEFORE UPDATE OR DELETE ON audit_requests
    FOR EACH ROW EXECUTE FUNCTION guildconf_append_only();
CREATE TRIGGER audit_requests_no_truncate
    BEFORE TRUNCATE ON audit_requests
    FOR EACH STATEMENT EXECUTE FUNCTION guildconf_append_only();
ALTER TABLE audit_requests ENABLE ALWAYS TRIGGER audit_requests_append_only;
ALTER TABLE audit_requests ENABLE ALWAYS TRIGGER audit_requests_no_truncate;
