//! The HTTP API: the command line's use cases as JSON over HTTP, for
//! dashboards and for bots that mount it in their own server.
//!
//! [`router`] gives an [`axum::Router`] serving the API under `/api/v1`,
//! its OpenAPI 3.1 document at `/openapi.json`, and nothing else; `guildconf
//! serve` runs it with [`serve`]. Every handler calls [`ConfigService`] (or
//! the [`ReadCache`] in front of it) and nothing below it, so the HTTP layer
//! holds no storage logic: it maps requests to use cases, tokens to
//! permissions and actors, and errors to RFC 9457 problems. The routes,
//! statuses and headers are in `docs/HTTP.md`.
//!
//! ```no_run
//! # async fn run() -> Result<(), guildconf::Error> {
//! use guildconf::http::{router, ApiState, HttpOptions};
//! use guildconf::{open, CacheOptions, ConfigService, OpenOptions, ReadCache};
//! let store = open("sqlite://guildconf.db", OpenOptions::new().create_if_missing(true)).await?;
//! let cache = ReadCache::start(&ConfigService::new(store), CacheOptions::default()).await?;
//! let app = router(ApiState::with_cache(cache), HttpOptions::default());
//! // Mount it beside the bot's own routes, or serve it alone:
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080")
//!     .await
//!     .map_err(|e| guildconf::Error::Storage(e.to_string()))?;
//! guildconf::http::serve(listener, app, std::future::pending())
//!     .await
//!     .map_err(|e| guildconf::Error::Storage(e.to_string()))?;
//! # Ok(()) }
//! ```

mod audit;
mod auth;
mod config;
mod headers;
mod openapi;
mod problem;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;

use crate::cache::ReadCache;
use crate::input::MAX_INPUT_BYTES;
use crate::service::ConfigService;
use crate::verify::VerifyOptions;

pub use openapi::openapi;
pub use problem::{ProblemBody, ProblemViolation, PROBLEM_JSON};

/// How the API behaves; [`HttpOptions::default`] suits most.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// The largest request body accepted, in bytes (a larger one is 413).
    /// Default: 1 MiB, the command line's cap on a `--file`.
    pub body_limit: usize,
    /// What `GET /api/v1/verify` checks beyond the chains (trusted keys).
    pub verify: VerifyOptions,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            body_limit: MAX_INPUT_BYTES,
            verify: VerifyOptions::new(),
        }
    }
}

/// What the API serves from: the service, and the read cache that answers
/// `GET …/config` from memory when there is one.
#[derive(Clone, Debug)]
pub struct ApiState {
    service: ConfigService,
    cache: Option<ReadCache>,
}

impl ApiState {
    /// Every read from the database.
    pub fn new(service: ConfigService) -> Self {
        Self {
            service,
            cache: None,
        }
    }

    /// Current configs from `cache`; writes go through the cache's service,
    /// so a client reads its own write at once.
    pub fn with_cache(cache: ReadCache) -> Self {
        Self {
            service: cache.service(),
            cache: Some(cache),
        }
    }

    /// The service the API calls (for mounting other routes beside it).
    pub fn service(&self) -> &ConfigService {
        &self.service
    }

    /// The service writes go through.
    pub(crate) fn writer(&self) -> &ConfigService {
        &self.service
    }
}

/// The state every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct Shared(Arc<SharedInner>);

#[derive(Debug)]
pub(crate) struct SharedInner {
    pub(crate) state: ApiState,
    pub(crate) options: HttpOptions,
    /// Rendered current documents (`GET …/config`).
    pub(crate) rendered: config::Rendered,
}

impl std::ops::Deref for Shared {
    type Target = SharedInner;

    fn deref(&self) -> &SharedInner {
        &self.0
    }
}

