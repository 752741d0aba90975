//! Events in the chain (docs/FORMAT.md, "Events"): an event is an entry of
//! its guild, chained with its config writes, verified, exported to the same
//! bytes from either backend, imported and copied; a guild with only events
//! has no config; bad events store nothing; secret data never reaches a
//! stored or exported byte.

use std::io::Cursor;

use guildconf::{
    ActionRegistry, ActionSpec, At, ConfigService, ConfigStore, DataType, Error, Event,
    EventOutcome, ExportRequest, FieldEdit, GuildId, Outcome, Target, WriteMeta,
};
use guildconf_tests::{Backend, TestDb, BACKENDS};
use serde_json::{json, Value};

/// The guild of the story; the events-only guild.
const G: u64 = 5;
const QUIET: u64 = 9;
/// A secret that must never be stored in an entry or exported.
const SECRET: &str = "HUNTER2";

fn gid(n: u64) -> GuildId {
    GuildId::from_u64(n).expect("valid")
}

fn alice() -> WriteMeta {
    WriteMeta::new(
        guildconf::Actor::new(
            "80351110224678912",
            guildconf::ActorKind::Human,
            Some("alice"),
        )
        .expect("valid"),
    )
}

/// The service a bot would build: the shipped keys plus one of its own.
async fn service(db: &TestDb) -> ConfigService {
    let mut actions = ActionRegistry::shipped();
    actions
        .register(
            ActionSpec::new("economy.bonus_paid", "A daily bonus was paid.")
                .expect("valid")
                .outcomes(&[EventOutcome::Success])
                .required("amount", DataType::Integer),
        )
        .expect("a new key");
    db.service().await.with_actions(actions)
}

fn member(id: &str) -> Target {
    Target::new("member", id).with_label("Bob")
}

/// Events and config writes interleaved, on a guild that starts without a
/// config, and a guild that only ever records events.
async fn story(s: &ConfigService) {
    let m = alice();
    let denied = Event::new("permission.denied", EventOutcome::Blocked, member("42"))
        .with("permission", "manage_guild");
    let first = s
        .record(gid(G), &denied, &m)
        .await
        .expect("an event on no config");
    assert_eq!((first.version, first.outcome), (0, Outcome::Recorded));
    s.create(gid(G), json!({"features": {"a": true}}), &m)
        .await
        .expect("create continues the chain");
    let role = Event::new("member.role_added", EventOutcome::Success, member("42"))
        // A snowflake past 2^53 given as a bare integer, as the CLI parses it.
        .with("role_id", 613_425_648_685_547_601_u64);
    s.record(gid(G), &role, &m).await.expect("role added");
    s.update(
        gid(G),
        FieldEdit::new().set("features.b".parse().expect("path"), true),
        &m,
    )
    .await
    .expect("update");
    let backup = Event::new(
        "config.backup_created",
        EventOutcome::Success,
        Target::new("guild", G.to_string()),
    )
    .with("destination", format!("s3://id:{SECRET}@bucket"))
    .with("bytes", 512);
    s.record(gid(G), &backup, &m).await.expect("backup");
    let bonus =
        Event::new("economy.bonus_paid", EventOutcome::Success, member("7")).with("amount", 100);
    s.record(gid(G), &bonus, &m).await.expect("a bot's own key");
    s.delete(gid(G), &m).await.expect("delete");
    let refused = Event::new(
        "config.denied",
        EventOutcome::Blocked,
        Target::new("member", "42"),
    )
    .with("paths", json!(["/features/a"]));
    s.record(gid(G), &refused, &m)
        .await
        .expect("after a delete");
    s.create(gid(G), json!({}), &m).await.expect("re-create");
    for _ in 0..2 {
        s.record(gid(QUIET), &denied, &m)
            .await
            .expect("events only");
    }
}

async fn export(store: std::sync::Arc<dyn ConfigStore>) -> Vec<u8> {
    let mut out = Vec::new();
    ConfigService::new(store)
        .export(&ExportRequest::default(), &mut out)
        .await
        .expect("export");
    out
}

