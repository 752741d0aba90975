//! Secrets: never on stdout, stderr, in logs at trace level, exports, audit
//! bodies or request records, unless asked for with `--reveal-secrets`.

use guildconf_tests::{Backend, TestDb};
use serde_json::{json, Value};

use super::{
    assert_invalid, gc, gcw, history, path_str, run_with, totals, write_file, Run, ACTOR, G,
};

/// The secret part of the webhook URL G stores.
const SECRET: &str = "SECRETTOKEN";

/// The webhook URL G stores.
fn url() -> String {
    format!("https://discord.com/api/webhooks/1/{SECRET}")
}

/// Runs the binary logging at trace level and keeps every run, to check
/// afterwards that none of them showed a secret.
struct Traced {
    db: TestDb,
    seen: Vec<Run>,
}

impl Traced {
    /// A database where G (version 3) holds the secret, set with request
    /// id `secret-1`.
    async fn new(backend: Backend, name: &str) -> Self {
        let mut t = Self {
            db: TestDb::new(backend, name).await,
            seen: Vec::new(),
        };
        t.run(true, &["create", G, "--actor", ACTOR]).ok();
        let set = t.set_secret(&[]).ok().json();
        assert_eq!(set["outcome"], json!("updated"));
        t.run(false, &["set", G, "features.a=true", "--actor", ACTOR])
            .ok();
        t
    }

    /// The write that stores the secret (request id `secret-1`), with
    /// `extra` arguments.
    fn set_secret(&mut self, extra: &[&str]) -> Run {
        let set_arg = format!("announcements.webhook_url={}", url());
        let mut args = vec!["set", G, &set_arg, "--actor", ACTOR];
        args.extend(["--request-id", "secret-1"]);
        args.extend(extra);
        self.run(true, &args)
    }

    fn run(&mut self, json_flag: bool, args: &[&str]) -> Run {
        let r = run_with(&self.db, json_flag, args, &[("RUST_LOG", "trace")]);
        self.seen.push(r.clone());
        r
    }

    /// No run showed the secret (nor the one of the invalid write), and no
    /// audit body or request record holds it.
    async fn assert_nothing_leaked(&self) {
        for r in &self.seen {
            for secret in [SECRET, "OTHERSECRET"] {
                assert!(
                    !r.all_output().contains(secret),
                    "{secret} leaked\n{}",
                    r.context()
                );
            }
        }
        for row in self.db.rows("SELECT body FROM audit_entries").await {
            assert!(
                !row[0].contains(SECRET),
                "an audit body holds the secret: {}",
                row[0]
            );
        }
        for row in self.db.rows("SELECT result FROM audit_requests").await {
            assert!(
                !row[0].contains(SECRET),
                "a request record holds the secret: {}",
                row[0]
            );
        }
    }
}

async fn reads_and_exports_never_show_a_secret(backend: Backend, name: &str) {
    let mut t = Traced::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let shown = t.run(true, &["show", G]).ok().json();
    assert_eq!(
        shown["document"]["announcements"]["webhook_url"],
        json!("[redacted]")
    );
    t.run(false, &["show", G]).ok();
    t.run(false, &["show", G, "--version", "2"]).ok();
    t.run(true, &["show", G, "--path", "announcements.webhook_url"])
        .ok();
    t.run(true, &["show", G, "--path", "announcements"]).ok();
    let hist = t.run(true, &["history", G]).ok().json();
    let change = hist["entries"][1]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["path"] == json!("/announcements/webhook_url"))
        .cloned()
        .expect("the secret's change is recorded");
    assert_eq!(
        change,
        json!({"op": "replace", "path": "/announcements/webhook_url", "before": null, "after": "[redacted]"})
    );
    t.run(false, &["history", G]).ok();
    t.run(true, &["history", G, "--path", "announcements"]).ok();
    t.run(true, &["diff", G, "1", "2"]).ok();
    t.run(false, &["diff", G, "1", "3"]).ok();
    t.run(true, &["export"]).ok();
    t.run(true, &["export", "--format", "csv"]).ok();
    let jsonl = dir.path().join("e.jsonl");
    t.run(true, &["export", "--output", path_str(&jsonl)]).ok();
    t.run(true, &["list"]).ok();
    t.run(true, &["verify"]).ok();
    t.assert_nothing_leaked().await;
    let exported = std::fs::read_to_string(&jsonl).expect("the export was written");
    assert!(exported.contains("[redacted]"));
    assert!(!exported.contains(SECRET));
}

