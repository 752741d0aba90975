//! Tests of the SQLite store against real database files.

use std::error::Error;
use std::path::Path;

use guildconf_domain::json::canonical;
use guildconf_domain::{
    Actor, ActorKind, ConfigSchema, GuildConfigSchema, GuildId, Operation, Timestamp,
};
use guildconf_ports::{
    contract, ChangeSet, ConfigStore, Head, HistoryPosition, HistoryQuery, Snapshot, StoreError,
    StoredEntry,
};
use guildconf_sqlite::{SqliteOptions, SqliteStore, SCHEMA_VERSION};
use rusqlite::Connection;
use serde_json::{json, Value};

type TestResult = Result<(), Box<dyn Error>>;

/// The store contract every backend passes, on a fresh SQLite file per test.
struct SqliteFixture {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

#[async_trait::async_trait]
impl contract::StoreFixture for SqliteFixture {
    async fn new(_name: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = open_new(&dir).expect("a new SQLite file opens");
        Self { store, _dir: dir }
    }

    fn store(&self) -> &dyn ConfigStore {
        &self.store
    }

    async fn execute(&self, sql: &str) -> Result<u64, String> {
        let conn = plain(self.store.path()).map_err(|e| e.to_string())?;
        conn.execute(sql, [])
            .map(|n| n as u64)
            .map_err(|e| e.to_string())
    }

    async fn count(&self, table: &str) -> u64 {
        let conn = plain(self.store.path()).expect("opens");
        count(&conn, table).expect("counts").unsigned_abs()
    }

    async fn fail_entry_inserts(&self, on: bool) {
        let sql = if on {
            "CREATE TRIGGER inject_fault BEFORE INSERT ON audit_entries
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        } else {
            "DROP TRIGGER inject_fault"
        };
        plain(self.store.path())
            .and_then(|c| c.execute_batch(sql))
            .expect("the fault trigger changes");
    }

    async fn drop_chain_guards(&self) {
        plain(self.store.path())
            .and_then(|c| {
                c.execute_batch(
                    "DROP TRIGGER audit_entries_extend_chain; DROP TRIGGER guild_heads_onto_entry; \
                     DROP TRIGGER guild_heads_forward;",
                )
            })
            .expect("the guards drop");
    }

    async fn finish(self) {}
}

guildconf_ports::config_store_contract_tests!(crate::SqliteFixture);

fn guild(n: u64) -> GuildId {
    GuildId::from_u64(n).expect("test ids are valid snowflakes")
}

fn actor(id: &str) -> Actor {
    Actor::new(id, ActorKind::Human, Some("alice")).expect("test actors are valid")
}

/// `2026-11-22T04:00:00.000000Z` plus `micros`.
fn at(micros: u32) -> Timestamp {
    Timestamp::parse_stored(&format!("2026-11-22T04:00:00.{micros:06}Z"))
        .expect("test times are valid")
}

fn create_options() -> SqliteOptions {
    SqliteOptions {
        create_if_missing: true,
        ..SqliteOptions::default()
    }
}

fn open_new(dir: &tempfile::TempDir) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(dir.path().join("guildconf.db"), create_options())
}

/// The change set that moves `guild` from `head` to `document` (`None`:
/// delete), made through the domain's one maker of links.
fn change(
    guild_id: GuildId,
    head: Option<&Head>,
    document: Option<Value>,
    actor: &Actor,
    occurred_at: Timestamp,
    request_id: Option<&str>,
) -> Result<ChangeSet, Box<dyn Error>> {
    Ok(contract::change_set(
        guild_id,
        head,
        document,
        actor,
        occurred_at.datetime(),
        request_id,
    ))
}

fn with_feature(flag: &str, on: bool) -> Value {
    let mut doc = GuildConfigSchema.defaults();
    doc["features"][flag] = json!(on);
    doc
}

/// Commits create (v1), update (v2) for `g` and returns the head.
async fn seed(
    store: &SqliteStore,
    g: GuildId,
    who: &Actor,
    t0: u32,
) -> Result<Head, Box<dyn Error>> {
    let c1 = change(
        g,
        None,
        Some(GuildConfigSchema.defaults()),
        who,
        at(t0),
        Some("req-1"),
    )?;
    store.commit(c1.clone()).await?;
    let c2 = change(
        g,
        Some(&c1.head),
        Some(with_feature("beta", true)),
        who,
        at(t0 + 1),
        None,
    )?;
    store.commit(c2.clone()).await?;
    Ok(c2.head)
}

