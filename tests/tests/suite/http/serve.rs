//! `guildconf serve`: the binary listens where it says (port 0 picks a free
//! port, and the first line of stdout names it), answers the API and serves
//! the audit pages at `/ui`, and stops
//! cleanly on SIGTERM and on SIGINT, exit 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use guildconf_tests::{contract, guildconf_bin, Backend, TestDb};

/// A running `guildconf serve` and the address it printed.
pub(super) struct Served {
    pub(super) child: Child,
    pub(super) base: String,
    /// Where its stderr (the log, at `RUST_LOG=debug`) goes.
    pub(super) log: tempfile::NamedTempFile,
}

/// Starts `guildconf serve` on port 0 and reads the address it prints.
pub(super) fn start(db: &TestDb, json: bool) -> Served {
    start_with(db, json, &[])
}

/// [`start`], with more arguments for `serve`.
pub(super) fn start_with(db: &TestDb, json: bool, serve_args: &[&str]) -> Served {
    let mut cmd = Command::new(guildconf_bin());
    cmd.env_remove("GUILDCONF_DATABASE_URL")
        .args(["--database-url", db.url()]);
    if json {
        cmd.arg("--json");
    }
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let mut child = cmd
        .env("RUST_LOG", "debug")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(serve_args)
        .stdout(Stdio::piped())
        .stderr(log.reopen().expect("the log file opens"))
        .spawn()
        .expect("guildconf serve starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("serve prints its address");
    let addr = if json {
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
        v["listening"].as_str().expect("listening").to_owned()
    } else {
        line.trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned()
    };
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");
    Served {
        child,
        base: format!("http://{addr}"),
        log,
    }
}

/// Sends SIG`name` to the server.
pub(super) fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

async fn serve_prints_its_address_and_stops_on_signals(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    super::guildconf(&db, &["migrate"]);
    let secret = super::cli_token(&db, "editor", "ops");
    for (json, sig) in [(false, "TERM"), (true, "INT")] {
        let mut served = start(&db, json);
        let client = reqwest::Client::new();
        // A token made by `token create` works, and its write is the token's.
        let put = client
            .put(format!("{}/api/v1/guilds/1/config", served.base))
            .bearer_auth(&secret)
            .header("if-none-match", "*")
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("answers");
        assert_eq!(put.status().as_u16(), if json { 412 } else { 201 });
        let listed = client
            .get(format!("{}/api/v1/guilds", served.base))
            .bearer_auth(&secret)
            .send()
            .await
            .expect("answers");
        assert_eq!(listed.status().as_u16(), 200);
        let doc = client
            .get(format!("{}/openapi.json", served.base))
            .send()
            .await
            .expect("answers");
        assert_eq!(doc.status().as_u16(), 200);
        // The audit pages are mounted at /ui, with their own HTML and
        // headers rather than the API's problem+json.
        let page = client
            .get(format!("{}/ui", served.base))
            .send()
            .await
            .expect("answers");
        assert_eq!(page.status().as_u16(), 200);
        let csp = page
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(csp.contains("script-src 'none'"), "the pages' CSP: {csp:?}");
        let html = page.text().await.expect("a body");
        assert!(html.contains("<form"), "the sign-in form is served: {html}");
        let refused = client
            .get(format!("{}/api/v1/guilds", served.base))
            .send()
            .await
            .expect("answers");
        assert_eq!(refused.status().as_u16(), 401);
        signal(&served.child, sig);
        let status = served.child.wait().expect("serve exits");
        assert_eq!(status.code(), Some(0), "SIG{sig} is a clean stop");
        let log = std::fs::read_to_string(served.log.path()).expect("the log reads");
        assert!(!log.contains(&secret), "the secret is never logged");
        assert!(!log.contains(&secret[4..]), "nor any of its random part");
    }
    let mut bad = Command::new(guildconf_bin())
        .args([
            "--database-url",
            db.url(),
            "--json",
            "serve",
            "--listen",
            "nowhere",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    assert_eq!(
        bad.wait().expect("exits").code(),
        Some(3),
        "a bad --listen is invalid input"
    );
}

/// The sign-in form's cookie, as `serve` sets it with and without
/// `--secure-cookies`.
async fn signin_cookie(db: &TestDb, serve_args: &[&str]) -> String {
    let mut served = start_with(db, false, serve_args);
    let page = reqwest::Client::new()
        .get(format!("{}/ui/signin", served.base))
        .send()
        .await
        .expect("answers");
    assert_eq!(page.status().as_u16(), 200);
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    signal(&served.child, "TERM");
    assert_eq!(served.child.wait().expect("serve exits").code(), Some(0));
    cookie
}

/// Behind a TLS-terminating proxy the pages' cookies must not travel over
/// plain http: `--secure-cookies` marks them `Secure`.
async fn secure_cookies_are_marked_secure(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    super::guildconf(&db, &["migrate"]);
    let plain = signin_cookie(&db, &[]).await;
    assert!(plain.contains("HttpOnly"), "{plain}");
    assert!(!plain.contains("Secure"), "{plain}");
    let secure = signin_cookie(&db, &["--secure-cookies"]).await;
    assert!(
        secure.contains("HttpOnly") && secure.contains("Secure"),
        "{secure}"
    );
}

contract! {
    serve_prints_its_address_and_stops_on_signals,
    secure_cookies_are_marked_secure,
}
