//! Idempotency (`--request-id`) and parallel writers.

use std::process::{Command, Stdio};

use guildconf_tests::{guildconf_bin, Backend, TestDb};
use serde_json::{json, Value};

use super::{gc, gc_plain, gcw, show_doc, totals, ACTOR, G};

/// The request id of these tests, as its two arguments.
const REQ: [&str; 2] = ["--request-id", "req-1"];

/// G at version 3, then version 4 written with [`REQ`]: its result.
fn first_request(db: &TestDb) -> Value {
    gcw(db, &["create", G]).ok();
    gcw(db, &["set", G, "features.a=true"]).ok();
    gcw(db, &["set", G, "features.b=true"]).ok();
    gcw(db, &["set", G, "features.c=true", REQ[0], REQ[1]])
        .ok()
        .json()
}

/// What a replay must repeat of the first result.
fn core(v: &Value) -> (Value, Value, Value, Value) {
    (
        v["guild_id"].clone(),
        v["version"].clone(),
        v["outcome"].clone(),
        v["entry_hash"].clone(),
    )
}

async fn a_request_id_replays_the_first_result(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    // Idempotency: the same request returns the original result.
    let first = first_request(&db);
    assert_eq!(first["outcome"], json!("updated"));
    assert_eq!(first["version"], json!(4));
    assert_eq!(db.count("audit_entries", G).await, 4);
    let stored_req = db
        .rows(&format!(
            "SELECT request_id FROM audit_entries WHERE guild_id = {G} AND seq = 4"
        ))
        .await;
    assert_eq!(stored_req, vec![vec!["req-1".to_owned()]]);
    let replay = gcw(&db, &["set", G, "features.c=true", REQ[0], REQ[1]])
        .ok()
        .json();
    assert_eq!(core(&replay), core(&first));
    assert_eq!(db.count("audit_entries", G).await, 4);
    // Still the original after the guild moved on, and before any
    // expected-version check.
    gcw(&db, &["set", G, "features.d=true"]).ok();
    let before = totals(&db).await;
    let replay = gcw(&db, &["set", G, "features.c=true", REQ[0], REQ[1]])
        .ok()
        .json();
    assert_eq!(core(&replay), core(&first));
    let replay = gcw(
        &db,
        &[
            "set",
            G,
            "features.c=true",
            REQ[0],
            REQ[1],
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
}

async fn a_reused_request_id_conflicts(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    first_request(&db);
    gcw(&db, &["set", G, "features.d=true"]).ok();
    let before = totals(&db).await;
    // The same id with another change, or by another actor: conflict.
    let r = gcw(&db, &["set", G, "features.c=false", REQ[0], REQ[1]]).code(4);
    assert_eq!(r.error()["error"], json!("conflict"));
    let r = gc(
        &db,
        &[
            "set",
            G,
            "features.c=true",
            REQ[0],
            REQ[1],
            "--actor",
            "1234",
        ],
    )
    .code(4);
    assert_eq!(r.error()["error"], json!("conflict"));
    let r = gcw(&db, &["delete", G, REQ[0], REQ[1]]).code(4);
    assert_eq!(r.error()["error"], json!("conflict"));
    assert_eq!(
        totals(&db).await,
        before,
        "a reused request id writes nothing"
    );
}

async fn request_ids_are_per_guild(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let other = "4242";
    gcw(&db, &["create", other]).ok();
    first_request(&db);
    let r = gcw(&db, &["set", other, "features.c=true", REQ[0], REQ[1]])
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
            REQ[0],
            REQ[1],
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

async fn parallel_writers_lose_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    gcw(&db, &["create", G]).ok();
    // Parallel writers without --expect-version: none is lost.
    let before = db.count("audit_entries", G).await;
    let children: Vec<_> = (0..4)
        .map(|i| {
            Command::new(guildconf_bin())
                .env_remove("RUST_LOG")
                .args(["--database-url", db.url(), "--json", "set", G])
                .arg(format!("features.par_{i}=true"))
                .args(["--actor", ACTOR])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
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
}

guildconf_tests::contract! {
    a_request_id_replays_the_first_result,
    a_reused_request_id_conflicts,
    request_ids_are_per_guild,
    parallel_writers_lose_nothing,
}
