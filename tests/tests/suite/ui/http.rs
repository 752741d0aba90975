//! The pages over HTTP, without a browser: the security headers of every
//! response, the cookie's flags, CSRF refusals that change nothing, escaping
//! of every value a user wrote, the scope rule and its chained refusals, the
//! filters and the keyset paging of the log, and bad addresses.

use guildconf::ui::CONTENT_SECURITY_POLICY;
use guildconf::FieldEdit;
use guildconf_domain::TokenRole;
use guildconf_tests::{contract, Backend, Sqlite};

use super::{
    alice, gid, story, token, Http, Reply, Served, A, B, EVIL_LABEL, EVIL_MESSAGE, EVIL_REASON,
    EVIL_TARGET, HOOK,
};

/// The story served, and a signed-in client for a token of `role` over
/// `guilds`.
async fn signed_in(name: &str, role: TokenRole, guilds: &[&str]) -> (Served, Http) {
    let served = Served::start(&Sqlite, name).await;
    story(&served.service).await;
    let issued = token(&served.service, role, guilds, "desk").await;
    let mut http = served.client();
    let reply = http.sign_in(&issued.secret).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(http.signed_in());
    (served, http)
}

/// The seqs of the log rows (or entry links) of a page, in page order.
fn seqs(page: &Reply) -> Vec<u64> {
    page.body
        .split("class=\"seq\" href=\"")
        .skip(1)
        .filter_map(|rest| {
            let link = &rest[..rest.find('"')?];
            link.rsplit('/').next()?.parse().ok()
        })
        .collect()
}

/// Text with the five entities askama writes decoded.
fn unescape(html: &str) -> String {
    html.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
}

/// The href of the element with `id`, entities decoded.
fn href(page: &Reply, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\" href=\"");
    let at = page.body.find(&marker)? + marker.len();
    let rest = &page.body[at..];
    Some(unescape(&rest[..rest.find('"')?]))
}

