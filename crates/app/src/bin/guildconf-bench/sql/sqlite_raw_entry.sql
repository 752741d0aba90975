INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at,
    actor_id, request_id, body, entry_hash, prev_hash)
VALUES (?5, ?1, ?1, 'update', ?2, 'a', NULL, ?3, ?4, ?6)