fn plain(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn count(conn: &Connection, table: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
}

fn schema_objects(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

#[tokio::test]
async fn migrations_apply_and_reopen_is_a_no_op() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("guildconf.db");
    let store = SqliteStore::open(&path, create_options())?;
    assert_eq!(store.path(), path);
    let g = guild(42);
    let head = seed(&store, g, &actor("80351110224678912"), 0).await?;

    let conn = plain(&path)?;
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    let objects = schema_objects(&conn)?;
    for name in [
        "guild_heads",
        "guild_snapshots",
        "audit_entries",
        "audit_requests",
        "audit_entries_no_update",
        "audit_entries_no_delete",
        "guild_snapshots_no_update",
        "guild_snapshots_no_delete",
        "audit_requests_no_update",
        "audit_requests_no_delete",
    ] {
        assert!(objects.iter().any(|(_, n)| n == name), "{name} missing");
    }
    drop(store);

    let store = SqliteStore::open(&path, SqliteOptions::default())?;
    assert_eq!(schema_objects(&conn)?, objects);
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(store.head(g).await?, Some(head));
    assert_eq!(count(&conn, "audit_entries")?, 2);
    Ok(())
}

#[tokio::test]
async fn an_older_database_is_upgraded_and_a_newer_one_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A database at schema version 0: a SQLite file without our tables.
    let old = dir.path().join("old.db");
    plain(&old)?.execute_batch("CREATE TABLE unrelated (x INTEGER)")?;
    let store = SqliteStore::open(&old, SqliteOptions::default())?;
    assert_eq!(store.list_guilds().await?, vec![]);
    let version: u32 = plain(&old)?.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(version, SCHEMA_VERSION);

    let newer = dir.path().join("newer.db");
    plain(&newer)?.execute_batch("PRAGMA user_version = 999")?;
    match SqliteStore::open(&newer, SqliteOptions::default()) {
        Err(StoreError::Storage(m)) => assert!(m.contains("newer"), "{m}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn open_without_create_on_a_missing_path_creates_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("missing.db");
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Storage(m)) => assert!(m.contains("does not exist"), "{m}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        0,
        "no file may be created"
    );
    Ok(())
}

#[tokio::test]
async fn commit_then_read_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_new(&dir)?;
    let g = guild(1_234_567_890_123);
    let alice = actor("80351110224678912");
    assert_eq!(store.head(g).await?, None);
    assert_eq!(store.stored_head(g).await?, None);

    let c1 = change(
        g,
        None,
        Some(GuildConfigSchema.defaults()),
        &alice,
        at(10),
        Some("req-1"),
    )?;
    store.commit(c1.clone()).await?;
    assert_eq!(store.head(g).await?.as_ref(), Some(&c1.head));
    assert_eq!(
        store.snapshot(g, 1).await?,
        c1.snapshot.clone().map(Snapshot::from)
    );
    assert_eq!(store.request(g, "req-1").await?, c1.request);
    assert_eq!(store.request(g, "req-2").await?, None);

    let c2 = change(
        g,
        Some(&c1.head),
        Some(with_feature("beta", true)),
        &alice,
        at(20),
        None,
    )?;
    store.commit(c2.clone()).await?;
    let c3 = change(g, Some(&c2.head), None, &alice, at(30), None)?;
    store.commit(c3.clone()).await?;

    let head = store.head(g).await?.expect("head exists");
    assert_eq!(head, c3.head);
    assert_eq!(head.document, None);
    assert_eq!(head.version, 2);
    assert_eq!(
        store.snapshot(g, 2).await?,
        c2.snapshot.clone().map(Snapshot::from)
    );
    assert_eq!(store.snapshot(g, 3).await?, None);
    assert_eq!(store.snapshot(g, u64::MAX).await?, None);

    let stored = store.stored_head(g).await?.expect("head exists");
    assert_eq!((stored.seq, stored.version, stored.document), (3, 2, None));
    assert_eq!(stored.last_hash, c3.entry.entry_hash());

    // entry_at: the last entry at or before the time.
    assert_eq!(store.entry_at(g, at(9)).await?, None);
    assert_eq!(
        store.entry_at(g, at(10)).await?,
        Some((1, Operation::Create))
    );
    assert_eq!(
        store.entry_at(g, at(29)).await?,
        Some((2, Operation::Update))
    );
    assert_eq!(
        store.entry_at(g, at(31)).await?,
        Some((2, Operation::Delete))
    );

    // entries: the stored body is exactly the hashed canonical text.
    let entries = store.entries(g, 0, None, 100, true).await?;
    assert_eq!(entries.len(), 3);
    for (stored, sent) in entries.iter().zip([&c1, &c2, &c3]) {
        assert_eq!(stored.body, sent.entry.text());
        assert_eq!(stored.entry_hash, sent.entry.entry_hash());
        assert_eq!(stored.seq, sent.entry.body().seq);
        assert_eq!(stored.config_version, sent.entry.body().config_version);
        assert_eq!(
            stored.occurred_at,
            sent.entry.body().occurred_at.to_string()
        );
        assert_eq!(stored.operation, sent.entry.body().operation.as_str());
        assert_eq!(stored.actor_id, alice.id);
        assert_eq!(stored.guild_id, g);
        let expected_snapshot = sent
            .snapshot
            .as_ref()
            .map(|s| canonical(s.document.value()))
            .transpose()?;
        assert_eq!(stored.snapshot, expected_snapshot);
    }
    assert_eq!(entries[2].snapshot, None, "a delete carries no snapshot");
    let without: Vec<StoredEntry> = store.entries(g, 0, None, 100, false).await?;
    assert!(without.iter().all(|e| e.snapshot.is_none()));
    let later = store.entries(g, 1, None, 1, false).await?;
    assert_eq!(later.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
    let since = store.entries(g, 0, Some(at(20)), 100, false).await?;
    assert_eq!(since.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert!(store
        .entries(g, u64::MAX, None, 100, false)
        .await?
        .is_empty());

    // history of the guild, newest first, paginated by seq.
    let query = HistoryQuery {
        guild_id: Some(g),
        limit: 2,
        ..HistoryQuery::default()
    };
    let page = store.history(&query).await?;
    assert_eq!(
        page,
        vec![c3.entry.entry().clone(), c2.entry.entry().clone()]
    );
    let next = HistoryQuery {
        after: Some(HistoryPosition {
            occurred_at: c2.entry.body().occurred_at,
            guild_id: g,
            seq: 2,
        }),
        ..query.clone()
    };
    assert_eq!(store.history(&next).await?, vec![c1.entry.entry().clone()]);
    let updates = HistoryQuery {
        operation: Some(Operation::Update),
        limit: 10,
        ..query.clone()
    };
    assert_eq!(
        store.history(&updates).await?,
        vec![c2.entry.entry().clone()]
    );
    let window = HistoryQuery {
        since: Some(at(20)),
        until: Some(at(30)),
        limit: 10,
        ..query.clone()
    };
    assert_eq!(
        store.history(&window).await?,
        vec![c2.entry.entry().clone()]
    );

    let list = store.list_guilds().await?;
    assert_eq!(list.len(), 1);
    assert!(list[0].deleted);
    assert_eq!(list[0].version, 2);
    assert_eq!(list[0].updated_at, at(30));
    assert_eq!(list[0].actor, alice);
    Ok(())
}

#[tokio::test]
async fn history_by_actor_across_guilds_and_guild_ids() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_new(&dir)?;
    let alice = actor("80351110224678912");
    let bob = actor("80351110224678913");
    // Interleaved in time: g2 at 0,1; g1 at 1,2 (the same instant in two guilds).
    seed(&store, guild(2), &alice, 0).await?;
    seed(&store, guild(1), &alice, 1).await?;
    seed(&store, guild(3), &bob, 5).await?;

    let query = HistoryQuery {
        actor_id: Some(alice.id.clone()),
        limit: 3,
        ..HistoryQuery::default()
    };
    let key = |e: &guildconf_domain::Entry| (e.body.occurred_at, e.body.guild_id, e.body.seq);
    let page = store.history(&query).await?;
    assert_eq!(
        page.iter().map(key).collect::<Vec<_>>(),
        vec![
            (at(2), guild(1), 2),
            (at(1), guild(2), 2),
            (at(1), guild(1), 1)
        ]
    );
    let last = page.last().map(key).expect("a full page");
    let next = HistoryQuery {
        after: Some(HistoryPosition {
            occurred_at: last.0,
            guild_id: last.1,
            seq: last.2,
        }),
        ..query.clone()
    };
    let rest = store.history(&next).await?;
    assert_eq!(
        rest.iter().map(key).collect::<Vec<_>>(),
        vec![(at(0), guild(2), 1)]
    );

    assert_eq!(
        store.guild_ids(None, 10).await?,
        vec![guild(1), guild(2), guild(3)]
    );
    assert_eq!(store.guild_ids(Some(guild(1)), 1).await?, vec![guild(2)]);
    assert_eq!(
        store
            .list_guilds()
            .await?
            .iter()
            .map(|s| s.guild_id)
            .collect::<Vec<_>>(),
        vec![guild(1), guild(2), guild(3)]
    );
    Ok(())
}

#[tokio::test]
async fn a_body_that_does_not_parse_is_corrupt() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_new(&dir)?;
    let g = guild(5);
    seed(&store, g, &actor("80351110224678912"), 0).await?;
    // The chain guard would refuse this row: drop it first, as an owner can.
    plain(store.path())?.execute_batch("DROP TRIGGER audit_entries_extend_chain")?;
    plain(store.path())?.execute(
        "INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at,
                                    actor_id, request_id, body, entry_hash, prev_hash)
         VALUES (5, 3, 2, 'update', '2026-11-22T05:00:00.000000Z', 'x', NULL,
                 '{\"secret\":\"hunter2\"}', 'h', 'p')",
        [],
    )?;
    match store
        .history(&HistoryQuery {
            guild_id: Some(g),
            limit: 10,
            ..HistoryQuery::default()
        })
        .await
    {
        Err(StoreError::Corrupt(m)) => assert!(!m.contains("hunter2"), "{m}"),
        other => panic!("expected corrupt, got {other:?}"),
    }
    Ok(())
}

