//! `verify`, and tampering with plain SQL through the database's own shell.

use std::collections::BTreeMap;

use guildconf_tests::{Backend, TestDb};
use serde_json::{json, Value};

use super::{gc, gc_plain, gcw, shell_sql, show_doc};

/// Five guilds of three entries each.
fn five_guilds(db: &TestDb) {
    for g in ["1001", "1002", "1003", "1004", "1005"] {
        gcw(db, &["create", g]).ok();
        gcw(
            db,
            &[
                "set",
                g,
                "onboarding.enabled=true",
                "onboarding.welcome_channel=555",
            ],
        )
        .ok();
        gcw(db, &["set", g, "features.x=true"]).ok();
    }
}

/// Tampers with four of the five guilds, and checks that it took: 1001's
/// body of seq 2, 1002's snapshot of version 2, 1003's head document, and
/// 1004's middle entry removed. 1005 is left alone.
async fn tamper(db: &TestDb) {
    db.drop_triggers().await;
    shell_sql(
        db,
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
    let snapshot = format!(
        "UPDATE guild_snapshots SET document = {} WHERE guild_id = 1002 AND version = 2",
        db.backend
            .set_json_bool_sql("document", &["onboarding", "enabled"], false)
    );
    let head = format!(
        "UPDATE guild_heads SET document = {} WHERE guild_id = 1003",
        db.backend
            .set_json_bool_sql("document", &["features", "x"], false)
    );
    shell_sql(db, &snapshot);
    shell_sql(db, &head);
    assert_eq!(
        show_doc(db, "1002", &["--version", "2"])["onboarding"]["enabled"],
        json!(false),
        "the snapshot was altered"
    );
    assert_eq!(
        show_doc(db, "1003", &[])["features"]["x"],
        json!(false),
        "the head was altered"
    );
    shell_sql(
        db,
        "DELETE FROM audit_entries WHERE guild_id = 1004 AND seq = 2",
    );
    assert_eq!(db.count("audit_entries", "1004").await, 2);
}

async fn verify_passes_every_untouched_chain(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    five_guilds(&db);
    let report = gc(&db, &["verify"]).ok().json();
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["guilds_checked"], json!(5));
    assert_eq!(report["entries_checked"], json!(15));
    assert_eq!(report["problems"], json!([]));
    gc(&db, &["verify", "1001"]).ok();
    gc_plain(&db, &["verify"]).ok();
}

async fn verify_names_the_first_problem_of_each_tampered_guild(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    five_guilds(&db);
    tamper(&db).await;
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
}

async fn verify_of_one_guild_reports_only_that_guild(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    five_guilds(&db);
    tamper(&db).await;
    gc(&db, &["verify", "1005"]).ok();
    let one = gc(&db, &["verify", "1001"]).code(6).json();
    assert_eq!(one["problems"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one["problems"][0]["guild_id"], json!("1001"));
    let plain = gc_plain(&db, &["verify"]).code(6);
    assert!(plain.stdout.contains("1001"), "{}", plain.context());
}

guildconf_tests::contract! {
    verify_passes_every_untouched_chain,
    verify_names_the_first_problem_of_each_tampered_guild,
    verify_of_one_guild_reports_only_that_guild,
}
