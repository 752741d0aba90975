//! Usage (2), not found (5) and conflict (4), and read-only commands that
//! never create a database.

use guildconf_tests::{Backend, TestDb};
use serde_json::json;

use super::{gc, gc_plain, gcw, run_url, show_doc, totals, G};

/// A database that exists (another guild is in it) but has no guild G.
async fn without_g(backend: Backend, name: &str) -> TestDb {
    let db = TestDb::new(backend, name).await;
    gcw(&db, &["create", "4242"]).ok();
    db
}

async fn usage_errors_exit_2(backend: Backend, name: &str) {
    let db = without_g(backend, name).await;
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
}

async fn read_only_commands_never_create_a_database(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = backend.missing_database_url(db.url(), tmp.path(), name);
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
}

async fn a_missing_guild_or_version_is_not_found(backend: Backend, name: &str) {
    let db = without_g(backend, name).await;
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
}

async fn creating_twice_or_a_stale_version_conflicts(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    gcw(&db, &["create", G]).ok();
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
}

guildconf_tests::contract! {
    usage_errors_exit_2,
    read_only_commands_never_create_a_database,
    a_missing_guild_or_version_is_not_found,
    creating_twice_or_a_stale_version_conflicts,
}
