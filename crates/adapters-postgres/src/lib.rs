//! PostgreSQL storage for guildconf: [`PgStore`] implements
//! [`guildconf_ports::ConfigStore`] with sqlx.
//!
//! Many bot shards may share one database. Each write is one transaction that
//! moves the guild's head with a conditional `UPDATE … WHERE seq = $expected`
//! (or an `INSERT … ON CONFLICT DO NOTHING` for a guild's first write), so
//! concurrent writers on one guild are serialised by the head row lock and the
//! loser gets [`guildconf_ports::StoreError::Conflict`] with nothing written.
//!
//! The schema ships inside the crate (`migrations/`) and is applied on
//! connect unless [`PgOptions::migrate`] says not to. Every pooled
//! connection runs with a lock timeout and a statement timeout
//! ([`PgOptions`]), so a write blocked by a foreign lock fails instead of
//! waiting without bound. Audit entries, snapshots and request records are
//! append-only: triggers refuse `UPDATE`, `DELETE` and `TRUNCATE`, also
//! under `session_replication_role = replica`.
//!
//! Queries are checked at run time, so building never needs a database.

#![warn(missing_docs)]

mod error;
mod store;
mod upgrade;
mod watch;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use guildconf_ports::{FaultHook, StoreError, StoreResult, WriteStep};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::error::{map_migrate, map_sqlx, Timeouts};
pub use crate::watch::WATCH_APPLICATION_NAME;

/// Connections a [`PgStore`] keeps at most.
const MAX_CONNECTIONS: u32 = 8;

/// How long an operation waits for a pooled connection before reporting the
/// database unreachable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection idle for longer than this is pinged before it is
/// handed out; a busier one is not.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The pool settings a [`PgStore`] uses: up to eight connections, a ten
/// second acquire timeout, and a liveness ping only for connections that sat
/// idle for over a second. sqlx's default pings on *every* acquire, a round
/// trip of its own that a write (two acquires) pays twice; a connection in
/// steady use is known to be alive, while one that sat idle may have been
/// cut by a server restart, and is checked (and replaced) before use.
/// Public so that code sharing the database (such as the benchmark's
/// hand-written baselines) can use the same pool policy.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_AFTER_IDLE {
                    // A dead connection is closed and another one taken.
                    return Ok(conn.ping().await.is_ok());
                }
                Ok(true)
            })
        })
}

/// The embedded migrations (`crates/adapters-postgres/migrations`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A guildconf store in a PostgreSQL database: a pool of up to eight
/// connections; an operation that waits over ten seconds for a connection
/// fails with "database unreachable". Cheap to clone: clones share the pool.
///
/// Every write that moves a head gives it the next `change_id` (a sequence),
/// in the write's own transaction. Read caches in other processes poll the
/// heads above the last `change_id` they saw (see
/// [`ConfigStore::watch`](guildconf_ports::ConfigStore::watch)), so they
/// learn about a write once it has committed, within the watch interval.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    connect_options: PgConnectOptions,
    timeouts: Timeouts,
    change_feed: bool,
    watch_interval: Duration,
    fault_hook: Option<FaultHook>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool)
            .field("timeouts", &self.timeouts)
            .field("change_feed", &self.change_feed)
            .field("watch_interval", &self.watch_interval)
            .field("fault_hook", &self.fault_hook.is_some())
            .finish_non_exhaustive()
    }
}

/// How long a statement waits for a lock another session holds, unless
/// [`PgOptions::lock_timeout`] says otherwise.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one statement may run, unless
/// [`PgOptions::statement_timeout`] says otherwise.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest timeout PostgreSQL accepts (`INT_MAX` milliseconds, about
/// 24.8 days); a longer one is cut to it.
const MAX_TIMEOUT_MS: u128 = i32::MAX as u128;

