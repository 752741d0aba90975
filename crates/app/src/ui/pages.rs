//! The pages themselves: the guild list, a guild's audit log, one entry,
//! the config at a version, and the result of a verify.

use askama::Template;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use guildconf_domain::{
    EntryBody, EventOutcome, FieldPath, GuildId, Operation, Permission, Timestamp,
};
use guildconf_ports::EntryFilter;
use serde::Deserialize;

use super::access::authorize;
use super::session::{bad_form, CsrfForm, Session};
use super::view::{json_pretty, Choice, EntryDetail, EntryRow};
use super::{render, Layout, PageError, UiState};
use crate::error::Error;
use crate::history::HistoryRequest;
use crate::service::At;
use crate::verify::VerifyReport;

/// Entries per page of the audit log.
const PAGE_SIZE: u32 = 50;

fn bad_path(e: PathRejection) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, "Invalid address", e.body_text())
}

fn bad_query(e: QueryRejection) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, "Invalid address", e.body_text())
}

/// The guild a page's address names, once the session's token may do
/// `permission` on it (a refusal is recorded and shown by [`authorize`]).
async fn allowed_guild(
    state: &UiState,
    session: &Session,
    guild: &str,
    permission: Permission,
) -> Result<GuildId, PageError> {
    let guild = GuildId::parse(guild).map_err(|e| {
        PageError::from(Error::invalid("/guild_id", format!("guild id {e}")))
            .within(&session.layout)
    })?;
    authorize(state, session, permission, guild).await?;
    Ok(guild)
}

/// One row of the guild list.
#[derive(Debug)]
struct GuildRow {
    id: String,
    version: u64,
    state: &'static str,
    updated: String,
    actor: String,
}

#[derive(Template)]
#[template(path = "guilds.html")]
struct GuildsPage {
    layout: Layout,
    rows: Vec<GuildRow>,
    scoped: bool,
}

/// `GET /`: the guilds the token covers (for a scoped token, also those of
/// its guilds that have no history yet).
pub(crate) async fn guilds(
    State(state): State<UiState>,
    session: Session,
) -> Result<Response, PageError> {
    let token = &session.token;
    let within = |e: Error| PageError::from(e).within(&session.layout);
    let mut summaries = state
        .service
        .store()
        .list_guilds()
        .await
        .map_err(|e| within(e.into()))?;
    summaries.retain(|g| token.allows(Permission::ReadConfig, Some(g.guild_id)));
    let mut rows: Vec<GuildRow> = summaries
        .iter()
        .map(|g| GuildRow {
            id: g.guild_id.to_string(),
            version: g.version,
            state: match (g.version, g.deleted) {
                (0, _) => "events only",
                (_, true) => "deleted",
                (_, false) => "configured",
            },
            updated: g.updated_at.to_string(),
            actor: g.actor.label.clone(),
        })
        .collect();
    for guild in &token.guilds {
        if !summaries.iter().any(|g| g.guild_id == *guild) {
            rows.push(GuildRow {
                id: guild.to_string(),
                version: 0,
                state: "no history yet",
                updated: String::new(),
                actor: String::new(),
            });
        }
    }
    rows.sort_by_key(|r| r.id.parse::<u64>().unwrap_or_default());
    Ok(render(&GuildsPage {
        layout: session.layout,
        rows,
        scoped: !token.is_unscoped(),
    }))
}

/// The audit log's filters, as typed into its form (and echoed back).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LogQuery {
    actor: String,
    action: String,
    outcome: String,
    path: String,
    since: String,
    until: String,
    cursor: String,
}

fn given(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.is_empty()).then_some(text)
}

/// A time filter: RFC 3339, or a bare date meaning its midnight UTC.
fn parse_time(name: &str, text: &str) -> Result<Timestamp, Error> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    Timestamp::parse_rfc3339(&full).map_err(|_| {
        Error::invalid(
            format!("/{name}"),
            format!(
                "{name} must be a date (2026-11-22) or an RFC 3339 time (2026-11-22T04:45:44Z)"
            ),
        )
    })
}

