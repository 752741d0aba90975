//! Smoke run of the `guildconf-bench` harness at tiny sizes: it runs to the
//! end and its JSON holds every required key with a finite number. Timings
//! are never asserted.

use std::process::Command;

const KEYS: [&str; 17] = [
    "write_vs_raw_pg",
    "write_vs_trigger_pg",
    "write_vs_raw_sqlite_full",
    "write_vs_raw_sqlite_normal",
    "read_warm_per_s",
    "read_cold_sqlite_per_s",
    "history_first_p99_ms_pg",
    "history_first_p99_ms_sqlite",
    "history_deep_over_first_pg",
    "history_deep_over_first_sqlite",
    "export_per_s",
    "verify_per_s",
    "peak_rss_mib",
    "signed_vs_unsigned",
    "signed_vs_unsigned_pg",
    "verify_per_s_signed",
    "verify_per_s_signed_pg",
];

#[test]
fn quick_run_writes_every_figure() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("bench.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_guildconf-bench"));
    command.args([
        "--quick",
        "--writes",
        "8",
        "--entries",
        "300",
        "--guilds",
        "4",
        "--big",
        "150",
        "--history-iters",
        "3",
        "--json-out",
    ]);
    command.arg(&out);
    if let Ok(url) = std::env::var("GUILDCONF_TEST_PG_URL") {
        command.args(["--pg-url", &url]);
    }
    let run = command.output().expect("the harness starts");
    assert!(
        run.status.success(),
        "the harness failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out).expect("the JSON file is written");
    let figures: serde_json::Value = serde_json::from_str(&text).expect("the file is JSON");
    for key in KEYS {
        let value = figures.get(key).and_then(serde_json::Value::as_f64);
        assert!(
            value.is_some_and(f64::is_finite),
            "{key} is missing or not a finite number: {:?}",
            figures.get(key)
        );
    }
}
