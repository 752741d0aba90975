#!/usr/bin/env bash
# The guildconf CLI on its embedded SQLite default (sqlite://guildconf.db),
# in a fresh scratch directory: create a guild, change it as two people,
# then ask who changed what, when, and what it looked like before.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build -q --release -p guildconf --manifest-path "$root/Cargo.toml"
gc="$root/target/release/guildconf"
work="$(mktemp -d)"
cd "$work"
unset GUILDCONF_DATABASE_URL
guild=123456789012345678
alice=80351110224678912
bob=80351110224678913
run() { echo; echo "\$ guildconf $*"; "$gc" "$@"; }

run create "$guild" --actor "$alice" --actor-label alice --reason "new server"
run set "$guild" onboarding.enabled=true onboarding.welcome_channel=555000000000000001 \
    onboarding.welcome_message="Welcome aboard!" --actor "$alice" --actor-label alice
run set "$guild" features.raid_guard=true announcements.webhook_url=https://discord.com/api/webhooks/1/s3cr3t \
    --actor "$bob" --actor-label bob --reason "raid last night"
run set "$guild" onboarding.enabled=false --actor "$bob" --actor-label bob
run history "$guild"
run history "$guild" --path onboarding.enabled
run diff "$guild" 2 4
run show "$guild" --path onboarding
run verify
echo
echo "(database: $work/guildconf.db)"
