//! Invalid input: exit 3, a message naming the path, nothing stored.

use guildconf_tests::{Backend, TestDb};
use serde_json::{json, Value};

use super::{assert_invalid, gc, gcw, path_str, show_doc, totals, write_file, G};

/// A guild the invalid writes try to create; it never exists.
const FRESH: &str = "777";

/// G with two entries, and what the database held before the invalid runs.
struct Baseline {
    db: TestDb,
    totals: Vec<Vec<String>>,
    doc: Value,
}

impl Baseline {
    async fn new(backend: Backend, name: &str) -> Self {
        let db = TestDb::new(backend, name).await;
        gcw(
            &db,
            &["create", G, "--set", "onboarding.welcome_message=base"],
        )
        .ok();
        gcw(&db, &["set", G, "features.beta=true"]).ok();
        let totals = totals(&db).await;
        let doc = show_doc(&db, G, &[]);
        Self { db, totals, doc }
    }

    /// Nothing was stored; the fresh guild does not exist.
    async fn assert_unchanged(&self) {
        let db = &self.db;
        assert_eq!(totals(db).await, self.totals);
        assert_eq!(show_doc(db, G, &[]), self.doc);
        assert_eq!(db.count("guild_heads", FRESH).await, 0);
        assert_eq!(db.count("audit_entries", FRESH).await, 0);
        assert_eq!(
            gc(db, &["show", FRESH]).code(5).error()["error"],
            "not_found"
        );
    }
}

async fn bad_guild_ids_are_invalid(backend: Backend, name: &str) {
    let base = Baseline::new(backend, name).await;
    let db = &base.db;
    for id in ["abc", "0", "9223372036854775808", "12.5", ""] {
        assert_invalid(&gcw(db, &["create", id]), "/guild_id");
        assert_invalid(&gcw(db, &["set", id, "features.a=true"]), "/guild_id");
        assert_invalid(&gc(db, &["show", id]), "/guild_id");
    }
    base.assert_unchanged().await;
}

async fn bad_values_are_invalid_by_set_and_by_create(backend: Backend, name: &str) {
    let base = Baseline::new(backend, name).await;
    let db = &base.db;
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
        assert_invalid(&gcw(db, &args), path);
        let mut args = vec!["create", FRESH];
        for s in sets {
            args.extend(["--set", s]);
        }
        assert_invalid(&gcw(db, &args), path);
    }
    base.assert_unchanged().await;
}

async fn bad_actors_and_numbers_are_invalid(backend: Backend, name: &str) {
    let base = Baseline::new(backend, name).await;
    let db = &base.db;
    assert_invalid(&gc(db, &["create", FRESH, "--actor", "abc"]), "/actor");
    assert_invalid(
        &gc(
            db,
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
    assert_invalid(&gc(db, &["history", G, "--limit", "1001"]), "/limit");
    assert_invalid(&gcw(db, &["revert", G, "--to", "x"]), "/to");
    assert_invalid(
        &gcw(db, &["set", G, "--expect-version", "x", "features.a=true"]),
        "/expect_version",
    );
    base.assert_unchanged().await;
}

async fn bad_files_are_invalid(backend: Backend, name: &str) {
    let base = Baseline::new(backend, name).await;
    let db = &base.db;
    let dir = tempfile::tempdir().expect("tempdir");
    // Files: not JSON, over 64 KiB, U+0000.
    let not_json = write_file(dir.path(), "bad.json", "{\"onboarding\": ");
    let mut roles = serde_json::Map::new();
    for i in 0..2000 {
        roles.insert(
            format!("role_{i:04}_{}", "k".repeat(50)),
            json!(format!("{}", 100_000_000_000_000_000u64 + i)),
        );
    }
    let mut big_doc = base.doc.clone();
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
        assert_invalid(&gcw(db, &["apply", G, "--file", path_str(file)]), path);
        assert_invalid(&gcw(db, &["create", FRESH, "--file", path_str(file)]), path);
    }
    base.assert_unchanged().await;
}

async fn bad_cursors_and_times_are_invalid(backend: Backend, name: &str) {
    let base = Baseline::new(backend, name).await;
    let db = &base.db;
    assert_invalid(&gc(db, &["history", G, "--cursor", "garbage"]), "/cursor");
    let page = gc(db, &["history", G, "--limit", "1"]).ok().json();
    let cursor = page["next_cursor"]
        .as_str()
        .expect("two entries, one per page: a next cursor")
        .to_owned();
    gc(db, &["history", G, "--limit", "1", "--cursor", &cursor]).ok();
    assert_invalid(
        &gc(
            db,
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
        &gc(db, &["history", "778", "--limit", "1", "--cursor", &cursor]),
        "/cursor",
    );
    for bad in ["yesterday", "2026-01-01T00:00:00", "2026-02-30T00:00:00Z"] {
        assert_invalid(&gc(db, &["history", G, "--since", bad]), "/since");
        assert_invalid(&gc(db, &["history", G, "--until", bad]), "/until");
        assert_invalid(&gc(db, &["show", G, "--at", bad]), "/at");
        assert_invalid(&gc(db, &["export", "--since", bad]), "/since");
    }
    base.assert_unchanged().await;
}

async fn values_at_the_limits_are_allowed(backend: Backend, name: &str) {
    let base = Baseline::new(backend, name).await;
    let db = &base.db;
    // The limits themselves are allowed: 2000 scalar values, a snowflake
    // beyond 2^53 given as a bare integer.
    let ok_len = format!("onboarding.welcome_message={}", "é".repeat(2000));
    let r = gcw(
        db,
        &["set", G, &ok_len, "role_mapping.admin=9007199254740993"],
    )
    .ok()
    .json();
    assert_eq!(r["outcome"], json!("updated"));
    let now = show_doc(db, G, &[]);
    assert_eq!(now["role_mapping"]["admin"], json!("9007199254740993"));
    assert_eq!(
        now["onboarding"]["welcome_message"]
            .as_str()
            .map(|s| s.chars().count()),
        Some(2000)
    );
}

guildconf_tests::contract! {
    bad_guild_ids_are_invalid,
    bad_values_are_invalid_by_set_and_by_create,
    bad_actors_and_numbers_are_invalid,
    bad_files_are_invalid,
    bad_cursors_and_times_are_invalid,
    values_at_the_limits_are_allowed,
}
