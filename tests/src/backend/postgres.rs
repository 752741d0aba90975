//! The local PostgreSQL server: one database per test, made fresh (a
//! leftover of an earlier run is dropped first).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use guildconf::ConfigStore;
use guildconf_ports::FaultHook;
use guildconf_postgres::PgStore;
use sqlx::{Connection, Executor, Row};

use super::{KeepAlive, TestBackend};

/// The local PostgreSQL server.
#[derive(Clone, Copy, Debug, Default)]
pub struct Postgres;

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

/// A test's database, dropped when the test is done (passed or failed; set
/// `GUILDCONF_KEEP_TEST_DB=1` to keep it for a look). `Drop` cannot await,
/// so it asks `psql`; `WITH (FORCE)` ends the connections still open.
#[derive(Debug)]
struct DropDatabase {
    admin: String,
    db: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        if std::env::var_os("GUILDCONF_KEEP_TEST_DB").is_some() {
            return;
        }
        let dropped = Command::new("psql")
            .arg(&self.admin)
            .args(["-qX", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
            .output();
        match dropped {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "could not drop test database {}: {}",
                self.db,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("could not run psql to drop test database {}: {e}", self.db),
        }
    }
}

#[async_trait]
impl TestBackend for Postgres {
    fn name(&self) -> &'static str {
        "Postgres"
    }

    fn test_prefix(&self) -> &'static str {
        "pg"
    }

    async fn create(&self, name: &str) -> (String, KeepAlive) {
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
        (
            with_database(&admin, &db),
            Box::new(DropDatabase { admin, db }),
        )
    }

    async fn open_with_fault_hook(&self, url: &str, hook: FaultHook) -> Arc<dyn ConfigStore> {
        Arc::new(
            PgStore::connect(url)
                .await
                .expect("the test database should open")
                .with_fault_hook(hook),
        )
    }

    async fn exec(&self, url: &str, sql: &str) -> Result<(), String> {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        conn.execute(sqlx::raw_sql(sql))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn rows(&self, url: &str, sql: &str) -> Vec<Vec<String>> {
        let mut conn = sqlx::PgConnection::connect(url)
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

    fn triggers_sql(&self) -> &'static str {
        "SELECT tgname::text, c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         WHERE NOT t.tgisinternal"
    }

    fn drop_trigger_sql(&self, row: &[String]) -> String {
        format!("DROP TRIGGER IF EXISTS \"{}\" ON \"{}\";", row[0], row[1])
    }

    fn fault_trigger_sql(&self, table: &str, event: &str) -> String {
        format!(
            "CREATE OR REPLACE FUNCTION fault_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$;
             CREATE TRIGGER fault_{table} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION fault_fn();"
        )
    }

    fn drop_fault_trigger_sql(&self, table: &str) -> String {
        format!("DROP TRIGGER fault_{table} ON {table};")
    }

    fn shell(&self, url: &str, sql: &str) -> Command {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]);
        cmd
    }

    fn missing_database_url(&self, url: &str, _dir: &Path, name: &str) -> String {
        let (prefix, _) = url.rsplit_once('/').expect("a database name");
        format!(
            "{prefix}/gct_missing_{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        )
    }

    fn append_only_bypasses(&self) -> Vec<String> {
        vec![
            "TRUNCATE audit_entries".into(),
            "TRUNCATE guild_snapshots".into(),
            "SET session_replication_role = replica; DELETE FROM audit_entries".into(),
        ]
    }

    fn purge_bypasses(&self, _guild: &str, _other_guild: &str) -> Vec<String> {
        vec![
            "SET session_replication_role = replica; DELETE FROM audit_entries".to_string(),
            "SET session_replication_role = replica; DELETE FROM guild_snapshots".to_string(),
            "TRUNCATE audit_entries".to_string(),
            // The gate lets DELETE through only: never UPDATE or TRUNCATE.
            "BEGIN; SET LOCAL guildconf.purge = 'on'; UPDATE audit_entries SET actor_id = 'm'; COMMIT".to_string(),
            "BEGIN; SET LOCAL guildconf.purge = 'on'; TRUNCATE guild_snapshots; COMMIT".to_string(),
            // A setting of another transaction does not carry over.
            "BEGIN; SET LOCAL guildconf.purge = 'on'; COMMIT; DELETE FROM audit_entries".to_string(),
        ]
    }

    /// The gate is the transaction-local setting `guildconf.purge`.
    fn purge_gate_table(&self) -> Option<&'static str> {
        None
    }
}
