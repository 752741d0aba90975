//! The read cache against the real databases: own writes at once, other
//! connections' writes within the documented bound, stale answers while the
//! database is unreachable, and an emptied cache after the PostgreSQL
//! watcher reconnects.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use guildconf::{
    Actor, ActorKind, CacheOptions, ConfigService, ConfigStore, Error, FieldEdit, FieldPath,
    GuildId, ReadCache, WriteMeta,
};
use guildconf_domain::{Entry, Operation, Timestamp};
use guildconf_ports::{
    ChangeSet, ChangeWatcher, GuildSummary, Head, HistoryQuery, PurgeCandidate, PurgeOutcome,
    PurgeSet, RequestRecord, Snapshot, StatsQuery, StatsRow, StoreError, StoreResult, StoredEntry,
    StoredHead, WatchEvent,
};
use guildconf_tests::{contract, Backend, Postgres, Sqlite, TestDb};
use serde_json::json;

/// Generous: the documented bound is one 50 ms poll on either backend; this
/// only has to rule out "never" and "after max_age".
const BOUND: Duration = Duration::from_secs(3);

fn gid(n: u64) -> GuildId {
    GuildId::from_u64(n).expect("test ids are valid")
}

fn alice() -> WriteMeta {
    WriteMeta::new(
        Actor::new("80351110224678912", ActorKind::Human, Some("alice"))
            .expect("test actors are valid"),
    )
}

fn welcome(text: &str) -> FieldEdit {
    FieldEdit::new().set(
        FieldPath::from_segments(["onboarding", "welcome_message"]),
        json!(text),
    )
}

fn options() -> CacheOptions {
    CacheOptions {
        retry_after: Duration::from_millis(50),
        ..CacheOptions::default()
    }
}

/// Polls `check` until it holds or `BOUND` passes; returns whether it held.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < BOUND {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

async fn own_writes_are_visible_at_once(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let service = db.service().await;
    let cache = ReadCache::start(&service, options())
        .await
        .expect("the cache starts");
    let service = cache.service();
    let g = gid(11);
    let before = cache.get(g).await.expect("an unconfigured guild reads");
    assert!(!before.configured);
    assert_eq!(before.version, 0);
    let mut events = cache.subscribe();
    service
        .create(g, json!({}), &alice())
        .await
        .expect("create");
    service
        .update(g, welcome("hi"), &alice())
        .await
        .expect("update");
    let now = cache.get(g).await.expect("reads");
    assert_eq!(now.version, 2);
    assert!(now.configured && !now.stale);
    assert_eq!(now.document["onboarding"]["welcome_message"], json!("hi"));
    let first = events.recv().await.expect("an event");
    let second = events.recv().await.expect("an event");
    assert_eq!((first.guild_id, first.version), (g, 1));
    assert_eq!((second.guild_id, second.version), (g, 2));
    // The feed echoes own writes; they are announced only once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(events.try_recv().is_err(), "own writes are announced once");
}

async fn other_writers_become_visible_within_the_bound(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let service = db.service().await;
    let cache = ReadCache::start(&service, options())
        .await
        .expect("the cache starts");
    // Another store: its own connections, as another process would have.
    let other = db.service().await;
    let g = gid(12);
    other.create(g, json!({}), &alice()).await.expect("create");
    let mut events = cache.subscribe();
    assert!(
        eventually(|| async { cache.get(g).await.is_ok_and(|c| c.version == 1) }).await,
        "the other writer's create shows up"
    );
    other
        .update(g, welcome("from elsewhere"), &alice())
        .await
        .expect("update");
    assert!(
        eventually(|| async { cache.get(g).await.is_ok_and(|c| c.version == 2) }).await,
        "the other writer's update shows up within the bound"
    );
    let seen = cache.get(g).await.expect("reads");
    assert_eq!(
        seen.document["onboarding"]["welcome_message"],
        json!("from elsewhere")
    );
    let mut versions = Vec::new();
    while versions.last() != Some(&2) {
        let event = tokio::time::timeout(BOUND, events.recv())
            .await
            .expect("an event arrives")
            .expect("the channel is open");
        assert_eq!(event.guild_id, g);
        versions.push(event.version);
    }
}

