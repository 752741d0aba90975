//! The embedded SQLite file: one temporary directory per test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use guildconf::ConfigStore;
use guildconf_ports::FaultHook;
use guildconf_sqlite::{SqliteOptions, SqliteStore};

use super::{KeepAlive, TestBackend};
use crate::TestDb;

/// The embedded SQLite file.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sqlite;

impl Sqlite {
    /// The file of a test database on this backend, for tests that open it
    /// with the adapter directly.
    ///
    /// # Panics
    /// When `db` is not an SQLite database.
    pub fn path(db: &TestDb) -> PathBuf {
        path(db.url())
    }
}

fn path(url: &str) -> PathBuf {
    PathBuf::from(
        url.strip_prefix("sqlite://")
            .expect("an SQLite test database has an sqlite:// URL"),
    )
}

#[async_trait]
impl TestBackend for Sqlite {
    fn name(&self) -> &'static str {
        "Sqlite"
    }

    fn test_prefix(&self) -> &'static str {
        "sqlite"
    }

    async fn create(&self, _name: &str) -> (String, KeepAlive) {
        let dir = tempfile::tempdir().expect("a temporary directory should be creatable");
        let url = format!("sqlite://{}", dir.path().join("guildconf.db").display());
        (url, Box::new(dir))
    }

    async fn open_with_fault_hook(&self, url: &str, hook: FaultHook) -> Arc<dyn ConfigStore> {
        let options = SqliteOptions {
            create_if_missing: true,
            ..SqliteOptions::default()
        };
        Arc::new(
            SqliteStore::open(path(url), options)
                .expect("the test database should open")
                .with_fault_hook(hook),
        )
    }

    async fn exec(&self, url: &str, sql: &str) -> Result<(), String> {
        let path = path(url);
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

    async fn rows(&self, url: &str, sql: &str) -> Vec<Vec<String>> {
        let path = path(url);
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

    fn triggers_sql(&self) -> &'static str {
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    }

    fn drop_trigger_sql(&self, row: &[String]) -> String {
        format!("DROP TRIGGER IF EXISTS \"{}\";", row[0])
    }

    fn fault_trigger_sql(&self, table: &str, event: &str) -> String {
        format!(
            "CREATE TRIGGER fault_{table} BEFORE {event} ON {table} BEGIN SELECT RAISE(ABORT, 'injected fault'); END;"
        )
    }

    fn drop_fault_trigger_sql(&self, table: &str) -> String {
        format!("DROP TRIGGER fault_{table};")
    }

    fn shell(&self, url: &str, sql: &str) -> Command {
        let mut cmd = Command::new("/usr/bin/sqlite3");
        cmd.arg(path(url)).arg(sql);
        cmd
    }

    fn missing_database_url(&self, _url: &str, dir: &Path, _name: &str) -> String {
        format!("sqlite://{}", dir.join("missing.db").display())
    }

    fn append_only_bypasses(&self) -> Vec<String> {
        Vec::new()
    }

    fn purge_bypasses(&self, guild: &str, other_guild: &str) -> Vec<String> {
        vec![
            // A gate row for another guild does not open this one.
            format!("BEGIN; INSERT INTO purge_gate VALUES ({other_guild}); DELETE FROM audit_entries WHERE guild_id = {guild}; COMMIT"),
            format!("BEGIN; INSERT INTO purge_gate VALUES ({guild}); UPDATE audit_entries SET actor_id = 'm'; COMMIT"),
        ]
    }

    fn purge_gate_table(&self) -> Option<&'static str> {
        Some("purge_gate")
    }
}
