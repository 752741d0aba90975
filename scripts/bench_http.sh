#!/usr/bin/env bash
# Loopback load on the HTTP API with wrk (docs/BENCHMARKS.md, "HTTP API"):
# GET config (served from the read cache) beside a bare axum handler with a
# constant JSON body (crates/app/examples/bare_http.rs, the same build), and
# a history page of a 1,000,000-entry database. Bounded runs of DURATION
# each, on 127.0.0.1 only; every server started here is stopped on exit.
#
#   scripts/bench_http.sh [HISTORY_DB [HISTORY_PG_URL]]
#
# HISTORY_DB and HISTORY_PG_URL: the SQLite file and the PostgreSQL
# database the bench's loader fills, e.g.
#   guildconf-bench --phase load --url /tmp/api-bench.db --pg-url URL \
#     --entries 1000000 --guilds 1000 --big 100000
# Without them, the history part is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-8}
THREADS=${THREADS:-1}
BIN=target/release/guildconf
BARE=target/release/examples/bare_http
[ -x "$BIN" ] && [ -x "$BARE" ] || {
    echo "build first: nice -n 10 cargo build --release -p guildconf --bins --example bare_http" >&2
    exit 2
}
scratch=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT

# Starts a server whose first stdout line is "listening on http://ADDR";
# sets ADDR.
start() {
    local out="$scratch/out.$RANDOM"
    "$@" >"$out" 2>"$out.err" &
    pids+=($!)
    for _ in $(seq 100); do
        if [ -s "$out" ]; then break; fi
        sleep 0.1
    done
    ADDR=$(sed -n 's|^listening on http://||p' "$out" | head -1)
    [ -n "$ADDR" ] || { cat "$out.err" >&2; exit 1; }
}

run_wrk() {
    echo "== $1"
    shift
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@"
}

echo "machine: $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"

start "$BARE" 127.0.0.1:0
run_wrk "bare axum handler, constant JSON" "http://$ADDR/"

db="$scratch/config.db"
url="sqlite://$db"
"$BIN" --database-url "$url" --json migrate >/dev/null
"$BIN" --database-url "$url" create 123456789012345678 --actor 80351110224678912 \
    --set onboarding.enabled=true --set onboarding.welcome_channel=555 >/dev/null
token=$("$BIN" --database-url "$url" --json token create --role viewer --label bench \
    --actor 80351110224678912 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
start "$BIN" --database-url "$url" serve --listen 127.0.0.1:0
run_wrk "GET /api/v1/guilds/G/config (read cache)" -H "Authorization: Bearer $token" \
    "http://$ADDR/api/v1/guilds/123456789012345678/config"

history() {
    local hurl=$1 guild=$2
    htoken=$("$BIN" --database-url "$hurl" --json token create --role viewer --label bench \
        --actor 80351110224678912 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    start "$BIN" --database-url "$hurl" serve --listen 127.0.0.1:0
    page="http://$ADDR/api/v1/guilds/$guild/history"
    run_wrk "GET history, first page of 50 (guild $guild)" -H "Authorization: Bearer $htoken" "$page"
    cursor=$(curl -sf -H "Authorization: Bearer $htoken" "$page?limit=1000" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')
    run_wrk "GET history, page of 50 after 1,000 entries (cursor)" \
        -H "Authorization: Bearer $htoken" "$page?cursor=$cursor"
    run_wrk "GET history, 50 updates (operation filter)" \
        -H "Authorization: Bearer $htoken" "$page?operation=update"
}

if [ $# -ge 1 ]; then
    echo "# SQLite"
    history "sqlite://$1" "$(sqlite3 "$1" "SELECT guild_id FROM guild_heads ORDER BY seq DESC LIMIT 1")"
fi
if [ $# -ge 2 ]; then
    echo "# PostgreSQL"
    history "$2" "$(psql "$2" -Atc "SELECT guild_id FROM guild_heads ORDER BY seq DESC LIMIT 1")"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
