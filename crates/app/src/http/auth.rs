//! Who is calling: the bearer token of every `/api` request, authenticated
//! by the service, the request
//! facts recorded with a write, and the permission check that records a
//! refusal on a guild in that guild's chain.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use guildconf_domain::{GuildId, Permission, RequestContext, TokenInfo};

use super::problem::Problem;
use super::Shared;
use crate::error::Error;
use crate::service::{check_meta, WriteMeta};

/// An authenticated caller: the token and the facts of the request that a
/// write records (never the token's secret), kept as they came and turned
/// into a `RequestContext` only by a write.
#[derive(Debug)]
pub(crate) struct Caller {
    /// The token, as stored.
    pub(crate) token: TokenInfo,
    ip: Option<IpAddr>,
    user_agent: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
}

/// The secret of an `Authorization: Bearer …` header.
fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Problem::unauthorized(
            "this request needs an Authorization: Bearer <token> header",
            false,
        ));
    };
    let malformed =
        || Problem::unauthorized("the Authorization header is not Bearer <token>", true);
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, secret) = text.split_once(' ').ok_or_else(malformed)?;
    let secret = secret.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || secret.is_empty() {
        return Err(malformed());
    }
    Ok(secret)
}

impl Caller {
    /// What a write records about the request: where it came from, never a
    /// credential (`RequestContext` drops keys that name one, removes
    /// control characters and cuts values).
    fn context(&self) -> RequestContext {
        let mut context = RequestContext::new().with("source", "http");
        if let Some(ip) = self.ip {
            context.insert("ip", &ip.to_string());
        }
        let text =
            |v: &Option<HeaderValue>| v.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned);
        if let Some(agent) = text(&self.user_agent) {
            context.insert("user_agent", &agent);
        }
        if let Some(id) = text(&self.request_id) {
            context.insert("x_request_id", &id);
        }
        context
    }
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, shared: &Shared) -> Result<Self, Problem> {
        let secret = bearer(&parts.headers)?;
        // The service hashes the secret and remembers recent answers
        // (`TOKEN_RECHECK_AFTER`); a revoked token authenticates nothing.
        let token = match shared.state.service.authenticate(secret).await? {
            Some(token) if token.revoked_at.is_none() => token,
            _ => {
                return Err(Problem::unauthorized(
                    "the token is unknown, malformed or revoked",
                    true,
                ))
            }
        };
        Ok(Self {
            token,
            ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
            user_agent: parts.headers.get(header::USER_AGENT).cloned(),
            request_id: parts.headers.get("x-request-id").cloned(),
        })
    }
}

impl Caller {
    /// The metadata of a write by this caller.
    pub(crate) fn meta(
        &self,
        reason: Option<String>,
        request_id: Option<String>,
    ) -> Result<WriteMeta, Problem> {
        let actor = self.token.actor().map_err(|v| {
            Error::Corrupt(format!("token {} has an invalid actor: {v}", self.token.id))
        })?;
        let mut meta = WriteMeta::new(actor);
        meta.reason = reason;
        meta.request_id = request_id;
        meta.context = self.context();
        // The service checks these again; checked here, a bad reason or key
        // is refused before a precondition is even looked at.
        check_meta(&meta)?;
        Ok(meta)
    }

    /// Passes when the token may do `permission` on `guild` (or across
    /// guilds, when `None`). A refusal on a guild is first recorded in that
    /// guild's chain as a `permission.denied` event (outcome `blocked`), so
    /// the answer is a 403 only once the refusal is stored; a refusal of a
    /// cross-guild request names no chain to record it in.
    pub(crate) async fn require(
        &self,
        shared: &Shared,
        permission: Permission,
        guild: Option<GuildId>,
    ) -> Result<(), Problem> {
        if self.token.allows(permission, guild) {
            return Ok(());
        }
        let role = self.token.role;
        let Some(guild) = guild else {
            let detail = if role.grants(permission) {
                format!("{permission} across every guild needs a token not scoped to guilds")
            } else {
                format!("a {role} token may not do {permission}")
            };
            return Err(Problem::forbidden(detail));
        };
        let meta = self.meta(None, None)?;
        // Boxed: the write's future is large, and on the hot path (allowed)
        // it would only make every request's future larger to move.
        Box::pin(
            shared
                .state
                .writer()
                .record_denial(guild, &self.token, permission, &meta),
        )
        .await?;
        let detail = if role.grants(permission) {
            format!("this token does not reach guild {guild}")
        } else {
            format!("a {role} token may not do {permission}")
        };
        Err(Problem::forbidden(detail))
    }
}
