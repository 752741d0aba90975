//! What a signed-in token may see, and the record of what it was refused.
//!
//! The rule is the API's: a token may do what its role grants on the guilds
//! it covers ([`TokenInfo::allows`]). A refusal is a 403 page and a
//! `permission.denied` event, outcome `blocked`, in the chain of the guild
//! that was asked for, so a guild's admins see who tried to look.

use axum::http::StatusCode;
use guildconf_domain::{GuildId, Permission, RequestContext, TokenInfo};

use super::session::Session;
use super::{PageError, UiState};
use crate::error::Result;
use crate::service::{ConfigService, WriteMeta};

/// Lets the request through when the session's token may do `permission`
/// on `guild`.
///
/// # Errors
/// Otherwise records the refusal in `guild`'s chain and returns the 403
/// page; when the refusal cannot be recorded, the storage error page (the
/// request is refused either way).
pub(crate) async fn authorize(
    state: &UiState,
    session: &Session,
    permission: Permission,
    guild: GuildId,
) -> std::result::Result<(), PageError> {
    if session.token.allows(permission, Some(guild)) {
        return Ok(());
    }
    record_denial(
        &state.service,
        &session.token,
        permission,
        guild,
        &session.context,
    )
    .await
    .map_err(|e| PageError::from(e).within(&session.layout))?;
    let why = if session.token.covers(guild) {
        format!("its role, {}, does not allow it", session.token.role)
    } else {
        "the token is not scoped to this guild".to_owned()
    };
    Err(PageError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "This token ({}) may not {} of guild {guild}: {why}. The refusal is recorded in \
             that guild's audit log.",
            session.token.label,
            what(permission),
        ),
    )
    .within(&session.layout))
}

/// Records that `token` was refused `permission` on `guild`: a
/// `permission.denied` event, outcome `blocked`, target the token (type
/// `token`, id its public id), data `{"permission": "<name>"}`, written as
/// the token's actor with the request's context.
///
/// # Errors
/// [`crate::Error::Storage`] when the event cannot be written.
pub(crate) async fn record_denial(
    service: &ConfigService,
    token: &TokenInfo,
    permission: Permission,
    guild: GuildId,
    context: &RequestContext,
) -> Result<()> {
    let mut meta = WriteMeta::new(token.actor()?);
    meta.context = context.clone();
    service
        .record_denial(guild, token, permission, &meta)
        .await?;
    Ok(())
}

/// What a permission lets a holder do, for the refusal page.
fn what(permission: Permission) -> &'static str {
    match permission {
        Permission::ReadConfig => "read the config",
        Permission::ReadHistory => "read the audit log",
        Permission::Write => "change the config",
        Permission::Export => "export the audit log",
        Permission::Verify => "verify the chain",
        Permission::Stats => "count the entries",
    }
}
