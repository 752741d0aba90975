//! `export`: the JSONL a third party verifies, its filters, CSV, and
//! `verify --file`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use guildconf_tests::{Backend, TestDb};
use serde_json::{json, Value};

use super::{assert_invalid, gc, gcw, parse_csv, path_str, write_file, Run, ACTOR, BODY_KEYS};

/// The two guilds: string order of the ids differs from numeric order.
const SMALL: &str = "900";
const LARGE: &str = "3000";
/// How many entries [`seven_entries`] writes.
const TOTAL: usize = 7;

/// Seven entries: LARGE with a quoted label and a two-line reason, non-ASCII
/// text and a secret; SMALL created, deleted and created again.
fn seven_entries(db: &TestDb) {
    gc(
        db,
        &[
            "create",
            LARGE,
            "--actor",
            ACTOR,
            "--actor-label",
            "Zoë \"z\", admin",
            "--reason",
            "first, \"quoted\"; second part",
        ],
    )
    .ok();
    gcw(
        db,
        &[
            "set",
            LARGE,
            "onboarding.welcome_message=héllo wörld 👋 \\ end",
        ],
    )
    .ok();
    gcw(
        db,
        &[
            "set",
            LARGE,
            "announcements.webhook_url=https://discord.com/api/webhooks/1/SECRETTOKEN",
            "--request-id",
            "r-1",
        ],
    )
    .ok();
    gcw(db, &["create", SMALL]).ok();
    gcw(db, &["delete", SMALL]).ok();
    gcw(db, &["create", SMALL, "--set", "features.x=true"]).ok();
    gcw(db, &["revert", LARGE, "--to", "1"]).ok();
}

/// An export written with `--output`: the file, its text and its lines.
struct Exported {
    path: PathBuf,
    text: String,
    lines: Vec<Value>,
}

/// The seven entries exported to a file in `dir`.
fn exported(db: &TestDb, dir: &Path) -> Exported {
    seven_entries(db);
    let path = dir.join("export.jsonl");
    let r = gc(db, &["export", "--output", path_str(&path)]).ok();
    assert!(
        r.stdout.trim().is_empty() || r.json().is_object(),
        "{}",
        r.context()
    );
    let text = std::fs::read_to_string(&path).expect("the export exists");
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    Exported { path, text, lines }
}

async fn export_orders_guilds_numerically_and_entries_by_seq(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let Exported { text, lines, .. } = exported(&db, dir.path());
    let stdout_export = gc(&db, &["export"]).ok().stdout;
    assert_eq!(
        stdout_export, text,
        "stdout and --output give the same bytes"
    );
    assert!(text.ends_with('\n'));
    assert!(!text.contains("SECRETTOKEN"));
    assert_eq!(lines.len(), TOTAL);
    let order: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["guild_id"].as_str().expect("guild_id").to_owned(),
                l["seq"].as_u64().expect("seq"),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            (SMALL.to_owned(), 1),
            (SMALL.to_owned(), 2),
            (SMALL.to_owned(), 3),
            (LARGE.to_owned(), 1),
            (LARGE.to_owned(), 2),
            (LARGE.to_owned(), 3),
            (LARGE.to_owned(), 4),
        ],
        "guilds by numeric id, entries by seq"
    );
}

async fn export_lines_are_the_stored_bodies_and_their_hash(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let Exported { text, lines, .. } = exported(&db, dir.path());
    for l in &lines {
        let keys: BTreeSet<&str> = l
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = BODY_KEYS.iter().copied().chain(["entry_hash"]).collect();
        assert_eq!(keys, expected);
    }
    // The lines are the stored bodies plus entry_hash.
    let stored = db
        .rows("SELECT body, entry_hash FROM audit_entries ORDER BY guild_id, seq")
        .await;
    for (line, row) in text.lines().zip(&stored) {
        let mut body: Value = serde_json::from_str(&row[0]).expect("body");
        body["entry_hash"] = json!(row[1]);
        assert_eq!(serde_json::from_str::<Value>(line).expect("line"), body);
    }
}

/// docs/verify_export.py, the third-party verifier, on `file`.
fn python_verify(file: &Path) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/verify_export.py");
    Command::new("python3")
        .arg(&script)
        .arg(file)
        .output()
        .expect("python3 runs")
}

async fn the_python_verifier_accepts_an_export(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let export = exported(&db, dir.path());
    let out = python_verify(&export.path);
    let py_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "verify_export.py: {py_stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(py_stdout.starts_with("ok"), "{py_stdout}");
    assert!(
        py_stdout.contains(&format!("{TOTAL} entries")),
        "{py_stdout}"
    );
}

/// `verify --file` of `text` written to `dir`, expected to fail (exit 6).
fn verify_file_fails(db: &TestDb, dir: &Path, name: &str, text: &str) -> (PathBuf, Run) {
    let path = write_file(dir, name, text);
    let r = gc(db, &["verify", "--file", path_str(&path)]).code(6);
    (path, r)
}

