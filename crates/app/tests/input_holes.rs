//! The command line on input a careless or hostile user hands it: arguments
//! that are not UTF-8, files without end, and a disk that fills up. Each
//! runs the real `guildconf` binary on a scratch SQLite file.

use std::process::Command;

mod common;
use common::{run_sqlite as run, ALICE, BIN};

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(std::ffi::OsString::from).collect()
}

fn refs(args: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    args.iter().map(std::ffi::OsString::as_os_str).collect()
}

#[test]
fn an_argument_that_is_not_utf8_is_a_usage_error_with_or_without_json() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("g.db");
    let bad = std::ffi::OsStr::from_bytes(b"\xff");
    for json in [false, true] {
        let mut args = os(&["create", "123456789012345678", "--actor"]);
        args.push(bad.to_owned());
        if json {
            args.insert(0, "--json".into());
        }
        let out = run(&db, &refs(&args));
        assert_eq!(out.status.code(), Some(2), "json {json}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        if json {
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "exactly one JSON object: {stderr}");
            let v: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
            assert_eq!(v["error"], "usage");
        }
    }
    assert!(!db.exists(), "nothing was created");
}

#[test]
fn a_file_without_end_is_refused_at_the_cap() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("g.db");
    let created = run(
        &db,
        &refs(&os(&["create", "123456789012345678", "--actor", ALICE])),
    );
    assert_eq!(created.status.code(), Some(0), "{created:?}");
    let out = run(
        &db,
        &refs(&os(&[
            "--json",
            "apply",
            "123456789012345678",
            "--file",
            "/dev/zero",
            "--actor",
            ALICE,
        ])),
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is larger than 1024 KiB"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn purge_without_yes_and_without_a_terminal_refuses() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("g.db");
    run(
        &db,
        &refs(&os(&["create", "123456789012345678", "--actor", ALICE])),
    );
    run(
        &db,
        &refs(&os(&[
            "set",
            "123456789012345678",
            "features.a=true",
            "--actor",
            ALICE,
        ])),
    );
    let out = Command::new(BIN)
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .args([
            "purge",
            "--before",
            "2999-01-01T00:00:00Z",
            "--actor",
            ALICE,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    let history = run(
        &db,
        &refs(&os(&["--json", "history", "123456789012345678"])),
    );
    let v: serde_json::Value = serde_json::from_slice(&history.stdout).expect("JSON");
    assert_eq!(
        v["entries"].as_array().map(Vec::len),
        Some(2),
        "nothing purged"
    );
}

/// A real full disk: a 256 KiB tmpfs (this needs root, which the test
/// machines and CI have; without it the test fails, it never skips).
#[test]
fn a_full_disk_reads_as_disk_full_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mount = dir.path().join("tiny");
    std::fs::create_dir(&mount).expect("mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mount)
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "mounting a tmpfs needs root");
    let db = mount.join("g.db");
    let guild = "123456789012345678";
    let created = run(&db, &refs(&os(&["create", guild, "--actor", ALICE])));
    let mut failure = None;
    if created.status.success() {
        for i in 0..400 {
            let message = format!("onboarding.welcome_message={}{i}", "x".repeat(1900));
            let out = run(
                &db,
                &refs(&os(&["--json", "set", guild, &message, "--actor", ALICE])),
            );
            if !out.status.success() {
                failure = Some(out);
                break;
            }
        }
    } else {
        failure = Some(created);
    }
    let out = failure.expect("a 256 KiB disk fills up");
    let _ = Command::new("umount").arg(&mount).status();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("disk full"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one JSON object: {stderr}");
}

/// Values a terminal or a CSV reader would misread, and unsets of fields
/// that do not exist, are invalid input (exit 3) and store nothing.
#[test]
fn control_characters_and_unknown_unsets_are_invalid_input() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("g.db");
    let guild = "123456789012345678";
    run(&db, &refs(&os(&["create", guild, "--actor", ALICE])));
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "/announcements/webhook_url",
            vec![
                "set",
                guild,
                "announcements.webhook_url=https://example.com/a\r\nb",
            ],
        ),
        (
            "/reason",
            vec!["set", guild, "features.a=true", "--reason", "line\nbreak"],
        ),
        (
            "/reason",
            vec!["set", guild, "features.a=true", "--reason", "esc\u{1b}[31m"],
        ),
        (
            "/features/nope",
            vec!["set", guild, "--unset", "features.nope"],
        ),
        (
            "/no_such_field",
            vec!["set", guild, "--unset", "/no_such_field"],
        ),
    ];
    for (path, args) in cases {
        let mut args = os(&args);
        args.insert(0, "--json".into());
        args.extend(os(&["--actor", ALICE]));
        let out = run(&db, &refs(&args));
        assert_eq!(out.status.code(), Some(3), "{args:?}: {out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stderr).expect("one JSON object");
        assert_eq!(v["error"], "invalid_input");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(path)),
            "{args:?}: {v}"
        );
    }
    let history = run(&db, &refs(&os(&["--json", "history", guild])));
    let v: serde_json::Value = serde_json::from_slice(&history.stdout).expect("JSON");
    assert_eq!(
        v["entries"].as_array().map(Vec::len),
        Some(1),
        "nothing stored"
    );
}

/// An export with bytes that are not UTF-8 is a verification failure
/// (exit 6) for `verify --file` and for `import`, which stores nothing.
#[test]
fn an_export_that_is_not_utf8_fails_verification() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("g.db");
    run(
        &db,
        &refs(&os(&["create", "123456789012345678", "--actor", ALICE])),
    );
    let export = dir.path().join("audit.jsonl");
    let out = run(
        &db,
        &refs(&os(&["export", "--output", &export.display().to_string()])),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut bytes = std::fs::read(&export).expect("the export");
    bytes.extend_from_slice(b"\xff\xfe\n");
    std::fs::write(&export, &bytes).expect("written");
    let file = export.display().to_string();
    let verified = run(&db, &refs(&os(&["--json", "verify", "--file", &file])));
    assert_eq!(verified.status.code(), Some(6), "{verified:?}");
    let v: serde_json::Value = serde_json::from_slice(&verified.stdout).expect("JSON");
    assert!(v["problems"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("not UTF-8")));
    let target = dir.path().join("new.db");
    let imported = run(&target, &refs(&os(&["import", &file])));
    assert_eq!(imported.status.code(), Some(6), "{imported:?}");
}
