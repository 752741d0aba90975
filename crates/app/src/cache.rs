//! The read cache for bots: current configs in memory, kept fresh by this
//! process's own writes and by the store's change feed (PostgreSQL: polling
//! the heads' `change_id`; SQLite: polling `PRAGMA data_version`).
//!
//! # Staleness bound
//!
//! A read answered with `stale: false` reflects every write that committed
//! before *one* of these, whichever comes first:
//! - this process's own writes through [`ReadCache::service`]: immediately
//!   (the cache is updated from the committed change set before the write
//!   returns);
//! - other processes' writes: within one poll of the change feed after they
//!   commit, every `SqliteOptions::watch_interval` on SQLite and every
//!   `PgStore::with_watch_interval` on PostgreSQL (50 ms by default on
//!   both; on PostgreSQL a write that took over two seconds between its head
//!   update and its commit is only caught by `max_age`);
//! - in any case, no entry is used longer than [`CacheOptions::max_age`]
//!   (30 s by default) without being read again from the database.
//!
//! When the change feed breaks (the database went away, the watcher's
//! connection was terminated), every cached read is answered from memory
//! with `stale: true` and without touching the database; a guild that is not
//! cached fails with [`Error::Storage`]. When the feed is back, the whole
//! cache is emptied (notifications may have been missed) and refills on
//! demand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use guildconf_domain::GuildId;
use guildconf_ports::{
    ChangeSet, ChangeWatcher, ConfigStore, HeadChange, PurgeOutcome, PurgeSet, StoreError,
    StoreResult, TokenWrite, WatchEvent,
};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::service::ConfigService;

/// How a [`ReadCache`] behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// The longest an entry is served without being read again from the
    /// database, whatever the change feed says. Default 30 s.
    pub max_age: Duration,
    /// How long the feed waits before reconnecting after a failure.
    /// Default 500 ms.
    pub retry_after: Duration,
    /// Room for this many undelivered [`ConfigChanged`] events per
    /// subscriber; a slower subscriber sees `RecvError::Lagged`. Default 1024.
    pub event_capacity: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30),
            retry_after: Duration::from_millis(500),
            event_capacity: 1024,
        }
    }
}

/// A cached read of a guild's current config.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedConfig {
    /// The guild.
    pub guild_id: GuildId,
    /// Its config version (0 for a guild never configured).
    pub version: u64,
    /// Whether the guild has a config; `false` when never configured or
    /// deleted, and then `document` is the schema's defaults.
    pub configured: bool,
    /// The normalised document, secrets included: redact before showing it.
    pub document: Arc<Value>,
    /// `true` when the change feed is down (the database is unreachable or
    /// the change feed lost its connection): this is the last known config and
    /// may miss newer writes.
    pub stale: bool,
}

/// A guild's config changed (a committed write, here or in another process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigChanged {
    /// The guild.
    pub guild_id: GuildId,
    /// Its config version after the write (unchanged by a delete).
    pub version: u64,
    /// Its last audit seq after the write.
    pub seq: u64,
}

#[derive(Clone, Debug)]
struct Slot {
    version: u64,
    seq: u64,
    document: Option<Arc<Value>>,
    fetched: Instant,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ConfigStore>,
    defaults: Arc<Value>,
    options: CacheOptions,
    slots: RwLock<HashMap<GuildId, Slot>>,
    /// Bumped whenever slots are dropped, so a database read that started
    /// before does not put an older head back.
    epoch: AtomicU64,
    healthy: AtomicBool,
    resyncs: AtomicU64,
    events: broadcast::Sender<ConfigChanged>,
    /// The last seq announced per guild, so each change is announced once
    /// (own writes arrive twice: from the commit and from the feed).
    announced: Mutex<HashMap<GuildId, u64>>,
}

/// Current configs in memory for bots that read on every event. Cheap to
/// clone; clones share the cache.
///
/// Staleness bound: a read answered with `stale: false` reflects this
/// process's own writes through [`ReadCache::service`] at once, other
/// processes' writes within one poll of the store's change feed (50 ms by
/// default on both backends), and no entry is used longer than
/// [`CacheOptions::max_age`] without being read again. While the feed is
/// broken, cached reads are answered with `stale: true`.
///
/// ```no_run
/// # async fn run() -> Result<(), guildconf::Error> {
/// use guildconf::{open, CacheOptions, ConfigService, GuildId, OpenOptions, ReadCache};
/// let store = open("sqlite://guildconf.db", OpenOptions::new().create_if_missing(true)).await?;
/// let service = ConfigService::new(store);
/// let cache = ReadCache::start(&service, CacheOptions::default()).await?;
/// let service = cache.service(); // writes through it update the cache at once
/// let mut changes = cache.subscribe();
/// let guild = GuildId::parse("123456789012345678").map_err(|e| guildconf::Error::invalid("/guild_id", e))?;
/// let config = cache.get(guild).await?; // no database round trip once cached
/// # let _ = (service, config, changes.try_recv()); Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ReadCache {
    inner: Arc<Inner>,
    service: ConfigService,
}

