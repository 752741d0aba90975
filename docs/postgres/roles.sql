-- guildconf's PostgreSQL roles. Run once per server, as a superuser (or a
-- role with CREATEROLE), for example: psql -v ON_ERROR_STOP=1 -f roles.sql
-- Give each LOGIN role a password (\password in psql) or another way in.
--
-- guildconf_owner owns the schema and runs `guildconf migrate`.
-- guildconf_app is what the bot and the everyday CLI run as: it reads and
-- appends, moves heads, and can change no schema.
-- guildconf_retention runs `guildconf purge`: the application's rights and
-- DELETE on the two tables a retention purge removes rows from.
CREATE ROLE guildconf_owner LOGIN;
CREATE ROLE guildconf_app LOGIN;
CREATE ROLE guildconf_retention LOGIN;
GRANT guildconf_app TO guildconf_retention;
