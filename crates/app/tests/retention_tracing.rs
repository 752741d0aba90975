//! What scheduled retention reports through `tracing`: a `retention_run`
//! span per run with its counts, an error event for a failed run. Alone in
//! its test binary: `tracing` caches per call site whether anyone listens,
//! and a test on another thread reaching the call sites first (with no
//! subscriber of its own) can leave this test's thread-local subscriber
//! unasked.

use std::io::Write;
use std::sync::{Arc, Mutex};

use guildconf::{spawn_retention, ConfigService, RetentionPolicy};

mod common;
use common::retention::{flaky_store, FixedClock, DAY, HOUR};

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn each_run_is_reported_through_tracing_with_its_counts() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // This test's runtime has one thread, which runs the spawned task too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let service = ConfigService::new(Arc::new(flaky_store().0)).with_clock(Arc::new(FixedClock));
    let handle = spawn_retention(
        service,
        RetentionPolicy::new(HOUR, DAY).expect("valid policy"),
    );
    let mut status = handle.status();
    status.wait_for(|s| s.runs >= 2).await.expect("two runs");
    handle.stop().await;

    let text =
        String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("utf-8 logs");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("ERROR")
            && l.contains("retention_run{run=1 before=2026-02-28T12:00:00.000000Z}")
            && l.contains("retention run failed")
            && l.contains("the database is down")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains("INFO")
            && l.contains("retention_run{run=2 before=2026-02-28T12:00:00.000000Z}")
            && l.contains("retention run finished guilds=0 entries=0 snapshots=0")),
        "{text}"
    );
}
