//! The audit pages: a guild's audit log, an entry's diff, its config at any
//! version and a verify button, rendered on the server for a person signed
//! in with an API token.
//!
//! [`router`] serves them relative to where it is mounted (`/ui` by
//! default; [`UiState::with_base_path`] for another place). The pages call
//! [`ConfigService`] directly, never the JSON API. What each page shows, the
//! security headers, the cookie and the CSRF rule are described in
//! `docs/UI.md`.
//!
//! ```no_run
//! # async fn run(service: guildconf::ConfigService) -> std::io::Result<()> {
//! use guildconf::ui::{router, UiState};
//! let app = axum::Router::new().nest("/ui", router(UiState::new(service)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//! )
//! .await
//! # }
//! ```

mod access;
mod pages;
mod session;
mod view;

use askama::Template;
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use rand_core::{OsRng, RngCore};
use std::fmt;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::Error;
use crate::service::ConfigService;

/// The path the pages are mounted at unless [`UiState::with_base_path`]
/// says otherwise; the session cookie is scoped to it.
pub const DEFAULT_BASE_PATH: &str = "/ui";

/// The policy sent with every response: only this origin's own style sheet
/// may load, no script at all runs (the pages need none), and no other site
/// may frame a page or receive one of its forms.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'none'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the pages need: the service they read through, where they are
/// mounted, whether cookies are marked `Secure`, and the key CSRF tokens
/// are derived with. Cheap to clone.
#[derive(Clone)]
pub struct UiState {
    service: ConfigService,
    base: String,
    secure_cookies: bool,
    csrf_key: [u8; 32],
}

impl fmt::Debug for UiState {
    // The CSRF key stays out of logs: whoever has it can forge form tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UiState")
            .field("base", &self.base)
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

impl UiState {
    /// The pages over `service`, mounted at [`DEFAULT_BASE_PATH`], with
    /// cookies not marked `Secure` and a fresh random CSRF key (so forms
    /// rendered before a restart must be reloaded after it).
    pub fn new(service: ConfigService) -> Self {
        let mut csrf_key = [0u8; 32];
        OsRng.fill_bytes(&mut csrf_key);
        Self {
            service,
            base: DEFAULT_BASE_PATH.to_owned(),
            secure_cookies: false,
            csrf_key,
        }
    }

    /// Where the router is mounted, such as `/ui` or `/admin/audit`: every
    /// link and form starts with it, and the session cookie's `Path` is it.
    ///
    /// # Errors
    /// [`Error::Invalid`] at `/base_path` unless it is `/` followed by
    /// segments of `A`–`Z`, `a`–`z`, `0`–`9`, `-`, `_` and `.`, joined by
    /// single slashes, without a trailing slash.
    pub fn with_base_path(mut self, base: &str) -> Result<Self, Error> {
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        let ok = base
            .strip_prefix('/')
            .is_some_and(|rest| rest.split('/').all(segment_ok));
        if !ok {
            return Err(Error::invalid(
                "/base_path",
                format!(
                    "must be / followed by segments of A-Z, a-z, 0-9, -, _ and ., \
                     without a trailing slash, such as /ui; got {base:?}"
                ),
            ));
        }
        base.clone_into(&mut self.base);
        Ok(self)
    }

    /// Marks the cookies `Secure` (sent over https only). Turn it on when
    /// the pages are served over https, directly or behind a proxy.
    #[must_use]
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// Derives CSRF tokens from this key instead of a random one, so that
    /// several processes behind one address accept each other's forms.
    /// Keep it secret: whoever holds it can forge a form token for a
    /// session cookie they have seen.
    #[must_use]
    pub fn with_csrf_key(mut self, key: [u8; 32]) -> Self {
        self.csrf_key = key;
        self
    }

