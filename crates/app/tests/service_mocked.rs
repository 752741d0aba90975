//! Failure paths of `ConfigService` that a real database cannot produce on
//! demand, on mocked ports: the audit write failing, races lost, replays.

use std::sync::Arc;

use guildconf::{
    Actor, ActorKind, ConfigService, Error, FieldEdit, FieldPath, GuildId, Outcome, WriteMeta,
};
use guildconf_domain::{ConfigSchema, GuildConfigSchema, Timestamp};
use guildconf_ports::{Head, MockConfigStore, RequestRecord, StoreError};
use serde_json::json;

fn guild() -> GuildId {
    GuildId::parse("123456789012345678").expect("valid id")
}

fn meta() -> WriteMeta {
    WriteMeta::new(
        Actor::new("80351110224678912", ActorKind::Human, Some("alice")).expect("valid actor"),
    )
}

fn head(seq: u64, version: u64) -> Head {
    Head {
        guild_id: guild(),
        version,
        seq,
        last_hash: "ab".repeat(32),
        updated_at: Timestamp::parse_stored("2026-11-22T04:45:44.123000Z").expect("valid"),
        actor: meta().actor,
        document: Some(GuildConfigSchema.defaults()),
    }
}

fn set_enabled() -> FieldEdit {
    FieldEdit::new()
        .set("onboarding.enabled".parse().expect("a valid path"), true)
        .set(
            "onboarding.welcome_channel".parse().expect("a valid path"),
            "5",
        )
}

/// A field edit from path segments and values.
fn edit(sets: Vec<(Vec<String>, serde_json::Value)>, unsets: Vec<Vec<String>>) -> FieldEdit {
    let edit = unsets.into_iter().fold(FieldEdit::new(), |e, p| {
        e.unset(FieldPath::from_segments(p))
    });
    sets.into_iter()
        .fold(edit, |e, (p, v)| e.set(FieldPath::from_segments(p), v))
}

