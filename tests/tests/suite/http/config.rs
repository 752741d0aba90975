//! The config routes: reads with ETag and 304, PATCH and PUT with their
//! preconditions (412, 428), revert, delete, events, idempotency, bad input
//! as problem+json with every violation, and the framework's own refusals
//! (unknown route, wrong method, oversized body) in the same shape.

use guildconf_domain::TokenRole;
use guildconf_tests::{contract, Backend};
use reqwest::Method;
use serde_json::{json, Value};

use super::{assert_verifies, Api, G};

fn config(guild: &str) -> String {
    format!("/api/v1/guilds/{guild}/config")
}

async fn reads_answer_the_version_as_etag_and_304_when_it_matches(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "dashboard").await;
    let created = api
        .create(
            G,
            &editor,
            &json!({"announcements": {"webhook_url": "https://hooks.example/SECRET"}}),
        )
        .await
        .status(201);
    assert_eq!(created.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(created.json()["outcome"], "created");

    let shown = api.get(&config(G), &editor).await.status(200);
    assert_eq!(shown.header("etag").as_deref(), Some("\"1\""));
    let body = shown.json();
    assert_eq!(body["guild_id"], G);
    assert_eq!(body["version"], 1);
    assert_eq!(
        body["document"]["announcements"]["webhook_url"], "[redacted]",
        "secrets are always redacted over HTTP"
    );
    assert!(!String::from_utf8_lossy(&shown.bytes).contains("SECRET"));

    for tag in ["\"1\"", "W/\"1\"", "\"7\", \"1\"", "*"] {
        let not_modified = api
            .send(
                Method::GET,
                &config(G),
                Some(&editor),
                &[("if-none-match", tag)],
                None,
            )
            .await
            .status(304);
        assert_eq!(
            not_modified.header("etag").as_deref(),
            Some("\"1\""),
            "{tag}"
        );
        assert!(not_modified.bytes.is_empty());
    }
    api.send(
        Method::GET,
        &config(G),
        Some(&editor),
        &[("if-none-match", "\"2\"")],
        None,
    )
    .await
    .status(200);

    // A write through the API is read back at once (the read cache is
    // written through), with the new tag.
    api.send(
        Method::PATCH,
        &config(G),
        Some(&editor),
        &[],
        Some(&json!({"set": {"onboarding.enabled": true, "onboarding.welcome_channel": "555"}})),
    )
    .await
    .status(200);
    let now = api.get(&config(G), &editor).await.status(200);
    assert_eq!(now.header("etag").as_deref(), Some("\"2\""));
    assert_eq!(now.json()["document"]["onboarding"]["enabled"], true);

    // Older versions and times.
    let v1 = api
        .get(&format!("{}?version=1", config(G)), &editor)
        .await
        .status(200);
    assert_eq!(v1.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(v1.json()["document"]["onboarding"]["enabled"], false);
    let at = api
        .get(&format!("{}?at=2030-01-01T00:00:00Z", config(G)), &editor)
        .await
        .status(200);
    assert_eq!(at.json()["version"], 2);
    api.get(&format!("{}?at=2000-01-01T00:00:00Z", config(G)), &editor)
        .await
        .problem(404, "not_found");
    api.get(&format!("{}?version=9", config(G)), &editor)
        .await
        .problem(404, "not_found");
    let both = api
        .get(
            &format!("{}?version=1&at=2030-01-01T00:00:00Z", config(G)),
            &editor,
        )
        .await
        .problem(422, "invalid_input");
    assert_eq!(both["errors"][0]["path"], "/version");
    api.get(&format!("{}?version=x", config(G)), &editor)
        .await
        .problem(400, "invalid_input");
    api.get(&format!("{}?at=yesterday", config(G)), &editor)
        .await
        .problem(400, "invalid_input");
    // Unknown and malformed guilds.
    api.get(&config("42"), &editor)
        .await
        .problem(404, "not_found");
    let bad = api
        .get(&config("0x1"), &editor)
        .await
        .problem(400, "invalid_input");
    assert_eq!(bad["errors"][0]["path"], "/guild_id");

    // The list names the guild.
    let list = api.get("/api/v1/guilds", &editor).await.status(200).json();
    assert_eq!(list["guilds"][0]["guild_id"], G);
    assert_eq!(list["guilds"][0]["version"], 2);
    assert_eq!(list["guilds"][0]["actor"]["label"], "dashboard");
    api.stop().await;
}

async fn writes_honour_if_match_and_put_requires_a_precondition(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "dashboard").await;
    api.create(G, &editor, &json!({})).await.status(201);
    // PUT on an existing config with If-None-Match: * is 412, nothing stored.
    api.create(G, &editor, &json!({"features": {"beta": true}}))
        .await
        .problem(412, "precondition_failed");

    let patch = |tag: Option<&'static str>, body: Value| {
        let api = &api;
        let editor = editor.clone();
        async move {
            let headers: Vec<(&str, &str)> = tag.map(|t| ("if-match", t)).into_iter().collect();
            api.send(
                Method::PATCH,
                &config(G),
                Some(&editor),
                &headers,
                Some(&body),
            )
            .await
        }
    };
    let v2 = patch(None, json!({"set": {"features.beta": true}}))
        .await
        .status(200);
    assert_eq!(v2.header("etag").as_deref(), Some("\"2\""));
    assert_eq!(v2.json()["outcome"], "updated");
    assert_eq!(v2.json()["version"], 2);
    // A stale If-Match: 412, and nothing is written.
    let before = api.entries(G).await.len();
    patch(Some("\"1\""), json!({"set": {"features.beta": false}}))
        .await
        .problem(412, "precondition_failed");
    patch(Some("W/\"2\""), json!({"set": {"features.beta": false}}))
        .await
        .problem(412, "precondition_failed");
    assert_eq!(
        api.entries(G).await.len(),
        before,
        "a refused write stores nothing"
    );
    let v3 = patch(
        Some("\"2\""),
        json!({"set": {"features.beta": false}, "unset": []}),
    )
    .await
    .status(200);
    assert_eq!(v3.header("etag").as_deref(), Some("\"3\""));
    // A list of tags: whichever is current holds.
    patch(
        Some("\"1\", \"3\""),
        json!({"set": {"onboarding.welcome_message": "hi"}}),
    )
    .await
    .status(200);
    // Unchanged: 200, the same version, no entry.
    let same = patch(
        Some("*"),
        json!({"set": {"onboarding.welcome_message": "hi"}}),
    )
    .await
    .status(200)
    .json();
    assert_eq!(same["outcome"], "unchanged");
    assert_eq!(same["version"], 4);

    // PUT: no precondition is 428; a stale one 412; the right one replaces.
    let mut document = api.get(&config(G), &editor).await.json()["document"].clone();
    document["features"]["beta"] = json!(true);
    api.send(Method::PUT, &config(G), Some(&editor), &[], Some(&document))
        .await
        .problem(428, "precondition_required");
    api.send(
        Method::PUT,
        &config(G),
        Some(&editor),
        &[("if-match", "\"3\"")],
        Some(&document),
    )
    .await
    .problem(412, "precondition_failed");
    api.send(
        Method::PUT,
        &config(G),
        Some(&editor),
        &[("if-match", "\"4\""), ("if-none-match", "*")],
        Some(&document),
    )
    .await
    .problem(422, "invalid_input");
    let put = api
        .send(
            Method::PUT,
            &config(G),
            Some(&editor),
            &[("if-match", "\"4\"")],
            Some(&document),
        )
        .await
        .status(200);
    assert_eq!(put.header("etag").as_deref(), Some("\"5\""));
    assert_eq!(put.json()["outcome"], "updated");

    // Invalid input: 400 with every violation, nothing stored.
    let before = api.entries(G).await.len();
    let bad = patch(
        None,
        json!({"set": {"onboarding.welcome_channel": "not a snowflake", "nope.field": 1}}),
    )
    .await
    .problem(422, "invalid_input");
    let paths: Vec<&str> = bad["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(paths.len() >= 2, "every violation is listed: {bad}");
    patch(None, json!({})).await.problem(422, "invalid_input");
    // A body without the documented shape is 400.
    patch(None, json!({"sett": {}}))
        .await
        .problem(400, "invalid_input");
    patch(None, json!({"unset": "features.beta"}))
        .await
        .problem(400, "invalid_input");
    let garbage = api
        .client
        .patch(format!("{}{}", api.base, config(G)))
        .bearer_auth(&editor)
        .body("{not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(garbage.status().as_u16(), 400);
    api.send(
        Method::PATCH,
        &config(G),
        Some(&editor),
        &[("if-match", "3")],
        Some(&json!({"set": {"features.beta": false}})),
    )
    .await
    .problem(412, "precondition_failed");
    assert_eq!(
        api.entries(G).await.len(),
        before,
        "bad input stores nothing"
    );

    // A missing config: PATCH 404; If-Match: * on it 412.
    api.send(
        Method::PATCH,
        &config("42"),
        Some(&editor),
        &[],
        Some(&json!({"set": {"features.beta": true}})),
    )
    .await
    .problem(404, "not_found");
    api.send(
        Method::PATCH,
        &config("42"),
        Some(&editor),
        &[("if-match", "*")],
        Some(&json!({"set": {"features.beta": true}})),
    )
    .await
    .problem(412, "precondition_failed");
    assert_verifies(&api).await;
    api.stop().await;
}

async fn revert_delete_and_events(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "dashboard").await;
    api.create(G, &editor, &json!({})).await.status(201);
    api.send(
        Method::PATCH,
        &config(G),
        Some(&editor),
        &[],
        Some(&json!({"set": {"features.beta": true}})),
    )
    .await
    .status(200);
    let revert = format!("/api/v1/guilds/{G}/revert");
    let reverted = api
        .send(
            Method::POST,
            &revert,
            Some(&editor),
            &[],
            Some(&json!({"to": 1, "reason": "undo"})),
        )
        .await
        .status(200);
    assert_eq!(reverted.json()["outcome"], "reverted");
    assert_eq!(reverted.header("etag").as_deref(), Some("\"3\""));
    api.send(
        Method::POST,
        &revert,
        Some(&editor),
        &[],
        Some(&json!({"to": 9})),
    )
    .await
    .problem(404, "not_found");
    api.send(
        Method::POST,
        &revert,
        Some(&editor),
        &[("if-match", "\"1\"")],
        Some(&json!({"to": 2})),
    )
    .await
    .problem(412, "precondition_failed");
    api.send(
        Method::POST,
        &revert,
        Some(&editor),
        &[],
        Some(&json!({"to": "two"})),
    )
    .await
    .problem(400, "invalid_input");

    // A body outside the document is 400, before any precondition (found
    // by the fuzzer: it was a 412).
    api.send(
        Method::POST,
        &revert,
        Some(&editor),
        &[("if-match", "\"99\"")],
        Some(&json!({"to": 0})),
    )
    .await
    .problem(400, "invalid_input");
    // Events: recorded in the chain; bad ones refused with their paths.
    let events = format!("/api/v1/guilds/{G}/events");
    let recorded = api
        .send(
            Method::POST,
            &events,
            Some(&editor),
            &[],
            Some(&json!({"action": "member.role_added", "outcome": "success",
                         "target": {"type": "member", "id": "42", "label": "Bob"},
                         "data": {"role_id": "555"}})),
        )
        .await
        .status(200)
        .json();
    assert_eq!(recorded["outcome"], "recorded");
    assert_eq!(recorded["version"], 3);
    let last = api.entries(G).await.pop().expect("an entry");
    assert_eq!(last["operation"], "member.role_added");
    assert_eq!(last["detail"]["target"]["label"], "Bob");
    let before = api.entries(G).await.len();
    let bad = api
        .send(
            Method::POST,
            &events,
            Some(&editor),
            &[],
            Some(&json!({"action": "member.role_added", "outcome": "blocked",
                         "target": {"type": "member", "id": "42"}, "data": {"role_id": "x"}})),
        )
        .await
        .problem(422, "invalid_input");
    let paths: Vec<&str> = bad["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/outcome") && paths.contains(&"/data/role_id"),
        "{bad}"
    );
    api.send(Method::POST, &events, Some(&editor), &[], Some(&json!({"action": "nope.nope", "outcome": "success", "target": {"type": "member", "id": "1"}})))
        .await
        .problem(422, "invalid_input");
    api.send(
        Method::POST,
        &events,
        Some(&editor),
        &[],
        Some(
            &json!({"action": "member.role_added", "outcome": "sometimes",
                     "target": {"type": "member", "id": "1"}}),
        ),
    )
    .await
    .problem(400, "invalid_input");
    assert_eq!(api.entries(G).await.len(), before);

    // Delete: 200, then the config is gone (404) and stays in history.
    let deleted = api
        .send(
            Method::DELETE,
            &config(G),
            Some(&editor),
            &[("x-reason", "closing")],
            None,
        )
        .await
        .status(200);
    assert_eq!(deleted.json()["outcome"], "deleted");
    api.get(&config(G), &editor).await.problem(404, "not_found");
    api.send(Method::DELETE, &config(G), Some(&editor), &[], None)
        .await
        .problem(404, "not_found");
    let last = api.entries(G).await.pop().expect("an entry");
    assert_eq!(
        (last["operation"].as_str(), last["reason"].as_str()),
        (Some("delete"), Some("closing"))
    );
    // Created again over PUT with If-None-Match: *.
    api.create(G, &editor, &json!({})).await.status(201);
    assert_verifies(&api).await;
    api.stop().await;
}

