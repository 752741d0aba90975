//! Acceptance tests of the `guildconf` command line (docs/CLI.md): the real
//! binary, run as a user would, against a fresh database on each backend.
//! Every test checks exit codes, the JSON shapes on stdout, the error object on
//! stderr, and what actually landed in the database (with plain SQL).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use guildconf_tests::{guildconf_bin, Backend, TestDb};
use serde_json::{json, Value};

/// The human actor of most writes.
const ACTOR: &str = "80351110224678912";
/// The guild of most tests.
const G: &str = "123456789012345678";
/// Every key of a §4 body.
use guildconf_domain::BODY_KEYS;

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// One finished run of the binary.
#[derive(Debug)]
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

/// Runs SQL with the database's own shell (`sqlite3` or `psql`), as an admin
/// or attacker with SQL access would.
fn shell_sql(db: &TestDb, sql: &str) {
    let out = match db.backend {
        Backend::Sqlite => Command::new("/usr/bin/sqlite3")
            .arg(db.sqlite_path().expect("sqlite has a path"))
            .arg(sql)
            .output(),
        Backend::Postgres => Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db.url(),
                "-c",
                sql,
            ])
            .output(),
    }
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

// ---------------------------------------------------------------------------
// 1. Writes, their audit entries, and the reads
// ---------------------------------------------------------------------------