#[tokio::test]
async fn a_failing_audit_write_is_surfaced_not_retried_or_swallowed() {
    let mut store = MockConfigStore::new();
    store.expect_head().returning(|_| Ok(Some(head(1, 1))));
    store
        .expect_commit()
        .times(1)
        .returning(|_| Err(StoreError::Storage("audit entry insert failed".into())));
    let service = ConfigService::new(Arc::new(store));
    let err = service
        .update(guild(), set_enabled(), &meta())
        .await
        .expect_err("must fail");
    assert!(
        matches!(err, Error::Storage(ref m) if m.contains("audit entry insert failed")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_lost_race_is_recomputed_from_the_new_head() {
    let mut store = MockConfigStore::new();
    let mut seq = 0;
    store.expect_head().times(3).returning(move |_| {
        seq += 1;
        Ok(Some(head(seq, seq)))
    });
    let mut calls = 0;
    store.expect_commit().times(3).returning(move |change| {
        calls += 1;
        // Each attempt is chained to the head it read.
        assert_eq!(change.expected_seq, Some(calls));
        assert_eq!(change.entry.body().seq, calls + 1);
        if calls < 3 {
            Err(StoreError::Conflict("head moved".into()))
        } else {
            Ok(())
        }
    });
    let service = ConfigService::new(Arc::new(store));
    let result = service
        .update(guild(), set_enabled(), &meta())
        .await
        .expect("third try lands");
    assert_eq!(result.version, 4);
    assert_eq!(result.outcome, Outcome::Updated);
}

#[tokio::test]
async fn retries_are_bounded_and_end_in_conflict() {
    let mut store = MockConfigStore::new();
    store.expect_head().returning(|_| Ok(Some(head(1, 1))));
    store
        .expect_commit()
        .times(3)
        .returning(|_| Err(StoreError::Conflict("head moved".into())));
    let service = ConfigService::new(Arc::new(store)).with_max_retries(2);
    let err = service
        .update(guild(), set_enabled(), &meta())
        .await
        .expect_err("conflict");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn an_expected_version_is_never_retried() {
    let mut store = MockConfigStore::new();
    store
        .expect_head()
        .times(1)
        .returning(|_| Ok(Some(head(1, 1))));
    store
        .expect_commit()
        .times(1)
        .returning(|_| Err(StoreError::Conflict("head moved".into())));
    let service = ConfigService::new(Arc::new(store));
    let mut m = meta();
    m.expect_version = Some(1);
    let err = service
        .update(guild(), set_enabled(), &m)
        .await
        .expect_err("conflict");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn a_stale_expected_version_writes_nothing() {
    let mut store = MockConfigStore::new();
    store.expect_head().returning(|_| Ok(Some(head(3, 3))));
    store.expect_commit().never();
    let service = ConfigService::new(Arc::new(store));
    let mut m = meta();
    m.expect_version = Some(2);
    let err = service
        .update(guild(), set_enabled(), &m)
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, Error::Conflict(ref msg) if msg.contains("version 3")),
        "{err:?}"
    );
}

#[tokio::test]
async fn updating_a_missing_guild_is_not_found_and_writes_nothing() {
    let mut store = MockConfigStore::new();
    store.expect_head().returning(|_| Ok(None));
    store.expect_commit().never();
    let service = ConfigService::new(Arc::new(store));
    let err = service
        .update(guild(), set_enabled(), &meta())
        .await
        .expect_err("not found");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    let err = service
        .revert(guild(), 1, &meta())
        .await
        .expect_err("not found");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn dry_runs_and_invalid_input_never_commit() {
    let mut store = MockConfigStore::new();
    store.expect_head().returning(|_| Ok(Some(head(1, 1))));
    store.expect_commit().never();
    let service = ConfigService::new(Arc::new(store));
    let mut m = meta();
    m.dry_run = true;
    let result = service
        .update(guild(), set_enabled(), &m)
        .await
        .expect("dry run");
    assert!(result.dry_run);
    assert_eq!(result.changes.as_ref().map(Vec::len), Some(2));
    let bad = vec![(vec!["features".into(), "Bad-Flag".into()], json!(true))];
    let err = service
        .update(guild(), edit(bad, vec![]), &meta())
        .await
        .expect_err("invalid");
    assert!(
        matches!(err, Error::Invalid(ref v) if v.0[0].path == "/features/Bad-Flag"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_replayed_request_returns_the_original_result_and_a_reused_id_conflicts() {
    // First run a real computation to learn the fingerprint the service stores.
    let mut first = MockConfigStore::new();
    first.expect_head().returning(|_| Ok(Some(head(1, 1))));
    first.expect_request().returning(|_, _| Ok(None));
    let stored: Arc<std::sync::Mutex<Option<RequestRecord>>> = Arc::default();
    let keep = stored.clone();
    first.expect_commit().times(1).returning(move |change| {
        *keep.lock().expect("not poisoned") = change.request.clone();
        Ok(())
    });
    let mut m = meta();
    m.request_id = Some("req-1".into());
    let original = ConfigService::new(Arc::new(first))
        .update(guild(), set_enabled(), &m)
        .await
        .expect("lands");
    let record = stored
        .lock()
        .expect("not poisoned")
        .clone()
        .expect("request recorded");

    let mut second = MockConfigStore::new();
    second.expect_head().returning(|_| Ok(Some(head(2, 2))));
    let r = record.clone();
    second
        .expect_request()
        .returning(move |_, _| Ok(Some(r.clone())));
    second.expect_commit().never();
    let service = ConfigService::new(Arc::new(second));
    let replayed = service
        .update(guild(), set_enabled(), &m)
        .await
        .expect("replayed");
    assert!(replayed.replayed);
    assert_eq!(
        (replayed.version, replayed.entry_hash.clone()),
        (original.version, original.entry_hash.clone())
    );
    let other = vec![(vec!["features".into(), "x".into()], json!(true))];
    let err = service
        .update(guild(), edit(other, vec![]), &m)
        .await
        .expect_err("reused id");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn a_second_write_to_a_guild_is_computed_from_the_head_the_first_left() {
    let mut store = MockConfigStore::new();
    // One head read for two writes: the second starts from the first's head.
    store
        .expect_head()
        .times(1)
        .returning(|_| Ok(Some(head(1, 1))));
    let mut calls = 0;
    store.expect_commit().times(2).returning(move |change| {
        calls += 1;
        assert_eq!(change.expected_seq, Some(calls));
        assert_eq!(change.entry.body().seq, calls + 1);
        Ok(())
    });
    let service = ConfigService::new(Arc::new(store));
    let first = service
        .update(guild(), set_enabled(), &meta())
        .await
        .expect("first write");
    let second = service
        .update(
            guild(),
            edit(
                vec![(vec!["onboarding".into(), "enabled".into()], json!(false))],
                vec![],
            ),
            &meta(),
        )
        .await
        .expect("second write");
    assert_eq!((first.version, second.version), (2, 3));
}

#[tokio::test]
async fn with_head_hints_off_every_write_reads_its_head() {
    let mut store = MockConfigStore::new();
    let mut seq = 0;
    store.expect_head().times(2).returning(move |_| {
        seq += 1;
        Ok(Some(head(seq, seq)))
    });
    store.expect_commit().times(2).returning(|_| Ok(()));
    let service = ConfigService::new(Arc::new(store)).with_head_hints(0);
    for _ in 0..2 {
        service
            .update(guild(), set_enabled(), &meta())
            .await
            .expect("write");
    }
}

/// A typed `modify` whose write loses to a purge (the seq moves, the version
/// does not) is read and computed again, not reported as a conflict.
#[tokio::test]
async fn a_modify_that_loses_to_a_purge_is_computed_again() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc as StdArc;
    let mut store = MockConfigStore::new();
    let commits = StdArc::new(AtomicU32::new(0));
    let seen = StdArc::clone(&commits);
    // Until the first commit lands as a conflict the head is at seq 2; the
    // purge that beat it leaves seq 3 at the same version.
    store.expect_head().returning(move |_| {
        let seq = if seen.load(Ordering::SeqCst) == 0 {
            2
        } else {
            3
        };
        Ok(Some(head(seq, 1)))
    });
    let counted = StdArc::clone(&commits);
    store.expect_commit().times(2).returning(move |change| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        assert_eq!(change.expected_seq, Some(if n == 0 { 2 } else { 3 }));
        if n == 0 {
            Err(StoreError::Conflict("the head moved".into()))
        } else {
            Ok(())
        }
    });
    let service = ConfigService::new(Arc::new(store)).with_head_hints(0);
    let r = service
        .modify(guild(), &meta(), |cfg| {
            cfg.features.insert("beta".into(), true);
        })
        .await
        .expect("computed again and written");
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(commits.load(Ordering::SeqCst), 2);
}
