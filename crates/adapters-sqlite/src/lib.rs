//! Embedded SQLite storage for guildconf: [`SqliteStore`] implements
//! [`guildconf_ports::ConfigStore`] on a single database file with rusqlite
//! (bundled SQLite).
//!
//! # Architecture invariants
//!
//! - All rusqlite work runs inside [`tokio::task::spawn_blocking`], except
//!   the head read, a primary-key lookup that runs on the calling thread
//!   when a reader is idle and SQLite need not wait (see
//!   `SqliteStore::read_short`), and, when [`SqliteOptions::inline_commits`]
//!   is set, commits (in [`tokio::task::block_in_place`]); a rusqlite
//!   transaction is never held across an `.await`.
//! - One writer connection (behind a mutex) and a small pool of reader
//!   connections, all in WAL mode, so reads never wait for a write.
//! - Every write is one `BEGIN IMMEDIATE` transaction: the SQLite write lock
//!   is taken before the head is read, so the head check and the inserts see
//!   the same database, also when several processes share the file (the busy
//!   timeout queues them).
//! - The schema ships inside the crate (`migrations/*.sql`) and is applied on
//!   open, tracked with `PRAGMA user_version`.
//! - Error messages never contain row data.
//!
//! API boundary: [`SqliteStore`], [`SqliteOptions`], [`Synchronous`] and
//! [`SCHEMA_VERSION`].

#![warn(missing_docs)]

mod error;
mod migrations;
mod queries;
mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use guildconf_domain::{Entry, EntrySignature, GuildId, Operation, Timestamp, TokenInfo};
use guildconf_ports::{
    ChangeSet, ChangeWatcher, ConfigStore, FaultHook, GuildSummary, Head, HistoryQuery, PastHead,
    PurgeCandidate, PurgeOutcome, PurgeSet, RequestRecord, Snapshot, StatsQuery, StatsRow,
    StoreError, StoreResult, StoredEntry, StoredHead, StoredRequest, TokenWrite, WriteStep,
};
use rusqlite::{Connection, OpenFlags};

use crate::error::db_err;
pub use crate::migrations::SCHEMA_VERSION;

/// How many reader connections a store keeps open.
const READERS: usize = 4;

/// SQLite's `PRAGMA synchronous` setting for the store's connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `FULL`: a committed write survives a power loss. The default.
    #[default]
    Full,
    /// `NORMAL`: in WAL mode a committed write survives a crash of the
    /// process but may be lost on power loss; faster.
    Normal,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// How [`SqliteStore::open`] opens a database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Create the file (and the schema) when it does not exist. Default
    /// `false`, so read-only commands can never create a database by
    /// accident; writers set it to `true`.
    pub create_if_missing: bool,
    /// `PRAGMA synchronous`; default [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// How long a connection waits for another connection's (or process's)
    /// lock before the operation fails as busy; default 5 seconds.
    pub busy_timeout: Duration,
    /// How often a [`ConfigStore::watch`] feed checks `PRAGMA data_version`
    /// for commits by other connections or processes; default 50 ms. This
    /// is the staleness bound of a read cache on SQLite.
    pub watch_interval: Duration,
    /// Run each commit on the calling Tokio worker thread
    /// ([`tokio::task::block_in_place`]) instead of handing it to the
    /// blocking pool; default `false`. It saves a thread hand-off per write,
    /// about a fifth of a write's time at `synchronous=FULL` on the reference
    /// machine (docs/BENCHMARKS.md). Only takes effect on a multi-threaded
    /// runtime (on a current-thread runtime commits use the blocking pool
    /// regardless). **Leave it off if any write can run inside a
    /// [`tokio::task::LocalSet`]: Tokio panics there.**
    pub inline_commits: bool,
    /// Apply pending migrations on open (default `true`). With `false`, a
    /// database whose schema is older or newer than this build knows, or
    /// none at all, is refused: `guildconf migrate` is then an explicit
    /// step, and the application's role needs no DDL rights.
    pub migrate: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            create_if_missing: false,
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            watch_interval: Duration::from_millis(50),
            inline_commits: false,
            migrate: true,
        }
    }
}

struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// A guildconf store in one SQLite file.
///
/// Cheap to clone: clones share the connections. Its [`ConfigStore`] methods
/// run their SQL on Tokio's blocking pool, so they must be awaited inside a
/// Tokio runtime. Several stores (or processes) may open the same file; their
/// writes queue on SQLite's lock for up to the busy timeout.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    fault_hook: Option<FaultHook>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("readers", &self.inner.readers.len())
            .field("fault_hook", &self.fault_hook.is_some())
            .finish_non_exhaustive()
    }
}

/// Locks a connection. A poisoned mutex only means another thread panicked
/// while holding it; the rusqlite transaction it held was rolled back when
/// dropped during the unwind, so the connection is still usable.
fn lock(mutex: &Mutex<Connection>) -> StoreResult<MutexGuard<'_, Connection>> {
    let guard = mutex.lock().unwrap_or_else(PoisonError::into_inner);
    if !guard.is_autocommit() {
        guard.execute_batch("ROLLBACK").map_err(db_err)?;
    }
    Ok(guard)
}

pub(crate) fn configure(conn: &Connection, options: &SqliteOptions) -> StoreResult<()> {
    conn.busy_timeout(options.busy_timeout).map_err(db_err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())
        .map_err(db_err)?;
    Ok(())
}

impl SqliteStore {
    /// Opens (and, when allowed, creates) the database at `path`, sets WAL
    /// mode, applies any pending migrations and opens the reader pool.
    ///
    /// This blocks the calling thread for as long as opening takes (at most
    /// about the busy timeout per step when another process holds the lock).
    ///
    /// # Errors
    /// [`StoreError::Storage`] when `create_if_missing` is false and the file
    /// does not exist (nothing is created), when the file cannot be opened or
    /// is not a SQLite database, when WAL mode cannot be set, when a
    /// migration fails, or when the database was made by a newer guildconf.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        // Without migrations a new file could only be refused: create none.
        if !options.migrate && !path.exists() {
            return Err(StoreError::Storage(format!(
                "database file {} does not exist: run `guildconf migrate` to create it",
                path.display()
            )));
        }
        if !options.create_if_missing && !path.exists() {
            return Err(StoreError::Storage(format!(
                "database file {} does not exist",
                path.display()
            )));
        }
        // Without SQLITE_OPEN_CREATE, SQLite itself refuses to create the file,
        // which also covers the file vanishing after the check above.
        // No SQLITE_OPEN_URI: the path is taken literally, never as a URI.
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if options.create_if_missing {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let open_failed = |e: rusqlite::Error| match db_err(e) {
            StoreError::Storage(m) => {
                StoreError::Storage(format!("cannot open database file {}: {m}", path.display()))
            }
            other => other,
        };
        let mut writer = Connection::open_with_flags(&path, flags).map_err(open_failed)?;
        configure(&writer, &options)?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(db_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Storage(format!(
                "cannot switch {} to WAL journal mode",
                path.display()
            )));
        }
        if options.migrate {
            migrations::migrate(&mut writer)?;
        } else {
            migrations::check_current(&writer)?;
        }

