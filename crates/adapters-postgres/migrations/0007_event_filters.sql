-- guildconf PostgreSQL schema: history filters and stats on events.
--
-- No column is added: every filter is an expression over a column verify
-- already proves (operation) or over the hashed body itself, so a query can
-- return nothing that verify does not prove. These indexes serve those
-- expressions; store.rs spells them exactly so.
CREATE INDEX audit_entries_guild_family ON audit_entries (
    guild_id,
    (CASE WHEN strpos(operation, '.') > 0 THEN split_part(operation, '.', 1) ELSE 'config' END),
    seq);
CREATE INDEX audit_entries_guild_outcome ON audit_entries (
    guild_id,
    (CASE WHEN strpos(operation, '.') > 0
          THEN (body::jsonb) #>> '{detail,outcome}' ELSE 'success' END),
    seq);
CREATE INDEX audit_entries_guild_target ON audit_entries (
    guild_id,
    ((body::jsonb) #>> '{detail,target,type}'),
    ((body::jsonb) #>> '{detail,target,id}'),
    seq);