async fn an_idempotency_key_replays_and_refuses_reuse(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "dashboard").await;
    api.create(G, &editor, &json!({})).await.status(201);
    let body = json!({"set": {"features.beta": true}});
    let key = [("idempotency-key", "req-1")];
    let first = api
        .send(Method::PATCH, &config(G), Some(&editor), &key, Some(&body))
        .await
        .status(200)
        .json();
    assert!(first.get("replayed").is_none());
    let again = api
        .send(Method::PATCH, &config(G), Some(&editor), &key, Some(&body))
        .await
        .status(200)
        .json();
    assert_eq!(again["replayed"], true);
    assert_eq!(again["entry_hash"], first["entry_hash"]);
    api.send(
        Method::PATCH,
        &config(G),
        Some(&editor),
        &key,
        Some(&json!({"set": {"features.beta": false}})),
    )
    .await
    .problem(409, "conflict");
    let entries = api.entries(G).await;
    assert_eq!(entries.len(), 2, "one create, one update");
    assert_eq!(entries[1]["request_id"], "req-1");
    api.stop().await;
}

async fn framework_refusals_are_problems_too(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "dashboard").await;
    api.create(G, &editor, &json!({})).await.status(201);
    api.get("/api/v1/nothing-here", &editor)
        .await
        .problem(404, "not_found");
    let wrong = api
        .send(Method::POST, &config(G), Some(&editor), &[], None)
        .await;
    wrong.problem(405, "method_not_allowed");
    assert!(
        wrong.header("allow").is_some(),
        "405 names the allowed methods"
    );
    // A body announced over the limit (1 MiB) is 413 before any of it is
    // read: the server answers after the headers and a first few bytes.
    let answer = raw_request(
        &api,
        &format!(
            "PATCH {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {editor}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"set\":",
            config(G),
            2 * 1024 * 1024
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains(r#""code":"invalid_input""#), "{answer}");
    // The OpenAPI document is public.
    let doc = api
        .client
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .expect("answers");
    assert_eq!(doc.status().as_u16(), 200);
    let doc: Value = doc.json().await.expect("JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    api.stop().await;
}

/// Writes `head` on a new connection and reads the answer until the server
/// closes it (or 5 s pass): for a request no client library would send.
async fn raw_request(api: &Api, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = api.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream.write_all(head.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

contract! {
    reads_answer_the_version_as_etag_and_304_when_it_matches,
    writes_honour_if_match_and_put_requires_a_precondition,
    revert_delete_and_events,
    an_idempotency_key_replays_and_refuses_reuse,
    framework_refusals_are_problems_too,
}