        let reader_flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(&path, reader_flags).map_err(open_failed)?;
            configure(&reader, &options)?;
            // Readers never write; make SQLite enforce that.
            reader
                .pragma_update(None, "query_only", true)
                .map_err(db_err)?;
            readers.push(Mutex::new(reader));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                options,
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
            fault_hook: None,
        })
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

    /// SQLite's `EXPLAIN QUERY PLAN` of exactly the SQL
    /// [`ConfigStore::history`] runs for `query` (same builder, same
    /// arguments): one line per plan node, such as
    /// `SEARCH audit_entries USING INDEX … (guild_id=? AND seq<?)`. For
    /// checking that history is served by indexes.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    pub async fn explain_history(&self, query: &HistoryQuery) -> StoreResult<Vec<String>> {
        let query = query.clone();
        self.read(move |conn| queries::explain_history(conn, &query))
            .await
    }

    /// The fault hook as a step callback for a write's closure: the hook
    /// when one is set, else a no-op.
    fn fault(&self) -> impl Fn(WriteStep) -> StoreResult<()> + Send + 'static {
        let hook = self.fault_hook.clone();
        move |step| hook.as_ref().map_or(Ok(()), |h| h(step))
    }

    /// The path the store was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a reader connection on a blocking thread.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        run_blocking(move || {
            let n = inner.readers.len();
            let start = inner.next_reader.fetch_add(1, Ordering::Relaxed);
            // Take the first idle reader; when all are busy, queue on one.
            for i in 0..n {
                if let Ok(guard) = inner.readers[(start + i) % n].try_lock() {
                    return f(&guard);
                }
            }
            let guard = lock(&inner.readers[start % n])?;
            f(&guard)
        })
        .await
    }

    /// Runs a short primary-key read: on an idle connection right on the
    /// calling thread when that cannot wait, else as [`SqliteStore::read`]
    /// does. `f` must only read.
    ///
    /// Handing a read of a few microseconds to the blocking pool costs more
    /// than the read (two thread wake-ups, each one a context switch, and on
    /// a VM often an idle-CPU exit), and it was most of the cost of a cold
    /// read and a third of a write's. So the head is read here when all of
    /// this holds: the runtime has several worker threads (other tasks keep
    /// running), a connection is idle (`try_lock`, never a wait on a mutex),
    /// and SQLite does not make it wait: the busy timeout is zero for
    /// this attempt, and any storage error (such as `SQLITE_BUSY` while
    /// another process recovers the WAL) sends the read to the blocking pool,
    /// which waits the configured busy timeout as before. A WAL reader takes
    /// no lock a writer holds, so in the normal case the worker thread is
    /// held only for the query itself.
    async fn read_short<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Clone + Send + 'static,
    {
        if inline_allowed() {
            if let Some(result) = self.try_read_here(&f) {
                match result {
                    Err(StoreError::Storage(_)) => {}
                    other => return other,
                }
            }
        }
        self.read(f).await
    }

    /// `f` with a zero busy timeout on the idle writer connection, else on
    /// an idle reader; `None` when every connection is taken.
    ///
    /// The writer comes first: outside a commit it is an ordinary
    /// autocommit connection, so a read there sees exactly what a reader
    /// would, and its page cache is still valid after this process's own
    /// last write, where a reader's cache is dropped after every write by
    /// another connection and its pages are read again from the WAL. A
    /// commit that wants the writer meanwhile waits for one short read at
    /// most.
    fn try_read_here<T>(
        &self,
        f: &impl Fn(&Connection) -> StoreResult<T>,
    ) -> Option<StoreResult<T>> {
        let inner = &self.inner;
        let n = inner.readers.len();
        let guard = inner.writer.try_lock().ok().or_else(|| {
            let start = inner.next_reader.fetch_add(1, Ordering::Relaxed);
            (0..n).find_map(|i| inner.readers[(start + i) % n].try_lock().ok())
        })?;
        if !guard.is_autocommit() {
            // A read left open by a panic: let the blocking path clean up.
            return None;
        }
        if let Err(e) = guard.busy_timeout(Duration::ZERO) {
            return Some(Err(db_err(e)));
        }
        let result = f(&guard);
        if let Err(e) = guard.busy_timeout(inner.options.busy_timeout) {
            return Some(Err(db_err(e)));
        }
        Some(result)
    }

    /// Runs `f` on the writer connection on a blocking thread.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        if inner.options.inline_commits && inline_allowed() {
            return tokio::task::block_in_place(move || {
                let mut guard = lock(&inner.writer)?;
                f(&mut guard)
            });
        }
        run_blocking(move || {
            let mut guard = lock(&inner.writer)?;
            f(&mut guard)
        })
        .await
    }
}

/// Whether a short read may run on the calling thread: only on a Tokio
/// runtime with several worker threads.
fn inline_allowed() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

pub(crate) async fn run_blocking<T, F>(f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Storage(format!("sqlite task failed: {e}")))?
}

#[async_trait]
impl ConfigStore for SqliteStore {
    async fn head(&self, guild: GuildId) -> StoreResult<Option<Head>> {
        self.read_short(move |conn| queries::head(conn, guild))
            .await
    }

    async fn commit(&self, change: ChangeSet) -> StoreResult<()> {
        let fault = self.fault();
        self.write(move |conn| queries::commit(conn, &change, fault))
            .await
    }

    async fn commit_all(
        &self,
        changes: Box<dyn Iterator<Item = StoreResult<ChangeSet>> + Send>,
    ) -> StoreResult<u64> {
        self.write(move |conn| {
            let mut changes = changes;
            queries::commit_all(conn, &mut changes)
        })
        .await
    }

