//! Hostile input that reaches a database, and tenant isolation, as property
//! tests on both backends. Database cases are fewer than pure ones (each
//! case writes real rows); every case uses fresh guild ids in one database.

use std::sync::atomic::{AtomicU64, Ordering};

use guildconf::{
    Actor, ActorKind, At, ConfigService, Error, ExportFormat, ExportRequest, FieldEdit, FieldPath,
    GuildId, HistoryRequest, Operation, RequestContext, WriteMeta,
};
use guildconf_tests::{Backend, TestDb, BACKENDS};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

const DB_CASES: u32 = 32;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn meta(id: &str) -> WriteMeta {
    WriteMeta::new(Actor::new(id, ActorKind::Human, Some("tester")).expect("valid actor"))
}

/// Config strings full of SQL metacharacters, CR/LF, control characters and
/// arbitrary Unicode (U+0000 aside, which is rejected).
fn config_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "'",
        "\"",
        "';DROP TABLE audit_entries;--",
        ",",
        "\r\n",
        "\n",
        "\r",
        "\t",
        "\u{7}",
        "\u{1b}[31m",
        "\u{2028}",
        "😀",
        "é",
        "\\",
        "=",
        "--",
        "/*",
        " ",
        "x",
    ]);
    prop_oneof![
        prop::collection::vec(pieces, 1..8).prop_map(|v| v.concat()),
        "\\PC{1,20}",
        any::<String>()
    ]
    .prop_map(|s| s.replace('\0', "").chars().take(200).collect::<String>())
}

fn for_each_backend(name: &str, body: impl Fn(Backend, &str)) {
    for &backend in BACKENDS {
        body(backend, &format!("{name}_{backend:?}"));
    }
}

#[test]
fn hostile_strings_round_trip_exactly_and_cannot_forge_rows() {
    for_each_backend("hostile_round_trip", |backend, name| {
        let rt = runtime();
        let (db, s) = rt.block_on(async {
            let db = TestDb::new(backend, name).await;
            let s = db.service().await;
            (db, s)
        });
        let next = AtomicU64::new(1000);
        let mut runner = TestRunner::new(Config {
            cases: DB_CASES,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&(config_text(), config_text(), config_text()), |(message, role_key, reason)| {
                let guild = GuildId::from_u64(next.fetch_add(1, Ordering::SeqCst)).map_err(TestCaseError::fail)?;
                rt.block_on(async {
                    let mut m = meta("80351110224678912");
                    // A reason follows the rule labels follow: a control
                    // character is refused, and nothing is stored.
                    if reason.chars().any(char::is_control) {
                        m.reason = Some(reason.clone());
                        let refused = s.create(guild, json!({}), &m).await;
                        prop_assert!(matches!(refused, Err(guildconf::Error::Invalid(_))));
                        prop_assert_eq!(db.count("audit_entries", &guild.to_string()).await, 0);
                    }
                    let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
                    m.reason = Some(reason.clone());
                    m.context = RequestContext::new().with("source", "test").with("user_agent", &reason);
                    let role_key: String = role_key.chars().filter(|c| !c.is_control()).take(64).collect();
                    let role_key = if role_key.is_empty() { "k".to_owned() } else { role_key };
                    let doc = json!({"onboarding": {"welcome_message": message}, "role_mapping": {role_key.clone(): "5"}});
                    s.create(guild, doc, &m).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let shown = s.get(guild, At::Now).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(&shown.document["onboarding"]["welcome_message"], &json!(message));
                    prop_assert_eq!(&shown.document["role_mapping"][&role_key], &json!("5"));
                    let page = s
                        .history(&HistoryRequest { guild_id: Some(guild), ..Default::default() })
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(page.entries.len(), 1);
                    let body = &page.entries[0].body;
                    prop_assert_eq!(body.reason.as_deref(), Some(reason.as_str()));
                    for v in body.context.values() {
                        prop_assert!(!v.as_str().unwrap_or_default().chars().any(char::is_control));
                    }
                    // Exactly one row per table for this guild: nothing forged.
                    let g = guild.to_string();
                    prop_assert_eq!(db.count("audit_entries", &g).await, 1);
                    prop_assert_eq!(db.count("guild_snapshots", &g).await, 1);
                    // CSV quoting keeps the entry one record with the exact reason.
                    let mut csv_out = Vec::new();
                    let request = ExportRequest { guild_id: Some(guild), format: ExportFormat::Csv, ..Default::default() };
                    s.export(&request, &mut csv_out).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let mut reader = csv::Reader::from_reader(csv_out.as_slice());
                    let records: Vec<csv::StringRecord> =
                        reader.records().collect::<Result<_, _>>().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(records.len(), 1);
                    prop_assert_eq!(records[0].get(10), Some(reason.as_str()));
                    Ok(())
                })
            })
            .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        let report = rt.block_on(s.verify(None)).expect("verify runs");
        assert!(report.ok, "{report:?}");
    });
}

/// A random document: valid parts, invalid parts, U+0000, huge numbers.
fn hostile_document() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        config_text().prop_map(|t| json!({"onboarding": {"welcome_message": t}})),
        Just(json!({"onboarding": {"welcome_message": "a\u{0}b"}})),
        Just(
            json!({"onboarding": {"verification": {"timeout_minutes": 9_007_199_254_740_993u64}}})
        ),
        config_text().prop_map(|t| json!({"features": {t: true}})),
        config_text().prop_map(|t| json!({"yearly_reset": {"timezone": t}})),
        (0u64..40, 0u64..40).prop_map(|(m, d)| json!({"yearly_reset": {"month": m, "day": d}})),
        config_text().prop_map(|t| json!({"onboarding": {"welcome_channel": t}})),
        config_text().prop_map(|t| json!({t: 1})),
        any::<i64>().prop_map(|n| json!({"role_mapping": {"r": n}})),
    ];
    prop::collection::vec(field, 1..4).prop_map(|parts| {
        let mut doc = json!({});
        for part in parts {
            if let (Value::Object(d), Value::Object(p)) = (&mut doc, part) {
                d.extend(p);
            }
        }
        doc
    })
}

