//! `guildconf event`: a write command that records an admin action in the
//! guild's chain (docs/CLI.md). Bad events exit 3 and store nothing; secret
//! data is redacted in every output; the third-party verifier and
//! `verify --file` accept an export with events.

use std::path::Path;
use std::process::Command;

use guildconf_tests::{Backend, TestDb};
use serde_json::json;

use super::{assert_invalid, gc, gc_plain, gcw, history, path_str, totals, G};

const ROLE: [&str; 10] = [
    "member.role_added",
    "--outcome",
    "success",
    "--target-type",
    "member",
    "--target-id",
    "80351110224678912",
    "--target-label",
    "Bob",
    "--data",
];

/// `guildconf event G <ROLE…> role_id=<id> EXTRA…`, by the default actor.
fn role_added(db: &TestDb, extra: &[&str]) -> super::Run {
    let mut args = vec!["event", G];
    args.extend(ROLE);
    args.push("role_id=613425648685547601");
    args.extend(extra);
    gcw(db, &args)
}

async fn an_event_is_a_write_with_a_request_id(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let first = role_added(&db, &["--request-id", "ev-1"]).ok().json();
    assert_eq!(first["outcome"], json!("recorded"));
    assert_eq!(first["version"], json!(0));
    assert_eq!(gc(&db, &["show", G]).code(5).error()["error"], "not_found");
    // The same request replays; nothing more is stored.
    let replay = role_added(&db, &["--request-id", "ev-1"]).ok().json();
    assert_eq!(replay["entry_hash"], first["entry_hash"]);
    assert_eq!(replay["replayed"], json!(true));
    assert_eq!(db.count("audit_entries", G).await, 1);
    // Another event under the same request id is a conflict.
    let mut other = vec!["event", G];
    other.extend(ROLE);
    other.extend(["role_id=1", "--request-id", "ev-1"]);
    assert_eq!(gcw(&db, &other).code(4).error()["error"], "conflict");
    // A create continues the chain the event started.
    let created = gcw(&db, &["create", G]).ok().json();
    assert_eq!(created["version"], json!(1));
    let entries = history(&db, &[G]);
    assert_eq!(super::seqs(&entries), [2, 1]);
    assert_eq!(entries[1]["operation"], json!("member.role_added"));
    assert_eq!(entries[1]["context"], json!({"source": "cli"}));
    assert_eq!(
        entries[1]["detail"],
        json!({"outcome": "success",
               "target": {"type": "member", "id": "80351110224678912", "label": "Bob"},
               "data": {"role_id": "613425648685547601"}})
    );
    let plain = gc_plain(&db, &["history", G]).ok().stdout;
    assert!(plain.contains("recorded member.role_added (success) on member Bob"));
}

async fn bad_events_exit_3_and_store_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    gcw(&db, &["create", G]).ok();
    let before = totals(&db).await;
    let target = ["--target-type", "member", "--target-id", "5"];
    let cases: [(&[&str], &str); 7] = [
        (&["nope.key", "--outcome", "info"], "/action"),
        (&["Not-A-Key", "--outcome", "info"], "/action"),
        (
            &[
                "permission.denied",
                "--outcome",
                "success",
                "--data",
                "permission=ban",
            ],
            "/outcome",
        ),
        (
            &[
                "permission.denied",
                "--outcome",
                "won",
                "--data",
                "permission=ban",
            ],
            "/outcome",
        ),
        (
            &[
                "permission.denied",
                "--outcome",
                "blocked",
                "--data",
                "permission=3",
            ],
            "/data/permission",
        ),
        (
            &[
                "permission.denied",
                "--outcome",
                "blocked",
                "--data",
                "permission=a",
                "--data",
                "x=1",
            ],
            "/data/x",
        ),
        (
            &[
                "config.denied",
                "--outcome",
                "blocked",
                "--data",
                "paths=[\"no-slash\"]",
            ],
            "/data/paths",
        ),
    ];
    for (args, path) in cases {
        for guild in [G, "777"] {
            let mut all = vec!["event", guild];
            all.extend(args);
            all.extend(target);
            assert_invalid(&gcw(&db, &all), path);
        }
    }
    assert_eq!(totals(&db).await, before);
    assert_eq!(db.count("audit_entries", "777").await, 0);
}

async fn secret_event_data_is_redacted_everywhere(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    gcw(&db, &["create", G]).ok();
    let args = [
        "event",
        G,
        "config.backup_created",
        "--outcome",
        "success",
        "--target-type",
        "guild",
        "--target-id",
        G,
        "--data",
        "destination=s3://id:HUNTER2@bucket",
    ];
    let run = gcw(&db, &args).ok();
    let dir = tempfile::tempdir().expect("tempdir");
    let jsonl = dir.path().join("e.jsonl");
    let csv = dir.path().join("e.csv");
    gc(&db, &["export", "--output", path_str(&jsonl)]).ok();
    gc(
        &db,
        &["export", "--format", "csv", "--output", path_str(&csv)],
    )
    .ok();
    let outputs = [
        run.all_output(),
        gc(&db, &["history", G]).ok().all_output(),
        gc_plain(&db, &["history", G]).ok().all_output(),
        std::fs::read_to_string(&jsonl).expect("export"),
        std::fs::read_to_string(&csv).expect("csv"),
        format!("{:?}", db.dump(G).await),
    ];
    for out in outputs {
        assert!(!out.contains("HUNTER2"), "the secret leaked: {out}");
    }
    assert!(std::fs::read_to_string(&jsonl)
        .expect("export")
        .contains(r#""destination":"[redacted]""#));
}

async fn both_verifiers_accept_an_export_with_events(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    role_added(&db, &[]).ok();
    gcw(&db, &["create", G]).ok();
    role_added(&db, &[]).ok();
    gcw(&db, &["delete", G]).ok();
    role_added(&db, &[]).ok();
    gc(&db, &["verify"]).ok();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("e.jsonl");
    gc(&db, &["export", "--output", path_str(&file)]).ok();
    gc(&db, &["verify", "--file", path_str(&file)]).ok();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/verify_export.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok: 5 entries"), "{stdout}");
    // An operation that is neither a config operation nor family.verb is
    // still refused by both, with a correctly recomputed hash.
    let text = std::fs::read_to_string(&file).expect("export");
    let forged = with_operation(&text, 0, "Member.Role_Added");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, forged).expect("write");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("problem=entry_hash"));
    gc(&db, &["verify", "--file", path_str(&bad)]).code(6);
}

/// The export with line `index`'s operation replaced and its hash
/// recomputed, as a forger with the format docs would.
fn with_operation(text: &str, index: usize, operation: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == index {
            let mut body: serde_json::Value = serde_json::from_str(line).expect("a line");
            let map = body.as_object_mut().expect("an object");
            map.remove("entry_hash");
            map.insert("operation".into(), json!(operation));
            let canonical = guildconf::json::canonical_json(&body).expect("canonical");
            let hash = guildconf::json::sha256_hex(canonical.as_bytes());
            body["entry_hash"] = json!(hash);
            out.push_str(&guildconf::json::canonical_json(&body).expect("canonical"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

guildconf_tests::contract! {
    an_event_is_a_write_with_a_request_id,
    bad_events_exit_3_and_store_nothing,
    secret_event_data_is_redacted_everywhere,
    both_verifiers_accept_an_export_with_events,
}
