-- guildconf schema: history filters and stats on events.
--
-- No column is added: every filter is an expression over a column verify
-- already proves (operation) or over the hashed body itself, so a query can
-- return nothing that verify does not prove. These indexes serve those
-- expressions; queries spell them exactly so (see queries.rs).
CREATE INDEX audit_entries_guild_family ON audit_entries (
    guild_id,
    (CASE WHEN instr(operation, '.') > 0
          THEN substr(operation, 1, instr(operation, '.') - 1) ELSE 'config' END),
    seq);
CREATE INDEX audit_entries_guild_outcome ON audit_entries (
    guild_id,
    (CASE WHEN instr(operation, '.') > 0
          THEN json_extract(body, '$.detail.outcome') ELSE 'success' END),
    seq);
CREATE INDEX audit_entries_guild_target ON audit_entries (
    guild_id,
    (json_extract(body, '$.detail.target.type')),
    (json_extract(body, '$.detail.target.id')),
    seq);
