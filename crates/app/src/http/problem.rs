//! RFC 9457 problem details: every error the API answers, and the
//! middleware that turns the framework's own plain-text refusals (an unknown
//! route, a wrong method, a body over the limit) into the same shape.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use guildconf_domain::Violation;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Error;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The most bytes of a framework refusal's text kept as a problem's detail.
const MAX_DETAIL_BYTES: usize = 4096;

/// An error answer: status, the CLI's error code and a sentence, with every
/// violation of invalid input listed.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
    errors: Vec<Violation>,
    /// A `WWW-Authenticate` challenge (401 only).
    challenge: Option<&'static str>,
}

/// One violation of invalid input: where (a JSON Pointer into the request)
/// and what is wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemViolation {
    /// A JSON Pointer to the offending value (`""` for the whole input).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem details object, served as `application/problem+json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `urn:guildconf:problem:` followed by `code`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The error code the command line prints for the same condition
    /// (`invalid_input`, `not_found`, `conflict`, `storage`, `corrupt`), or
    /// one of the HTTP-only codes (`unauthorized`, `forbidden`,
    /// `precondition_failed`, `precondition_required`, `method_not_allowed`,
    /// `internal`).
    pub code: String,
    /// Every violation, for `invalid_input`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemViolation>,
}

impl Problem {
    /// A problem with a status, a code and a sentence.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            challenge: None,
        }
    }

    /// 401: no credentials, or credentials that authenticate nobody.
    /// `invalid` says a token was presented (RFC 6750's `invalid_token`).
    pub fn unauthorized(detail: impl Into<String>, invalid: bool) -> Self {
        let mut p = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        p.challenge = Some(if invalid {
            r#"Bearer realm="guildconf", error="invalid_token""#
        } else {
            r#"Bearer realm="guildconf""#
        });
        p
    }

    /// 403: the token may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 412: a precondition header does not hold.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            detail,
        )
    }

    /// 400 `invalid_input` with one violation at `path`: the request does
    /// not have the shape the OpenAPI document gives it (a parameter that
    /// does not parse, a body that is not the route's JSON).
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        let mut p = Self::from(Error::invalid(path, message));
        p.status = StatusCode::BAD_REQUEST;
        p
    }

    /// 422 `invalid_input` with one violation at `path`: the request has
    /// the documented shape, but its values are refused.
    pub fn unprocessable(path: &str, message: impl Into<String>) -> Self {
        Error::invalid(path, message).into()
    }

    fn body(&self) -> ProblemBody {
        ProblemBody {
            kind: format!("urn:guildconf:problem:{}", self.code),
            title: title(self.status).to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            errors: self
                .errors
                .iter()
                .map(|v| ProblemViolation {
                    path: v.path.clone(),
                    message: v.message.clone(),
                })
                .collect(),
        }
    }
}

/// The short, fixed summary of a status.
fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(v) => {
                let detail =
                    v.0.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                // The service refuses values, never shapes: the request
                // parsed, so it is unprocessable rather than malformed.
                Self {
                    errors: v.0,
                    ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", detail)
                }
            }
            Error::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found", m),
            Error::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            Error::Storage(m) => {
                tracing::error!(error = %m, "storage error answering a request");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", m)
            }
            Error::Corrupt(m) => {
                tracing::error!(error = %m, "corrupt data answering a request");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt", m)
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// The code of an error status the framework answered by itself.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        s if s.is_server_error() => "internal",
        // 400, 413, 415, 422 and the rest: the request was not acceptable.
        _ => "invalid_input",
    }
}

/// Middleware: an error answer that is not problem+json yet (axum's 404 for
/// an unknown route, its 405 with `Allow`, a body-limit 413, an extractor's
/// rejection) becomes one, keeping the status, the headers and the text as
/// its detail; everything else passes untouched.
pub async fn problem_for_plain_errors<B>(response: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response.map(Body::new);
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(Body::new(body), MAX_DETAIL_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        title(status).to_owned()
    } else {
        text
    };
    let problem = Problem::new(status, code_of(status), detail).into_response();
    let (problem_parts, problem_body) = problem.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if status == StatusCode::UNAUTHORIZED && !parts.headers.contains_key(header::WWW_AUTHENTICATE) {
        parts.headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="guildconf""#),
        );
    }
    drop(problem_parts);
    Response::from_parts(parts, Body::new(problem_body))
}

/// The answer to a handler that panicked: a 500 problem instead of a
/// dropped connection (tower-http's `CatchPanic` calls it).
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server failed while answering this request",
    )
    .into_response()
}
