//! The third-party verifier (`docs/verify_export.py`, standard library plus
//! the `rfc8785` package) rejects what `guildconf verify --file` rejects on
//! chain rules, on files crafted with correctly recomputed hashes.

use std::process::Command;

use serde_json::{json, Map, Value};

mod common;
use common::{run_sqlite as guildconf, ALICE};

fn lines(text: &str) -> Vec<Map<String, Value>> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("an export line is an object"))
        .collect()
}

/// The lines again, each guild's chain re-hashed from its first line on:
/// every `prev_hash` names the previous line's recomputed `entry_hash`.
fn rehash(lines: &[Map<String, Value>]) -> String {
    let mut out = String::new();
    let mut prev: Option<(Value, String)> = None;
    for line in lines {
        let mut body = line.clone();
        body.remove("entry_hash");
        if let Some((guild, hash)) = &prev {
            if body.get("guild_id") == Some(guild) && body["seq"] != json!(1) {
                body.insert("prev_hash".into(), json!(hash));
            }
        }
        let text = guildconf::json::canonical(&Value::Object(body.clone())).expect("canonical");
        let hash = guildconf::json::sha256_hex(text.as_bytes());
        body.insert("entry_hash".into(), json!(hash));
        prev = Some((body["guild_id"].clone(), hash));
        out.push_str(&guildconf::json::canonical(&Value::Object(body)).expect("canonical"));
        out.push('\n');
    }
    out
}

#[test]
fn the_python_verifier_rejects_what_verify_file_rejects() {
    let python = Command::new("python3")
        .args(["-c", "import rfc8785"])
        .status()
        .expect("python3 runs");
    assert!(
        python.success(),
        "the rfc8785 package is needed (scripts/test.sh installs it)"
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("g.db");
    for g in ["111111111111111111", "222222222222222222"] {
        assert!(guildconf(&db, &["create", g, "--actor", ALICE])
            .status
            .success());
        for i in 0..3 {
            let set = format!("role_mapping.r{i}={}", i + 1);
            assert!(guildconf(&db, &["set", g, &set, "--actor", ALICE])
                .status
                .success());
        }
    }
    let export = guildconf(&db, &["export"]);
    let good = lines(&String::from_utf8_lossy(&export.stdout));
    assert_eq!(good.len(), 8);
    let edited = |index: usize, key: &str, value: Value| {
        let mut l = good.clone();
        l[index].insert(key.into(), value);
        rehash(&l)
    };
    // Each chain in order, but guild 2's first entry between guild 1's.
    let interleaved: String = [0, 1, 4, 2, 3, 5, 6, 7]
        .iter()
        .map(|&i| {
            format!(
                "{}\n",
                guildconf::json::canonical(&Value::Object(good[i].clone())).expect("canonical")
            )
        })
        .collect();
    let not_snowflake = {
        let mut l = good.clone();
        for line in l.iter_mut().take(4) {
            line.insert("guild_id".into(), json!("0111111111111111111"));
        }
        rehash(&l)
    };
    let numeric_guild = {
        let mut l = good.clone();
        for line in l.iter_mut().take(4) {
            line.insert("guild_id".into(), json!(111_111_111_111_111_111_u64));
        }
        rehash(&l)
    };
    // Guild 1's whole chain again after guild 2's.
    let comes_back = format!("{}{}", rehash(&good), rehash(&good[..4]));
    let cases = [
        ("a numeric guild id", numeric_guild, false),
        ("a guild that comes back", comes_back, false),
        ("untouched", rehash(&good), true),
        ("guilds interleaved", interleaved, false),
        (
            "unknown operation",
            edited(1, "operation", json!("grant")),
            false,
        ),
        ("guild id not a snowflake", not_snowflake, false),
        (
            "malformed occurred_at",
            edited(2, "occurred_at", json!("2026-01-01T00:00:00Z")),
            false,
        ),
        ("format v 2", edited(3, "v", json!(2)), false),
    ];
    for (name, text, ok) in cases {
        let file = dir.path().join("case.jsonl");
        std::fs::write(&file, &text).expect("written");
        let ours = guildconf(&db, &["verify", "--file", &file.display().to_string()]);
        let theirs = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../docs/verify_export.py"
            ))
            .arg(&file)
            .output()
            .expect("the Python verifier runs");
        assert_eq!(ours.status.success(), ok, "verify --file, {name}: {ours:?}");
        assert_eq!(
            theirs.status.success(),
            ok,
            "verify_export.py, {name}: {theirs:?}"
        );
    }
}