impl ReadCache {
    /// Starts a cache over `service`'s store: opens the store's change feed
    /// (waiting until it is listening) and spawns the task that follows it.
    /// The task ends when the last clone of the cache is dropped.
    ///
    /// # Errors
    /// [`Error::Storage`] when the change feed cannot be opened (the
    /// database is unreachable, or the store has no feed).
    pub async fn start(service: &ConfigService, options: CacheOptions) -> Result<Self> {
        let store = Arc::clone(service.store());
        let mut watcher = store.watch().await?;
        match watcher.next().await? {
            WatchEvent::Resync | WatchEvent::Changed(_) => {}
        }
        let (events, _) = broadcast::channel(options.event_capacity.max(1));
        let inner = Arc::new(Inner {
            store,
            defaults: Arc::new(service.schema().defaults()),
            options,
            slots: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            resyncs: AtomicU64::new(0),
            events,
            announced: Mutex::new(HashMap::new()),
        });
        tokio::spawn(follow(Arc::downgrade(&inner), watcher));
        let writer: Arc<dyn ConfigStore> = Arc::new(WriteThrough {
            cache: Arc::clone(&inner),
        });
        Ok(Self {
            service: service.with_store(writer),
            inner,
        })
    }

    /// A service like the one the cache was started from, whose writes
    /// update the cache (and announce the change) as soon as they commit.
    pub fn service(&self) -> ConfigService {
        self.service.clone()
    }

    /// The guild's current config: from memory when cached and fresh,
    /// otherwise one read of the head. Never writes.
    ///
    /// # Errors
    /// [`Error::Storage`] when the guild is not cached and the database
    /// cannot be read.
    pub async fn get(&self, guild: GuildId) -> Result<CachedConfig> {
        let inner = &self.inner;
        let healthy = inner.healthy.load(Ordering::Acquire);
        let cached = inner.read_slots().get(&guild).cloned();
        if let Some(slot) = &cached {
            if !healthy {
                return Ok(inner.answer(guild, slot, true));
            }
            if slot.fetched.elapsed() < inner.options.max_age {
                return Ok(inner.answer(guild, slot, false));
            }
        }
        let epoch = inner.epoch.load(Ordering::Acquire);
        match inner.store.head(guild).await {
            Ok(head) => {
                let slot = match head {
                    Some(head) => Slot {
                        version: head.version,
                        seq: head.seq,
                        document: head.document.map(Arc::new),
                        fetched: Instant::now(),
                    },
                    None => Slot {
                        version: 0,
                        seq: 0,
                        document: None,
                        fetched: Instant::now(),
                    },
                };
                // A guild with no head is not cached: any id can be asked
                // for, and remembering each answer would let a caller grow
                // the cache without bound. Asking again costs one read.
                if slot.seq > 0 {
                    inner.fill(guild, &slot, epoch);
                }
                Ok(inner.answer(guild, &slot, !inner.healthy.load(Ordering::Acquire)))
            }
            Err(e) => match cached {
                Some(slot) => Ok(inner.answer(guild, &slot, true)),
                None => Err(Error::Storage(format!(
                    "guild {guild}'s config is not cached and cannot be read: {e}"
                ))),
            },
        }
    }

    /// A receiver of every committed change to any guild (own writes and
    /// other processes'), each announced once, in commit order per guild.
    /// After the feed reconnects, changes made while it was down are not
    /// announced (the cache itself is emptied instead).
    pub fn subscribe(&self) -> broadcast::Receiver<ConfigChanged> {
        self.inner.events.subscribe()
    }

    /// How many guilds are cached now.
    pub fn len(&self) -> usize {
        self.inner.read_slots().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the change feed is up (cached reads are not stale).
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Acquire)
    }

    /// How many times the cache was emptied because the feed (re)connected.
    pub fn resyncs(&self) -> u64 {
        self.inner.resyncs.load(Ordering::Acquire)
    }
}