#[test]
fn hostile_documents_are_typed_errors_and_store_nothing() {
    for_each_backend("hostile_documents", |backend, name| {
        let rt = runtime();
        let (db, s) = rt.block_on(async {
            let db = TestDb::new(backend, name).await;
            let s = db.service().await;
            (db, s)
        });
        let next = AtomicU64::new(5000);
        let (accepted, rejected) = (AtomicU64::new(0), AtomicU64::new(0));
        let mut runner = TestRunner::new(Config {
            cases: DB_CASES * 2,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&hostile_document(), |doc| {
                let guild = GuildId::from_u64(next.fetch_add(1, Ordering::SeqCst))
                    .map_err(TestCaseError::fail)?;
                rt.block_on(async {
                    match s
                        .create(guild, doc.clone(), &meta("80351110224678912"))
                        .await
                    {
                        Ok(_) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            prop_assert_eq!(db.count("audit_entries", &guild.to_string()).await, 1);
                        }
                        Err(Error::Invalid(v)) => {
                            rejected.fetch_add(1, Ordering::SeqCst);
                            prop_assert!(!v.0.is_empty());
                            prop_assert_eq!(db.count("audit_entries", &guild.to_string()).await, 0);
                            prop_assert_eq!(db.count("guild_heads", &guild.to_string()).await, 0);
                        }
                        Err(e) => {
                            return Err(TestCaseError::fail(format!(
                                "not a typed input error: {e}"
                            )))
                        }
                    }
                    Ok(())
                })
            })
            .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        let (accepted, rejected) = (
            accepted.load(Ordering::SeqCst),
            rejected.load(Ordering::SeqCst),
        );
        println!("{backend:?}: hostile documents: {accepted} accepted, {rejected} rejected as invalid input");
        assert!(rejected > 0, "the generator produces invalid documents");
    });
}

#[derive(Clone, Debug)]
enum Op {
    Set(bool, u8, bool),
    Revert(bool),
    Delete(bool),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            6 => (any::<bool>(), 0u8..4, any::<bool>()).prop_map(|(a, k, v)| Op::Set(a, k, v)),
            1 => any::<bool>().prop_map(Op::Revert),
            1 => any::<bool>().prop_map(Op::Delete),
        ],
        1..12,
    )
}

