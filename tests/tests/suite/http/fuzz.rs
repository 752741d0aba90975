//! An independent OpenAPI fuzzer against the running server: schemathesis
//! (from PyPI) reads `/openapi.json`, generates requests from it, valid and
//! invalid, and checks every answer against the document (`--checks all`):
//! no 5xx, every status and header documented, every body matching its
//! schema, valid requests accepted and invalid ones refused. Bounded: a
//! fixed number of cases per operation, once with an editor's token and
//! once with an unscoped auditor's, on a SQLite database with a guild
//! already configured.

use std::process::Command;

use guildconf_tests::{Sqlite, TestDb};

use super::serve::{signal, start};
use super::{cli_token, guildconf};

/// Cases per operation for each token: about half a minute in all.
const CASES: &str = "20";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let db = TestDb::new(&Sqlite, "http_fuzz").await;
    guildconf(&db, &["migrate"]);
    guildconf(&db, &["create", "1", "--actor", "80351110224678912"]);
    guildconf(
        &db,
        &[
            "set",
            "1",
            "features.beta=true",
            "--actor",
            "80351110224678912",
        ],
    );
    let tokens = [
        cli_token(&db, "editor", "fuzz"),
        cli_token(&db, "auditor", "fuzz"),
    ];
    let mut served = start(&db, false);
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml");
    // schemathesis keeps a cache of what it found in its working
    // directory: a scratch one, not the source tree.
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut failures = Vec::new();
    for secret in &tokens {
        let run = Command::new("schemathesis")
            .current_dir(scratch.path())
            .env("NO_COLOR", "1")
            .args(["--config-file", config, "run"])
            .arg(format!("{}/openapi.json", served.base))
            .args(["--checks", "all", "--max-examples", CASES])
            .args(["--header", &format!("Authorization: Bearer {secret}")])
            .output()
            .expect("schemathesis runs (pip install schemathesis)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        println!("{text}");
        if !run.status.success() {
            failures.push(text);
        }
    }
    signal(&served.child, "TERM");
    let status = served.child.wait().expect("serve exits");
    assert!(
        failures.is_empty(),
        "schemathesis failed:\n{}",
        failures.join("\n")
    );
    assert_eq!(status.code(), Some(0));
}
