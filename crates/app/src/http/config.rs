//! The config routes: the guilds a token reaches, a guild's document (with
//! its version as the entity tag), and the writes: PATCH, PUT, DELETE,
//! revert and events.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use guildconf_domain::{EventOutcome, FieldPath, GuildId, Permission, Target, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::headers::{self, etag, Tags, IDEMPOTENCY_KEY};
use super::problem::Problem;
use super::Shared;
use crate::error::Error;
use crate::service::{At, FieldEdit, Outcome, WriteMeta, WriteResult};
use crate::Event;

/// A guild id from the path.
pub(crate) fn guild(text: &str) -> Result<GuildId, Problem> {
    GuildId::parse(text).map_err(|e| Problem::invalid("/guild_id", format!("guild id {e}")))
}

/// A non-negative integer from the query string.
pub(crate) fn number(name: &str, text: &str) -> Result<u64, Problem> {
    text.parse::<u64>()
        .map_err(|_| Problem::invalid(&format!("/{name}"), "must be a non-negative integer"))
}

/// An RFC 3339 time from the query string.
pub(crate) fn time(name: &str, text: &str) -> Result<Timestamp, Problem> {
    Timestamp::parse_rfc3339(text).map_err(|e| Problem::invalid(&format!("/{name}"), e))
}

/// A JSON body of type `T`.
pub(crate) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::invalid(
            "",
            format!("the body is not the JSON this route takes: {e}"),
        )
    })
}

/// One guild as `GET /api/v1/guilds` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GuildRow {
    /// The guild id.
    #[schema(pattern = "^[1-9][0-9]{0,18}$")]
    guild_id: String,
    /// Its config version.
    version: u64,
    /// Whether its config is deleted.
    deleted: bool,
    /// When it last changed (RFC 3339, UTC).
    updated_at: String,
    /// Who changed it last.
    actor: ActorBody,
}

/// An actor as an entry records it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActorBody {
    /// A user snowflake for humans; a name otherwise.
    id: String,
    /// `human`, `system`, `scheduled` or `integration`.
    kind: String,
    /// The display name at write time.
    label: String,
}

/// The guilds a token reaches.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GuildList {
    /// Every configured guild the token covers, by id.
    guilds: Vec<GuildRow>,
}

/// `GET /api/v1/guilds`: the configured guilds the token reaches (all of
/// them for an unscoped token), as `guildconf list --json`.
#[utoipa::path(get, path = "/api/v1/guilds", tag = "config",
    responses((status = 200, description = "The guilds", body = GuildList)))]
pub(crate) async fn guilds(
    State(shared): State<Shared>,
    caller: Caller,
) -> Result<Response, Problem> {
    // Every role reads config; the scope filters the list itself.
    let guilds = shared.state.service.list().await?;
    let rows: Vec<GuildRow> = guilds
        .iter()
        .filter(|g| caller.token.covers(g.guild_id))
        .map(|g| GuildRow {
            guild_id: g.guild_id.to_string(),
            version: g.version,
            deleted: g.deleted,
            updated_at: g.updated_at.to_string(),
            actor: ActorBody {
                id: g.actor.id.clone(),
                kind: g.actor.kind.as_str().to_owned(),
                label: g.actor.label.clone(),
            },
        })
        .collect();
    Ok(Json(GuildList { guilds: rows }).into_response())
}

/// A guild's document, as `guildconf show --json` prints it (secrets are
/// always `"[redacted]"` over HTTP).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConfigBody {
    /// The guild id.
    #[schema(pattern = "^[1-9][0-9]{0,18}$")]
    guild_id: String,
    /// The version shown (also the `ETag`).
    version: u64,
    /// The normalised document.
    #[schema(value_type = Object)]
    document: Value,
}

/// Which version `GET …/config` shows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ShowParams {
    /// Show this version instead of the current one.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    version: Option<String>,
    /// Show the document current at this time (RFC 3339 with an offset).
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
}

