//! `guildconf token create | list | revoke` (docs/CLI.md): the secret is
//! printed once and listed never; creating and revoking are events in the
//! chain of every named guild; exit codes 3 (bad role, label, guild, human
//! id, id), 4 (already revoked) and 5 (unknown id); bad input stores nothing.

use guildconf_tests::{Backend, TestDb};
use serde_json::{json, Value};

use super::{assert_invalid, gc, gc_plain, gcw, history, totals, G};

/// A second guild the token names, which has no config.
const G2: &str = "223456789012345678";

/// `token create --role editor --guild G --guild G2 --label dashboard`.
fn create_editor(db: &TestDb) -> Value {
    gcw(
        db,
        &[
            "token",
            "create",
            "--role",
            "editor",
            "--guild",
            G2,
            "--guild",
            G,
            "--label",
            "dashboard",
        ],
    )
    .ok()
    .json()
}

/// The token rows as stored, every column as text.
async fn token_rows(db: &TestDb) -> Vec<Vec<String>> {
    db.rows(
        "SELECT id, secret_sha256, role, guilds, label, COALESCE(human_id, ''), created_at, \
         COALESCE(revoked_at, '') FROM api_tokens ORDER BY id",
    )
    .await
}

async fn tokens_are_created_listed_and_revoked(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    gcw(&db, &["create", G]).ok();
    let created = create_editor(&db);
    let secret = created["token"].as_str().expect("the secret").to_owned();
    assert!(
        secret.starts_with("gct_") && secret.len() == 47,
        "{created}"
    );
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        created,
        json!({"token": secret, "id": id, "role": "editor", "guilds": [G, G2],
               "label": "dashboard", "human_id": null, "created_at": created["created_at"]})
    );
    assert!(created["created_at"].is_string());

    let listed = gc(&db, &["token", "list"]).ok();
    assert!(
        !listed.all_output().contains(&secret[4..]),
        "list shows no secret"
    );
    assert_eq!(
        listed.json(),
        json!({"tokens": [{"id": id, "role": "editor", "guilds": [G, G2], "label": "dashboard",
                           "human_id": null, "created_at": created["created_at"],
                           "revoked_at": null}]})
    );
    let people = gc_plain(&db, &["token", "list"]).ok().stdout;
    assert!(people.contains(&id) && people.contains("editor") && !people.contains(&secret[4..]));

    // For people, the secret is printed once, on a line of its own.
    let plain = gc_plain(
        &db,
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--label",
            "reader",
            "--actor",
            super::ACTOR,
        ],
    )
    .ok();
    let shown: Vec<&str> = plain
        .stdout
        .lines()
        .filter(|l| l.starts_with("gct_"))
        .collect();
    assert_eq!(shown.len(), 1, "{}", plain.stdout);
    assert!(plain.stderr.contains("shown once"));

    for guild in [G, G2] {
        let events = history(&db, &[guild, "--family", "token"]);
        assert_eq!(events.len(), 1, "guild {guild}");
        assert_eq!(events[0]["operation"], json!("token.created"));
        assert_eq!(events[0]["context"], json!({"source": "cli"}));
        assert_eq!(
            events[0]["detail"],
            json!({"outcome": "success",
                   "target": {"type": "token", "id": id, "label": "dashboard"},
                   "data": {"role": "editor", "guilds": [G, G2]}})
        );
    }

    let revoked = gcw(&db, &["token", "revoke", &id]).ok().json();
    assert_eq!(revoked["id"], json!(id));
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let again = gcw(&db, &["token", "revoke", &id]).code(4);
    assert_eq!(again.error()["error"], "conflict");
    let unknown = gcw(&db, &["token", "revoke", "ffffffffffffffff"]).code(5);
    assert_eq!(unknown.error()["error"], "not_found");
    for guild in [G, G2] {
        let events = history(&db, &[guild, "--family", "token"]);
        assert_eq!(events[0]["operation"], json!("token.revoked"), "{guild}");
    }
    let listed = gc(&db, &["token", "list"]).ok().json();
    let rows = listed["tokens"].as_array().expect("tokens");
    assert_eq!(rows.len(), 2, "revoked tokens are listed too");
    assert!(rows
        .iter()
        .any(|t| t["id"] == json!(id) && t["revoked_at"].is_string()));
    gc(&db, &["verify"]).ok();
}

async fn bad_token_input_exits_3_and_stores_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    gcw(&db, &["create", G]).ok();
    let before = (totals(&db).await, token_rows(&db).await);
    let many: Vec<String> = (1..=101).map(|n| (1_000_000 + n).to_string()).collect();
    let mut too_many = vec!["token", "create", "--role", "viewer", "--label", "x"];
    for g in &many {
        too_many.extend(["--guild", g.as_str()]);
    }
    let base = |extra: &[&'static str]| {
        let mut args = vec!["token", "create", "--guild", G];
        args.extend(extra);
        args
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (base(&["--role", "boss", "--label", "x"]), "/role"),
        (base(&["--role", "viewer", "--label", ""]), "/label"),
        (
            base(&["--role", "viewer", "--label", "a\u{1b}[2Jb"]),
            "/label",
        ),
        (
            base(&["--role", "viewer", "--label", "x", "--human-id", "bob"]),
            "/human_id",
        ),
        (
            vec![
                "token", "create", "--role", "viewer", "--label", "x", "--guild", "abc",
            ],
            "/guild_id",
        ),
        (too_many, "/guilds"),
        (
            base(&["--role", "viewer", "--label", "x", "--request-id", "r1"]),
            "/request_id",
        ),
        (vec!["token", "revoke", "NOT-AN-ID"], "/id"),
        // Token events are guildconf's own: `event` may not forge one.
        (
            vec![
                "event",
                G,
                "token.created",
                "--outcome",
                "success",
                "--target-type",
                "token",
                "--target-id",
                "00112233aabbccdd",
                "--data",
                "role=editor",
                "--data",
                "guilds=[]",
            ],
            "/action",
        ),
    ];
    for (args, path) in cases {
        assert_invalid(&gcw(&db, &args), path);
    }
    // A missing --label or --role is usage (2).
    let usage = gcw(&db, &["token", "create", "--role", "viewer"]).code(2);
    assert_eq!(usage.error()["error"], "usage");
    assert_eq!((totals(&db).await, token_rows(&db).await), before);
}

guildconf_tests::contract! {
    tokens_are_created_listed_and_revoked,
    bad_token_input_exits_3_and_stores_nothing,
}
