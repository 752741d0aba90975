#!/usr/bin/env python3
"""Verify a guildconf audit export (.jsonl) on your own; see docs/FORMAT.md.
Usage: python3 verify_export.py [EXPORT.jsonl]  (reads stdin without a path).
Needs the standard library and the `rfc8785` package (pip install rfc8785)."""
import datetime, hashlib, json, re, sys, rfc8785

BODY_KEYS = set("v guild_id seq config_version operation occurred_at actor changes summary "
                "snapshot_sha256 reason request_id context detail prev_hash".split())

OPERATIONS = {"create", "update", "revert", "delete", "purge"}
def operation(o):  # a config operation, or an event's action key family.verb (<= 64 bytes)
    return o in OPERATIONS or (isinstance(o, str) and len(o) <= 64
                               and bool(re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", o)))

def number(text):  # JCS numbers are IEEE doubles; `rfc8785` refuses ints >= 2^53
    return int(text) if abs(int(text)) < 2**53 else float(text)
def snowflake(g):  # a decimal string, no leading zero, 1 .. 2^63 - 1
    return isinstance(g, str) and re.fullmatch(r"[1-9][0-9]*", g) and int(g) < 2**63
def stored_time(t):  # exactly YYYY-MM-DDTHH:MM:SS.ffffffZ, a real instant
    try: return len(t) == 27 and bool(datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ"))
    except (TypeError, ValueError): return False
def malformed(b):  # the fields a chain rule reads must be what guildconf writes
    return (set(b) != BODY_KEYS or type(b["v"]) is not int or b["v"] != 1
            or not snowflake(b["guild_id"])
            or not operation(b["operation"]) or not stored_time(b["occurred_at"]))
def main(stream):
    heads, failed, entries, starts = {}, set(), 0, {}  # guild -> (last seq, last hash)
    current = None  # guilds come one after another: one that comes back is out of order
    for raw in filter(bytes.strip, stream):  # binary lines: UTF-8 whatever the locale
        line = json.loads(raw, parse_int=number)
        body = {k: v for k, v in line.items() if k not in ("entry_hash", "snapshot", "sig")}
        guild, seq, detail = body.get("guild_id"), body.get("seq"), body.get("detail")
        interleaved, current = guild != current and guild in heads, guild
        if guild in failed: continue  # only the first problem of each guild is reported
        entries += 1  # a purged chain starts later, if a purge entry says so:
        if guild not in heads and type(seq) is int and seq > 1:
            starts[guild] = heads[guild] = (seq - 1, body.get("prev_hash"))
        last_seq, last_hash = heads.get(guild, (0, "0" * 64))
        problem = ("entry_hash" if malformed(body) else
                   "seq_gap" if seq != last_seq + 1 or interleaved else
                   "prev_hash" if body["prev_hash"] != last_hash else
                   "entry_hash" if hashlib.sha256(rfc8785.dumps(body)).hexdigest()
                   != line.get("entry_hash") else None)
        if problem:
            print(f"FAIL guild={guild} seq={seq} problem={problem}")
            failed.add(guild)
        elif body["operation"] == "purge" and isinstance(detail, dict) and starts.get(
                guild) == (detail.get("through_seq"), detail.get("through_hash")):
            del starts[guild]  # the purge entry anchors the later start
        heads[guild] = (seq, line.get("entry_hash"))
    for guild in set(starts) - failed:  # a later start that no purge entry records
        print(f"FAIL guild={guild} seq={starts[guild][0] + 1} problem=seq_gap")
    return 1 if failed or starts else print(f"ok: {entries} entries in {len(heads)} guilds") or 0

if __name__ == "__main__":
    sys.exit(main(open(sys.argv[1], "rb") if len(sys.argv) > 1 else sys.stdin.buffer))