/// The guild path parameter of every guild route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct GuildParam {
    /// The guild id: a snowflake, a decimal integer from 1 to 2^63 − 1.
    #[param(value_type = u64, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    #[allow(dead_code)]
    guild: String,
}

/// `GET /api/v1/guilds/{guild}/config`: the current document (from the read
/// cache), or the one at `?version=N` or `?at=TIME`. `ETag: "N"`;
/// `If-None-Match` naming it answers 304.
#[utoipa::path(get, path = "/api/v1/guilds/{guild}/config", tag = "config",
    params(GuildParam, ShowParams,
        ("If-None-Match" = Option<String>, Header, description = "An entity tag list, or *: 304 when it names the version shown")),
    responses(
        (status = 200, description = "The document", body = ConfigBody,
            headers(("ETag" = String, description = "The version shown, quoted: \"N\""))),
        (status = 304, description = "Not modified: If-None-Match names this version",
            headers(("ETag" = String, description = "The version shown, quoted"))),
        (status = 404, description = "No such guild config, version or time", body = super::ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn show(
    State(shared): State<Shared>,
    caller: Caller,
    Path(guild_text): Path<String>,
    Query(params): Query<ShowParams>,
    headers::IfNoneMatch(if_none_match): headers::IfNoneMatch,
) -> Result<Response, Problem> {
    let guild = guild(&guild_text)?;
    let at = match (params.version, params.at) {
        (Some(v), None) => At::Version(number("version", &v)?),
        (None, Some(t)) => At::Time(time("at", &t)?),
        (None, None) => At::Now,
        (Some(_), Some(_)) => {
            return Err(Problem::unprocessable(
                "/version",
                "give version or at, not both",
            ))
        }
    };
    caller
        .require(&shared, Permission::ReadConfig, Some(guild))
        .await?;
    let service = &shared.state.service;
    let (version, body) = match (&shared.state.cache, at) {
        (Some(cache), At::Now) => {
            let cached = cache.get(guild).await?;
            if !cached.configured {
                return Err(Error::NotFound(if cached.version > 0 {
                    format!("guild {guild}'s config is deleted")
                } else {
                    format!("guild {guild} has no config")
                })
                .into());
            }
            let version = cached.version;
            let body = match shared.rendered.get(guild, version) {
                Some(body) => body,
                None => {
                    let body = render(guild, version, service.redact(&cached.document))?;
                    shared.rendered.put(guild, version, body.clone());
                    body
                }
            };
            (version, body)
        }
        _ => {
            // Boxed: a cold path, kept out of the cached read's future.
            let shown = Box::pin(service.get(guild, at)).await?;
            let document = service.redact(&shown.document);
            (shown.version, render(guild, shown.version, document)?)
        }
    };
    let tag = etag(version);
    if if_none_match.is_some_and(|t| t.matches_weakly(version)) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    Ok((
        [
            (header::ETAG, tag),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache"),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body,
    )
        .into_response())
}

/// The JSON body of a guild's document at a version.
fn render(guild: GuildId, version: u64, document: Value) -> Result<Bytes, Problem> {
    let body = ConfigBody {
        guild_id: guild.to_string(),
        version,
        document,
    };
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| Error::Storage(format!("cannot render a document: {e}")).into())
}

/// Most guilds whose rendered current document is kept; past it the
/// memory starts over.
const MAX_RENDERED: usize = 4096;

/// The body of `GET …/config` for the current version of recently read
/// guilds, redacted and serialised once per version. A version's document
/// never changes, so an entry is right as long as the read cache says the
/// guild is still at that version; the cache decides freshness, this only
/// saves the redaction and the serialisation.
#[derive(Debug, Default)]
pub(crate) struct Rendered(RwLock<HashMap<GuildId, (u64, Bytes)>>);

impl Rendered {
    fn get(&self, guild: GuildId, version: u64) -> Option<Bytes> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&guild)
            .filter(|(v, _)| *v == version)
            .map(|(_, body)| body.clone())
    }

    fn put(&self, guild: GuildId, version: u64, body: Bytes) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_RENDERED && !map.contains_key(&guild) {
            map.clear();
        }
        map.insert(guild, (version, body));
    }
}

