//! Writes and their audit entries: each write is one entry, a write that
//! changes nothing is none, and every entry is complete and chained.

use guildconf_tests::{Backend, TestDb};
use serde_json::{json, Value};

use super::{
    apply_v3, assert_hash, create_v1, four_versions, gc, gc_plain, gcw, history, seqs, set_v2,
    show_doc, ACTOR, BODY_KEYS, G,
};

async fn create_writes_one_entry_of_the_normalised_document(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let (created, doc1) = create_v1(&db);
    assert_eq!(created["guild_id"], json!(G));
    assert_eq!(created["version"], json!(1));
    assert_eq!(created["outcome"], json!("created"));
    assert_hash(&created["entry_hash"]);
    assert_eq!(db.count("audit_entries", G).await, 1);
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
}

async fn set_writes_one_entry(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let (created, _) = create_v1(&db);
    let (set, doc2) = set_v2(&db);
    assert_eq!(set["outcome"], json!("updated"));
    assert_eq!(set["version"], json!(2));
    assert_hash(&set["entry_hash"]);
    assert_ne!(set["entry_hash"], created["entry_hash"]);
    assert_eq!(db.count("audit_entries", G).await, 2);
    assert_eq!(doc2["onboarding"]["enabled"], json!(true));
    assert_eq!(
        doc2["onboarding"]["welcome_channel"],
        json!("555"),
        "a bare integer snowflake is stored as its decimal string"
    );
    assert_eq!(doc2["features"]["beta"], json!(true));
}

async fn a_set_that_changes_nothing_writes_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    create_v1(&db);
    set_v2(&db);
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
}

async fn dry_run_prints_the_changes_and_writes_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    create_v1(&db);
    let (_, doc2) = set_v2(&db);
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
}

async fn apply_writes_the_whole_document_as_one_entry(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    create_v1(&db);
    let (_, doc2) = set_v2(&db);
    let (applied, doc3) = apply_v3(&db, dir.path(), &doc2);
    assert_eq!(applied["outcome"], json!("updated"));
    assert_eq!(applied["version"], json!(3));
    assert_hash(&applied["entry_hash"]);
    assert_eq!(db.count("audit_entries", G).await, 3);
    assert_eq!(show_doc(&db, G, &[]), doc3);
}

async fn revert_makes_an_old_document_current_as_a_new_entry(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let v = four_versions(&db, dir.path());
    let reverted = &v.reverted;
    assert_eq!(reverted["outcome"], json!("reverted"));
    assert_eq!(reverted["version"], json!(4));
    assert_hash(&reverted["entry_hash"]);
    assert_eq!(db.count("audit_entries", G).await, 4);
    assert_eq!(show_doc(&db, G, &[]), v.doc1);
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
}

async fn delete_removes_the_config_and_keeps_its_history(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let v = four_versions(&db, dir.path());
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
    assert_eq!(show_doc(&db, G, &["--version", "3"]), v.doc3);
}

/// The story, then a delete: five entries of every operation but purge.
async fn five_entries(db: &TestDb) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    four_versions(db, dir.path());
    gcw(db, &["delete", G]).ok();
    let entries = history(db, &[G]);
    assert_eq!(seqs(&entries), vec![5, 4, 3, 2, 1]);
    let ops: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["operation"].as_str())
        .collect();
    assert_eq!(ops, vec!["delete", "revert", "update", "update", "create"]);
    entries
}

async fn every_entry_is_complete_and_chained(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    // Every entry: all 15 body keys plus entry_hash, chained.
    let entries = five_entries(&db).await;
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
    }
}

async fn stored_bodies_are_the_entries_without_their_hash(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let entries = five_entries(&db).await;
    let stored = db
        .rows(&format!(
            "SELECT CAST(seq AS TEXT), body, entry_hash FROM audit_entries WHERE guild_id = {G} ORDER BY seq DESC"
        ))
        .await;
    assert_eq!(stored.len(), 5);
    for (e, row) in entries.iter().zip(&stored) {
        // The stored body is exactly the entry without entry_hash.
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
}

async fn create_entry_keeps_label_reason_and_a_diff_from_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    create_v1(&db);
    set_v2(&db);
    let entries = history(&db, &[G]);
    let create = &entries[1];
    assert_eq!(create["actor"]["label"], json!("alice"));
    assert_eq!(create["reason"], json!("initial setup"));
    assert_eq!(
        entries[0]["actor"]["label"],
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
}

async fn recreating_continues_the_same_chain(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let deleted = five_entries(&db).await[0].clone();
    let recreated = gcw(&db, &["create", G]).ok().json();
    assert_eq!(recreated["outcome"], json!("created"));
    let e6 = &history(&db, &[G])[0];
    assert_eq!(e6["seq"], json!(6));
    assert_eq!(e6["prev_hash"], deleted["entry_hash"]);
    assert_eq!(gc(&db, &["verify"]).ok().json()["ok"], json!(true));
}

async fn pointers_name_dotted_keys_and_unset_resets(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let (_, doc1) = create_v1(&db);
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

guildconf_tests::contract! {
    create_writes_one_entry_of_the_normalised_document,
    set_writes_one_entry,
    a_set_that_changes_nothing_writes_nothing,
    dry_run_prints_the_changes_and_writes_nothing,
    apply_writes_the_whole_document_as_one_entry,
    revert_makes_an_old_document_current_as_a_new_entry,
    delete_removes_the_config_and_keeps_its_history,
    every_entry_is_complete_and_chained,
    stored_bodies_are_the_entries_without_their_hash,
    create_entry_keeps_label_reason_and_a_diff_from_nothing,
    recreating_continues_the_same_chain,
    pointers_name_dotted_keys_and_unset_resets,
}
