//! Streaming stored entries of a range of guilds, one batch ahead.

use std::sync::Arc;

use guildconf_domain::{GuildId, Timestamp};
use guildconf_ports::{ConfigStore, StoreResult, StoredEntry};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Entries read per round trip while streaming.
pub(crate) const BATCH: u32 = 1000;

/// Guild ids listed per round trip while streaming every guild.
pub(crate) const GUILD_BATCH: u32 = 1000;

type Fetch = JoinHandle<StoreResult<Vec<StoredEntry>>>;

/// Every stored entry of the guilds `from..=through`, in `(guild_id, seq)`
/// order, in batches of [`BATCH`]. The next batch is read (on another task)
/// while the caller works through the current one, so hashing and the
/// database's work overlap. Memory stays at two batches.
pub(crate) struct RangeStream {
    store: Arc<dyn ConfigStore>,
    through: GuildId,
    since: Option<Timestamp>,
    with_snapshots: bool,
    next: Option<Fetch>,
}

impl RangeStream {
    /// Starts reading at `from`'s first entry.
    pub(crate) fn new(
        store: Arc<dyn ConfigStore>,
        from: GuildId,
        through: GuildId,
        since: Option<Timestamp>,
        with_snapshots: bool,
    ) -> Self {
        let mut stream = Self {
            store,
            through,
            since,
            with_snapshots,
            next: None,
        };
        stream.next = Some(stream.fetch((from, 0)));
        stream
    }

    fn fetch(&self, after: (GuildId, u64)) -> Fetch {
        let (store, through, since, with_snapshots) = (
            Arc::clone(&self.store),
            self.through,
            self.since,
            self.with_snapshots,
        );
        tokio::spawn(async move {
            store
                .entries_between(after, through, since, BATCH, with_snapshots)
                .await
        })
    }

    /// The next batch; `None` once the range is done.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails.
    pub(crate) async fn next_batch(&mut self) -> Result<Option<Vec<StoredEntry>>> {
        let Some(fetch) = self.next.take() else {
            return Ok(None);
        };
        let rows = fetch
            .await
            .map_err(|e| Error::Storage(format!("reading entries failed: {e}")))??;
        if rows.len() == BATCH as usize {
            if let Some(last) = rows.last() {
                self.next = Some(self.fetch((last.guild_id, last.seq)));
            }
        }
        Ok((!rows.is_empty()).then_some(rows))
    }
}

impl Drop for RangeStream {
    fn drop(&mut self) {
        if let Some(fetch) = self.next.take() {
            fetch.abort();
        }
    }
}

/// Walks every guild with a head or entries in ascending id, in batches of
/// up to [`GUILD_BATCH`] ids, one `guild_ids` round trip per batch. The ids
/// of a batch are every guild from its first to its last, so a batch also
/// names a range for `entries_between` and `stored_heads`.
pub(crate) struct GuildRanges {
    after: Option<GuildId>,
    done: bool,
}

impl GuildRanges {
    pub(crate) fn new() -> Self {
        Self {
            after: None,
            done: false,
        }
    }

    /// The next batch of ids, never empty; `None` once every guild was
    /// covered.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails.
    pub(crate) async fn next(&mut self, store: &dyn ConfigStore) -> Result<Option<Vec<GuildId>>> {
        if self.done {
            return Ok(None);
        }
        let ids = store.guild_ids(self.after, GUILD_BATCH).await?;
        self.done = ids.len() < GUILD_BATCH as usize;
        self.after = ids.last().copied();
        Ok((!ids.is_empty()).then_some(ids))
    }

    /// The next batch as a range `(first, last)`.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails.
    pub(crate) async fn next_range(
        &mut self,
        store: &dyn ConfigStore,
    ) -> Result<Option<(GuildId, GuildId)>> {
        Ok(self
            .next(store)
            .await?
            .and_then(|ids| Some((*ids.first()?, *ids.last()?))))
    }
}
