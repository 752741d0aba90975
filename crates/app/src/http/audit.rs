//! The audit routes: history (with every filter of the command line and a
//! cursor, also given as `Link: rel="next"`), diff, verify, stats and the
//! NDJSON export.

use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use guildconf_domain::{EventOutcome, Operation, Permission};
use guildconf_ports::{EntryFilter, StatsBy, StatsQuery};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::config::{guild, number, time, GuildParam};
use super::problem::Problem;
use super::Shared;
use crate::error::Error;
use crate::export::ExportRequest;
use crate::history::{HistoryRequest, MAX_LIMIT};

/// The filters of `GET …/history`, as the command line's.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// Only entries by this actor id.
    actor: Option<String>,
    /// Only this operation: create, update, revert, delete, purge, or an
    /// event's action key.
    #[param(pattern = "^[a-z0-9_]+(\\.[a-z0-9_]+)?$")]
    operation: Option<String>,
    /// Only entries that changed this path (dotted or a JSON Pointer), below
    /// it, or an ancestor of it.
    path: Option<String>,
    /// Entries at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Entries before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Only this family: config, or an action key's part before the dot.
    #[param(pattern = "^[a-z0-9_]+$")]
    family: Option<String>,
    /// Only this outcome (every config entry is `success`).
    #[param(value_type = Option<OutcomeParam>)]
    outcome: Option<String>,
    /// Only events whose target has this type.
    target_type: Option<String>,
    /// Only events whose target has this id.
    target_id: Option<String>,
    /// Entries per page (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page (or follow `Link: rel="next"`).
    cursor: Option<String>,
}

/// An event's outcome.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum OutcomeParam {
    /// It worked (every config entry).
    Success,
    /// It failed.
    Failed,
    /// Part of it worked.
    Partial,
    /// A notice.
    Info,
    /// It was refused.
    Blocked,
}

/// A page of history, as `guildconf history --json` prints it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryBody {
    /// Entries, newest first, in the export's format (docs/FORMAT.md).
    #[schema(value_type = Vec<Object>)]
    entries: Vec<Value>,
    /// The cursor of the next page; null on the last page.
    #[schema(nullable)]
    next_cursor: Option<String>,
}

fn invalid(path: &str, message: &str) -> Problem {
    Problem::invalid(path, message)
}

/// `family`: `config`, or the first part of an action key.
fn family(text: &str) -> Result<String, Problem> {
    let ok = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    ok.then(|| text.to_owned())
        .ok_or_else(|| invalid("/family", "must be a-z, 0-9 and _"))
}

fn optional<T>(
    text: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, Problem>,
) -> Result<Option<T>, Problem> {
    text.map(parse).transpose()
}

/// The `Link` header of the next page: this request's query with the
/// cursor replaced.
fn next_link(path: &str, query: Option<&str>, cursor: &str) -> Option<HeaderValue> {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k != "cursor" {
            out.append_pair(&k, &v);
        }
    }
    out.append_pair("cursor", cursor);
    HeaderValue::from_str(&format!("<{path}?{}>; rel=\"next\"", out.finish())).ok()
}

/// `GET /api/v1/guilds/{guild}/history`: one page of the guild's entries,
/// newest first, with `next_cursor` and a `Link: <…>; rel="next"` header
/// when there is a next page.
#[utoipa::path(get, path = "/api/v1/guilds/{guild}/history", tag = "audit",
    params(GuildParam, HistoryParams),
    responses(
        (status = 200, description = "A page of entries", body = HistoryBody,
            headers(("Link" = String, description = "<URL of the next page>; rel=\"next\", when there is one")))))]