/// Two stores (standing in for two processes) race ten rounds of writes on
/// one guild: exactly one of each pair wins, the other gets `Conflict`.
async fn race(a: &SqliteStore, b: &SqliteStore, g: GuildId) -> TestResult {
    let alice = actor("80351110224678912");
    let head = seed(a, g, &alice, 0).await?;
    for round in 0..10u32 {
        let current = a.head(g).await?.expect("seeded");
        let ca = change(
            g,
            Some(&current),
            Some(with_feature("a", round % 2 == 0)),
            &alice,
            at(100 + 2 * round),
            None,
        )?;
        let cb = change(
            g,
            Some(&current),
            Some(with_feature("b", round % 2 == 0)),
            &alice,
            at(101 + 2 * round),
            None,
        )?;
        let (ra, rb) = tokio::join!(a.commit(ca), b.commit(cb));
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {ra:?} {rb:?}");
        for r in [ra, rb] {
            if let Err(e) = r {
                assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
            }
        }
    }
    let last = b.head(g).await?.expect("seeded");
    assert_eq!(last.seq, head.seq + 10);
    assert_eq!(a.entries(g, 0, None, 1000, false).await?.len(), 12);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_one_file_one_wins() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("race.db");
    let a = SqliteStore::open(&path, create_options())?;
    let b = SqliteStore::open(&path, create_options())?;
    race(&a, &b, guild(77)).await
}

