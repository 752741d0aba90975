-- A database for guildconf, owned by guildconf_owner. Run as a superuser,
-- once per database: psql -v ON_ERROR_STOP=1 -f database.sql
CREATE DATABASE guildconf OWNER guildconf_owner;
-- No other role connects, and nobody gets temporary tables.
REVOKE ALL ON DATABASE guildconf FROM PUBLIC;
GRANT CONNECT ON DATABASE guildconf TO guildconf_app, guildconf_retention;
\connect guildconf
-- Only the owner creates objects in the schema guildconf's tables live in.
ALTER SCHEMA public OWNER TO guildconf_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