async fn writes_audit_and_reads(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");

    // create: one entry.
    let created = gcw(
        &db,
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
    assert_eq!(created["guild_id"], json!(G));
    assert_eq!(created["version"], json!(1));
    assert_eq!(created["outcome"], json!("created"));
    assert_hash(&created["entry_hash"]);
    assert_eq!(db.count("audit_entries", G).await, 1);
    let doc1 = show_doc(&db, G, &[]);
    for key in [
        "role_mapping",
        "onboarding",
        "yearly_reset",
        "announcements",
        "features",
    ] {
        assert!(
            doc1.get(key).is_some(),
            "the stored document is normalised: {doc1}"
        );
    }

    // set: one entry.
    let set = gcw(
        &db,
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
    assert_eq!(set["outcome"], json!("updated"));
    assert_eq!(set["version"], json!(2));
    assert_hash(&set["entry_hash"]);
    assert_ne!(set["entry_hash"], created["entry_hash"]);
    assert_eq!(db.count("audit_entries", G).await, 2);
    let doc2 = show_doc(&db, G, &[]);
    assert_eq!(doc2["onboarding"]["enabled"], json!(true));
    assert_eq!(
        doc2["onboarding"]["welcome_channel"],
        json!("555"),
        "a bare integer snowflake is stored as its decimal string"
    );
    assert_eq!(doc2["features"]["beta"], json!(true));

    // A set that changes nothing: unchanged, no entry.
    let same = gcw(
        &db,
        &["set", G, "features.beta=true", "onboarding.enabled=true"],
    )
    .ok()
    .json();
    assert_eq!(same["outcome"], json!("unchanged"));
    assert_eq!(same["version"], json!(2));
    assert!(
        same.get("entry_hash").is_some_and(Value::is_null),
        "unchanged has entry_hash null: {same}"
    );
    assert_eq!(db.count("audit_entries", G).await, 2);
    assert_eq!(db.count("guild_snapshots", G).await, 2);

    // --dry-run prints the changes and writes nothing.
    let dry = gcw(&db, &["set", G, "features.gamma=true", "--dry-run"])
        .ok()
        .json();
    let changes = dry["changes"].as_array().expect("a dry run prints changes");
    assert_eq!(
        changes,
        &vec![json!({"op": "add", "path": "/features/gamma", "after": true})],
        "{dry}"
    );
    assert!(dry["entry_hash"].is_null(), "{dry}");
    assert_eq!(db.count("audit_entries", G).await, 2);
    assert_eq!(db.count("guild_snapshots", G).await, 2);
    assert_eq!(show_doc(&db, G, &[]), doc2, "a dry run stores nothing");
    let dry_plain = gc_plain(
        &db,
        &[
            "set",
            G,
            "features.gamma=true",
            "--dry-run",
            "--actor",
            ACTOR,
        ],
    )
    .ok();
    assert!(
        dry_plain.stdout.contains("gamma"),
        "{}",
        dry_plain.context()
    );
    assert_eq!(db.count("audit_entries", G).await, 2);

    // apply: the whole document, one entry.
    let mut doc3 = doc2.clone();
    doc3["features"]["beta"] = json!(false);
    doc3["onboarding"]["welcome_message"] = json!("hello");
    let file = write_file(dir.path(), "doc3.json", &doc3.to_string());
    let applied = gcw(&db, &["apply", G, "--file", path_str(&file)])
        .ok()
        .json();
    assert_eq!(applied["outcome"], json!("updated"));
    assert_eq!(applied["version"], json!(3));
    assert_hash(&applied["entry_hash"]);
    assert_eq!(db.count("audit_entries", G).await, 3);
    assert_eq!(show_doc(&db, G, &[]), doc3);

    // revert --to 1: version 1's document, as a new entry.
    let reverted = gcw(&db, &["revert", G, "--to", "1"]).ok().json();
    assert_eq!(reverted["outcome"], json!("reverted"));
    assert_eq!(reverted["version"], json!(4));
    assert_hash(&reverted["entry_hash"]);
    assert_eq!(db.count("audit_entries", G).await, 4);
    assert_eq!(show_doc(&db, G, &[]), doc1);
    let newest = &history(&db, &[G])[0];
    assert_eq!(newest["operation"], json!("revert"));
    assert_eq!(newest["seq"], json!(4));
    assert_eq!(newest["config_version"], json!(4));
    assert_eq!(newest["detail"], json!({"to_version": 1}));
    // Reverting to what is already current changes nothing.
    let again = gcw(&db, &["revert", G, "--to", "1"]).ok().json();
    assert_eq!(again["outcome"], json!("unchanged"), "{again}");
    assert!(again["entry_hash"].is_null(), "{again}");
    assert_eq!(db.count("audit_entries", G).await, 4);

    // show --version N: exactly the document of version N.
    for (version, doc) in [(1, &doc1), (2, &doc2), (3, &doc3), (4, &doc1)] {
        let v = gc(&db, &["show", G, "--version", &version.to_string()])
            .ok()
            .json();
        assert_eq!(v["version"], json!(version));
        assert_eq!(&v["document"], doc, "version {version}");
    }
    // show --path: one field.
    let field = gc(
        &db,
        &["show", G, "--version", "2", "--path", "features.beta"],
    )
    .ok()
    .json();
    assert_eq!(field["document"], json!(true), "{field}");

    // show --at T: the highest version with occurred_at <= T.
    let entries = history(&db, &[G]);
    let time_of = |seq: u64| -> String {
        entries
            .iter()
            .find(|e| e["seq"] == json!(seq))
            .and_then(|e| e["occurred_at"].as_str())
            .expect("the entry exists")
            .to_owned()
    };
    let (t1, t2, t3) = (time_of(1), time_of(2), time_of(3));
    let at = |t: &str| gc(&db, &["show", G, "--at", t]);
    let v = at(&t2).ok().json();
    assert_eq!((&v["version"], &v["document"]), (&json!(2), &doc2));
    let v = at(&shift(&t3, -1)).ok().json();
    assert_eq!(
        (&v["version"], &v["document"]),
        (&json!(2), &doc2),
        "1 µs before version 3"
    );
    let v = at(&t3).ok().json();
    assert_eq!((&v["version"], &v["document"]), (&json!(3), &doc3));
    // The same instant written with another offset.
    let t3_plus2 = chrono::DateTime::parse_from_rfc3339(&t3)
        .expect("rfc3339")
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).expect("offset"))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let v = at(&t3_plus2).ok().json();
    assert_eq!(v["version"], json!(3), "{t3_plus2}");
    // Before the guild existed: not found.
    let before = at(&shift(&t1, -1)).code(5);
    assert_eq!(before.error()["error"], json!("not_found"));

    // diff between two versions.
    let d = gc(&db, &["diff", G, "2", "3"]).ok().json();
    assert_eq!(d["guild_id"], json!(G));
    assert_eq!(d["from"], json!(2));
    assert_eq!(d["to"], json!(3));
    assert_eq!(
        d["changes"],
        json!([
            {"op": "replace", "path": "/features/beta", "before": true, "after": false},
            {"op": "replace", "path": "/onboarding/welcome_message", "before": null, "after": "hello"},
        ])
    );
    let d = gc(&db, &["diff", G, "3", "4"]).ok().json();
    let paths: Vec<&str> = d["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        vec![
            "/features/beta",
            "/onboarding/enabled",
            "/onboarding/welcome_channel",
            "/onboarding/welcome_message"
        ],
        "sorted by path: {d}"
    );
    assert_eq!(
        gc(&db, &["diff", G, "4", "1"]).ok().json()["changes"],
        json!([])
    );

    // list: every guild with its version, last change time and actor.
    let other = "1000";
    gc(
        &db,
        &[
            "create",
            other,
            "--actor",
            "bot-1",
            "--actor-kind",
            "system",
        ],
    )
    .ok();
    let list = gc(&db, &["list"]).ok().json();
    let guilds = list["guilds"].as_array().expect("guilds is an array");
    assert_eq!(guilds.len(), 2, "{list}");
    let find = |id: &str| {
        guilds
            .iter()
            .find(|g| g["guild_id"] == json!(id))
            .unwrap_or_else(|| panic!("{id} is listed: {list}"))
            .clone()
    };
    let g = find(G);
    assert_eq!(g["version"], json!(4));
    assert_eq!(g["updated_at"], json!(time_of(4)));
    assert_eq!(g["actor"]["id"], json!(ACTOR));
    let o = find(other);
    assert_eq!(o["version"], json!(1));
    assert_eq!(o["actor"]["id"], json!("bot-1"));
    assert_eq!(o["actor"]["kind"], json!("system"));
    assert!(o["updated_at"].is_string());
    gc_plain(&db, &["list"]).ok();

    // delete: one entry; the config is gone, history stays.
    let deleted = gcw(&db, &["delete", G]).ok().json();
    assert_eq!(deleted["outcome"], json!("deleted"));
    assert_eq!(
        deleted["version"],
        json!(4),
        "delete keeps the config version"
    );
    assert_hash(&deleted["entry_hash"]);
    assert_eq!(db.count("audit_entries", G).await, 5);
    assert_eq!(
        gc(&db, &["show", G]).code(5).error()["error"],
        json!("not_found")
    );
    assert_eq!(show_doc(&db, G, &["--version", "3"]), doc3);

    // Every entry: all 15 body keys plus entry_hash, chained.
    let entries = history(&db, &[G]);
    assert_eq!(seqs(&entries), vec![5, 4, 3, 2, 1]);
    let ops: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["operation"].as_str())
        .collect();
    assert_eq!(ops, vec!["delete", "revert", "update", "update", "create"]);
    let stored = db
        .rows(&format!(
            "SELECT CAST(seq AS TEXT), body, entry_hash FROM audit_entries WHERE guild_id = {G} ORDER BY seq DESC"
        ))
        .await;
    assert_eq!(stored.len(), 5);
    for (i, e) in entries.iter().enumerate() {
        let obj = e.as_object().expect("an entry is an object");
        for key in BODY_KEYS.iter().chain(["entry_hash"].iter()) {
            assert!(obj.contains_key(*key), "entry lacks {key}: {e}");
        }
        assert_eq!(e["v"], json!(1));
        assert_eq!(e["guild_id"], json!(G));
        assert_eq!(e["actor"]["id"], json!(ACTOR));
        assert_eq!(e["actor"]["kind"], json!("human"));
        assert_eq!(e["context"], json!({"source": "cli"}));
        assert_hash(&e["entry_hash"]);
        assert!(e["summary"].as_str().is_some_and(|s| !s.is_empty()));
        let prev = entries
            .get(i + 1)
            .map_or_else(|| json!("0".repeat(64)), |p| p["entry_hash"].clone());
        assert_eq!(e["prev_hash"], prev, "the chain links seq {}", e["seq"]);
        if e["operation"] == json!("delete") {
            assert!(e["snapshot_sha256"].is_null());
            assert_eq!(e["config_version"], json!(4));
        } else {
            assert_hash(&e["snapshot_sha256"]);
        }
        if e["operation"] != json!("revert") {
            assert_eq!(e["detail"], json!({}));
        }
        // The stored body is exactly the entry without entry_hash.
        let row = &stored[i];
        assert_eq!(row[0], e["seq"].to_string());
        assert_eq!(json!(row[2]), e["entry_hash"]);
        let body: Value = serde_json::from_str(&row[1]).expect("the stored body is JSON");
        let mut expected = e.clone();
        expected
            .as_object_mut()
            .expect("object")
            .remove("entry_hash");
        assert_eq!(body, expected, "stored body of seq {}", e["seq"]);
        assert_eq!(body.as_object().map(serde_json::Map::len), Some(15));
    }
    let create = &entries[4];
    assert_eq!(create["actor"]["label"], json!("alice"));
    assert_eq!(create["reason"], json!("initial setup"));
    assert_eq!(
        entries[3]["actor"]["label"],
        json!(ACTOR),
        "label defaults to the id"
    );
    assert_eq!(
        create["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|c| (c["op"].clone(), c["path"].clone()))
            .collect::<Vec<_>>(),
        [
            "/announcements",
            "/features",
            "/onboarding",
            "/role_mapping",
            "/yearly_reset"
        ]
        .iter()
        .map(|p| (json!("add"), json!(p)))
        .collect::<Vec<_>>(),
        "a create is diffed against {{}}"
    );

    // Re-creating continues the same chain.
    let recreated = gcw(&db, &["create", G]).ok().json();
    assert_eq!(recreated["outcome"], json!("created"));
    let e6 = &history(&db, &[G])[0];
    assert_eq!(e6["seq"], json!(6));
    assert_eq!(e6["prev_hash"], deleted["entry_hash"]);

    // A pointer names a key containing a dot; --unset removes a map key or
    // resets a field to its default.
    gcw(
        &db,
        &[
            "set",
            G,
            "/role_mapping/mod.team=5",
            "onboarding.welcome_message=hi",
        ],
    )
    .ok();
    let doc = show_doc(&db, G, &[]);
    assert_eq!(doc["role_mapping"], json!({"mod.team": "5"}));
    let unset = gcw(
        &db,
        &[
            "set",
            G,
            "--unset",
            "/role_mapping/mod.team",
            "--unset",
            "onboarding.welcome_message",
        ],
    )
    .ok()
    .json();
    assert_eq!(unset["outcome"], json!("updated"));
    assert_eq!(show_doc(&db, G, &[]), doc1);
    assert_eq!(
        history(&db, &[G])[0]["changes"],
        json!([
            {"op": "replace", "path": "/onboarding/welcome_message", "before": "hi", "after": null},
            {"op": "remove", "path": "/role_mapping/mod.team", "before": "5"},
        ])
    );
    assert_eq!(gc(&db, &["verify"]).ok().json()["ok"], json!(true));
}

