//! Import and copy: an export loads into an empty database of either
//! backend, verified before anything is written; a whole database copies
//! between backends with every entry hash preserved.

use std::io::Cursor;

use guildconf::{At, ConfigStore, Error, ExportRequest, GuildId, ImportRefusal, WriteMeta};
use guildconf_tests::{edit, Backend, TestDb, BACKENDS};
use serde_json::json;

fn gid(n: u64) -> GuildId {
    GuildId::from_u64(n).expect("valid")
}

fn meta(id: &str, label: &str) -> WriteMeta {
    WriteMeta::new(
        guildconf::Actor::new(id, guildconf::ActorKind::Human, Some(label)).expect("valid"),
    )
}

async fn export(store: std::sync::Arc<dyn ConfigStore>, with_snapshots: bool) -> Vec<u8> {
    let mut out = Vec::new();
    guildconf::ConfigService::new(store)
        .export(
            &ExportRequest {
                with_snapshots,
                ..Default::default()
            },
            &mut out,
        )
        .await
        .expect("export");
    out
}

async fn import_bytes(
    store: &dyn ConfigStore,
    bytes: &[u8],
) -> Result<guildconf::ImportReport, ImportRefusal> {
    guildconf::import(store, || Ok(Cursor::new(bytes.to_vec())), |_| {}).await
}

