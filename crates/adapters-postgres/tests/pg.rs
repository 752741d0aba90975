//! PgStore against a real PostgreSQL server.
//!
//! URL: `GUILDCONF_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`. Each test works in its own
//! schema. A missing server fails the tests; it never skips them.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use guildconf_domain::{
    Actor, ActorKind, ConfigSchema, GuildConfigSchema, GuildId, Operation, Timestamp,
};
use guildconf_ports::{
    contract, ChangeSet, ConfigStore, Head, HistoryPosition, HistoryQuery, Snapshot, StoreError,
};
use guildconf_postgres::PgStore;
use serde_json::{json, Map, Value};
use sqlx::{Connection, PgConnection};

const SECRET: &str = "https://hooks.example.com/TOPSECRET-abc123";

fn url() -> String {
    std::env::var("GUILDCONF_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn unique_schema(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "gct_{name}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store in a fresh schema. Panics (fails the test) without a server.
async fn store(name: &str) -> (PgStore, String) {
    let schema = unique_schema(name);
    let store = PgStore::connect_in_schema(&url(), &schema)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is required: {e}", url()));
    (store, schema)
}

/// A plain connection working in `schema`.
async fn plain(schema: &str) -> PgConnection {
    let mut conn = PgConnection::connect(&url()).await.unwrap();
    sqlx::query(&format!("SET search_path = {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// The shipped migrations up to and including version `last`.
fn migrator_up_to(last: i64) -> sqlx::migrate::Migrator {
    let all = sqlx::migrate!("./migrations");
    sqlx::migrate::Migrator {
        migrations: all
            .migrations
            .iter()
            .filter(|m| m.version <= last)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate!("./migrations")
    }
}

/// A fresh schema holding the schema as guildconf's migrations up to
/// version `last` left it (an older guildconf's database), and a plain
/// connection working in it. Panics (fails the test) without a server.
async fn schema_migrated_to(name: &str, last: i64) -> (String, PgConnection) {
    let schema = unique_schema(name);
    let mut conn = PgConnection::connect(&url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is required: {e}", url()));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("SET search_path = {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    migrator_up_to(last).run(&mut conn).await.unwrap();
    (schema, conn)
}

async fn drop_schema(store: PgStore, schema: &str) {
    store.pool().close().await;
    let mut conn = PgConnection::connect(&url()).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn count(conn: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(conn)
        .await
        .unwrap()
}

fn guild(n: u64) -> GuildId {
    GuildId::from_u64(n).unwrap()
}

fn alice() -> Actor {
    Actor::new("80351110224678912", ActorKind::Human, Some("alice")).unwrap()
}

fn ts(text: &str) -> Timestamp {
    Timestamp::parse_stored(text).unwrap()
}

fn doc_with(flag: &str) -> Value {
    let mut doc = GuildConfigSchema.defaults();
    doc["features"][flag] = json!(true);
    doc["announcements"]["webhook_url"] = json!(SECRET);
    doc
}

/// The change set that moves `prev` to `document` (`None` = delete), made
/// through the domain's one maker of links.
fn change_set(
    guild: GuildId,
    prev: Option<&Head>,
    document: Option<Value>,
    actor: &Actor,
    at: &str,
    request_id: Option<&str>,
) -> ChangeSet {
    contract::change_set(guild, prev, document, actor, ts(at).datetime(), request_id)
}

/// The store contract every backend passes, in a fresh schema per test.
struct PgFixture {
    store: PgStore,
    schema: String,
}

#[async_trait::async_trait]
impl contract::StoreFixture for PgFixture {
    async fn new(name: &str) -> Self {
        let (store, schema) = store(name).await;
        Self { store, schema }
    }

    fn store(&self) -> &dyn ConfigStore {
        &self.store
    }

    async fn execute(&self, sql: &str) -> Result<u64, String> {
        // Through the store's own pool (its connections work in the test's
        // schema as the owner): a plain connection's executor is not `Send`
        // enough for an async trait.
        sqlx::raw_sql(sql)
            .execute(self.store.pool())
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| e.to_string())
    }

    async fn count(&self, table: &str) -> u64 {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(self.store.pool())
            .await
            .unwrap();
        n.unsigned_abs()
    }

    async fn fail_entry_inserts(&self, on: bool) {
        let sql = if on {
            "CREATE FUNCTION test_fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'injected fault'; END; $$; \
             CREATE TRIGGER test_fail_insert BEFORE INSERT ON audit_entries \
             FOR EACH ROW EXECUTE FUNCTION test_fail_insert();"
        } else {
            "DROP TRIGGER test_fail_insert ON audit_entries; DROP FUNCTION test_fail_insert();"
        };
        self.execute(sql).await.unwrap();
    }

    async fn drop_chain_guards(&self) {
        self.execute(
            "DROP TRIGGER audit_entries_extend_chain ON audit_entries; \
             DROP TRIGGER guild_heads_forward ON guild_heads; \
             DROP TRIGGER guild_heads_onto_entry ON guild_heads;",
        )
        .await
        .unwrap();
    }

    async fn finish(self) {
        drop_schema(self.store, &self.schema).await;
    }
}

guildconf_ports::config_store_contract_tests!(crate::PgFixture);

#[tokio::test]
async fn migrations_apply_twice() {
    let (first, schema) = store("migrate").await;
    let second = PgStore::connect_in_schema(&url(), &schema).await.unwrap();
    let third = PgStore::connect_in_schema(&url(), &schema).await.unwrap();
    let mut conn = plain(&schema).await;
    for table in [
        "guild_heads",
        "guild_snapshots",
        "audit_entries",
        "audit_requests",
    ] {
        assert_eq!(count(&mut conn, table).await, 0, "{table}");
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        applied, 8,
        "0001_initial, 0002_purge_gate, 0003_change_feed, 0004_chain_guards, \
         0005_documents_as_text, 0006_signatures, 0007_event_filters and 0008_tokens"
    );
    second.pool().close().await;
    third.pool().close().await;
    drop_schema(first, &schema).await;
}

#[tokio::test]
async fn bad_schema_names_and_unreachable_servers_are_storage_errors() {
    let err = PgStore::connect_in_schema(&url(), "Bad-Name")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Storage(_)), "{err:?}");

    let err = PgStore::connect("postgres://postgres:hunter2@127.0.0.1:1/postgres")
        .await
        .unwrap_err();
    let StoreError::Storage(message) = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains("database unreachable"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let err = PgStore::connect("postgres://postgres:hunter2@127.0.0.1:notaport/x")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn commit_then_read_back() {
    let (store, schema) = store("readback").await;
    let g = guild(123_456_789_012_345_678);
    let other = guild(42);
    let bob = Actor::new("nightly-job", ActorKind::Scheduled, Some("Nightly")).unwrap();

    assert_eq!(store.head(g).await.unwrap(), None);

    let create = change_set(
        g,
        None,
        Some(doc_with("a")),
        &alice(),
        "2026-01-01T00:00:01.000000Z",
        Some("req-1"),
    );
    store.commit(create.clone()).await.unwrap();
    assert_eq!(store.head(g).await.unwrap(), Some(create.head.clone()));

    let update = change_set(
        g,
        Some(&create.head),
        Some(doc_with("b")),
        &bob,
        "2026-01-01T00:00:02.000000Z",
        None,
    );
    store.commit(update.clone()).await.unwrap();
    let delete = change_set(
        g,
        Some(&update.head),
        None,
        &alice(),
        "2026-01-01T00:00:03.000000Z",
        None,
    );
    store.commit(delete.clone()).await.unwrap();
    let other_create = change_set(
        other,
        None,
        Some(doc_with("c")),
        &alice(),
        "2026-01-01T00:00:02.500000Z",
        None,
    );
    store.commit(other_create.clone()).await.unwrap();

    // head and stored head
    let head = store.head(g).await.unwrap().unwrap();
    assert_eq!(head, delete.head);
    assert_eq!((head.version, head.seq, head.document), (2, 3, None));
    let stored = store.stored_head(g).await.unwrap().unwrap();
    assert_eq!((stored.seq, stored.version, stored.document), (3, 2, None));
    assert_eq!(stored.last_hash, delete.entry.entry_hash());
    let stored = store.stored_head(other).await.unwrap().unwrap();
    let text: Value = serde_json::from_str(&stored.document.unwrap()).unwrap();
    assert_eq!(text, doc_with("c"));
    assert_eq!(store.stored_head(guild(7)).await.unwrap(), None);

    // snapshots and requests
    assert_eq!(
        store.snapshot(g, 1).await.unwrap(),
        create.snapshot.clone().map(Snapshot::from)
    );
    assert_eq!(
        store.snapshot(g, 2).await.unwrap(),
        update.snapshot.clone().map(Snapshot::from)
    );
    assert_eq!(store.snapshot(g, 3).await.unwrap(), None);
    assert_eq!(store.snapshot(g, u64::MAX).await.unwrap(), None);
    assert_eq!(store.request(g, "req-1").await.unwrap(), create.request);
    assert_eq!(store.request(g, "req-2").await.unwrap(), None);
    assert_eq!(store.request(other, "req-1").await.unwrap(), None);

    // entry_at
    assert_eq!(
        store
            .entry_at(g, ts("2026-01-01T00:00:00.999999Z"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .entry_at(g, ts("2026-01-01T00:00:01.000000Z"))
            .await
            .unwrap(),
        Some((1, Operation::Create))
    );
    assert_eq!(
        store
            .entry_at(g, ts("2026-01-01T00:00:02.999999Z"))
            .await
            .unwrap(),
        Some((2, Operation::Update))
    );
    assert_eq!(
        store
            .entry_at(g, ts("2030-01-01T00:00:00.000000Z"))
            .await
            .unwrap(),
        Some((2, Operation::Delete))
    );

    // list_guilds and guild_ids
    let list = store.list_guilds().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0].guild_id, list[0].deleted, list[0].version),
        (other, false, 1)
    );
    assert_eq!(
        (list[1].guild_id, list[1].deleted, list[1].version),
        (g, true, 2)
    );
    assert_eq!(list[1].actor, alice());
    assert_eq!(list[1].updated_at, ts("2026-01-01T00:00:03.000000Z"));
    assert_eq!(store.guild_ids(None, 10).await.unwrap(), vec![other, g]);
    assert_eq!(store.guild_ids(None, 1).await.unwrap(), vec![other]);
    assert_eq!(store.guild_ids(Some(other), 10).await.unwrap(), vec![g]);
    assert_eq!(store.guild_ids(Some(g), 10).await.unwrap(), vec![]);

    // history by guild, newest first, with filters and keyset paging
    let by_guild = HistoryQuery {
        guild_id: Some(g),
        limit: 10,
        ..HistoryQuery::default()
    };
    let all = store.history(&by_guild).await.unwrap();
    assert_eq!(
        all,
        vec![
            delete.entry.entry().clone(),
            update.entry.entry().clone(),
            create.entry.entry().clone()
        ]
    );
    let page = store
        .history(&HistoryQuery {
            limit: 2,
            ..by_guild.clone()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let last = &page[1].body;
    let next = store
        .history(&HistoryQuery {
            limit: 2,
            after: Some(HistoryPosition {
                occurred_at: last.occurred_at,
                guild_id: last.guild_id,
                seq: last.seq,
            }),
            ..by_guild.clone()
        })
        .await
        .unwrap();
    assert_eq!(next, vec![create.entry.entry().clone()]);
    let filtered = store
        .history(&HistoryQuery {
            since: Some(ts("2026-01-01T00:00:02.000000Z")),
            until: Some(ts("2026-01-01T00:00:03.000000Z")),
            ..by_guild.clone()
        })
        .await
        .unwrap();
    assert_eq!(filtered, vec![update.entry.entry().clone()]);
    let creates = store
        .history(&HistoryQuery {
            operation: Some(Operation::Create),
            actor_id: Some(alice().id),
            ..by_guild.clone()
        })
        .await
        .unwrap();
    assert_eq!(creates, vec![create.entry.entry().clone()]);

    // history by actor across guilds
    let by_alice = HistoryQuery {
        actor_id: Some(alice().id),
        limit: 10,
        ..HistoryQuery::default()
    };
    let trail = store.history(&by_alice).await.unwrap();
    assert_eq!(
        trail,
        vec![
            delete.entry.entry().clone(),
            other_create.entry.entry().clone(),
            create.entry.entry().clone()
        ]
    );
    let first = &trail[0].body;
    let rest = store
        .history(&HistoryQuery {
            limit: 1,
            after: Some(HistoryPosition {
                occurred_at: first.occurred_at,
                guild_id: first.guild_id,
                seq: first.seq,
            }),
            ..by_alice.clone()
        })
        .await
        .unwrap();
    assert_eq!(rest, vec![other_create.entry.entry().clone()]);
    let everything = store
        .history(&HistoryQuery {
            limit: 10,
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        everything,
        vec![
            delete.entry.entry().clone(),
            other_create.entry.entry().clone(),
            update.entry.entry().clone(),
            create.entry.entry().clone()
        ]
    );

    // entries for export and verify
    let plain_entries = store.entries(g, 0, None, 10, false).await.unwrap();
    assert_eq!(plain_entries.len(), 3);
    for (stored, sent) in plain_entries.iter().zip([&create, &update, &delete]) {
        assert_eq!(stored.guild_id, g);
        assert_eq!(stored.seq, sent.entry.body().seq);
        assert_eq!(stored.body, sent.entry.body().canonical().unwrap());
        assert_eq!(stored.entry_hash, sent.entry.entry_hash());
        assert_eq!(
            stored.occurred_at,
            sent.entry.body().occurred_at.to_string()
        );
        assert_eq!(stored.operation, sent.entry.body().operation.as_str());
        assert_eq!(stored.actor_id, sent.entry.body().actor.id);
        assert_eq!(stored.config_version, sent.entry.body().config_version);
        assert_eq!(stored.snapshot, None);
    }
    let with = store.entries(g, 1, None, 10, true).await.unwrap();
    assert_eq!(with.len(), 2);
    let snap: Value = serde_json::from_str(with[0].snapshot.as_deref().unwrap()).unwrap();
    assert_eq!(snap, doc_with("b"));
    assert_eq!(with[1].snapshot, None, "a delete has no snapshot");
    let since = store
        .entries(g, 0, Some(ts("2026-01-01T00:00:02.000000Z")), 1, true)
        .await
        .unwrap();
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].seq, 2);
    assert!(store
        .entries(g, u64::MAX, None, 10, false)
        .await
        .unwrap()
        .is_empty());

    // a create after a delete continues the chain
    let recreate = change_set(
        g,
        Some(&delete.head),
        Some(doc_with("d")),
        &alice(),
        "2026-01-01T00:00:04.000000Z",
        None,
    );
    assert_eq!(recreate.entry.body().operation, Operation::Create);
    store.commit(recreate.clone()).await.unwrap();
    assert_eq!(store.head(g).await.unwrap(), Some(recreate.head));

    drop_schema(store, &schema).await;
}

#[tokio::test]
async fn duplicate_request_id_is_a_conflict_that_names_no_data() {
    let (store, schema) = store("dupreq").await;
    let g = guild(11);
    let request_id = "req-TOPSECRET-value";
    let create = change_set(
        g,
        None,
        Some(doc_with("a")),
        &alice(),
        "2026-02-01T00:00:01.000000Z",
        Some(request_id),
    );
    store.commit(create.clone()).await.unwrap();
    let again = change_set(
        g,
        Some(&create.head),
        Some(doc_with("b")),
        &alice(),
        "2026-02-01T00:00:02.000000Z",
        Some(request_id),
    );
    let err = store.commit(again).await.unwrap_err();
    let StoreError::Conflict(message) = &err else {
        panic!("{err:?}");
    };
    // One statement inserts the entry and the request record; either unique
    // index may be the one that refuses.
    assert!(
        message.contains("audit_entries_guild_request") || message.contains("audit_requests_pkey"),
        "{message}"
    );
    assert!(!message.contains("TOPSECRET"), "{message}");
    assert_eq!(store.head(g).await.unwrap(), Some(create.head));
    drop_schema(store, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_on_one_head_exactly_one_wins() {
    let (store, schema) = store("race").await;
    let g = guild(12);
    const WRITERS: usize = 8;

    // Racing creates.
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let store = store.clone();
        let change = change_set(
            g,
            None,
            Some(doc_with(&format!("create_{i}"))),
            &alice(),
            "2026-03-01T00:00:01.000000Z",
            None,
        );
        tasks.push(tokio::spawn(async move { store.commit(change).await }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(wins, 1);
    let head = store.head(g).await.unwrap().unwrap();

    // Racing updates from the same head, several rounds.
    let mut head = head;
    for round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..WRITERS {
            let store = store.clone();
            let change = change_set(
                g,
                Some(&head),
                Some(doc_with(&format!("round_{round}_{i}"))),
                &alice(),
                &format!("2026-03-01T00:00:0{}.000000Z", round + 2),
                None,
            );
            tasks.push(tokio::spawn(async move {
                let expected = change.head.clone();
                store.commit(change).await.map(|()| expected)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(new_head) => winners.push(new_head),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        head = store.head(g).await.unwrap().unwrap();
        assert_eq!(head, winners[0]);
    }

    let mut conn = plain(&schema).await;
    assert_eq!(count(&mut conn, "audit_entries").await, 4);
    assert_eq!(count(&mut conn, "guild_snapshots").await, 4);
    conn.close().await.unwrap();
    drop_schema(store, &schema).await;
}

#[tokio::test]
async fn append_only_tables_refuse_update_delete_truncate() {
    let (store, schema) = store("appendonly").await;
    let g = guild(13);
    let create = change_set(
        g,
        None,
        Some(doc_with("a")),
        &alice(),
        "2026-04-01T00:00:01.000000Z",
        Some("req-1"),
    );
    store.commit(create).await.unwrap();

    let mut conn = plain(&schema).await;
    for replica in [false, true] {
        if replica {
            sqlx::query("SET session_replication_role = replica")
                .execute(&mut conn)
                .await
                .unwrap();
        }
        for (table, column) in [
            ("audit_entries", "entry_hash"),
            ("guild_snapshots", "sha256"),
            ("audit_requests", "fingerprint"),
        ] {
            for statement in [
                format!("UPDATE {table} SET {column} = 'x'"),
                format!("DELETE FROM {table}"),
                format!("TRUNCATE {table}"),
            ] {
                let err = sqlx::query(&statement)
                    .execute(&mut conn)
                    .await
                    .expect_err(&statement);
                assert!(
                    err.to_string()
                        .contains(&format!("guildconf: {table} is append-only")),
                    "{statement} (replica: {replica}): {err}"
                );
            }
            assert_eq!(count(&mut conn, table).await, 1, "{table}");
        }
    }
    // The head is not append-only: it moves with every write.
    let moved = sqlx::query("UPDATE guild_heads SET actor_label = actor_label")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 1);
    conn.close().await.unwrap();
    drop_schema(store, &schema).await;
}

#[tokio::test]
async fn corrupt_rows_are_reported_without_data() {
    let (store, schema) = store("corrupt").await;
    let g = guild(15);
    let create = change_set(
        g,
        None,
        Some(doc_with("a")),
        &alice(),
        "2026-06-01T00:00:01.000000Z",
        None,
    );
    store.commit(create).await.unwrap();
    let mut conn = plain(&schema).await;
    // An attacker with SQL access: drop the trigger, then tamper.
    sqlx::raw_sql(
        "DROP TRIGGER audit_entries_append_only ON audit_entries; \
         UPDATE audit_entries SET body = '{\"TOPSECRET\": 1}';",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let err = store
        .history(&HistoryQuery {
            guild_id: Some(g),
            limit: 10,
            ..HistoryQuery::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains("TOPSECRET"), "{err}");
    conn.close().await.unwrap();
    drop_schema(store, &schema).await;
}

/// A database made before the change feed (migrations 1 and 2 only) gets
/// `change_id`s for its existing heads when a new store opens it, and its
/// watch feed reports writes made afterwards.
#[tokio::test]
async fn a_database_from_before_the_change_feed_is_upgraded() {
    use guildconf_ports::WatchEvent;

    let (schema, mut conn) = schema_migrated_to("upgrade", 2).await;
    for g in [21i64, 22] {
        sqlx::query(
            "INSERT INTO guild_heads (guild_id, version, seq, last_hash, updated_at, actor_id, \
             actor_kind, actor_label, document) \
             VALUES ($1, 1, 1, repeat('a', 64), '2026-01-01T00:00:00.000000Z', 'x', 'human', 'x', '{}')",
        )
        .bind(g)
        .execute(&mut conn)
        .await
        .unwrap();
    }

    let store = PgStore::connect_in_schema(&url(), &schema).await.unwrap();
    let (distinct, lowest): (i64, i64) =
        sqlx::query_as("SELECT count(DISTINCT change_id), min(change_id) FROM guild_heads")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(distinct, 2, "each existing head has its own change_id");
    assert!(lowest > 0);

    let mut watcher = store.watch().await.unwrap();
    assert_eq!(watcher.next().await.unwrap(), WatchEvent::Resync);
    let g = guild(23);
    let create = change_set(
        g,
        None,
        Some(doc_with("a")),
        &alice(),
        "2026-02-01T00:00:01.000000Z",
        None,
    );
    store.commit(create).await.unwrap();
    match watcher.next().await.unwrap() {
        WatchEvent::Changed(changes) => {
            assert_eq!(changes.len(), 1, "{changes:?}");
            assert_eq!((changes[0].guild_id, changes[0].version), (g, 1));
        }
        other => panic!("expected the new write, got {other:?}"),
    }
    drop(watcher);
    drop_schema(store, &schema).await;
}

/// A deterministic spread of documents: keys of every length order and
/// byte order disagree on, escapes, control characters, non-ASCII keys and
/// strings, integers to 2^53, floats, nesting.
fn spread_of_documents() -> Vec<Value> {
    let mut docs = vec![
        json!({"b": 1, "a": [true, null, "x"], "aa": {"z": 15, "y": -2}}),
        json!({"ab!": 1, "ab": 2, "": {}}),
        json!({"s": "tab\there \u{1f} \"q\" \\ / é 😀 \u{2028}", "k\u{7f}": []}),
        json!({"é": 1, "e": 2, "😀": 3, "\u{e000}": 4, "z": 5}),
        json!({"n": 9_007_199_254_740_992_u64, "m": -9_007_199_254_740_992_i64, "z": 0}),
        json!({"f": 1.5, "g": 0.1, "h": 1e-7, "i": 1e21, "j": 123.456e5, "k": -0.25}),
        json!([[[{"deep": [{"deeper": "yes"}]}]]]),
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = [
        "a", "b", "ab", "ba", "key", "k\"q", "sp ace", "é", "z9_", "~/", "\n",
    ];
    for _ in 0..300 {
        let mut doc = Map::new();
        for _ in 0..(next() % 6) {
            let key = alphabet[(next() % alphabet.len() as u64) as usize]
                .repeat(1 + (next() % 3) as usize);
            let value = match next() % 6 {
                0 => json!(next() % 10_000),
                1 => json!(alphabet[(next() % alphabet.len() as u64) as usize]),
                2 => json!({"x": next() % 2 == 0, "yy": null}),
                3 => json!([next() % 100, "t", {"k": "v"}]),
                4 => json!((next() % 1000) as f64 / 8.0),
                _ => Value::Null,
            };
            doc.insert(key, value);
        }
        docs.push(Value::Object(doc));
    }
    docs
}

/// Rows written as a guildconf before migration 0005 wrote them (documents
/// as `jsonb`) upgrade without loss: after the upgrade every snapshot and
/// head holds exactly the RFC 8785 text that was hashed, byte for byte, the
/// generated `document_jsonb` holds the same document, and a database
/// stopped between the SQL half and the Rust half of the upgrade is refused
/// by an open that does not migrate.
#[tokio::test]
async fn documents_stored_as_jsonb_upgrade_to_their_hashed_text() {
    let (schema, mut conn) = schema_migrated_to("doc_text", 4).await;

    // A chain per guild over the spread of documents, the last guild deleted,
    // written with the statements of schema version 4.
    let docs = spread_of_documents();
    let mut expected: Vec<(i64, i64, String)> = Vec::new();
    let mut heads: Vec<Head> = Vec::new();
    for (n, chunk) in docs.chunks(100).enumerate() {
        let g = guild(700 + n as u64);
        let mut head: Option<Head> = None;
        let mut steps: Vec<Option<Value>> = chunk.iter().cloned().map(Some).collect();
        if n == 2 {
            steps.push(None);
        }
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        for (i, doc) in steps.into_iter().enumerate() {
            let at = ts(&format!(
                "2026-01-01T00:{:02}:{:02}.000000Z",
                i / 60,
                i % 60
            ))
            .datetime();
            let change = contract::change_set(g, head.as_ref(), doc, &alice(), at, None);
            if let Some(snapshot) = &change.snapshot {
                sqlx::query(
                    "INSERT INTO guild_snapshots (guild_id, version, document, sha256) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(g.as_i64())
                .bind(snapshot.version as i64)
                .bind(sqlx::types::Json(snapshot.document.value()))
                .bind(snapshot.document.sha256())
                .execute(&mut conn)
                .await
                .unwrap();
                expected.push((
                    g.as_i64(),
                    snapshot.version as i64,
                    snapshot.document.text().to_owned(),
                ));
            }
            let body = change.entry.body();
            sqlx::query(
                "INSERT INTO audit_entries (guild_id, seq, config_version, operation, \
                 occurred_at, actor_id, request_id, body, entry_hash, prev_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9)",
            )
            .bind(g.as_i64())
            .bind(body.seq as i64)
            .bind(body.config_version as i64)
            .bind(body.operation.as_str())
            .bind(body.occurred_at.to_string())
            .bind(&body.actor.id)
            .bind(change.entry.text())
            .bind(change.entry.entry_hash())
            .bind(&body.prev_hash)
            .execute(&mut conn)
            .await
            .unwrap();
            head = Some(change.head);
        }
        let h = head.unwrap();
        sqlx::query(
            "INSERT INTO guild_heads (guild_id, version, seq, last_hash, updated_at, actor_id, \
             actor_kind, actor_label, document) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(g.as_i64())
        .bind(h.version as i64)
        .bind(h.seq as i64)
        .bind(&h.last_hash)
        .bind(h.updated_at.to_string())
        .bind(&h.actor.id)
        .bind(h.actor.kind.as_str())
        .bind(&h.actor.label)
        .bind(h.document.as_ref().map(sqlx::types::Json))
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
        heads.push(h);
    }
    assert!(expected.len() > 250, "{}", expected.len());

    // The SQL half alone: a store that may not migrate refuses the database.
    migrator_up_to(5).run(&mut conn).await.unwrap();
    let db_url = format!("{}?options=-c%20search_path%3D{schema}", url());
    let refused = PgStore::connect_with(&db_url, false).await.unwrap_err();
    assert!(
        refused.to_string().contains("guildconf migrate"),
        "{refused}"
    );

    let store = PgStore::connect_in_schema(&url(), &schema).await.unwrap();
    let stored: Vec<(i64, i64, String, String, bool)> = sqlx::query_as(
        "SELECT guild_id, version, document, sha256, document_jsonb = document::jsonb \
         FROM guild_snapshots ORDER BY guild_id, version",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(stored.len(), expected.len());
    for ((g, v, text, sha, same_jsonb), (eg, ev, etext)) in stored.iter().zip(&expected) {
        assert_eq!((g, v), (eg, ev));
        assert_eq!(text, etext, "guild {g} version {v}: not the hashed bytes");
        assert_eq!(*sha, guildconf_domain::json::sha256_hex(text.as_bytes()));
        assert!(same_jsonb, "guild {g} version {v}");
    }
    for h in &heads {
        let text: Option<String> =
            sqlx::query_scalar("SELECT document FROM guild_heads WHERE guild_id = $1")
                .bind(h.guild_id.as_i64())
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let want = h
            .document
            .as_ref()
            .map(|d| guildconf_domain::json::canonical_json(d).unwrap());
        assert_eq!(text, want, "head of guild {}", h.guild_id);
        assert_eq!(store.head(h.guild_id).await.unwrap().as_ref(), Some(h));
    }
    // Every trigger of both tables fires again, also under replication.
    let not_always: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'A' \
         AND tgrelid IN ('guild_heads'::regclass, 'guild_snapshots'::regclass)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(not_always, 0, "triggers left disabled by the upgrade");
    // The jsonb form is derived, never written: not even the owner can
    // make it disagree with the text verify proves.
    for table in ["guild_heads", "guild_snapshots"] {
        let forged = sqlx::query(&format!(
            "UPDATE {table} SET document_jsonb = '{{}}'::jsonb"
        ))
        .execute(&mut conn)
        .await;
        assert!(
            forged.is_err(),
            "{table}.document_jsonb must not be writable"
        );
    }
    // The append-only trigger is on again after the swap.
    let update = sqlx::query("UPDATE guild_snapshots SET sha256 = sha256")
        .execute(&mut conn)
        .await;
    assert!(update.is_err(), "snapshots must be append-only again");
    // A second open finds nothing left to upgrade.
    let again = PgStore::connect_in_schema(&url(), &schema).await.unwrap();
    again.pool().close().await;
    drop(conn);
    drop_schema(store, &schema).await;
}