/// How [`PgStore::connect_with_options`] opens a store.
///
/// The timeouts are PostgreSQL's `lock_timeout` and `statement_timeout`,
/// set on every pooled connection (also the change feed's): a statement
/// that waits longer for a lock, or runs longer, fails with
/// [`StoreError::Storage`] naming the timeout and its value, and its
/// transaction is rolled back. Zero turns a timeout off. Migrations run on
/// a connection of their own with both off, since a schema change may
/// rewrite a large table; a bulk write ([`ConfigStore::commit_all`], what
/// import and copy use) turns the statement timeout off for its
/// transaction, whose commit checks every guild's head at once.
///
/// [`ConfigStore::commit_all`]: guildconf_ports::ConfigStore::commit_all
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PgOptions {
    /// Whether pending migrations are applied on open (default `true`).
    /// With `false` nothing is migrated and a database whose schema is not
    /// exactly the one this build knows is refused.
    pub migrate: bool,
    /// How long a statement waits for a lock (default
    /// [`DEFAULT_LOCK_TIMEOUT`]; whole milliseconds, at most about 24 days).
    pub lock_timeout: Duration,
    /// How long one statement may run (default
    /// [`DEFAULT_STATEMENT_TIMEOUT`]; whole milliseconds, at most about 24
    /// days).
    pub statement_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            migrate: true,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

/// A timeout as PostgreSQL's setting takes it: whole milliseconds (a
/// nonzero duration under one millisecond is one), cut to the longest it
/// accepts.
fn setting_ms(d: Duration) -> u128 {
    if d.is_zero() {
        0
    } else {
        d.as_millis().clamp(1, MAX_TIMEOUT_MS)
    }
}

impl PgOptions {
    /// The timeouts as they are set, for error messages.
    fn timeouts(&self) -> Timeouts {
        let set = |d: Duration| {
            Some(Duration::from_millis(
                u64::try_from(setting_ms(d)).unwrap_or(u64::MAX),
            ))
        };
        Timeouts {
            lock: set(self.lock_timeout),
            statement: set(self.statement_timeout),
        }
    }

    /// `options` with this store's timeouts for every connection.
    fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        options.options([
            (
                "lock_timeout",
                format!("{}ms", setting_ms(self.lock_timeout)),
            ),
            (
                "statement_timeout",
                format!("{}ms", setting_ms(self.statement_timeout)),
            ),
        ])
    }
}

/// Refuses a database whose applied migrations are not exactly this
/// build's (for opening without migrating).
async fn check_current(pool: &PgPool, timeouts: Timeouts) -> StoreResult<()> {
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let applied: Result<Vec<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await;
    let applied = match applied {
        Ok(v) => v,
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P01") => Vec::new(),
        Err(e) => return Err(timeouts.map(e)),
    };
    if applied == known {
        let mut conn = pool.acquire().await.map_err(map_sqlx)?;
        if upgrade::documents_pending(&mut conn).await? {
            return Err(StoreError::Storage(
                "the database's stored documents still wait to be converted to canonical text: \
                 run `guildconf migrate` (as a role that may change the schema)"
                    .into(),
            ));
        }
        return Ok(());
    }
    let newer = applied.iter().any(|v| !known.contains(v));
    Err(StoreError::Storage(if newer {
        format!(
            "the database's schema has migrations this guildconf does not know ({} applied, {} \
             known): upgrade guildconf",
            applied.len(),
            known.len()
        )
    } else {
        format!(
            "the database's schema is at {} of this guildconf's {} migrations: run `guildconf \
             migrate` (as a role that may change the schema)",
            applied.len(),
            known.len()
        )
    }))
}