/// A write's result, as the command line's `--json` prints it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WriteBody {
    /// The guild id.
    #[schema(pattern = "^[1-9][0-9]{0,18}$")]
    guild_id: String,
    /// The config version after the write (also the `ETag`).
    version: u64,
    /// What happened.
    outcome: Outcome,
    /// The new entry's hash; null when nothing changed.
    #[schema(nullable, pattern = "^[0-9a-f]{64}$")]
    entry_hash: Option<String>,
    /// Present and true when this is the stored result of an earlier
    /// request with the same `Idempotency-Key`.
    #[schema(required = false)]
    replayed: Option<bool>,
}

/// The `If-Match` header a write may carry.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(crate) struct IfMatchHeader {
    /// The version the write is meant for, `"N"` (a list of them), or `*`
    /// for any current config; 412 when the guild is at another.
    #[param(rename = "If-Match")]
    if_match: Option<String>,
}

/// The headers every write may carry (described here; read by
/// [`WriteRequest::new`]).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(crate) struct WriteHeaders {
    /// The write's request id: a retry with the same key returns the first
    /// result.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 128,
        pattern = "^[ -~]+$"
    )]
    idempotency_key: Option<String>,
    /// Why, when the body does not say.
    #[param(rename = "X-Reason", max_length = 1000, pattern = "^[ -~]*$")]
    x_reason: Option<String>,
}

/// What every write to one guild takes from its request: the guild, its
/// `If-Match`, and the metadata of the entry (the token's actor, the
/// reason, the idempotency key, the request's context).
struct WriteRequest {
    guild: GuildId,
    if_match: Option<Tags>,
    meta: WriteMeta,
}

impl WriteRequest {
    fn new(
        caller: &Caller,
        guild_text: &str,
        request_headers: &HeaderMap,
        reason_in_body: Option<String>,
    ) -> Result<Self, Problem> {
        Ok(Self {
            guild: guild(guild_text)?,
            if_match: headers::tags(request_headers, "if-match")?,
            meta: caller.meta(
                headers::reason(request_headers, reason_in_body)?,
                headers::text(request_headers, IDEMPOTENCY_KEY)?,
            )?,
        })
    }

    /// Checks the token may write the guild, then runs `write` under the
    /// `If-Match` precondition.
    async fn run<F, Fut>(
        self,
        shared: &Shared,
        caller: &Caller,
        write: F,
    ) -> Result<Response, Problem>
    where
        F: FnOnce(GuildId, WriteMeta) -> Fut,
        Fut: std::future::Future<Output = crate::Result<WriteResult>>,
    {
        let guild = self.guild;
        caller
            .require(shared, Permission::Write, Some(guild))
            .await?;
        guarded(shared, guild, self.if_match, self.meta, |meta| {
            write(guild, meta)
        })
        .await
    }
}

/// A write's answer: 201 for a created config, 200 otherwise, with the
/// version as `ETag`.
fn written(result: &WriteResult) -> Response {
    let status = if result.outcome == Outcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = serde_json::to_value(result).unwrap_or(Value::Null);
    (status, [(header::ETAG, etag(result.version))], Json(body)).into_response()
}

