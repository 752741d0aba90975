//! Scheduled retention's loop on a mocked store and Tokio's paused time:
//! when runs happen, what a failed run does to the loop and how the task
//! ends. What it reports through `tracing` is in `retention_tracing.rs`;
//! what a run does to a real database is in the contract suite
//! (`scheduled` module).

use std::sync::Arc;
use std::time::Duration;

use guildconf::{
    spawn_retention, ConfigService, Error, RetentionHandle, RetentionPolicy, RetentionStatus,
    Timestamp,
};
use guildconf_ports::MockConfigStore;
use tokio::sync::watch;
use tokio::time::timeout;

mod common;
use common::retention::{flaky_store, FixedClock, DAY, HOUR};

fn service(store: MockConfigStore) -> ConfigService {
    ConfigService::new(Arc::new(store)).with_clock(Arc::new(FixedClock))
}

/// Retention every hour, keeping a day, on a [`flaky_store`], and its
/// status.
fn hourly() -> (RetentionHandle, watch::Receiver<RetentionStatus>) {
    let (store, _) = flaky_store();
    let handle = spawn_retention(
        service(store),
        RetentionPolicy::new(HOUR, DAY).expect("valid policy"),
    );
    let status = handle.status();
    (handle, status)
}

/// Waits (in paused time, so instantly) until `runs` runs are reported.
async fn runs(status: &mut watch::Receiver<RetentionStatus>, runs: u64) -> RetentionStatus {
    status
        .wait_for(|s| s.runs >= runs)
        .await
        .expect("the task is running")
        .clone()
}

/// Stops the task; fails the test if that does not end it within a second
/// (rather than hanging).
async fn stop(handle: RetentionHandle) {
    timeout(Duration::from_secs(1), handle.stop())
        .await
        .expect("stop() ends the task");
}

/// Whether the task has ended: its status channel closes with it.
async fn ended(status: &mut watch::Receiver<RetentionStatus>) -> bool {
    timeout(Duration::from_millis(1), async {
        while status.changed().await.is_ok() {}
    })
    .await
    .is_ok()
}

#[tokio::test(start_paused = true)]
async fn runs_at_once_then_every_interval_and_a_failed_run_does_not_stop_the_loop() {
    let (store, asked) = flaky_store();
    let policy = RetentionPolicy::new(HOUR, 30 * DAY).expect("valid policy");
    let handle = spawn_retention(service(store), policy);
    let mut status = handle.status();

    // The first run starts at once, and fails: counted, reported, not fatal.
    let first = runs(&mut status, 1).await;
    assert_eq!((first.runs, first.failures), (1, 1), "{first:?}");
    let last = first.last.expect("a run");
    assert!(
        last.error
            .as_deref()
            .is_some_and(|e| e.contains("the database is down")),
        "{last:?}"
    );
    assert!(last.purged.is_empty());

    // Nothing runs before the interval is over…
    let early = timeout(HOUR - Duration::from_secs(1), runs(&mut status, 2)).await;
    assert!(early.is_err(), "a run came early: {early:?}");
    // …and the next run does, and succeeds.
    let second = runs(&mut status, 2).await;
    assert_eq!((second.runs, second.failures), (2, 1), "{second:?}");
    let last = second.last.expect("a run");
    assert_eq!((last.number, last.error.as_deref()), (2, None), "{last:?}");
    // The cut-off is the service clock's now minus the kept age.
    let want = Timestamp::parse_rfc3339("2026-01-30T12:00:00Z").expect("valid");
    assert_eq!(last.before, want);
    assert_eq!(*asked.lock().expect("not poisoned"), vec![want]);

    // And on: a third run an interval later.
    let third = runs(&mut status, 3).await;
    assert_eq!((third.runs, third.failures), (3, 1), "{third:?}");
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn stop_ends_the_task_and_no_run_follows() {
    let (handle, mut status) = hourly();
    runs(&mut status, 1).await;
    stop(handle).await;
    assert!(ended(&mut status).await, "the task still runs after stop()");
    // Time passes; no run happens any more.
    tokio::time::advance(10 * HOUR).await;
    assert_eq!(status.borrow().runs, 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_ends_the_task_at_once() {
    let (handle, mut status) = hourly();
    runs(&mut status, 1).await;
    // The task now waits an hour for its next run; a dropped handle ends
    // it within a millisecond.
    drop(handle);
    assert!(ended(&mut status).await, "the task outlived its handle");
    assert_eq!(status.borrow().runs, 1);
}

#[test]
fn a_policy_refuses_a_zero_interval_an_endless_age_and_a_bad_actor_or_reason() {
    assert!(matches!(
        RetentionPolicy::new(Duration::ZERO, DAY),
        Err(Error::Invalid(ref v)) if v.0[0].path == "/every"
    ));
    assert!(matches!(
        RetentionPolicy::new(HOUR, Duration::MAX),
        Err(Error::Invalid(ref v)) if v.0[0].path == "/keep"
    ));
    let policy = RetentionPolicy::new(HOUR, DAY).expect("valid policy");
    assert!(matches!(
        policy.clone().actor("", None),
        Err(Error::Invalid(ref v)) if v.0[0].path == "/actor/id"
    ));
    assert!(matches!(
        policy.reason("two\nlines"),
        Err(Error::Invalid(ref v)) if v.0[0].path == "/reason"
    ));
}
