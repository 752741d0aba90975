//! The change feed of a SQLite file: a dedicated connection polls
//! `PRAGMA data_version` (which moves when any *other* connection, in this
//! process or another, commits), and only when it moved reads the audit
//! entries appended since the last look, by rowid.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use guildconf_ports::{ChangeWatcher, HeadChange, StoreError, StoreResult, WatchEvent};
use rusqlite::{Connection, OpenFlags};

use crate::error::db_err;
use crate::queries::{get_guild, get_u64};
use crate::{configure, run_blocking, SqliteOptions};

/// More new entries than this in one look: report a resync instead of a
/// (long) list.
const MAX_CHANGES: i64 = 10_000;

struct State {
    conn: Connection,
    data_version: i64,
    last_rowid: i64,
}

/// Polls one SQLite file for commits every `interval`.
pub(crate) struct SqliteWatcher {
    state: Arc<Mutex<State>>,
    interval: Duration,
    /// Whether the next successful look must answer `Resync` (first call,
    /// or after a failure).
    resync: bool,
}

impl std::fmt::Debug for SqliteWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWatcher")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn max_rowid(conn: &Connection) -> StoreResult<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(rowid), 0) FROM audit_entries",
        [],
        |r| r.get(0),
    )
    .map_err(db_err)
}

fn data_version(conn: &Connection) -> StoreResult<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .map_err(db_err)
}

impl SqliteWatcher {
    pub(crate) fn open(path: &Path, options: &SqliteOptions) -> StoreResult<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| match db_err(e) {
            StoreError::Storage(m) => {
                StoreError::Storage(format!("cannot open the change feed: {m}"))
            }
            other => other,
        })?;
        configure(&conn, options)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(db_err)?;
        let data_version = data_version(&conn)?;
        let last_rowid = max_rowid(&conn)?;
        Ok(Self {
            state: Arc::new(Mutex::new(State {
                conn,
                data_version,
                last_rowid,
            })),
            interval: options.watch_interval,
            resync: true,
        })
    }
}

/// One look: `None` when nothing committed since the last one.
fn look(state: &mut State) -> StoreResult<Option<Vec<HeadChange>>> {
    let version = data_version(&state.conn)?;
    if version == state.data_version {
        return Ok(None);
    }
    let mut stmt = state
        .conn
        .prepare_cached(
            "SELECT rowid, guild_id, config_version, seq FROM audit_entries
             WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        )
        .map_err(db_err)?;
    let mut rows = stmt
        .query(rusqlite::params![state.last_rowid, MAX_CHANGES + 1])
        .map_err(db_err)?;
    let mut changes = Vec::new();
    let mut last = state.last_rowid;
    while let Some(row) = rows.next().map_err(db_err)? {
        last = row.get(0).map_err(db_err)?;
        changes.push(HeadChange {
            guild_id: get_guild(row, 1)?,
            version: get_u64(row, 2, "audit_entries.config_version")?,
            seq: get_u64(row, 3, "audit_entries.seq")?,
        });
    }
    drop(rows);
    drop(stmt);
    state.data_version = version;
    state.last_rowid = last;
    Ok(Some(changes))
}

#[async_trait]
impl ChangeWatcher for SqliteWatcher {
    async fn next(&mut self) -> StoreResult<WatchEvent> {
        loop {
            if !self.resync {
                tokio::time::sleep(self.interval).await;
            }
            let state = Arc::clone(&self.state);
            let resync = self.resync;
            let looked = run_blocking(move || {
                let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                if resync {
                    // Start afresh: everything cached before now is suspect.
                    state.data_version = data_version(&state.conn)?;
                    state.last_rowid = max_rowid(&state.conn)?;
                    return Ok(Some(Vec::new()));
                }
                look(&mut state)
            })
            .await;
            match looked {
                Err(e) => {
                    self.resync = true;
                    return Err(e);
                }
                Ok(_) if resync => {
                    self.resync = false;
                    return Ok(WatchEvent::Resync);
                }
                Ok(Some(changes)) if changes.len() as i64 > MAX_CHANGES => {
                    // Too many to list: skip to the end and flush.
                    self.resync = true;
                }
                Ok(Some(changes)) if !changes.is_empty() => {
                    return Ok(WatchEvent::Changed(changes));
                }
                Ok(_) => {}
            }
        }
    }
}