async fn errors_about_or_near_a_secret_never_show_it(backend: Backend, name: &str) {
    let mut t = Traced::new(backend, name).await;
    let bad_url = "announcements.webhook_url=http://evil.example/OTHERSECRET";
    let r = t.run(true, &["set", G, bad_url, "--actor", ACTOR]);
    assert_invalid(&r, "/announcements/webhook_url");
    let r = t.run(false, &["set", G, bad_url, "--actor", ACTOR]).code(3);
    assert!(!r.all_output().contains("OTHERSECRET"), "{}", r.context());
    let r = t.run(
        true,
        &[
            "set",
            G,
            "announcements.bogus=1",
            "announcements.enabled=maybe",
            "--actor",
            ACTOR,
        ],
    );
    assert_invalid(&r, "/announcements/bogus");
    let other = format!("{{\"webhook_url\": \"{}\", \"bogus\": 1}}", url());
    let whole = format!("announcements={other}");
    let r = t.run(true, &["set", G, &whole, "--actor", ACTOR]);
    assert_invalid(&r, "/announcements/bogus");
    // A replay of the secret's write, before its expected-version check.
    let r = t.set_secret(&["--expect-version", "1"]);
    assert!(r.code == 0, "{}", r.context());
    let dry = "announcements.webhook_url=https://discord.com/api/webhooks/2/DRYSECRET";
    let r = t
        .run(true, &["set", G, dry, "--actor", ACTOR, "--dry-run"])
        .ok();
    assert!(r.stdout.contains("[redacted]"), "{}", r.context());
    assert!(!r.all_output().contains("DRYSECRET"), "{}", r.context());
    t.assert_nothing_leaked().await;
}

async fn reveal_secrets_shows_the_stored_secret(backend: Backend, name: &str) {
    let t = Traced::new(backend, name).await;
    // Asked for explicitly, it is there.
    let revealed = run_with(&t.db, true, &["show", G, "--reveal-secrets"], &[])
        .ok()
        .json();
    assert_eq!(
        revealed["document"]["announcements"]["webhook_url"],
        json!(url())
    );
}

/// G's secret, asked for explicitly.
fn revealed(db: &TestDb) -> Value {
    let revealed = gc(db, &["show", G, "--reveal-secrets"]).ok().json();
    revealed["document"]["announcements"]["webhook_url"].clone()
}

async fn applying_a_shown_document_keeps_the_secret(backend: Backend, name: &str) {
    let mut t = Traced::new(backend, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let shown = t.run(true, &["show", G]).ok().json();
    let db = &t.db;
    // show → apply keeps the secret and changes nothing.
    let before = totals(db).await;
    let file = write_file(dir.path(), "shown.json", &shown["document"].to_string());
    let applied = gcw(db, &["apply", G, "--file", path_str(&file)])
        .ok()
        .json();
    assert_eq!(applied["outcome"], json!("unchanged"), "{applied}");
    assert!(applied["entry_hash"].is_null());
    assert!(!applied.to_string().contains(SECRET));
    assert_eq!(totals(db).await, before);
    assert_eq!(
        revealed(db),
        json!(url()),
        "\"[redacted]\" keeps the stored secret"
    );
    // …also when other fields change in the same apply.
    let mut edited = shown["document"].clone();
    edited["features"]["b"] = json!(true);
    let file = write_file(dir.path(), "edited.json", &edited.to_string());
    let applied = gcw(db, &["apply", G, "--file", path_str(&file)])
        .ok()
        .json();
    assert_eq!(applied["outcome"], json!("updated"));
    assert_eq!(revealed(db), json!(url()));
    let newest = &history(db, &[G])[0];
    assert_eq!(
        newest["changes"],
        json!([{"op": "add", "path": "/features/b", "after": true}])
    );
    t.assert_nothing_leaked().await;
}

guildconf_tests::contract! {
    reads_and_exports_never_show_a_secret,
    errors_about_or_near_a_secret_never_show_it,
    reveal_secrets_shows_the_stored_secret,
    applying_a_shown_document_keeps_the_secret,
}
