INSERT INTO guild_snapshots (guild_id, version, document, sha256) VALUES (1, ?1, ?2, ?3)
