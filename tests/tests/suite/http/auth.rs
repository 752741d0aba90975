//! Tokens over HTTP: 401 without a valid token, 403 outside a token's role
//! or guilds (each one on a guild a `permission.denied` entry of that
//! guild's chain, by the token's actor), and the attribution of writes: the
//! token's actor and the request's ip, user agent and request id.

use guildconf_domain::TokenRole;
use guildconf_tests::{contract, Backend};
use reqwest::Method;
use serde_json::{json, Value};

use super::{admin, assert_verifies, Api, G, OTHER};

fn config(guild: &str) -> String {
    format!("/api/v1/guilds/{guild}/config")
}

async fn no_token_or_an_unknown_one_is_401(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "dashboard").await;
    api.create(G, &editor, &json!({})).await.status(201);
    let before = api.entries(G).await.len();
    for path in [
        "/api/v1/guilds".to_owned(),
        config(G),
        format!("/api/v1/guilds/{G}/history"),
        "/api/v1/export".to_owned(),
    ] {
        let none = api.send(Method::GET, &path, None, &[], None).await;
        none.problem(401, "unauthorized");
        assert!(
            none.header("www-authenticate")
                .is_some_and(|c| c.starts_with("Bearer")),
            "{path}: 401 carries a Bearer challenge"
        );
        let unknown = api
            .get(&path, "gct_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await;
        unknown.problem(401, "unauthorized");
        assert!(unknown
            .header("www-authenticate")
            .is_some_and(|c| c.contains("invalid_token")));
        api.send(
            Method::GET,
            &path,
            None,
            &[("authorization", "Basic YTpi")],
            None,
        )
        .await
        .problem(401, "unauthorized");
    }
    // A write without a token stores nothing.
    api.send(
        Method::PATCH,
        &config(G),
        None,
        &[],
        Some(&json!({"set": {"features.beta": true}})),
    )
    .await
    .problem(401, "unauthorized");
    assert_eq!(api.entries(G).await.len(), before, "a 401 records nothing");

    // A token revoked through the server's service is refused at once,
    // although its authentication was just remembered.
    let (secret, id) = api.token_for(TokenRole::Viewer, &[], "old", None).await;
    api.get(&config(G), &secret).await.status(200);
    api.service
        .revoke_token(&id, &admin())
        .await
        .expect("revokes");
    api.get(&config(G), &secret)
        .await
        .problem(401, "unauthorized");
    api.stop().await;
}

/// The `permission.denied` entries of a guild.
async fn denials(api: &Api, guild: &str) -> Vec<Value> {
    api.entries(guild)
        .await
        .into_iter()
        .filter(|e| e["operation"] == "permission.denied")
        .collect()
}

/// Each denial's token id and permission.
fn who_and_what(denials: &[Value]) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    denials
        .iter()
        .map(|e| {
            (
                text(&e["detail"]["target"]["id"]),
                text(&e["detail"]["data"]["permission"]),
            )
        })
        .collect()
}