/// No query, filter, cursor or export for guild A returns anything of guild
/// B, with the same actor writing both.
#[test]
fn no_query_for_one_guild_returns_another_guilds_data() {
    for_each_backend("tenant_isolation", |backend, name| {
        let rt = runtime();
        // The database lives as long as `_db` (it is dropped with it).
        let (_db, s): (TestDb, ConfigService) = rt.block_on(async {
            let db = TestDb::new(backend, name).await;
            let s = db.service().await;
            (db, s)
        });
        let next = AtomicU64::new(10_000);
        let mut runner = TestRunner::new(Config {
            cases: DB_CASES / 2,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&ops(), |ops| {
                let a = GuildId::from_u64(next.fetch_add(2, Ordering::SeqCst))
                    .map_err(TestCaseError::fail)?;
                let b = GuildId::from_u64(a.snowflake().get() + 1).map_err(TestCaseError::fail)?;
                rt.block_on(async {
                    let m = meta("80351110224678912");
                    for g in [a, b] {
                        s.create(
                            g,
                            json!({"onboarding": {"welcome_message": format!("guild {g}")}}),
                            &m,
                        )
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    }
                    for op in &ops {
                        let (g, result) = match op {
                            Op::Set(on_a, k, v) => {
                                let g = if *on_a { a } else { b };
                                let edit = FieldEdit::new().set(
                                    FieldPath::from_segments([
                                        "features".to_owned(),
                                        format!("f{k}"),
                                    ]),
                                    json!(v),
                                );
                                (g, s.update(g, edit, &m).await.map(|_| ()))
                            }
                            Op::Revert(on_a) => {
                                let g = if *on_a { a } else { b };
                                (g, s.revert(g, 1, &m).await.map(|_| ()))
                            }
                            Op::Delete(on_a) => {
                                let g = if *on_a { a } else { b };
                                (g, s.delete(g, &m).await.map(|_| ()))
                            }
                        };
                        match result {
                            Ok(()) | Err(Error::NotFound(_)) => {}
                            Err(e) => return Err(TestCaseError::fail(format!("{g}: {e}"))),
                        }
                    }
                    for (mine, other) in [(a, b), (b, a)] {
                        let other_text = format!("guild {other}");
                        let filters: Vec<HistoryRequest> = vec![
                            HistoryRequest {
                                guild_id: Some(mine),
                                limit: Some(2),
                                ..Default::default()
                            },
                            HistoryRequest {
                                guild_id: Some(mine),
                                actor_id: Some("80351110224678912".into()),
                                limit: Some(3),
                                ..Default::default()
                            },
                            HistoryRequest {
                                guild_id: Some(mine),
                                operation: Some(Operation::Update),
                                ..Default::default()
                            },
                            HistoryRequest {
                                guild_id: Some(mine),
                                path: Some(FieldPath::from_segments(["features"])),
                                limit: Some(1),
                                ..Default::default()
                            },
                        ];
                        for mut request in filters {
                            loop {
                                let page = s
                                    .history(&request)
                                    .await
                                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                                for e in &page.entries {
                                    prop_assert_eq!(e.body.guild_id, mine);
                                    let text =
                                        e.to_json().map_err(TestCaseError::fail)?.to_string();
                                    prop_assert!(!text.contains(&other_text));
                                }
                                let Some(cursor) = page.next_cursor else {
                                    break;
                                };
                                // The cursor is bound to this guild's query.
                                let stolen = HistoryRequest {
                                    guild_id: Some(other),
                                    cursor: Some(cursor.clone()),
                                    ..request.clone()
                                };
                                prop_assert!(matches!(
                                    s.history(&stolen).await,
                                    Err(Error::Invalid(_))
                                ));
                                request.cursor = Some(cursor);
                            }
                        }
                        let mut out = Vec::new();
                        s.export(
                            &ExportRequest {
                                guild_id: Some(mine),
                                ..Default::default()
                            },
                            &mut out,
                        )
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        let text = String::from_utf8(out)
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        for line in text.lines() {
                            let v: Value = serde_json::from_str(line)
                                .map_err(|e| TestCaseError::fail(e.to_string()))?;
                            let mine_text = mine.to_string();
                            prop_assert_eq!(v["guild_id"].as_str(), Some(mine_text.as_str()));
                            prop_assert!(!line.contains(&other_text));
                        }
                        if let Ok(shown) = s.get(mine, At::Now).await {
                            prop_assert!(!shown.document.to_string().contains(&other_text));
                        }
                        let report = s
                            .verify(Some(mine))
                            .await
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert!(report.ok && report.guilds_checked == 1);
                    }
                    Ok(())
                })
            })
            .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
    });
}
