//! Signing in with a pasted token, the session cookie, and the CSRF tokens
//! every form carries.
//!
//! The session cookie holds the token itself, `HttpOnly` (no script reads
//! it), `SameSite=Strict` (no other site's page sends it) and scoped to the
//! pages' base path (the JSON API never receives it). Every request
//! authenticates it again, so a revoked token signs its browser out at once.
//!
//! A form's CSRF token is HMAC-SHA256, under a key only the server holds,
//! of the session's token (or, on the sign-in form, of a random nonce kept
//! in a cookie of its own): a page of another site can neither read it nor
//! compute it, and a form posted without it changes nothing.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use guildconf_domain::{RequestContext, TokenInfo};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use sha2::Sha256;

use super::{render, Layout, PageError, UiState};

/// The cookie that holds the signed-in token.
pub(crate) const SESSION_COOKIE: &str = "gc_session";
/// The cookie that holds the sign-in form's nonce.
pub(crate) const SIGNIN_COOKIE: &str = "gc_signin";

/// What a CSRF token is bound to, so a token made for one purpose is
/// refused for the other.
#[derive(Clone, Copy)]
enum Purpose {
    Session,
    SignIn,
}

fn mac(state: &UiState, purpose: Purpose, value: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.csrf_key).ok()?;
    let label: &[u8] = match purpose {
        Purpose::Session => b"guildconf-ui session\0",
        Purpose::SignIn => b"guildconf-ui signin\0",
    };
    mac.update(label);
    mac.update(value.as_bytes());
    Some(mac)
}

/// The CSRF token for `value` (the session's token or the sign-in nonce).
fn csrf_token(state: &UiState, purpose: Purpose, value: &str) -> String {
    mac(state, purpose, value)
        .map(|m| URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Whether `presented` is the CSRF token for `value`, compared in
/// constant time.
fn csrf_ok(state: &UiState, purpose: Purpose, value: &str, presented: &str) -> bool {
    let (Some(mac), Ok(bytes)) = (
        mac(state, purpose, value),
        URL_SAFE_NO_PAD.decode(presented),
    ) else {
        return false;
    };
    mac.verify_slice(&bytes).is_ok()
}

/// The value of cookie `name` in the request, if sent.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, scoped to the base
/// path, `Secure` when the state says so; `max_age` 0 deletes the cookie,
/// `None` makes it last until the browser closes.
fn set_cookie(state: &UiState, name: &str, value: &str, max_age: Option<u32>) -> HeaderValue {
    let mut text = format!(
        "{name}={value}; Path={}; HttpOnly; SameSite=Strict",
        state.base
    );
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if state.secure_cookies {
        text.push_str("; Secure");
    }
    // Every part is checked text (the base path, base64url, a token that
    // authenticated), so the value is always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A signed-in request: the token, the form token of its session, what
/// every page shows around its content, and the request's context for the
/// events it may record.
pub(crate) struct Session {
    /// The token the browser signed in with, as it is now.
    pub token: TokenInfo,
    /// The frame of every page, with this session's CSRF token.
    pub layout: Layout,
    /// `source` `ui`, the client's ip, user agent, request id and path.
    pub context: RequestContext,
    /// The cookie's secret, which this session's CSRF token is bound to.
    secret: String,
}

impl std::fmt::Debug for Session {
    // The secret is the bearer token: it never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token", &self.token)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether a posted form carries this session's CSRF token.
    ///
    /// # Errors
    /// A 403 page, and nothing done, when it does not.
    pub fn form_ok(&self, state: &UiState, presented: &str) -> Result<(), PageError> {
        if csrf_ok(state, Purpose::Session, &self.secret, presented) {
            Ok(())
        } else {
            Err(forged().within(&self.layout))
        }
    }
}

fn forged() -> PageError {
    PageError::new(
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form expired or did not come from these pages (its CSRF token is missing or \
         wrong), so nothing was done. Reload the page and try again.",
    )
}

fn request_context(parts: &Parts) -> RequestContext {
    let mut context = RequestContext::new().with("source", "ui");
    if let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        context.insert("ip", &addr.ip().to_string());
    }
    if let Some(ua) = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        context.insert("user_agent", ua);
    }
    if let Some(id) = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        context.insert("request_id", id);
    }
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.path(), |o| o.0.path());
    context.insert("path", path);
    context
}

impl FromRequestParts<UiState> for Session {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> Result<Self, PageError> {
        let sign_in = || PageError::SignIn {
            base: state.base.clone(),
        };
        let secret = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(sign_in)?;
        let token = state
            .service
            .authenticate(&secret)
            .await?
            .ok_or_else(sign_in)?;
        let layout = Layout {
            base: state.base.clone(),
            who: Some(format!("{} ({})", token.label, token.role)),
            csrf: csrf_token(state, Purpose::Session, &secret),
        };
        Ok(Session {
            token,
            layout,
            context: request_context(parts),
            secret,
        })
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    layout: Layout,
    csrf: String,
    error: Option<String>,
}

/// `GET /signin`: the form, with a fresh nonce cookie its CSRF token is
/// bound to.
pub(crate) async fn signin_form(State(state): State<UiState>) -> Response {
    let mut nonce = [0u8; 16];
    OsRng.fill_bytes(&mut nonce);
    let nonce = URL_SAFE_NO_PAD.encode(nonce);
    let page = SignInPage {
        layout: Layout {
            base: state.base.clone(),
            ..Layout::default()
        },
        csrf: csrf_token(&state, Purpose::SignIn, &nonce),
        error: None,
    };
    let mut response = render(&page);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SIGNIN_COOKIE, &nonce, Some(3600)),
    );
    response
}

/// The fields of the sign-in form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SignInForm {
    token: String,
    csrf: String,
}

/// `POST /signin`: checks the form token, then the pasted token; a token
/// that authenticates becomes the session cookie.
pub(crate) async fn signin(
    State(state): State<UiState>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(bad_form)?;
    let nonce = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if nonce.is_empty() || !csrf_ok(&state, Purpose::SignIn, &nonce, &form.csrf) {
        return Err(forged());
    }
    let again = |status: StatusCode, error: &str| {
        let page = SignInPage {
            layout: Layout {
                base: state.base.clone(),
                ..Layout::default()
            },
            csrf: form.csrf.clone(),
            error: Some(error.to_owned()),
        };
        (status, render(&page)).into_response()
    };
    let secret = form.token.trim();
    if secret.is_empty() {
        return Ok(again(StatusCode::BAD_REQUEST, "Paste a token to sign in."));
    }
    match state.service.authenticate(secret).await? {
        None => Ok(again(
            StatusCode::UNAUTHORIZED,
            "That token is unknown, malformed or revoked.",
        )),
        Some(_) => {
            let mut response = Redirect::to(&state.base).into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(&state, SESSION_COOKIE, secret, None),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(&state, SIGNIN_COOKIE, "", Some(0)),
            );
            Ok(response)
        }
    }
}

/// The field every signed-in form carries.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CsrfForm {
    pub csrf: String,
}

/// `POST /signout`: forgets the session cookie.
pub(crate) async fn signout(
    State(state): State<UiState>,
    session: Session,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(bad_form)?;
    session.form_ok(&state, &form.csrf)?;
    let mut response = Redirect::to(&format!("{}/signin", state.base)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", Some(0)),
    );
    Ok(response)
}

/// A form body that is not a form.
pub(crate) fn bad_form(e: axum::extract::rejection::FormRejection) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, "Invalid form", e.body_text())
}