async fn events_chain_with_config_writes_and_verify(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = service(&db).await;
    story(&s).await;
    let entries: Vec<Value> = String::from_utf8(export(db.store().await).await)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .filter(|e: &Value| e["guild_id"] == json!(G.to_string()))
        .collect();
    let shape: Vec<(String, u64, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().expect("a string").to_owned(),
                e["config_version"].as_u64().expect("a version"),
                e["snapshot_sha256"].is_null(),
            )
        })
        .collect();
    let expected = [
        ("permission.denied", 0, true),
        ("create", 1, false),
        ("member.role_added", 1, false),
        ("update", 2, false),
        ("config.backup_created", 2, false),
        ("economy.bonus_paid", 2, false),
        ("delete", 2, true),
        ("config.denied", 2, true),
        ("create", 3, false),
    ];
    assert_eq!(
        shape,
        expected.map(|(o, v, n)| (o.to_owned(), v, n)).to_vec()
    );
    // An event names the document current when it was recorded.
    assert_eq!(entries[2]["snapshot_sha256"], entries[1]["snapshot_sha256"]);
    assert_eq!(entries[4]["snapshot_sha256"], entries[3]["snapshot_sha256"]);
    for e in &entries {
        if e["operation"].as_str().is_some_and(|o| o.contains('.')) {
            assert_eq!(e["changes"], json!([]));
            let detail = e["detail"].as_object().expect("an object");
            let keys: Vec<&str> = detail.keys().map(String::as_str).collect();
            assert_eq!(keys, ["data", "outcome", "target"]);
            assert_eq!(
                e["detail"]["target"]
                    .as_object()
                    .map(|t| t.keys().cloned().collect::<Vec<_>>()),
                Some(vec!["id".to_owned(), "label".to_owned(), "type".to_owned()])
            );
        } else {
            assert_eq!(
                e["detail"].get("outcome"),
                None,
                "config bodies gain nothing"
            );
        }
    }
    assert_eq!(
        entries[2]["detail"]["data"]["role_id"],
        json!("613425648685547601")
    );
    assert_eq!(
        entries[4]["detail"]["data"],
        json!({"bytes": 512, "destination": "[redacted]"})
    );
    assert!(s.verify(None).await.expect("verify").ok);

    // The events-only guild has no config, whichever way it is read.
    assert!(matches!(
        s.get(gid(QUIET), At::Now).await,
        Err(Error::NotFound(m)) if m.contains("has no config")
    ));
    let default = s.get_or_default(gid(QUIET)).await.expect("defaults");
    assert_eq!(default.version, 0);
    assert_eq!(default.document, s.schema().defaults());
    let listed: Vec<GuildId> = s
        .list()
        .await
        .expect("list")
        .iter()
        .map(|g| g.guild_id)
        .collect();
    assert_eq!(listed, [gid(G)]);
    assert!(matches!(
        s.update(gid(QUIET), FieldEdit::new().set("features.a".parse().expect("p"), true), &alice())
            .await,
        Err(Error::NotFound(m)) if m.contains("has no config")
    ));
    // An as-of read skips events: after the delete, the config stays deleted
    // even though the last entry then is an event.
    let after_denied = entries[7]["occurred_at"].as_str().expect("a time");
    assert!(matches!(
        s.get(
            gid(G),
            At::Time(guildconf::Timestamp::parse_stored(after_denied).expect("a time"))
        )
        .await,
        Err(Error::NotFound(_))
    ));

    // Secret data is in no stored byte and no history line.
    let dump = format!("{:?}", db.dump(&G.to_string()).await);
    assert!(!dump.contains(SECRET), "a stored row holds the secret");
    let page = s
        .history(&guildconf::HistoryRequest {
            guild_id: Some(gid(G)),
            ..Default::default()
        })
        .await
        .expect("history");
    assert!(!format!("{page:?}").contains(SECRET));
}

