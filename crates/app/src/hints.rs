//! Head hints: the heads this process's own writes left behind, so the next
//! write to the same guild can skip reading its head.
//!
//! A hint is only ever a guess. The store moves a head only from the exact
//! seq and hash a change set was computed from, so a write computed from a
//! stale hint is refused as a conflict and nothing is written; the service
//! then forgets the hint and recomputes from a freshly read head. Every
//! outcome other than a commit (unchanged, not found, a version mismatch, bad
//! input) is decided on a freshly read head, never on a hint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use guildconf_domain::GuildId;
use guildconf_ports::Head;

/// How many guilds' heads a service remembers by default. Documents are at
/// most 64 KiB, so this bounds the hints at 16 MiB; a typical config is about
/// a kilobyte.
pub const DEFAULT_HEAD_HINTS: usize = 256;

/// A bounded map from guild to the head this process last wrote.
#[derive(Debug)]
pub(crate) struct HeadHints {
    capacity: usize,
    heads: Mutex<HashMap<GuildId, Arc<Head>>>,
}

impl HeadHints {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            heads: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    fn heads(&self) -> std::sync::MutexGuard<'_, HashMap<GuildId, Arc<Head>>> {
        // The map holds no invariant a panicking holder could break.
        self.heads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The head this process last wrote for `guild`, if it still remembers.
    pub(crate) fn get(&self, guild: GuildId) -> Option<Arc<Head>> {
        if !self.is_enabled() {
            return None;
        }
        self.heads().get(&guild).cloned()
    }

    /// Remembers `head` as its guild's; when full, forgets some other guild.
    pub(crate) fn put(&self, head: Head) {
        if !self.is_enabled() {
            return;
        }
        let mut heads = self.heads();
        if heads.len() >= self.capacity && !heads.contains_key(&head.guild_id) {
            if let Some(victim) = heads.keys().next().copied() {
                heads.remove(&victim);
            }
        }
        heads.insert(head.guild_id, Arc::new(head));
    }

    /// Forgets `guild`'s hint (it proved stale, or a write's outcome is
    /// unknown).
    pub(crate) fn forget(&self, guild: GuildId) {
        if self.is_enabled() {
            self.heads().remove(&guild);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guildconf_domain::{Actor, ActorKind, Timestamp};

    fn head(guild: u64, seq: u64) -> Head {
        Head {
            guild_id: GuildId::from_u64(guild).expect("valid id"),
            version: seq,
            seq,
            last_hash: "0".repeat(64),
            updated_at: Timestamp::parse_stored("2026-11-22T00:00:00.000000Z").expect("valid time"),
            actor: Actor::new("1", ActorKind::System, None).expect("valid actor"),
            document: None,
        }
    }

    fn gid(n: u64) -> GuildId {
        GuildId::from_u64(n).expect("valid id")
    }

    #[test]
    fn remembers_the_latest_head_and_forgets_on_request() {
        let hints = HeadHints::new(4);
        hints.put(head(10, 1));
        hints.put(head(10, 2));
        assert_eq!(hints.get(gid(10)).map(|h| h.seq), Some(2));
        hints.forget(gid(10));
        assert!(hints.get(gid(10)).is_none());
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let hints = HeadHints::new(3);
        for g in 10..20 {
            hints.put(head(g, 1));
            assert!(hints.heads().len() <= 3);
        }
        assert!(hints.get(gid(19)).is_some(), "the newest is kept");
        // Replacing a remembered guild's head evicts nothing.
        hints.put(head(19, 2));
        assert_eq!(hints.heads().len(), 3);
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let hints = HeadHints::new(0);
        hints.put(head(10, 1));
        assert!(hints.get(gid(10)).is_none());
    }
}
