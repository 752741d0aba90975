//! The audit routes: history with every filter and Link pagination that
//! walks every page, diff, verify, stats, and the NDJSON export, whose bytes
//! are those of `guildconf export` on the same database.

use guildconf_domain::TokenRole;
use guildconf_tests::{contract, Backend};
use reqwest::Method;
use serde_json::{json, Value};

use guildconf::http::HttpOptions;

use super::{Api, G, OTHER};

/// Guild G with a create, `n` updates by the editor (alternating paths), and
/// one event; guild OTHER with a create.
async fn story(api: &Api, editor: &str, n: usize) {
    api.create(G, editor, &json!({})).await.status(201);
    for i in 0..n {
        let body = if i % 2 == 0 {
            json!({"set": {"onboarding.welcome_message": format!("hello {i}")}})
        } else {
            json!({"set": {"features.beta": i % 4 == 1}})
        };
        api.send(
            Method::PATCH,
            &format!("/api/v1/guilds/{G}/config"),
            Some(editor),
            &[],
            Some(&body),
        )
        .await
        .status(200);
    }
    api.send(
        Method::POST,
        &format!("/api/v1/guilds/{G}/events"),
        Some(editor),
        &[],
        Some(&json!({"action": "member.role_added", "outcome": "failed",
                     "target": {"type": "member", "id": "42"}, "data": {"role_id": "555"}})),
    )
    .await
    .status(200);
    api.create(OTHER, editor, &json!({})).await.status(201);
}

/// The `<…>` of a `Link: <…>; rel="next"` header.
fn next_link(link: &str) -> String {
    let start = link.find('<').expect("a link target") + 1;
    let end = link.find('>').expect("a link target");
    assert!(link.ends_with("rel=\"next\""), "{link}");
    link[start..end].to_owned()
}

fn seqs(page: &Value) -> Vec<u64> {
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect()
}