/// The API as a router: `/api/v1/…` (bearer token required), and
/// `/openapi.json` (public). Errors, including the framework's own (an
/// unknown route, a wrong method, a body over [`HttpOptions::body_limit`])
/// and a handler's panic, are answered as `application/problem+json`.
///
/// Serve it with [`serve`] (or `into_make_service_with_connect_info::
/// <SocketAddr>()`) so writes record the client's address.
pub fn router(state: ApiState, options: HttpOptions) -> Router {
    let limit = options.body_limit;
    let shared = Shared(Arc::new(SharedInner {
        state,
        options,
        rendered: config::Rendered::default(),
    }));
    let app = Router::new()
        .route("/api/v1/guilds", get(config::guilds))
        .route(
            "/api/v1/guilds/{guild}/config",
            get(config::show)
                .patch(config::patch)
                .put(config::put)
                .delete(config::delete),
        )
        .route(
            "/api/v1/guilds/{guild}/revert",
            axum::routing::post(config::revert),
        )
        .route(
            "/api/v1/guilds/{guild}/events",
            axum::routing::post(config::event),
        )
        .route("/api/v1/guilds/{guild}/history", get(audit::history))
        .route("/api/v1/guilds/{guild}/diff", get(audit::diff))
        .route("/api/v1/verify", get(audit::verify))
        .route("/api/v1/stats", get(audit::stats))
        .route("/api/v1/export", get(audit::export))
        .route("/openapi.json", get(openapi::serve))
        .with_state(shared);
    with_layers(app, limit)
}

/// What every route gets: the body limit, problem+json for the
/// framework's own refusals, and a 500 problem instead of a dropped
/// connection when a handler panics.
fn with_layers(app: Router, limit: usize) -> Router {
    // One `layer` call with the stack composed by a `ServiceBuilder`: each
    // `Router::layer` boxes every route once more, and a request then
    // crosses (and is moved through) one box per call.
    app.layer(
        tower::ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(problem::panic_response))
            .layer(axum::middleware::map_response(
                problem::problem_for_plain_errors,
            ))
            .layer(RequestBodyLimitLayer::new(limit))
            .layer(DefaultBodyLimit::max(limit)),
    )
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish. Each request carries the client's address,
/// which writes record as `ip`.
///
/// # Errors
/// When accepting connections fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn answer(app: Router, request: Request<Body>) -> (StatusCode, String, String) {
        let response = app.oneshot(request).await.expect("the router answers");
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        (status, kind, String::from_utf8_lossy(&body).into_owned())
    }

    async fn boom() -> &'static str {
        panic!("a bug")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_500_problem() {
        let app = with_layers(Router::new().route("/boom", get(boom)), 1024);
        let request = Request::get("/boom")
            .body(Body::empty())
            .expect("a request");
        let (status, kind, body) = answer(app, request).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(kind, PROBLEM_JSON);
        assert!(body.contains(r#""code":"internal""#), "{body}");
        assert!(
            !body.contains("a bug"),
            "the panic message stays in the log"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_413_problem_streamed_or_not() {
        let app = with_layers(
            Router::new().route(
                "/echo",
                axum::routing::post(
                    |body: axum::body::Bytes| async move { body.len().to_string() },
                ),
            ),
            16,
        );
        let sized = Request::post("/echo")
            .body(Body::from(vec![b'x'; 17]))
            .expect("a request");
        let (status, kind, _) = answer(app.clone(), sized).await;
        assert_eq!(
            (status, kind.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, PROBLEM_JSON)
        );
        // Without a Content-Length the limit holds while reading.
        let chunks = futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(vec![b'x'; 10]),
            Ok(vec![b'x'; 10]),
        ]);
        let streamed = Request::post("/echo")
            .body(Body::from_stream(chunks))
            .expect("a request");
        let (status, kind, _) = answer(app.clone(), streamed).await;
        assert_eq!(
            (status, kind.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, PROBLEM_JSON)
        );
        let fits = Request::post("/echo")
            .body(Body::from(vec![b'x'; 16]))
            .expect("a request");
        assert_eq!(answer(app, fits).await.2, "16");
    }
}