async fn bad_events_store_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = service(&db).await;
    s.create(gid(G), json!({}), &alice()).await.expect("create");
    let before = db.dump(&G.to_string()).await;
    let bob = member("42");
    let bad = [
        Event::new("member.teleported", EventOutcome::Success, bob.clone()),
        Event::new("member.role_added", EventOutcome::Success, bob.clone())
            .with("role_id", "not a snowflake"),
        Event::new("member.role_added", EventOutcome::Success, bob.clone())
            .with("role_id", "1")
            .with("colour", "red"),
        Event::new("permission.denied", EventOutcome::Success, bob.clone())
            .with("permission", "ban"),
        Event::new(
            "member.role_added",
            EventOutcome::Success,
            Target::new("channel", "1"),
        )
        .with("role_id", "1"),
    ];
    for event in &bad {
        for guild in [G, QUIET] {
            match s.record(gid(guild), event, &alice()).await {
                Err(Error::Invalid(_)) => {}
                other => panic!("{event:?} gave {other:?}"),
            }
        }
    }
    assert_eq!(db.dump(&G.to_string()).await, before);
    assert_eq!(db.count("audit_entries", &QUIET.to_string()).await, 0);
    assert_eq!(db.count("guild_heads", &QUIET.to_string()).await, 0);
}

/// A purge keeps the snapshots that the events it keeps name, so the
/// purged chain still verifies in the database.
async fn a_purge_keeps_what_kept_events_name(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = service(&db).await;
    let m = alice();
    s.create(gid(G), json!({}), &m).await.expect("v1");
    let denied = Event::new("permission.denied", EventOutcome::Blocked, member("42"))
        .with("permission", "ban");
    s.update(
        gid(G),
        FieldEdit::new().set("features.a".parse().expect("p"), true),
        &m,
    )
    .await
    .expect("v2");
    s.record(gid(G), &denied, &m).await.expect("event at v2");
    s.update(
        gid(G),
        FieldEdit::new().set("features.a".parse().expect("p"), false),
        &m,
    )
    .await
    .expect("v3");
    s.update(
        gid(G),
        FieldEdit::new().set("features.b".parse().expect("p"), false),
        &m,
    )
    .await
    .expect("v4");
    // The step clock gives seq n the time 00:00:0(n-1); cut between the
    // v2 update (seq 2) and the event (seq 3).
    let before = guildconf::Timestamp::parse_rfc3339("2026-01-01T00:00:02Z").expect("a time");
    let done = s.purge(before, Some(gid(G)), &m).await.expect("purge");
    assert_eq!(done.len(), 1);
    let report = s.verify(None).await.expect("verify");
    assert!(report.ok, "{report:?}");
    assert!(
        s.get(gid(G), At::Version(2)).await.is_ok(),
        "the event names version 2"
    );
}

guildconf_tests::contract! {
    events_chain_with_config_writes_and_verify,
    bad_events_store_nothing,
    a_purge_keeps_what_kept_events_name,
}

/// The same story exports the same bytes from every backend; each export
/// imports into every other backend, and a copy goes there and back, with
/// every entry hash kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_export_the_same_bytes_everywhere_and_import_and_copy() {
    let mut exports = Vec::new();
    let mut sources = Vec::new();
    for &backend in BACKENDS {
        let db = TestDb::new(backend, &format!("events_src_{}", backend.name())).await;
        story(&service(&db).await).await;
        exports.push(export(db.store().await).await);
        sources.push(db);
    }
    assert!(
        exports.windows(2).all(|w| w[0] == w[1]),
        "every backend exports the same bytes"
    );
    let bytes = &exports[0];
    assert!(!String::from_utf8_lossy(bytes).contains(SECRET));
    for (i, source) in sources.iter().enumerate() {
        for (j, &to) in BACKENDS.iter().enumerate() {
            if i == j {
                continue;
            }
            let dest = TestDb::new(to, &format!("events_imp_{i}_{}", to.name())).await;
            let store = dest.store().await;
            let report =
                guildconf::import(store.as_ref(), || Ok(Cursor::new(bytes.clone())), |_| {})
                    .await
                    .expect("an export with events imports");
            assert_eq!((report.guilds, report.entries), (2, 11));
            assert_eq!(&export(dest.store().await).await, bytes);
            assert!(dest.service().await.verify(None).await.expect("verify").ok);
            let copied = TestDb::new(to, &format!("events_copy_{i}_{}", to.name())).await;
            guildconf::copy(source.store().await, copied.store().await.as_ref(), |_| {})
                .await
                .expect("copy");
            assert_eq!(&export(copied.store().await).await, bytes);
        }
    }
}