async fn history_filters_and_link_pagination_walk_every_page(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "ops").await;
    story(&api, &editor, 13).await;
    let all = api.entries(G).await.len() as u64;
    assert_eq!(all, 15);

    // Follow Link: rel="next" from the first page to the last.
    let mut path = format!("/api/v1/guilds/{G}/history?limit=4");
    let mut walked = Vec::new();
    let mut pages = 0;
    loop {
        let page = api.get(&path, &editor).await.status(200);
        pages += 1;
        let body = page.json();
        walked.extend(seqs(&body));
        match page.header("link") {
            Some(link) => {
                assert_eq!(
                    body["next_cursor"].as_str().map(|c| link.contains(c)),
                    Some(true),
                    "the Link header carries next_cursor"
                );
                path = next_link(&link);
                assert!(path.contains("limit=4"), "the query is kept: {path}");
            }
            None => {
                assert!(body["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(
        walked,
        (1..=all).rev().collect::<Vec<_>>(),
        "every entry once, newest first"
    );

    // Every filter of the command line.
    let count = |query: &'static str| {
        let api = &api;
        let editor = editor.clone();
        async move {
            let page = api
                .get(
                    &format!("/api/v1/guilds/{G}/history?limit=100&{query}"),
                    &editor,
                )
                .await
                .status(200)
                .json();
            seqs(&page).len()
        }
    };
    assert_eq!(count("operation=update").await, 13);
    assert_eq!(count("operation=create").await, 1);
    assert_eq!(
        count("path=features.beta").await,
        1 + 6,
        "the create and six sets"
    );
    assert_eq!(
        count("path=%2Ffeatures%2Fbeta").await,
        7,
        "a JSON Pointer too"
    );
    assert_eq!(count("family=member").await, 1);
    assert_eq!(count("family=config").await, 14);
    assert_eq!(count("outcome=failed").await, 1);
    assert_eq!(count("target_type=member&target_id=42").await, 1);
    assert_eq!(count("target_id=43").await, 0);
    assert_eq!(count("actor=ops").await, 15);
    assert_eq!(count("actor=someone").await, 0);
    let recent = count("since=2026-01-01T00:00:05Z").await;
    assert!(
        (1..15).contains(&recent),
        "since cuts off the oldest: {recent}"
    );
    assert_eq!(count("until=2000-01-01T00:00:00Z").await, 0);
    assert_eq!(
        count("since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z").await,
        15
    );
    // Bad filters are 400 (malformed) or 422 (refused), naming the
    // parameter.
    for (query, status, path) in [
        ("limit=0", 400, "/limit"),
        ("limit=1001", 400, "/limit"),
        ("limit=x", 400, "/limit"),
        ("outcome=maybe", 400, "/outcome"),
        ("family=Bad!", 400, "/family"),
        ("since=soon", 400, "/since"),
        ("operation=nosuch", 422, "/operation"),
        ("cursor=bogus", 422, "/cursor"),
        ("path=a..b", 422, "/path"),
        (
            "since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z",
            422,
            "/until",
        ),
    ] {
        let p = api
            .get(&format!("/api/v1/guilds/{G}/history?{query}"), &editor)
            .await
            .problem(status, "invalid_input");
        assert_eq!(p["errors"][0]["path"], path, "{query}: {p}");
    }
    // A cursor belongs to its query.
    let first = api
        .get(&format!("/api/v1/guilds/{G}/history?limit=2"), &editor)
        .await
        .json();
    let cursor = first["next_cursor"].as_str().expect("a cursor");
    api.get(
        &format!("/api/v1/guilds/{G}/history?limit=2&operation=update&cursor={cursor}"),
        &editor,
    )
    .await
    .problem(422, "invalid_input");
    api.stop().await;
}

async fn links_keep_the_prefix_a_bot_mounts_the_api_under(backend: Backend, name: &str) {
    let api = Api::start_under(backend, name, HttpOptions::default(), "/bot/guildconf").await;
    let editor = api.token(TokenRole::Editor, &[], "ops").await;
    story(&api, &editor, 3).await;
    let first = api
        .get(&format!("/api/v1/guilds/{G}/history?limit=2"), &editor)
        .await
        .status(200);
    let next = next_link(&first.header("link").expect("a next page"));
    assert!(
        next.starts_with(&format!("/bot/guildconf/api/v1/guilds/{G}/history?")),
        "{next}"
    );
    // The link is the path the client used: followed from the server root.
    let root = api.base.trim_end_matches("/bot/guildconf");
    let page = api
        .client
        .get(format!("{root}{next}"))
        .bearer_auth(&editor)
        .send()
        .await
        .expect("answers");
    assert_eq!(page.status().as_u16(), 200);
    let page: Value = page.json().await.expect("JSON");
    assert_eq!(seqs(&page), vec![3, 2]);
    api.stop().await;
}

async fn diff_verify_and_stats(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "ops").await;
    let auditor = api.token(TokenRole::Auditor, &[], "audit").await;
    let scoped_auditor = api.token(TokenRole::Auditor, &[G], "audit-g").await;
    story(&api, &editor, 2).await;

    let diff = api
        .get(&format!("/api/v1/guilds/{G}/diff?from=1&to=2"), &editor)
        .await
        .status(200)
        .json();
    assert_eq!(
        (diff["from"].as_u64(), diff["to"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(diff["changes"][0]["path"], "/onboarding/welcome_message");
    api.get(&format!("/api/v1/guilds/{G}/diff?from=1&to=9"), &editor)
        .await
        .problem(404, "not_found");
    let missing = api
        .get(&format!("/api/v1/guilds/{G}/diff?from=1"), &editor)
        .await
        .problem(400, "invalid_input");
    assert_eq!(missing["errors"][0]["path"], "/to");

    let all = api.get("/api/v1/verify", &auditor).await.status(200).json();
    assert_eq!(all["ok"], true);
    assert_eq!(all["guilds_checked"], 2);
    let one = api
        .get(&format!("/api/v1/verify?guild={G}"), &scoped_auditor)
        .await
        .status(200)
        .json();
    assert_eq!(
        (one["ok"].as_bool(), one["guilds_checked"].as_u64()),
        (Some(true), Some(1))
    );
    api.get("/api/v1/verify", &editor)
        .await
        .problem(403, "forbidden");
    api.get("/api/v1/verify?guild=42", &auditor)
        .await
        .problem(404, "not_found");
    // A chain that does not verify is a 200 with ok: false.
    api.db.drop_triggers().await;
    api.db
        .exec(&format!(
            "UPDATE audit_entries SET entry_hash = '{}' WHERE guild_id = {G} AND seq = 2",
            "0".repeat(64)
        ))
        .await
        .expect("tampering works");
    let broken = api.get("/api/v1/verify", &auditor).await.status(200).json();
    assert_eq!(broken["ok"], false);
    assert_eq!(broken["problems"][0]["guild_id"], G);

    let by_op = api
        .get("/api/v1/stats?by=operation", &auditor)
        .await
        .status(200)
        .json();
    let rows: Vec<(String, u64)> = by_op["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or_default().to_owned(),
                r["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("create".to_owned(), 2),
            ("member.role_added".to_owned(), 1),
            // The scoped auditor's token, created in G's chain.
            ("token.created".to_owned(), 1),
            ("update".to_owned(), 2),
        ]
    );
    let by_outcome = api
        .get(
            &format!("/api/v1/stats?by=outcome&guild={G}"),
            &scoped_auditor,
        )
        .await
        .status(200)
        .json();
    assert_eq!(
        by_outcome["rows"],
        json!([{"key": "failed", "count": 1}, {"key": "success", "count": 4}])
    );
    api.get("/api/v1/stats", &auditor)
        .await
        .problem(400, "invalid_input");
    api.get("/api/v1/stats?by=colour", &auditor)
        .await
        .problem(400, "invalid_input");
    api.get(
        "/api/v1/stats?by=day&since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z",
        &auditor,
    )
    .await
    .problem(422, "invalid_input");
    api.get(&format!("/api/v1/stats?by=day&guild={G}"), &editor)
        .await
        .problem(403, "forbidden");
    api.stop().await;
}

/// `guildconf export ARGS…` on the test database: its stdout bytes.
fn cli_export(api: &Api, args: &[&str]) -> Vec<u8> {
    let all: Vec<&str> = std::iter::once("export")
        .chain(args.iter().copied())
        .collect();
    super::guildconf(&api.db, &all)
}

async fn export_streams_the_bytes_of_guildconf_export(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "ops").await;
    let auditor = api.token(TokenRole::Auditor, &[], "audit").await;
    let scoped = api.token(TokenRole::Auditor, &[G], "audit-g").await;
    story(&api, &editor, 30).await;

    let all = api.get("/api/v1/export", &auditor).await.status(200);
    assert_eq!(
        all.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    let cli = cli_export(&api, &[]);
    assert!(!cli.is_empty());
    assert_eq!(all.bytes, cli, "byte for byte the CLI's export");
    let lines = all
        .bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(
        lines,
        api.entries(G).await.len() + api.entries(OTHER).await.len()
    );

    let one = api
        .get(&format!("/api/v1/export?guild={G}"), &scoped)
        .await
        .status(200);
    assert_eq!(one.bytes, cli_export(&api, &["--guild", G]));
    let since = "2026-01-01T00:00:20Z";
    let later = api
        .get(&format!("/api/v1/export?since={since}"), &auditor)
        .await
        .status(200);
    assert_eq!(later.bytes, cli_export(&api, &["--since", since]));
    assert!(later.bytes.len() < all.bytes.len());
    api.get("/api/v1/export?guild=42", &auditor)
        .await
        .problem(404, "not_found");
    api.get("/api/v1/export?guild=nope", &auditor)
        .await
        .problem(400, "invalid_input");
    api.stop().await;
}

contract! {
    history_filters_and_link_pagination_walk_every_page,
    links_keep_the_prefix_a_bot_mounts_the_api_under,
    diff_verify_and_stats,
    export_streams_the_bytes_of_guildconf_export,
}
