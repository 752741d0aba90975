//! Acceptance tests of the `guildconf` command line (docs/CLI.md): the real
//! binary, run as a user would, against a fresh database on each backend.
//! Every test checks exit codes, the JSON shapes on stdout, the error object on
//! stderr, and what actually landed in the database (with plain SQL).
//!
//! This file is the harness the tests share (running the binary, asserting
//! on its output, the database shells, CSV and time helpers, and the story of
//! four versions several areas start from); each submodule is one area, each
//! test in it one behaviour.

mod events;
mod exits;
mod export;
mod history;
mod invalid;
mod reads;
mod requests;
mod secrets;
mod tokens;
mod verify;
mod writes;

use std::path::{Path, PathBuf};
use std::process::Command;

use guildconf_tests::{guildconf_bin, TestDb};
use serde_json::{json, Value};

/// The human actor of most writes.
const ACTOR: &str = "80351110224678912";
/// The guild of most tests.
const G: &str = "123456789012345678";
/// Every key of an entry body (docs/FORMAT.md).
use guildconf_domain::BODY_KEYS;

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// One finished run of the binary.
#[derive(Debug, Clone)]
struct Run {
    args: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "guildconf {:?}\nexit: {}\nstdout: {}\nstderr: {}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code.
    #[track_caller]
    fn code(self, expected: i32) -> Self {
        assert_eq!(self.code, expected, "{}", self.context());
        self
    }

    /// Asserts success.
    #[track_caller]
    fn ok(self) -> Self {
        self.code(0)
    }

    /// stdout as one JSON value.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e})\n{}", self.context()))
    }

    /// The `{"error", "message"}` object on stderr (log lines aside).
    #[track_caller]
    fn error(&self) -> Value {
        let found = self
            .stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("error").is_some())
            .collect::<Vec<_>>();
        assert_eq!(
            found.len(),
            1,
            "stderr should hold exactly one error object\n{}",
            self.context()
        );
        let e = found.into_iter().next().expect("one error object");
        assert!(e["error"].is_string(), "{}", self.context());
        assert!(e["message"].is_string(), "{}", self.context());
        e
    }

    /// stdout and stderr together.
    fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `guildconf --database-url URL [--json] ARGS…` with extra environment.
fn run_with(db: &TestDb, json_flag: bool, args: &[&str], env: &[(&str, &str)]) -> Run {
    run_url(db.url(), json_flag, args, env)
}

/// Runs `guildconf --database-url URL [--json] ARGS…` with extra environment.
fn run_url(url: &str, json_flag: bool, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(guildconf_bin());
    cmd.env_remove("GUILDCONF_DATABASE_URL")
        .env_remove("RUST_LOG")
        .arg("--database-url")
        .arg(url);
    if json_flag {
        cmd.arg("--json");
    }
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the guildconf binary runs");
    Run {
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `guildconf --json ARGS…`.
fn gc(db: &TestDb, args: &[&str]) -> Run {
    run_with(db, true, args, &[])
}

/// `guildconf --json ARGS… --actor ACTOR` (a write by the default actor).
fn gcw(db: &TestDb, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--actor", ACTOR]);
    gc(db, &all)
}

/// `guildconf ARGS…` without `--json` (output for people).
fn gc_plain(db: &TestDb, args: &[&str]) -> Run {
    run_with(db, false, args, &[])
}

/// The current document (or at `extra`, e.g. `--version 2`) of a guild.
#[track_caller]
fn show_doc(db: &TestDb, guild: &str, extra: &[&str]) -> Value {
    let mut args = vec!["show", guild];
    args.extend(extra);
    let v = gc(db, &args).ok().json();
    assert_eq!(v["guild_id"], json!(guild), "show names the guild: {v}");
    assert!(v["version"].is_u64(), "show has a version: {v}");
    v["document"].clone()
}

/// All history entries of one query (a single page of up to 1000).
#[track_caller]
fn history(db: &TestDb, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["history"];
    all.extend(args);
    all.extend(["--limit", "1000"]);
    let v = gc(db, &all).ok().json();
    assert!(v["next_cursor"].is_null(), "one page holds it all: {v}");
    v["entries"]
        .as_array()
        .expect("entries is an array")
        .clone()
}

fn seqs(entries: &[Value]) -> Vec<u64> {
    entries
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq is an integer"))
        .collect()
}

#[track_caller]
fn assert_hash(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a hash"));
    assert_eq!(s.len(), 64, "{s}");
    assert!(
        s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{s} is lowercase hex"
    );
}

/// Exit 3, `invalid_input`, and a message naming `path`.
#[track_caller]
fn assert_invalid(run: &Run, path: &str) {
    assert_eq!(run.code, 3, "invalid input exits 3\n{}", run.context());
    let e = run.error();
    assert_eq!(e["error"], "invalid_input", "{}", run.context());
    let message = e["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(path),
        "the message should name {path}: {message}\n{}",
        run.context()
    );
}

/// Row counts of every table plus each head, as one comparable value.
async fn totals(db: &TestDb) -> Vec<Vec<String>> {
    let mut rows = db
        .rows(
            "SELECT CAST((SELECT COUNT(*) FROM audit_entries) AS TEXT), \
                    CAST((SELECT COUNT(*) FROM guild_snapshots) AS TEXT), \
                    CAST((SELECT COUNT(*) FROM guild_heads) AS TEXT), \
                    CAST((SELECT COUNT(*) FROM audit_requests) AS TEXT)",
        )
        .await;
    rows.extend(
        db.rows(
            "SELECT CAST(guild_id AS TEXT), CAST(version AS TEXT), CAST(seq AS TEXT), last_hash \
             FROM guild_heads ORDER BY guild_id",
        )
        .await,
    );
    rows
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a temporary file works");
    path
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Runs SQL with the backend's own shell (`sqlite3`, `psql`), as an admin
/// or attacker with SQL access would.
fn shell_sql(db: &TestDb, sql: &str) {
    let out = db
        .backend
        .shell(db.url(), sql)
        .output()
        .expect("the database shell runs");
    assert!(
        out.status.success(),
        "{sql} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parses RFC 4180 CSV into records.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut dirty = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                dirty = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                dirty = true;
            }
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                dirty = false;
            }
            other => {
                field.push(other);
                dirty = true;
            }
        }
    }
    assert!(!in_quotes, "unterminated quoted CSV field");
    if dirty {
        record.push(field);
        records.push(record);
    }
    records
}

