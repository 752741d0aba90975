//! What the harness needs to know about one storage backend, behind one
//! trait: each backend under test is one [`TestBackend`] implementation in a
//! submodule here, listed once in the registry (`registry!` in `lib.rs`).

use std::fmt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use guildconf::ConfigStore;
use guildconf_ports::FaultHook;

mod postgres;
mod sqlite;

pub use postgres::{pg_admin_url, Postgres};
pub use sqlite::Sqlite;

/// A backend under test, as tests take it: a handle on its
/// [`TestBackend`]. `{backend:?}` prints its [`TestBackend::name`].
pub type Backend = &'static dyn TestBackend;

/// What keeps a test's database alive (a temporary directory, say) until
/// its [`crate::TestDb`] is dropped.
pub type KeepAlive = Box<dyn fmt::Debug + Send + Sync>;

/// Everything backend-specific the suite does outside the library: making
/// a test's database, plain SQL as its owner, triggers for tampering and
/// fault injection, the backend's own shell, and the few statements whose
/// SQL differs per backend.
#[async_trait]
pub trait TestBackend: Send + Sync + 'static {
    /// The backend's name in messages and in the database names of tests
    /// that loop over backends (`Sqlite`, `Postgres`).
    fn name(&self) -> &'static str;

    /// What [`crate::contract!`] puts before a test's name to name its
    /// database (`sqlite`, `pg`).
    fn test_prefix(&self) -> &'static str;

    /// A fresh, empty database for the test `name` (unique per test): its
    /// URL, as the CLI takes it, and what keeps it alive.
    ///
    /// # Panics
    /// When the database cannot be made: a missing server is a failed test,
    /// never a skipped one.
    async fn create(&self, name: &str) -> (String, KeepAlive);

    /// A new store on `url` whose commits call `hook` before each write step
    /// (the adapters' fault-injection seam).
    async fn open_with_fault_hook(&self, url: &str, hook: FaultHook) -> Arc<dyn ConfigStore>;

    /// Runs plain SQL on `url` through a separate connection, as the
    /// database's owner.
    ///
    /// # Errors
    /// The database's error message.
    async fn exec(&self, url: &str, sql: &str) -> Result<(), String>;

    /// Rows of a query on `url` whose columns are all read as text, through
    /// a separate connection.
    async fn rows(&self, url: &str, sql: &str) -> Vec<Vec<String>>;

    /// A query listing the database's triggers, one row per trigger, each
    /// row what [`TestBackend::drop_trigger_sql`] takes.
    fn triggers_sql(&self) -> &'static str;

    /// The statement dropping one trigger listed by
    /// [`TestBackend::triggers_sql`].
    fn drop_trigger_sql(&self, row: &[String]) -> String;

    /// A trigger `fault_<table>` that makes each `event` (`INSERT`,
    /// `UPDATE`) on `table` fail with `injected fault`.
    fn fault_trigger_sql(&self, table: &str, event: &str) -> String;

    /// Drops the trigger made by [`TestBackend::fault_trigger_sql`].
    fn drop_fault_trigger_sql(&self, table: &str) -> String;

    /// The backend's own shell (`sqlite3`, `psql`) running `sql` on `url`.
    fn shell(&self, url: &str, sql: &str) -> Command;

    /// A URL of this backend naming a database that does not exist, for the
    /// test `name`, beside the test database `url` (files go in `dir`).
    fn missing_database_url(&self, url: &str, dir: &Path, name: &str) -> String;

    /// An SQL expression: the JSON document in `column` with the boolean at
    /// `path` flipped to `value` (the stored value must be `!value`). Both
    /// backends store documents as their canonical text, so the key's text
    /// is replaced in place, as an attacker editing the stored bytes would.
    fn set_json_bool_sql(&self, column: &str, path: &[&str], value: bool) -> String {
        let key = path.last().expect("a path to a value");
        format!(
            "REPLACE({column}, '\"{key}\":{}', '\"{key}\":{value}')",
            !value
        )
    }

    /// Statements beyond plain `UPDATE` and `DELETE` that try to get around
    /// this backend's append-only triggers (the guard must refuse them).
    fn append_only_bypasses(&self) -> Vec<String>;

    /// Statements that try to get around the append-only triggers through,
    /// or beside, this backend's purge gate, aimed at the rows of `guild`
    /// (with `other_guild` where a gate names a guild): the guard must
    /// refuse them.
    fn purge_bypasses(&self, guild: &str, other_guild: &str) -> Vec<String>;

    /// The table whose rows open the purge gate, where the gate is a table
    /// (empty whenever no purge runs); `None` where it is a setting.
    fn purge_gate_table(&self) -> Option<&'static str>;
}

impl fmt::Debug for dyn TestBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
