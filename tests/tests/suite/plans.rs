//! History is served by indexes: on 100,000 audit entries (about 1,000
//! guilds, one of them with 20,000 entries, five actors), after ANALYZE, the
//! plan of every history query the app runs has no sequential scan of
//! `audit_entries`. The plans come from each adapter's `explain_history`,
//! which EXPLAINs exactly the SQL its `history` runs.

use chrono::DateTime;
use guildconf::{GuildId, Timestamp};
use guildconf_ports::{HistoryPosition, HistoryQuery, StoreResult};
use guildconf_postgres::PgStore;
use guildconf_sqlite::{SqliteOptions, SqliteStore};
use guildconf_tests::{Postgres, Sqlite, TestBackend, TestDb};

const ROWS: i64 = 100_000;
/// Entries of guild 1; the other rows spread over guilds 2..=1000.
const BIG_GUILD_ROWS: i64 = 20_000;
const OTHER_GUILDS: i64 = 999;
const EPOCH: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Row `i`'s guild, as the bulk load computes it.
fn guild_of(i: i64) -> i64 {
    if i <= BIG_GUILD_ROWS {
        1
    } else {
        2 + i % OTHER_GUILDS
    }
}

/// Row `i`'s `occurred_at`: one second apart.
fn time_of(i: i64) -> Timestamp {
    let at = DateTime::from_timestamp(EPOCH + i, 0).expect("a valid time");
    Timestamp::from_datetime(at)
}

fn gid(n: i64) -> GuildId {
    GuildId::from_i64(n).expect("test ids are valid")
}

fn position(i: i64) -> Option<HistoryPosition> {
    Some(HistoryPosition {
        occurred_at: time_of(i),
        guild_id: gid(guild_of(i)),
        seq: u64::try_from(i).expect("positive"),
    })
}

