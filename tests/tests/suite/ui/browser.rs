//! The pages in real Chromium, driven over WebDriver (chromedriver) by
//! fantoccini: a person signs in by pasting a token, filters the log by
//! actor and by outcome, opens an entry and reads its diff with the secret
//! `[redacted]`, sees hostile values as text with no script run, looks at
//! a config version, verifies the chain, signs out, and as a viewer scoped
//! to one guild is refused another (and the refusal is in that guild's
//! chain). A PNG of every page goes to `target/ui-screenshots/`.
//!
//! Debian's `chromium` and `chromium-driver` must be installed; without
//! them the test fails, naming the command that installs them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use guildconf::{ConfigService, IssuedToken};
use guildconf_domain::TokenRole;
use guildconf_tests::{contract, Backend};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};

use super::{story, token, Served, A, B, EVIL_LABEL, EVIL_MESSAGE, EVIL_REASON, EVIL_TARGET};

/// The flags Chromium needs here: headless, no sandbox (tests may run as
/// root), and nothing that reaches for the network (without the
/// background-networking flags it hangs on a closed network).
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
];

/// How long the whole walk may take before the test fails (not hangs).
const WALK_LIMIT: Duration = Duration::from_secs(240);

/// `name` on the `PATH`, or a failure saying how to install it.
fn installed(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on the PATH, and the browser tests need it: install \
                 Debian's chromium and chromium-driver with \
                 `apt-get install -y chromium chromium-driver`"
            )
        })
}

/// Where the screenshots go: `target/ui-screenshots/`, beside the build.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory can be made");
    dir
}

/// chromedriver on a free loopback port, and a fresh Chromium profile.
struct Driver {
    process: Child,
    port: u16,
    chromium: PathBuf,
    profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Self {
        let chromium = installed("chromium");
        let chromedriver = installed("chromedriver");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        // Ready once it accepts connections.
        let mut ready = false;
        for _ in 0..150 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            ready,
            "chromedriver did not listen on port {port} within 15 s"
        );
        Self {
            process,
            port,
            chromium,
            profile: tempfile::tempdir().expect("a profile directory"),
        }
    }

    async fn session(&self) -> Client {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", self.profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": args,
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("chromedriver starts a Chromium session")
    }

    async fn stop(mut self) {
        let _ = self.process.kill().await;
    }
}

/// One walk through the pages, each step asserting what a person sees.
struct Walk {
    client: Client,
    origin: String,
    service: ConfigService,
    shots: PathBuf,
    prefix: String,
    /// The screenshots written so far.
    written: Vec<PathBuf>,
}

