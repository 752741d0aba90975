//! The reads of the story's four versions: `show` at a version, a path or a
//! time, `diff` and `list`.

use guildconf_tests::{Backend, TestDb};
use serde_json::json;

use super::{four_versions, gc, gc_plain, history, occurred_at, shift, ACTOR, G};

async fn show_gives_a_version_s_document_or_one_field(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let v = four_versions(&db, dir.path());
    // show --version N: exactly the document of version N.
    for (version, doc) in [(1, &v.doc1), (2, &v.doc2), (3, &v.doc3), (4, &v.doc1)] {
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
}

async fn show_at_a_time_gives_the_version_current_then(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let v = four_versions(&db, dir.path());
    // show --at T: the highest version with occurred_at <= T.
    let entries = history(&db, &[G]);
    let (t1, t2, t3) = (
        occurred_at(&entries, 1),
        occurred_at(&entries, 2),
        occurred_at(&entries, 3),
    );
    let at = |t: &str| gc(&db, &["show", G, "--at", t]);
    let shown = at(&t2).ok().json();
    assert_eq!(
        (&shown["version"], &shown["document"]),
        (&json!(2), &v.doc2)
    );
    let shown = at(&shift(&t3, -1)).ok().json();
    assert_eq!(
        (&shown["version"], &shown["document"]),
        (&json!(2), &v.doc2),
        "1 µs before version 3"
    );
    let shown = at(&t3).ok().json();
    assert_eq!(
        (&shown["version"], &shown["document"]),
        (&json!(3), &v.doc3)
    );
    // The same instant written with another offset.
    let t3_plus2 = chrono::DateTime::parse_from_rfc3339(&t3)
        .expect("rfc3339")
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).expect("offset"))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let shown = at(&t3_plus2).ok().json();
    assert_eq!(shown["version"], json!(3), "{t3_plus2}");
    // Before the guild existed: not found.
    let before = at(&shift(&t1, -1)).code(5);
    assert_eq!(before.error()["error"], json!("not_found"));
}

async fn diff_lists_the_changes_between_two_versions_by_path(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    four_versions(&db, dir.path());
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
}

async fn list_gives_each_guild_s_version_time_and_actor(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    four_versions(&db, dir.path());
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
    assert_eq!(g["updated_at"], json!(occurred_at(&history(&db, &[G]), 4)));
    assert_eq!(g["actor"]["id"], json!(ACTOR));
    let o = find(other);
    assert_eq!(o["version"], json!(1));
    assert_eq!(o["actor"]["id"], json!("bot-1"));
    assert_eq!(o["actor"]["kind"], json!("system"));
    assert!(o["updated_at"].is_string());
    gc_plain(&db, &["list"]).ok();
}

guildconf_tests::contract! {
    show_gives_a_version_s_document_or_one_field,
    show_at_a_time_gives_the_version_current_then,
    diff_lists_the_changes_between_two_versions_by_path,
    list_gives_each_guild_s_version_time_and_actor,
}
