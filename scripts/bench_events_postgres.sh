#!/usr/bin/env bash
# Stats and a filtered first history page at 1,000,000 entries on
# PostgreSQL (docs/BENCHMARKS.md, "Events: stats and filters"): the sibling
# of scripts/bench_events_sqlite.sh, with the same synthetic rows. Makes a
# throwaway database, applies the schema with `guildconf migrate`, fills it
# with plain SQL (the chain guard is dropped first: the rows are not a real
# chain, only the query shapes matter), runs ANALYZE, and times the exact
# SQL the PostgreSQL adapter runs, in psql, twice each (the second run with
# the table in the buffer cache). Drops the database at the end.
# Usage: scripts/bench_events_postgres.sh [ADMIN_URL]
# (needs psql and a built guildconf; ADMIN_URL defaults to the local
# server's postgres database, as the tests use).
set -euo pipefail
admin=${1:-${GUILDCONF_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
bin=${GUILDCONF_BIN:-target/debug/guildconf}
name=guildconf_events_bench
url="${admin%/*}/$name"
psql -X -q -v ON_ERROR_STOP=1 -d "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" \
  -c "CREATE DATABASE $name"
trap 'psql -X -q -d "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)"' EXIT
"$bin" --database-url "$url" migrate
echo "-- loading 1,000,000 rows"
time psql -X -q -v ON_ERROR_STOP=1 -d "$url" <<'SQL'
DROP TRIGGER audit_entries_extend_chain ON audit_entries;
INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at, actor_id,
                           request_id, body, entry_hash, prev_hash)
SELECT 1000 + i % 10, i / 10 + 1, 1,
  CASE i % 4 WHEN 0 THEN 'update' WHEN 1 THEN 'member.role_added'
             WHEN 2 THEN 'permission.denied' ELSE 'ratelimit.exceeded' END,
  to_char(to_timestamp(1767225600 + i * 3) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
    || '.000000Z',
  (80351110224678912 + i % 7)::text, NULL,
  CASE i % 4 WHEN 0 THEN jsonb_build_object('operation', 'update', 'detail', '{}'::jsonb,
      'changes', jsonb_build_array(jsonb_build_object('op', 'replace',
        'path', '/onboarding/welcome_message', 'before', 'a', 'after', 'b')),
      'summary', 'x updated onboarding.welcome_message a → b')
    ELSE jsonb_build_object('operation', 'e', 'changes', '[]'::jsonb,
      'summary', 'x recorded an event',
      'detail', jsonb_build_object('outcome', CASE i % 3 WHEN 0 THEN 'success'
                                                         WHEN 1 THEN 'blocked' ELSE 'info' END,
        'target', jsonb_build_object('type', 'member', 'id', (i % 1000)::text, 'label', NULL),
        'data', jsonb_build_object('permission', 'ban'))) END::text,
  lpad(to_hex(i), 64, '0'), lpad(to_hex(i), 64, '0')
FROM generate_series(0, 999999) AS i;
ANALYZE audit_entries;
SQL
psql -X -q -v ON_ERROR_STOP=1 -d "$url" <<'SQL'
SELECT pg_size_pretty(pg_total_relation_size('audit_entries')) AS "audit_entries with indexes";
\set family '(CASE WHEN strpos(operation, \'.\') > 0 THEN split_part(operation, \'.\', 1) ELSE \'config\' END)'
\set outcome '(CASE WHEN strpos(operation, \'.\') > 0 THEN (body::jsonb) #>> \'{detail,outcome}\' ELSE \'success\' END)'
\echo -- filtered first page: family member, outcome blocked (plan, then two runs)
EXPLAIN SELECT body, entry_hash FROM audit_entries WHERE TRUE AND guild_id = 1001
  AND :family = 'member' AND :outcome = 'blocked' ORDER BY seq DESC LIMIT 51;
\timing on
\o /dev/null
SELECT body, entry_hash FROM audit_entries WHERE TRUE AND guild_id = 1001
  AND :family = 'member' AND :outcome = 'blocked' ORDER BY seq DESC LIMIT 51;
SELECT body, entry_hash FROM audit_entries WHERE TRUE AND guild_id = 1001
  AND :family = 'member' AND :outcome = 'blocked' ORDER BY seq DESC LIMIT 51;
\o
\timing off
\echo -- filtered first page: target member 1 (plan, then two runs)
EXPLAIN SELECT body, entry_hash FROM audit_entries WHERE TRUE AND guild_id = 1001
  AND ((body::jsonb) #>> '{detail,target,type}') = 'member'
  AND ((body::jsonb) #>> '{detail,target,id}') = '1' ORDER BY seq DESC LIMIT 51;
\timing on
\o /dev/null
SELECT body, entry_hash FROM audit_entries WHERE TRUE AND guild_id = 1001
  AND ((body::jsonb) #>> '{detail,target,type}') = 'member'
  AND ((body::jsonb) #>> '{detail,target,id}') = '1' ORDER BY seq DESC LIMIT 51;
SELECT body, entry_hash FROM audit_entries WHERE TRUE AND guild_id = 1001
  AND ((body::jsonb) #>> '{detail,target,type}') = 'member'
  AND ((body::jsonb) #>> '{detail,target,id}') = '1' ORDER BY seq DESC LIMIT 51;
\o
\echo -- stats over every guild: by family, outcome, day, operation, actor (two runs each)
\o /dev/null
SELECT :family AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (:family) COLLATE "C";
SELECT :family AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (:family) COLLATE "C";
SELECT :outcome AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (:outcome) COLLATE "C";
SELECT :outcome AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (:outcome) COLLATE "C";
SELECT substr(occurred_at, 1, 10) AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (substr(occurred_at, 1, 10)) COLLATE "C";
SELECT substr(occurred_at, 1, 10) AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (substr(occurred_at, 1, 10)) COLLATE "C";
SELECT operation AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (operation) COLLATE "C";
SELECT operation AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (operation) COLLATE "C";
SELECT actor_id AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (actor_id) COLLATE "C";
SELECT actor_id AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (actor_id) COLLATE "C";
\echo -- stats of one guild (100,000 entries) by outcome (two runs)
SELECT :outcome AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE AND guild_id = 1003
  GROUP BY 1 ORDER BY (:outcome) COLLATE "C";
SELECT :outcome AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE AND guild_id = 1003
  GROUP BY 1 ORDER BY (:outcome) COLLATE "C";
\o
\timing off
\echo -- plans: stats of one guild by outcome, and every guild by family
EXPLAIN SELECT :outcome AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE AND guild_id = 1003
  GROUP BY 1 ORDER BY (:outcome) COLLATE "C";
EXPLAIN SELECT :family AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE
  GROUP BY 1 ORDER BY (:family) COLLATE "C";
SQL
echo "-- through the guildconf binary (process start and output included)"
for by in family outcome; do
  echo "stats --by $by, every guild:"
  /usr/bin/time -f "%e s" "$bin" --database-url "$url" stats --by "$by" >/dev/null
done
echo "stats --guild 1003 --by outcome:"
/usr/bin/time -f "%e s" "$bin" --database-url "$url" stats --guild 1003 --by outcome >/dev/null