    /// Where the pages are mounted.
    pub fn base_path(&self) -> &str {
        &self.base
    }
}

/// The audit pages as a router, to be mounted at the state's base path
/// (`/ui` by default) with [`Router::nest`]. Every response carries
/// [`CONTENT_SECURITY_POLICY`], `X-Frame-Options: DENY`,
/// `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
/// `Cache-Control: no-store` (unless the handler chose a cache policy).
///
/// When the server is started with
/// `into_make_service_with_connect_info::<SocketAddr>()`, the client's
/// address goes into the context of the events the pages record.
pub fn router(state: UiState) -> Router {
    Router::new()
        .route("/", get(pages::guilds))
        .route("/signin", get(session::signin_form).post(session::signin))
        .route("/signout", post(session::signout))
        .route("/g/{guild}", get(pages::log))
        .route("/g/{guild}/entries/{seq}", get(pages::entry))
        .route("/g/{guild}/config", get(pages::config))
        .route("/g/{guild}/verify", post(pages::verify))
        .route("/static/style.css", get(style_sheet))
        .fallback(not_found)
        // A handler's panic is an error page, not a dropped connection; the
        // security headers are added outside it, so that page has them too.
        .layer(CatchPanicLayer::custom(panic_page))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// The page for a handler that panicked: what happened, without the panic's
/// message (which may hold request data), and the message in the log.
fn panic_page(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "an audit page panicked");
    PageError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error",
        "The page failed; the error is in the server's log.",
    )
    .into_response()
}

/// The one style sheet, compiled in (no build step, nothing fetched).
async fn style_sheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("static/style.css"),
    )
        .into_response()
}

async fn not_found() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page at this address.",
    )
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Filters and cursors travel in page addresses: no other site learns
    // them from a link someone follows.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Pages hold audit data and form tokens: no cache keeps them.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// What every page shows around its content: where links start, and who
/// is signed in with the token for the sign-out form.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    base: String,
    who: Option<String>,
    csrf: String,
}

/// A page that could not be shown, rendered as an error page with its
/// status, or a redirect to the sign-in page.
#[derive(Debug)]
pub(crate) enum PageError {
    /// An error page.
    Page {
        status: StatusCode,
        title: &'static str,
        message: String,
        layout: Layout,
    },
    /// Not signed in (or the token was revoked): go to the sign-in page.
    SignIn { base: String },
}

impl PageError {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        PageError::Page {
            status,
            title,
            message: message.into(),
            layout: Layout::default(),
        }
    }

    /// The same error shown inside the signed-in layout.
    fn within(self, layout: &Layout) -> Self {
        match self {
            PageError::Page {
                status,
                title,
                message,
                ..
            } => PageError::Page {
                status,
                title,
                message,
                layout: layout.clone(),
            },
            other => other,
        }
    }
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(v) => {
                PageError::new(StatusCode::BAD_REQUEST, "Invalid input", v.to_string())
            }
            Error::NotFound(m) => PageError::new(StatusCode::NOT_FOUND, "Not found", m),
            Error::Conflict(m) => PageError::new(StatusCode::CONFLICT, "Conflict", m),
            // A storage or corruption message names tables and drivers: it
            // goes to the log, and the page says only what happened.
            Error::Storage(m) | Error::Corrupt(m) => {
                tracing::error!(error = %m, "an audit page failed");
                PageError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Storage error",
                    "The database could not answer; the error is in the server's log.",
                )
            }
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: &'a Layout,
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { base } => Redirect::to(&format!("{base}/signin")).into_response(),
            PageError::Page {
                status,
                title,
                message,
                layout,
            } => {
                let page = ErrorPage {
                    layout: &layout,
                    title,
                    message: &message,
                };
                (status, render(&page)).into_response()
            }
        }
    }
}

/// A template as an HTML response; a template that fails to render (it
/// cannot, short of a bug) is a plain 500 rather than a panic.
fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "an audit page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

#[cfg(test)]
mod panic_tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_page_is_a_500_page_that_keeps_its_message_out() {
        let response = panic_page(Box::new("boom: secret request data"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("Internal error"), "{text}");
        assert!(!text.contains("secret request data"), "{text}");
    }
}