#[track_caller]
fn assert_security_headers(reply: &Reply, what: &str) {
    assert_eq!(
        reply.header("content-security-policy"),
        Some(CONTENT_SECURITY_POLICY),
        "{what}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let (served, mut http) = signed_in("ui_headers", TokenRole::Viewer, &[A]).await;
    // The policy itself: nothing but this origin, no script at all, no
    // framing, forms only to this origin.
    for part in [
        "default-src 'self'",
        "script-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(CONTENT_SECURITY_POLICY.contains(part), "{part}");
    }
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    let pages = [
        ("/ui", 200),
        (&format!("/ui/g/{A}") as &str, 200),
        (&format!("/ui/g/{A}/entries/1"), 200),
        (&format!("/ui/g/{A}/config"), 200),
        (&format!("/ui/g/{B}"), 403),
        ("/ui/g/not-a-guild", 400),
        ("/ui/nowhere", 404),
        ("/ui/static/style.css", 200),
    ];
    for (path, status) in pages {
        let reply = http.get(path).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert_security_headers(&reply, path);
        if path.ends_with(".css") {
            assert_eq!(
                reply.header("content-type"),
                Some("text/css; charset=utf-8")
            );
        } else {
            assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
            assert!(
                !reply.body.contains("<script"),
                "{path} holds a script element"
            );
        }
    }
    // Signed out too: the sign-in page and the redirect to it.
    let mut anonymous = served.client();
    let redirect = anonymous.get(&format!("/ui/g/{A}")).await;
    assert_eq!(redirect.status, 303);
    assert_eq!(redirect.location(), Some("/ui/signin"));
    assert_security_headers(&redirect, "redirect");
    assert_security_headers(&anonymous.get("/ui/signin").await, "sign-in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_httponly_strict_and_scoped_to_the_pages() {
    let served = Served::start(&Sqlite, "ui_cookie").await;
    story(&served.service).await;
    let issued = token(&served.service, TokenRole::Viewer, &[A], "desk").await;
    let mut http = served.client();
    let form = http.get("/ui/signin").await;
    let nonce = form.set_cookie("gc_signin").expect("a nonce cookie");
    assert!(
        nonce.contains("; Path=/ui; HttpOnly; SameSite=Strict"),
        "{nonce}"
    );
    let csrf = form.csrf();

    // A token that does not authenticate sets no session.
    let wrong = http
        .post(
            "/ui/signin",
            &[("token", "gct_not-a-real-token"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.body.contains("unknown, malformed or revoked"));
    assert!(wrong.set_cookie("gc_session").is_none());

    let ok = http
        .post("/ui/signin", &[("token", &issued.secret), ("csrf", &csrf)])
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.location(), Some("/ui"));
    let session = ok.set_cookie("gc_session").expect("a session cookie");
    assert_eq!(
        session,
        format!(
            "gc_session={}; Path=/ui; HttpOnly; SameSite=Strict",
            issued.secret
        ),
        "a browser-session cookie, not Secure unless configured"
    );
    // The nonce is spent.
    assert!(ok
        .set_cookie("gc_signin")
        .is_some_and(|c| c.contains("Max-Age=0")));
    let home = http.get("/ui").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("desk (viewer)"));

    // Signing out forgets the cookie; the pages then send to the form.
    let csrf = home.csrf();
    let out = http.post("/ui/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), Some("/ui/signin"));
    let gone = out.set_cookie("gc_session").expect("a clearing cookie");
    assert!(
        gone.starts_with("gc_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
        "{gone}"
    );
    assert!(!http.signed_in());
    assert_eq!(http.get("/ui").await.status, 303);

    // Mounted elsewhere and served over https: the cookie follows.
    let elsewhere = Served::start_with(&Sqlite, "ui_cookie_secure", |state| {
        state
            .with_base_path("/admin/audit")
            .expect("a valid base path")
            .with_secure_cookies(true)
    })
    .await;
    let issued = token(&elsewhere.service, TokenRole::Viewer, &[], "desk").await;
    let mut http = elsewhere.client();
    let form = http.get("/admin/audit/signin").await;
    assert!(form.body.contains("action=\"/admin/audit/signin\""));
    let csrf = form.csrf();
    let ok = http
        .post(
            "/admin/audit/signin",
            &[("token", &issued.secret), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(ok.location(), Some("/admin/audit"));
    assert_eq!(
        ok.set_cookie("gc_session"),
        Some(format!(
            "gc_session={}; Path=/admin/audit; HttpOnly; SameSite=Strict; Secure",
            issued.secret
        ))
    );
    assert!(http
        .get("/admin/audit")
        .await
        .body
        .contains("href=\"/admin/audit/static/style.css\""));
    // A base path that is not a plain path is refused, naming it.
    for bad in ["ui", "/ui/", "/u i", "/../x", "/a//b", "/\"x"] {
        let err = guildconf::ui::UiState::new(elsewhere.service.clone())
            .with_base_path(bad)
            .expect_err(bad);
        assert!(err.to_string().contains("/base_path"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_their_csrf_token_are_refused_and_change_nothing() {
    let served = Served::start(&Sqlite, "ui_csrf").await;
    story(&served.service).await;
    let viewer = token(&served.service, TokenRole::Viewer, &[A], "viewer").await;
    let auditor = token(&served.service, TokenRole::Auditor, &[], "auditor").await;

    // Sign-in: no form token, a wrong one, one without its nonce cookie,
    // and a session's form token: 403, and no session cookie.
    let mut http = served.client();
    let form = http.get("/ui/signin").await;
    let csrf = form.csrf();
    for fields in [
        vec![("token", viewer.secret.as_str())],
        vec![("token", viewer.secret.as_str()), ("csrf", "AAAA")],
        vec![("token", viewer.secret.as_str()), ("csrf", "not base64 !")],
    ] {
        let reply = http.post("/ui/signin", &fields).await;
        assert_eq!(reply.status, 403, "{fields:?}: {}", reply.body);
        assert!(reply.body.contains("Form refused"));
        assert!(reply.set_cookie("gc_session").is_none());
    }
    let mut no_nonce = served.client();
    let reply = no_nonce
        .post("/ui/signin", &[("token", &viewer.secret), ("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, 403);
    assert!(reply.set_cookie("gc_session").is_none());
    assert!(!http.signed_in());

    // Signed in as the viewer, a verify without its form token, with a
    // wrong one, or with the auditor's session's token: refused before the
    // permission is even looked at, so not even a refusal is recorded.
    assert_eq!(http.sign_in(&viewer.secret).await.status, 303);
    let page = http.get(&format!("/ui/g/{A}")).await;
    let viewer_csrf = page.csrf();
    let mut other = served.client();
    assert_eq!(other.sign_in(&auditor.secret).await.status, 303);
    let auditor_csrf = other.get(&format!("/ui/g/{A}")).await.csrf();
    assert_ne!(viewer_csrf, auditor_csrf);
    let before = served.entries(A).await.len();
    let verify = format!("/ui/g/{A}/verify");
    for fields in [
        vec![],
        vec![("csrf", "AAAA")],
        vec![("csrf", auditor_csrf.as_str())],
    ] {
        let reply = http.post(&verify, &fields).await;
        assert_eq!(reply.status, 403, "{fields:?}");
        assert!(reply.body.contains("Form refused"), "{}", reply.body);
    }
    assert_eq!(served.entries(A).await.len(), before, "nothing recorded");
    // With its own token, the viewer gets to the permission check: refused
    // (viewers do not verify), and that refusal is recorded.
    let reply = http.post(&verify, &[("csrf", &viewer_csrf)]).await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.body.contains("may not verify the chain"),
        "{}",
        reply.body
    );
    assert_eq!(served.entries(A).await.len(), before + 1);

    // The auditor: refused without the token, verified with it.
    let reply = other.post(&verify, &[("csrf", &viewer_csrf)]).await;
    assert_eq!(reply.status, 403);
    assert!(!reply.body.contains("chain-ok"));
    let reply = other.post(&verify, &[("csrf", &auditor_csrf)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("id=\"chain-ok\""), "{}", reply.body);

    // Sign-out without the token keeps the session.
    let reply = http.post("/ui/signout", &[]).await;
    assert_eq!(reply.status, 403);
    assert!(reply.set_cookie("gc_session").is_none());
    assert_eq!(http.get("/ui").await.status, 200);
    assert_eq!(served.entries(A).await.len(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_a_user_wrote_renders_as_text() {
    let (_served, mut http) = signed_in("ui_escaping", TokenRole::Auditor, &[]).await;
    let pages = [
        (
            format!("/ui/g/{A}"),
            vec![EVIL_LABEL, EVIL_REASON, EVIL_TARGET],
        ),
        (
            format!("/ui/g/{A}/entries/3"),
            vec![EVIL_LABEL, EVIL_REASON, EVIL_MESSAGE],
        ),
        (format!("/ui/g/{A}/entries/4"), vec![EVIL_TARGET]),
        (format!("/ui/g/{A}/config?version=3"), vec![EVIL_MESSAGE]),
        // Filters are echoed back into the form.
        (
            format!("/ui/g/{A}?actor=%22%3E%3Cscript%3E"),
            vec!["\"><script>"],
        ),
    ];
    for (path, values) in &pages {
        let reply = http.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        // No markup a user wrote survives as markup...
        for raw in ["<script", "<img", "</pre><"] {
            assert!(
                !reply.body.contains(raw),
                "{path} holds {raw}:\n{}",
                reply.body
            );
        }
        // ...and each value reads as the text it was.
        let text = unescape(&reply.body);
        for value in values {
            assert!(text.contains(value), "{path}: {value} is not shown as text");
        }
    }
}

contract!(a_token_outside_its_guild_or_role_gets_a_403_recorded_in_that_guilds_chain);

/// A viewer scoped to A: B is not listed, and each page of B is refused
/// with a `permission.denied` event (outcome `blocked`) in B's chain naming
/// the token and the permission; on A its reads pass (and record nothing),
/// and its verify is refused by role, recorded in A's chain.
async fn a_token_outside_its_guild_or_role_gets_a_403_recorded_in_that_guilds_chain(
    backend: Backend,
    test_name: &str,
) {
    let served = Served::start(backend, test_name).await;
    story(&served.service).await;
    let viewer = token(&served.service, TokenRole::Viewer, &[A], "viewer-A").await;
    let mut http = served.client();
    assert_eq!(http.sign_in(&viewer.secret).await.status, 303);

    let home = http.get("/ui").await;
    assert!(home.body.contains(&format!("/ui/g/{A}\"")), "{}", home.body);
    assert!(!home.body.contains(B), "B is listed:\n{}", home.body);

    let a_before = served.entries(A).await.len();
    for path in [
        format!("/ui/g/{A}"),
        format!("/ui/g/{A}/entries/2"),
        format!("/ui/g/{A}/config"),
    ] {
        assert_eq!(http.get(&path).await.status, 200, "{path}");
    }
    assert_eq!(
        served.entries(A).await.len(),
        a_before,
        "reading records nothing"
    );

    let b_before = served.entries(B).await.len();
    let refusals = [
        (format!("/ui/g/{B}"), "history.read"),
        (format!("/ui/g/{B}/entries/1"), "history.read"),
        (format!("/ui/g/{B}/config?version=1"), "config.read"),
    ];
    for (path, permission) in &refusals {
        let reply = http.get(path).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        assert!(
            reply.body.contains("not scoped to this guild"),
            "{}",
            reply.body
        );
        assert!(!reply.body.contains("onboarding"), "no config leaks");
        let entries = served.entries(B).await;
        let denied = entries.last().expect("an entry");
        let body = &denied.body;
        assert_eq!(body.operation.as_str(), "permission.denied", "{path}");
        assert_eq!(body.detail["outcome"], "blocked");
        assert_eq!(body.detail["target"]["type"], "token");
        assert_eq!(body.detail["target"]["id"], viewer.info.id.as_str());
        assert_eq!(body.detail["data"]["permission"], *permission);
        assert_eq!(body.actor.id, "viewer-A");
        assert_eq!(body.actor.kind.as_str(), "integration");
        assert_eq!(body.context["source"], "ui");
        assert_eq!(body.context["ip"], "127.0.0.1");
        assert_eq!(body.context["user_agent"], "guildconf-ui-tests");
        assert_eq!(
            body.context["path"],
            path.split('?').next().unwrap_or_default()
        );
    }
    assert_eq!(served.entries(B).await.len(), b_before + refusals.len());

    // Within its guild, a role it lacks: refused and recorded in A.
    let csrf = http.get(&format!("/ui/g/{A}")).await.csrf();
    let reply = http
        .post(&format!("/ui/g/{A}/verify"), &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.body.contains("its role, viewer, does not allow it"),
        "{}",
        reply.body
    );
    let entries = served.entries(A).await;
    assert_eq!(entries.len(), a_before + 1);
    let last = &entries[entries.len() - 1].body;
    assert_eq!(last.operation.as_str(), "permission.denied");
    assert_eq!(last.detail["data"]["permission"], "audit.verify");

    // The refusals are chained like any entry.
    for g in [A, B] {
        let report = served.service.verify(Some(gid(g))).await.expect("verify");
        assert!(report.ok, "{report:?}");
    }
}

/// The seqs of every log page from `path` on, following the "older" links.
async fn all_pages(http: &mut Http, path: &str) -> Vec<Vec<u64>> {
    let mut pages = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next {
        let page = http.get(&path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        pages.push(seqs(&page));
        next = href(&page, "older");
        assert!(pages.len() < 10, "the older links never end");
    }
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_older_links_page_through_the_log_newest_first() {
    let (served, mut http) = signed_in("ui_filters", TokenRole::Viewer, &[]).await;
    let log = format!("/ui/g/{A}");
    assert_eq!(
        all_pages(&mut http, &log).await,
        vec![vec![6, 5, 4, 3, 2, 1]]
    );
    let times: Vec<String> = served
        .entries(A)
        .await
        .iter()
        .map(|e| e.body.occurred_at.to_string())
        .collect();
    let cases = [
        ("actor=80351110224678913", vec![6, 5, 4]),
        ("actor=mallory-bot", vec![3]),
        ("action=member", vec![4]),
        ("action=permission.denied", vec![5]),
        ("action=config", vec![6, 3, 2, 1]),
        ("action=create", vec![1]),
        ("outcome=blocked", vec![5]),
        ("outcome=success", vec![6, 4, 3, 2, 1]),
        ("path=announcements.webhook_url", vec![2, 1]),
        ("path=%2Ffeatures%2Fbeta", vec![6, 1]),
        ("actor=80351110224678913&outcome=success", vec![6, 4]),
    ];
    for (query, expected) in cases {
        let page = http.get(&format!("{log}?{query}")).await;
        assert_eq!(page.status, 200, "{query}: {}", page.body);
        assert_eq!(seqs(&page), expected, "{query}");
    }
    let since = format!("since={}", times[3]);
    let until = format!("until={}", times[2]);
    assert_eq!(
        seqs(&http.get(&format!("{log}?{since}")).await),
        vec![6, 5, 4]
    );
    assert_eq!(seqs(&http.get(&format!("{log}?{until}")).await), vec![2, 1]);
    assert_eq!(
        seqs(&http.get(&format!("{log}?{since}&until={}", times[5])).await),
        vec![5, 4]
    );
    let day = &times[0][..10];
    assert_eq!(
        seqs(&http.get(&format!("{log}?since={day}")).await).len(),
        6
    );

    // A filter that does not parse: 400, named, with the form kept filled.
    for (query, named) in [
        ("outcome=bogus", "outcome must be one of"),
        ("since=yesterday", "since must be a date"),
        ("action=Not+An+Action", "action must be"),
        ("path=a..b", "/path"),
        ("cursor=garbage", "not a cursor"),
    ] {
        let page = http.get(&format!("{log}?{query}")).await;
        assert_eq!(page.status, 400, "{query}");
        assert!(page.body.contains(named), "{query}: {}", page.body);
        assert!(page.body.contains("id=\"filter-error\""));
        assert!(seqs(&page).is_empty());
    }
    let kept = http
        .get(&format!("{log}?actor=mallory-bot&outcome=bogus"))
        .await;
    assert!(kept.body.contains("value=\"mallory-bot\""), "{}", kept.body);

    // 120 more entries: pages of 50, newest first, each entry once, the
    // filters carried along the older links.
    let meta = alice();
    for i in 0..120 {
        let flip = FieldEdit::new().set("features.beta".parse().expect("path"), i % 2 == 1);
        served
            .service
            .update(gid(A), flip, &meta)
            .await
            .expect("update");
    }
    let pages = all_pages(&mut http, &log).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![50, 50, 26]
    );
    let flat: Vec<u64> = pages.concat();
    assert_eq!(flat, (1..=126).rev().collect::<Vec<_>>());
    let filtered = all_pages(
        &mut http,
        &format!("{log}?actor=80351110224678912&action=update"),
    )
    .await;
    assert_eq!(
        filtered.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![50, 50, 21]
    );
    assert!(filtered.concat().iter().all(|s| *s == 2 || *s > 6));
    // The newest link leads back to the first page with the same filters.
    let first = http.get(&log).await;
    let second = http
        .get(&href(&first, "older").expect("an older link"))
        .await;
    assert_eq!(href(&second, "newest"), Some(format!("{log}?")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_are_named_and_unknown_ones_are_not_found() {
    let (served, mut http) = signed_in("ui_bad_addresses", TokenRole::Auditor, &[]).await;
    for (path, status, named) in [
        ("/ui/g/not-a-guild".to_owned(), 400, "guild id"),
        (
            format!("/ui/g/{A}/entries/0"),
            400,
            "seq must be a positive integer",
        ),
        (
            format!("/ui/g/{A}/entries/x"),
            400,
            "seq must be a positive integer",
        ),
        (format!("/ui/g/{A}/entries/99"), 404, "has no entry 99"),
        (
            format!("/ui/g/{A}/config?version=x"),
            400,
            "version must be a positive integer",
        ),
        (
            format!("/ui/g/{A}/config?version=99"),
            404,
            "has no version 99",
        ),
        (
            "/ui/g/999999999999999999/config".to_owned(),
            404,
            "has no config",
        ),
        ("/ui/g/1/entries/1".to_owned(), 404, "has no entry 1"),
    ] {
        let reply = http.get(&path).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert!(reply.body.contains(named), "{path}: {}", reply.body);
        assert!(
            reply.body.contains("id=\"signout\""),
            "{path}: shown signed in"
        );
    }
    let csrf = http.get("/ui").await.csrf();
    let reply = http
        .post("/ui/g/999999999999999999/verify", &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    let unknown = http.get("/ui/g/999999999999999999").await;
    assert_eq!(unknown.status, 200);
    assert!(unknown.body.contains("No entry matches"));
    // A cookie that is no token, and no cookie: back to the sign-in form.
    let mut stranger = served.client();
    stranger
        .cookies
        .push(("gc_session".into(), "gct_forged".into()));
    for path in ["/ui", "/ui/g/123456789012345678"] {
        let reply = stranger.get(path).await;
        assert_eq!(reply.status, 303, "{path}");
        assert_eq!(reply.location(), Some("/ui/signin"));
    }
    let reply = stranger.post(&format!("/ui/g/{A}/verify"), &[]).await;
    assert_eq!(reply.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_shows_its_diff_with_secrets_redacted_and_the_chain_status() {
    let (served, mut http) = signed_in("ui_entry", TokenRole::Auditor, &[]).await;
    let entry = http.get(&format!("/ui/g/{A}/entries/2")).await;
    assert_eq!(entry.status, 200, "{}", entry.body);
    let text = unescape(&entry.body);
    for shown in [
        "/announcements/webhook_url",
        "\"[redacted]\"",
        "rotate the hook",
        "alice (human 80351110224678912)",
        "update",
        "success",
    ] {
        assert!(text.contains(shown), "{shown} missing:\n{}", entry.body);
    }
    assert!(!entry.body.contains("SECRET-HOOK-VALUE"));
    assert!(entry.body.contains("id=\"chain-ok\""), "{}", entry.body);
    assert!(text.contains("6 entries checked"));
    // An event: its target and data.
    let event = unescape(&http.get(&format!("/ui/g/{A}/entries/4")).await.body);
    assert!(event.contains("member 80351110224678914 (<img src=x onerror=alert('target')>)"));
    assert!(event.contains("\"555555555555555555\""));
    // The config at a version, secret redacted; earlier and later versions.
    let config = http.get(&format!("/ui/g/{A}/config?version=2")).await;
    assert_eq!(config.status, 200);
    let text = unescape(&config.body);
    assert!(
        text.contains("\"webhook_url\": \"[redacted]\""),
        "{}",
        config.body
    );
    assert!(!text.contains(HOOK));
    assert!(config.body.contains("id=\"prev-version\""));
    assert!(config.body.contains("id=\"next-version\""));
    let current = unescape(&http.get(&format!("/ui/g/{A}/config")).await.body);
    assert!(current.contains("config version 4"), "{current}");
    assert!(current.contains("\"beta\": true"));

    // A viewer sees the entry but not the chain status.
    let viewer = token(&served.service, TokenRole::Viewer, &[], "viewer").await;
    let mut other = served.client();
    other.sign_in(&viewer.secret).await;
    let page = other.get(&format!("/ui/g/{A}/entries/2")).await;
    assert!(page.body.contains("id=\"chain-unchecked\""));
    assert!(!page.body.contains("id=\"verify\""));

    // Tampered with in the database, the chain status says so, on the
    // entry page and from the verify button.
    served.db.drop_triggers().await;
    served
        .db
        .exec(&format!(
            "UPDATE audit_entries SET body = REPLACE(body, 'open the doors', 'open the gates') \
             WHERE guild_id = {A} AND seq = 1"
        ))
        .await
        .expect("tampering");
    let broken = http.get(&format!("/ui/g/{A}/entries/2")).await;
    assert!(
        broken.body.contains("id=\"chain-broken\""),
        "{}",
        broken.body
    );
    assert!(unescape(&broken.body).contains("seq 1:"));
    let csrf = broken.csrf();
    let verified = http
        .post(&format!("/ui/g/{A}/verify"), &[("csrf", &csrf)])
        .await;
    assert_eq!(verified.status, 200);
    assert!(verified.body.contains("id=\"chain-broken\""));
    assert!(verified.body.contains("entry_hash"), "{}", verified.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_signed_out() {
    let served = Served::start(&Sqlite, "ui_revoked").await;
    story(&served.service).await;
    let here = token(&served.service, TokenRole::Viewer, &[], "here").await;
    let there = token(&served.service, TokenRole::Viewer, &[], "there").await;
    let mut first = served.client();
    let mut second = served.client();
    assert_eq!(first.sign_in(&here.secret).await.status, 303);
    assert_eq!(second.sign_in(&there.secret).await.status, 303);
    assert_eq!(first.get(&format!("/ui/g/{A}")).await.status, 200);
    assert_eq!(second.get(&format!("/ui/g/{A}")).await.status, 200);

    // Revoked through the pages' own service: out at the next request.
    served
        .service
        .revoke_token(&here.info.id, &alice())
        .await
        .expect("revoked");
    let reply = first.get(&format!("/ui/g/{A}")).await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.location(), Some("/ui/signin"));
    // Signing in with it again is refused.
    let again = first.sign_in(&here.secret).await;
    assert_eq!(again.status, 401);

    // Revoked by another process (another service over the database, as
    // `guildconf token revoke` is): out within TOKEN_RECHECK_AFTER.
    let elsewhere = served.db.service().await;
    elsewhere
        .revoke_token(&there.info.id, &alice())
        .await
        .expect("revoked elsewhere");
    tokio::time::sleep(guildconf::TOKEN_RECHECK_AFTER + std::time::Duration::from_millis(200))
        .await;
    assert_eq!(second.get(&format!("/ui/g/{A}")).await.status, 303);
}