async fn verify_file_checks_an_export_and_finds_a_changed_byte(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let Exported { path, text, .. } = exported(&db, dir.path());
    let report = gc(&db, &["verify", "--file", path_str(&path)]).ok().json();
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["entries_checked"], json!(TOTAL));
    assert_eq!(report["guilds_checked"], json!(2));
    // One byte of a value changed.
    let tampered_text = text.replacen("wörld", "vörld", 1);
    assert_ne!(tampered_text, text);
    assert_eq!(tampered_text.len(), text.len());
    let (tampered, r) = verify_file_fails(&db, dir.path(), "tampered.jsonl", &tampered_text);
    assert_eq!(r.error()["error"], json!("verification_failed"));
    let report = r.json();
    assert_eq!(report["ok"], json!(false));
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["guild_id"], json!(LARGE));
    assert_eq!(problems[0]["seq"], json!(2));
    assert_eq!(problems[0]["problem"], json!("entry_hash"));
    assert!(
        !python_verify(&tampered).status.success(),
        "the python verifier agrees"
    );
}

async fn verify_file_finds_a_removed_line(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let Exported { text, .. } = exported(&db, dir.path());
    let without: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let (_, r) = verify_file_fails(&db, dir.path(), "gap.jsonl", &without);
    let report = r.json();
    let problem = report["problems"][0]["problem"]
        .as_str()
        .unwrap_or_default();
    assert!(problem == "seq_gap" || problem == "prev_hash", "{report}");
}

async fn export_filters_by_guild_and_time(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let Exported { text, lines, .. } = exported(&db, dir.path());
    let only = gc(&db, &["export", "--guild", LARGE]).ok().stdout;
    assert_eq!(
        only.lines().collect::<Vec<_>>(),
        text.lines().skip(3).collect::<Vec<_>>()
    );
    let since = lines[5]["occurred_at"].as_str().expect("time").to_owned();
    let recent = gc(&db, &["export", "--since", &since]).ok().stdout;
    let expected_recent: Vec<&str> = text
        .lines()
        .zip(&lines)
        .filter(|(_, l)| {
            l["occurred_at"]
                .as_str()
                .is_some_and(|t| t >= since.as_str())
        })
        .map(|(t, _)| t)
        .collect();
    assert!(!expected_recent.is_empty());
    assert_eq!(recent.lines().collect::<Vec<_>>(), expected_recent);
}

/// The CSV export of the seven entries, written with `--output` to `dir`,
/// as records.
fn csv_records(db: &TestDb, dir: &Path) -> Vec<Vec<String>> {
    let csv_path = dir.join("export.csv");
    gc(
        db,
        &["export", "--format", "csv", "--output", path_str(&csv_path)],
    )
    .ok();
    let csv_text = std::fs::read_to_string(&csv_path).expect("csv written");
    assert!(!csv_text.contains("SECRETTOKEN"));
    let records = parse_csv(&csv_text);
    assert_eq!(records.len(), TOTAL + 1, "{csv_text}");
    records
}

async fn csv_export_has_seventeen_columns_matching_the_jsonl(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let Exported { lines, .. } = exported(&db, dir.path());
    let records = csv_records(&db, dir.path());
    assert_eq!(
        records[0],
        [
            "guild_id",
            "seq",
            "config_version",
            "operation",
            "occurred_at",
            "actor_id",
            "actor_kind",
            "actor_label",
            "changed_paths",
            "summary",
            "reason",
            "request_id",
            "entry_hash",
            "outcome",
            "target_type",
            "target_id",
            "target_label"
        ]
    );
    for (rec, line) in records[1..].iter().zip(&lines) {
        assert_eq!(rec.len(), 17, "{rec:?}");
        // Config entries read as outcome success, with no target.
        assert_eq!(rec[13..], ["success", "", "", ""], "{rec:?}");
        assert_eq!(json!(rec[0]), line["guild_id"]);
        assert_eq!(rec[1], line["seq"].to_string());
        assert_eq!(rec[2], line["config_version"].to_string());
        assert_eq!(json!(rec[3]), line["operation"]);
        assert_eq!(json!(rec[4]), line["occurred_at"]);
        assert_eq!(json!(rec[5]), line["actor"]["id"]);
        assert_eq!(json!(rec[6]), line["actor"]["kind"]);
        assert_eq!(json!(rec[7]), line["actor"]["label"]);
        let paths: Value = serde_json::from_str(&rec[8]).expect("changed_paths is JSON");
        let expected_paths: Vec<Value> = line["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|c| c["path"].clone())
            .collect();
        assert_eq!(paths, Value::Array(expected_paths));
        assert_eq!(json!(rec[9]), line["summary"]);
        assert_eq!(rec[10], line["reason"].as_str().unwrap_or_default());
        assert_eq!(rec[11], line["request_id"].as_str().unwrap_or_default());
        assert_eq!(json!(rec[12]), line["entry_hash"]);
    }
}

async fn csv_export_quotes_text_and_filters_by_guild(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    seven_entries(&db);
    let records = csv_records(&db, dir.path());
    let create_large = &records[4];
    assert_eq!(create_large[7], "Zoë \"z\", admin");
    assert_eq!(create_large[10], "first, \"quoted\"; second part");
    let csv_one = gc(&db, &["export", "--format", "csv", "--guild", SMALL])
        .ok()
        .stdout;
    assert_eq!(parse_csv(&csv_one).len(), 4);
    assert_invalid(&gc(&db, &["export", "--format", "xml"]), "/format");
}

guildconf_tests::contract! {
    export_orders_guilds_numerically_and_entries_by_seq,
    export_lines_are_the_stored_bodies_and_their_hash,
    the_python_verifier_accepts_an_export,
    verify_file_checks_an_export_and_finds_a_changed_byte,
    verify_file_finds_a_removed_line,
    export_filters_by_guild_and_time,
    csv_export_has_seventeen_columns_matching_the_jsonl,
    csv_export_quotes_text_and_filters_by_guild,
}
