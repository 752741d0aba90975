//! The read use cases: documents now, at a version or a time, the
//! defaults, the list of guilds and diffs between versions.

use guildconf_domain::json::get_at;
use guildconf_domain::{diff, redact_changes, Change, FieldPath, GuildConfig, GuildId, Operation};
use guildconf_ports::{GuildSummary, Head};
use serde_json::Value;

use super::{At, ConfigService, Shown};
use crate::error::{Error, Result};

impl ConfigService {
    /// The current document, or the defaults for a guild that has none
    /// (never configured or deleted), without writing anything.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails.
    pub async fn get_or_default(&self, guild: GuildId) -> Result<Shown> {
        match self.store.head(guild).await? {
            Some(Head {
                version,
                document: Some(document),
                ..
            }) => Ok(Shown {
                guild_id: guild,
                version,
                document,
            }),
            Some(head) => Ok(Shown {
                guild_id: guild,
                version: head.version,
                document: self.schema.defaults(),
            }),
            None => Ok(Shown {
                guild_id: guild,
                version: 0,
                document: self.schema.defaults(),
            }),
        }
    }

    /// The typed [`GuildConfig`] of a guild (defaults when unconfigured),
    /// for bots using the shipped schema.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails; [`Error::Corrupt`] when
    /// the stored document is not a `GuildConfig`.
    pub async fn guild_config(&self, guild: GuildId) -> Result<GuildConfig> {
        let shown = self.get_or_default(guild).await?;
        GuildConfig::from_document(&shown.document)
            .map_err(|_| Error::Corrupt("the stored document is not a GuildConfig".into()))
    }

    /// A document now, at a version, or at a time.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the guild, version or time has no document
    /// (before the guild existed, or deleted then).
    pub async fn get(&self, guild: GuildId, at: At) -> Result<Shown> {
        let version = match at {
            At::Now => {
                return match self.store.head(guild).await? {
                    Some(Head {
                        version,
                        document: Some(document),
                        ..
                    }) => Ok(Shown {
                        guild_id: guild,
                        version,
                        document,
                    }),
                    Some(h) if h.version > 0 => Err(Error::NotFound(format!(
                        "guild {guild}'s config is deleted"
                    ))),
                    // A head at version 0 has recorded events only.
                    Some(_) | None => Err(Error::NotFound(format!("guild {guild} has no config"))),
                };
            }
            At::Version(v) => v,
            At::Time(t) => match self.store.entry_at(guild, t).await? {
                Some((_, Operation::Delete)) => {
                    return Err(Error::NotFound(format!(
                        "guild {guild}'s config was deleted at {t}"
                    )))
                }
                Some((v, _)) => v,
                None => {
                    return Err(Error::NotFound(format!(
                        "guild {guild} had no config at {t}"
                    )))
                }
            },
        };
        match self.store.snapshot(guild, version).await? {
            Some(s) => Ok(Shown {
                guild_id: guild,
                version,
                document: s.document,
            }),
            None => Err(Error::NotFound(format!(
                "guild {guild} has no version {version}"
            ))),
        }
    }

    /// Every configured guild with its version and last change (also
    /// those whose config is deleted; not those that only recorded events,
    /// which never had a config).
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails.
    pub async fn list(&self) -> Result<Vec<GuildSummary>> {
        let mut guilds = self.store.list_guilds().await?;
        guilds.retain(|g| g.version > 0);
        Ok(guilds)
    }

    /// The (redacted) changes between two versions.
    ///
    /// # Errors
    /// [`Error::NotFound`] when either version does not exist.
    pub async fn diff(&self, guild: GuildId, from: u64, to: u64) -> Result<Vec<Change>> {
        let a = self.get(guild, At::Version(from)).await?;
        let b = self.get(guild, At::Version(to)).await?;
        Ok(redact_changes(
            &diff(&a.document, &b.document),
            &self.schema.secret_paths(),
        ))
    }
}

/// Reads the value at a path of a document (for `show --path`).
///
/// # Errors
/// [`Error::NotFound`] when the document has nothing at that path.
pub fn value_at(document: &Value, path: &FieldPath) -> Result<Value> {
    get_at(document, path.segments())
        .cloned()
        .ok_or_else(|| Error::NotFound(format!("nothing at {path}")))
}
