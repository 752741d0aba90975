//! Migrations as an explicit step: `guildconf migrate` brings a database up
//! to date; with `--no-migrate` nothing is changed and a schema older or
//! newer than this build knows (or none) is refused with what to do. Both
//! backends, through the real binary and the sqlite3 and psql shells.

use std::process::{Command, Output};

mod common;
use common::{run_url as run, ALICE};

const GUILD: &str = "123456789012345678";

fn refused_with(out: &Output, words: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(words), "{stderr}");
}

/// The same story on each backend; `tamper` runs plain SQL on the database.
fn story(url: &str, older: &str, newer: &str, tamper: &dyn Fn(&str)) {
    refused_with(
        &run(url, &["--no-migrate", "create", GUILD, "--actor", ALICE]),
        "guildconf migrate",
    );
    let migrated = run(url, &["--json", "migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");
    assert!(
        run(url, &["--no-migrate", "create", GUILD, "--actor", ALICE])
            .status
            .success()
    );
    assert!(run(url, &["--no-migrate", "show", GUILD]).status.success());
    tamper(older);
    refused_with(
        &run(url, &["--no-migrate", "show", GUILD]),
        "guildconf migrate",
    );
    let again = run(url, &["migrate"]);
    assert!(
        again.status.success(),
        "migrate brings it up again: {again:?}"
    );
    assert!(run(url, &["--no-migrate", "show", GUILD]).status.success());
    tamper(newer);
    refused_with(
        &run(url, &["--no-migrate", "show", GUILD]),
        "upgrade guildconf",
    );
}

#[test]
fn sqlite_migrates_on_request_and_refuses_a_schema_it_does_not_know() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("g.db");
    let url = format!("sqlite://{}", path.display());
    let sqlite3 = |sql: &str| {
        let ok = Command::new("/usr/bin/sqlite3")
            .arg(&path)
            .arg(sql)
            .status()
            .expect("the sqlite3 shell runs");
        assert!(ok.success(), "{sql}");
    };
    // Schema version 2 as it was: migration 6's token table, migration 5's
    // event filter indexes, migration 4's signature columns (the one with
    // the check first) and migration 3's chain guards undone.
    let older = "DROP TABLE api_tokens; DROP INDEX audit_entries_guild_family; DROP INDEX audit_entries_guild_outcome; \
                 DROP INDEX audit_entries_guild_target; \
                 ALTER TABLE audit_entries DROP COLUMN sig_value; \
                 ALTER TABLE audit_entries DROP COLUMN sig_key; \
                 ALTER TABLE audit_entries DROP COLUMN sig_alg; \
                 DROP TRIGGER audit_entries_extend_chain; DROP TRIGGER guild_heads_onto_entry; \
                 DROP TRIGGER guild_heads_forward; PRAGMA user_version = 2;";
    story(&url, older, "PRAGMA user_version = 99", &sqlite3);
    // A refused fresh path creates nothing.
    let fresh = dir.path().join("fresh.db");
    run(
        &format!("sqlite://{}", fresh.display()),
        &["--no-migrate", "list"],
    );
    assert!(!fresh.exists());
}

#[test]
fn postgres_migrates_on_request_and_refuses_a_schema_it_does_not_know() {
    let admin = std::env::var("GUILDCONF_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("gct_migrate_cli_{}", std::process::id());
    let psql = |url: &str, sql: &str| {
        let out = Command::new("psql")
            .args([url, "-qX", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("the psql shell runs");
        assert!(
            out.status.success(),
            "{sql}: {out:?} (PostgreSQL must be running)"
        );
    };
    psql(
        &admin,
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    psql(&admin, &format!("CREATE DATABASE {db}"));
    // Dropped when the test ends, passed or failed.
    struct Dropped(String, String);
    impl Drop for Dropped {
        fn drop(&mut self) {
            let _ = Command::new("psql")
                .args([self.0.as_str(), "-qX", "-c"])
                .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.1))
                .output();
        }
    }
    let _dropped = Dropped(admin.clone(), db.clone());
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{db}");
    story(
        &url,
        // The schema before migration 4 as it was: its chain guards undone.
        "DROP TRIGGER audit_entries_extend_chain ON audit_entries; \
         DROP TRIGGER guild_heads_forward ON guild_heads; \
         DROP TRIGGER guild_heads_onto_entry ON guild_heads; \
         DROP FUNCTION guildconf_extend_chain(), guildconf_head_forward(), \
         guildconf_head_onto_entry(); \
         DELETE FROM _sqlx_migrations WHERE version = 4",
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99, 'from the future', true, '\\x00', 0)",
        &|sql| psql(&url, sql),
    );
}
