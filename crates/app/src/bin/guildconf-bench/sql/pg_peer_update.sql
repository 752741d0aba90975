UPDATE peer_configs SET document = $2, version = version + 1, updated_by = $3
WHERE guild_id = $1