// ---------------------------------------------------------------------------
// 2. Invalid input: exit 3, a message naming the path, nothing stored
// ---------------------------------------------------------------------------

async fn invalid_input_changes_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fresh = "777";
    gcw(
        &db,
        &["create", G, "--set", "onboarding.welcome_message=base"],
    )
    .ok();
    gcw(&db, &["set", G, "features.beta=true"]).ok();
    let before = totals(&db).await;
    let doc = show_doc(&db, G, &[]);

    // Guild ids.
    for id in ["abc", "0", "9223372036854775808", "12.5", ""] {
        assert_invalid(&gcw(&db, &["create", id]), "/guild_id");
        assert_invalid(&gcw(&db, &["set", id, "features.a=true"]), "/guild_id");
        assert_invalid(&gc(&db, &["show", id]), "/guild_id");
    }

    // Bad values, by set and by create.
    let long = "é".repeat(2001);
    let long_set = format!("onboarding.welcome_message={long}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["onboarding.bogus=1"], "/onboarding/bogus"),
        (
            vec!["yearly_reset.month=2", "yearly_reset.day=30"],
            "/yearly_reset/day",
        ),
        (vec!["features.Bad-Flag=true"], "/features/Bad-Flag"),
        (vec![long_set.as_str()], "/onboarding/welcome_message"),
        (
            vec!["onboarding.verification.timeout_minutes=9007199254740993"],
            "/onboarding/verification/timeout_minutes",
        ),
        (vec!["features.big=9007199254740993"], "/features/big"),
        (
            vec![r#"onboarding.welcome_message="a\u0000b""#],
            "/onboarding/welcome_message",
        ),
    ];
    for (sets, path) in &cases {
        let mut args = vec!["set", G];
        args.extend(sets.iter().copied());
        assert_invalid(&gcw(&db, &args), path);
        let mut args = vec!["create", fresh];
        for s in sets {
            args.extend(["--set", s]);
        }
        assert_invalid(&gcw(&db, &args), path);
    }

    // Actors and limits.
    assert_invalid(&gc(&db, &["create", fresh, "--actor", "abc"]), "/actor");
    assert_invalid(
        &gc(
            &db,
            &[
                "set",
                G,
                "features.a=true",
                "--actor",
                "1",
                "--actor-kind",
                "robot",
            ],
        ),
        "/actor",
    );
    assert_invalid(&gc(&db, &["history", G, "--limit", "1001"]), "/limit");
    assert_invalid(&gcw(&db, &["revert", G, "--to", "x"]), "/to");
    assert_invalid(
        &gcw(&db, &["set", G, "--expect-version", "x", "features.a=true"]),
        "/expect_version",
    );

    // Files: not JSON, over 64 KiB, U+0000.
    let not_json = write_file(dir.path(), "bad.json", "{\"onboarding\": ");
    let mut roles = serde_json::Map::new();
    for i in 0..2000 {
        roles.insert(
            format!("role_{i:04}_{}", "k".repeat(50)),
            json!(format!("{}", 100_000_000_000_000_000u64 + i)),
        );
    }
    let mut big_doc = doc.clone();
    big_doc["role_mapping"] = Value::Object(roles);
    let big = write_file(dir.path(), "big.json", &big_doc.to_string());
    assert!(std::fs::metadata(&big).expect("metadata").len() > 64 * 1024);
    let nul = write_file(
        dir.path(),
        "nul.json",
        r#"{"onboarding": {"welcome_message": "a\u0000b"}}"#,
    );
    for (file, path) in [
        (&not_json, "/file"),
        (&big, "64 KiB"),
        (&nul, "/onboarding/welcome_message"),
    ] {
        assert_invalid(&gcw(&db, &["apply", G, "--file", path_str(file)]), path);
        assert_invalid(
            &gcw(&db, &["create", fresh, "--file", path_str(file)]),
            path,
        );
    }

    // Reads: cursors and times.
    assert_invalid(&gc(&db, &["history", G, "--cursor", "garbage"]), "/cursor");
    let page = gc(&db, &["history", G, "--limit", "1"]).ok().json();
    let cursor = page["next_cursor"]
        .as_str()
        .expect("two entries, one per page: a next cursor")
        .to_owned();
    gc(&db, &["history", G, "--limit", "1", "--cursor", &cursor]).ok();
    assert_invalid(
        &gc(
            &db,
            &[
                "history",
                G,
                "--limit",
                "1",
                "--operation",
                "create",
                "--cursor",
                &cursor,
            ],
        ),
        "/cursor",
    );
    assert_invalid(
        &gc(
            &db,
            &["history", "778", "--limit", "1", "--cursor", &cursor],
        ),
        "/cursor",
    );
    for bad in ["yesterday", "2026-01-01T00:00:00", "2026-02-30T00:00:00Z"] {
        assert_invalid(&gc(&db, &["history", G, "--since", bad]), "/since");
        assert_invalid(&gc(&db, &["history", G, "--until", bad]), "/until");
        assert_invalid(&gc(&db, &["show", G, "--at", bad]), "/at");
        assert_invalid(&gc(&db, &["export", "--since", bad]), "/since");
    }

    // Nothing was stored; the fresh guild does not exist.
    assert_eq!(totals(&db).await, before);
    assert_eq!(show_doc(&db, G, &[]), doc);
    assert_eq!(db.count("guild_heads", fresh).await, 0);
    assert_eq!(db.count("audit_entries", fresh).await, 0);
    assert_eq!(
        gc(&db, &["show", fresh]).code(5).error()["error"],
        "not_found"
    );

    // The limits themselves are allowed: 2000 scalar values, a snowflake
    // beyond 2^53 given as a bare integer.
    let ok_len = format!("onboarding.welcome_message={}", "é".repeat(2000));
    let r = gcw(
        &db,
        &["set", G, &ok_len, "role_mapping.admin=9007199254740993"],
    )
    .ok()
    .json();
    assert_eq!(r["outcome"], json!("updated"));
    let now = show_doc(&db, G, &[]);
    assert_eq!(now["role_mapping"]["admin"], json!("9007199254740993"));
    assert_eq!(
        now["onboarding"]["welcome_message"]
            .as_str()
            .map(|s| s.chars().count()),
        Some(2000)
    );
}

