//! Scheduled retention (`spawn_retention`) on both backends: a run removes
//! what `guildconf purge` removes, as the scheduled actor, and the chain
//! still verifies; a failing run is reported and the next one still
//! purges; stopping or dropping the handle ends the task. The loop's timing
//! is tested on paused time in `crates/app/tests/retention_mocked.rs`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use guildconf::{
    spawn_retention, ActorKind, ConfigService, HistoryRequest, Operation, RetentionHandle,
    RetentionPolicy, RetentionStatus,
};
use guildconf_ports::Clock;
use guildconf_tests::{contract, guildconf_bin, Backend, TestDb};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::timeout;

use super::retention::{alice, gid, set, t};

contract! {
    a_scheduled_run_purges_what_the_purge_command_purges,
    a_failing_run_is_reported_and_the_next_run_still_purges,
}

/// How long a test waits for a run before it fails (runs take
/// milliseconds; this only bounds a broken loop).
const PATIENCE: Duration = Duration::from_secs(30);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Always the same instant: the time a scheduled run believes it is.
#[derive(Debug)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// A service on `db` whose clock stands at `now`.
async fn service_at(db: &TestDb, now: &str) -> ConfigService {
    ConfigService::new(db.store().await).with_clock(Arc::new(FixedClock(t(now).datetime())))
}

/// The same history in any database (a step clock from
/// 2026-01-01T00:00:00Z, one second per write): guild 10 with five
/// versions, guild 20 created, changed and deleted, guild 30 created.
async fn write_history(db: &TestDb) {
    let s = db.service().await;
    let (a, b, c) = (gid(10), gid(20), gid(30));
    s.create(a, json!({}), &alice()).await.expect("a1"); // :00
    for (i, flag) in ["x", "y"].iter().enumerate() {
        s.update(a, set(&format!("features.{flag}"), json!(true)), &alice())
            .await
            .unwrap_or_else(|e| panic!("a{}: {e}", i + 2)); // :01, :02
    }
    s.revert(a, 1, &alice()).await.expect("a4"); // :03
    s.update(a, set("features.z", json!(true)), &alice())
        .await
        .expect("a5"); // :04
    s.create(b, json!({}), &alice()).await.expect("b1"); // :05
    s.update(b, set("features.x", json!(true)), &alice())
        .await
        .expect("b2"); // :06
    s.delete(b, &alice()).await.expect("b3"); // :07
    s.create(c, json!({}), &alice()).await.expect("c1"); // :08
}

/// Every stored entry and snapshot key, in order.
async fn stored_keys(db: &TestDb) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let entries = db
        .rows(
            "SELECT CAST(guild_id AS TEXT), CAST(seq AS TEXT), operation FROM audit_entries \
             ORDER BY guild_id, seq",
        )
        .await;
    let snapshots = db
        .rows(
            "SELECT CAST(guild_id AS TEXT), CAST(version AS TEXT) FROM guild_snapshots \
             ORDER BY guild_id, version",
        )
        .await;
    (entries, snapshots)
}

/// Waits for a status that satisfies `done`.
async fn until(
    status: &mut watch::Receiver<RetentionStatus>,
    done: impl FnMut(&RetentionStatus) -> bool,
) -> RetentionStatus {
    timeout(PATIENCE, status.wait_for(done))
        .await
        .expect("the run came in time")
        .expect("the task is running")
        .clone()
}

/// Whether the task has ended (its status channel closes with it) within
/// the patience.
async fn ended(status: &mut watch::Receiver<RetentionStatus>) -> bool {
    timeout(PATIENCE, async { while status.changed().await.is_ok() {} })
        .await
        .is_ok()
}

async fn stop(handle: RetentionHandle) {
    timeout(PATIENCE, handle.stop())
        .await
        .expect("stop() ends the task");
}

