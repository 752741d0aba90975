//! The [`ConfigStore`] contract, written once, shipped with the port
//! (feature `contract-tests`) and invoked by every adapter's tests through
//! [`config_store_contract_tests!`](crate::config_store_contract_tests), as
//! matrix-rust-sdk ships its `statestore_integration_tests!` with its store
//! trait. A new backend implements [`StoreFixture`] for its test database
//! and invokes the macro once; it then runs every test here.
//!
//! The tests build their change sets as the app does, through the domain's
//! one maker of links ([`change_set`]), and tamper with plain SQL through the
//! fixture, as an attacker with the database's owner role would.

#![allow(clippy::missing_panics_doc)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use guildconf_domain::{
    link, Actor, ActorKind, CanonicalDocument, ConfigSchema, GuildConfigSchema, GuildId, LinkMeta,
    RequestContext, Step, Timestamp,
};
use serde_json::{json, Value};

use crate::{ChangeSet, ConfigStore, Head, PurgeSet, RequestRecord, StoreError};

/// One test's own, empty database on a backend.
#[async_trait]
pub trait StoreFixture: Send + Sync + Sized {
    /// A fresh, empty store for the test `name` (unique per test). Panics
    /// when the database cannot be reached: a missing server is a failed
    /// test, never a skipped one.
    async fn new(name: &str) -> Self;

    /// The store under test.
    fn store(&self) -> &dyn ConfigStore;

    /// Runs one SQL statement on the database as its owner, outside
    /// guildconf; the database's error as text.
    async fn execute(&self, sql: &str) -> Result<u64, String>;

    /// Counts a table's rows with plain SQL.
    async fn count(&self, table: &str) -> u64;

    /// From now on every insert into `audit_entries` fails inside the
    /// database with the message `injected fault` (`true`), or no longer
    /// does (`false`).
    async fn fail_entry_inserts(&self, on: bool);

    /// Drops the chain guards (the triggers that keep heads moving forward
    /// onto stored entries and entries extending their chain), as an
    /// attacker with the owner role could.
    async fn drop_chain_guards(&self);

    /// Drops the test's database or schema.
    async fn finish(self);
}

/// A test guild.
pub fn guild(n: u64) -> GuildId {
    GuildId::from_u64(n).expect("test guild ids are valid")
}

/// A human test actor.
pub fn alice() -> Actor {
    Actor::new("80351110224678912", ActorKind::Human, Some("alice")).expect("a valid actor")
}

/// Second `s` of 2026-01-01 UTC.
pub fn second(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600 + s, 0).expect("a valid time")
}

/// The shipped schema's defaults with feature `flag` on.
pub fn with_feature(flag: &str) -> Value {
    let mut doc = GuildConfigSchema.defaults();
    doc["features"][flag] = json!(true);
    doc
}

/// The change set that moves `guild` from `prev` to `document` (`None`:
/// delete) at `now`, made as the app makes it: through the domain's one
/// maker of links. With a request id it carries a request record.
pub fn change_set(
    guild: GuildId,
    prev: Option<&Head>,
    document: Option<Value>,
    actor: &Actor,
    now: DateTime<Utc>,
    request_id: Option<&str>,
) -> ChangeSet {
    let step = match (document, prev.and_then(|h| h.document.as_ref())) {
        (None, _) => Step::Delete,
        (Some(doc), None) => Step::Create(CanonicalDocument::new(doc).expect("canonical")),
        (Some(doc), Some(_)) => Step::Update(CanonicalDocument::new(doc).expect("canonical")),
    };
    let context = RequestContext::new();
    let meta = LinkMeta {
        actor,
        reason: None,
        request_id,
        context: &context,
    };
    let secrets = GuildConfigSchema.secret_paths();
    let link = link(guild, prev, step, meta, &secrets, now).expect("the step fits the head");
    let request = request_id.map(|r| RequestRecord {
        request_id: r.to_owned(),
        fingerprint: "f".repeat(64),
        result: json!({"guild_id": guild.to_string(), "version": link.head.version}),
    });
    ChangeSet::new(link, prev.map(|h| h.seq), request)
}

