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
use guildconf_ports::codec::{stored_guild, stored_u64};
use guildconf_ports::{ChangeWatcher, HeadChange, StoreResult, WatchEvent};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Row};

use crate::error::map_sqlx;

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
    horizon: Horizon,
}

/// The trailing low-water mark of a watcher, and the `change_id`s above it
/// that were already reported. Pure bookkeeping, so it is tested on its own.
#[derive(Debug, Default)]
struct Horizon {
    /// Heads with a `change_id` above this are read at every poll.
    low: i64,
    /// The `change_id`s above `low` already reported (or already there at
    /// start).
    seen: BTreeSet<i64>,
    /// The highest `change_id` seen at each recent poll, oldest first.
    marks: VecDeque<(Instant, i64)>,
}

impl Horizon {
    /// A horizon for a watcher that has just connected, when the newest
    /// `change_id` is `newest`: the heads from `START_MARGIN` below it are
    /// read at the first polls, but only those not in `present` (the ones
    /// there at start, passed to [`Horizon::remember`]) are reported.
    fn start(newest: i64, now: Instant) -> Self {
        Self {
            low: newest.saturating_sub(START_MARGIN).max(0),
            seen: BTreeSet::new(),
            marks: VecDeque::from([(now, newest)]),
        }
    }

    /// Marks ids as already known, without reporting them.
    fn remember(&mut self, ids: impl IntoIterator<Item = i64>) {
        self.seen
            .extend(ids.into_iter().filter(|id| *id > self.low));
    }

    /// The rows of one poll (all heads above `low`, in `change_id` order)
    /// not reported yet; then moves `low` up to the highest id seen at a poll
    /// at least [`LOOKBACK`] before `now`, and forgets the ids below it.
    fn fresh<T>(&mut self, rows: Vec<(i64, T)>, now: Instant) -> Vec<T> {
        let newest = rows.last().map_or(self.low, |(id, _)| *id);
        let mut fresh = Vec::new();
        for (change_id, row) in rows {
            if change_id > self.low && self.seen.insert(change_id) {
                fresh.push(row);
            }
        }
        let newest = self.marks.back().map_or(newest, |(_, m)| newest.max(*m));
        self.marks.push_back((now, newest));
        while let Some((at, mark)) = self.marks.front().copied() {
            if now.saturating_duration_since(at) < LOOKBACK || self.marks.len() == 1 {
                break;
            }
            self.marks.pop_front();
            self.low = self.low.max(mark);
        }
        self.seen = self.seen.split_off(&(self.low.saturating_add(1)));
        fresh
    }
}

impl std::fmt::Debug for PgWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWatcher")
            .field("interval", &self.interval)
            .field("low", &self.horizon.low)
            .finish_non_exhaustive()
    }
}

impl PgWatcher {
    pub(crate) fn new(options: PgConnectOptions, interval: Duration) -> Self {
        Self {
            options: options.application_name(WATCH_APPLICATION_NAME),
            interval,
            conn: None,
            horizon: Horizon::default(),
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
        self.horizon = Horizon::start(newest, Instant::now());
        self.conn = Some(conn);
        let present = self.poll().await?;
        self.horizon.remember(present.into_iter().map(|(id, _)| id));
        Ok(())
    }

    /// Every head above the mark, in `change_id` order.
    async fn poll(&mut self) -> StoreResult<Vec<(i64, HeadChange)>> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut after = self.horizon.low;
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
                        guild_id: stored_guild(row.try_get(1).map_err(map_sqlx)?)?,
                        version: stored_u64(
                            row.try_get(2).map_err(map_sqlx)?,
                            "guild_heads.version",
                        )?,
                        seq: stored_u64(row.try_get(3).map_err(map_sqlx)?, "guild_heads.seq")?,
                    },
                ));
                after = change_id;
            }
            if rows.len() < PAGE as usize {
                return Ok(out);
            }
        }
    }

    /// The changes not reported yet.
    async fn changes(&mut self) -> StoreResult<Vec<HeadChange>> {
        let rows = self.poll().await?;
        Ok(self.horizon.fresh(rows, Instant::now()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(ids: &[i64]) -> Vec<(i64, i64)> {
        ids.iter().map(|id| (*id, *id)).collect()
    }

    #[test]
    fn heads_there_at_start_are_not_reported_and_later_ones_are_once() {
        let t0 = Instant::now();
        let mut h = Horizon::start(50_000, t0);
        assert_eq!(h.low, 50_000 - START_MARGIN);
        h.remember([49_990, 50_000]);
        assert_eq!(h.fresh(rows(&[49_990, 50_000]), t0), Vec::<i64>::new());
        let t1 = t0 + Duration::from_millis(50);
        assert_eq!(h.fresh(rows(&[49_990, 50_000, 50_001]), t1), vec![50_001]);
        let t2 = t1 + Duration::from_millis(50);
        assert_eq!(
            h.fresh(rows(&[49_990, 50_000, 50_001]), t2),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn an_id_that_commits_after_a_higher_one_was_seen_is_reported() {
        let t0 = Instant::now();
        let mut h = Horizon::start(10, t0);
        // 12 committed first; 11 (taken earlier) commits a second later.
        assert_eq!(
            h.fresh(rows(&[12]), t0 + Duration::from_millis(50)),
            vec![12]
        );
        let later = t0 + Duration::from_secs(1);
        assert_eq!(h.fresh(rows(&[11, 12]), later), vec![11]);
        assert!(h.low < 11, "the mark still trails: {}", h.low);
    }

    #[test]
    fn the_mark_trails_by_the_lookback_and_forgets_ids_below_it() {
        let t0 = Instant::now();
        let mut h = Horizon::start(0, t0);
        assert_eq!(h.fresh(rows(&[1, 2, 3]), t0), vec![1, 2, 3]);
        // Within the lookback the mark stays put and nothing is reported twice.
        let t1 = t0 + LOOKBACK / 2;
        assert_eq!(h.fresh(rows(&[1, 2, 3, 4]), t1), vec![4]);
        assert_eq!(h.low, 0);
        // Once a poll is LOOKBACK old, the mark moves up to what it saw.
        let t2 = t0 + LOOKBACK + Duration::from_millis(1);
        assert_eq!(h.fresh(rows(&[4, 5]), t2), vec![5]);
        assert_eq!(h.low, 3);
        assert_eq!(h.seen, BTreeSet::from([4, 5]));
        // A row at or below the mark is never reported again.
        let t3 = t2 + Duration::from_millis(50);
        assert_eq!(h.fresh(rows(&[3, 6]), t3), vec![6]);
    }
}
