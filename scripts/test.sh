#!/usr/bin/env bash
# Runs every check and test guildconf has, doing its own set-up first:
# starts the local PostgreSQL if it is installed but stopped, installs the
# Python packages the third-party verifiers use (rfc8785, cryptography),
# the OpenAPI fuzzer (schemathesis) and Debian's chromium and chromium-driver
# for the browser tests when they are missing; then format, lint, the whole
# test suite (both backends) and the example bot.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url="${GUILDCONF_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

pg_up() { pg_isready -q -d "$pg_url" 2>/dev/null; }

if command -v pg_isready >/dev/null 2>&1 && ! pg_up; then
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "== starting the local PostgreSQL"
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
if command -v pg_isready >/dev/null 2>&1 && ! pg_up; then
  echo "!! PostgreSQL does not answer at $pg_url: the PostgreSQL tests will fail (they never skip)." >&2
fi

if ! python3 -c 'import rfc8785' 2>/dev/null; then
  echo "== installing the rfc8785 Python package (for docs/verify_export.py)"
  python3 -m pip install --quiet rfc8785
fi
if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "== installing the cryptography Python package (for docs/verify_signatures.py)"
  python3 -m pip install --quiet cryptography
fi

if ! python3 -c 'import schemathesis' 2>/dev/null; then
  echo "== installing schemathesis (the OpenAPI fuzzer the HTTP tests run)"
  python3 -m pip install --quiet schemathesis
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "== installing Debian's chromium and chromium-driver (for the browser tests)"
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get install -y -q chromium chromium-driver >/dev/null ||
    { "${as_root[@]}" apt-get update -q >/dev/null &&
      "${as_root[@]}" apt-get install -y -q chromium chromium-driver >/dev/null; }
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# The `metrics` feature is off by default: lint its code too. (Across the
# workspace, so every dependency keeps the features the workspace build
# gave it and only guildconf is checked again.)
cargo clippy --workspace --all-targets --features guildconf/metrics -- -D warnings
echo "== cargo doc (no warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet
echo "== cargo test (SQLite and PostgreSQL)"
# The CLI tests run the guildconf binary itself: build it first so they never
# meet a stale one.
cargo build --workspace --bins
cargo test --workspace -- --show-output
echo "== the metrics feature (counters read back; the example bot's endpoint scraped)"
cargo test --workspace --features guildconf/metrics --test metrics --example bot
echo "== the example bot"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# From the workspace (no -p): the dependencies keep the workspace build's
# features, so nothing is compiled again.
cargo run -q --example bot -- "sqlite://$tmp/bot.db"
echo "== all checks passed"