/// The history queries the app runs, named.
fn queries() -> Vec<(&'static str, HistoryQuery)> {
    let guild = Some(gid(1));
    let actor = Some("actor-3".to_string());
    vec![
        (
            "guild, newest first, first page",
            HistoryQuery {
                guild_id: guild,
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "guild, newest first, deep page",
            HistoryQuery {
                guild_id: guild,
                after: position(10_000),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "actor across guilds, first page",
            HistoryQuery {
                actor_id: actor.clone(),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "actor across guilds, deep page",
            HistoryQuery {
                actor_id: actor,
                after: position(50_003),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "guild + since/until",
            HistoryQuery {
                guild_id: guild,
                since: Some(time_of(5_000)),
                until: Some(time_of(6_000)),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "small guild + since/until",
            HistoryQuery {
                guild_id: Some(gid(guild_of(60_000))),
                since: Some(time_of(40_000)),
                until: Some(time_of(80_000)),
                limit: 50,
                ..Default::default()
            },
        ),
    ]
}

/// The columns and the guild expression of both bulk loads.
fn bulk_load_parts() -> (&'static str, String) {
    (
        "guild_id, seq, config_version, operation, occurred_at, actor_id, request_id, \
         body, entry_hash, prev_hash",
        format!("CASE WHEN i <= {BIG_GUILD_ROWS} THEN 1 ELSE 2 + i % {OTHER_GUILDS} END"),
    )
}

/// What a plan check needs per backend: by nature one implementation per
/// backend (its bulk-load SQL, its EXPLAIN and the way its plans say
/// "sequential scan"), so these tests are instantiated here by hand, not
/// by `contract!`, and a new backend brings its own.
trait Plans: TestBackend + std::fmt::Debug + Sized {
    /// Loads the 100,000 rows and runs ANALYZE.
    fn bulk_load_sql(&self) -> String;
    /// Whether a plan line reads `audit_entries` without an index.
    fn is_sequential_scan(&self, line: &str) -> bool;
    /// The adapter's plan of the history query.
    async fn explain_history(&self, db: &TestDb, query: &HistoryQuery) -> StoreResult<Vec<String>>;
}

impl Plans for Sqlite {
    fn bulk_load_sql(&self) -> String {
        let (columns, guild) = bulk_load_parts();
        format!(
            // Synthetic rows spread over many guilds, not chains: the chain
            // guard would refuse them, and the plans do not depend on it.
            "DROP TRIGGER audit_entries_extend_chain;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
             INSERT INTO audit_entries ({columns})
             SELECT {guild}, i, i, 'update',
                    strftime('%Y-%m-%dT%H:%M:%S', {EPOCH} + i, 'unixepoch') || '.000000Z',
                    'actor-' || (i % 5), NULL, '{{}}', printf('%064x', i), printf('%064x', i - 1)
             FROM n;
             ANALYZE;"
        )
    }

    fn is_sequential_scan(&self, line: &str) -> bool {
        line.contains("SCAN audit_entries")
            && !["USING INDEX", "USING COVERING INDEX", "USING PRIMARY KEY"]
                .iter()
                .any(|ok| line.contains(ok))
    }

    async fn explain_history(&self, db: &TestDb, query: &HistoryQuery) -> StoreResult<Vec<String>> {
        SqliteStore::open(Sqlite::path(db), SqliteOptions::default())
            .expect("opens")
            .explain_history(query)
            .await
    }
}

impl Plans for Postgres {
    fn bulk_load_sql(&self) -> String {
        let (columns, guild) = bulk_load_parts();
        format!(
            // Synthetic rows spread over many guilds, not chains: the chain
            // guard would refuse them, and the plans do not depend on it.
            "DROP TRIGGER audit_entries_extend_chain ON audit_entries;
             INSERT INTO audit_entries ({columns})
             SELECT {guild}, i, i, 'update',
                    to_char(to_timestamp({EPOCH} + i) AT TIME ZONE 'UTC',
                            'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    'actor-' || (i % 5), NULL, '{{}}', lpad(to_hex(i), 64, '0'),
                    lpad(to_hex(i - 1), 64, '0')
             FROM generate_series(1, {ROWS}) AS i;
             ANALYZE audit_entries;"
        )
    }

    fn is_sequential_scan(&self, line: &str) -> bool {
        line.contains("Seq Scan on audit_entries")
    }

    async fn explain_history(&self, db: &TestDb, query: &HistoryQuery) -> StoreResult<Vec<String>> {
        PgStore::connect(db.url())
            .await
            .expect("connects")
            .explain_history(query)
            .await
    }
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_plans_use_indexes_on_100k_entries() {
        super::history_plans_use_indexes_on_100k_entries(
            &guildconf_tests::Sqlite,
            "sqlite_history_plans_use_indexes_on_100k_entries",
        )
        .await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_plans_use_indexes_on_100k_entries() {
        super::history_plans_use_indexes_on_100k_entries(
            &guildconf_tests::Postgres,
            "pg_history_plans_use_indexes_on_100k_entries",
        )
        .await;
    }
}

async fn history_plans_use_indexes_on_100k_entries<B: Plans>(backend: &'static B, name: &str) {
    let started = std::time::Instant::now();
    let db = TestDb::new(backend, name).await;
    drop(db.store().await); // creates the schema
    db.exec(&backend.bulk_load_sql())
        .await
        .expect("bulk load and ANALYZE");
    let loaded = db
        .rows("SELECT CAST(COUNT(*) AS TEXT), CAST(COUNT(DISTINCT guild_id) AS TEXT) FROM audit_entries")
        .await;
    assert_eq!(loaded, vec![vec!["100000".to_string(), "1000".to_string()]]);
    let loaded_at = started.elapsed();

    let mut failures = Vec::new();
    for (what, query) in queries() {
        let plan = backend
            .explain_history(&db, &query)
            .await
            .expect("EXPLAIN runs");
        println!("{backend:?} plan, {what}:");
        for line in &plan {
            println!("    {line}");
        }
        assert!(
            plan.iter().any(|l| l.contains("audit_entries")),
            "{what}: the plan reads audit_entries: {plan:?}"
        );
        if plan.iter().any(|l| backend.is_sequential_scan(l)) {
            failures.push(format!("{what}: {plan:#?}"));
        }
    }
    println!(
        "{backend:?}: loaded 100,000 entries in {:.1} s, all plans in {:.1} s",
        loaded_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "history queries scan audit_entries sequentially:\n{}",
        failures.join("\n")
    );
}

/// Verify and export stream batches with a keyset `(guild_id, seq) > (g, s)`
/// from a prepared statement, which PostgreSQL may run with a *generic* plan
/// once it has run five times. That plan must still start at the key in the
/// primary key: the row comparison is an index condition, never a filter
/// over every earlier entry of a deep guild (which cost 42 ms instead of
/// 1 ms per batch deep in a 100,000-entry guild).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_streaming_batches_start_at_their_key_under_a_generic_plan() {
    let db = TestDb::new(&Postgres, "pg_streaming_generic_plan").await;
    drop(db.store().await); // creates the schema
    db.exec(&Postgres.bulk_load_sql())
        .await
        .expect("bulk load and ANALYZE");
    let store = PgStore::connect(db.url()).await.expect("connects");
    for with_snapshots in [false, true] {
        let plan = store
            .explain_entries_between((gid(1), 15_000), gid(250), with_snapshots)
            .await
            .expect("EXPLAIN runs");
        println!("generic plan, snapshots {with_snapshots}:");
        for line in &plan {
            println!("    {line}");
        }
        assert!(
            plan.iter()
                .any(|l| l.contains("Index Cond") && l.contains("ROW(guild_id, seq) > ROW($1, $2)")),
            "the keyset is an index condition: {plan:#?}"
        );
        assert!(
            !plan
                .iter()
                .any(|l| l.contains("Filter") && l.contains("ROW(guild_id, seq)")),
            "the keyset is never a filter: {plan:#?}"
        );
    }
}