/// An RFC 3339 time moved by `micros`, in UTC with six fraction digits.
fn shift(time: &str, micros: i64) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(time).expect("occurred_at is RFC 3339");
    (t + chrono::Duration::microseconds(micros))
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The `occurred_at` of the entry `seq` among `entries`.
#[track_caller]
fn occurred_at(entries: &[Value], seq: u64) -> String {
    entries
        .iter()
        .find(|e| e["seq"] == json!(seq))
        .and_then(|e| e["occurred_at"].as_str())
        .expect("the entry exists")
        .to_owned()
}

// ---------------------------------------------------------------------------
// The story writes and reads start from: four versions of guild G
// ---------------------------------------------------------------------------

/// Version 1: G created by alice, with a reason. The result and the document.
fn create_v1(db: &TestDb) -> (Value, Value) {
    let created = gcw(
        db,
        &[
            "create",
            G,
            "--actor-label",
            "alice",
            "--reason",
            "initial setup",
        ],
    )
    .ok()
    .json();
    (created, show_doc(db, G, &[]))
}

/// Version 2: three fields set. The result and the document.
fn set_v2(db: &TestDb) -> (Value, Value) {
    let set = gcw(
        db,
        &[
            "set",
            G,
            "onboarding.enabled=true",
            "onboarding.welcome_channel=555",
            "features.beta=true",
        ],
    )
    .ok()
    .json();
    (set, show_doc(db, G, &[]))
}

/// Version 3: version 2's document with beta off and a welcome message,
/// applied from a file in `dir`. The result and the document.
fn apply_v3(db: &TestDb, dir: &Path, doc2: &Value) -> (Value, Value) {
    let mut doc3 = doc2.clone();
    doc3["features"]["beta"] = json!(false);
    doc3["onboarding"]["welcome_message"] = json!("hello");
    let file = write_file(dir, "doc3.json", &doc3.to_string());
    let applied = gcw(db, &["apply", G, "--file", path_str(&file)])
        .ok()
        .json();
    (applied, doc3)
}

/// Guild G after the story's four writes: create, set, apply, and
/// version 4, a revert to version 1.
struct Versions {
    reverted: Value,
    doc1: Value,
    doc2: Value,
    doc3: Value,
}

/// Runs the story's four writes (files in `dir`).
fn four_versions(db: &TestDb, dir: &Path) -> Versions {
    let (_, doc1) = create_v1(db);
    let (_, doc2) = set_v2(db);
    let (_, doc3) = apply_v3(db, dir, &doc2);
    let reverted = gcw(db, &["revert", G, "--to", "1"]).ok().json();
    Versions {
        reverted,
        doc1,
        doc2,
        doc3,
    }
}
