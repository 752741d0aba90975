//! What every part writes with: the bench's guild ids, its actor and the
//! field its updates edit.

use guildconf::{Actor, ActorKind, GuildId, WriteMeta};

use crate::R;

pub fn gid(n: u64) -> R<GuildId> {
    GuildId::from_u64(1_000_000_000 + n)
}

pub fn meta() -> R<WriteMeta> {
    Ok(WriteMeta::new(
        Actor::new("80351110224678912", ActorKind::Human, Some("bench"))
            .map_err(|e| e.to_string())?,
    ))
}

pub fn welcome_path() -> guildconf::FieldPath {
    guildconf::FieldPath::from_segments(["onboarding", "welcome_message"])
}
