//! One human-readable line per audit entry.

use serde_json::Value;

use crate::actor::Actor;
use crate::diff::Change;
use crate::entry::Operation;
use crate::json::display_path;
use crate::time::Timestamp;

/// Longest rendering of one value inside a summary.
const MAX_VALUE_CHARS: usize = 40;

/// Summarises an entry, such as
/// `alice (human) updated onboarding.enabled false → true and 2 more fields`.
/// `changes` must already be redacted; `to_version` is the target of a revert.
pub fn summarise(
    actor: &Actor,
    operation: Operation,
    changes: &[Change],
    to_version: Option<u64>,
) -> String {
    let who = format!("{} ({})", actor.label, actor.kind);
    match operation {
        Operation::Create => format!("{who} created the config{}", fields_suffix(changes.len())),
        Operation::Delete => format!("{who} deleted the config"),
        Operation::Purge => format!("{who} purged old history"),
        Operation::Event(key) => format!("{who} recorded {key}"),
        Operation::Update => format!("{who} updated {}", describe(changes)),
        Operation::Revert => {
            let target = to_version.map_or_else(String::new, |v| format!(" to version {v}"));
            format!("{who} reverted{target}: {}", describe(changes))
        }
    }
}

/// Summarises a retention purge, such as
/// `alice (human) purged 41 entries before 2026-01-01T00:00:00.000000Z`.
pub fn summarise_purge(actor: &Actor, removed: u64, before: Timestamp) -> String {
    let noun = if removed == 1 { "entry" } else { "entries" };
    format!(
        "{} ({}) purged {removed} {noun} before {before}",
        actor.label, actor.kind
    )
}

fn fields_suffix(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} {})", if n == 1 { "section" } else { "sections" })
    }
}

fn describe(changes: &[Change]) -> String {
    let Some(first) = changes.first() else {
        return "nothing".into();
    };
    let path = display_path(first.path());
    let head = match first {
        Change::Replace { before, after, .. } => {
            format!("{path} {} → {}", short(before), short(after))
        }
        Change::Add { after, .. } => format!("{path} (added {})", short(after)),
        Change::Remove { before, .. } => format!("{path} (removed {})", short(before)),
    };
    match changes.len() - 1 {
        0 => head,
        1 => format!("{head} and 1 more field"),
        n => format!("{head} and {n} more fields"),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cleaned.chars().count() > MAX_VALUE_CHARS {
        let cut: String = cleaned.chars().take(MAX_VALUE_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::ActorKind;
    use serde_json::json;

    #[test]
    fn update_summary_names_first_change_and_count() {
        let alice = Actor::new("1", ActorKind::Human, Some("alice")).expect("valid");
        let changes = vec![
            Change::Replace {
                path: "/onboarding/enabled".into(),
                before: json!(false),
                after: json!(true),
            },
            Change::Add {
                path: "/features/x".into(),
                after: json!(true),
            },
            Change::Add {
                path: "/features/y".into(),
                after: json!(true),
            },
        ];
        assert_eq!(
            summarise(&alice, Operation::Update, &changes, None),
            "alice (human) updated onboarding.enabled false → true and 2 more fields"
        );
        assert_eq!(
            summarise(&alice, Operation::Revert, &changes[..1], Some(2)),
            "alice (human) reverted to version 2: onboarding.enabled false → true"
        );
    }
}