/// How often a [`ConfigStore::watch`](guildconf_ports::ConfigStore::watch)
/// feed polls for heads that moved, unless [`PgStore::with_watch_interval`]
/// says otherwise: the staleness bound of a read cache on PostgreSQL.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(50);

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/database`), applies any
    /// pending migrations, and returns the store. Tables live in the first
    /// schema of the connection's default `search_path` (usually `public`).
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the URL is invalid (the URL is not
    /// echoed), the database is unreachable, or a migration fails.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, true).await
    }

    /// Like [`PgStore::connect`]; with `migrate` false, no migration runs
    /// and a database whose schema is not exactly the one this build knows
    /// (older, newer or none) is refused, so the application's role needs
    /// no DDL rights (`guildconf migrate` is then an explicit step).
    ///
    /// # Errors
    /// As [`PgStore::connect`], and [`StoreError::Storage`] naming the
    /// schema's state when it is not current.
    pub async fn connect_with(url: &str, migrate: bool) -> StoreResult<Self> {
        Self::connect_with_options(
            url,
            PgOptions {
                migrate,
                ..PgOptions::default()
            },
        )
        .await
    }

    /// Like [`PgStore::connect`], with the given migration choice and
    /// timeouts (see [`PgOptions`]).
    ///
    /// # Errors
    /// As [`PgStore::connect_with`].
    pub async fn connect_with_options(url: &str, options: PgOptions) -> StoreResult<Self> {
        Self::open(parse_url(url)?, options).await
    }

    /// Like [`PgStore::connect`], but keeps every table in `schema`: the
    /// schema is created if missing, every pooled connection gets
    /// `search_path` set to it, and the migrations run inside it. Lets several
    /// independent stores (such as parallel tests) share one database.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when `schema` is not a plain lowercase name
    /// (`[a-z_][a-z0-9_]{0,62}`), or as [`PgStore::connect`].
    pub async fn connect_in_schema(url: &str, schema: &str) -> StoreResult<Self> {
        validate_schema_name(schema)?;
        let options = parse_url(url)?;
        let mut conn = options.connect().await.map_err(map_sqlx)?;
        // The name is validated above, so quoting it is enough.
        let created = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&mut conn)
            .await
            .map_err(map_sqlx);
        // Two stores creating the same schema at once may race on the
        // catalog; the loser's schema exists all the same.
        match created {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        conn.close().await.map_err(map_sqlx)?;
        Self::open(
            options.options([("search_path", schema)]),
            PgOptions::default(),
        )
        .await
    }

    /// Test seam: calls `hook` inside every commit transaction right before
    /// each [`WriteStep`] it runs (`Commit` right before the commit itself);
    /// an `Err` rolls the write back and is returned to the caller.
    /// Production code never sets a hook.
    #[must_use]
    pub fn with_fault_hook(mut self, hook: FaultHook) -> Self {
        self.fault_hook = Some(hook);
        self
    }

    /// Maps a sqlx error of this store's statements, naming this store's
    /// timeout when one was exceeded.
    fn err(&self, error: sqlx::Error) -> StoreError {
        self.timeouts.map(error)
    }

    /// Runs the fault hook, if any, for `step`.
    fn fault(&self, step: WriteStep) -> StoreResult<()> {
        self.fault_hook.as_ref().map_or(Ok(()), |hook| hook(step))
    }

    /// The underlying connection pool (for tests and maintenance).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Turns the change feed off (or on again) for this store's updates:
    /// they then keep their head's old `change_id`, so read caches in other
    /// processes only see them when their entries expire. For measuring what
    /// the feed costs a write; never needed in production.
    #[must_use]
    pub fn with_change_feed(mut self, on: bool) -> Self {
        self.change_feed = on;
        self
    }

    /// How often this store's watch feeds poll for heads that moved
    /// (default [`DEFAULT_WATCH_INTERVAL`], at least 1 ms).
    #[must_use]
    pub fn with_watch_interval(mut self, interval: Duration) -> Self {
        self.watch_interval = interval.max(Duration::from_millis(1));
        self
    }

    async fn open(options: PgConnectOptions, pg: PgOptions) -> StoreResult<Self> {
        // One direct connection first: an unreachable server fails at once
        // instead of after the pool's acquire timeout (a pool retries a
        // refused connection until then).
        let conn = options.connect().await.map_err(map_sqlx)?;
        conn.close().await.map_err(map_sqlx)?;
        if pg.migrate {
            // Migrations run with both timeouts off: a schema change may
            // rewrite a large table, and a second process opening a fresh
            // database waits for the first one's migration lock. (On a pool
            // of one: the migrator's future is not `Send` when it borrows a
            // bare connection.)
            let migrating = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(
                    options
                        .clone()
                        .options([("lock_timeout", "0"), ("statement_timeout", "0")]),
                )
                .await
                .map_err(map_sqlx)?;
            let migrated = match MIGRATOR.run(&migrating).await.map_err(map_migrate) {
                Ok(()) => upgrade::finish_documents_as_text(&migrating).await,
                Err(e) => Err(e),
            };
            migrating.close().await;
            migrated?;
            tracing::debug!("guildconf PostgreSQL schema is up to date");
        }
        let options = pg.apply(options);
        let timeouts = pg.timeouts();
        let pool = pool_options()
            .connect_with(options.clone())
            .await
            .map_err(map_sqlx)?;
        if !pg.migrate {
            check_current(&pool, timeouts).await?;
        }
        Ok(Self {
            pool,
            connect_options: options,
            timeouts,
            change_feed: true,
            watch_interval: DEFAULT_WATCH_INTERVAL,
            fault_hook: None,
        })
    }
}

fn parse_url(url: &str) -> StoreResult<PgConnectOptions> {
    // The URL may hold a password: never echo it.
    PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Storage("invalid PostgreSQL URL".into()))
}

/// Accepts `[a-z_][a-z0-9_]{0,62}`.
fn validate_schema_name(schema: &str) -> StoreResult<()> {
    let bytes = schema.as_bytes();
    let valid = matches!(bytes.first(), Some(b'a'..=b'z' | b'_'))
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::Storage(
            "invalid schema name: must match [a-z_][a-z0-9_]{0,62}".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_schema_name;

    #[test]
    fn schema_names() {
        for ok in ["a", "_", "guildconf_test_1", &"a".repeat(63)] {
            assert!(validate_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "A", "a-b", "a b", "a\"b", &"a".repeat(64), "é"] {
            assert!(validate_schema_name(bad).is_err(), "{bad}");
        }
    }
}
