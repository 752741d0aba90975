-- guildconf PostgreSQL schema, version 3: a change feed that read caches poll.
--
-- Every write that moves a head also sets its change_id from one sequence
-- (the INSERT takes the column default, the UPDATE sets it to DEFAULT). A
-- cache in another process asks for the heads whose change_id is above the
-- last one it saw, every 50 ms, instead of being sent a NOTIFY per write:
-- PostgreSQL serialises committing transactions that NOTIFY, and delivering
-- one notification per write cost a quarter of the write throughput at four
-- writers. The index keeps each poll an index range scan.
CREATE SEQUENCE guild_change_id;
ALTER TABLE guild_heads
    ADD COLUMN change_id BIGINT NOT NULL DEFAULT nextval('guild_change_id');
CREATE INDEX guild_heads_change_id ON guild_heads (change_id);