pub(crate) async fn history(
    State(shared): State<Shared>,
    caller: Caller,
    Path(guild_text): Path<String>,
    Query(p): Query<HistoryParams>,
    RawQuery(raw): RawQuery,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, Problem> {
    let guild_id = guild(&guild_text)?;
    let request = HistoryRequest {
        guild_id: Some(guild_id),
        actor_id: p.actor,
        operation: optional(p.operation.as_deref(), |o| {
            // The pattern is the document's; which keys exist is not.
            Operation::parse(o).map_err(|e| Problem::unprocessable("/operation", e))
        })?,
        filter: EntryFilter {
            family: optional(p.family.as_deref(), family)?,
            outcome: optional(p.outcome.as_deref(), |o| {
                EventOutcome::parse(o).map_err(|e| Problem::invalid("/outcome", e))
            })?,
            target_type: p.target_type,
            target_id: p.target_id,
        },
        path: optional(p.path.as_deref(), |t| {
            t.parse()
                .map_err(|v: guildconf_domain::Violations| Error::from(v).into())
        })?,
        since: optional(p.since.as_deref(), |t| time("since", t))?,
        until: optional(p.until.as_deref(), |t| time("until", t))?,
        limit: optional(p.limit.as_deref(), |t| {
            let n = number("limit", t)?;
            u32::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| invalid("/limit", "must be from 1 to 1000"))
        })?,
        cursor: p.cursor,
    };
    caller
        .require(&shared, Permission::ReadHistory, Some(guild_id))
        .await?;
    let page = shared.state.service.history(&request).await?;
    let entries = page
        .entries
        .iter()
        .map(|e| e.to_json())
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Corrupt)?;
    let link = page.next_cursor.as_deref().and_then(|cursor| {
        // The path as the client sent it, so the link holds also where the
        // router is nested under a prefix.
        next_link(uri.path(), raw.as_deref(), cursor)
    });
    let mut response =
        Json(json!({"entries": entries, "next_cursor": page.next_cursor})).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// The versions `GET …/diff` compares.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DiffParams {
    /// From this version.
    #[param(value_type = u64, minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    from: Option<String>,
    /// To this version.
    #[param(value_type = u64, minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    to: Option<String>,
}

/// The changes between two versions, as `guildconf diff --json`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DiffBody {
    /// The guild id.
    guild_id: String,
    /// From this version.
    from: u64,
    /// To this version.
    to: u64,
    /// The changes (`op`, `path`, `before`, `after`), secrets redacted.
    #[schema(value_type = Vec<Object>)]
    changes: Vec<Value>,
}

/// `GET /api/v1/guilds/{guild}/diff?from=N&to=M`: the changes between two
/// versions, secrets redacted.
#[utoipa::path(get, path = "/api/v1/guilds/{guild}/diff", tag = "audit",
    params(GuildParam, DiffParams),
    responses(
        (status = 200, description = "The changes", body = DiffBody),
        (status = 404, description = "No such version", body = super::ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn diff(
    State(shared): State<Shared>,
    caller: Caller,
    Path(guild_text): Path<String>,
    Query(p): Query<DiffParams>,
) -> Result<Response, Problem> {
    let guild_id = guild(&guild_text)?;
    let required = |name: &str, v: Option<String>| {
        v.ok_or_else(|| invalid(&format!("/{name}"), "is required"))
            .and_then(|t| number(name, &t))
    };
    let (from, to) = (required("from", p.from)?, required("to", p.to)?);
    caller
        .require(&shared, Permission::ReadHistory, Some(guild_id))
        .await?;
    let changes = shared.state.service.diff(guild_id, from, to).await?;
    Ok(
        Json(json!({"guild_id": guild_id, "from": from, "to": to, "changes": changes}))
            .into_response(),
    )
}

/// The one guild a cross-guild route may be narrowed to.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GuildFilter {
    /// Only this guild (a scoped token must name one of its guilds).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    guild: Option<String>,
}

/// A verification's outcome, as `guildconf verify --json`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerifyBody {
    /// Whether every chain verified.
    ok: bool,
    /// Guilds looked at.
    guilds_checked: u64,
    /// Entries looked at.
    entries_checked: u64,
    /// The first failure of each failing guild.
    #[schema(value_type = Vec<Object>)]
    problems: Vec<Value>,
    /// Findings that are not failures.
    #[schema(value_type = Vec<Object>, required = false)]
    notices: Vec<Value>,
}