/// Commits create (v1) and update (v2) of `g`; returns the head.
pub async fn seed(store: &dyn ConfigStore, g: GuildId) -> Head {
    let one = change_set(
        g,
        None,
        Some(GuildConfigSchema.defaults()),
        &alice(),
        second(0),
        Some("req-1"),
    );
    store.commit(one.clone()).await.expect("the create lands");
    let two = change_set(
        g,
        Some(&one.head),
        Some(with_feature("beta")),
        &alice(),
        second(1),
        None,
    );
    store.commit(two.clone()).await.expect("the update lands");
    two.head
}

/// Every way a change set can disagree with itself, each named, made from
/// the valid change set `ok` that follows `prev`.
pub fn inconsistent_change_sets(ok: &ChangeSet, prev: &Head) -> Vec<(&'static str, ChangeSet)> {
    let other = guild(ok.guild_id.as_i64().unsigned_abs() + 1);
    let mut out: Vec<(&'static str, ChangeSet)> = Vec::new();
    let mut case = |name, edit: &dyn Fn(&mut ChangeSet)| {
        let mut bad = ok.clone();
        edit(&mut bad);
        out.push((name, bad));
    };
    case("guild of the set", &|c| c.guild_id = other);
    case("guild of the head", &|c| c.head.guild_id = other);
    case("head seq", &|c| c.head.seq += 1);
    case("head hash", &|c| c.head.last_hash = "0".repeat(64));
    case("head version", &|c| c.head.version += 1);
    case("head time", &|c| {
        c.head.updated_at = Timestamp::from_datetime(second(99));
    });
    case("head actor", &|c| c.head.actor.label = "mallory".into());
    case("head document deleted", &|c| c.head.document = None);
    case("head document other", &|c| {
        c.head.document = Some(with_feature("other"));
    });
    case("expected seq", &|c| c.expected_seq = Some(prev.seq + 1));
    case("snapshot missing", &|c| c.snapshot = None);
    case("snapshot version", &|c| {
        if let Some(s) = &mut c.snapshot {
            s.version += 1;
        }
    });
    case("snapshot document", &|c| {
        if let Some(s) = &mut c.snapshot {
            s.document = CanonicalDocument::new(with_feature("other")).expect("canonical");
        }
    });
    case("request id", &|c| {
        c.request = Some(RequestRecord {
            request_id: "another".into(),
            fingerprint: "f".repeat(64),
            result: json!({}),
        });
    });
    out
}

/// Each inconsistent change set is refused with the one check's storage
/// error, before anything is written.
pub async fn inconsistent_change_sets_are_refused<F: StoreFixture>() {
    let fx = F::new("inconsistent").await;
    let store = fx.store();
    let g = guild(10);
    let head = seed(store, g).await;
    let ok = change_set(
        g,
        Some(&head),
        Some(with_feature("gamma")),
        &alice(),
        second(5),
        Some("req-2"),
    );
    let cases = inconsistent_change_sets(&ok, &head);
    assert!(cases.len() >= 14);
    for (name, bad) in cases {
        match store.commit(bad).await {
            Err(StoreError::Storage(m)) => {
                assert!(m.starts_with("inconsistent change set: "), "{name}: {m}");
            }
            other => panic!("{name}: expected the consistency check to refuse, got {other:?}"),
        }
        assert_eq!(
            store.head(g).await.expect("reads"),
            Some(head.clone()),
            "{name}"
        );
    }
    assert_eq!(fx.count("audit_entries").await, 2);
    assert_eq!(fx.count("guild_snapshots").await, 2);
    assert_eq!(fx.count("audit_requests").await, 1);
    store.commit(ok).await.expect("the consistent set lands");
    fx.finish().await;
}

/// The purge sets that disagree with themselves, each named.
fn inconsistent_purge_sets(ok: &PurgeSet) -> Vec<(&'static str, PurgeSet)> {
    let mut out: Vec<(&'static str, PurgeSet)> = Vec::new();
    let mut case = |name, edit: &dyn Fn(&mut PurgeSet)| {
        let mut bad = ok.clone();
        edit(&mut bad);
        out.push((name, bad));
    };
    case("guild", &|p| {
        p.guild_id = guild(p.guild_id.as_i64().unsigned_abs() + 1)
    });
    case("head seq", &|p| p.head.seq += 1);
    case("head hash", &|p| p.head.last_hash = "0".repeat(64));
    case("head version", &|p| p.head.version += 1);
    case("expected seq", &|p| p.expected_seq += 1);
    case("through seq", &|p| p.through_seq -= 1);
    case("through hash", &|p| p.through_hash = "0".repeat(64));
    case("keep from past the current version", &|p| {
        p.keep_from_version = p.head.version + 1;
    });
    out
}

/// Each inconsistent purge set is refused before anything is removed.
pub async fn inconsistent_purge_sets_are_refused<F: StoreFixture>() {
    let fx = F::new("inconsistent_purge").await;
    let store = fx.store();
    let g = guild(12);
    let head = seed(store, g).await;
    let candidate = store
        .purge_candidate(g, Timestamp::from_datetime(second(1)))
        .await
        .expect("reads")
        .expect("the create can go");
    let step = Step::Purge {
        before: Timestamp::from_datetime(second(1)),
        through_seq: candidate.through_seq,
        through_hash: candidate.through_hash.clone(),
        entries: candidate.entries,
    };
    let context = RequestContext::new();
    let actor = alice();
    let meta = LinkMeta {
        actor: &actor,
        reason: None,
        request_id: None,
        context: &context,
    };
    let secrets = GuildConfigSchema.secret_paths();
    let link = link(g, Some(&head), step, meta, &secrets, second(9)).expect("a purge links");
    let ok = PurgeSet {
        guild_id: g,
        expected_seq: head.seq,
        through_seq: candidate.through_seq,
        through_hash: candidate.through_hash,
        keep_from_version: candidate.keep_from_version,
        head: link.head,
        entry: link.entry,
    };
    for (name, bad) in inconsistent_purge_sets(&ok) {
        match store.purge(bad).await {
            Err(StoreError::Storage(m)) => {
                assert!(m.starts_with("inconsistent purge set: "), "{name}: {m}");
            }
            other => panic!("{name}: expected the consistency check to refuse, got {other:?}"),
        }
        assert_eq!(
            store.head(g).await.expect("reads"),
            Some(head.clone()),
            "{name}"
        );
        assert_eq!(fx.count("audit_entries").await, 2, "{name}");
    }
    store.purge(ok).await.expect("the consistent purge lands");
    assert_eq!(
        fx.count("audit_entries").await,
        2,
        "one removed, one purge entry added"
    );
    fx.finish().await;
}

/// A change set computed from a head the store is no longer at is a
/// conflict, and so is a request id that is taken; neither writes anything,
/// and the message does not echo the request id.
pub async fn a_stale_head_is_a_conflict_and_writes_nothing<F: StoreFixture>() {
    let fx = F::new("stale").await;
    let store = fx.store();
    let g = guild(7);
    let head = seed(store, g).await;
    let before = store.entries(g, 0, None, 100, true).await.expect("reads");
    let first = store
        .history(&crate::HistoryQuery {
            guild_id: Some(g),
            limit: 10,
            ..crate::HistoryQuery::default()
        })
        .await
        .expect("reads");
    assert_eq!(first.len(), 2);
    // A head at seq 1 (the create's) although the store is at seq 2.
    let one = change_set(
        g,
        None,
        Some(GuildConfigSchema.defaults()),
        &alice(),
        second(0),
        Some("req-1"),
    );
    let stale = change_set(
        g,
        Some(&one.head),
        Some(with_feature("gamma")),
        &alice(),
        second(50),
        Some("req-9"),
    );
    let fresh = change_set(
        g,
        None,
        Some(GuildConfigSchema.defaults()),
        &alice(),
        second(51),
        None,
    );
    for (name, set) in [("stale", stale), ("as if new", fresh)] {
        assert!(
            matches!(store.commit(set).await, Err(StoreError::Conflict(_))),
            "{name}"
        );
    }
    let reused = change_set(
        g,
        Some(&head),
        Some(with_feature("delta")),
        &alice(),
        second(52),
        Some("req-1"),
    );
    match store.commit(reused).await {
        Err(StoreError::Conflict(m)) => assert!(!m.contains("req-1"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.head(g).await.expect("reads"), Some(head));
    assert_eq!(
        store.entries(g, 0, None, 100, true).await.expect("reads"),
        before
    );
    assert_eq!(store.snapshot(g, 3).await.expect("reads"), None);
    assert_eq!(store.request(g, "req-9").await.expect("reads"), None);
    assert_eq!(fx.count("guild_snapshots").await, 2);
    assert_eq!(fx.count("audit_requests").await, 1);
    fx.finish().await;
}

/// The database itself refuses `UPDATE` and `DELETE` on entries, snapshots
/// and request records, as their owner runs them with plain SQL.
pub async fn the_database_refuses_to_rewrite_history<F: StoreFixture>() {
    let fx = F::new("append_only").await;
    seed(fx.store(), guild(9)).await;
    for (table, column) in [
        ("audit_entries", "entry_hash"),
        ("guild_snapshots", "sha256"),
        ("audit_requests", "fingerprint"),
    ] {
        for sql in [
            format!("UPDATE {table} SET {column} = 'x'"),
            format!("DELETE FROM {table}"),
        ] {
            let err = fx
                .execute(&sql)
                .await
                .expect_err("append-only tables refuse");
            assert!(
                err.contains(&format!("guildconf: {table} is append-only")),
                "{sql}: {err}"
            );
        }
    }
    assert_eq!(fx.count("audit_entries").await, 2);
    assert_eq!(fx.count("guild_snapshots").await, 2);
    assert_eq!(fx.count("audit_requests").await, 1);
    fx.finish().await;
}

/// An entry insert that fails inside the database rolls back the whole
/// write (the snapshot, the request record and the head move); once the
/// fault is gone the same change set lands.
pub async fn a_failing_audit_insert_rolls_back_the_whole_write<F: StoreFixture>() {
    let fx = F::new("fault_insert").await;
    let store = fx.store();
    let g = guild(11);
    let head = seed(store, g).await;
    let before = store.entries(g, 0, None, 100, true).await.expect("reads");
    fx.fail_entry_inserts(true).await;
    let next = change_set(
        g,
        Some(&head),
        Some(with_feature("gamma")),
        &alice(),
        second(40),
        Some("req-2"),
    );
    match store.commit(next.clone()).await {
        Err(StoreError::Storage(m)) => assert!(m.contains("injected fault"), "{m}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert_eq!(store.head(g).await.expect("reads"), Some(head));
    assert_eq!(store.snapshot(g, 3).await.expect("reads"), None);
    assert_eq!(store.request(g, "req-2").await.expect("reads"), None);
    assert_eq!(
        store.entries(g, 0, None, 100, true).await.expect("reads"),
        before
    );
    assert_eq!(fx.count("guild_snapshots").await, 2);
    fx.fail_entry_inserts(false).await;
    store
        .commit(next.clone())
        .await
        .expect("lands without the fault");
    assert_eq!(store.head(g).await.expect("reads"), Some(next.head));
    fx.finish().await;
}

/// With the triggers on, the database itself refuses, from plain SQL as the
/// owner runs it, what no guildconf write does: a head moved back (the
/// rollback of the live config), a head onto an entry that is not stored, an
/// entry that skips a seq, and one that names another hash than its
/// predecessor's.
pub async fn the_database_refuses_what_no_write_does<F: StoreFixture>() {
    let fx = F::new("chain_guards").await;
    let g = guild(21);
    let head = seed(fx.store(), g).await;
    let first = format!("(SELECT entry_hash FROM audit_entries WHERE guild_id = {g} AND seq = 1)");
    let ones = "1".repeat(64);
    let entry = |seq: u64, prev: &str| {
        format!(
            "INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at, \
             actor_id, request_id, body, entry_hash, prev_hash) VALUES ({g}, {seq}, 2, 'update', \
             '2027-01-01T00:00:00.000000Z', 'mallory', NULL, '{{}}', '{ones}', {prev})"
        )
    };
    let cases = [
        (
            "head moved back",
            format!("UPDATE guild_heads SET seq = 1, version = 1, last_hash = {first} WHERE guild_id = {g}"),
            "guildconf: a head m",
        ),
        (
            "head onto no entry",
            format!("UPDATE guild_heads SET last_hash = '{ones}' WHERE guild_id = {g}"),
            "guildconf: a head m",
        ),
        (
            "head of another guild",
            format!("UPDATE guild_heads SET guild_id = {} WHERE guild_id = {g}", g.as_i64() + 1),
            "guildconf: a head m",
        ),
        (
            "entry skipping a seq",
            entry(5, &format!("'{}'", head.last_hash)),
            "an entry must extend its guild's last entry",
        ),
        (
            "entry naming another hash",
            entry(3, &format!("'{ones}'")),
            "an entry must extend its guild's last entry",
        ),
    ];
    for (name, sql, message) in cases {
        let err = fx.execute(&sql).await.expect_err(name);
        assert!(err.contains(message), "{name}: {err}");
    }
    assert_eq!(fx.store().head(g).await.expect("reads"), Some(head));
    assert_eq!(fx.count("audit_entries").await, 2);
    fx.finish().await;
}

/// A write that finds its guild's head and chain disagreeing (an owner
/// dropped the guards and moved the head back) stops at once as corrupt
/// data, never as a race to retry.
pub async fn a_head_behind_its_chain_is_corrupt_not_a_conflict<F: StoreFixture>() {
    let fx = F::new("head_behind").await;
    let store = fx.store();
    let g = guild(22);
    seed(store, g).await;
    fx.drop_chain_guards().await;
    fx.execute(&format!(
        "UPDATE guild_heads SET seq = 1, version = 1, last_hash = \
         (SELECT entry_hash FROM audit_entries WHERE guild_id = {g} AND seq = 1) WHERE guild_id = {g}"
    ))
    .await
    .expect("the owner can move the head once the guards are gone");
    let stale = store.head(g).await.expect("reads").expect("a head");
    let next = change_set(
        g,
        Some(&stale),
        Some(with_feature("gamma")),
        &alice(),
        second(60),
        None,
    );
    match store.commit(next).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("run guildconf verify"), "{m}"),
        other => panic!("expected corrupt data, got {other:?}"),
    }
    assert_eq!(fx.count("audit_entries").await, 2);
    fx.finish().await;
}

/// Instantiates every test of the [`ConfigStore`] contract for a
/// [`StoreFixture`] type: one `#[tokio::test]` per contract test, in a
/// module named `config_store_contract`.
#[macro_export]
macro_rules! config_store_contract_tests {
    ($fixture:ty) => {
        mod config_store_contract {
            use $crate::contract as c;

            #[tokio::test]
            async fn inconsistent_change_sets_are_refused() {
                c::inconsistent_change_sets_are_refused::<$fixture>().await;
            }

            #[tokio::test]
            async fn inconsistent_purge_sets_are_refused() {
                c::inconsistent_purge_sets_are_refused::<$fixture>().await;
            }

            #[tokio::test]
            async fn a_stale_head_is_a_conflict_and_writes_nothing() {
                c::a_stale_head_is_a_conflict_and_writes_nothing::<$fixture>().await;
            }

            #[tokio::test]
            async fn the_database_refuses_to_rewrite_history() {
                c::the_database_refuses_to_rewrite_history::<$fixture>().await;
            }

            #[tokio::test]
            async fn the_database_refuses_what_no_write_does() {
                c::the_database_refuses_what_no_write_does::<$fixture>().await;
            }

            #[tokio::test]
            async fn a_head_behind_its_chain_is_corrupt_not_a_conflict() {
                c::a_head_behind_its_chain_is_corrupt_not_a_conflict::<$fixture>().await;
            }

            #[tokio::test]
            async fn a_failing_audit_insert_rolls_back_the_whole_write() {
                c::a_failing_audit_insert_rolls_back_the_whole_write::<$fixture>().await;
            }
        }
    };
}