    async fn entry_signature(
        &self,
        guild: GuildId,
        seq: u64,
    ) -> StoreResult<Option<(String, Option<EntrySignature>)>> {
        self.read_short(move |conn| queries::entry_signature(conn, guild, seq))
            .await
    }

    async fn request(
        &self,
        guild: GuildId,
        request_id: &str,
    ) -> StoreResult<Option<RequestRecord>> {
        let request_id = request_id.to_owned();
        self.read(move |conn| queries::request(conn, guild, &request_id))
            .await
    }

    async fn snapshot(&self, guild: GuildId, version: u64) -> StoreResult<Option<Snapshot>> {
        self.read(move |conn| queries::snapshot(conn, guild, version))
            .await
    }

    async fn entry_at(
        &self,
        guild: GuildId,
        at: Timestamp,
    ) -> StoreResult<Option<(u64, Operation)>> {
        self.read(move |conn| queries::entry_at(conn, guild, at))
            .await
    }

    async fn list_guilds(&self) -> StoreResult<Vec<GuildSummary>> {
        self.read(queries::list_guilds).await
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<Entry>> {
        let query = query.clone();
        self.read(move |conn| queries::history(conn, &query)).await
    }

    async fn stats(&self, query: &StatsQuery) -> StoreResult<Vec<StatsRow>> {
        let query = query.clone();
        self.read(move |conn| queries::stats(conn, &query)).await
    }

    async fn guild_ids(&self, after: Option<GuildId>, limit: u32) -> StoreResult<Vec<GuildId>> {
        self.read(move |conn| queries::guild_ids(conn, after, limit))
            .await
    }

    async fn entries_between(
        &self,
        after: (GuildId, u64),
        through: GuildId,
        since: Option<Timestamp>,
        limit: u32,
        with_snapshots: bool,
    ) -> StoreResult<Vec<StoredEntry>> {
        self.read(move |conn| {
            queries::entries_between(conn, after, through, since, limit, with_snapshots)
        })
        .await
    }

    async fn stored_heads(
        &self,
        from: GuildId,
        through: GuildId,
    ) -> StoreResult<Vec<(GuildId, StoredHead)>> {
        self.read(move |conn| queries::stored_heads(conn, from, through))
            .await
    }

    async fn rows_past_heads(&self, from: GuildId, through: GuildId) -> StoreResult<Vec<PastHead>> {
        self.read(move |conn| queries::rows_past_heads(conn, from, through))
            .await
    }

    async fn stored_requests(
        &self,
        from: GuildId,
        through: GuildId,
    ) -> StoreResult<Vec<StoredRequest>> {
        self.read(move |conn| queries::stored_requests(conn, from, through))
            .await
    }

    async fn watch(&self) -> StoreResult<Box<dyn ChangeWatcher>> {
        let path = self.inner.path.clone();
        let options = self.inner.options.clone();
        let watcher = run_blocking(move || watch::SqliteWatcher::open(&path, &options)).await?;
        Ok(Box::new(watcher))
    }

    async fn purge_candidate(
        &self,
        guild: GuildId,
        before: Timestamp,
    ) -> StoreResult<Option<PurgeCandidate>> {
        self.read(move |conn| queries::purge_candidate(conn, guild, before))
            .await
    }

    async fn purge(&self, purge: PurgeSet) -> StoreResult<PurgeOutcome> {
        self.write(move |conn| queries::purge(conn, &purge)).await
    }

    async fn commit_token(&self, write: TokenWrite) -> StoreResult<()> {
        let fault = self.fault();
        self.write(move |conn| queries::commit_token(conn, &write, fault))
            .await
    }

    async fn token_by_hash(&self, secret_sha256: &str) -> StoreResult<Option<TokenInfo>> {
        let hash = secret_sha256.to_owned();
        self.read_short(move |conn| queries::token_by_hash(conn, &hash))
            .await
    }

    async fn token(&self, id: &str) -> StoreResult<Option<TokenInfo>> {
        let id = id.to_owned();
        self.read(move |conn| queries::token(conn, &id)).await
    }

    async fn tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        self.read(queries::tokens).await
    }
}
