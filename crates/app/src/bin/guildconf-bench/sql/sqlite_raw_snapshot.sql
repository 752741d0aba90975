INSERT INTO guild_snapshots (guild_id, version, document, sha256) VALUES (?4, ?1, ?2, ?3)
