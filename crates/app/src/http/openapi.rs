//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations; what every `/api` route shares (the bearer scheme and the
//! problems any of them can answer) is added to each operation here, once.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi};

use super::problem::{ProblemBody, ProblemViolation, PROBLEM_JSON};
use super::{audit, config};

/// The security scheme's name in the document.
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "guildconf",
        description = "Each guild's configuration with an append-only, hash-chained audit \
                       trail: the command line's use cases over HTTP. Every /api request \
                       carries Authorization: Bearer <token>; errors are RFC 9457 problems."
    ),
    paths(
        config::guilds,
        config::show,
        config::patch,
        config::put,
        config::delete,
        config::revert,
        config::event,
        audit::history,
        audit::diff,
        audit::verify,
        audit::stats,
        audit::export,
    ),
    components(schemas(ProblemBody, ProblemViolation, audit::OutcomeParam, audit::StatsByParam)),
    modifiers(&Shared),
    tags(
        (name = "config", description = "Reading and writing a guild's config"),
        (name = "audit", description = "History, diffs, verification, counts and exports")
    )
)]
struct ApiDoc;

/// Adds what every `/api` operation shares.
struct Shared;

/// The problems any authenticated route can answer, besides its own.
const COMMON: [(&str, &str); 5] = [
    (
        "400",
        "Malformed: a parameter, header or body without the documented shape",
    ),
    (
        "422",
        "Unprocessable: well-formed, but its values are refused (every violation listed)",
    ),
    ("401", "No token, or one that is unknown or revoked"),
    (
        "403",
        "The token's role or guilds do not allow this (recorded in the guild's chain)",
    ),
    (
        "500",
        "The database failed, or holds data guildconf did not write",
    ),
];

fn problem(description: &str, challenge: bool) -> utoipa::openapi::Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ProblemBody")))
        .build();
    let mut builder = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content);
    if challenge {
        builder = builder.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(
                    "Bearer realm=\"guildconf\"[, error=\"invalid_token\"]",
                ))
                .build(),
        );
    }
    builder.build()
}

/// An optional parameter is absent or has a value: its schema does not
/// admit `null` (which utoipa writes for an `Option`), or a fuzzer would
/// send the text `null` as a value the document seems to allow.
fn not_nullable(schema: &mut RefOr<Schema>) {
    if let RefOr::T(Schema::Object(object)) = schema {
        if let SchemaType::Array(types) = &object.schema_type {
            let kept: Vec<Type> = types
                .iter()
                .filter(|t| **t != Type::Null)
                .cloned()
                .collect();
            if let [one] = kept.as_slice() {
                object.schema_type = SchemaType::Type(one.clone());
            }
        }
    }
}

/// What every write can answer besides the common problems.
const WRITES: [(&str, &str); 1] = [(
    "409",
    "An Idempotency-Key reused for another request, or a race still lost after the retries",
)];

/// What every route with a body can answer.
const BODIES: [(&str, &str); 1] = [("413", "The body is over the limit (1 MiB by default)")];

fn add_common(operation: &mut Operation, write: bool) {
    let mut extra: Vec<(&str, &str)> = COMMON.to_vec();
    if write {
        extra.extend(WRITES);
    }
    if operation.request_body.is_some() {
        extra.extend(BODIES);
    }
    for parameter in operation.parameters.iter_mut().flatten() {
        if let Some(schema) = parameter.schema.as_mut() {
            not_nullable(schema);
        }
    }
    operation.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
    for (status, description) in extra {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem(description, status == "401")));
    }
}

impl Modify for Shared {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            if let Some(operation) = item.get.as_mut() {
                add_common(operation, false);
            }
            for operation in [
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_common(operation, true);
            }
        }
    }
}

/// The OpenAPI 3.1 document of the API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// `GET /openapi.json` (no token needed): the document, rendered once.
pub(crate) async fn serve() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| openapi().to_json().unwrap_or_else(|_| "{}".to_owned()));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text.clone(),
    )
        .into_response()
}