impl Inner {
    fn read_slots(&self) -> std::sync::RwLockReadGuard<'_, HashMap<GuildId, Slot>> {
        self.slots.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_slots(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<GuildId, Slot>> {
        self.slots.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn answer(&self, guild: GuildId, slot: &Slot, stale: bool) -> CachedConfig {
        CachedConfig {
            guild_id: guild,
            version: slot.version,
            configured: slot.document.is_some(),
            document: slot
                .document
                .clone()
                .unwrap_or_else(|| Arc::clone(&self.defaults)),
            stale,
        }
    }

    /// Caches a head read from the database, unless the cache was emptied
    /// since the read began or already holds a newer head.
    fn fill(&self, guild: GuildId, slot: &Slot, epoch: u64) {
        let mut slots = self.write_slots();
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        match slots.get(&guild) {
            Some(current) if current.seq > slot.seq => {}
            _ => {
                slots.insert(guild, slot.clone());
            }
        }
    }

    /// A write of this process committed: cache its head and announce it.
    fn committed(&self, guild: GuildId, version: u64, seq: u64, document: Option<Value>) {
        {
            let mut slots = self.write_slots();
            match slots.get(&guild) {
                Some(current) if current.seq >= seq => {}
                _ => {
                    slots.insert(
                        guild,
                        Slot {
                            version,
                            seq,
                            document: document.map(Arc::new),
                            fetched: Instant::now(),
                        },
                    );
                }
            }
        }
        self.announce(HeadChange {
            guild_id: guild,
            version,
            seq,
        });
    }

    fn forget(&self, guild: GuildId) {
        let mut slots = self.write_slots();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        slots.remove(&guild);
    }

    fn changed(&self, changes: &[HeadChange]) {
        {
            let mut slots = self.write_slots();
            self.epoch.fetch_add(1, Ordering::AcqRel);
            for change in changes {
                if slots
                    .get(&change.guild_id)
                    .is_some_and(|slot| slot.seq < change.seq)
                {
                    slots.remove(&change.guild_id);
                }
            }
        }
        for change in changes {
            self.announce(*change);
        }
    }

    fn resync(&self) {
        let mut slots = self.write_slots();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        slots.clear();
        self.resyncs.fetch_add(1, Ordering::AcqRel);
        self.healthy.store(true, Ordering::Release);
    }

    fn announce(&self, change: HeadChange) {
        let mut announced = self
            .announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let last = announced.entry(change.guild_id).or_insert(0);
        if change.seq > *last {
            *last = change.seq;
            // No subscriber is not an error.
            let _ = self.events.send(ConfigChanged {
                guild_id: change.guild_id,
                version: change.version,
                seq: change.seq,
            });
        }
    }
}

/// Follows the change feed until the cache is dropped.
async fn follow(cache: Weak<Inner>, mut watcher: Box<dyn ChangeWatcher>) {
    loop {
        let event = watcher.next().await;
        let Some(inner) = cache.upgrade() else {
            return;
        };
        match event {
            Ok(WatchEvent::Changed(changes)) => inner.changed(&changes),
            Ok(WatchEvent::Resync) => {
                tracing::debug!("read cache: change feed (re)connected; cache emptied");
                inner.resync();
            }
            Err(e) => {
                if inner.healthy.swap(false, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "read cache: change feed lost; serving stale configs");
                }
                let pause = inner.options.retry_after;
                drop(inner);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// The store the cache's service writes through: every call goes to the
/// real store; a committed change set also updates the cache.
#[derive(Debug)]
struct WriteThrough {
    cache: Arc<Inner>,
}

impl crate::wrapper::Wraps for WriteThrough {
    fn wrapped(&self) -> &dyn ConfigStore {
        self.cache.store.as_ref()
    }
}

/// What the cache learns from a change set once it commits: the guild's
/// new head (version, seq and document).
type NewHead = (GuildId, u64, u64, Option<Value>);

fn new_head(change: &ChangeSet) -> NewHead {
    let head = &change.head;
    (
        change.guild_id,
        head.version,
        head.seq,
        head.document.clone(),
    )
}

impl WriteThrough {
    /// After a write of change sets: cache the heads they leave when it
    /// committed; after a conflict, forget those guilds (someone else moved
    /// a head, so what is held is old).
    fn settle(&self, heads: Vec<NewHead>, result: &StoreResult<()>) {
        match result {
            Ok(()) => {
                for (guild, version, seq, document) in heads {
                    self.cache.committed(guild, version, seq, document);
                }
            }
            Err(StoreError::Conflict(_)) => {
                for (guild, ..) in heads {
                    self.cache.forget(guild);
                }
            }
            Err(_) => {}
        }
    }
}

crate::wrapper::wrapping_store!(WriteThrough {
    async fn commit(&self, change: ChangeSet) -> StoreResult<()> {
        let heads = vec![new_head(&change)];
        let result = self.cache.store.commit(change).await;
        self.settle(heads, &result);
        result
    }

    async fn commit_token(&self, write: TokenWrite) -> StoreResult<()> {
        let heads = write.changes.iter().map(new_head).collect();
        let result = self.cache.store.commit_token(write).await;
        self.settle(heads, &result);
        result
    }

    async fn purge(&self, purge: PurgeSet) -> StoreResult<PurgeOutcome> {
        let guild = purge.head.guild_id;
        let (version, seq) = (purge.head.version, purge.head.seq);
        let document = purge.head.document.clone();
        match self.cache.store.purge(purge).await {
            Ok(outcome) => {
                // A purge moves the head (its chained entry) but not the config.
                self.cache.committed(guild, version, seq, document);
                Ok(outcome)
            }
            Err(e) => {
                self.cache.forget(guild);
                Err(e)
            }
        }
    }
});
