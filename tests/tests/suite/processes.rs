//! Real concurrency: separate writer processes (`stress_writer`) on one
//! database file (SQLite) or server (PostgreSQL), on one guild and spread
//! over many. Versions stay gapless, no update is lost, every chain verifies,
//! and writes that exhaust their retries come back as conflicts (counted).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use guildconf::{Actor, ActorKind, At, GuildId, WriteMeta};
use guildconf_tests::{Backend, Postgres, Sqlite, TestDb};
use serde_json::{json, Value};

const WRITERS: u64 = 8;
const UPDATES: u64 = 200;

fn gid(n: u64) -> GuildId {
    GuildId::from_u64(n).expect("test ids are valid")
}

/// What one writer process reported.
#[derive(Debug)]
struct Report {
    landed: u64,
    conflicts: u64,
    /// guild id → this writer's last landed value there.
    last_landed: BTreeMap<String, u64>,
}

/// Starts every writer process at once, then collects their reports.
async fn run_processes(db: &TestDb, guilds: &[GuildId]) -> Vec<Report> {
    let list = guilds
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let children: Vec<_> = (0..WRITERS)
        .map(|w| {
            Command::new(env!("CARGO_BIN_EXE_stress_writer"))
                .args([db.url(), &w.to_string(), &UPDATES.to_string(), &list])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("a writer process starts")
        })
        .collect();
    let mut reports = Vec::new();
    for (w, child) in children.into_iter().enumerate() {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("the wait joins")
            .expect("the writer process ends");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "writer {w} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let line: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
        reports.push(Report {
            landed: line["landed"].as_u64().expect("landed"),
            conflicts: line["conflicts"].as_u64().expect("conflicts"),
            last_landed: serde_json::from_value(line["last_landed"].clone()).expect("last_landed"),
        });
    }
    reports
}

async fn run(backend: Backend, name: &str, guild_count: u64) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let guilds: Vec<GuildId> = (1000..1000 + guild_count).map(gid).collect();
    let admin = WriteMeta::new(
        Actor::new("80351110224678912", ActorKind::Human, Some("alice")).expect("actor"),
    );
    for g in &guilds {
        s.create(*g, json!({}), &admin).await.expect("created");
    }
    let started = std::time::Instant::now();
    let reports = run_processes(&db, &guilds).await;
    let landed: u64 = reports.iter().map(|r| r.landed).sum();
    let conflicts: u64 = reports.iter().map(|r| r.conflicts).sum();
    println!(
        "{backend:?}: {WRITERS} processes x {UPDATES} updates over {guild_count} guild(s) in {:.1} s: \
         {landed} landed, {conflicts} exhausted their retries (conflicts)",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        landed + conflicts,
        WRITERS * UPDATES,
        "every write landed or came back as a conflict"
    );

    let mut versions = 0;
    for g in &guilds {
        let current = s.get(*g, At::Now).await.expect("current");
        // Gapless: seq 1..=n and versions 1..=n, one entry per version.
        let stats = db
            .rows(&format!(
                "SELECT CAST(COUNT(*) AS TEXT), CAST(MIN(seq) AS TEXT), CAST(MAX(seq) AS TEXT), \
                 CAST(COUNT(DISTINCT config_version) AS TEXT), CAST(MAX(config_version) AS TEXT) \
                 FROM audit_entries WHERE guild_id = {g}"
            ))
            .await;
        let n = current.version.to_string();
        assert_eq!(
            stats[0],
            vec![n.clone(), "1".into(), n.clone(), n.clone(), n],
            "guild {g}: seqs and versions are gapless"
        );
        versions += current.version - 1;
        // No lost update: each writer's last landed value is in the document.
        for (w, report) in reports.iter().enumerate() {
            let found = &current.document["role_mapping"][format!("w{w}")];
            match report.last_landed.get(&g.to_string()) {
                Some(value) => assert_eq!(
                    found,
                    &json!(value.to_string()),
                    "guild {g}: writer {w}'s last landed update is current"
                ),
                None => assert!(found.is_null(), "guild {g}: writer {w} never landed here"),
            }
        }
    }
    assert_eq!(
        versions, landed,
        "every landed write is exactly one version"
    );
    let report = s.verify(None).await.expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries_checked, landed + guild_count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_processes_on_one_guild() {
    run(&Sqlite, "sqlite_processes_one_guild", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_processes_on_many_guilds() {
    run(&Sqlite, "sqlite_processes_many_guilds", 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_processes_on_one_guild() {
    run(&Postgres, "pg_processes_one_guild", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_processes_on_many_guilds() {
    run(&Postgres, "pg_processes_many_guilds", 16).await;
}