impl LogQuery {
    /// The history request these filters make for `guild`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first filter that does not parse.
    fn request(&self, guild: GuildId) -> Result<HistoryRequest, Error> {
        let mut request = HistoryRequest {
            guild_id: Some(guild),
            actor_id: given(&self.actor).map(str::to_owned),
            limit: Some(PAGE_SIZE),
            cursor: given(&self.cursor).map(str::to_owned),
            ..HistoryRequest::default()
        };
        if let Some(action) = given(&self.action) {
            // A whole action key or config operation filters by operation;
            // a bare family (`config`, `member`) by family.
            match Operation::parse(action) {
                Ok(op) => request.operation = Some(op),
                Err(_) if is_family(action) => request.filter.family = Some(action.to_owned()),
                Err(_) => {
                    return Err(Error::invalid(
                        "/action",
                        "action must be a config operation (create, update, revert, delete, \
                         purge), an action key family.verb, or a family (config, member, …)",
                    ))
                }
            }
        }
        request.filter = EntryFilter {
            outcome: given(&self.outcome)
                .map(|o| {
                    EventOutcome::parse(o)
                        .map_err(|e| Error::invalid("/outcome", format!("outcome {e}")))
                })
                .transpose()?,
            ..request.filter
        };
        request.path = given(&self.path).map(str::parse::<FieldPath>).transpose()?;
        request.since = given(&self.since)
            .map(|t| parse_time("since", t))
            .transpose()?;
        request.until = given(&self.until)
            .map(|t| parse_time("until", t))
            .transpose()?;
        Ok(request)
    }

    /// The query string of these filters with another cursor.
    fn with_cursor(&self, cursor: Option<&str>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("path", &self.path),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = given(value) {
                query.append_pair(name, v);
            }
        }
        if let Some(c) = cursor {
            query.append_pair("cursor", c);
        }
        query.finish()
    }

    fn filtered(&self) -> bool {
        [
            &self.actor,
            &self.action,
            &self.outcome,
            &self.path,
            &self.since,
            &self.until,
        ]
        .iter()
        .any(|v| given(v).is_some())
    }
}