async fn a_scheduled_run_purges_what_the_purge_command_purges(backend: Backend, name: &str) {
    let by_hand = TestDb::new(backend, &format!("cli_{name}")).await;
    let scheduled = TestDb::new(backend, &format!("job_{name}")).await;
    write_history(&by_hand).await;
    write_history(&scheduled).await;
    let cut = "2026-01-01T00:00:03Z";

    // By hand: `guildconf purge --before CUT --yes`.
    let out = std::process::Command::new(guildconf_bin())
        .env_remove("GUILDCONF_DATABASE_URL")
        .args([
            "--database-url",
            by_hand.url(),
            "--json",
            "purge",
            "--before",
            cut,
        ])
        .args([
            "--yes",
            "--actor",
            "retention-job",
            "--actor-kind",
            "scheduled",
        ])
        .args(["--reason", "keep 30 days"])
        .output()
        .expect("guildconf runs");
    assert!(out.status.success(), "{out:?}");
    let cli: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let cli_purged: Vec<(u64, u64, u64, u64)> = cli["guilds"]
        .as_array()
        .expect("guilds")
        .iter()
        .map(|g| {
            let n = |k: &str| g[k].as_u64().expect("a count");
            let id = g["guild_id"].as_str().and_then(|s| s.parse().ok());
            (
                id.expect("an id"),
                n("through_seq"),
                n("entries_removed"),
                n("snapshots_removed"),
            )
        })
        .collect();
    assert!(!cli_purged.is_empty(), "{cli}");

    // Scheduled: thirty days kept, on a clock thirty days after the cut.
    let service = service_at(&scheduled, "2026-01-31T00:00:03Z").await;
    let policy = RetentionPolicy::new(DAY, 30 * DAY)
        .and_then(|p| p.actor("retention-job", Some("nightly retention")))
        .and_then(|p| p.reason("keep 30 days"))
        .expect("a valid policy");
    let handle = spawn_retention(service.clone(), policy);
    let mut status = handle.status();
    let first = until(&mut status, |s| s.runs >= 1).await;
    stop(handle).await;
    assert!(ended(&mut status).await, "stop() left the task running");

    let run = first.last.expect("a run");
    assert_eq!((run.number, run.error.as_deref()), (1, None), "{run:?}");
    assert_eq!(run.before, t(cut));
    let run_purged: Vec<(u64, u64, u64, u64)> = run
        .purged
        .iter()
        .map(|p| {
            (
                p.guild_id.snowflake().get(),
                p.through_seq,
                p.entries_removed,
                p.snapshots_removed,
            )
        })
        .collect();
    assert_eq!(run_purged, cli_purged);
    // The same rows are left, the purge entry included.
    assert_eq!(stored_keys(&scheduled).await, stored_keys(&by_hand).await);

    // The chain verifies, and the purge entry names the scheduled actor.
    let report = service.verify(None).await.expect("verify");
    assert!(report.ok, "{report:?}");
    for purged in &run.purged {
        let page = service
            .history(&HistoryRequest {
                guild_id: Some(purged.guild_id),
                operation: Some(Operation::Purge),
                ..HistoryRequest::default()
            })
            .await
            .expect("history");
        let entry = page.entries.first().expect("a purge entry");
        assert_eq!(Some(&entry.entry_hash), purged.entry_hash.as_ref());
        let body = &entry.body;
        assert_eq!(
            (
                body.actor.id.as_str(),
                body.actor.kind,
                body.actor.label.as_str()
            ),
            ("retention-job", ActorKind::Scheduled, "nightly retention")
        );
        assert_eq!(body.reason.as_deref(), Some("keep 30 days"));
    }
}

async fn a_failing_run_is_reported_and_the_next_run_still_purges(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    write_history(&db).await;
    let before = stored_keys(&db).await;
    // The purge entry's insert fails until healed: a real database fault.
    db.fail_on("audit_entries", "INSERT").await;

    let service = service_at(&db, "2027-01-01T00:00:00Z").await;
    let every = Duration::from_millis(20);
    let handle = spawn_retention(
        service.clone(),
        RetentionPolicy::new(every, DAY).expect("a valid policy"),
    );
    let mut status = handle.status();
    let failed = until(&mut status, |s| s.failures >= 2).await;
    let last = failed.last.expect("a run");
    assert!(
        last.error.as_deref().is_some_and(|e| e.contains("storage")),
        "{last:?}"
    );
    assert_eq!(
        stored_keys(&db).await,
        before,
        "a failed run removes nothing"
    );

    db.heal("audit_entries").await;
    let healed = until(&mut status, |s| {
        s.last.as_ref().is_some_and(|r| r.error.is_none())
    })
    .await;
    assert!(healed.runs > healed.failures, "{healed:?}");
    let purged: u64 = healed
        .last
        .iter()
        .flat_map(|r| &r.purged)
        .map(|p| p.entries_removed)
        .sum();
    // Guild 10 keeps its current version's entry (seq 5); guild 20 keeps the
    // entry that made version 2 and the delete; guild 30 has one entry.
    assert_eq!(purged, 4 + 1, "{healed:?}");
    assert!(service.verify(None).await.expect("verify").ok);

    // Dropping the handle ends the task.
    drop(handle);
    assert!(ended(&mut status).await, "the task outlived its handle");
}