async fn seeded(backend: Backend, name: &str) -> TestDb {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let alice = meta("80351110224678912", "alice");
    for g in [7, 3] {
        s.create(gid(g), json!({"features": {"a": true}}), &alice)
            .await
            .expect("create");
        s.update(
            gid(g),
            edit(
                vec![(
                    vec!["announcements".into(), "webhook_url".into()],
                    json!("https://example.com/hook/SECRET"),
                )],
                vec![],
            ),
            &alice,
        )
        .await
        .expect("secret");
        s.revert(gid(g), 1, &alice).await.expect("revert");
    }
    s.delete(gid(3), &alice).await.expect("delete");
    s.create(gid(3), json!({}), &alice)
        .await
        .expect("re-create");
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_with_snapshots_imports_into_either_backend() {
    // Every ordered pair of distinct backends.
    let pairs = BACKENDS.iter().flat_map(|&from| {
        BACKENDS
            .iter()
            .filter(move |to| to.name() != from.name())
            .map(move |&to| (from, to))
    });
    for (from, to) in pairs {
        let source = seeded(from, &format!("import_src_{from:?}")).await;
        let plain = export(source.store().await, false).await;
        let full = export(source.store().await, true).await;
        assert!(
            !String::from_utf8_lossy(&plain).contains("SECRET"),
            "a plain export holds no secrets"
        );
        assert!(
            String::from_utf8_lossy(&full).contains("SECRET"),
            "--with-snapshots carries the stored documents"
        );

        let dest = TestDb::new(to, &format!("import_dst_{to:?}")).await;
        let store = dest.store().await;
        // A redacted secret cannot be rebuilt from the changes: refused, nothing stored.
        match import_bytes(store.as_ref(), &plain).await {
            Err(ImportRefusal::Failed(Error::Invalid(v))) => {
                assert!(v.to_string().contains("--with-snapshots"), "{v}")
            }
            other => panic!("expected a refusal naming --with-snapshots, got {other:?}"),
        }
        assert!(
            store.guild_ids(None, 10).await.expect("ids").is_empty(),
            "nothing stored"
        );
        // A tampered file: exit-6 material, nothing stored.
        let tampered = String::from_utf8_lossy(&full).replacen("\"a\":true", "\"a\":false", 1);
        match import_bytes(store.as_ref(), tampered.as_bytes()).await {
            Err(ImportRefusal::Unverified(report)) => assert!(!report.ok),
            other => panic!("expected an unverified refusal, got {other:?}"),
        }
        assert!(
            store.guild_ids(None, 10).await.expect("ids").is_empty(),
            "nothing stored"
        );

        let report = import_bytes(store.as_ref(), &full).await.expect("imports");
        assert_eq!((report.guilds, report.entries), (2, 8));
        assert_eq!(
            export(dest.store().await, false).await,
            plain,
            "every entry hash preserved, byte for byte"
        );
        let s = dest.service().await;
        assert!(s.verify(None).await.expect("verify").ok);
        let doc = s
            .get(gid(7), At::Version(2))
            .await
            .expect("version 2")
            .document;
        assert_eq!(
            doc["announcements"]["webhook_url"],
            json!("https://example.com/hook/SECRET")
        );
        // Only into an empty database.
        assert!(matches!(
            import_bytes(store.as_ref(), &full).await,
            Err(ImportRefusal::Failed(Error::Conflict(_)))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_moves_a_database_between_backends_and_back() {
    // From the first backend to each other one, and back to a fresh
    // database of the first.
    let (&home, others) = BACKENDS.split_first().expect("a backend is registered");
    let source = seeded(home, "copy_src").await;
    let original = export(source.store().await, false).await;
    for &away in others {
        let mid = TestDb::new(away, &format!("copy_mid_{away:?}")).await;
        let report = guildconf::copy(source.store().await, mid.store().await.as_ref(), |_| {})
            .await
            .expect("copy");
        assert_eq!((report.guilds, report.entries), (2, 8));
        assert_eq!(
            export(mid.store().await, false).await,
            original,
            "{home:?} to {away:?} keeps every hash"
        );
        let back = TestDb::new(home, &format!("copy_back_{away:?}")).await;
        guildconf::copy(mid.store().await, back.store().await.as_ref(), |_| {})
            .await
            .expect("copy back");
        assert_eq!(
            export(back.store().await, false).await,
            original,
            "and back again"
        );
        assert!(back.service().await.verify(None).await.expect("verify").ok);
        let again = guildconf::copy(mid.store().await, back.store().await.as_ref(), |_| {}).await;
        assert!(
            matches!(again, Err(ImportRefusal::Failed(Error::Conflict(_)))),
            "copy needs an empty destination"
        );
    }
}

/// Through the command line: a tampered file exits 6 and stores nothing; the
/// real one imports; piped output carries no progress bar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_import_verifies_first_and_stays_quiet_when_piped() {
    // Any backend serves as the source; each one is a destination.
    let source = seeded(BACKENDS[0], "cli_import_src").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("export.jsonl");
    let bin = guildconf_tests::guildconf_bin();
    let run = |url: &str, args: &[&str]| {
        std::process::Command::new(&bin)
            .arg("--database-url")
            .arg(url)
            .args(args)
            .output()
            .expect("the CLI runs")
    };
    let path = file.to_str().expect("utf-8 path");
    let exported = run(
        source.url(),
        &["export", "--with-snapshots", "--output", path],
    );
    assert!(exported.status.success());
    let tampered_path = dir.path().join("tampered.jsonl");
    let text = std::fs::read_to_string(&file).expect("export written");
    std::fs::write(&tampered_path, text.replacen("alice", "mallory", 1)).expect("write");
    for &backend in BACKENDS {
        let dest = TestDb::new(backend, &format!("cli_import_dst_{backend:?}")).await;
        let bad = run(
            dest.url(),
            &["--json", "import", tampered_path.to_str().expect("utf-8")],
        );
        assert_eq!(
            bad.status.code(),
            Some(6),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
        assert_eq!(
            dest.store().await.guild_ids(None, 10).await.expect("ids"),
            Vec::<GuildId>::new()
        );
        let good = run(dest.url(), &["import", path]);
        assert_eq!(
            good.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&good.stderr)
        );
        assert!(
            good.stderr.is_empty(),
            "no progress bar when piped: {}",
            String::from_utf8_lossy(&good.stderr)
        );
        let verify = run(dest.url(), &["verify"]);
        assert_eq!(verify.status.code(), Some(0));
        let again = run(dest.url(), &["--json", "import", path]);
        assert_eq!(
            again.status.code(),
            Some(4),
            "import into a non-empty database is a conflict"
        );
    }
}

/// A purged history: a checkpoint taken before the purge is reported as
/// `checkpoint_purged` (a notice, not a failure), and the purged export
/// imports only with its snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_history_checkpoints_and_imports() {
    for &backend in BACKENDS {
        let db = TestDb::new(backend, &format!("purged_import_{backend:?}")).await;
        let s = db.service().await;
        let alice = meta("80351110224678912", "alice");
        let g = gid(9);
        s.create(g, json!({}), &alice).await.expect("v1");
        for i in 0..4 {
            s.update(
                g,
                edit(
                    vec![(vec!["features".into(), format!("f{i}")], json!(true))],
                    vec![],
                ),
                &alice,
            )
            .await
            .expect("update");
        }
        let cp_time =
            guildconf::Timestamp::parse_stored("2026-06-01T00:00:00.000000Z").expect("valid");
        let checkpoint = s.checkpoint(cp_time).await.expect("checkpoint at seq 5");
        s.update(
            g,
            edit(
                vec![(vec!["features".into(), "late".into()], json!(true))],
                vec![],
            ),
            &alice,
        )
        .await
        .expect("v6");
        // The step clock advances one second per write; purge all but the last two entries.
        let entries = s
            .history(&guildconf::HistoryRequest {
                guild_id: Some(g),
                ..Default::default()
            })
            .await
            .expect("history")
            .entries;
        let before = entries[0].body.occurred_at;
        let purged = s.purge(before, Some(g), &alice).await.expect("purge");
        assert_eq!(purged[0].through_seq, 5);
        let report = s.verify_checkpoint(&checkpoint).await.expect("verify");
        assert!(report.ok, "a purge is not a failure: {report:?}");
        let notices: Vec<_> = report
            .notices
            .iter()
            .map(|n| (n.seq, n.problem.as_str()))
            .collect();
        assert_eq!(notices, vec![(Some(5), "checkpoint_purged")]);

        let plain = export(db.store().await, false).await;
        let full = export(db.store().await, true).await;
        assert!(
            guildconf::verify_export(Cursor::new(plain.clone()))
                .expect("reads")
                .ok
        );
        let dest = TestDb::new(backend, &format!("purged_import_dst_{backend:?}")).await;
        let store = dest.store().await;
        match import_bytes(store.as_ref(), &plain).await {
            Err(ImportRefusal::Failed(Error::Invalid(v))) => {
                assert!(v.to_string().contains("--with-snapshots"), "{v}")
            }
            other => panic!("a purged chain needs its snapshots: {other:?}"),
        }
        import_bytes(store.as_ref(), &full)
            .await
            .expect("imports with snapshots");
        assert_eq!(
            export(dest.store().await, false).await,
            plain,
            "every hash preserved"
        );
        let ds = dest.service().await;
        assert!(ds.verify(None).await.expect("verify").ok);
        assert!(
            matches!(ds.get(g, At::Version(2)).await, Err(Error::NotFound(_))),
            "purged version stays gone"
        );
        assert_eq!(ds.get(g, At::Now).await.expect("current").version, 6);
    }
}

/// Rewrites line `index` of an export with `edit` and re-chains every later
/// line of the same guild with correctly recomputed hashes, as an attacker
/// crafting a file would: the result verifies as a chain.
fn forge(export: &[u8], index: usize, edit: impl Fn(&mut guildconf::EntryBody)) -> Vec<u8> {
    forge_with(export, index, edit, |_| {})
}

/// As [`forge`], and `snapshot_edit` edits line `index`'s snapshot, whose
/// hash the body's `snapshot_sha256` is then made to name.
fn forge_with(
    export: &[u8],
    index: usize,
    edit: impl Fn(&mut guildconf::EntryBody),
    snapshot_edit: impl Fn(&mut serde_json::Value),
) -> Vec<u8> {
    let mut out = String::new();
    let mut prev: Option<(String, String)> = None;
    for (i, line) in String::from_utf8_lossy(export).lines().enumerate() {
        let mut value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).expect("an export line is an object");
        let snapshot = value.remove("snapshot");
        value.remove("entry_hash");
        let mut body: guildconf::EntryBody =
            serde_json::from_value(serde_json::Value::Object(value)).expect("a body");
        let mut snapshot = snapshot;
        if i == index {
            edit(&mut body);
            if let Some(doc) = snapshot.as_mut() {
                snapshot_edit(doc);
                body.snapshot_sha256 =
                    Some(guildconf::json::canonical_sha256(&*doc).expect("hashes"));
            }
        }
        if let Some((guild, hash)) = &prev {
            if *guild == body.guild_id.to_string() && i > index {
                body.prev_hash = hash.clone();
            }
        }
        let sealed = body.clone().seal().expect("seals");
        let mut line = serde_json::to_value(sealed.entry().to_json().expect("json")).expect("v");
        if let Some(s) = snapshot {
            line["snapshot"] = s;
        }
        prev = Some((body.guild_id.to_string(), sealed.entry_hash().to_owned()));
        out.push_str(&guildconf::json::canonical(&line).expect("canonical"));
        out.push('\n');
    }
    out.into_bytes()
}

/// A file whose hashes are all correct but that holds an entry guildconf
/// could never have written (its summary, changes, context or time are not
/// what the write it describes makes) is refused by the rebuild through the
/// one maker of links, naming the line and the field; nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistently_rehashed_forgery_is_refused() {
    for &backend in BACKENDS {
        let source = seeded(backend, &format!("forge_src_{backend:?}")).await;
        let full = export(source.store().await, true).await;
        let dest = TestDb::new(backend, &format!("forge_dst_{backend:?}")).await;
        let store = dest.store().await;
        let forgeries: Vec<(&str, Vec<u8>)> = vec![
            (
                "summary",
                forge(&full, 1, |b| b.summary = "nothing happened".into()),
            ),
            ("changes", forge(&full, 1, |b| b.changes.clear())),
            (
                "context",
                forge(&full, 1, |b| {
                    b.context.insert("source".into(), json!("a\u{7}bell"));
                }),
            ),
            (
                "unknown field",
                forge_with(&full, 1, |_| {}, |d| d["bogus"] = json!(1)),
            ),
            (
                "invalid value",
                forge_with(
                    &full,
                    1,
                    |_| {},
                    |d| d["onboarding"]["enabled"] = json!(true),
                ),
            ),
            (
                "U+0000",
                forge_with(
                    &full,
                    1,
                    |_| {},
                    |d| d["onboarding"]["welcome_message"] = json!("a\u{0}b"),
                ),
            ),
            ("version jump", forge(&full, 1, |b| b.config_version += 1)),
            (
                "reason",
                forge(&full, 1, |b| b.reason = Some("a\r\nb".into())),
            ),
            (
                "occurred_at",
                forge(&full, 1, |b| {
                    b.occurred_at =
                        guildconf::Timestamp::parse_stored("2020-01-01T00:00:00.000000Z")
                            .expect("t");
                }),
            ),
        ];
        for (field, bytes) in forgeries {
            let report = guildconf::verify_export(Cursor::new(bytes.clone())).expect("reads");
            assert!(report.ok, "{field}: the forged file verifies as a chain");
            match import_bytes(store.as_ref(), &bytes).await {
                Err(ImportRefusal::Rejected(text)) => {
                    assert!(text.contains("line 2"), "{field}: {text}");
                }
                other => panic!("{field}: expected a refusal, got {other:?}"),
            }
            assert!(
                store.guild_ids(None, 10).await.expect("ids").is_empty(),
                "{field}: nothing stored"
            );
        }
        import_bytes(store.as_ref(), &full)
            .await
            .expect("the real file imports");
    }
}

/// The source of the kill loop of `what`: six guilds of 151 entries each on the
/// first backend, and its export with and without snapshots.
async fn kill_loop_source(what: &str) -> (TestDb, Vec<u8>, Vec<u8>) {
    let source = TestDb::new(BACKENDS[0], &format!("kill_{what}_seed")).await;
    let s = source.service().await;
    let alice = meta("80351110224678912", "alice");
    for g in 1..=6u64 {
        s.create(gid(g), json!({}), &alice).await.expect("create");
        for i in 0..150u64 {
            s.update(
                gid(g),
                edit(
                    vec![(
                        vec!["role_mapping".into(), format!("r{}", i % 9)],
                        json!(i + 1),
                    )],
                    vec![],
                ),
                &alice,
            )
            .await
            .expect("update");
        }
    }
    let full = export(source.store().await, true).await;
    let plain = export(source.store().await, false).await;
    (source, full, plain)
}

/// SIGKILLs a run of the CLI into a fresh target of `backend` at random
/// moments within how long a whole run takes, until at least 20 kills have
/// landed: after each, the target holds nothing or all of `plain` (an
/// export without snapshots), and when it holds nothing a run to the end
/// succeeds and leaves all of it. `run` starts the CLI on a target URL.
async fn kill_loop(
    backend: Backend,
    what: &str,
    plain: &[u8],
    run: impl Fn(&str) -> std::process::Child,
) {
    use std::hash::{BuildHasher, RandomState};
    use std::time::{Duration, Instant};
    // How long a whole run takes here, to kill within it.
    let timing = TestDb::new(backend, &format!("kill_{what}_timing_{backend:?}")).await;
    let started = Instant::now();
    assert!(run(timing.url()).wait().expect("runs").success());
    let span = started.elapsed().as_micros().max(1) as u64;
    let mut kills = 0;
    for round in 0..60u64 {
        if kills >= 20 {
            break;
        }
        let target = TestDb::new(backend, &format!("kill_{what}_{backend:?}_{}", round % 3)).await;
        let mut child = run(target.url());
        let wait = RandomState::new().hash_one(round) % span;
        std::thread::sleep(Duration::from_micros(wait));
        if child.try_wait().expect("status").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
        let store = target.store().await;
        let held = store.guild_ids(None, 10).await.expect("ids");
        if !held.is_empty() {
            assert_eq!(
                export(store.clone(), false).await,
                plain,
                "{what} {backend:?}: all of it"
            );
            continue;
        }
        // Nothing stored: a retry succeeds and stores everything.
        assert!(
            run(target.url()).wait().expect("runs").success(),
            "{what} {backend:?}: retry"
        );
        assert_eq!(
            export(store, false).await,
            plain,
            "{what} {backend:?}: after the retry"
        );
    }
    assert!(kills >= 20, "{what} {backend:?}: only {kills} kills landed");
    println!("{what} into {backend:?}: {kills} SIGKILLs, the target empty or complete after each");
}

/// SIGKILL during `guildconf import`, at random moments, at least 20 times
/// per backend: the target is empty or holds the whole file every time, and
/// a retry succeeds. (An import is one transaction.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_at_any_moment_leaves_nothing_or_everything() {
    use std::process::{Command, Stdio};
    let (_source, full, plain) = kill_loop_source("import").await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("audit.jsonl");
    std::fs::write(&file, &full).expect("written");
    let bin = guildconf_tests::guildconf_bin();
    let import = |url: &str| {
        Command::new(&bin)
            .args(["--database-url", url, "import"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the CLI starts")
    };
    for &backend in BACKENDS {
        kill_loop(backend, "import", &plain, import).await;
    }
}

/// SIGKILL during `guildconf copy`, at random moments, at least 20 times
/// per backend, each time from a database of the other backend: the target
/// is empty or holds the whole source every time, and a retry succeeds. (A
/// copy writes its target in one transaction.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_killed_at_any_moment_leaves_nothing_or_everything() {
    use std::process::{Command, Stdio};
    let (_source, full, plain) = kill_loop_source("copy").await;
    let bin = guildconf_tests::guildconf_bin();
    for &backend in BACKENDS {
        let other = BACKENDS
            .iter()
            .find(|b| b.name() != backend.name())
            .copied()
            .unwrap_or(backend);
        let source = TestDb::new(other, &format!("kill_copy_src_{backend:?}")).await;
        import_bytes(source.store().await.as_ref(), &full)
            .await
            .expect("the source imports");
        let copy = |url: &str| {
            Command::new(&bin)
                .args(["--database-url", source.url(), "copy", "--to", url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the CLI starts")
        };
        kill_loop(backend, "copy", &plain, copy).await;
    }
}