/// Runs a write that may carry `If-Match`: the versions it names become the
/// write's expected version, and a write refused because the guild is at
/// another version is 412 rather than 409.
async fn guarded<F, Fut>(
    shared: &Shared,
    guild: GuildId,
    if_match: Option<Tags>,
    mut meta: WriteMeta,
    write: F,
) -> Result<Response, Problem>
where
    F: FnOnce(WriteMeta) -> Fut,
    Fut: std::future::Future<Output = crate::Result<WriteResult>>,
{
    let service = &shared.state.service;
    let Some(tags) = if_match else {
        return Ok(written(&write(meta).await?));
    };
    let current = || async { Ok::<u64, Problem>(service.get_or_default(guild).await?.version) };
    let expected = match &tags {
        // `*`: any current config; a guild without one fails below.
        Tags::Any => None,
        Tags::Listed(_) => {
            let versions = tags.strong_versions();
            match versions.as_slice() {
                [] => {
                    return Err(Problem::precondition_failed(
                        "If-Match names no version (a strong tag such as \"3\")",
                    ))
                }
                [one] => Some(*one),
                // Several: whichever is current, if any, is the one expected.
                many => {
                    let now = current().await?;
                    if !many.contains(&now) {
                        return Err(Problem::precondition_failed(format!(
                            "guild {guild} is at version {now}, which If-Match does not name"
                        )));
                    }
                    Some(now)
                }
            }
        }
    };
    meta.expect_version = expected;
    match write(meta).await {
        Ok(result) => Ok(written(&result)),
        Err(Error::NotFound(m)) if tags == Tags::Any => Err(Problem::precondition_failed(format!(
            "If-Match: * needs a current config: {m}"
        ))),
        Err(Error::Conflict(m)) => match expected {
            Some(v) if current().await? != v => Err(Problem::precondition_failed(format!(
                "If-Match does not hold: {m}"
            ))),
            _ => Err(Error::Conflict(m).into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// The body of `PATCH …/config`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBody {
    /// Fields to set, by path (dotted, or a JSON Pointer for keys with a
    /// dot), to any JSON value.
    #[serde(default)]
    #[schema(value_type = Object)]
    set: Map<String, Value>,
    /// Fields to unset, by path: a map key removed, a field reset to its
    /// default. Unsets apply before sets.
    #[serde(default)]
    unset: Vec<String>,
    /// Why the change is made (or the `X-Reason` header).
    #[schema(max_length = 1000)]
    reason: Option<String>,
}

/// `PATCH /api/v1/guilds/{guild}/config`: sets and unsets fields, as
/// `guildconf set`. `If-Match` is optional; when given and the guild is at
/// another version, 412.
#[utoipa::path(patch, path = "/api/v1/guilds/{guild}/config", tag = "config",
    params(GuildParam,
        IfMatchHeader,
        WriteHeaders),
    request_body = PatchBody,
    responses(
        (status = 200, description = "Written (or unchanged)", body = WriteBody,
            headers(("ETag" = String, description = "The version after the write"))),
        (status = 404, description = "The guild has no config", body = super::ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not hold", body = super::ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn patch(
    State(shared): State<Shared>,
    caller: Caller,
    Path(guild_text): Path<String>,
    request_headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let request = body::<PatchBody>(&bytes)?;
    let edit = field_edit(request.set, &request.unset)?;
    let write = WriteRequest::new(&caller, &guild_text, &request_headers, request.reason)?;
    let service = shared.state.writer();
    write
        .run(&shared, &caller, |guild, meta| async move {
            service.update(guild, edit, &meta).await
        })
        .await
}

/// The edit of a PATCH body: every path parsed (every bad one reported),
/// at least one.
fn field_edit(set: Map<String, Value>, unset: &[String]) -> Result<FieldEdit, Problem> {
    let mut edit = FieldEdit::new();
    let mut problems = Vec::new();
    for path in unset {
        match path.parse::<FieldPath>() {
            Ok(p) => edit = edit.unset(p),
            Err(v) => problems.extend(v.0),
        }
    }
    for (path, value) in set {
        match path.parse::<FieldPath>() {
            Ok(p) => edit = edit.set(p, value),
            Err(v) => problems.extend(v.0),
        }
    }
    if !problems.is_empty() {
        return Err(Error::from(problems).into());
    }
    if edit.sets().is_empty() && edit.unsets().is_empty() {
        return Err(Problem::unprocessable(
            "/set",
            "give at least one path in set or unset",
        ));
    }
    Ok(edit)
}

/// `PUT /api/v1/guilds/{guild}/config`: replaces the whole document, as
/// `guildconf apply` (`"[redacted]"` keeps a stored secret). Needs
/// `If-Match: "N"` to replace version N, or `If-None-Match: *` to create.
#[utoipa::path(put, path = "/api/v1/guilds/{guild}/config", tag = "config",
    params(GuildParam,
        IfMatchHeader,
        ("If-None-Match" = Option<String>, Header, description = "* to create a config the guild does not have"),
        WriteHeaders),
    request_body(content = Object, description = "The whole document (a partial one is completed with the defaults)"),
    responses(
        (status = 200, description = "Replaced (or unchanged)", body = WriteBody,
            headers(("ETag" = String, description = "The version after the write"))),
        (status = 201, description = "Created", body = WriteBody,
            headers(("ETag" = String, description = "The version after the write"))),
        (status = 412, description = "If-Match or If-None-Match does not hold", body = super::ProblemBody, content_type = "application/problem+json"),
        (status = 428, description = "Neither If-Match nor If-None-Match: * was given", body = super::ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn put(
    State(shared): State<Shared>,
    caller: Caller,
    Path(guild_text): Path<String>,
    request_headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let document = body::<Value>(&bytes)?;
    let write = WriteRequest::new(&caller, &guild_text, &request_headers, None)?;
    let if_none_match = headers::tags(&request_headers, "if-none-match")?;
    let create = match (&write.if_match, &if_none_match) {
        (None, None) => {
            return Err(Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "PUT replaces the whole document: give If-Match: \"N\" with the version \
                 being replaced, or If-None-Match: * to create the config",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(Problem::unprocessable(
                "/headers/if-none-match",
                "give If-Match or If-None-Match, not both",
            ))
        }
        (None, Some(Tags::Any)) => true,
        (None, Some(Tags::Listed(_))) => {
            return Err(Problem::unprocessable(
                "/headers/if-none-match",
                "PUT takes If-None-Match: * only (to create)",
            ))
        }
        (Some(_), None) => false,
    };
    let service = shared.state.writer();
    if !create {
        return write
            .run(&shared, &caller, |guild, meta| async move {
                service.replace(guild, document, &meta).await
            })
            .await;
    }
    let guild = write.guild;
    caller
        .require(&shared, Permission::Write, Some(guild))
        .await?;
    match service.create(guild, document, &write.meta).await {
        Ok(result) => Ok(written(&result)),
        // An existing config is exactly what If-None-Match: * rules out.
        Err(Error::Conflict(m)) if service.get(guild, At::Now).await.is_ok() => Err(
            Problem::precondition_failed(format!("If-None-Match: * does not hold: {m}")),
        ),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /api/v1/guilds/{guild}/config`: deletes the config, as
/// `guildconf delete`; its history stays.
#[utoipa::path(delete, path = "/api/v1/guilds/{guild}/config", tag = "config",
    params(GuildParam,
        IfMatchHeader,
        WriteHeaders),
    responses(
        (status = 200, description = "Deleted", body = WriteBody,
            headers(("ETag" = String, description = "The version after the write"))),
        (status = 404, description = "The guild has no config", body = super::ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not hold", body = super::ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn delete(
    State(shared): State<Shared>,
    caller: Caller,
    Path(guild_text): Path<String>,
    request_headers: HeaderMap,
) -> Result<Response, Problem> {
    let write = WriteRequest::new(&caller, &guild_text, &request_headers, None)?;
    let service = shared.state.writer();
    write
        .run(&shared, &caller, |guild, meta| async move {
            service.delete(guild, &meta).await
        })
        .await
}

/// The body of `POST …/revert`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevertBody {
    /// The version to make current again.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    #[serde(deserialize_with = "whole_number")]
    to: u64,
    /// Why (or the `X-Reason` header).
    #[schema(max_length = 1000)]
    reason: Option<String>,
}

/// A JSON integer, also when written with a zero fraction (`3.0`): JSON
/// Schema calls both an integer, so both are one.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.007_199_254_740_992e15)
                .map(|f| f as u64)
        })
        .ok_or_else(|| {
            serde::de::Error::custom(format!("expected a non-negative integer, got {n}"))
        })
}

/// `POST /api/v1/guilds/{guild}/revert`: makes version `to` current again,
/// as a new entry (`guildconf revert`).
#[utoipa::path(post, path = "/api/v1/guilds/{guild}/revert", tag = "config",
    params(GuildParam,
        IfMatchHeader,
        WriteHeaders),
    request_body = RevertBody,
    responses(
        (status = 200, description = "Reverted (or unchanged)", body = WriteBody,
            headers(("ETag" = String, description = "The version after the write"))),
        (status = 404, description = "No such guild config or version", body = super::ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not hold", body = super::ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn revert(
    State(shared): State<Shared>,
    caller: Caller,
    Path(guild_text): Path<String>,
    request_headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let request = body::<RevertBody>(&bytes)?;
    // The document's bounds, checked before any precondition is.
    if request.to == 0 || i64::try_from(request.to).is_err() {
        return Err(Problem::invalid("/to", "must be a version, 1 to 2^63 - 1"));
    }
    let write = WriteRequest::new(&caller, &guild_text, &request_headers, request.reason)?;
    let service = shared.state.writer();
    let to = request.to;
    write
        .run(&shared, &caller, |guild, meta| async move {
            service.revert(guild, to, &meta).await
        })
        .await
}

/// What an event acted on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetBody {
    /// member, channel, role, … (a-z, 0-9 and _).
    #[serde(rename = "type")]
    #[schema(pattern = "^[a-z0-9_]{1,32}$")]
    kind: String,
    /// The target's id.
    #[schema(min_length = 1, max_length = 128)]
    id: String,
    /// The target's display name.
    #[schema(max_length = 128)]
    label: Option<String>,
}

/// The body of `POST …/events`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    /// A registered action key, `family.verb` (such as `member.role_added`).
    action: String,
    /// `success`, `failed`, `partial`, `info` or `blocked` (as the key allows).
    #[schema(value_type = super::audit::OutcomeParam)]
    outcome: String,
    /// What the action acted on.
    target: TargetBody,
    /// The facts the action key declares, by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    data: Map<String, Value>,
    /// Why (or the `X-Reason` header).
    #[schema(max_length = 1000)]
    reason: Option<String>,
}

/// `POST /api/v1/guilds/{guild}/events`: records an event (an admin action)
/// in the guild's chain, as `guildconf event`; the config is unchanged.
#[utoipa::path(post, path = "/api/v1/guilds/{guild}/events", tag = "config",
    params(GuildParam,
        WriteHeaders),
    request_body = EventBody,
    responses(
        (status = 200, description = "Recorded", body = WriteBody,
            headers(("ETag" = String, description = "The guild's config version (unchanged)")))))]
pub(crate) async fn event(
    State(shared): State<Shared>,
    caller: Caller,
    Path(guild_text): Path<String>,
    request_headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let request = body::<EventBody>(&bytes)?;
    let outcome =
        EventOutcome::parse(&request.outcome).map_err(|e| Problem::invalid("/outcome", e))?;
    let mut target = Target::new(request.target.kind, request.target.id);
    target.label = request.target.label;
    let event = Event {
        action: request.action,
        outcome,
        target,
        data: request.data,
    };
    let write = WriteRequest::new(&caller, &guild_text, &request_headers, request.reason)?;
    // Bad input is refused before the permission check records anything.
    shared
        .state
        .service
        .actions()
        .check(&event)
        .map_err(Error::from)?;
    let guild = write.guild;
    caller
        .require(&shared, Permission::Write, Some(guild))
        .await?;
    Ok(written(
        &shared
            .state
            .writer()
            .record(guild, &event, &write.meta)
            .await?,
    ))
}