// ---------------------------------------------------------------------------
// 3. Usage (2), not found (5), conflict (4), idempotency
// ---------------------------------------------------------------------------

async fn usage_not_found_and_conflicts(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let other = "4242";
    gcw(&db, &["create", other]).ok();

    // Usage.
    let r = gc(&db, &["show", G, "--bogus-flag"]).code(2);
    assert_eq!(r.error()["error"], json!("usage"));
    let r = gc(&db, &["create", G]).code(2);
    assert_eq!(r.error()["error"], json!("usage"));
    assert!(
        r.error()["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.context()
    );
    gc_plain(&db, &["create", G]).code(2);
    gc_plain(&db, &["frobnicate"]).code(2);
    assert_eq!(db.count("guild_heads", G).await, 0);

    // Read-only commands never create a database.
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = match backend {
        Backend::Sqlite => format!("sqlite://{}", tmp.path().join("missing.db").display()),
        Backend::Postgres => {
            let (prefix, _) = db.url().rsplit_once('/').expect("a database name");
            format!(
                "{prefix}/gct_missing_{}",
                name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            )
        }
    };
    for args in [
        vec!["list"],
        vec!["show", G],
        vec!["history", G],
        vec!["verify"],
    ] {
        let r = run_url(&missing, true, &args, &[]);
        assert_ne!(r.code, 0, "{}", r.context());
    }
    assert_ne!(
        run_url(&missing, true, &["list"], &[]).code,
        0,
        "still missing"
    );
    assert!(!tmp.path().join("missing.db").exists());

    // Not found.
    let r = gc(&db, &["show", G]).code(5);
    assert_eq!(r.error()["error"], json!("not_found"));
    let r = gcw(&db, &["set", G, "features.a=true"]).code(5);
    assert_eq!(r.error()["error"], json!("not_found"));
    assert_eq!(db.count("guild_heads", G).await, 0);
    gcw(&db, &["create", G]).ok();
    for args in [
        vec!["show", G, "--version", "99"],
        vec!["diff", G, "1", "99"],
        vec!["history", "999"],
    ] {
        let r = gc(&db, &args);
        if args[0] == "history" {
            // An unknown guild's history is simply empty or not found.
            assert!(r.code == 0 || r.code == 5, "{}", r.context());
            if r.code == 0 {
                assert_eq!(r.json()["entries"], json!([]));
            }
            continue;
        }
        assert_eq!(r.code(5).error()["error"], json!("not_found"));
    }
    let r = gcw(&db, &["revert", G, "--to", "99"]).code(5);
    assert_eq!(r.error()["error"], json!("not_found"));
    assert_eq!(db.count("audit_entries", G).await, 1);

    // Conflict: create twice.
    let r = gcw(&db, &["create", G]).code(4);
    assert_eq!(r.error()["error"], json!("conflict"));
    assert_eq!(db.count("audit_entries", G).await, 1);

    // Conflict: a stale --expect-version.
    gcw(&db, &["set", G, "features.a=true"]).ok();
    let before = totals(&db).await;
    for args in [
        vec!["set", G, "features.b=true", "--expect-version", "1"],
        vec!["revert", G, "--to", "1", "--expect-version", "1"],
        vec!["delete", G, "--expect-version", "1"],
    ] {
        let r = gcw(&db, &args).code(4);
        assert_eq!(r.error()["error"], json!("conflict"));
    }
    assert_eq!(totals(&db).await, before, "a conflict writes nothing");
    assert!(show_doc(&db, G, &[])["features"].get("b").is_none());
    let r = gcw(&db, &["set", G, "features.b=true", "--expect-version", "2"])
        .ok()
        .json();
    assert_eq!(r["version"], json!(3));

    // Idempotency: the same request returns the original result.
    let req = ["--request-id", "req-1"];
    let first = gcw(&db, &["set", G, "features.c=true", req[0], req[1]])
        .ok()
        .json();
    assert_eq!(first["outcome"], json!("updated"));
    assert_eq!(first["version"], json!(4));
    assert_eq!(db.count("audit_entries", G).await, 4);
    let stored_req = db
        .rows(&format!(
            "SELECT request_id FROM audit_entries WHERE guild_id = {G} AND seq = 4"
        ))
        .await;
    assert_eq!(stored_req, vec![vec!["req-1".to_owned()]]);
    let core = |v: &Value| {
        (
            v["guild_id"].clone(),
            v["version"].clone(),
            v["outcome"].clone(),
            v["entry_hash"].clone(),
        )
    };
    let replay = gcw(&db, &["set", G, "features.c=true", req[0], req[1]])
        .ok()
        .json();
    assert_eq!(core(&replay), core(&first));
    assert_eq!(db.count("audit_entries", G).await, 4);
    // Still the original after the guild moved on, and before any
    // expected-version check.
    gcw(&db, &["set", G, "features.d=true"]).ok();
    let before = totals(&db).await;
    let replay = gcw(&db, &["set", G, "features.c=true", req[0], req[1]])
        .ok()
        .json();
    assert_eq!(core(&replay), core(&first));
    let replay = gcw(
        &db,
        &[
            "set",
            G,
            "features.c=true",
            req[0],
            req[1],
            "--expect-version",
            "1",
        ],
    )
    .ok()
    .json();
    assert_eq!(
        core(&replay),
        core(&first),
        "replay before expected version"
    );
    assert_eq!(totals(&db).await, before, "a replay writes nothing");
    // The same id with another change, or by another actor: conflict.
    let r = gcw(&db, &["set", G, "features.c=false", req[0], req[1]]).code(4);
    assert_eq!(r.error()["error"], json!("conflict"));
    let r = gc(
        &db,
        &[
            "set",
            G,
            "features.c=true",
            req[0],
            req[1],
            "--actor",
            "1234",
        ],
    )
    .code(4);
    assert_eq!(r.error()["error"], json!("conflict"));
    let r = gcw(&db, &["delete", G, req[0], req[1]]).code(4);
    assert_eq!(r.error()["error"], json!("conflict"));
    assert_eq!(
        totals(&db).await,
        before,
        "a reused request id writes nothing"
    );
    // Parallel writers without --expect-version: none is lost.
    let before = db.count("audit_entries", G).await;
    let children: Vec<_> = (0..4)
        .map(|i| {
            Command::new(guildconf_bin())
                .env_remove("RUST_LOG")
                .args(["--database-url", db.url(), "--json", "set", G])
                .arg(format!("features.par_{i}=true"))
                .args(["--actor", ACTOR])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawns")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("waits");
        assert!(
            out.status.success(),
            "a parallel writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(db.count("audit_entries", G).await, before + 4);
    let features = &show_doc(&db, G, &[])["features"];
    for i in 0..4 {
        assert_eq!(features[format!("par_{i}")], json!(true), "{features}");
    }
    gc(&db, &["verify", G]).ok();

    // Request ids are per guild.
    let r = gcw(&db, &["set", other, "features.c=true", req[0], req[1]])
        .ok()
        .json();
    assert_eq!(r["guild_id"], json!(other));
    assert_eq!(r["version"], json!(2));
    let replayed = gc_plain(
        &db,
        &[
            "set",
            other,
            "features.c=true",
            req[0],
            req[1],
            "--actor",
            ACTOR,
        ],
    )
    .ok();
    assert!(
        replayed.stdout.contains("version 2"),
        "{}",
        replayed.context()
    );
    assert_eq!(db.count("audit_entries", other).await, 2);
}

// ---------------------------------------------------------------------------
// 4. verify, and tampering with plain SQL
// ---------------------------------------------------------------------------

async fn verify_detects_tampering(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let guilds = ["1001", "1002", "1003", "1004", "1005"];
    for g in guilds {
        gcw(&db, &["create", g]).ok();
        gcw(
            &db,
            &[
                "set",
                g,
                "onboarding.enabled=true",
                "onboarding.welcome_channel=555",
            ],
        )
        .ok();
        gcw(&db, &["set", g, "features.x=true"]).ok();
    }
    let report = gc(&db, &["verify"]).ok().json();
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["guilds_checked"], json!(5));
    assert_eq!(report["entries_checked"], json!(15));
    assert_eq!(report["problems"], json!([]));
    gc(&db, &["verify", "1001"]).ok();
    gc_plain(&db, &["verify"]).ok();

    db.drop_triggers().await;
    // 1001: seq 2's stored body.
    shell_sql(
        &db,
        "UPDATE audit_entries SET body = replace(body, '\"after\":true', '\"after\":false') \
         WHERE guild_id = 1001 AND seq = 2",
    );
    let body = db
        .rows("SELECT body FROM audit_entries WHERE guild_id = 1001 AND seq = 2")
        .await;
    assert!(
        body[0][0].contains("\"after\":false") && !body[0][0].contains("\"after\":true"),
        "the body was altered: {}",
        body[0][0]
    );
    // 1002: version 2's snapshot; 1003: the head's document.
    match backend {
        Backend::Sqlite => {
            shell_sql(
                &db,
                "UPDATE guild_snapshots SET document = replace(document, '\"enabled\":true', '\"enabled\":false') \
                 WHERE guild_id = 1002 AND version = 2",
            );
            shell_sql(
                &db,
                "UPDATE guild_heads SET document = replace(document, '\"x\":true', '\"x\":false') \
                 WHERE guild_id = 1003",
            );
        }
        Backend::Postgres => {
            shell_sql(
                &db,
                "UPDATE guild_snapshots SET document = jsonb_set(document, '{onboarding,enabled}', 'false') \
                 WHERE guild_id = 1002 AND version = 2",
            );
            shell_sql(
                &db,
                "UPDATE guild_heads SET document = jsonb_set(document, '{features,x}', 'false') \
                 WHERE guild_id = 1003",
            );
        }
    }
    assert_eq!(
        show_doc(&db, "1002", &["--version", "2"])["onboarding"]["enabled"],
        json!(false),
        "the snapshot was altered"
    );
    assert_eq!(
        show_doc(&db, "1003", &[])["features"]["x"],
        json!(false),
        "the head was altered"
    );
    // 1004: a middle entry removed.
    shell_sql(
        &db,
        "DELETE FROM audit_entries WHERE guild_id = 1004 AND seq = 2",
    );
    assert_eq!(db.count("audit_entries", "1004").await, 2);

    let r = gc(&db, &["verify"]).code(6);
    assert_eq!(r.error()["error"], json!("verification_failed"));
    let report = r.json();
    assert_eq!(report["ok"], json!(false));
    let problems = report["problems"].as_array().expect("problems");
    let by_guild: BTreeMap<String, &Value> = problems
        .iter()
        .map(|p| {
            (
                p["guild_id"]
                    .as_str()
                    .expect("guild_id is a string")
                    .to_owned(),
                p,
            )
        })
        .collect();
    assert_eq!(
        by_guild.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["1001", "1002", "1003", "1004"],
        "one problem per tampered guild, none for 1005: {report}"
    );
    assert_eq!(problems.len(), 4, "the first failure per guild: {report}");
    assert_eq!(by_guild["1001"]["problem"], json!("entry_hash"), "{report}");
    assert_eq!(by_guild["1001"]["seq"], json!(2), "{report}");
    assert_eq!(by_guild["1002"]["problem"], json!("snapshot"), "{report}");
    assert_eq!(by_guild["1002"]["seq"], json!(2), "{report}");
    assert_eq!(by_guild["1003"]["problem"], json!("head"), "{report}");
    let gap = by_guild["1004"]["problem"].as_str().unwrap_or_default();
    assert!(gap == "seq_gap" || gap == "prev_hash", "{report}");
    for p in problems {
        assert!(p["message"].is_string(), "{p}");
    }

    // One guild at a time.
    gc(&db, &["verify", "1005"]).ok();
    let one = gc(&db, &["verify", "1001"]).code(6).json();
    assert_eq!(one["problems"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one["problems"][0]["guild_id"], json!("1001"));
    let plain = gc_plain(&db, &["verify"]).code(6);
    assert!(plain.stdout.contains("1001"), "{}", plain.context());
}

// ---------------------------------------------------------------------------
// 5. Secrets
// ---------------------------------------------------------------------------

async fn secrets_never_leak(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = [("RUST_LOG", "trace")];
    let secret = "SECRETTOKEN";
    let url = format!("https://discord.com/api/webhooks/1/{secret}");
    let mut seen: Vec<Run> = Vec::new();
    // Every run here logs at trace level, with and without --json.
    let mut run = |json_flag: bool, args: &[&str]| -> Run {
        let r = run_with(&db, json_flag, args, &trace);
        let copy = Run {
            args: r.args.clone(),
            code: r.code,
            stdout: r.stdout.clone(),
            stderr: r.stderr.clone(),
        };
        seen.push(copy);
        r
    };

    run(true, &["create", G, "--actor", ACTOR]).ok();
    let set_arg = format!("announcements.webhook_url={url}");
    let set = run(
        true,
        &[
            "set",
            G,
            &set_arg,
            "--actor",
            ACTOR,
            "--request-id",
            "secret-1",
        ],
    )
    .ok()
    .json();
    assert_eq!(set["outcome"], json!("updated"));
    run(false, &["set", G, "features.a=true", "--actor", ACTOR]).ok();

    let shown = run(true, &["show", G]).ok().json();
    assert_eq!(
        shown["document"]["announcements"]["webhook_url"],
        json!("[redacted]")
    );
    run(false, &["show", G]).ok();
    run(false, &["show", G, "--version", "2"]).ok();
    run(true, &["show", G, "--path", "announcements.webhook_url"]).ok();
    run(true, &["show", G, "--path", "announcements"]).ok();
    let hist = run(true, &["history", G]).ok().json();
    let change = hist["entries"][1]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["path"] == json!("/announcements/webhook_url"))
        .cloned()
        .expect("the secret's change is recorded");
    assert_eq!(
        change,
        json!({"op": "replace", "path": "/announcements/webhook_url", "before": null, "after": "[redacted]"})
    );
    run(false, &["history", G]).ok();
    run(true, &["history", G, "--path", "announcements"]).ok();
    run(true, &["diff", G, "1", "2"]).ok();
    run(false, &["diff", G, "1", "3"]).ok();
    run(true, &["export"]).ok();
    run(true, &["export", "--format", "csv"]).ok();
    let jsonl = dir.path().join("e.jsonl");
    run(true, &["export", "--output", path_str(&jsonl)]).ok();
    run(true, &["list"]).ok();
    run(true, &["verify"]).ok();

    // Errors about the secret, or near it.
    let bad_url = "announcements.webhook_url=http://evil.example/OTHERSECRET";
    let r = run(true, &["set", G, bad_url, "--actor", ACTOR]);
    assert_invalid(&r, "/announcements/webhook_url");
    let r = run(false, &["set", G, bad_url, "--actor", ACTOR]).code(3);
    assert!(!r.all_output().contains("OTHERSECRET"), "{}", r.context());
    let r = run(
        true,
        &[
            "set",
            G,
            "announcements.bogus=1",
            "announcements.enabled=maybe",
            "--actor",
            ACTOR,
        ],
    );
    assert_invalid(&r, "/announcements/bogus");
    let other = format!("{{\"webhook_url\": \"{url}\", \"bogus\": 1}}");
    let r = run(
        true,
        &[
            "set",
            G,
            &format!("announcements={other}"),
            "--actor",
            ACTOR,
        ],
    );
    assert_invalid(&r, "/announcements/bogus");
    let r = run(
        true,
        &[
            "set",
            G,
            &set_arg,
            "--actor",
            ACTOR,
            "--request-id",
            "secret-1",
            "--expect-version",
            "1",
        ],
    );
    assert!(r.code == 0, "{}", r.context());
    let r = run(
        true,
        &[
            "set",
            G,
            "announcements.webhook_url=https://discord.com/api/webhooks/2/DRYSECRET",
            "--actor",
            ACTOR,
            "--dry-run",
        ],
    )
    .ok();
    assert!(r.stdout.contains("[redacted]"), "{}", r.context());
    assert!(!r.all_output().contains("DRYSECRET"), "{}", r.context());

    for r in &seen {
        assert!(
            !r.all_output().contains(secret),
            "{secret} leaked\n{}",
            r.context()
        );
        assert!(
            !r.all_output().contains("OTHERSECRET"),
            "OTHERSECRET leaked\n{}",
            r.context()
        );
    }
    let exported = std::fs::read_to_string(&jsonl).expect("the export was written");
    assert!(exported.contains("[redacted]"));
    assert!(!exported.contains(secret));
    for row in db.rows("SELECT body FROM audit_entries").await {
        assert!(
            !row[0].contains(secret),
            "an audit body holds the secret: {}",
            row[0]
        );
    }
    for row in db.rows("SELECT result FROM audit_requests").await {
        assert!(
            !row[0].contains(secret),
            "a request record holds the secret: {}",
            row[0]
        );
    }

    // Asked for explicitly, it is there.
    let revealed = run_with(&db, true, &["show", G, "--reveal-secrets"], &[])
        .ok()
        .json();
    assert_eq!(
        revealed["document"]["announcements"]["webhook_url"],
        json!(url)
    );

    // show → apply keeps the secret and changes nothing.
    let before = totals(&db).await;
    let file = write_file(dir.path(), "shown.json", &shown["document"].to_string());
    let applied = gcw(&db, &["apply", G, "--file", path_str(&file)])
        .ok()
        .json();
    assert_eq!(applied["outcome"], json!("unchanged"), "{applied}");
    assert!(applied["entry_hash"].is_null());
    assert!(!applied.to_string().contains(secret));
    assert_eq!(totals(&db).await, before);
    let revealed = gc(&db, &["show", G, "--reveal-secrets"]).ok().json();
    assert_eq!(
        revealed["document"]["announcements"]["webhook_url"],
        json!(url),
        "\"[redacted]\" keeps the stored secret"
    );
    // …also when other fields change in the same apply.
    let mut edited = shown["document"].clone();
    edited["features"]["b"] = json!(true);
    let file = write_file(dir.path(), "edited.json", &edited.to_string());
    let applied = gcw(&db, &["apply", G, "--file", path_str(&file)])
        .ok()
        .json();
    assert_eq!(applied["outcome"], json!("updated"));
    let revealed = gc(&db, &["show", G, "--reveal-secrets"]).ok().json();
    assert_eq!(
        revealed["document"]["announcements"]["webhook_url"],
        json!(url)
    );
    let newest = &history(&db, &[G])[0];
    assert_eq!(
        newest["changes"],
        json!([{"op": "add", "path": "/features/b", "after": true}])
    );
}

// ---------------------------------------------------------------------------
// 6. history: filters, order, pagination, by actor across guilds
// ---------------------------------------------------------------------------

async fn history_filters_and_pages(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let (h1, h2) = ("2001", "2002");
    let (a, b) = ("42", "43");
    let w = |args: &[&str], actor: &str| {
        let mut all = args.to_vec();
        all.extend(["--actor", actor]);
        gc(&db, &all).ok();
    };
    w(&["create", h1], a); // h1 seq 1
    w(&["set", h1, "features.a=true"], b); // seq 2
    w(&["create", h2], b); // h2 seq 1
    w(&["set", h1, "features.ab=true"], a); // seq 3
    w(&["set", h1, "onboarding.welcome_message=hi"], b); // seq 4
    w(&["set", h2, "features.a=true"], a); // h2 seq 2
    w(&["set", h1, "features.a=false"], b); // seq 5
    w(&["revert", h1, "--to", "2"], a); // seq 6
    w(&["set", h2, "features.z=true"], b); // h2 seq 3

    let all = history(&db, &[h1]);
    assert_eq!(seqs(&all), vec![6, 5, 4, 3, 2, 1], "newest first");
    assert!(all.iter().all(|e| e["guild_id"] == json!(h1)));
    let time_of = |seq: u64| {
        all[(6 - seq) as usize]["occurred_at"]
            .as_str()
            .expect("occurred_at")
            .to_owned()
    };

    let q = |args: &[&str]| {
        let mut full = vec![h1];
        full.extend(args);
        seqs(&history(&db, &full))
    };
    assert_eq!(q(&["--actor", b]), vec![5, 4, 2]);
    assert_eq!(q(&["--operation", "update"]), vec![5, 4, 3, 2]);
    assert_eq!(q(&["--operation", "revert"]), vec![6]);
    assert_eq!(
        q(&["--path", "features.a"]),
        vec![6, 5, 2, 1],
        "whole segments: not /features/ab; the create is an ancestor"
    );
    assert_eq!(q(&["--path", "/features"]), vec![6, 5, 3, 2, 1]);
    assert_eq!(
        q(&[
            "--actor",
            b,
            "--operation",
            "update",
            "--path",
            "features.a"
        ]),
        vec![5, 2]
    );
    assert_eq!(q(&["--actor", a, "--path", "features.a"]), vec![6, 1]);
    assert_eq!(q(&["--actor", "99"]), Vec::<u64>::new());
    let t3 = time_of(3);
    let t5 = time_of(5);
    assert_eq!(q(&["--since", &t3, "--until", &t5]), vec![4, 3]);
    assert_eq!(q(&["--since", &t5]), vec![6, 5]);
    assert_eq!(
        q(&["--until", &t3, "--actor", b]),
        vec![2],
        "--until is exclusive"
    );

    // Pagination: every entry once, in order.
    let pages = |args: &[&str], limit: &str| -> Vec<Vec<u64>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let mut full = vec!["history"];
            full.extend(args);
            full.extend(["--limit", limit]);
            if let Some(c) = &cursor {
                full.extend(["--cursor", c.as_str()]);
            }
            let page = gc(&db, &full).ok().json();
            let entries = page["entries"].as_array().expect("entries").clone();
            assert!(entries.len() <= limit.parse().expect("a number"), "{page}");
            out.push(seqs(&entries));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
        panic!("pagination never ended: {out:?}");
    };
    let p = pages(&[h1], "2");
    assert_eq!(p.concat(), vec![6, 5, 4, 3, 2, 1]);
    assert_eq!(&p[..3], &[vec![6, 5], vec![4, 3], vec![2, 1]]);
    let p = pages(&[h1, "--actor", b], "1");
    assert_eq!(p.concat(), vec![5, 4, 2]);
    let p = pages(&[h1, "--path", "features.a"], "3");
    assert_eq!(p.concat(), vec![6, 5, 2, 1]);

    // An actor across guilds.
    let by_b = history(&db, &["--actor", b]);
    let got: Vec<(String, u64)> = by_b
        .iter()
        .map(|e| {
            (
                e["guild_id"].as_str().expect("guild_id").to_owned(),
                e["seq"].as_u64().expect("seq"),
            )
        })
        .collect();
    let expected: BTreeSet<(String, u64)> = [(h1, 5), (h1, 4), (h1, 2), (h2, 1), (h2, 3)]
        .iter()
        .map(|(g, s)| ((*g).to_owned(), *s))
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:?}");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(by_b.iter().all(|e| e["actor"]["id"] == json!(b)));
    let times: Vec<&str> = by_b
        .iter()
        .filter_map(|e| e["occurred_at"].as_str())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    assert_eq!(
        got[0],
        (h2.to_owned(), 3),
        "the newest entry by {b} comes first"
    );
    // Paging across guilds too.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut args = vec!["history", "--actor", b, "--limit", "2"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let page = gc(&db, &args).ok().json();
        for e in page["entries"].as_array().expect("entries") {
            paged.push((
                e["guild_id"].as_str().expect("guild").to_owned(),
                e["seq"].as_u64().expect("seq"),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, got, "paging across guilds: no skip, no repeat");
    let plain = gc_plain(&db, &["history", h1]).ok();
    assert!(plain.stdout.lines().count() >= 7, "{}", plain.context());
}

// ---------------------------------------------------------------------------
// 7. export: third-party verification, CSV, verify --file
// ---------------------------------------------------------------------------

async fn export_verifies_offline(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // String order of the ids differs from numeric order.
    let (small, large) = ("900", "3000");
    gc(
        &db,
        &[
            "create",
            large,
            "--actor",
            ACTOR,
            "--actor-label",
            "Zoë \"z\", admin",
            "--reason",
            "first, \"quoted\"\nsecond line",
        ],
    )
    .ok();
    gcw(
        &db,
        &[
            "set",
            large,
            "onboarding.welcome_message=héllo wörld 👋 \\ end",
        ],
    )
    .ok();
    gcw(
        &db,
        &[
            "set",
            large,
            "announcements.webhook_url=https://discord.com/api/webhooks/1/SECRETTOKEN",
            "--request-id",
            "r-1",
        ],
    )
    .ok();
    gcw(&db, &["create", small]).ok();
    gcw(&db, &["delete", small]).ok();
    gcw(&db, &["create", small, "--set", "features.x=true"]).ok();
    gcw(&db, &["revert", large, "--to", "1"]).ok();
    let total = 7;

    let jsonl = dir.path().join("export.jsonl");
    let r = gc(&db, &["export", "--output", path_str(&jsonl)]).ok();
    assert!(
        r.stdout.trim().is_empty() || r.json().is_object(),
        "{}",
        r.context()
    );
    let text = std::fs::read_to_string(&jsonl).expect("the export exists");
    let stdout_export = gc(&db, &["export"]).ok().stdout;
    assert_eq!(
        stdout_export, text,
        "stdout and --output give the same bytes"
    );
    assert!(text.ends_with('\n'));
    assert!(!text.contains("SECRETTOKEN"));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), total);
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
            (small.to_owned(), 1),
            (small.to_owned(), 2),
            (small.to_owned(), 3),
            (large.to_owned(), 1),
            (large.to_owned(), 2),
            (large.to_owned(), 3),
            (large.to_owned(), 4),
        ],
        "guilds by numeric id, entries by seq"
    );
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

    // The third-party verifier.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/verify_export.py");
    let py = |file: &Path| {
        Command::new("python3")
            .arg(&script)
            .arg(file)
            .output()
            .expect("python3 runs")
    };
    let out = py(&jsonl);
    let py_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "verify_export.py: {py_stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(py_stdout.starts_with("ok"), "{py_stdout}");
    assert!(
        py_stdout.contains(&format!("{total} entries")),
        "{py_stdout}"
    );

    // verify --file.
    let report = gc(&db, &["verify", "--file", path_str(&jsonl)]).ok().json();
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["entries_checked"], json!(total));
    assert_eq!(report["guilds_checked"], json!(2));
    // One byte of a value changed.
    let tampered_text = text.replacen("wörld", "vörld", 1);
    assert_ne!(tampered_text, text);
    assert_eq!(tampered_text.len(), text.len());
    let tampered = write_file(dir.path(), "tampered.jsonl", &tampered_text);
    let r = gc(&db, &["verify", "--file", path_str(&tampered)]).code(6);
    assert_eq!(r.error()["error"], json!("verification_failed"));
    let report = r.json();
    assert_eq!(report["ok"], json!(false));
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["guild_id"], json!(large));
    assert_eq!(problems[0]["seq"], json!(2));
    assert_eq!(problems[0]["problem"], json!("entry_hash"));
    assert!(
        !py(&tampered).status.success(),
        "the python verifier agrees"
    );
    // A line removed.
    let without: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let gap = write_file(dir.path(), "gap.jsonl", &without);
    let report = gc(&db, &["verify", "--file", path_str(&gap)])
        .code(6)
        .json();
    let problem = report["problems"][0]["problem"]
        .as_str()
        .unwrap_or_default();
    assert!(problem == "seq_gap" || problem == "prev_hash", "{report}");

    // Filters.
    let only = gc(&db, &["export", "--guild", large]).ok().stdout;
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

    // CSV: the 13-column header and one record per entry.
    let csv_path = dir.path().join("export.csv");
    gc(
        &db,
        &["export", "--format", "csv", "--output", path_str(&csv_path)],
    )
    .ok();
    let csv_text = std::fs::read_to_string(&csv_path).expect("csv written");
    assert!(!csv_text.contains("SECRETTOKEN"));
    let records = parse_csv(&csv_text);
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
            "entry_hash"
        ]
    );
    assert_eq!(records.len(), total + 1, "{csv_text}");
    for (rec, line) in records[1..].iter().zip(&lines) {
        assert_eq!(rec.len(), 13, "{rec:?}");
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
    let create_large = &records[4];
    assert_eq!(create_large[7], "Zoë \"z\", admin");
    assert_eq!(create_large[10], "first, \"quoted\"\nsecond line");
    let csv_one = gc(&db, &["export", "--format", "csv", "--guild", small])
        .ok()
        .stdout;
    assert_eq!(parse_csv(&csv_one).len(), 4);
    assert_invalid(&gc(&db, &["export", "--format", "xml"]), "/format");
}

guildconf_tests::contract! {
    writes_audit_and_reads,
    invalid_input_changes_nothing,
    usage_not_found_and_conflicts,
    verify_detects_tampering,
    secrets_never_leak,
    history_filters_and_pages,
    export_verifies_offline,
}
