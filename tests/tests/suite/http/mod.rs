//! The HTTP API (docs/HTTP.md), through a real listening server and an HTTP
//! client, on each backend: every route and status, entity tags and
//! preconditions, problem+json errors, tokens and their scopes (every 403
//! on a guild is a `permission.denied` entry of its chain), attribution,
//! Link pagination, and an export byte-identical to `guildconf export`.
//!
//! This file is the harness the areas share: a server on the router of
//! `guildconf::http` over a test database, tokens, and a small client.

mod audit;
mod auth;
mod config;
mod fuzz;
mod serve;

use std::net::SocketAddr;

use guildconf::http::{router, serve, ApiState, HttpOptions};
use guildconf::{
    Actor, ActorKind, CacheOptions, ConfigService, GuildId, NewToken, ReadCache, WriteMeta,
};
use guildconf_domain::TokenRole;
use guildconf_tests::{Backend, TestDb};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The guild of most tests, and one a scoped token does not reach.
const G: &str = "123456789012345678";
const OTHER: &str = "223456789012345678";

fn gid(text: &str) -> GuildId {
    GuildId::parse(text).expect("a valid guild id")
}

/// A running API over one test database.
struct Api {
    db: TestDb,
    service: ConfigService,
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// One answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}): {:?} {}",
                self.status,
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Asserts the status.
    #[track_caller]
    fn status(self, expected: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            expected,
            "{}",
            String::from_utf8_lossy(&self.bytes)
        );
        self
    }

    /// Asserts an RFC 9457 problem with this status and code; returns it.
    #[track_caller]
    fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.bytes)
        );
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "an error is problem+json"
        );
        let p = self.json();
        assert_eq!(p["status"], json!(status), "{p}");
        assert_eq!(p["code"], json!(code), "{p}");
        assert_eq!(
            p["type"],
            json!(format!("urn:guildconf:problem:{code}")),
            "{p}"
        );
        assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");
        p
    }
}

impl Api {
    /// A server on a fresh database of `backend`, with the read cache.
    async fn start(backend: Backend, name: &str) -> Self {
        Self::start_with(backend, name, HttpOptions::default()).await
    }

    async fn start_with(backend: Backend, name: &str, options: HttpOptions) -> Self {
        Self::start_under(backend, name, options, "").await
    }

    /// A server whose API is mounted under `prefix` (`""` for none), as a
    /// bot nests it in its own router; requests are sent under it.
    async fn start_under(backend: Backend, name: &str, options: HttpOptions, prefix: &str) -> Self {
        let db = TestDb::new(backend, name).await;
        let service = db.service().await;
        let cache = ReadCache::start(&service, CacheOptions::default())
            .await
            .expect("the read cache starts");
        let api = router(ApiState::with_cache(cache), options);
        let app = if prefix.is_empty() {
            api
        } else {
            axum::Router::new().nest(prefix, api)
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr: SocketAddr = listener.local_addr().expect("an address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(listener, app, async {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs");
        });
        Self {
            db,
            service,
            base: format!("http://{addr}{prefix}"),
            client: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// A new token's secret.
    async fn token(&self, role: TokenRole, guilds: &[&str], label: &str) -> String {
        self.token_for(role, guilds, label, None).await.0
    }

    /// A new token's secret and id, optionally bound to a person.
    async fn token_for(
        &self,
        role: TokenRole,
        guilds: &[&str],
        label: &str,
        human: Option<&str>,
    ) -> (String, String) {
        let issued = self
            .service
            .create_token(
                NewToken {
                    role,
                    guilds: guilds.iter().map(|g| gid(g)).collect(),
                    label: label.to_owned(),
                    human_id: human.map(str::to_owned),
                },
                &admin(),
            )
            .await
            .expect("the token is created");
        (issued.secret, issued.info.id)
    }

    /// A request with a token, extra headers and an optional JSON body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the server answers");
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            bytes: response.bytes().await.expect("a body").to_vec(),
        }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Method::GET, path, Some(token), &[], None).await
    }

    /// Creates guild `guild` over HTTP (PUT with If-None-Match: *).
    async fn create(&self, guild: &str, token: &str, document: &Value) -> Answer {
        self.send(
            Method::PUT,
            &format!("/api/v1/guilds/{guild}/config"),
            Some(token),
            &[("if-none-match", "*")],
            Some(document),
        )
        .await
    }

    /// Every entry of a guild, oldest first, read through the service.
    async fn entries(&self, guild: &str) -> Vec<Value> {
        let page = self
            .service
            .history(&guildconf::HistoryRequest {
                guild_id: Some(gid(guild)),
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .expect("history reads");
        let mut entries: Vec<Value> = page
            .entries
            .iter()
            .map(|e| e.to_json().expect("an entry as JSON"))
            .collect();
        entries.reverse();
        entries
    }

    /// Stops the server and waits for it.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("the server stops cleanly");
        }
    }
}

/// Who creates the tests' tokens.
fn admin() -> WriteMeta {
    WriteMeta::new(Actor::new("80351110224678912", ActorKind::Human, Some("admin")).expect("valid"))
}

/// `guildconf --database-url URL ARGS…` on a test database: its stdout,
/// after asserting success.
fn guildconf(db: &TestDb, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(guildconf_tests::guildconf_bin())
        .env_remove("GUILDCONF_DATABASE_URL")
        .args(["--database-url", db.url()])
        .args(args)
        .output()
        .expect("the guildconf binary runs");
    assert!(
        out.status.success(),
        "guildconf {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `guildconf --json ARGS…`: its stdout as one JSON value.
fn guildconf_json(db: &TestDb, args: &[&str]) -> Value {
    let all: Vec<&str> = std::iter::once("--json")
        .chain(args.iter().copied())
        .collect();
    serde_json::from_slice(&guildconf(db, &all)).expect("one JSON value on stdout")
}

/// A new token's secret, made by `guildconf token create`.
fn cli_token(db: &TestDb, role: &str, label: &str) -> String {
    let created = guildconf_json(
        db,
        &[
            "token",
            "create",
            "--role",
            role,
            "--label",
            label,
            "--actor",
            "80351110224678912",
        ],
    );
    created["token"].as_str().expect("the secret").to_owned()
}

/// Asserts that verify passes on the whole database.
async fn assert_verifies(api: &Api) {
    let report = api.service.verify(None).await.expect("verify runs");
    assert!(report.ok, "{report:?}");
}
