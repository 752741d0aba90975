//! The audit pages (docs/UI.md), served by `guildconf::ui::router` on a real
//! loopback socket over a fresh database: read with an HTTP client
//! (`http.rs`: headers, cookies, CSRF, escaping, scope, filters, paging) and
//! driven in real Chromium (`browser.rs`).
//!
//! This file is what both share: the server, a small HTTP client with a
//! sign-in helper, and the story of two guilds with hostile values that the
//! pages must show as text.

mod browser;
mod http;

use std::net::SocketAddr;

use guildconf::ui::{router, UiState};
use guildconf::{
    Actor, ActorKind, ConfigService, Event, EventOutcome, FieldEdit, GuildId, IssuedToken,
    NewToken, Target, WriteMeta,
};
use guildconf_domain::TokenRole;
use guildconf_tests::{Backend, TestDb};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::task::JoinHandle;

/// The guild of the story.
pub const A: &str = "123456789012345678";
/// Another guild, outside the viewer's scope.
pub const B: &str = "223456789012345678";
/// The webhook URL: a secret that must show as `[redacted]`.
pub const HOOK: &str = "https://hooks.example/api/webhooks/1/SECRET-HOOK-VALUE";
/// A hostile actor label, reason, target label and config value: each must
/// render as text.
pub const EVIL_LABEL: &str = "<script>alert('label')</script>";
pub const EVIL_REASON: &str = "<script>alert('reason')</script>";
pub const EVIL_TARGET: &str = "<img src=x onerror=alert('target')>";
pub const EVIL_MESSAGE: &str = "</pre><script>alert('doc')</script>";

pub fn gid(text: &str) -> GuildId {
    GuildId::parse(text).expect("a valid guild id")
}

fn actor(id: &str, kind: ActorKind, label: &str) -> WriteMeta {
    WriteMeta::new(Actor::new(id, kind, Some(label)).expect("a valid actor"))
}

pub fn alice() -> WriteMeta {
    actor("80351110224678912", ActorKind::Human, "alice")
}

fn with_reason(mut meta: WriteMeta, reason: &str) -> WriteMeta {
    meta.reason = Some(reason.to_owned());
    meta
}

/// Guild A: created by alice, its webhook set (a secret), a hostile actor
/// label, reason and welcome message, two events (one blocked, one with a
/// hostile target label) and a feature flag; guild B: created.
/// Seqs 1 to 6 on A, in that order.
pub async fn story(s: &ConfigService) {
    let bob = || actor("80351110224678913", ActorKind::Human, "bob");
    let a = gid(A);
    s.create(a, json!({}), &with_reason(alice(), "open the doors"))
        .await
        .expect("create");
    let hook = FieldEdit::new().set("announcements.webhook_url".parse().expect("path"), HOOK);
    s.update(a, hook, &with_reason(alice(), "rotate the hook"))
        .await
        .expect("webhook");
    let message = FieldEdit::new().set(
        "onboarding.welcome_message".parse().expect("path"),
        EVIL_MESSAGE,
    );
    s.update(
        a,
        message,
        &with_reason(
            actor("mallory-bot", ActorKind::System, EVIL_LABEL),
            EVIL_REASON,
        ),
    )
    .await
    .expect("hostile update");
    let role = Event::new(
        "member.role_added",
        EventOutcome::Success,
        Target::new("member", "80351110224678914").with_label(EVIL_TARGET),
    )
    .with("role_id", "555555555555555555");
    s.record(a, &role, &bob()).await.expect("role event");
    let denied = Event::new(
        "permission.denied",
        EventOutcome::Blocked,
        Target::new("member", "80351110224678915"),
    )
    .with("permission", "manage_guild");
    s.record(a, &denied, &bob()).await.expect("denied event");
    let beta = FieldEdit::new().set("features.beta".parse().expect("path"), true);
    s.update(a, beta, &bob()).await.expect("beta");
    s.create(gid(B), json!({}), &alice())
        .await
        .expect("create B");
}

/// A token of `role` over `guilds`.
pub async fn token(
    s: &ConfigService,
    role: TokenRole,
    guilds: &[&str],
    label: &str,
) -> IssuedToken {
    s.create_token(
        NewToken {
            role,
            guilds: guilds.iter().map(|g| gid(g)).collect(),
            label: label.to_owned(),
            human_id: None,
        },
        &alice(),
    )
    .await
    .expect("a token")
}

/// The pages served on a loopback port, and the service over the same
/// database (to write the story and read back what the pages recorded).
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    pub service: ConfigService,
    pub db: TestDb,
    server: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Served {
    /// A fresh database on `backend` for the test `name`, and the pages
    /// over it at `/ui`, as the HTTP API mounts them.
    pub async fn start(backend: Backend, name: &str) -> Self {
        Self::start_with(backend, name, |state| state).await
    }

    /// As [`Served::start`], with the UI state adjusted by `configure`.
    pub async fn start_with(
        backend: Backend,
        name: &str,
        configure: impl FnOnce(UiState) -> UiState,
    ) -> Self {
        let db = TestDb::new(backend, name).await;
        let service = db.service().await;
        let state = configure(UiState::new(service.clone()));
        let app = axum::Router::new().nest(state.base_path(), router(state.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
            if let Err(e) = served {
                panic!("the test server stopped: {e}");
            }
        });
        Self {
            origin: format!("http://{addr}"),
            service,
            db,
            server,
        }
    }

    /// An HTTP client of these pages with no cookie yet.
    pub fn client(&self) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            origin: self.origin.clone(),
            cookies: Vec::new(),
        }
    }

    /// Every entry of guild `g`, oldest first, through the library.
    pub async fn entries(&self, g: &str) -> Vec<guildconf::Entry> {
        let page = self
            .service
            .history(&guildconf::HistoryRequest {
                guild_id: Some(gid(g)),
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .expect("history");
        page.entries.into_iter().rev().collect()
    }
}

/// One answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ASCII").to_owned())
            .collect()
    }

    /// The `Set-Cookie` header of cookie `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.header(LOCATION.as_str())
    }

    /// The value of the first hidden `csrf` field of the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf field in:\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("a closing quote") + start;
        self.body[start..end].to_owned()
    }
}

/// A minimal browser without a browser: remembers the cookies it was set
/// (name and value only; the tests read the attributes from [`Reply`]).
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    origin: String,
    pub cookies: Vec<(String, String)>,
}

impl Http {
    async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.origin))
            .header("user-agent", "guildconf-ui-tests");
        if !self.cookies.is_empty() {
            let jar = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(COOKIE, jar);
        }
        let body = match form {
            Some(fields) => {
                request = request.header("content-type", "application/x-www-form-urlencoded");
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish()
            }
            None => String::new(),
        };
        let response = self
            .client
            .request(
                request
                    .body(Full::new(Bytes::from(body)))
                    .expect("a request"),
            )
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let reply = Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).expect("UTF-8"),
        };
        for set in reply.set_cookies() {
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(k, _)| k != name);
                if !value.is_empty() && !set.contains("Max-Age=0") {
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        reply
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.send(Method::POST, path, Some(form)).await
    }

    /// Signs in with `secret` through the form, as a person would; returns
    /// the answer to the form's post.
    pub async fn sign_in(&mut self, secret: &str) -> Reply {
        let form = self.get("/ui/signin").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post("/ui/signin", &[("token", secret), ("csrf", &csrf)])
            .await
    }

    /// Whether a session cookie is held.
    pub fn signed_in(&self) -> bool {
        self.cookies.iter().any(|(k, _)| k == "gc_session")
    }
}
