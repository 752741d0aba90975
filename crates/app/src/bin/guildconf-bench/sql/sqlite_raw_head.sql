INSERT INTO guild_heads (guild_id, version, seq, last_hash, updated_at, actor_id,
    actor_kind, actor_label, document) VALUES (?5, ?1, ?1, ?2, ?3, 'a', 'human', 'bench', ?4)
ON CONFLICT (guild_id) DO UPDATE SET version = excluded.version, seq = excluded.seq,
    last_hash = excluded.last_hash, updated_at = excluded.updated_at, document = excluded.document
