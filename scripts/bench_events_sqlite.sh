#!/usr/bin/env bash
# Stats and a filtered first history page at 1,000,000 entries on SQLite
# (docs/BENCHMARKS.md, "Events: stats and filters"). Builds a throwaway
# database with the schema of `guildconf migrate`, fills it with synthetic
# rows through plain SQL (the chain guard is dropped first: the rows are not
# a real chain, only the query shapes matter), and times the exact SQL the
# SQLite adapter runs, in the sqlite3 shell.
# Usage: scripts/bench_events_sqlite.sh [DB] (needs sqlite3 and a built guildconf).
set -euo pipefail
db=${1:-/tmp/guildconf-events-bench.db}
bin=${GUILDCONF_BIN:-target/debug/guildconf}
rm -f "$db" "$db-wal" "$db-shm"
"$bin" --database-url "sqlite://$db" migrate
sqlite3 "$db" <<'SQL'
DROP TRIGGER audit_entries_extend_chain;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999999)
INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at, actor_id,
                           request_id, body, entry_hash, prev_hash)
SELECT 1000 + i % 10, i / 10 + 1, 1,
  CASE i % 4 WHEN 0 THEN 'update' WHEN 1 THEN 'member.role_added'
             WHEN 2 THEN 'permission.denied' ELSE 'ratelimit.exceeded' END,
  strftime('%Y-%m-%dT%H:%M:%S', 1767225600 + i * 3, 'unixepoch') || '.000000Z',
  CAST(80351110224678912 + i % 7 AS TEXT), NULL,
  CASE i % 4 WHEN 0 THEN json_object('operation', 'update', 'detail', json_object(),
      'changes', json_array(json_object('op', 'replace', 'path', '/onboarding/welcome_message',
                                        'before', 'a', 'after', 'b')),
      'summary', 'x updated onboarding.welcome_message a → b')
    ELSE json_object('operation', 'e', 'changes', json_array(), 'summary', 'x recorded an event',
      'detail', json_object('outcome', CASE i % 3 WHEN 0 THEN 'success' WHEN 1 THEN 'blocked'
                                                  ELSE 'info' END,
        'target', json_object('type', 'member', 'id', CAST(i % 1000 AS TEXT), 'label', NULL),
        'data', json_object('permission', 'ban'))) END,
  printf('%064x', i), printf('%064x', i)
FROM n;
ANALYZE;
SQL
sqlite3 "$db" <<'SQL'
.timer on
.print -- filtered first page: family member, outcome blocked (plan, then run)
EXPLAIN QUERY PLAN SELECT body, entry_hash FROM audit_entries WHERE guild_id = 1001
  AND (CASE WHEN instr(operation, '.') > 0
          THEN substr(operation, 1, instr(operation, '.') - 1) ELSE 'config' END) = 'member'
  AND (CASE WHEN instr(operation, '.') > 0
          THEN json_extract(body, '$.detail.outcome') ELSE 'success' END) = 'blocked'
  ORDER BY seq DESC LIMIT 51;
SELECT count(*) FROM (SELECT body, entry_hash FROM audit_entries WHERE guild_id = 1001
  AND (CASE WHEN instr(operation, '.') > 0
          THEN substr(operation, 1, instr(operation, '.') - 1) ELSE 'config' END) = 'member'
  AND (CASE WHEN instr(operation, '.') > 0
          THEN json_extract(body, '$.detail.outcome') ELSE 'success' END) = 'blocked'
  ORDER BY seq DESC LIMIT 51);
.print -- filtered first page: target member 1
SELECT count(*) FROM (SELECT body FROM audit_entries WHERE guild_id = 1001
  AND (json_extract(body, '$.detail.target.type')) = 'member'
  AND (json_extract(body, '$.detail.target.id')) = '1' ORDER BY seq DESC LIMIT 51);
.print -- stats over every guild: by family, outcome, day, operation, actor
SELECT (CASE WHEN instr(operation, '.') > 0
          THEN substr(operation, 1, instr(operation, '.') - 1) ELSE 'config' END) AS k, COUNT(*)
  FROM audit_entries GROUP BY k ORDER BY k;
SELECT (CASE WHEN instr(operation, '.') > 0
          THEN json_extract(body, '$.detail.outcome') ELSE 'success' END) AS k, COUNT(*)
  FROM audit_entries GROUP BY k ORDER BY k;
SELECT count(*) FROM (SELECT substr(occurred_at, 1, 10) AS k, COUNT(*) FROM audit_entries GROUP BY k);
SELECT operation AS k, COUNT(*) FROM audit_entries GROUP BY k ORDER BY k;
SELECT actor_id AS k, COUNT(*) FROM audit_entries GROUP BY k ORDER BY k;
.print -- stats of one guild (100,000 entries) by outcome
SELECT (CASE WHEN instr(operation, '.') > 0
          THEN json_extract(body, '$.detail.outcome') ELSE 'success' END) AS k, COUNT(*)
  FROM audit_entries WHERE guild_id = 1003 GROUP BY k ORDER BY k;
SQL
