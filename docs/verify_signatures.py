#!/usr/bin/env python3
"""Check the signatures of a guildconf audit export (.jsonl); see docs/FORMAT.md.
Usage: python3 verify_signatures.py [--require-signed] KEY.pub [KEY.pub ...] < EXPORT.jsonl
Needs the standard library and the `cryptography` package (pip install cryptography).
Checks signatures only: run verify_export.py for the chain itself."""
import base64, hashlib, json, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

def load(path):  # an Ed25519 public key in PEM (SubjectPublicKeyInfo), as `guildconf keygen` writes
    key = load_pem_public_key(open(path, "rb").read())
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest(), key
def fault(sig, entry_hash, trusted):  # why a signature is not accepted, or None
    if not isinstance(sig, dict) or set(sig) != {"alg", "key", "value"} or sig["alg"] != "ed25519":
        return "malformed"
    if sig["key"] not in trusted: return "untrusted key"
    try: trusted[sig["key"]].verify(base64.b64decode(sig["value"], validate=True), entry_hash.encode())
    except (InvalidSignature, ValueError, TypeError): return "invalid"
def main(args, stream):
    require = "--require-signed" in args
    trusted = dict(load(p) for p in args if p != "--require-signed")
    signed_from, last, failed = {}, {}, set()  # guild -> first trusted seq; guild -> last entry signed?
    for raw in filter(bytes.strip, stream):
        line = json.loads(raw)
        guild, seq, signed = line.get("guild_id"), line.get("seq"), "sig" in line
        if guild in failed: continue
        why = ("unsigned after seq %s" % signed_from[guild] if not signed and guild in signed_from
               else None if not signed else fault(line["sig"], line.get("entry_hash", ""), trusted))
        if why:
            print(f"FAIL guild={guild} seq={seq} problem=signature ({why})")
            failed.add(guild)
            continue
        if signed: signed_from.setdefault(guild, seq)
        last[guild] = (seq, signed)
    for guild, (seq, signed) in last.items():  # --require-signed: every head must be signed
        if require and not signed and guild not in failed:
            print(f"FAIL guild={guild} seq={seq} problem=signature (last entry unsigned)")
            failed.add(guild)
    return 1 if failed else print(f"ok: signatures of {len(last)} guilds") or 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], sys.stdin.buffer))