async fn a_cached_read_costs_no_round_trip(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let service = db.service().await;
    let g = gid(13);
    service
        .create(g, json!({}), &alice())
        .await
        .expect("create");
    let counting = Arc::new(Flaky::new(Arc::clone(service.store())));
    let service = ConfigService::new(counting.clone());
    let cache = ReadCache::start(&service, options())
        .await
        .expect("the cache starts");
    for _ in 0..100 {
        cache.get(g).await.expect("reads");
    }
    assert_eq!(counting.head_reads(), 1, "one database read, then memory");
}

contract! {
    own_writes_are_visible_at_once,
    other_writers_become_visible_within_the_bound,
    a_cached_read_costs_no_round_trip,
    asking_for_guilds_that_do_not_exist_does_not_grow_the_cache,
}

/// A store whose reads and change feed fail while `down` is set, standing in
/// for an unreachable database.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn ConfigStore>,
    down: Arc<AtomicBool>,
    heads: std::sync::atomic::AtomicU64,
}

impl Flaky {
    fn new(inner: Arc<dyn ConfigStore>) -> Self {
        Self {
            inner,
            down: Arc::new(AtomicBool::new(false)),
            heads: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn head_reads(&self) -> u64 {
        self.heads.load(Ordering::SeqCst)
    }

    fn check(&self) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Storage("database unreachable (test)".into()))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
struct FlakyWatcher {
    inner: Box<dyn ChangeWatcher>,
    down: Arc<AtomicBool>,
    was_down: bool,
}

#[async_trait]
impl ChangeWatcher for FlakyWatcher {
    async fn next(&mut self) -> StoreResult<WatchEvent> {
        loop {
            if self.down.load(Ordering::SeqCst) {
                self.was_down = true;
                tokio::time::sleep(Duration::from_millis(10)).await;
                return Err(StoreError::Storage("database unreachable (test)".into()));
            }
            if self.was_down {
                self.was_down = false;
                return Ok(WatchEvent::Resync);
            }
            // Wake up regularly to notice the switch.
            if let Ok(event) =
                tokio::time::timeout(Duration::from_millis(20), self.inner.next()).await
            {
                return event;
            }
        }
    }
}

#[async_trait]
impl ConfigStore for Flaky {
    async fn head(&self, guild: GuildId) -> StoreResult<Option<Head>> {
        self.check()?;
        self.heads.fetch_add(1, Ordering::SeqCst);
        self.inner.head(guild).await
    }
    async fn commit(&self, change: ChangeSet) -> StoreResult<()> {
        self.check()?;
        self.inner.commit(change).await
    }
    async fn entry_signature(
        &self,
        guild: GuildId,
        seq: u64,
    ) -> StoreResult<Option<(String, Option<guildconf_domain::EntrySignature>)>> {
        self.check()?;
        self.inner.entry_signature(guild, seq).await
    }
    async fn request(&self, guild: GuildId, id: &str) -> StoreResult<Option<RequestRecord>> {
        self.check()?;
        self.inner.request(guild, id).await
    }
    async fn purge_candidate(
        &self,
        guild: GuildId,
        before: Timestamp,
    ) -> StoreResult<Option<PurgeCandidate>> {
        self.check()?;
        self.inner.purge_candidate(guild, before).await
    }
    async fn purge(&self, purge: PurgeSet) -> StoreResult<PurgeOutcome> {
        self.check()?;
        self.inner.purge(purge).await
    }
    async fn snapshot(&self, guild: GuildId, version: u64) -> StoreResult<Option<Snapshot>> {
        self.check()?;
        self.inner.snapshot(guild, version).await
    }
    async fn entry_at(
        &self,
        guild: GuildId,
        at: Timestamp,
    ) -> StoreResult<Option<(u64, Operation)>> {
        self.check()?;
        self.inner.entry_at(guild, at).await
    }
    async fn list_guilds(&self) -> StoreResult<Vec<GuildSummary>> {
        self.check()?;
        self.inner.list_guilds().await
    }
    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<Entry>> {
        self.check()?;
        self.inner.history(query).await
    }

    async fn stats(&self, query: &StatsQuery) -> StoreResult<Vec<StatsRow>> {
        self.check()?;
        self.inner.stats(query).await
    }
    async fn guild_ids(&self, after: Option<GuildId>, limit: u32) -> StoreResult<Vec<GuildId>> {
        self.check()?;
        self.inner.guild_ids(after, limit).await
    }
    async fn entries_between(
        &self,
        after: (GuildId, u64),
        through: GuildId,
        since: Option<Timestamp>,
        limit: u32,
        with_snapshots: bool,
    ) -> StoreResult<Vec<StoredEntry>> {
        self.check()?;
        self.inner
            .entries_between(after, through, since, limit, with_snapshots)
            .await
    }

    async fn stored_heads(
        &self,
        from: GuildId,
        through: GuildId,
    ) -> StoreResult<Vec<(GuildId, StoredHead)>> {
        self.check()?;
        self.inner.stored_heads(from, through).await
    }

    async fn commit_all(
        &self,
        changes: Box<dyn Iterator<Item = StoreResult<guildconf_ports::ChangeSet>> + Send>,
    ) -> StoreResult<u64> {
        self.check()?;
        self.inner.commit_all(changes).await
    }

    async fn rows_past_heads(
        &self,
        from: GuildId,
        through: GuildId,
    ) -> StoreResult<Vec<guildconf_ports::PastHead>> {
        self.check()?;
        self.inner.rows_past_heads(from, through).await
    }

    async fn commit_token(&self, write: guildconf_ports::TokenWrite) -> StoreResult<()> {
        self.check()?;
        self.inner.commit_token(write).await
    }

    async fn token_by_hash(
        &self,
        secret_sha256: &str,
    ) -> StoreResult<Option<guildconf_domain::TokenInfo>> {
        self.check()?;
        self.inner.token_by_hash(secret_sha256).await
    }

    async fn token(&self, id: &str) -> StoreResult<Option<guildconf_domain::TokenInfo>> {
        self.check()?;
        self.inner.token(id).await
    }

    async fn tokens(&self) -> StoreResult<Vec<guildconf_domain::TokenInfo>> {
        self.check()?;
        self.inner.tokens().await
    }

    async fn stored_requests(
        &self,
        from: GuildId,
        through: GuildId,
    ) -> StoreResult<Vec<guildconf_ports::StoredRequest>> {
        self.check()?;
        self.inner.stored_requests(from, through).await
    }

    async fn watch(&self) -> StoreResult<Box<dyn ChangeWatcher>> {
        self.check()?;
        Ok(Box::new(FlakyWatcher {
            inner: self.inner.watch().await?,
            down: Arc::clone(&self.down),
            was_down: false,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unreachable_database_serves_stale_cached_configs() {
    let db = TestDb::new(&Sqlite, "cache_unreachable").await;
    let plain = db.service().await;
    let (cached, uncached) = (gid(21), gid(22));
    plain
        .create(cached, json!({}), &alice())
        .await
        .expect("create");
    plain
        .create(uncached, json!({}), &alice())
        .await
        .expect("create");
    let flaky = Arc::new(Flaky::new(Arc::clone(plain.store())));
    let service = ConfigService::new(flaky.clone());
    let cache = ReadCache::start(&service, options())
        .await
        .expect("the cache starts");
    let fresh = cache.get(cached).await.expect("reads");
    assert!(!fresh.stale);

    flaky.down.store(true, Ordering::SeqCst);
    assert!(
        eventually(|| async { !cache.is_healthy() }).await,
        "the cache notices the feed is down"
    );
    let stale = cache.get(cached).await.expect("a cached guild still reads");
    assert!(stale.stale, "and says it is stale");
    assert_eq!(stale.version, fresh.version);
    assert_eq!(stale.document, fresh.document);
    match cache.get(uncached).await {
        Err(Error::Storage(message)) => assert!(message.contains("not cached"), "{message}"),
        other => panic!("an uncached read fails clearly, got {other:?}"),
    }

    flaky.down.store(false, Ordering::SeqCst);
    assert!(
        eventually(|| async { cache.is_healthy() }).await,
        "the feed comes back"
    );
    let back = cache.get(cached).await.expect("reads");
    assert!(!back.stale);
    assert!(cache.get(uncached).await.is_ok_and(|c| !c.stale));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_watcher_reconnect_empties_and_refills_the_cache() {
    let db = TestDb::new(&Postgres, "cache_watcher_reconnect").await;
    let service = db.service().await;
    let g = gid(31);
    service
        .create(g, json!({}), &alice())
        .await
        .expect("create");
    let cache = ReadCache::start(&service, options())
        .await
        .expect("the cache starts");
    cache.get(g).await.expect("reads");
    assert_eq!(cache.len(), 1);
    let resyncs = cache.resyncs();

    db.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'guildconf-watch'",
    )
    .await
    .expect("the watcher's backend can be terminated");
    assert!(
        eventually(|| async { cache.resyncs() > resyncs }).await,
        "the watcher reconnects and the cache resyncs"
    );
    assert_eq!(cache.len(), 0, "the cache is emptied on reconnect");
    let refilled = cache.get(g).await.expect("reads again");
    assert!(!refilled.stale);
    assert_eq!(cache.len(), 1, "and refills on demand");

    // The new watcher sees other writers again.
    let other = db.service().await;
    other
        .update(g, welcome("after reconnect"), &alice())
        .await
        .expect("update");
    assert!(
        eventually(|| async { cache.get(g).await.is_ok_and(|c| c.version == 2) }).await,
        "writes after the reconnect show up"
    );
}

/// PostgreSQL hands out `change_id`s before commit: a write that took its id
/// first but commits last (here, held by a slow trigger) is still seen by the
/// cache of another process, although a write with a higher id was seen
/// before it committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_write_that_commits_late_is_still_seen() {
    let db = TestDb::new(&Postgres, "cache_commits_late").await;
    let service = db.service().await;
    let (slow, quick) = (gid(41), gid(42));
    for g in [slow, quick] {
        service
            .create(g, json!({}), &alice())
            .await
            .expect("create");
    }
    let cache = ReadCache::start(&service, options())
        .await
        .expect("the cache starts");
    let mut events = cache.subscribe();
    for g in [slow, quick] {
        assert_eq!(cache.get(g).await.expect("reads").version, 1);
    }
    db.exec(
        "CREATE FUNCTION test_slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.guild_id = 41 THEN PERFORM pg_sleep(1.0); END IF; RETURN NEW; END $$;
         CREATE TRIGGER test_slow_insert BEFORE INSERT ON audit_entries
             FOR EACH ROW EXECUTE FUNCTION test_slow_insert();",
    )
    .await
    .expect("the slow trigger is created");

    // Another process's writes: the slow one takes its change_id first.
    let other = db.service().await;
    let writer = other.clone();
    let late = tokio::spawn(async move {
        writer
            .update(slow, welcome("committed late"), &alice())
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    other
        .update(quick, welcome("committed first"), &alice())
        .await
        .expect("the quick write lands");
    let mut seen = Vec::new();
    let deadline = Instant::now() + BOUND;
    while !seen.contains(&slow) && Instant::now() < deadline {
        if let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(100), events.recv()).await
        {
            seen.push(event.guild_id);
        }
    }
    late.await.expect("joins").expect("the slow write lands");
    assert_eq!(
        seen,
        vec![quick, slow],
        "both writes reported, in commit order"
    );
    assert_eq!(cache.get(slow).await.expect("reads").version, 2);
    assert_eq!(cache.get(quick).await.expect("reads").version, 2);
}

/// Any guild id can be asked for (an API client with an unscoped token asks
/// for ids in a loop): the answer for a guild with no config is not kept,
/// so the cache holds only guilds that exist, and a guild created later is
/// read at once.
async fn asking_for_guilds_that_do_not_exist_does_not_grow_the_cache(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let service = db.service().await;
    let cache = ReadCache::start(&service, options())
        .await
        .expect("the cache starts");
    for n in 1..=200 {
        let read = cache.get(gid(1_000 + n)).await.expect("reads");
        assert!(!read.configured);
    }
    assert_eq!(cache.len(), 0, "no slot for a guild that does not exist");
    let g = gid(1_001);
    service
        .create(g, json!({}), &alice())
        .await
        .expect("create");
    let now = cache.get(g).await.expect("reads");
    assert!(now.configured && now.version == 1);
    assert_eq!(cache.len(), 1);
}