impl Walk {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.origin))
            .await
            .expect("the page loads");
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("its text")
    }

    /// Clicks a link or a submit button and waits for the next page: a
    /// click returns when the navigation starts, so the old page is still
    /// there to be read until its root element goes stale.
    async fn click(&self, css: &str) {
        let old = self.find("html").await;
        self.find(css).await.click().await.expect("it clicks");
        for _ in 0..200 {
            match old.tag_name().await {
                Err(e) if e.is_stale_element_reference() => return,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("clicking {css} did not lead to another page within 10 s");
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("it clears");
        field.send_keys(value).await.expect("it takes the keys");
    }

    /// The seqs of the log table, in page order.
    async fn seqs(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for link in self
            .client
            .find_all(Locator::Css("#log a.seq"))
            .await
            .expect("the rows")
        {
            out.push(link.text().await.expect("text").parse().expect("a seq"));
        }
        out
    }

    async fn shot(&mut self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
        let path = self.shots.join(format!(
            "{}-{:02}-{name}.png",
            self.prefix,
            self.written.len() + 1
        ));
        std::fs::write(&path, png).expect("the screenshot is written");
        self.written.push(path);
    }

    /// Nothing a user wrote ran: no script element, no dialog, no element
    /// made by an injected tag, and the session cookie out of script's
    /// reach.
    async fn assert_nothing_ran(&self) {
        let found = self
            .client
            .execute(
                "return [document.querySelectorAll('script, img, iframe').length, \
                 document.cookie];",
                vec![],
            )
            .await
            .expect("the probe runs");
        assert_eq!(found[0], 0, "an injected element is in the DOM");
        assert!(
            !found[1].as_str().unwrap_or_default().contains("gc_session"),
            "the session cookie is readable by script"
        );
        let alert = self.client.get_alert_text().await;
        assert!(
            alert.as_ref().is_err_and(|e| e.is_no_such_alert()),
            "a dialog opened: {alert:?}"
        );
    }

    async fn heading(&self) -> String {
        self.text("h1").await
    }
}

async fn walk(mut w: Walk, auditor: IssuedToken, viewer: IssuedToken) -> Vec<PathBuf> {
    // Signed out, the pages send to the sign-in form.
    w.goto("/ui").await;
    assert_eq!(w.heading().await, "Sign in");
    w.shot("signin").await;
    w.fill("#token", "gct_wrong").await;
    w.click("#signin").await;
    assert!(w
        .text("#signin-error")
        .await
        .contains("unknown, malformed or revoked"));
    w.fill("#token", &auditor.secret).await;
    w.click("#signin").await;

    // The guild list.
    assert_eq!(w.heading().await, "Guilds");
    let guilds = w.text("#guilds").await;
    assert!(guilds.contains(A) && guilds.contains(B), "{guilds}");
    assert!(w.text("header .who").await.contains("audit-desk (auditor)"));
    w.shot("guilds").await;

    // The log, newest first: the story, then the viewer's token created.
    w.click(&format!("#guilds a[href$='/g/{A}']")).await;
    assert_eq!(w.seqs().await, vec![7, 6, 5, 4, 3, 2, 1]);
    assert!(w.text("#log").await.contains("token.created"));
    w.assert_nothing_ran().await;
    let log = w.text("#log").await;
    for hostile in [EVIL_LABEL, EVIL_REASON, EVIL_TARGET] {
        assert!(
            log.contains(hostile),
            "{hostile} is not shown as text:\n{log}"
        );
    }
    w.shot("log").await;

    // Filtered by actor (bob), then by outcome (blocked).
    w.fill("#f-actor", "80351110224678913").await;
    w.click("#filter").await;
    assert_eq!(w.seqs().await, vec![6, 5, 4]);
    assert!(w.text("#log").await.contains("bob"));
    w.shot("log-by-actor").await;
    w.fill("#f-actor", "").await;
    w.find("#f-outcome")
        .await
        .select_by_value("blocked")
        .await
        .expect("blocked is an option");
    w.click("#filter").await;
    assert_eq!(w.seqs().await, vec![5]);
    assert_eq!(w.text("#log td.outcome").await, "blocked");
    assert_eq!(w.text("#log td.action").await, "permission.denied");
    w.shot("log-by-outcome").await;

    // An entry: its diff, the secret redacted, the chain verified.
    w.goto(&format!("/ui/g/{A}/entries/2")).await;
    let diff = w.text("#diff").await;
    assert!(diff.contains("/announcements/webhook_url"), "{diff}");
    assert!(diff.contains("replace"), "{diff}");
    assert_eq!(w.text("#diff td.before").await, "null");
    assert_eq!(w.text("#diff td.after").await, "\"[redacted]\"");
    assert!(!w
        .client
        .source()
        .await
        .expect("source")
        .contains("SECRET-HOOK-VALUE"));
    assert!(w.text("#e-actor").await.starts_with("alice (human"));
    assert_eq!(w.text("#e-reason").await, "rotate the hook");
    assert!(w.text("#chain-ok").await.contains("7 entries checked"));
    w.shot("entry-redacted").await;

    // The hostile entry: label, reason and value as text; nothing ran.
    w.goto(&format!("/ui/g/{A}/entries/3")).await;
    assert!(w.text("#e-actor").await.starts_with(EVIL_LABEL));
    assert_eq!(w.text("#e-reason").await, EVIL_REASON);
    assert!(w.text("#diff td.after").await.contains(EVIL_MESSAGE));
    w.assert_nothing_ran().await;
    w.shot("entry-hostile").await;
    w.goto(&format!("/ui/g/{A}/entries/4")).await;
    assert!(w.text("#e-target").await.contains(EVIL_TARGET));
    w.assert_nothing_ran().await;
    w.shot("entry-event").await;

    // A config version: the document, secret redacted, hostile text inert.
    w.goto(&format!("/ui/g/{A}/config?version=3")).await;
    let document = w.text("#document").await;
    assert!(
        document.contains("\"webhook_url\": \"[redacted]\""),
        "{document}"
    );
    assert!(document.contains(EVIL_MESSAGE), "{document}");
    w.assert_nothing_ran().await;
    w.fill("#version", "1").await;
    w.click("#show-version").await;
    assert!(w.heading().await.ends_with("config version 1"));
    w.shot("config").await;

    // The verify button.
    w.goto(&format!("/ui/g/{A}")).await;
    w.click("#verify").await;
    assert!(w.text("#chain-ok").await.contains("7 entries checked"));
    w.shot("verify").await;

    // Sign out, then a viewer scoped to A asks for B: refused, recorded.
    w.click("#signout").await;
    assert_eq!(w.heading().await, "Sign in");
    w.goto("/ui").await;
    assert_eq!(w.heading().await, "Sign in");
    w.fill("#token", &viewer.secret).await;
    w.click("#signin").await;
    let guilds = w.text("#guilds").await;
    assert!(guilds.contains(A) && !guilds.contains(B), "{guilds}");
    w.goto(&format!("/ui/g/{B}")).await;
    assert_eq!(w.heading().await, "Forbidden");
    assert!(w
        .text("#error-message")
        .await
        .contains("not scoped to this guild"));
    w.shot("forbidden").await;
    let history = w
        .service
        .history(&guildconf::HistoryRequest {
            guild_id: Some(super::gid(B)),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .expect("B's history");
    let denied = &history.entries[0].body;
    assert_eq!(denied.operation.as_str(), "permission.denied");
    assert_eq!(denied.detail["outcome"], "blocked");
    assert_eq!(denied.detail["target"]["id"], viewer.info.id.as_str());
    assert_eq!(denied.detail["data"]["permission"], "history.read");
    assert!(denied.context["user_agent"]
        .as_str()
        .is_some_and(|ua| ua.contains("Chrome")));
    w.written
}

contract!(a_person_walks_the_audit_pages_in_chromium);

async fn a_person_walks_the_audit_pages_in_chromium(backend: Backend, test_name: &str) {
    let served = Served::start(backend, test_name).await;
    story(&served.service).await;
    let auditor = token(&served.service, TokenRole::Auditor, &[], "audit-desk").await;
    let viewer = token(&served.service, TokenRole::Viewer, &[A], "viewer-A").await;
    let driver = Driver::start().await;
    let client = driver.session().await;
    let walk_it = Walk {
        client: client.clone(),
        origin: served.origin.clone(),
        service: served.service.clone(),
        shots: screenshot_dir(),
        prefix: backend.test_prefix().to_owned(),
        written: Vec::new(),
    };
    // The walk runs as its own task so that the browser is closed even
    // when a step fails, and within a time limit so that it fails rather
    // than hangs.
    let outcome =
        tokio::time::timeout(WALK_LIMIT, tokio::spawn(walk(walk_it, auditor, viewer))).await;
    let _ = client.close().await;
    driver.stop().await;
    let written = match outcome {
        Err(_) => panic!("the walk took longer than {WALK_LIMIT:?}"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("the walk did not finish: {e}"),
        Ok(Ok(written)) => written,
    };
    assert_eq!(written.len(), 11, "one screenshot per page visited");
    for path in &written {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or_default();
        assert!(size > 1000, "{} is missing or empty", path.display());
    }
    println!(
        "{} screenshots in {}",
        written.len(),
        screenshot_dir().display()
    );
}
