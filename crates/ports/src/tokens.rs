//! The token half of the port: what a token write carries across it, and
//! the one check every adapter runs before it writes one.
//!
//! A token row is not keyed by guild (a token may reach several guilds, or
//! all of them), but creating or revoking one is recorded in the chain of
//! every guild it names. So a [`TokenWrite`] carries the token row change
//! together with one chained [`ChangeSet`] per named guild, and the store
//! writes all of it in one transaction, or none of it.

use guildconf_domain::{GuildId, Operation, Timestamp, TokenInfo};

use crate::{inconsistent, ChangeSet, StoreResult};

/// What a token write does to the token table.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenChange {
    /// Store a new token.
    Insert {
        /// The token, everything but its secret (`revoked_at` empty).
        info: TokenInfo,
        /// Lowercase hex SHA-256 of the secret: the only trace of the
        /// secret the store ever sees.
        secret_sha256: String,
    },
    /// Mark a token revoked. A store that holds no unrevoked token with this
    /// id answers [`StoreError::Conflict`](crate::StoreError::Conflict) and
    /// writes nothing.
    Revoke {
        /// The token's public id.
        id: String,
        /// When it was revoked.
        revoked_at: Timestamp,
    },
}

/// Everything one token write changes: the token row and the event entry it
/// appends to each guild it names. Written by
/// [`ConfigStore::commit_token`](crate::ConfigStore::commit_token) in one
/// transaction, or not at all.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenWrite {
    /// The token row change.
    pub token: TokenChange,
    /// One change set per guild the token names (none for an unscoped
    /// token), each an event entry, in ascending guild order so that two
    /// token writes lock the guilds' heads in the same order.
    pub changes: Vec<ChangeSet>,
}

impl TokenWrite {
    /// Checks that the parts agree: every change set passes
    /// [`ChangeSet::check`] and is an event; the guilds are distinct and
    /// ascending; a new token's id and hash have their shape, it is not
    /// revoked, and its change sets are exactly for the guilds it names.
    ///
    /// # Errors
    /// [`StoreError::Storage`](crate::StoreError::Storage) naming the first
    /// disagreement.
    pub fn check(&self) -> StoreResult<()> {
        for change in &self.changes {
            change.check()?;
        }
        let guilds: Vec<GuildId> = self.changes.iter().map(|c| c.guild_id).collect();
        let problem = if !guilds.windows(2).all(|w| w[0] < w[1]) {
            Some("a token write's guilds must be distinct and ascending")
        } else if !self
            .changes
            .iter()
            .all(|c| matches!(c.entry.body().operation, Operation::Event(_)))
        {
            Some("a token write appends events only")
        } else {
            match &self.token {
                TokenChange::Insert {
                    info,
                    secret_sha256,
                } => {
                    if !is_token_id(&info.id) {
                        Some("a token id is 16 lowercase hex digits")
                    } else if !is_lower_hex(secret_sha256, 64) {
                        Some("a token's secret hash is 64 lowercase hex digits")
                    } else if info.revoked_at.is_some() {
                        Some("a new token is not revoked")
                    } else if info.guilds != guilds {
                        Some("a new token's events must be for exactly the guilds it names")
                    } else {
                        None
                    }
                }
                TokenChange::Revoke { id, .. } if !is_token_id(id) => {
                    Some("a token id is 16 lowercase hex digits")
                }
                TokenChange::Revoke { .. } => None,
            }
        };
        inconsistent("token write", problem)
    }
}

/// Whether `text` has the shape of a token id: 16 lowercase hex digits.
pub fn is_token_id(text: &str) -> bool {
    is_lower_hex(text, 16)
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