/// `GET /api/v1/verify[?guild=G]`: re-verifies the hash chains in the
/// database. A chain that fails is reported with `ok: false` and a 200:
/// the request itself succeeded.
#[utoipa::path(get, path = "/api/v1/verify", tag = "audit",
    params(GuildFilter),
    responses(
        (status = 200, description = "The report", body = VerifyBody),
        (status = 404, description = "The guild has no history", body = super::ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn verify(
    State(shared): State<Shared>,
    caller: Caller,
    Query(p): Query<GuildFilter>,
) -> Result<Response, Problem> {
    let guild_id = optional(p.guild.as_deref(), guild)?;
    caller
        .require(&shared, Permission::Verify, guild_id)
        .await?;
    let report = shared
        .state
        .service
        .verify_with(guild_id, &shared.options.verify)
        .await?;
    Ok(Json(report).into_response())
}

/// What `GET /api/v1/stats` counts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsParams {
    /// Count by operation, family, actor, outcome or day.
    #[param(value_type = StatsByParam)]
    by: Option<String>,
    /// Only this guild (a scoped token must name one of its guilds).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    guild: Option<String>,
    /// Entries at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Entries before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
}

/// What stats count by.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum StatsByParam {
    /// The operation or action key.
    Operation,
    /// `config` or the action key's family.
    Family,
    /// The actor id.
    Actor,
    /// The outcome.
    Outcome,
    /// The UTC day, YYYY-MM-DD.
    Day,
}

/// One count.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatsRowBody {
    /// The value counted by.
    key: String,
    /// How many entries have it.
    count: u64,
}

/// Counts, as `guildconf stats --json`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatsBody {
    /// In ascending key order.
    rows: Vec<StatsRowBody>,
}

/// `GET /api/v1/stats?by=…`: entries counted by the database.
#[utoipa::path(get, path = "/api/v1/stats", tag = "audit",
    params(StatsParams),
    responses((status = 200, description = "The counts", body = StatsBody)))]
pub(crate) async fn stats(
    State(shared): State<Shared>,
    caller: Caller,
    Query(p): Query<StatsParams>,
) -> Result<Response, Problem> {
    let by =
        p.by.as_deref()
            .ok_or_else(|| "is required".to_owned())
            .and_then(StatsBy::parse)
            .map_err(|e| invalid("/by", &e))?;
    let query = StatsQuery {
        guild_id: optional(p.guild.as_deref(), guild)?,
        since: optional(p.since.as_deref(), |t| time("since", t))?,
        until: optional(p.until.as_deref(), |t| time("until", t))?,
        by,
    };
    caller
        .require(&shared, Permission::Stats, query.guild_id)
        .await?;
    let rows = shared.state.service.stats(&query).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| json!({"key": r.key, "count": r.count}))
        .collect();
    Ok(Json(json!({ "rows": rows })).into_response())
}

/// What `GET /api/v1/export` streams.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportParams {
    /// Only this guild (a scoped token must name one of its guilds).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    guild: Option<String>,
    /// Entries at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
}

/// `GET /api/v1/export[?guild=G&since=T]`: entries as NDJSON, each line
/// byte-identical to `guildconf export`'s, streamed as the database is
/// read. A failure after the first bytes ends the body early (the chunked
/// encoding is not terminated), which a client sees as a broken download.
#[utoipa::path(get, path = "/api/v1/export", tag = "audit",
    params(ExportParams),
    responses(
        (status = 200, description = "One entry per line (docs/FORMAT.md)", content_type = "application/x-ndjson", body = String),
        (status = 404, description = "The guild has no history", body = super::ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn export(
    State(shared): State<Shared>,
    caller: Caller,
    Query(p): Query<ExportParams>,
) -> Result<Response, Problem> {
    let request = ExportRequest {
        guild_id: optional(p.guild.as_deref(), guild)?,
        since: optional(p.since.as_deref(), |t| time("since", t))?,
        ..ExportRequest::default()
    };
    caller
        .require(&shared, Permission::Export, request.guild_id)
        .await?;
    let chunks = shared.state.service.export_chunks(&request).await?;
    let stream = futures_util::stream::try_unfold(chunks, |mut chunks| async move {
        match chunks.next_chunk().await {
            Ok(Some(bytes)) => Ok(Some((bytes, chunks))),
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "the export failed while streaming");
                Err(std::io::Error::other(e.to_string()))
            }
        }
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        Body::from_stream(stream),
    )
        .into_response())
}