fn inline_options() -> SqliteOptions {
    SqliteOptions {
        inline_commits: true,
        ..create_options()
    }
}

/// Commits run on the calling worker thread (`inline_commits`) keep the
/// guarantees of pooled ones: racing writers have exactly one winner, and a
/// write failing mid-transaction leaves everything as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_commits_race_and_roll_back_like_pooled_ones() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("inline.db");
    let a = SqliteStore::open(&path, inline_options())?;
    let b = SqliteStore::open(&path, inline_options())?;
    let g = guild(78);
    race(&a, &b, g).await?;

    let failing =
        SqliteStore::open(&path, inline_options())?.with_fault_hook(std::sync::Arc::new(|step| {
            match step {
                guildconf_ports::WriteStep::HeadMove => Err(StoreError::Storage("injected".into())),
                _ => Ok(()),
            }
        }));
    let before = a.head(g).await?.expect("written");
    let entries = a.entries(g, 0, None, 1000, false).await?.len();
    let c = change(
        g,
        Some(&before),
        Some(with_feature("c", true)),
        &actor("80351110224678912"),
        at(500),
        None,
    )?;
    assert!(matches!(
        failing.commit(c).await,
        Err(StoreError::Storage(_))
    ));
    assert_eq!(a.head(g).await?, Some(before));
    assert_eq!(a.entries(g, 0, None, 1000, false).await?.len(), entries);
    Ok(())
}

/// On a current-thread runtime, where Tokio cannot run a blocking call in
/// place, `inline_commits` falls back to the blocking pool.
#[test]
fn inline_commits_on_a_current_thread_runtime_use_the_blocking_pool() -> TestResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(dir.path().join("ct.db"), inline_options())?;
        let head = seed(&store, guild(79), &actor("80351110224678912"), 0).await?;
        assert_eq!(store.head(guild(79)).await?, Some(head));
        Ok(())
    })
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_is_a_busy_storage_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("busy.db");
    let options = SqliteOptions {
        create_if_missing: true,
        busy_timeout: std::time::Duration::from_millis(100),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&path, options)?;
    let g = guild(3);
    let alice = actor("80351110224678912");
    let other = plain(&path)?;
    other.execute_batch("BEGIN IMMEDIATE")?;
    let c1 = change(
        g,
        None,
        Some(GuildConfigSchema.defaults()),
        &alice,
        at(0),
        None,
    )?;
    match store.commit(c1.clone()).await {
        Err(StoreError::Storage(m)) => assert!(m.starts_with("database is busy"), "{m}"),
        other => panic!("expected busy, got {other:?}"),
    }
    // Reads are not blocked by the writer (WAL).
    assert_eq!(store.head(g).await?, None);
    other.execute_batch("COMMIT")?;
    store.commit(c1).await?;
    assert!(store.head(g).await?.is_some());
    Ok(())
}
