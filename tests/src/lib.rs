//! The contract-suite harness: a fresh database per test on each backend,
//! plain-SQL access for tampering and fault injection, a deterministic clock,
//! and the [`contract!`] macro that instantiates every test once per backend.
//!
//! Everything backend-specific sits behind one trait, [`TestBackend`], with
//! one implementation per backend in `src/backend/`. Adding a backend takes
//! its adapter crate, one `impl TestBackend`, and one line in [`registry!`],
//! which both [`contract!`] and [`BACKENDS`] read.

pub mod backend;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use guildconf::{ConfigService, ConfigStore, Entropy};
use guildconf_ports::{Clock, FaultHook};

pub use backend::{pg_admin_url, Backend, Postgres, Sqlite, TestBackend};

/// The registry: every backend under test, once, as `module => backend`
/// (the module names the tests [`contract!`] makes for it). Hands the list
/// to the exported macro `$then` before the rest of the input.
#[doc(hidden)]
#[macro_export]
macro_rules! registry {
    ($then:ident! { $($input:tt)* }) => {
        $crate::$then! {
            [
                sqlite => $crate::Sqlite,
                postgres => $crate::Postgres
            ]
            $($input)*
        }
    };
}

/// The registered backends as a slice.
#[doc(hidden)]
#[macro_export]
macro_rules! backend_list {
    ([$($module:ident => $backend:path),*]) => {
        &[$(&$backend),*]
    };
}

/// Every registered backend, in registry order: for tests that loop over
/// backends or move data between them.
pub static BACKENDS: &[Backend] = registry!(backend_list! {});

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

/// Randomness that is not random, for API tokens: the n-th fill is the
/// little-endian bytes of n repeated, each XORed with its index. Every fill
/// differs, so tokens stay distinct, and the same operations draw the same
/// token ids (hence write the same entries) on every backend.
#[derive(Debug, Default)]
pub struct StepEntropy {
    fills: AtomicU64,
}

impl Entropy for StepEntropy {
    fn fill(&self, bytes: &mut [u8]) -> Result<(), String> {
        let n = self.fills.fetch_add(1, Ordering::SeqCst).to_le_bytes();
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = n[i % n.len()] ^ (i as u8);
        }
        Ok(())
    }
}

/// One test's own database.
#[derive(Debug)]
pub struct TestDb {
    /// The backend.
    pub backend: Backend,
    url: String,
    _keep: backend::KeepAlive,
}

impl TestDb {
    /// A fresh, empty database for the test `name` (unique per test).
    ///
    /// # Panics
    /// When PostgreSQL does not answer: a missing server is a failed test.
    pub async fn new(backend: Backend, name: &str) -> Self {
        let (url, keep) = backend.create(name).await;
        Self {
            backend,
            url,
            _keep: keep,
        }
    }

    /// The database URL, as the CLI takes it.
    pub fn url(&self) -> &str {
        &self.url
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
        self.backend.open_with_fault_hook(&self.url, hook).await
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

    /// A service with a [`StepClock`] and [`StepEntropy`] on a new store.
    pub async fn service(&self) -> ConfigService {
        ConfigService::new(self.store().await)
            .with_clock(Arc::new(StepClock::new()))
            .with_entropy(Arc::new(StepEntropy::default()))
    }

    /// Runs plain SQL through a separate connection, as an attacker or admin
    /// with SQL access would.
    ///
    /// # Errors
    /// The database's error message.
    pub async fn exec(&self, sql: &str) -> Result<(), String> {
        self.backend.exec(&self.url, sql).await
    }

    /// Rows of a query whose columns are all read as text (`CAST(… AS TEXT)`
    /// in the SQL where needed), through a separate connection.
    pub async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        self.backend.rows(&self.url, sql).await
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
        let sql = self
            .rows(self.backend.triggers_sql())
            .await
            .iter()
            .map(|row| self.backend.drop_trigger_sql(row))
            .collect::<String>();
        self.exec(&sql).await.expect("dropping triggers works");
    }

    /// A trigger that makes inserts into (or, with `event` = `UPDATE`,
    /// updates of) `table` fail: a real database fault at that step of a
    /// write.
    pub async fn fail_on(&self, table: &str, event: &str) {
        self.exec(&self.backend.fault_trigger_sql(table, event))
            .await
            .expect("creating a fault trigger works");
    }

    /// Removes a trigger made by [`TestDb::fail_on`].
    pub async fn heal(&self, table: &str) {
        self.exec(&self.backend.drop_fault_trigger_sql(table))
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

/// Instantiates each named contract test once per registered backend, in
/// a module named after it (`sqlite::name`, `postgres::name`). Each test is
/// an `async fn name(backend: Backend, test_name: &str)` in the calling
/// module; `test_name` is the backend's [`TestBackend::test_prefix`], `_`,
/// and the test's name.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        $crate::registry!(contract_modules! { $($name),* });
    };
}

/// One module of tests per backend of the list, recursively.
#[doc(hidden)]
#[macro_export]
macro_rules! contract_modules {
    ([] $($name:ident),*) => {};
    ([$module:ident => $backend:path $(, $more:ident => $more_backend:path)*] $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend: $crate::Backend = &$backend;
                    let test_name = format!("{}_{}", backend.test_prefix(), stringify!($name));
                    super::$name(backend, &test_name).await;
                }
            )*
        }
        $crate::contract_modules!([$($more => $more_backend),*] $($name),*);
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
