//! Crash safety: the CLI is killed with SIGKILL at random moments during a
//! long run of writes to SQLite. Afterwards the database opens, passes
//! `PRAGMA integrity_check`, verifies, and holds every write the CLI reported
//! done.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use guildconf_tests::{guildconf_bin, Sqlite, TestDb};

const GUILD: &str = "424242";
const ACTOR: &str = "80351110224678912";
const KILLS_WANTED: u32 = 50;

fn random_below(n: u64, salt: u64) -> u64 {
    RandomState::new().hash_one(salt) % n.max(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_nothing_reported_done() {
    let db = TestDb::new(&Sqlite, "crash").await;
    let bin = guildconf_bin();
    let url = db.url().to_owned();
    let created = Command::new(&bin)
        .args(["--database-url", &url, "create", GUILD, "--actor", ACTOR])
        .output()
        .expect("the CLI runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let (mut kills, mut reported_done) = (0u32, BTreeSet::new());
    let started = Instant::now();
    let mut i: u64 = 0;
    while kills < KILLS_WANTED && i < 1000 && started.elapsed() < Duration::from_secs(120) {
        i += 1;
        let request_id = format!("crash-{i}");
        let mut child = Command::new(&bin)
            .args(["--database-url", &url, "--json", "set", GUILD])
            .arg(format!("role_mapping.k{}={}", i % 7, i))
            .arg(format!("features.f{}={}", i % 5, i.is_multiple_of(2)))
            .args(["--actor", ACTOR, "--request-id", &request_id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the CLI starts");
        // Kill somewhere between process start and well after a typical write.
        std::thread::sleep(Duration::from_micros(random_below(60_000, i)));
        let finished_alone = child.try_wait().expect("child status").is_some();
        if !finished_alone {
            child.kill().expect("SIGKILL is delivered");
            kills += 1;
        }
        let output = child.wait_with_output().expect("child reaped");
        if output.status.success() {
            let result: serde_json::Value =
                serde_json::from_slice(&output.stdout).expect("a write result");
            assert_ne!(
                result["outcome"], "unchanged",
                "every scripted write changes something"
            );
            reported_done.insert(request_id);
        }
    }
    println!(
        "crash safety: {i} writes started, {kills} killed with SIGKILL, {} reported done",
        reported_done.len()
    );
    assert!(kills >= KILLS_WANTED, "only {kills} kills landed in time");

    let integrity = db.rows("PRAGMA integrity_check").await;
    assert_eq!(
        integrity,
        vec![vec!["ok".to_string()]],
        "the database is intact"
    );
    let verify = Command::new(&bin)
        .args(["--database-url", &url, "--json", "verify"])
        .output()
        .expect("verify runs");
    assert!(
        verify.status.success(),
        "verify passes: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let stored: BTreeSet<String> = db
        .rows(&format!("SELECT request_id FROM audit_entries WHERE guild_id = {GUILD} AND request_id IS NOT NULL"))
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    println!(
        "crash safety: {} writes stored, of which {} landed although their process was killed",
        stored.len(),
        stored.difference(&reported_done).count()
    );
    let missing: Vec<_> = reported_done.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "writes reported done but missing: {missing:?}"
    );
    let versions = db.rows(&format!("SELECT CAST(version AS TEXT), CAST(seq AS TEXT) FROM guild_heads WHERE guild_id = {GUILD}")).await;
    assert_eq!(
        versions[0][0].parse::<usize>().ok(),
        Some(stored.len() + 1),
        "one version per stored write, no gaps"
    );
}
