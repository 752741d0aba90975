//! The contract-suite harness: a fresh database per test on each backend,
//! plain-SQL access for tampering and fault injection, a deterministic clock,
//! and the [`contract!`] macro that instantiates every test once per backend.
//!
//! Adding a backend takes a module in [`contract!`] and an arm in each
//! `match` on `Backend`, here and in the suite modules that match on it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use guildconf::{ConfigService, ConfigStore};
use guildconf_ports::{Clock, FaultHook};
use guildconf_postgres::PgStore;
use guildconf_sqlite::{SqliteOptions, SqliteStore};
use sqlx::{Connection, Executor, Row};

/// The storage backends under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// The local PostgreSQL server.
    Postgres,
}

/// The PostgreSQL server tests use: `GUILDCONF_TEST_PG_URL`, or the local
/// default. Tests that need it fail when it does not answer; they never skip.
pub fn pg_admin_url() -> String {
    std::env::var("GUILDCONF_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Replaces the database name of a PostgreSQL URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

/// A clock that starts at 2026-01-01T00:00:00Z and moves one second per
/// reading, so the same operations give the same timestamps on every backend.
#[derive(Debug)]
pub struct StepClock {
    micros: AtomicI64,
    step: i64,
}

impl StepClock {
    /// A clock at 2026-01-01T00:00:00Z stepping one second.
    pub fn new() -> Self {
        Self {
            micros: AtomicI64::new(1_767_225_600_000_000),
            step: 1_000_000,
        }
    }
}

impl Default for StepClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StepClock {
    fn now(&self) -> DateTime<Utc> {
        let t = self.micros.fetch_add(self.step, Ordering::SeqCst);
        DateTime::from_timestamp_micros(t).unwrap_or_default()
    }
}

/// One test's own database.
#[derive(Debug)]
pub struct TestDb {
    /// The backend.
    pub backend: Backend,
    url: String,
    _dir: Option<tempfile::TempDir>,
    sqlite_path: Option<PathBuf>,
}

impl TestDb {
    /// A fresh, empty database for the test `name` (unique per test).
    ///
    /// # Panics
    /// When PostgreSQL does not answer: a missing server is a failed test.
    pub async fn new(backend: Backend, name: &str) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory should be creatable");
                let path = dir.path().join("guildconf.db");
                Self {
                    backend,
                    url: format!("sqlite://{}", path.display()),
                    _dir: Some(dir),
                    sqlite_path: Some(path),
                }
            }
            Backend::Postgres => {
                let db: String = format!("gct_{name}")
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_lowercase()
                        } else {
                            '_'
                        }
                    })
                    .take(63)
                    .collect();
                let admin = pg_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL at {admin} is unreachable ({e}); start it (see README) or set GUILDCONF_TEST_PG_URL"
                    )
                });
                conn.execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                    .await
                    .expect("dropping a leftover test database should work");
                conn.execute(format!("CREATE DATABASE {db}").as_str())
                    .await
                    .expect("creating a test database should work");
                Self {
                    backend,
                    url: with_database(&admin, &db),
                    _dir: None,
                    sqlite_path: None,
                }
            }
        }
    }

    /// The database URL, as the CLI takes it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SQLite file, for the sqlite3 shell.
    pub fn sqlite_path(&self) -> Option<&PathBuf> {
        self.sqlite_path.as_ref()
    }

    /// A new store on this database (its own connections).
    pub async fn store(&self) -> Arc<dyn ConfigStore> {
        guildconf::open(
            &self.url,
            guildconf::OpenOptions::new().create_if_missing(true),
        )
        .await
        .expect("the test database should open")
    }

    /// A new store on this database whose commits call `hook` before each
    /// write step (the adapters' fault-injection seam).
    pub async fn store_with_fault_hook(&self, hook: FaultHook) -> Arc<dyn ConfigStore> {
        match self.backend {
            Backend::Sqlite => {
                let path = self.sqlite_path.clone().expect("sqlite test db has a path");
                let options = SqliteOptions {
                    create_if_missing: true,
                    ..SqliteOptions::default()
                };
                Arc::new(
                    SqliteStore::open(path, options)
                        .expect("the test database should open")
                        .with_fault_hook(hook),
                )
            }
            Backend::Postgres => Arc::new(
                PgStore::connect(&self.url)
                    .await
                    .expect("the test database should open")
                    .with_fault_hook(hook),
            ),
        }
    }

    /// Every row of the four tables for one guild, all columns as text, in
    /// key order: the whole stored state of a guild, for exact comparison.
    pub async fn dump(&self, guild: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for (table, columns, order) in [
            (
                "guild_heads",
                "version, seq, last_hash, updated_at, actor_id, actor_kind, actor_label, document",
                "guild_id",
            ),
            ("guild_snapshots", "version, document, sha256", "version"),
            (
                "audit_entries",
                "seq, config_version, operation, occurred_at, actor_id, request_id, body, entry_hash, prev_hash",
                "seq",
            ),
            ("audit_requests", "request_id, fingerprint, result", "request_id"),
        ] {
            let select = columns
                .split(", ")
                .map(|c| format!("CAST({c} AS TEXT)"))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = self
                .rows(&format!(
                    "SELECT '{table}', {select} FROM {table} WHERE guild_id = {guild} ORDER BY {order}"
                ))
                .await;
            out.extend(rows);
        }
        out
    }

    /// A service with a [`StepClock`] on a new store.
    pub async fn service(&self) -> ConfigService {
        ConfigService::new(self.store().await).with_clock(Arc::new(StepClock::new()))
    }

    /// Runs plain SQL through a separate connection, as an attacker or admin
    /// with SQL access would.
    ///
    /// # Errors
    /// The database's error message.
    pub async fn exec(&self, sql: &str) -> Result<(), String> {
        match self.backend {
            Backend::Sqlite => {
                let path = self.sqlite_path.clone().ok_or("no sqlite path")?;
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
                    conn.busy_timeout(std::time::Duration::from_secs(5))
                        .map_err(|e| e.to_string())?;
                    conn.execute_batch(&sql).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.execute(sqlx::raw_sql(sql))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Rows of a query whose columns are all read as text (`CAST(… AS TEXT)`
    /// in the SQL where needed), through a separate connection.
    pub async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match self.backend {
            Backend::Sqlite => {
                let path = self.sqlite_path.clone().expect("sqlite test db has a path");
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open(path).expect("sqlite opens");
                    let mut stmt = conn.prepare(&sql).expect("query prepares");
                    let n = stmt.column_count();
                    let rows = stmt
                        .query_map([], |row| {
                            (0..n)
                                .map(|i| {
                                    row.get::<_, Option<String>>(i)
                                        .map(Option::unwrap_or_default)
                                })
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .expect("query runs");
                    rows.collect::<Result<Vec<_>, _>>().expect("rows read")
                })
                .await
                .expect("blocking task joins")
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("postgres connects");
                let rows = sqlx::query(sql)
                    .fetch_all(&mut conn)
                    .await
                    .expect("query runs");
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                row.try_get::<Option<String>, _>(i)
                                    .expect("text column")
                                    .unwrap_or_default()
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// `SELECT COUNT(*)` of a table for one guild.
    pub async fn count(&self, table: &str, guild: &str) -> u64 {
        let rows = self
            .rows(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM {table} WHERE guild_id = {guild}"
            ))
            .await;
        rows.first()
            .and_then(|r| r.first())
            .and_then(|c| c.parse().ok())
            .expect("a count")
    }

    /// Drops the append-only triggers, as an attacker with SQL access would
    /// before tampering.
    pub async fn drop_triggers(&self) {
        let sql = match self.backend {
            Backend::Sqlite => {
                let names = self
                    .rows("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                    .await;
                names
                    .iter()
                    .map(|r| format!("DROP TRIGGER IF EXISTS \"{}\";", r[0]))
                    .collect::<String>()
            }
            Backend::Postgres => {
                let names = self
                    .rows(
                        "SELECT tgname::text, c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
                         WHERE NOT t.tgisinternal",
                    )
                    .await;
                names
                    .iter()
                    .map(|r| format!("DROP TRIGGER IF EXISTS \"{}\" ON \"{}\";", r[0], r[1]))
                    .collect::<String>()
            }
        };
        self.exec(&sql).await.expect("dropping triggers works");
    }

    /// A trigger that makes inserts into (or, with `event` = `UPDATE`,
    /// updates of) `table` fail: a real database fault at that step of a
    /// write.
    pub async fn fail_on(&self, table: &str, event: &str) {
        let sql = match self.backend {
            Backend::Sqlite => format!(
                "CREATE TRIGGER fault_{table} BEFORE {event} ON {table} BEGIN SELECT RAISE(ABORT, 'injected fault'); END;"
            ),
            Backend::Postgres => format!(
                "CREATE OR REPLACE FUNCTION fault_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$;
                 CREATE TRIGGER fault_{table} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION fault_fn();"
            ),
        };
        self.exec(&sql)
            .await
            .expect("creating a fault trigger works");
    }

    /// Removes a trigger made by [`TestDb::fail_on`].
    pub async fn heal(&self, table: &str) {
        let sql = match self.backend {
            Backend::Sqlite => format!("DROP TRIGGER fault_{table};"),
            Backend::Postgres => format!("DROP TRIGGER fault_{table} ON {table};"),
        };
        self.exec(&sql)
            .await
            .expect("dropping a fault trigger works");
    }
}

/// The `guildconf` binary built beside the tests.
///
/// # Panics
/// When it has not been built (`cargo test --workspace` builds it).
pub fn guildconf_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join(format!("guildconf{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// Instantiates each named contract test once per backend. Each test is an
/// `async fn name(backend: Backend, test_name: &str)` in the calling module.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite, concat!("sqlite_", stringify!($name))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres, concat!("pg_", stringify!($name))).await;
                }
            )*
        }
    };
}

/// A field edit from path segments and values (sets) and path segments
/// (unsets), for tests that build paths as segments.
pub fn edit(
    sets: Vec<(Vec<String>, serde_json::Value)>,
    unsets: Vec<Vec<String>>,
) -> guildconf::FieldEdit {
    let edit = unsets
        .into_iter()
        .fold(guildconf::FieldEdit::new(), |e, p| {
            e.unset(guildconf::FieldPath::from_segments(p))
        });
    sets.into_iter().fold(edit, |e, (p, v)| {
        e.set(guildconf::FieldPath::from_segments(p), v)
    })
}
