INSERT INTO peer_configs (guild_id, document, version, updated_by) VALUES ($1, $2, 1, 'x')
