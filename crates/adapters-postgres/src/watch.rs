//! The change feed of a PostgreSQL database: polling the heads' `change_id`.
//!
//! Every write that moves a head sets its `change_id` from one sequence, in
//! the write's transaction, so a committed write is visible here and a
//! rolled-back one never is. A watcher polls, every interval, for the heads
//! whose `change_id` is above a low-water mark, over its own connection.
//!
//! Sequence values are handed out before commit, so a write can commit
//! after a write that took a higher `change_id` was already seen. The mark
//! therefore trails: it is the highest `change_id` seen at a poll at least
//! [`LOOKBACK`] ago, and the ids seen since are remembered so that none is
//! reported twice. A write that took longer than that between its head
//! update and its commit is missed here; the cache's `max_age` still bounds
//! how long its entry can stay stale.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use guildconf_ports::{ChangeWatcher, HeadChange, StoreResult, WatchEvent};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Row};

use crate::error::map_sqlx;
use crate::store::{guild_from_db, to_u64};

/// How long the low-water mark trails the newest `change_id` seen.
const LOOKBACK: Duration = Duration::from_secs(2);

/// How far below the newest `change_id` a fresh watcher starts remembering
/// (without reporting), so a write in flight when it connected is still seen.
const START_MARGIN: i64 = 10_000;

/// Rows read per query.
const PAGE: i64 = 1000;

/// The `application_name` of a watcher's connection.
pub const WATCH_APPLICATION_NAME: &str = "guildconf-watch";

pub(crate) struct PgWatcher {
    options: PgConnectOptions,
    interval: Duration,
    /// `None` before the first call and after a failure: the next call
    /// connects and answers `Resync`.
    conn: Option<PgConnection>,
    /// Heads with a `change_id` above this are read at every poll.
    low: i64,
    /// The `change_id`s above `low` already reported (or already there at
    /// connect).
    seen: BTreeSet<i64>,
    /// The highest `change_id` seen at each recent poll, oldest first.
    marks: VecDeque<(Instant, i64)>,
}

impl std::fmt::Debug for PgWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWatcher")
            .field("interval", &self.interval)
            .field("low", &self.low)
            .finish_non_exhaustive()
    }
}

impl PgWatcher {
    pub(crate) fn new(options: PgConnectOptions, interval: Duration) -> Self {
        Self {
            options: options.application_name(WATCH_APPLICATION_NAME),
            interval,
            conn: None,
            low: 0,
            seen: BTreeSet::new(),
            marks: VecDeque::new(),
        }
    }

    /// Connects and remembers the recent heads without reporting them: the
    /// cache starts (again) from an empty state, so only later writes count.
    async fn start(&mut self) -> StoreResult<()> {
        let mut conn = self.options.connect().await.map_err(map_sqlx)?;
        let newest: i64 = sqlx::query("SELECT COALESCE(MAX(change_id), 0) FROM guild_heads")
            .fetch_one(&mut conn)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(map_sqlx)?;
        self.low = newest.saturating_sub(START_MARGIN).max(0);
        self.seen.clear();
        self.marks.clear();
        self.conn = Some(conn);
        for (change_id, _) in self.poll().await? {
            self.seen.insert(change_id);
        }
        self.marks.push_back((Instant::now(), newest));
        Ok(())
    }

    /// Every head above the mark, in `change_id` order.
    async fn poll(&mut self) -> StoreResult<Vec<(i64, HeadChange)>> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut after = self.low;
        loop {
            let rows = sqlx::query(
                "SELECT change_id, guild_id, version, seq FROM guild_heads \
                 WHERE change_id > $1 ORDER BY change_id LIMIT $2",
            )
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_sqlx)?;
            for row in &rows {
                let change_id: i64 = row.try_get(0).map_err(map_sqlx)?;
                out.push((
                    change_id,
                    HeadChange {
                        guild_id: guild_from_db(row.try_get(1).map_err(map_sqlx)?)?,
                        version: to_u64(row.try_get(2).map_err(map_sqlx)?, "version")?,
                        seq: to_u64(row.try_get(3).map_err(map_sqlx)?, "seq")?,
                    },
                ));
                after = change_id;
            }
            if rows.len() < PAGE as usize {
                return Ok(out);
            }
        }
    }

    /// The changes not reported yet; moves the mark up to what was seen at
    /// least [`LOOKBACK`] ago.
    async fn changes(&mut self) -> StoreResult<Vec<HeadChange>> {
        let rows = self.poll().await?;
        let newest = rows.last().map_or(self.low, |(id, _)| *id);
        let mut fresh = Vec::new();
        for (change_id, change) in rows {
            if self.seen.insert(change_id) {
                fresh.push(change);
            }
        }
        let now = Instant::now();
        let newest = self.marks.back().map_or(newest, |(_, m)| newest.max(*m));
        self.marks.push_back((now, newest));
        while let Some((at, mark)) = self.marks.front().copied() {
            if now.duration_since(at) < LOOKBACK || self.marks.len() == 1 {
                break;
            }
            self.marks.pop_front();
            self.low = self.low.max(mark);
        }
        self.seen = self.seen.split_off(&(self.low + 1));
        Ok(fresh)
    }
}

#[async_trait]
impl ChangeWatcher for PgWatcher {
    async fn next(&mut self) -> StoreResult<WatchEvent> {
        if self.conn.is_none() {
            // The mark is in place before "read everything again" is said,
            // so no commit after the resync can be missed.
            if let Err(e) = self.start().await {
                self.conn = None;
                return Err(e);
            }
            return Ok(WatchEvent::Resync);
        }
        loop {
            tokio::time::sleep(self.interval).await;
            match self.changes().await {
                Ok(changes) if changes.is_empty() => {}
                Ok(changes) => return Ok(WatchEvent::Changed(changes)),
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
    }
}