async fn every_403_on_a_guild_is_in_its_chain(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "ops").await;
    api.create(G, &editor, &json!({})).await.status(201);
    api.create(OTHER, &editor, &json!({})).await.status(201);
    let (viewer, viewer_id) = api.token_for(TokenRole::Viewer, &[G], "reader", None).await;
    let (scoped, scoped_id) = api.token_for(TokenRole::Editor, &[G], "scoped", None).await;
    let (auditor, auditor_id) = api.token_for(TokenRole::Auditor, &[G], "audit", None).await;

    // A viewer reads its guild but cannot write it.
    api.get(&config(G), &viewer).await.status(200);
    api.get(&format!("/api/v1/guilds/{G}/history"), &viewer)
        .await
        .status(200);
    let refused = api
        .send(
            Method::PATCH,
            &config(G),
            Some(&viewer),
            &[],
            Some(&json!({"set": {"features.beta": true}})),
        )
        .await;
    refused.problem(403, "forbidden");
    api.send(
        Method::POST,
        &format!("/api/v1/guilds/{G}/revert"),
        Some(&viewer),
        &[],
        Some(&json!({"to": 1})),
    )
    .await
    .problem(403, "forbidden");
    api.send(Method::DELETE, &config(G), Some(&viewer), &[], None)
        .await
        .problem(403, "forbidden");
    api.get(&format!("/api/v1/export?guild={G}"), &viewer)
        .await
        .problem(403, "forbidden");
    assert_eq!(
        api.get(&config(G), &viewer).await.json()["version"],
        1,
        "the refused writes changed nothing"
    );
    // A scoped token cannot read (or write) another guild.
    api.get(&config(OTHER), &scoped)
        .await
        .problem(403, "forbidden");
    api.get(&format!("/api/v1/guilds/{OTHER}/history"), &viewer)
        .await
        .problem(403, "forbidden");
    api.send(
        Method::PATCH,
        &config(OTHER),
        Some(&scoped),
        &[],
        Some(&json!({"set": {"features.beta": true}})),
    )
    .await
    .problem(403, "forbidden");
    api.get(&format!("/api/v1/verify?guild={OTHER}"), &auditor)
        .await
        .problem(403, "forbidden");

    let in_g = denials(&api, G).await;
    let got = who_and_what(&in_g);
    let want = |id: &str, p: &str| (id.to_owned(), p.to_owned());
    assert_eq!(
        got,
        vec![
            want(&viewer_id, "config.write"),
            want(&viewer_id, "config.write"),
            want(&viewer_id, "config.write"),
            want(&viewer_id, "audit.export"),
        ],
        "each refusal on G is one entry, in order"
    );
    for e in &in_g {
        assert_eq!(e["detail"]["outcome"], "blocked");
        assert_eq!(e["detail"]["target"]["type"], "token");
        assert_eq!(
            e["actor"],
            json!({"id": "reader", "kind": "integration", "label": "reader"})
        );
        assert_eq!(e["context"]["source"], "http");
    }
    let in_other = who_and_what(&denials(&api, OTHER).await);
    assert_eq!(
        in_other,
        vec![
            want(&scoped_id, "config.read"),
            want(&viewer_id, "history.read"),
            want(&scoped_id, "config.write"),
            want(&auditor_id, "audit.verify"),
        ]
    );

    // Cross-guild requests by a scoped token name no chain: 403, nothing
    // recorded anywhere.
    let totals = (api.entries(G).await.len(), api.entries(OTHER).await.len());
    api.get("/api/v1/export", &auditor)
        .await
        .problem(403, "forbidden");
    api.get("/api/v1/verify", &auditor)
        .await
        .problem(403, "forbidden");
    api.get("/api/v1/stats?by=operation", &auditor)
        .await
        .problem(403, "forbidden");
    api.get("/api/v1/stats?by=operation", &viewer)
        .await
        .problem(403, "forbidden");
    assert_eq!(
        (api.entries(G).await.len(), api.entries(OTHER).await.len()),
        totals
    );
    // The scoped list shows only the token's guilds.
    let listed = api.get("/api/v1/guilds", &viewer).await.status(200).json();
    assert_eq!(listed["guilds"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["guilds"][0]["guild_id"], G);
    // A refusal on a guild that has nothing yet starts its chain.
    api.get(&config("42"), &viewer)
        .await
        .problem(403, "forbidden");
    assert_eq!(denials(&api, "42").await.len(), 1);
    // The refusals are chained entries like any other.
    assert_verifies(&api).await;
    let history = api
        .get(
            &format!("/api/v1/guilds/{G}/history?operation=permission.denied"),
            &viewer,
        )
        .await
        .status(200)
        .json();
    assert_eq!(history["entries"].as_array().map(Vec::len), Some(4));
    api.stop().await;
}

