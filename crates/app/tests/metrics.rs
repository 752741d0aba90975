//! The `metrics` feature's counters and histogram, read back through a
//! Prometheus recorder installed in this test process: what the write loop,
//! a refused event, verify and scheduled retention count, with which
//! labels, and that no label carries a guild id. Races and failing commits
//! come from mocked stores; verify and retention run on real SQLite files.
//! The example bot's test scrapes the same metrics over HTTP.
//!
//! Run with `cargo test -p guildconf --features metrics --test metrics`.

#![cfg(feature = "metrics")]

use std::io::Cursor;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use guildconf::{
    spawn_retention, Actor, ActorKind, ConfigService, Error, Event, EventOutcome, ExportRequest,
    FieldEdit, GuildId, OpenOptions, RetentionPolicy, Target, Timestamp, WriteMeta,
};
use guildconf_domain::{ConfigSchema, GuildConfigSchema};
use guildconf_ports::{Clock, Head, MockConfigStore, StoreError};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

const GUILD: &str = "123456789012345678";
const OTHER_GUILD: &str = "223456789012345678";

/// The process's recorder, installed by the first test that asks.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("no other recorder is installed in this process")
    })
}

/// Tests share the process's counters: one at a time, each reading how
/// much a series grew while it ran.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The value of one series (`name{labels}`) on the page; 0 when absent.
fn value(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// How much each series grew between two pages.
fn grew(before: &str, after: &str, series: &str) -> f64 {
    value(after, series) - value(before, series)
}

/// Asserts how much each series grew between two pages.
fn assert_grew(before: &str, after: &str, expected: &[(&str, f64)]) {
    for (series, want) in expected {
        assert_eq!(grew(before, after, series), *want, "{series}:\n{after}");
    }
}

/// The rendered page, checked for guild ids on the way.
fn page() -> String {
    let page = recorder().render();
    for id in [GUILD, OTHER_GUILD] {
        assert!(!page.contains(id), "a label carries guild id {id}:\n{page}");
    }
    page
}

fn guild() -> GuildId {
    GuildId::parse(GUILD).expect("valid id")
}

fn meta() -> WriteMeta {
    WriteMeta::new(
        Actor::new("80351110224678912", ActorKind::Human, Some("alice")).expect("valid actor"),
    )
}

fn head(seq: u64) -> Head {
    Head {
        guild_id: guild(),
        version: seq,
        seq,
        last_hash: "ab".repeat(32),
        updated_at: Timestamp::parse_stored("2026-11-22T04:45:44.123000Z").expect("valid"),
        actor: meta().actor,
        document: Some(GuildConfigSchema.defaults()),
    }
}

fn set(path: &str, value: serde_json::Value) -> FieldEdit {
    FieldEdit::new().set(path.parse().expect("a valid path"), value)
}

#[tokio::test]
async fn lost_races_count_conflicts_and_retries_and_the_write_by_its_outcome() {
    let _one = SERIAL.lock().await;
    recorder();
    let mut store = MockConfigStore::new();
    let mut seq = 0;
    store.expect_head().returning(move |_| {
        seq += 1;
        Ok(Some(head(seq)))
    });
    let mut calls = 0;
    store.expect_commit().times(3).returning(move |_| {
        calls += 1;
        if calls < 3 {
            Err(StoreError::Conflict("head moved".into()))
        } else {
            Ok(())
        }
    });
    let service = ConfigService::new(Arc::new(store));
    let before = page();
    service
        .update(guild(), set("features.beta", json!(true)), &meta())
        .await
        .expect("the third try lands");
    let after = page();
    assert_grew(
        &before,
        &after,
        &[
            (
                r#"guildconf_write_conflicts_total{operation="update"}"#,
                2.0,
            ),
            (r#"guildconf_write_retries_total{operation="update"}"#, 2.0),
            (
                r#"guildconf_writes_total{operation="update",outcome="updated"}"#,
                1.0,
            ),
            (
                r#"guildconf_write_duration_seconds_count{operation="update"}"#,
                1.0,
            ),
            (
                r#"guildconf_audit_write_failures_total{operation="update",error="storage"}"#,
                0.0,
            ),
        ],
    );
}

#[tokio::test]
async fn a_failed_commit_counts_an_audit_write_failure_and_the_error() {
    let _one = SERIAL.lock().await;
    recorder();
    let mut store = MockConfigStore::new();
    store.expect_head().returning(|_| Ok(Some(head(1))));
    store
        .expect_commit()
        .times(1)
        .returning(|_| Err(StoreError::Storage("audit entry insert failed".into())));
    let service = ConfigService::new(Arc::new(store));
    let before = page();
    let err = service
        .delete(guild(), &meta())
        .await
        .expect_err("the commit fails");
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    let after = page();
    assert_grew(
        &before,
        &after,
        &[
            (
                r#"guildconf_audit_write_failures_total{operation="delete",error="storage"}"#,
                1.0,
            ),
            (
                r#"guildconf_write_errors_total{operation="delete",error="storage"}"#,
                1.0,
            ),
            (
                r#"guildconf_write_conflicts_total{operation="delete"}"#,
                0.0,
            ),
            (
                r#"guildconf_writes_total{operation="delete",outcome="deleted"}"#,
                0.0,
            ),
        ],
    );
}

#[tokio::test]
async fn events_count_by_action_key_and_event_outcome_and_refused_keys_stay_out_of_labels() {
    let _one = SERIAL.lock().await;
    recorder();
    let mut store = MockConfigStore::new();
    store.expect_head().returning(|_| Ok(Some(head(1))));
    store.expect_commit().times(1).returning(|_| Ok(()));
    let service = ConfigService::new(Arc::new(store));
    let before = page();
    let denied = Event::new(
        "permission.denied",
        EventOutcome::Blocked,
        Target::new("member", "80351110224678913"),
    )
    .with("permission", "manage_guild");
    service
        .record(guild(), &denied, &meta())
        .await
        .expect("recorded");
    let unknown = Event::new(
        "made_up.key_from_a_caller",
        EventOutcome::Success,
        Target::new("member", "1"),
    );
    let err = service
        .record(guild(), &unknown, &meta())
        .await
        .expect_err("an unknown key");
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    let after = page();
    assert_grew(
        &before,
        &after,
        &[
            (
                r#"guildconf_writes_total{operation="permission.denied",outcome="blocked"}"#,
                1.0,
            ),
            (
                r#"guildconf_write_errors_total{operation="event",error="invalid_input"}"#,
                1.0,
            ),
        ],
    );
    assert!(!after.contains("made_up"), "{after}");
}

/// A service on a fresh SQLite file in `dir`, with `clock`.
async fn sqlite(dir: &tempfile::TempDir, clock: Arc<dyn Clock>) -> ConfigService {
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let store = guildconf::open(&url, OpenOptions::new().create_if_missing(true))
        .await
        .expect("the file opens");
    ConfigService::new(store).with_clock(clock)
}

/// Always the same instant.
#[derive(Debug)]
struct At(DateTime<Utc>);

impl Clock for At {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

fn at(y: i32, m: u32, d: u32) -> Arc<dyn Clock> {
    Arc::new(At(Utc
        .with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .expect("a valid date")))
}

#[tokio::test]
async fn verify_counts_runs_and_each_problem_by_its_code() {
    let _one = SERIAL.lock().await;
    recorder();
    let dir = tempfile::tempdir().expect("tempdir");
    let service = sqlite(&dir, at(2026, 1, 1)).await;
    for g in [GUILD, OTHER_GUILD] {
        let g = GuildId::parse(g).expect("valid id");
        service.create(g, json!({}), &meta()).await.expect("create");
        service
            .update(g, set("features.beta", json!(true)), &meta())
            .await
            .expect("update");
    }
    let mut export = Vec::new();
    service
        .export(&ExportRequest::default(), &mut export)
        .await
        .expect("export");
    // One edited body in each guild's chain: its entry hash no longer
    // matches, twice.
    let tampered = String::from_utf8(export)
        .expect("utf-8")
        .replace(r#""after":true"#, r#""after":false"#);

    let before = page();
    assert!(service.verify(None).await.expect("verify").ok);
    let report = guildconf::verify_export(Cursor::new(tampered)).expect("reads");
    let codes: Vec<&str> = report.problems.iter().map(|p| p.problem.as_str()).collect();
    assert_eq!(codes, ["entry_hash", "entry_hash"], "{report:?}");
    let after = page();
    assert_grew(
        &before,
        &after,
        &[
            (r#"guildconf_verify_runs_total{outcome="ok"}"#, 1.0),
            (r#"guildconf_verify_runs_total{outcome="failed"}"#, 1.0),
            (
                r#"guildconf_verify_problems_total{problem="entry_hash"}"#,
                2.0,
            ),
        ],
    );
}

#[tokio::test]
async fn retention_counts_runs_failures_and_purged_entries() {
    let _one = SERIAL.lock().await;
    recorder();
    let dir = tempfile::tempdir().expect("tempdir");
    // Three versions written on 2026-01-01; retention runs "a year later"
    // and keeps a day, so the two entries before the current version go.
    let writer = sqlite(&dir, at(2026, 1, 1)).await;
    writer
        .create(guild(), json!({}), &meta())
        .await
        .expect("v1");
    for flag in ["a", "b"] {
        writer
            .update(
                guild(),
                set(&format!("features.{flag}"), json!(true)),
                &meta(),
            )
            .await
            .expect("update");
    }
    let retention = sqlite(&dir, at(2027, 1, 1)).await;
    let day = Duration::from_secs(24 * 60 * 60);

    // A run that fails: the named guild has no history.
    let before = page();
    let missing = GuildId::parse(OTHER_GUILD).expect("valid id");
    let policy = RetentionPolicy::new(day, day)
        .expect("valid")
        .guild(missing);
    let handle = spawn_retention(retention.clone(), policy);
    let mut status = handle.status();
    status.wait_for(|s| s.runs >= 1).await.expect("a run");
    handle.stop().await;
    // A run that purges.
    let handle = spawn_retention(retention, RetentionPolicy::new(day, day).expect("valid"));
    let mut status = handle.status();
    let done = status
        .wait_for(|s| s.runs >= 1)
        .await
        .expect("a run")
        .clone();
    handle.stop().await;
    let purged: u64 = done
        .last
        .iter()
        .flat_map(|run| &run.purged)
        .map(|p| p.entries_removed)
        .sum();
    assert_eq!(purged, 2, "{done:?}");

    let after = page();
    assert_grew(
        &before,
        &after,
        &[
            (r#"guildconf_retention_runs_total{outcome="failed"}"#, 1.0),
            (r#"guildconf_retention_runs_total{outcome="ok"}"#, 1.0),
            ("guildconf_retention_purged_entries_total", 2.0),
        ],
    );
}
