//! Retention (`purge`): the contract on both backends, through the service
//! and through the command line.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use guildconf::{
    Actor, ActorKind, At, ConfigService, Error, ExportRequest, FieldEdit, GuildId, HistoryRequest,
    Operation, Timestamp, WriteMeta,
};
use guildconf_tests::{contract, guildconf_bin, Backend, StepClock, TestDb};
use serde_json::{json, Value};

pub(super) fn gid(n: u64) -> GuildId {
    GuildId::from_u64(n).expect("test ids are valid")
}

pub(super) fn alice() -> WriteMeta {
    WriteMeta::new(
        Actor::new("80351110224678912", ActorKind::Human, Some("alice")).expect("valid actor"),
    )
}

pub(super) fn set(path: &str, value: Value) -> FieldEdit {
    FieldEdit::new().set(path.parse().expect("a valid path"), value)
}

pub(super) fn t(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("valid time")
}

/// Every entry of a guild, oldest first.
async fn entries(s: &ConfigService, g: GuildId) -> Vec<guildconf::Entry> {
    let page = s
        .history(&HistoryRequest {
            guild_id: Some(g),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("history reads");
    let mut out = page.entries;
    out.reverse();
    out
}

async fn column(db: &TestDb, sql: &str) -> Vec<String> {
    db.rows(sql)
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

/// Runs `docs/verify_export.py` on an export.
fn python_verifies(export: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, export).expect("write export");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/verify_export.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn export(s: &ConfigService) -> Vec<u8> {
    let mut out = Vec::new();
    s.export(&ExportRequest::default(), &mut out)
        .await
        .expect("export");
    out
}

contract! {
    purge_removes_exactly_the_old_rows_and_appends_a_chained_entry,
    deletes_stay_refused_outside_a_purge,
    purge_in_the_middle_of_concurrent_writes_stays_consistent,
    old_entries_removed_without_a_purge_entry_fail_verify,
    purge_command_line,
    idempotency_records_outlive_purged_entries_and_still_verify,
}

/// Idempotency records are never deleted, so after a purge some name
/// entries that are gone. Verify proves the records whose entries are
/// kept, and accepts the others only because the chain says it was purged.
async fn idempotency_records_outlive_purged_entries_and_still_verify(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(40);
    let with_request = |id: &str| {
        let mut m = alice();
        m.request_id = Some(id.into());
        m
    };
    s.create(g, json!({}), &with_request("r1"))
        .await
        .expect("v1"); // :00
    s.update(g, set("features.x", json!(true)), &with_request("r2"))
        .await
        .expect("v2"); // :01
    s.update(g, set("features.y", json!(true)), &with_request("r3"))
        .await
        .expect("v3"); // :02
    let done = s
        .purge(t("2026-01-01T00:00:02Z"), None, &alice())
        .await
        .expect("purge");
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(db.count("audit_requests", "40").await, 3, "records stay");
    let report = s.verify(Some(g)).await.expect("verify");
    assert!(report.ok, "{report:?}");
    // A record the kept chain does carry is still proven: r3's result is
    // edited, and verify names the entry.
    db.drop_triggers().await;
    db.exec(
        "UPDATE audit_requests SET result = REPLACE(result, '\"version\":3', '\"version\":2') \
         WHERE guild_id = 40 AND request_id = 'r3'",
    )
    .await
    .expect("tamper");
    let report = s.verify(Some(g)).await.expect("verify");
    let codes: Vec<(Option<u64>, &str)> = report
        .problems
        .iter()
        .map(|p| (p.seq, p.problem.as_str()))
        .collect();
    assert_eq!(codes, vec![(Some(3), "request")], "{report:?}");
}

async fn purge_removes_exactly_the_old_rows_and_appends_a_chained_entry(
    backend: Backend,
    name: &str,
) {
    let db = TestDb::new(backend, name).await;
    // StepClock: each write is one second after the previous one, from
    // 2026-01-01T00:00:00Z.
    let s = db.service().await;
    let (a, b, c) = (gid(10), gid(20), gid(30));
    s.create(a, json!({}), &alice()).await.expect("a1"); // :00 seq 1 v1
    s.update(a, set("features.x", json!(true)), &alice())
        .await
        .expect("a2"); // :01 seq 2 v2
    s.update(a, set("features.y", json!(true)), &alice())
        .await
        .expect("a3"); // :02 seq 3 v3
    s.revert(a, 1, &alice()).await.expect("a4"); // :03 seq 4 v4
    s.update(a, set("features.z", json!(true)), &alice())
        .await
        .expect("a5"); // :04 seq 5 v5
    s.create(b, json!({}), &alice()).await.expect("b1"); // :05 seq 1 v1
    s.update(b, set("features.x", json!(true)), &alice())
        .await
        .expect("b2"); // :06 seq 2 v2
    s.delete(b, &alice()).await.expect("b3"); // :07 seq 3 (v2)
    s.create(c, json!({}), &alice()).await.expect("c1"); // :08 seq 1 v1
    let a_before = entries(&s, a).await;
    let a_current = s.get(a, At::Now).await.expect("a now");

    // Nothing is written by a plan.
    let cut = t("2026-01-01T00:00:03Z");
    let plan = s.purge_plan(cut, None).await.expect("plan");
    assert_eq!(
        plan.len(),
        1,
        "only guild a has entries before :03: {plan:?}"
    );
    assert_eq!(
        (
            plan[0].guild_id,
            plan[0].through_seq,
            plan[0].entries_removed,
            plan[0].snapshots_removed,
            plan[0].entry_hash.clone()
        ),
        (a, 3, 3, 3, None)
    );
    assert_eq!(db.count("audit_entries", "10").await, 5);

    // --before is exclusive: seq 4 occurred exactly at :03 and stays.
    let mut m = alice();
    m.reason = Some("retention".into());
    let done = s.purge(cut, None, &m).await.expect("purge");
    assert_eq!(done.len(), 1, "{done:?}");
    let r = &done[0];
    assert_eq!(
        (
            r.guild_id,
            r.through_seq,
            r.entries_removed,
            r.snapshots_removed
        ),
        (a, 3, 3, 3)
    );
    assert_eq!(
        column(
            &db,
            "SELECT CAST(seq AS TEXT) FROM audit_entries WHERE guild_id = 10 ORDER BY seq"
        )
        .await,
        ["4", "5", "6"]
    );
    assert_eq!(
        column(&db, "SELECT CAST(version AS TEXT) FROM guild_snapshots WHERE guild_id = 10 ORDER BY version").await,
        ["4", "5"]
    );
    // The other guilds are untouched.
    assert_eq!(db.count("audit_entries", "20").await, 3);
    assert_eq!(db.count("guild_snapshots", "20").await, 2);
    assert_eq!(db.count("audit_entries", "30").await, 1);

    // The purge entry: chained to the old head, exact detail, document kept.
    let kept = entries(&s, a).await;
    assert_eq!(kept[..2], a_before[3..5], "kept entries are unchanged");
    let p = &kept[2];
    assert_eq!(Some(&p.entry_hash), r.entry_hash.as_ref());
    let body = &p.body;
    assert_eq!(body.operation, Operation::Purge);
    assert_eq!((body.seq, body.config_version), (6, 5));
    assert_eq!(body.prev_hash, a_before[4].entry_hash);
    assert!(body.changes.is_empty());
    assert_eq!(body.reason.as_deref(), Some("retention"));
    assert_eq!(
        Value::Object(body.detail.clone()),
        json!({"before": "2026-01-01T00:00:03.000000Z", "through_seq": 3, "through_hash": a_before[2].entry_hash})
    );
    assert_eq!(
        body.summary,
        "alice (human) purged 3 entries before 2026-01-01T00:00:03.000000Z"
    );
    assert_eq!(
        body.snapshot_sha256.as_deref(),
        Some(
            guildconf::json::canonical_sha256(&a_current.document)
                .expect("hash")
                .as_str()
        )
    );
    assert_eq!(s.get(a, At::Now).await.expect("a now"), a_current);

    // Reads: purged versions and times are not found; history starts later.
    for v in [1, 2, 3] {
        assert!(
            matches!(s.get(a, At::Version(v)).await, Err(Error::NotFound(_))),
            "v{v}"
        );
    }
    assert!(matches!(
        s.get(a, At::Time(t("2026-01-01T00:00:02.5Z"))).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        s.get(a, At::Time(t("2026-01-01T00:00:03Z")))
            .await
            .expect("at :03")
            .version,
        4
    );
    assert_eq!(
        s.get(a, At::Version(5)).await.expect("v5").document,
        a_current.document
    );
    assert!(matches!(
        s.revert(a, 2, &alice()).await,
        Err(Error::NotFound(_))
    ));

    // A second, later purge: guild b (deleted config) loses seq 1 and v1, but
    // keeps the entry that made its version 2; guild a loses seq 4 and v4,
    // keeping its first purge entry.
    let cut2 = t("2026-01-01T00:01:00Z");
    let done = s.purge(cut2, None, &alice()).await.expect("purge 2");
    let got: Vec<(GuildId, u64, u64, u64)> = done
        .iter()
        .map(|r| {
            (
                r.guild_id,
                r.through_seq,
                r.entries_removed,
                r.snapshots_removed,
            )
        })
        .collect();
    assert_eq!(got, vec![(a, 4, 1, 1), (b, 1, 1, 1)]);
    let b_entries = entries(&s, b).await;
    assert_eq!(
        b_entries.iter().map(|e| e.body.seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let b_purge = &b_entries[2].body;
    assert_eq!(
        (b_purge.operation, b_purge.snapshot_sha256.clone()),
        (Operation::Purge, None)
    );
    assert_eq!(
        column(
            &db,
            "SELECT CAST(version AS TEXT) FROM guild_snapshots WHERE guild_id = 20"
        )
        .await,
        ["2"]
    );
    assert_eq!(
        entries(&s, a)
            .await
            .iter()
            .map(|e| e.body.seq)
            .collect::<Vec<_>>(),
        [5, 6, 7]
    );
    // Nothing left to purge: skipped, no entry; a named guild reports null.
    assert!(s
        .purge(cut2, None, &alice())
        .await
        .expect("purge 3")
        .is_empty());
    let named = s.purge(cut2, Some(c), &alice()).await.expect("named");
    assert_eq!((named.len(), named[0].entry_hash.clone()), (1, None));
    assert_eq!(db.count("audit_entries", "30").await, 1);
    assert!(matches!(
        s.purge(cut2, Some(gid(99)), &alice()).await,
        Err(Error::NotFound(_))
    ));

    // Verify: the database, the export, and the third-party checker.
    let report = s.verify(None).await.expect("verify");
    assert!(report.ok, "{report:?}");
    let out = export(&s).await;
    let report = guildconf::verify_export(std::io::Cursor::new(out.clone())).expect("reads");
    assert!(report.ok, "{report:?}");
    let (ok, text) = python_verifies(&out);
    assert!(ok, "verify_export.py: {text}");
    // Writes continue the chain after a purge.
    s.update(b, set("features.q", json!(true)), &alice())
        .await
        .expect_err("b is deleted");
    s.create(b, json!({}), &alice()).await.expect("b recreated");
    assert!(s.verify(None).await.expect("verify").ok);
    if let Some(gate) = backend.purge_gate_table() {
        assert_eq!(db.count(gate, "20").await, 0, "the gate is closed");
    }
}

async fn deletes_stay_refused_outside_a_purge(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(40);
    for i in 0..4 {
        if i == 0 {
            s.create(g, json!({}), &alice()).await.expect("create");
        } else {
            s.update(g, set("features.x", json!(i % 2 == 0)), &alice())
                .await
                .expect("update");
        }
    }
    s.purge(t("2026-01-01T00:00:02Z"), None, &alice())
        .await
        .expect("purge");
    let before = (
        db.count("audit_entries", "40").await,
        db.count("guild_snapshots", "40").await,
    );
    let mut attempts = vec![
        "DELETE FROM audit_entries WHERE guild_id = 40".to_string(),
        "DELETE FROM guild_snapshots WHERE guild_id = 40".to_string(),
        "UPDATE audit_entries SET actor_id = 'mallory'".to_string(),
    ];
    attempts.extend(backend.purge_bypasses("40", "41"));
    for sql in &attempts {
        let result = db.exec(sql).await;
        assert!(
            result
                .as_ref()
                .err()
                .is_some_and(|e| e.contains("append-only")),
            "{sql} must be refused by the trigger: {result:?}"
        );
    }
    assert_eq!(
        (
            db.count("audit_entries", "40").await,
            db.count("guild_snapshots", "40").await
        ),
        before
    );
    assert!(s.verify(None).await.expect("verify").ok);
}

async fn purge_in_the_middle_of_concurrent_writes_stays_consistent(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(50);
    s.create(g, json!({}), &alice()).await.expect("v1");
    let far = t("2100-01-01T00:00:00Z");
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let s = ConfigService::new(db.store().await).with_clock(Arc::new(StepClock::new()));
        writers.push(tokio::spawn(async move {
            let mut landed = 0u64;
            for j in 0..40u64 {
                match s
                    .update(
                        g,
                        set(&format!("role_mapping.w{w}"), json!(j + 1)),
                        &alice(),
                    )
                    .await
                {
                    Ok(_) => landed += 1,
                    Err(Error::Conflict(_)) => {}
                    Err(e) => panic!("writer {w}: {e}"),
                }
            }
            landed
        }));
    }
    let purger = ConfigService::new(db.store().await).with_clock(Arc::new(StepClock::new()));
    let mut purges = 0u64;
    for _ in 0..8 {
        match purger.purge(far, Some(g), &alice()).await {
            Ok(r) if r[0].entry_hash.is_some() => purges += 1,
            Ok(_) | Err(Error::Conflict(_)) => {}
            Err(e) => panic!("purge: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut landed = 0;
    for w in writers {
        landed += w.await.expect("writer joins");
    }
    println!("{backend:?}: 4 writers x 40 updates with 8 purges: {landed} landed, {purges} purges");
    let now = s.get(g, At::Now).await.expect("current");
    assert_eq!(now.version, landed + 1, "no write lost");
    let kept = entries(&s, g).await;
    let first = kept.first().expect("entries remain").body.seq;
    let last = kept.last().expect("entries remain").body.seq;
    assert_eq!(
        kept.iter().map(|e| e.body.seq).collect::<Vec<_>>(),
        (first..=last).collect::<Vec<_>>(),
        "what remains is gapless"
    );
    assert_eq!(
        last,
        landed + 1 + purges,
        "one entry per landed write and per purge"
    );
    let versions: Vec<u64> = kept
        .iter()
        .filter(|e| e.body.operation != Operation::Purge)
        .map(|e| e.body.config_version)
        .collect();
    assert_eq!(
        versions,
        (now.version + 1 - versions.len() as u64..=now.version).collect::<Vec<_>>(),
        "the kept writes are the newest ones, up to the current version"
    );
    assert!(
        s.get(g, At::Version(now.version)).await.is_ok(),
        "current version kept"
    );
    let report = s.verify(None).await.expect("verify");
    assert!(report.ok, "{report:?}");
    let report = guildconf::verify_export(std::io::Cursor::new(export(&s).await)).expect("reads");
    assert!(report.ok, "{report:?}");
}

async fn old_entries_removed_without_a_purge_entry_fail_verify(backend: Backend, name: &str) {
    for (case, legit_purge) in [("plain", false), ("beyond_purge", true)] {
        let db = TestDb::new(backend, &format!("{name}_{case}")).await;
        let s = db.service().await;
        let g = gid(60);
        s.create(g, json!({}), &alice()).await.expect("v1");
        for i in 0..4 {
            s.update(g, set("features.x", json!(i % 2 == 0)), &alice())
                .await
                .expect("update");
        }
        if legit_purge {
            // A real purge through seq 1, recorded by a purge entry.
            s.purge(t("2026-01-01T00:00:01Z"), None, &alice())
                .await
                .expect("purge");
            assert!(s.verify(None).await.expect("verify").ok);
        }
        // The attacker removes entries 1–2 (and their snapshots) with plain
        // SQL, so the chain seems to start at seq 3, with no purge entry
        // saying so (or one that says something else).
        db.drop_triggers().await;
        db.exec("DELETE FROM audit_entries WHERE guild_id = 60 AND seq <= 2; DELETE FROM guild_snapshots WHERE guild_id = 60 AND version <= 2")
            .await
            .expect("tampering runs");
        let report = s.verify(None).await.expect("verify runs");
        assert!(!report.ok, "{case}: caught");
        let p = &report.problems[0];
        assert_eq!(
            (p.guild_id, p.seq, p.problem.as_str()),
            (Some(g), Some(3), "seq_gap"),
            "{case}: {report:?}"
        );
        let out = export(&s).await;
        let report = guildconf::verify_export(std::io::Cursor::new(out.clone())).expect("reads");
        assert_eq!(report.problems[0].seq, Some(3), "{case}: export {report:?}");
        let (ok, text) = python_verifies(&out);
        assert!(
            !ok && text.contains("seq=3 problem=seq_gap"),
            "{case}: {text}"
        );
        // And the command line says so with exit 6.
        let run = Command::new(guildconf_bin())
            .args(["--database-url", db.url(), "verify"])
            .output()
            .expect("runs");
        assert_eq!(
            run.status.code(),
            Some(6),
            "{case}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

async fn counts(db: &TestDb, g: &str) -> (u64, u64) {
    (
        db.count("audit_entries", g).await,
        db.count("guild_snapshots", g).await,
    )
}

/// `guildconf --json ARGS…`: (exit code, stdout JSON or Null, stderr).
fn cli(db: &TestDb, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(guildconf_bin())
        .env_remove("GUILDCONF_DATABASE_URL")
        .args(["--database-url", db.url(), "--json"])
        .args(args)
        .output()
        .expect("guildconf runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn purge_command_line(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let g = "123456789012345678";
    let actor = ["--actor", "80351110224678912", "--actor-label", "alice"];
    let w = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(actor);
        let (code, v, err) = cli(&db, &all);
        assert_eq!(code, 0, "{args:?}: {err}");
        v
    };
    w(&["create", g]);
    for i in 0..4 {
        w(&["set", g, &format!("features.f{i}=true")]);
    }
    let (_, history, _) = cli(&db, &["history", g]);
    let mut list: Vec<Value> = history["entries"].as_array().expect("entries").clone();
    list.reverse();
    // --before is the time of seq 3: seq 1 and 2 go, seq 3 stays.
    let cut = list[2]["occurred_at"].as_str().expect("time").to_owned();

    // Without --yes and not on a terminal: the plan, then a refusal (exit
    // 2, so a cron job that forgot --yes does not believe it purged), and
    // nothing written.
    let mut args = vec!["purge", "--before", cut.as_str()];
    args.extend(actor);
    let (code, plan, err) = cli(&db, &args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        plan,
        json!({"dry_run": true, "guilds": [{"guild_id": g, "through_seq": 2, "entries_removed": 2, "snapshots_removed": 2, "entry_hash": null}]})
    );
    assert_eq!(counts(&db, g).await, (5, 5));
    let people = Command::new(guildconf_bin())
        .args(["--database-url", db.url()])
        .args(&args)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&people.stdout);
    assert!(
        people.status.code() == Some(2) && text.contains("nothing purged"),
        "{text}"
    );
    assert_eq!(counts(&db, g).await, (5, 5));

    // Bad values.
    let (code, _, _) = cli(
        &db,
        &[
            "purge",
            "--before",
            "yesterday",
            "--yes",
            "--actor",
            "x",
            "--actor-kind",
            "system",
        ],
    );
    assert_eq!(code, 3);
    let (code, _, _) = cli(
        &db,
        &[
            "purge",
            "--before",
            &cut,
            "--yes",
            "--guild",
            "777",
            "--actor",
            "x",
            "--actor-kind",
            "system",
        ],
    );
    assert_eq!(code, 5, "an unknown guild is not found");
    assert_eq!(
        cli(&db, &["purge", "--yes", "--actor", "x"]).0,
        2,
        "--before is required"
    );

    // --yes purges.
    args.push("--yes");
    args.extend(["--reason", "keep 30 days", "--guild", g]);
    let (code, done, err) = cli(&db, &args);
    assert_eq!(code, 0, "{err}");
    let purged = &done["guilds"][0];
    assert_eq!(
        (
            purged["guild_id"].clone(),
            purged["through_seq"].clone(),
            purged["entries_removed"].clone(),
            purged["snapshots_removed"].clone()
        ),
        (json!(g), json!(2), json!(2), json!(2))
    );
    assert_eq!(counts(&db, g).await, (4, 3));
    let (_, history, _) = cli(&db, &["history", g, "--operation", "purge"]);
    let entry = &history["entries"][0];
    assert_eq!(entry["entry_hash"], purged["entry_hash"]);
    assert_eq!(
        entry["detail"],
        json!({"before": cut, "through_seq": 2, "through_hash": list[1]["entry_hash"]})
    );
    assert_eq!(entry["prev_hash"], list[4]["entry_hash"]);
    assert_eq!(entry["reason"], json!("keep 30 days"));
    assert_eq!(entry["context"], json!({"source": "cli"}));

    // Purged versions and times are not found (exit 5); later ones are there.
    assert_eq!(cli(&db, &["show", g, "--version", "1"]).0, 5);
    assert_eq!(cli(&db, &["show", g, "--version", "3"]).0, 0);
    let first_time = list[0]["occurred_at"].as_str().expect("time");
    assert_eq!(cli(&db, &["show", g, "--at", first_time]).0, 5);
    assert_eq!(cli(&db, &["show", g, "--at", &cut]).0, 0);
    assert_eq!(cli(&db, &["diff", g, "1", "3"]).0, 5);

    // Verify: database, export file, and the Python checker.
    let (code, report, _) = cli(&db, &["verify"]);
    assert_eq!((code, report["ok"].clone()), (0, json!(true)), "{report}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("e.jsonl");
    let path = file.to_str().expect("utf-8 path");
    assert_eq!(cli(&db, &["export", "--output", path]).0, 0);
    let (code, report, _) = cli(&db, &["verify", "--file", path]);
    assert_eq!(
        (code, report["entries_checked"].clone()),
        (0, json!(4)),
        "{report}"
    );
    let (ok, text) = python_verifies(&std::fs::read(&file).expect("export"));
    assert!(ok && text.starts_with("ok: 4 entries"), "{text}");

    // A second run finds nothing more before the same cut.
    let (code, again, _) = cli(&db, &args);
    assert_eq!(code, 0);
    assert_eq!(again["guilds"][0]["entry_hash"], Value::Null);
    assert_eq!(counts(&db, g).await, (4, 3));
}