async fn writes_are_attributed_to_the_token_and_the_request(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let bot = api.token(TokenRole::Editor, &[], "dashboard-bot").await;
    let (person, _) = api
        .token_for(TokenRole::Editor, &[G], "alice", Some("80351110224678912"))
        .await;
    api.send(
        Method::PUT,
        &config(G),
        Some(&bot),
        &[
            ("if-none-match", "*"),
            ("user-agent", "dashboard/1.0"),
            ("x-request-id", "trace-123"),
            ("x-reason", "first setup"),
        ],
        Some(&json!({})),
    )
    .await
    .status(201);
    api.send(
        Method::PATCH,
        &config(G),
        Some(&person),
        &[("user-agent", "curl/8"), ("x-forwarded-for", "10.9.8.7")],
        Some(&json!({"set": {"features.beta": true}, "reason": "try beta ✓"})),
    )
    .await
    .status(200);
    // The reason goes in the body or the header, not both.
    api.send(
        Method::PATCH,
        &config(G),
        Some(&person),
        &[("x-reason", "a")],
        Some(&json!({"set": {"features.beta": false}, "reason": "b"})),
    )
    .await
    .problem(422, "invalid_input");
    // The config writes (the person's token, scoped to G, was recorded as
    // created in G's chain before them).
    let entries: Vec<Value> = api
        .entries(G)
        .await
        .into_iter()
        .filter(|e| e["operation"] == "create" || e["operation"] == "update")
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0]["actor"],
        json!({"id": "dashboard-bot", "kind": "integration", "label": "dashboard-bot"})
    );
    assert_eq!(entries[0]["reason"], "first setup");
    assert_eq!(entries[0]["context"]["source"], "http");
    assert_eq!(entries[0]["context"]["ip"], "127.0.0.1");
    assert_eq!(entries[0]["context"]["user_agent"], "dashboard/1.0");
    assert_eq!(entries[0]["context"]["x_request_id"], "trace-123");
    assert_eq!(
        entries[1]["actor"],
        json!({"id": "80351110224678912", "kind": "human", "label": "alice"})
    );
    assert_eq!(entries[1]["reason"], "try beta ✓");
    assert_eq!(entries[1]["context"]["user_agent"], "curl/8");
    assert_eq!(
        entries[1]["context"]["ip"], "127.0.0.1",
        "the peer address, not X-Forwarded-For"
    );
    assert!(entries[1]["context"].get("x_request_id").is_none());
    let text = entries.iter().map(ToString::to_string).collect::<String>();
    assert!(
        !text.contains(&bot) && !text.contains(&person),
        "no secret is recorded"
    );
    api.stop().await;
}

async fn a_refusal_that_cannot_be_recorded_is_a_500_not_a_403(backend: Backend, name: &str) {
    let api = Api::start(backend, name).await;
    let editor = api.token(TokenRole::Editor, &[], "ops").await;
    let viewer = api.token(TokenRole::Viewer, &[], "reader").await;
    api.create(G, &editor, &json!({})).await.status(201);
    // More refusals and statuses of the write routes.
    api.send(
        Method::PUT,
        &config(G),
        Some(&viewer),
        &[("if-match", "\"1\"")],
        Some(&json!({})),
    )
    .await
    .problem(403, "forbidden");
    api.send(
        Method::POST,
        &format!("/api/v1/guilds/{G}/events"),
        Some(&viewer),
        &[],
        Some(&json!({"action": "member.role_added", "outcome": "success",
                     "target": {"type": "member", "id": "42"}, "data": {"role_id": "555"}})),
    )
    .await
    .problem(403, "forbidden");
    api.get(&format!("/api/v1/guilds/{G}/diff?from=1&to=1"), &viewer)
        .await
        .status(200);
    api.send(
        Method::DELETE,
        &config(G),
        Some(&editor),
        &[("if-match", "\"7\"")],
        None,
    )
    .await
    .problem(412, "precondition_failed");
    let before = api.entries(G).await.len();

    // The database refuses every new entry: a write is a 500 `storage`
    // problem, and so is a refusal, which must not be answered 403 unless
    // its entry is stored.
    api.db.fail_on("audit_entries", "INSERT").await;
    api.send(
        Method::PATCH,
        &config(G),
        Some(&editor),
        &[],
        Some(&json!({"set": {"features.beta": true}})),
    )
    .await
    .problem(500, "storage");
    api.send(
        Method::PATCH,
        &config(G),
        Some(&viewer),
        &[],
        Some(&json!({"set": {"features.beta": true}})),
    )
    .await
    .problem(500, "storage");
    api.db.heal("audit_entries").await;
    assert_eq!(api.entries(G).await.len(), before, "nothing was stored");
    api.send(
        Method::PATCH,
        &config(G),
        Some(&viewer),
        &[],
        Some(&json!({"set": {"features.beta": true}})),
    )
    .await
    .problem(403, "forbidden");
    assert_eq!(
        api.entries(G).await.len(),
        before + 1,
        "the refusal, once it can be"
    );
    assert_verifies(&api).await;
    api.stop().await;
}

contract! {
    a_refusal_that_cannot_be_recorded_is_a_500_not_a_403,
    no_token_or_an_unknown_one_is_401,
    every_403_on_a_guild_is_in_its_chain,
    writes_are_attributed_to_the_token_and_the_request,
}
