//! Least privilege on PostgreSQL, exactly as docs/STORAGE.md ("Roles and
//! privileges") sets it up: the SQL files of `docs/postgres/` are run as
//! they are (only the role and database names made unique to the test), the
//! owner migrates, and then every command runs through the `guildconf`
//! binary as the application role with `--no-migrate`. The roles are then
//! tried as an attacker holding them would: plain SQL through `psql`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use guildconf::{ConfigService, OpenOptions};
use guildconf_tests::{pg_admin_url, Postgres, TestDb};
use serde_json::Value;

use super::contract::{
    assert_found_exactly, head_rollback_sql, next_write_sql, seed_three_versions,
    triggers_on_tamperings,
};

const ALICE: &str = "80351110224678912";
const GUILD: &str = "123456789012345678";

/// A file of `docs/postgres/`, as the docs quote it.
fn doc_sql(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/postgres")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `sql` with every identifier that `names` lists replaced by its test
/// name (whole identifiers only, so `guildconf` does not touch
/// `guildconf_app`).
fn renamed(sql: &str, names: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let name = names
            .iter()
            .find(|(from, _)| *from == word.as_str())
            .map_or(word.as_str(), |(_, to)| *to);
        out.push_str(name);
        word.clear();
    };
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Runs a script through `psql` at `url`; its output.
fn psql(url: &str, script: &str) -> Output {
    Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", script])
        .output()
        .expect("the psql shell runs")
}

/// Runs a script file's text through `psql -f` (so `\connect` works).
fn psql_file(url: &str, script: &str) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("script.sql");
    std::fs::write(&file, script).expect("written");
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(&file)
        .output()
        .expect("the psql shell runs");
    assert!(
        out.status.success(),
        "{script}\n{} (PostgreSQL must be running)",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test's roles and databases, dropped when the test ends (passed or
/// failed): the databases first, then the roles, which own nothing else.
struct Cluster {
    admin: String,
    tag: String,
    databases: Vec<String>,
}

impl Cluster {
    /// Runs docs/postgres/roles.sql with this test's role names.
    fn new(tag: &str) -> Self {
        let cluster = Self {
            admin: pg_admin_url(),
            tag: format!("gct_{tag}_{}", std::process::id()),
            databases: Vec::new(),
        };
        cluster.drop_all(&[]);
        psql_file(&cluster.admin, &cluster.named(&doc_sql("roles.sql"), ""));
        cluster
    }

    fn role(&self, role: &str) -> String {
        format!("{}_{role}", self.tag)
    }

    /// `sql` with the documented names replaced by this test's.
    fn named(&self, sql: &str, database: &str) -> String {
        let (owner, app, retention) = (self.role("owner"), self.role("app"), self.role("ret"));
        renamed(
            sql,
            &[
                ("guildconf_owner", &owner),
                ("guildconf_app", &app),
                ("guildconf_retention", &retention),
                ("guildconf", database),
            ],
        )
    }

    /// The URL of `database` as `role`.
    fn url(&self, role: &str, database: &str) -> String {
        let (scheme, rest) = self.admin.split_once("://").expect("a URL");
        let host = rest.split_once('@').map_or(rest, |(_, h)| h);
        let host = host.split_once('/').map_or(host, |(h, _)| h);
        format!("{scheme}://{}@{host}/{database}", self.role(role))
    }

    /// A database made as the docs make one: docs/postgres/database.sql,
    /// `guildconf migrate` as the owner, docs/postgres/grants.sql as the
    /// owner.
    fn database(&mut self, name: &str) -> String {
        let db = format!("{}_{name}", self.tag);
        self.databases.push(db.clone());
        psql_file(&self.admin, &self.named(&doc_sql("database.sql"), &db));
        let migrated = guildconf(&self.url("owner", &db), &["migrate"]);
        assert!(
            migrated.status.success(),
            "the owner migrates: {migrated:?}"
        );
        psql_file(
            &self.url("owner", &db),
            &self.named(&doc_sql("grants.sql"), &db),
        );
        db
    }

    fn drop_all(&self, databases: &[String]) {
        for db in databases {
            let _ = psql(
                &self.admin,
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            );
        }
        for role in ["ret", "app", "owner"] {
            let _ = psql(
                &self.admin,
                &format!("DROP ROLE IF EXISTS {}", self.role(role)),
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.drop_all(&self.databases);
    }
}

/// `guildconf --database-url URL ARGS…`.
fn guildconf(url: &str, args: &[&str]) -> Output {
    Command::new(guildconf_tests::guildconf_bin())
        .args(["--database-url", url])
        .args(args)
        .output()
        .expect("the guildconf binary runs")
}

/// `guildconf --no-migrate …` as a role without DDL rights; must succeed.
fn ok(url: &str, args: &[&str]) -> String {
    let mut all = vec!["--no-migrate"];
    all.extend_from_slice(args);
    let out = guildconf(url, &all);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A statement through `psql` that must be refused with `message`.
fn refused(url: &str, sql: &str, message: &str) {
    let out = psql(url, sql);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{sql}: accepted");
    assert!(stderr.contains(message), "{sql}: {stderr}");
}

/// The first value of a query's result, as text, through `psql` as `url`.
fn value(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("the psql shell runs");
    assert!(out.status.success(), "{sql}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One number of the first row of a query, through `psql` as `url`.
fn number(url: &str, sql: &str) -> u64 {
    value(url, sql)
        .parse()
        .unwrap_or_else(|_| panic!("{sql}: not a number"))
}

/// The SQL files the test runs are the ones docs/STORAGE.md quotes, word
/// for word, so the docs and the tested GRANTs cannot drift apart.
#[test]
fn the_documented_sql_is_the_tested_sql() {
    let storage = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/STORAGE.md"),
    )
    .expect("docs/STORAGE.md");
    for file in ["roles.sql", "database.sql", "grants.sql"] {
        let sql = doc_sql(file);
        assert!(
            storage.contains(&format!("```sql\n{sql}```")),
            "docs/STORAGE.md quotes docs/postgres/{file} in a sql block, as it is"
        );
    }
}

/// Every command of the binary runs as the application role with the
/// documented GRANTs and `--no-migrate`; `purge` needs the retention role;
/// the application role cannot migrate. Then, through `psql`, each role is
/// refused what the docs say it is refused.
#[test]
fn every_command_runs_as_the_application_role_and_nothing_more() {
    let mut cluster = Cluster::new("priv");
    let main = cluster.database("main");
    let imported = cluster.database("imported");
    let copied = cluster.database("copied");
    let app = cluster.url("app", &main);
    let retention = cluster.url("ret", &main);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("doc.json"), r#"{"features": {"beta": true}}"#).expect("written");

    let write = ["--actor", ALICE];
    ok(&app, &[&["create", GUILD][..], &write].concat());
    ok(
        &app,
        &[&["set", GUILD, "features.a=true"][..], &write].concat(),
    );
    ok(
        &app,
        &[&["apply", GUILD, "--file", &path("doc.json")][..], &write].concat(),
    );
    ok(
        &app,
        &[&["revert", GUILD, "--to", "1"][..], &write].concat(),
    );
    ok(
        &app,
        &[&["create", "7", "--request-id", "r1"][..], &write].concat(),
    );
    ok(&app, &[&["delete", "7"][..], &write].concat());
    assert!(ok(&app, &["show", GUILD]).contains("features"));
    ok(&app, &["show", GUILD, "--version", "2"]);
    assert!(ok(&app, &["list"]).contains(GUILD));
    ok(&app, &["history", GUILD]);
    ok(&app, &["history", "--actor", ALICE]);
    ok(&app, &["diff", GUILD, "1", "3"]);
    ok(&app, &["verify"]);
    let token: Value = serde_json::from_str(&ok(
        &app,
        &[
            &[
                "--json", "token", "create", "--role", "viewer", "--guild", GUILD,
            ][..],
            &["--label", "dashboard"],
            &write,
        ]
        .concat(),
    ))
    .expect("the token as JSON");
    let id = token["id"].as_str().expect("an id");
    assert!(ok(&app, &["token", "list"]).contains(id));
    ok(&app, &[&["token", "revoke", id][..], &write].concat());
    ok(&app, &["checkpoint", "--output", &path("checkpoint.json")]);
    ok(&app, &["verify", "--checkpoint", &path("checkpoint.json")]);
    ok(&app, &["export", "--format", "csv"]);
    ok(
        &app,
        &[
            "export",
            "--with-snapshots",
            "--output",
            &path("audit.jsonl"),
        ],
    );
    ok(&app, &["verify", "--file", &path("audit.jsonl")]);
    ok(
        &cluster.url("app", &imported),
        &["import", &path("audit.jsonl")],
    );
    ok(&cluster.url("app", &imported), &["verify"]);
    ok(&app, &["copy", "--to", &cluster.url("app", &copied)]);
    let entries = "SELECT count(*) FROM audit_entries";
    assert_eq!(
        number(&cluster.url("app", &copied), entries),
        number(&app, entries)
    );

    // Purge deletes rows: not the application role's right.
    let purge = [
        "--no-migrate",
        "purge",
        "--before",
        "2999-01-01T00:00:00Z",
        "--yes",
        "--actor",
        ALICE,
    ];
    let before = number(&app, entries);
    let denied = guildconf(&app, &purge);
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    assert!(String::from_utf8_lossy(&denied.stderr).contains("permission denied"));
    assert_eq!(
        number(&app, entries),
        before,
        "the refused purge wrote nothing"
    );
    let purged = guildconf(&retention, &purge);
    assert!(purged.status.success(), "{purged:?}");
    assert!(number(&app, entries) < before, "the retention role purged");
    ok(&app, &["verify"]);

    // Nor may it change the schema.
    let migrate = guildconf(&app, &["migrate"]);
    assert_eq!(migrate.status.code(), Some(1), "{migrate:?}");
    assert!(String::from_utf8_lossy(&migrate.stderr).contains("permission denied"));

    // What the application role is refused, as plain SQL.
    for table in ["audit_entries", "guild_snapshots", "audit_requests"] {
        for sql in [
            format!("UPDATE {table} SET guild_id = guild_id"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
            // The purge gate does not open what the role may not do.
            format!("BEGIN; SET LOCAL guildconf.purge = 'on'; DELETE FROM {table}; COMMIT"),
        ] {
            refused(&app, &sql, &format!("permission denied for table {table}"));
        }
    }
    refused(
        &app,
        "CREATE TABLE mine (a int)",
        "permission denied for schema public",
    );
    refused(
        &app,
        "CREATE TEMP TABLE mine (a int)",
        "permission denied to create temporary tables",
    );
    for sql in [
        "DROP TABLE audit_entries",
        "ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only",
        "ALTER TABLE guild_heads DISABLE TRIGGER guild_heads_forward",
        "DROP TRIGGER guild_heads_forward ON guild_heads",
        "DROP TRIGGER audit_entries_extend_chain ON audit_entries",
    ] {
        refused(&app, sql, "must be owner of");
    }
    refused(
        &app,
        "CREATE OR REPLACE FUNCTION guildconf_head_forward() RETURNS trigger LANGUAGE plpgsql \
         AS $$ BEGIN RETURN NEW; END $$",
        "permission denied for schema public",
    );
    refused(
        &app,
        "DELETE FROM guild_heads",
        "permission denied for table guild_heads",
    );

    // The retention role deletes only through the gate, and no more.
    refused(
        &retention,
        "DELETE FROM audit_entries",
        "audit_entries is append-only",
    );
    refused(
        &retention,
        "UPDATE audit_entries SET actor_id = 'm'",
        "permission denied",
    );
    refused(&retention, "TRUNCATE guild_snapshots", "permission denied");
    refused(
        &retention,
        "DROP TRIGGER guild_heads_forward ON guild_heads",
        "must be owner of",
    );
    ok(&app, &["verify"]);
}

/// Issue 12's tamper matrix with the triggers on, as the application role:
/// the rollback of a head to an earlier seq is refused by the database; a
/// rollback of the version and document at the same seq, an in-place edit of
/// the head, and an entry or a snapshot slipped in past the head are let in
/// (the role must be able to move heads and append) and each is caught by
/// `verify` (exit 6, naming guild, seq and code). So are rows the
/// retention role deletes through the purge gate without a purge entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_role_cannot_roll_back_a_head_or_write_past_it_unseen() {
    let mut cluster = Cluster::new("tamper");
    let db = cluster.database("main");
    let scratch = cluster.database("scratch");
    let app = cluster.url("app", &db);
    let store = guildconf::open(&app, OpenOptions::new().migrate(false))
        .await
        .expect("the application role opens the database");
    let s = ConfigService::new(store);
    for g in 2000..2008 {
        seed_three_versions(&s, g).await;
    }
    assert!(s.verify(None).await.expect("verify").ok);
    // Guild 2004's next write, made for real on a copy: a link that extends
    // the chain in every respect, to be slipped in without moving the head.
    let scratch = cluster.url("app", &scratch);
    ok(&app, &["copy", "--to", &scratch]);
    ok(
        &scratch,
        &["set", "2004", "features.c=true", "--actor", ALICE],
    );
    let next_write = next_write_sql(&Postgres, &scratch, 2004, 4).await;
    refused(
        &app,
        &head_rollback_sql(2000),
        "guildconf: a head may only move forward onto a stored entry",
    );
    let retention = cluster.url("ret", &db);
    let gate = |sql: &str| format!("BEGIN; SET LOCAL guildconf.purge = 'on'; {sql}; COMMIT");
    let mut cases = triggers_on_tamperings(2001, next_write);
    cases.extend([
        (
            "(retention role) the first entry deleted through the purge gate",
            gate("DELETE FROM audit_entries WHERE guild_id = 2006 AND seq = 1"),
            (2006, Some(2), "seq_gap"),
        ),
        (
            "(retention role) the last entry deleted through the purge gate",
            gate("DELETE FROM audit_entries WHERE guild_id = 2007 AND seq = 3"),
            (2007, Some(2), "head"),
        ),
    ]);
    let mut expected = Vec::new();
    for (what, sql, (g, seq, code)) in &cases {
        let role = if what.starts_with("(retention role)") {
            &retention
        } else {
            &app
        };
        let out = psql(role, sql);
        assert!(
            out.status.success(),
            "{what}: the role may run it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        expected.push((*g, *seq, (*code).to_owned(), *what));
    }
    let verify = guildconf(&app, &["--no-migrate", "--json", "verify"]);
    assert_eq!(verify.status.code(), Some(6), "{verify:?}");
    let report: Value = serde_json::from_slice(&verify.stdout).expect("a JSON report");
    let found = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            let g = &p["guild_id"];
            let g = g
                .as_u64()
                .or_else(|| g.as_str().and_then(|t| t.parse().ok()))
                .expect("a guild");
            (
                g,
                p["seq"].as_u64(),
                p["problem"].as_str().expect("a code").to_owned(),
            )
        })
        .collect();
    assert_found_exactly(found, &expected);
    drop(s);
    drop(cluster);
}

/// A write blocked by a foreign lock on its guild's head fails with exit 1
/// and a message naming the lock timeout and its value, within about that
/// time; a statement held up past the statement timeout (here: waiting for a
/// table lock with the lock timeout off) names the statement timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_behind_a_foreign_lock_fails_naming_the_timeout() {
    use sqlx::{Connection, Executor};
    let db = TestDb::new(&Postgres, "pg_lock_timeout").await;
    let url = db.url().to_owned();
    assert!(guildconf(&url, &["create", GUILD, "--actor", ALICE])
        .status
        .success());
    let mut holder = sqlx::PgConnection::connect(&url).await.expect("connects");
    holder
        .execute(
            format!("BEGIN; SELECT 1 FROM guild_heads WHERE guild_id = {GUILD} FOR UPDATE")
                .as_str(),
        )
        .await
        .expect("the foreign lock is taken");
    let set = |flags: &[&str]| {
        let started = Instant::now();
        let out = guildconf(
            &url,
            &[
                flags,
                &["--json", "set", GUILD, "features.a=true", "--actor", ALICE],
            ]
            .concat(),
        );
        (out, started.elapsed())
    };
    let (out, _) = set(&["--lock-timeout", "5x"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a bad duration is invalid input: {out:?}"
    );
    let (out, took) = set(&["--lock-timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let error: Value = serde_json::from_slice(&out.stderr).expect("one JSON error");
    let message = error["message"].as_str().expect("a message");
    assert!(message.contains("lock timeout (300ms)"), "{message}");
    // Bounded, not hanging: far below the default timeouts it replaced.
    assert!(took < Duration::from_secs(20), "took {took:?}");

    holder.execute("ROLLBACK").await.expect("released");
    holder
        .execute("BEGIN; LOCK TABLE guild_heads IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("the table lock is taken");
    let (out, _) = set(&["--lock-timeout", "0", "--statement-timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let error: Value = serde_json::from_slice(&out.stderr).expect("one JSON error");
    let message = error["message"].as_str().expect("a message");
    assert!(message.contains("statement timeout (1s)"), "{message}");
    holder.execute("ROLLBACK").await.expect("released");
    drop(holder);
    let show = guildconf(&url, &["show", GUILD, "--path", "features"]);
    assert!(show.status.success());
    assert!(
        !String::from_utf8_lossy(&show.stdout).contains("\"a\""),
        "neither refused write landed"
    );
}

/// The token table as the application role, through `psql` as an attacker
/// holding that role would use it: it may add a token, read tokens and
/// revoke one, and nothing else. No column but `revoked_at` may be updated
/// (the column grant), no row deleted or truncated, and a revocation is
/// neither undone nor repeated (the table's trigger, which also binds the
/// owner).
#[test]
fn the_application_role_may_only_add_read_and_revoke_tokens() {
    let mut cluster = Cluster::new("tokens");
    let db = cluster.database("main");
    let app = cluster.url("app", &db);
    let owner = cluster.url("owner", &db);
    let id = "00112233aabbccdd";
    let hash = "ab".repeat(32);
    let row = || {
        value(
            &app,
            &format!(
                "SELECT concat_ws('|', id, secret_sha256, role, guilds, label, human_id, \
                 created_at, revoked_at) FROM api_tokens WHERE id = '{id}'"
            ),
        )
    };
    let out = psql(
        &app,
        &format!(
            "INSERT INTO api_tokens (id, secret_sha256, role, guilds, label, human_id, created_at) \
             VALUES ('{id}', '{hash}', 'viewer', '[\"{GUILD}\"]', 'dashboard', NULL, \
             '2026-01-01T00:00:00.000000Z')"
        ),
    );
    assert!(out.status.success(), "the role adds a token: {out:?}");
    let stored = row();
    assert!(stored.contains("viewer"), "{stored}");

    for (column, value) in [
        ("role", "'editor'"),
        ("guilds", "'[]'"),
        ("secret_sha256", &format!("'{}'", "cd".repeat(32))),
        ("id", "'ffffffffffffffff'"),
        ("label", "'someone else'"),
        ("human_id", &format!("'{ALICE}'")),
        ("created_at", "'2020-01-01T00:00:00.000000Z'"),
    ] {
        refused(
            &app,
            &format!("UPDATE api_tokens SET {column} = {value}"),
            "permission denied for table api_tokens",
        );
    }
    for sql in ["DELETE FROM api_tokens", "TRUNCATE api_tokens"] {
        refused(&app, sql, "permission denied for table api_tokens");
    }
    assert_eq!(
        row(),
        stored,
        "nothing the role was refused changed the row"
    );

    let revoke = |at: &str| format!("UPDATE api_tokens SET revoked_at = {at} WHERE id = '{id}'");
    let out = psql(&app, &revoke("'2026-01-02T00:00:00.000000Z'"));
    assert!(out.status.success(), "the role revokes a token: {out:?}");
    let revoked = row();
    assert!(
        revoked.ends_with("2026-01-02T00:00:00.000000Z"),
        "{revoked}"
    );
    refused(
        &app,
        &revoke("NULL"),
        "guildconf: a token may only be revoked, once",
    );
    refused(
        &app,
        &revoke("'2026-01-03T00:00:00.000000Z'"),
        "guildconf: a token may only be revoked, once",
    );
    // The trigger holds for the owner too, who has every table right.
    refused(
        &owner,
        "UPDATE api_tokens SET role = 'editor'",
        "guildconf: a token may only be revoked, once",
    );
    refused(
        &owner,
        "DELETE FROM api_tokens",
        "guildconf: api_tokens keeps every token",
    );
    refused(
        &owner,
        "TRUNCATE api_tokens",
        "guildconf: api_tokens keeps every token",
    );
    assert_eq!(row(), revoked, "the revoked token is as it was revoked");
    drop(cluster);
}
