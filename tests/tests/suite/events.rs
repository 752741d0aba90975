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

pub(crate) fn gid(n: u64) -> GuildId {
    GuildId::from_u64(n).expect("valid")
}

pub(crate) fn alice() -> WriteMeta {
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
    // The chain ends with an event: an import must keep the document the
    // create left (the event changes none).
    s.record(gid(G), &role, &m).await.expect("last");
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
        ("member.role_added", 3, false),
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
        // Well formed, but only guildconf records token events, when a
        // token is created or revoked.
        Event::new(
            "token.created",
            EventOutcome::Success,
            Target::new("token", "00112233aabbccdd"),
        )
        .with("role", "editor")
        .with("guilds", json!([G.to_string()])),
        Event::new(
            "token.revoked",
            EventOutcome::Success,
            Target::new("token", "00112233aabbccdd"),
        )
        .with("role", "editor")
        .with("guilds", json!([G.to_string()])),
        // Nor can anyone record that a token was refused: that would blame
        // a token guildconf never refused.
        Event::new(
            "permission.denied",
            EventOutcome::Blocked,
            Target::new("token", "00112233aabbccdd"),
        )
        .with("permission", "audit.export"),
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
            assert_eq!((report.guilds, report.entries), (2, 12));
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

/// A mixed log on two guilds: config writes and events of several
/// families, outcomes, targets and actors, from a fixed pseudo-random
/// sequence. Returns the exported entries (the in-memory truth).
async fn mixed_log(db: &TestDb) -> Vec<Value> {
    let s = service(db).await;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for guild in [G, QUIET] {
        s.create(gid(guild), json!({}), &alice())
            .await
            .expect("create");
    }
    for i in 0..70 {
        let guild = gid(if next(3) == 0 { QUIET } else { G });
        let actor = [
            "80351110224678912",
            "80351110224678913",
            "80351110224678914",
        ][usize::try_from(next(3)).unwrap_or(0)];
        let m = WriteMeta::new(
            guildconf::Actor::new(actor, guildconf::ActorKind::Human, None).expect("valid"),
        );
        let who = ["1", "2", "3"][usize::try_from(next(3)).unwrap_or(0)];
        let event = match next(6) {
            0 => {
                s.update(
                    guild,
                    FieldEdit::new().set("features.n".parse().expect("p"), i % 2 == 0),
                    &m,
                )
                .await
                .expect("update");
                continue;
            }
            1 => Event::new("permission.denied", EventOutcome::Blocked, member(who))
                .with("permission", "ban"),
            2 => Event::new(
                "member.role_added",
                if next(2) == 0 {
                    EventOutcome::Success
                } else {
                    EventOutcome::Failed
                },
                member(who),
            )
            .with("role_id", "613425648685547601"),
            3 => Event::new(
                "ratelimit.exceeded",
                if next(2) == 0 {
                    EventOutcome::Info
                } else {
                    EventOutcome::Blocked
                },
                Target::new("channel", who),
            ),
            4 => Event::new("economy.bonus_paid", EventOutcome::Success, member(who))
                .with("amount", 5),
            _ => Event::new(
                "config.denied",
                EventOutcome::Blocked,
                Target::new("member", who),
            )
            .with("paths", json!(["/features/n"])),
        };
        s.record(guild, &event, &m).await.expect("record");
    }
    String::from_utf8(export(db.store().await).await)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// An entry's family, outcome and target, computed from its exported body
/// in memory, independently of the SQL expressions.
fn facts(e: &Value) -> (String, String, Option<String>, Option<String>) {
    let op = e["operation"].as_str().expect("a string");
    match op.split_once('.') {
        None => ("config".into(), "success".into(), None, None),
        Some((family, _)) => (
            family.into(),
            e["detail"]["outcome"].as_str().expect("an outcome").into(),
            e["detail"]["target"]["type"].as_str().map(str::to_owned),
            e["detail"]["target"]["id"].as_str().map(str::to_owned),
        ),
    }
}

/// Every combination of the history filters, paginated at random page
/// sizes, returns exactly the entries an in-memory filter of the export
/// selects, newest first.
#[test]
fn every_combination_of_filters_returns_exactly_the_matching_entries() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    for &backend in BACKENDS {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let (_db, s, all) = rt.block_on(async {
            let db = TestDb::new(backend, &format!("events_filters_{}", backend.name())).await;
            let all = mixed_log(&db).await;
            let s = service(&db).await;
            (db, s, all)
        });
        let pick = |options: &'static [&'static str]| {
            proptest::option::of(proptest::sample::select(options))
        };
        let filters = (
            proptest::sample::select(&[G, QUIET][..]),
            pick(&[
                "config",
                "member",
                "permission",
                "ratelimit",
                "economy",
                "nope",
            ]),
            pick(&["success", "failed", "info", "blocked", "partial"]),
            pick(&["member", "channel"]),
            pick(&["1", "2", "3"]),
            pick(&["80351110224678912", "80351110224678913"]),
            pick(&["update", "member.role_added", "config.denied"]),
            1u32..9,
        );
        let mut runner = TestRunner::new(Config {
            cases: 48,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(
                &filters,
                |(guild, family, outcome, target_type, target_id, actor, operation, limit)| {
                    let expected: Vec<u64> = all
                        .iter()
                        .rev()
                        .filter(|e| {
                            let (f, o, tt, ti) = facts(e);
                            e["guild_id"] == json!(guild.to_string())
                                && family.is_none_or(|x| x == f)
                                && outcome.is_none_or(|x| x == o)
                                && target_type.is_none_or(|x| Some(x) == tt.as_deref())
                                && target_id.is_none_or(|x| Some(x) == ti.as_deref())
                                && actor.is_none_or(|x| e["actor"]["id"] == json!(x))
                                && operation.is_none_or(|x| e["operation"] == json!(x))
                        })
                        .map(|e| e["seq"].as_u64().expect("a seq"))
                        .collect();
                    let mut request = guildconf::HistoryRequest {
                        guild_id: Some(gid(guild)),
                        actor_id: actor.map(str::to_owned),
                        operation: operation
                            .map(|o| guildconf::Operation::parse(o).expect("an operation")),
                        filter: guildconf::EntryFilter {
                            family: family.map(str::to_owned),
                            outcome: outcome.map(|o| EventOutcome::parse(o).expect("outcome")),
                            target_type: target_type.map(str::to_owned),
                            target_id: target_id.map(str::to_owned),
                        },
                        limit: Some(limit),
                        ..Default::default()
                    };
                    let mut got = Vec::new();
                    loop {
                        let page = rt
                            .block_on(s.history(&request))
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert!(page.entries.len() <= limit as usize);
                        got.extend(page.entries.iter().map(|e| e.body.seq));
                        match page.next_cursor {
                            Some(c) => request.cursor = Some(c),
                            None => break,
                        }
                    }
                    prop_assert_eq!(got, expected);
                    Ok(())
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", backend.name()));
    }
}

/// `stats` counts what an export of the same database counts, by every key,
/// for one guild or all, within a time window or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_equal_the_counts_computed_from_an_export() {
    use guildconf::{StatsBy, StatsQuery, Timestamp};
    use std::collections::BTreeMap;
    for &backend in BACKENDS {
        let db = TestDb::new(backend, &format!("events_stats_{}", backend.name())).await;
        let all = mixed_log(&db).await;
        let s = service(&db).await;
        let mut times: Vec<&str> = all
            .iter()
            .map(|e| e["occurred_at"].as_str().expect("a time"))
            .collect();
        times.sort_unstable();
        let (since, until) = (times[20], times[50]);
        for by in [
            StatsBy::Operation,
            StatsBy::Family,
            StatsBy::Actor,
            StatsBy::Outcome,
            StatsBy::Day,
        ] {
            for guild in [None, Some(G)] {
                for window in [false, true] {
                    let query = StatsQuery {
                        guild_id: guild.map(gid),
                        since: window.then(|| Timestamp::parse_stored(since).expect("t")),
                        until: window.then(|| Timestamp::parse_stored(until).expect("t")),
                        by,
                    };
                    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
                    for e in &all {
                        let t = e["occurred_at"].as_str().expect("a time");
                        if guild.is_some_and(|g| e["guild_id"] != json!(g.to_string()))
                            || (window && (t < since || t >= until))
                        {
                            continue;
                        }
                        let (family, outcome, _, _) = facts(e);
                        let key = match by {
                            StatsBy::Operation => e["operation"].as_str().expect("op").to_owned(),
                            StatsBy::Family => family,
                            StatsBy::Actor => e["actor"]["id"].as_str().expect("id").to_owned(),
                            StatsBy::Outcome => outcome,
                            StatsBy::Day => t[..10].to_owned(),
                        };
                        *expected.entry(key).or_default() += 1;
                    }
                    let got: Vec<(String, u64)> = s
                        .stats(&query)
                        .await
                        .expect("stats")
                        .into_iter()
                        .map(|r| (r.key, r.count))
                        .collect();
                    assert_eq!(
                        got,
                        expected.into_iter().collect::<Vec<_>>(),
                        "{} {query:?}",
                        backend.name()
                    );
                }
            }
        }
    }
}
