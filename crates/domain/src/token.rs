//! API tokens: who may do what over HTTP.
//!
//! A token is a bearer secret that stands for an integration (or a person)
//! with one [`TokenRole`], scoped to a list of guilds or to all of them. The
//! secret itself never reaches a store: only its SHA-256 does, and a request
//! is matched by hashing the presented secret. This module holds the pure
//! part: roles, permissions, the scope rule and the actor a token writes as.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::actor::{Actor, ActorKind};
use crate::ids::GuildId;
use crate::time::Timestamp;
use crate::violation::{Violation, Violations};

/// Longest token label, in characters.
pub const MAX_TOKEN_LABEL: usize = 128;
/// Most guilds one token may be scoped to.
pub const MAX_TOKEN_GUILDS: usize = 100;

/// What a token's holder may do.
///
/// Roles are not nested in a line: an editor writes but cannot export; an
/// auditor exports, verifies and reads stats but cannot write. Both read
/// config and history, as a viewer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Reads config and history.
    Viewer,
    /// Reads, and writes config and events.
    Editor,
    /// Reads, and exports, verifies and reads stats.
    Auditor,
}

impl TokenRole {
    /// Every role.
    pub const ALL: [TokenRole; 3] = [TokenRole::Viewer, TokenRole::Editor, TokenRole::Auditor];

    /// The role's name as written on the command line and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Viewer => "viewer",
            TokenRole::Editor => "editor",
            TokenRole::Auditor => "auditor",
        }
    }

    /// Parses a role name.
    ///
    /// # Errors
    /// A sentence naming the roles there are.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "viewer" => Ok(TokenRole::Viewer),
            "editor" => Ok(TokenRole::Editor),
            "auditor" => Ok(TokenRole::Auditor),
            other => Err(format!(
                "unknown role {other:?}: expected viewer, editor or auditor"
            )),
        }
    }

    /// Whether this role grants `permission` (on a guild within the token's
    /// scope; the scope is [`TokenInfo::allows`]'s business).
    pub fn grants(self, permission: Permission) -> bool {
        match permission {
            Permission::ReadConfig | Permission::ReadHistory => true,
            Permission::Write => self == TokenRole::Editor,
            Permission::Export | Permission::Verify | Permission::Stats => {
                self == TokenRole::Auditor
            }
        }
    }
}

impl fmt::Display for TokenRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read a guild's config (any version) and list guilds.
    ReadConfig,
    /// Read a guild's history and diffs.
    ReadHistory,
    /// Write config (set, apply, revert, delete) and record events.
    Write,
    /// Export entries.
    Export,
    /// Verify chains.
    Verify,
    /// Count entries (`stats`).
    Stats,
}

impl Permission {
    /// The name recorded in a `permission.denied` event's `permission` data.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ReadConfig => "config.read",
            Permission::ReadHistory => "history.read",
            Permission::Write => "config.write",
            Permission::Export => "audit.export",
            Permission::Verify => "audit.verify",
            Permission::Stats => "audit.stats",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as stored and listed: everything but its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token's public id (16 lowercase hex digits), shown by `token list`
    /// and recorded in events; it is not the secret.
    pub id: String,
    /// What the holder may do.
    pub role: TokenRole,
    /// The guilds it may touch, ascending; empty means every guild.
    pub guilds: Vec<GuildId>,
    /// Who or what holds it, for people; it is the actor label of its writes.
    pub label: String,
    /// A person's user id bound to the token: its writes are then attributed
    /// to that human instead of to an integration named by the label.
    pub human_id: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked; a revoked token authenticates nothing.
    pub revoked_at: Option<Timestamp>,
}

