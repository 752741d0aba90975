INSERT INTO raw.audit_entries (guild_id, seq, config_version, operation, occurred_at,
    actor_id, request_id, body, entry_hash, prev_hash)
VALUES ($1, $2, $2, 'update', $3, 'a', NULL, $4, $5, $5)
