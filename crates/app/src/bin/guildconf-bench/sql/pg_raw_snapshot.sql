INSERT INTO raw.guild_snapshots (guild_id, version, document, sha256) VALUES ($1, $2, $3, $4)