fn is_family(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[derive(Template)]
#[template(path = "log.html")]
struct LogPage {
    layout: Layout,
    guild: String,
    q: LogQuery,
    outcomes: Vec<Choice>,
    rows: Vec<EntryRow>,
    /// The query string of the next (older) page.
    older: Option<String>,
    /// Whether this is a later page (so "newest" leads back).
    paged: bool,
    /// The query string of the first page with the same filters.
    newest: String,
    filtered: bool,
    error: Option<String>,
    can_verify: bool,
}

/// `GET /g/{guild}`: the guild's audit log, newest first, filtered, a page
/// at a time with an "older" link carrying the keyset cursor.
pub(crate) async fn log(
    State(state): State<UiState>,
    session: Session,
    guild: Result<Path<String>, PathRejection>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let within = |e: PageError| e.within(&session.layout);
    let Path(guild) = guild.map_err(|e| within(bad_path(e)))?;
    let Query(q) = query.map_err(|e| within(bad_query(e)))?;
    let guild = allowed_guild(&state, &session, &guild, Permission::ReadHistory).await?;
    let outcomes = EventOutcome::ALL
        .iter()
        .map(|o| Choice {
            value: o.as_str(),
            selected: given(&q.outcome) == Some(o.as_str()),
        })
        .collect();
    let mut page = LogPage {
        layout: session.layout.clone(),
        guild: guild.to_string(),
        outcomes,
        rows: Vec::new(),
        older: None,
        paged: given(&q.cursor).is_some(),
        newest: q.with_cursor(None),
        filtered: q.filtered(),
        error: None,
        can_verify: session.token.allows(Permission::Verify, Some(guild)),
        q,
    };
    let history = match page.q.request(guild) {
        Ok(request) => state.service.history(&request).await,
        Err(e) => Err(e),
    };
    match history {
        Ok(history) => {
            page.rows = history
                .entries
                .iter()
                .map(|e| EntryRow::of(&e.body))
                .collect();
            page.older = history
                .next_cursor
                .as_deref()
                .map(|c| page.q.with_cursor(Some(c)));
            Ok(render(&page))
        }
        // A filter that does not parse is shown above the form it came
        // from, with the form still filled in.
        Err(Error::Invalid(v)) => {
            page.error = Some(v.to_string());
            Ok((StatusCode::BAD_REQUEST, render(&page)).into_response())
        }
        Err(e) => Err(within(e.into())),
    }
}

/// A guild's chain, as verify found it.
#[derive(Debug)]
struct ChainStatus {
    ok: bool,
    entries: u64,
    problems: Vec<String>,
}

impl ChainStatus {
    fn of(report: &VerifyReport) -> Self {
        Self {
            ok: report.ok,
            entries: report.entries_checked,
            problems: report
                .problems
                .iter()
                .map(|p| match p.seq {
                    Some(seq) => format!("seq {seq}: {} ({})", p.message, p.problem),
                    None => format!("{} ({})", p.message, p.problem),
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "entry.html")]
struct EntryPage {
    layout: Layout,
    guild: String,
    entry: EntryDetail,
    /// `None` when the token may not verify (only auditors may).
    chain: Option<ChainStatus>,
}

/// `GET /g/{guild}/entries/{seq}`: one entry with its field diff, and the
/// guild's chain status when the token may verify.
pub(crate) async fn entry(
    State(state): State<UiState>,
    session: Session,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, PageError> {
    let within = |e: PageError| e.within(&session.layout);
    let Path((guild, seq)) = path.map_err(|e| within(bad_path(e)))?;
    let guild = allowed_guild(&state, &session, &guild, Permission::ReadHistory).await?;
    let seq =
        seq.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(|| {
            within(Error::invalid("/seq", "seq must be a positive integer").into())
        })?;
    let service = &state.service;
    let row = service
        .store()
        .entries(guild, seq - 1, None, 1, false)
        .await
        .map_err(|e| within(Error::from(e).into()))?
        .into_iter()
        .find(|r| r.seq == seq)
        .ok_or_else(|| {
            within(Error::NotFound(format!("guild {guild} has no entry {seq}")).into())
        })?;
    let body: EntryBody = serde_json::from_str(&row.body).map_err(|_| {
        within(Error::Corrupt(format!("guild {guild}'s entry {seq} does not parse")).into())
    })?;
    let chain = if session.token.allows(Permission::Verify, Some(guild)) {
        let report = service
            .verify(Some(guild))
            .await
            .map_err(|e| within(e.into()))?;
        Some(ChainStatus::of(&report))
    } else {
        None
    };
    Ok(render(&EntryPage {
        layout: session.layout.clone(),
        guild: guild.to_string(),
        entry: EntryDetail::of(&body, &row.entry_hash),
        chain,
    }))
}

/// The config page's one field.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ConfigQuery {
    version: String,
}

#[derive(Template)]
#[template(path = "config.html")]
struct ConfigPage {
    layout: Layout,
    guild: String,
    version: u64,
    current: u64,
    deleted: bool,
    document: String,
}

/// `GET /g/{guild}/config?version=N`: the config at version N (the current
/// one without N), secrets shown as `[redacted]`.
pub(crate) async fn config(
    State(state): State<UiState>,
    session: Session,
    guild: Result<Path<String>, PathRejection>,
    query: Result<Query<ConfigQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let within = |e: PageError| e.within(&session.layout);
    let Path(guild) = guild.map_err(|e| within(bad_path(e)))?;
    let Query(q) = query.map_err(|e| within(bad_query(e)))?;
    let guild = allowed_guild(&state, &session, &guild, Permission::ReadConfig).await?;
    let service = &state.service;
    let head = service
        .store()
        .head(guild)
        .await
        .map_err(|e| within(Error::from(e).into()))?
        .filter(|h| h.version > 0)
        .ok_or_else(|| within(Error::NotFound(format!("guild {guild} has no config")).into()))?;
    let version = match given(&q.version) {
        None => head.version,
        Some(v) => v.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
            within(Error::invalid("/version", "version must be a positive integer").into())
        })?,
    };
    let shown = service
        .get(guild, At::Version(version))
        .await
        .map_err(|e| within(e.into()))?;
    Ok(render(&ConfigPage {
        layout: session.layout.clone(),
        guild: guild.to_string(),
        version,
        current: head.version,
        deleted: head.document.is_none(),
        document: json_pretty(&service.redact(&shown.document)),
    }))
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage {
    layout: Layout,
    guild: String,
    chain: ChainStatus,
}

/// `POST /g/{guild}/verify`: verifies the guild's chain and shows the
/// result (auditor tokens only).
pub(crate) async fn verify(
    State(state): State<UiState>,
    session: Session,
    guild: Result<Path<String>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let within = |e: PageError| e.within(&session.layout);
    let Path(guild) = guild.map_err(|e| within(bad_path(e)))?;
    let Form(form) = form.map_err(|e| within(bad_form(e)))?;
    // The form token first: a forged post does nothing at all, not even
    // record a refusal.
    session.form_ok(&state, &form.csrf)?;
    let guild = allowed_guild(&state, &session, &guild, Permission::Verify).await?;
    let report = state
        .service
        .verify(Some(guild))
        .await
        .map_err(|e| within(e.into()))?;
    Ok(render(&VerifyPage {
        layout: session.layout.clone(),
        guild: guild.to_string(),
        chain: ChainStatus::of(&report),
    }))
}
