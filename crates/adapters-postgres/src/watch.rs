//! The change feed of a PostgreSQL database: `LISTEN` on the store's
//! channel. Every write sends `NOTIFY channel, 'guild:version:seq'` inside its
//! transaction, which PostgreSQL delivers only on commit.

use async_trait::async_trait;
use guildconf_domain::GuildId;
use guildconf_ports::{ChangeWatcher, HeadChange, StoreResult, WatchEvent};
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use crate::error::map_sqlx;

/// A `LISTEN`ing connection of its own (not taken from the pool).
pub(crate) struct PgWatcher {
    pool: PgPool,
    channel: String,
    /// `None` after a failure: the next call opens a fresh listener and
    /// answers `Resync`.
    listener: Option<PgListener>,
}

impl std::fmt::Debug for PgWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWatcher")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl PgWatcher {
    pub(crate) async fn listen(pool: &PgPool, channel: &str) -> StoreResult<Self> {
        Ok(Self {
            pool: pool.clone(),
            channel: channel.to_owned(),
            listener: None,
        })
    }

    async fn open(&self) -> StoreResult<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(map_sqlx)?;
        listener.ignore_pool_close_event(true);
        listener.listen(&self.channel).await.map_err(map_sqlx)?;
        Ok(listener)
    }
}

/// Parses `guild:version:seq`; anything else is ignored (`None`).
fn parse(payload: &str) -> Option<HeadChange> {
    let mut parts = payload.split(':');
    let guild_id = GuildId::parse(parts.next()?).ok()?;
    let version = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    Some(HeadChange {
        guild_id,
        version,
        seq,
    })
}

#[async_trait]
impl ChangeWatcher for PgWatcher {
    async fn next(&mut self) -> StoreResult<WatchEvent> {
        let Some(listener) = self.listener.as_mut() else {
            // The LISTEN is in place before "read everything again" is
            // said, so no commit after the resync can be missed.
            self.listener = Some(self.open().await?);
            return Ok(WatchEvent::Resync);
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let mut changes: Vec<HeadChange> = parse(n.payload()).into_iter().collect();
                    // Drain what is already buffered, so a burst is one event.
                    while let Some(n) = listener.next_buffered() {
                        changes.extend(parse(n.payload()));
                    }
                    if !changes.is_empty() {
                        return Ok(WatchEvent::Changed(changes));
                    }
                }
                // The connection was lost (and re-established, with its
                // LISTEN): notifications in between are gone.
                Ok(None) => return Ok(WatchEvent::Resync),
                Err(e) => {
                    self.listener = None;
                    return Err(map_sqlx(e));
                }
            }
        }
    }
}
