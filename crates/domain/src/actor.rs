//! Who made a change.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::Snowflake;
use crate::violation::{Violation, Violations};

/// The kind of actor behind a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// A person; the id is their user snowflake.
    Human,
    /// The bot itself or another automated system.
    System,
    /// A scheduled job.
    Scheduled,
    /// An external integration.
    Integration,
}

impl ActorKind {
    /// The lowercase name (`human`, `system`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Human => "human",
            ActorKind::System => "system",
            ActorKind::Scheduled => "scheduled",
            ActorKind::Integration => "integration",
        }
    }

    /// Parses a kind name.
    ///
    /// # Errors
    /// Returns a sentence listing the kinds when `text` is none of them.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "human" => Ok(ActorKind::Human),
            "system" => Ok(ActorKind::System),
            "scheduled" => Ok(ActorKind::Scheduled),
            "integration" => Ok(ActorKind::Integration),
            _ => Err("must be one of human, system, scheduled, integration".into()),
        }
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a change. `label` is the display name at write time, so history
/// stays readable after the actor is renamed or gone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// A user snowflake for humans; otherwise 1–128 characters.
    pub id: String,
    /// The kind of actor.
    pub kind: ActorKind,
    /// Display name at write time.
    pub label: String,
}

impl Actor {
    /// Builds an actor; the label defaults to the id.
    ///
    /// # Errors
    /// A violation at `/actor/id` when a human's id is not a snowflake or any
    /// id is empty, over 128 characters or holds control characters; at
    /// `/actor/label` for the same rules on the label.
    pub fn new(id: &str, kind: ActorKind, label: Option<&str>) -> Result<Self, Violations> {
        let mut problems = Vec::new();
        let id = if kind == ActorKind::Human {
            match Snowflake::parse(id) {
                Ok(s) => s.to_string(),
                Err(e) => {
                    problems.push(Violation::new(
                        "/actor/id",
                        format!("a human actor's id {e}"),
                    ));
                    id.to_owned()
                }
            }
        } else {
            if let Err(e) = check_text(id) {
                problems.push(Violation::new("/actor/id", e));
            }
            id.to_owned()
        };
        let label = label.map_or_else(|| id.clone(), str::to_owned);
        if let Err(e) = check_text(&label) {
            problems.push(Violation::new("/actor/label", e));
        }
        if problems.is_empty() {
            Ok(Self { id, kind, label })
        } else {
            Err(Violations(problems))
        }
    }
}

fn check_text(text: &str) -> Result<(), String> {
    let n = text.chars().count();
    if n == 0 || n > 128 {
        return Err(format!("must be 1 to 128 characters, got {n}"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humans_need_snowflakes() {
        assert!(Actor::new("80351110224678912", ActorKind::Human, Some("alice")).is_ok());
        assert!(Actor::new("alice", ActorKind::Human, None).is_err());
        let bot = Actor::new("reset-job", ActorKind::Scheduled, None).expect("valid");
        assert_eq!(bot.label, "reset-job");
        assert!(Actor::new("x\ny", ActorKind::System, None).is_err());
        assert!(Actor::new(&"x".repeat(129), ActorKind::System, None).is_err());
    }
}