impl TokenInfo {
    /// Checks the parts a caller chose (label, human id, guild list) and
    /// sorts and deduplicates the guilds.
    ///
    /// # Errors
    /// Every violation: `/label` empty, too long or with control characters;
    /// `/human_id` not a snowflake; `/guilds` over [`MAX_TOKEN_GUILDS`].
    pub fn check(mut self) -> Result<Self, Violations> {
        let mut problems = Vec::new();
        let n = self.label.chars().count();
        if n == 0 || n > MAX_TOKEN_LABEL {
            problems.push(Violation::new(
                "/label",
                format!("must be 1 to {MAX_TOKEN_LABEL} characters, got {n}"),
            ));
        } else if self.label.chars().any(char::is_control) {
            problems.push(Violation::new(
                "/label",
                "must not contain control characters",
            ));
        }
        if let Some(human) = &self.human_id {
            if let Err(v) = Actor::new(human, ActorKind::Human, None) {
                problems.extend(
                    v.0.into_iter()
                        .map(|p| Violation::new("/human_id", p.message)),
                );
            }
        }
        self.guilds.sort_unstable();
        self.guilds.dedup();
        if self.guilds.len() > MAX_TOKEN_GUILDS {
            problems.push(Violation::new(
                "/guilds",
                format!(
                    "a token names at most {MAX_TOKEN_GUILDS} guilds, got {}",
                    self.guilds.len()
                ),
            ));
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Violations(problems))
        }
    }

    /// Whether the token is scoped to every guild.
    pub fn is_unscoped(&self) -> bool {
        self.guilds.is_empty()
    }

    /// Whether the token reaches `guild` (always, when unscoped).
    pub fn covers(&self, guild: GuildId) -> bool {
        self.is_unscoped() || self.guilds.binary_search(&guild).is_ok()
    }

    /// Whether the holder may do `permission`: on `guild` when one is named,
    /// or across all guilds (only an unscoped token may) when `None`.
    /// A revoked token is allowed nothing.
    pub fn allows(&self, permission: Permission, guild: Option<GuildId>) -> bool {
        if self.revoked_at.is_some() || !self.role.grants(permission) {
            return false;
        }
        match guild {
            Some(guild) => self.covers(guild),
            None => self.is_unscoped(),
        }
    }

    /// The actor the token's writes are attributed to: the bound person
    /// (kind `human`, labelled with the token's label), else an integration
    /// whose id and label are the token's label.
    ///
    /// # Errors
    /// Only for a record that bypassed [`TokenInfo::check`].
    pub fn actor(&self) -> Result<Actor, Violations> {
        match &self.human_id {
            Some(human) => Actor::new(human, ActorKind::Human, Some(&self.label)),
            None => Actor::new(&self.label, ActorKind::Integration, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guild(n: u64) -> GuildId {
        GuildId::parse(&n.to_string()).expect("a valid test guild id")
    }

    fn token(role: TokenRole, guilds: Vec<GuildId>) -> TokenInfo {
        TokenInfo {
            id: "00112233aabbccdd".into(),
            role,
            guilds,
            label: "dashboard".into(),
            human_id: None,
            created_at: Timestamp::parse_rfc3339("2026-12-07T00:00:00Z").expect("a valid time"),
            revoked_at: None,
        }
        .check()
        .expect("a valid token")
    }

    #[test]
    fn each_role_grants_exactly_its_permissions() {
        use Permission::*;
        let table = [
            (TokenRole::Viewer, vec![ReadConfig, ReadHistory]),
            (TokenRole::Editor, vec![ReadConfig, ReadHistory, Write]),
            (
                TokenRole::Auditor,
                vec![ReadConfig, ReadHistory, Export, Verify, Stats],
            ),
        ];
        for (role, granted) in table {
            for p in [ReadConfig, ReadHistory, Write, Export, Verify, Stats] {
                assert_eq!(role.grants(p), granted.contains(&p), "{role} {p}");
            }
        }
    }

    #[test]
    fn a_scoped_token_reaches_only_its_guilds_and_never_all() {
        let scoped = token(TokenRole::Auditor, vec![guild(2_000_000), guild(1_000_000)]);
        assert_eq!(scoped.guilds, vec![guild(1_000_000), guild(2_000_000)]);
        assert!(scoped.allows(Permission::Export, Some(guild(1_000_000))));
        assert!(!scoped.allows(Permission::Export, Some(guild(3_000_000))));
        assert!(!scoped.allows(Permission::Export, None));
        let unscoped = token(TokenRole::Auditor, vec![]);
        assert!(unscoped.allows(Permission::Export, None));
        assert!(unscoped.allows(Permission::Verify, Some(guild(3_000_000))));
    }

    #[test]
    fn a_revoked_token_is_allowed_nothing() {
        let mut t = token(TokenRole::Editor, vec![]);
        t.revoked_at = Some(t.created_at);
        assert!(!t.allows(Permission::ReadConfig, Some(guild(1_000_000))));
    }

    #[test]
    fn the_actor_is_the_bound_human_or_the_label_as_integration() {
        let mut t = token(TokenRole::Editor, vec![]);
        let a = t.actor().expect("valid");
        assert_eq!(
            (a.id.as_str(), a.kind),
            ("dashboard", ActorKind::Integration)
        );
        t.human_id = Some("80351110224678912".into());
        let a = t.actor().expect("valid");
        assert_eq!(
            (a.id.as_str(), a.kind, a.label.as_str()),
            ("80351110224678912", ActorKind::Human, "dashboard")
        );
    }

    #[test]
    fn bad_labels_and_humans_are_named() {
        let mut t = token(TokenRole::Viewer, vec![]);
        t.label = "a\u{7}b".into();
        t.human_id = Some("alice".into());
        let err = t.check().expect_err("invalid");
        let paths: Vec<_> = err.0.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, vec!["/label", "/human_id"]);
    }
}
