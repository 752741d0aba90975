//! Events: admin actions recorded in a guild's chain beside its config
//! changes, and the registry of the action keys a bot may record.
//!
//! An event is an ordinary entry of its guild's chain (made by
//! [`crate::link`] from a [`Step::Event`](crate::Step::Event)); only its
//! `operation` (the action key) and `detail` (outcome, target, data) differ
//! from a config entry. The registry decides what a *new* event may hold;
//! an event read back from a chain (import, copy) is checked for its shape
//! only, since the keys a bot registered are not known to every reader.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};

use crate::actor::Actor;
use crate::ids::Snowflake;
use crate::json::{check_limits, parse_pointer};
use crate::redact::REDACTED;
use crate::violation::{Violation, Violations};

/// Longest action key (`family.verb`), in bytes.
pub const MAX_ACTION_KEY: usize = 64;
/// Longest target type, in characters.
pub const MAX_TARGET_TYPE: usize = 32;
/// Longest target id, in characters.
pub const MAX_TARGET_ID: usize = 128;
/// Longest target label, in characters.
pub const MAX_TARGET_LABEL: usize = 200;
/// Longest string value in an event's data, in characters.
pub const MAX_DATA_STRING: usize = 1000;
/// Most keys an event's data may hold.
pub const MAX_DATA_KEYS: usize = 32;

/// An action key, `family.verb`: two non-empty parts of `a`–`z`, `0`–`9`
/// and `_`, at most [`MAX_ACTION_KEY`] bytes in all.
///
/// Held inline (no allocation), so an [`Operation`](crate::Operation) that
/// carries one stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionKey {
    len: u8,
    bytes: [u8; MAX_ACTION_KEY],
}

impl ActionKey {
    /// Parses an action key.
    ///
    /// # Errors
    /// Returns a sentence naming the rule `text` breaks.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rule = "must be an action key family.verb: two parts of a-z, 0-9 and _ joined by one dot, at most 64 bytes";
        let Some((family, verb)) = text.split_once('.') else {
            return Err(rule.into());
        };
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if text.len() > MAX_ACTION_KEY || !part_ok(family) || !part_ok(verb) {
            return Err(rule.into());
        }
        let mut bytes = [0u8; MAX_ACTION_KEY];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Self {
            // The length check above keeps this within u8.
            len: u8::try_from(text.len()).map_err(|_| rule.to_owned())?,
            bytes,
        })
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        // Only `parse` fills the bytes, with ASCII.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The part before the dot.
    pub fn family(&self) -> &str {
        self.as_str().split_once('.').map_or("", |(f, _)| f)
    }

    /// The part after the dot.
    pub fn verb(&self) -> &str {
        self.as_str().split_once('.').map_or("", |(_, v)| v)
    }
}

impl fmt::Debug for ActionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActionKey({})", self.as_str())
    }
}

impl fmt::Display for ActionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an event turned out. Config entries read as [`EventOutcome::Success`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventOutcome {
    /// It was done.
    Success,
    /// It was tried and failed.
    Failed,
    /// Part of it was done.
    Partial,
    /// Nothing was attempted; a fact worth recording.
    Info,
    /// It was refused.
    Blocked,
}

impl EventOutcome {
    /// Every outcome.
    pub const ALL: [EventOutcome; 5] = [
        EventOutcome::Success,
        EventOutcome::Failed,
        EventOutcome::Partial,
        EventOutcome::Info,
        EventOutcome::Blocked,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Success => "success",
            EventOutcome::Failed => "failed",
            EventOutcome::Partial => "partial",
            EventOutcome::Info => "info",
            EventOutcome::Blocked => "blocked",
        }
    }

    /// Parses an outcome name.
    ///
    /// # Errors
    /// Returns a sentence listing the names when `text` is none of them.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == text)
            .ok_or_else(|| "must be one of success, failed, partial, info, blocked".into())
    }
}

impl fmt::Display for EventOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventOutcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventOutcome {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What an event acted on: its type (`member`, `channel`, …), its id and,
/// optionally, a display label as it was when the event happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The kind of thing, `a`–`z`, `0`–`9` and `_`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its display name, if any.
    pub label: Option<String>,
}

impl Target {
    /// A target without a label.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
            label: None,
        }
    }

    /// The same target with a display label.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    fn check(&self, out: &mut Vec<Violation>) {
        let kind_ok = !self.kind.is_empty()
            && self.kind.chars().count() <= MAX_TARGET_TYPE
            && self
                .kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !kind_ok {
            out.push(Violation::new(
                "/target/type",
                format!("must be 1 to {MAX_TARGET_TYPE} characters of a-z, 0-9 and _"),
            ));
        }
        let n = self.id.chars().count();
        if n == 0 || n > MAX_TARGET_ID || self.id.chars().any(char::is_control) {
            out.push(Violation::new(
                "/target/id",
                format!("must be 1 to {MAX_TARGET_ID} characters without control characters"),
            ));
        }
        if let Some(label) = &self.label {
            let n = label.chars().count();
            if n > MAX_TARGET_LABEL || label.chars().any(char::is_control) {
                out.push(Violation::new(
                    "/target/label",
                    format!(
                        "must be at most {MAX_TARGET_LABEL} characters without control characters"
                    ),
                ));
            }
        }
    }
}

/// An event as a caller asks to record it; [`ActionRegistry::check`] turns
/// it into a [`CheckedEvent`].
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The action key, `family.verb`.
    pub action: String,
    /// How it turned out.
    pub outcome: EventOutcome,
    /// What it acted on.
    pub target: Target,
    /// Facts the action's key declares, by name.
    pub data: Map<String, Value>,
}

impl Event {
    /// An event with no data.
    pub fn new(action: impl Into<String>, outcome: EventOutcome, target: Target) -> Self {
        Self {
            action: action.into(),
            outcome,
            target,
            data: Map::new(),
        }
    }

    /// The same event with one more data value.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }
}

/// An event fit for the chain: its key parsed, its target and data checked
/// and its secret data redacted. Made by [`ActionRegistry::check`] (a new
/// event) or [`CheckedEvent::from_detail`] (an event read back from a chain).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedEvent {
    key: ActionKey,
    outcome: EventOutcome,
    target: Target,
    data: Map<String, Value>,
}

impl CheckedEvent {
    /// The action key.
    pub fn key(&self) -> ActionKey {
        self.key
    }

    /// The outcome.
    pub fn outcome(&self) -> EventOutcome {
        self.outcome
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The data, secrets redacted.
    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }

    /// The entry's `detail`:
    /// `{"outcome", "target": {"type", "id", "label"}, "data"}`.
    pub fn detail(&self) -> Map<String, Value> {
        let mut detail = Map::new();
        detail.insert("outcome".into(), json!(self.outcome.as_str()));
        detail.insert(
            "target".into(),
            json!({"type": self.target.kind, "id": self.target.id, "label": self.target.label}),
        );
        detail.insert("data".into(), Value::Object(self.data.clone()));
        detail
    }

    /// The entry's summary, such as
    /// `alice (human) recorded member.role_added (success) on member Bob`.
    pub fn summary(&self, actor: &Actor) -> String {
        let target = self.target.label.as_deref().unwrap_or(&self.target.id);
        format!(
            "{} ({}) recorded {} ({}) on {} {target}",
            actor.label, actor.kind, self.key, self.outcome, self.target.kind
        )
    }

    /// Reads an event back from a stored entry's operation and `detail`,
    /// checking its shape only (not the registry: a reader need not know the
    /// keys the writing bot registered). The data is taken as it is: it was
    /// redacted when the event was first recorded.
    ///
    /// # Errors
    /// Every way `detail` is not exactly what [`CheckedEvent::detail`] writes.
    pub fn from_detail(key: ActionKey, detail: &Map<String, Value>) -> Result<Self, Violations> {
        let mut problems = Vec::new();
        if detail.len() != 3 {
            problems.push(Violation::new(
                "/detail",
                "must hold exactly outcome, target and data",
            ));
        }
        let outcome = match detail.get("outcome").and_then(Value::as_str) {
            Some(text) => EventOutcome::parse(text)
                .map_err(|e| problems.push(Violation::new("/detail/outcome", e)))
                .ok(),
            None => {
                problems.push(Violation::new("/detail/outcome", "must be a string"));
                None
            }
        };
        let target = match detail.get("target") {
            Some(Value::Object(t)) if t.len() == 3 => {
                serde_json::from_value::<Target>(Value::Object(t.clone()))
                    .map_err(|e| problems.push(Violation::new("/detail/target", e.to_string())))
                    .ok()
            }
            _ => {
                problems.push(Violation::new(
                    "/detail/target",
                    "must be an object of type, id and label",
                ));
                None
            }
        };
        if let Some(t) = &target {
            t.check(&mut problems);
        }
        let data = match detail.get("data") {
            Some(Value::Object(d)) => d.clone(),
            _ => {
                problems.push(Violation::new("/detail/data", "must be an object"));
                Map::new()
            }
        };
        match (outcome, target) {
            (Some(outcome), Some(target)) if problems.is_empty() => Ok(Self {
                key,
                outcome,
                target,
                data,
            }),
            _ => Err(Violations(problems)),
        }
    }
}

/// The action key recorded in each named guild's chain when an API token is
/// created.
pub const TOKEN_CREATED: &str = "token.created";
/// The action key recorded in each named guild's chain when an API token is
/// revoked.
pub const TOKEN_REVOKED: &str = "token.revoked";

/// The shape of both token events: a success, on target type `token` (id:
/// the token's public id, label: its label), with the token's role and the
/// guilds it names (never its secret).
fn token_event(spec: ActionSpec) -> ActionSpec {
    spec.outcomes(&[EventOutcome::Success])
        .target_type("token")
        .required("role", DataType::String)
        .required("guilds", DataType::Snowflakes)
}

/// The type of one data value of an action key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    /// A string of at most [`MAX_DATA_STRING`] characters.
    String,
    /// A snowflake, stored as its decimal string (a bare integer is
    /// accepted and written as a string).
    Snowflake,
    /// An integer within ±2^53.
    Integer,
    /// Any finite number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// An array of JSON Pointers (RFC 6901), such as config paths.
    Pointers,
    /// An array of strings.
    Strings,
    /// An array of snowflakes (such as guild ids), each stored as its
    /// decimal string (a bare integer is accepted and written as a string).
    Snowflakes,
}

impl DataType {
    fn name(self) -> &'static str {
        match self {
            DataType::String => "a string",
            DataType::Snowflake => "a snowflake",
            DataType::Integer => "an integer",
            DataType::Number => "a number",
            DataType::Boolean => "a boolean",
            DataType::Pointers => "an array of JSON Pointers",
            DataType::Strings => "an array of strings",
            DataType::Snowflakes => "an array of snowflakes",
        }
    }

    /// The value in its stored form, or `None` when it is not of this type.
    fn accept(self, value: &Value) -> Option<Value> {
        let short = |s: &str| s.chars().count() <= MAX_DATA_STRING;
        match (self, value) {
            (DataType::String, Value::String(s)) if short(s) => Some(value.clone()),
            (DataType::Snowflake, v) => Snowflake::from_json(v)
                .ok()
                .map(|s| Value::String(s.to_string())),
            (DataType::Integer, Value::Number(n))
                if n.as_i64().is_some_and(|i| i.unsigned_abs() <= 1 << 53) =>
            {
                Some(value.clone())
            }
            (DataType::Number, Value::Number(_)) | (DataType::Boolean, Value::Bool(_)) => {
                Some(value.clone())
            }
            (DataType::Pointers, Value::Array(items))
                if items.iter().all(|i| {
                    i.as_str()
                        .is_some_and(|p| short(p) && parse_pointer(p).is_ok())
                }) =>
            {
                Some(value.clone())
            }
            (DataType::Strings, Value::Array(items))
                if items.iter().all(|i| i.as_str().is_some_and(short)) =>
            {
                Some(value.clone())
            }
            (DataType::Snowflakes, Value::Array(items)) => items
                .iter()
                .map(|i| DataType::Snowflake.accept(i))
                .collect::<Option<Vec<_>>>()
                .map(Value::Array),
            _ => None,
        }
    }
}

/// One data key an action declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataKey {
    /// Its name in `data`.
    pub name: String,
    /// Its type.
    pub ty: DataType,
    /// Whether every event of the action must hold it.
    pub required: bool,
    /// Whether it is a secret: redacted before hashing, like config secrets.
    pub secret: bool,
}

/// What one action key allows: the registry's entry for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionSpec {
    key: ActionKey,
    description: String,
    outcomes: Vec<EventOutcome>,
    target_type: Option<String>,
    data: Vec<DataKey>,
}

impl ActionSpec {
    /// A spec for `key` that allows every outcome, any target type and no
    /// data; narrow it with the builder methods.
    ///
    /// # Errors
    /// Returns a sentence when `key` is not a valid action key.
    pub fn new(key: &str, description: impl Into<String>) -> Result<Self, String> {
        Ok(Self {
            key: ActionKey::parse(key)?,
            description: description.into(),
            outcomes: EventOutcome::ALL.to_vec(),
            target_type: None,
            data: Vec::new(),
        })
    }

    /// Allows only these outcomes.
    #[must_use]
    pub fn outcomes(mut self, outcomes: &[EventOutcome]) -> Self {
        self.outcomes = outcomes.to_vec();
        self
    }

    /// Requires this target type.
    #[must_use]
    pub fn target_type(mut self, kind: impl Into<String>) -> Self {
        self.target_type = Some(kind.into());
        self
    }

    /// Declares a data key that every event must hold.
    #[must_use]
    pub fn required(self, name: &str, ty: DataType) -> Self {
        self.declare(name, ty, true, false)
    }

    /// Declares a data key an event may hold.
    #[must_use]
    pub fn optional(self, name: &str, ty: DataType) -> Self {
        self.declare(name, ty, false, false)
    }

    /// Declares a secret data key an event may hold: its value is written
    /// as `"[redacted]"` in the entry, before hashing.
    #[must_use]
    pub fn secret(self, name: &str, ty: DataType) -> Self {
        self.declare(name, ty, false, true)
    }

    fn declare(mut self, name: &str, ty: DataType, required: bool, secret: bool) -> Self {
        self.data.retain(|d| d.name != name);
        self.data.push(DataKey {
            name: name.to_owned(),
            ty,
            required,
            secret,
        });
        self
    }

    /// The key.
    pub fn key(&self) -> ActionKey {
        self.key
    }

    /// Its family (the part before the dot).
    pub fn family(&self) -> &str {
        self.key.family()
    }

    /// Its verb (the part after the dot).
    pub fn verb(&self) -> &str {
        self.key.verb()
    }

    /// The one-line description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The outcomes it allows.
    pub fn allowed_outcomes(&self) -> &[EventOutcome] {
        &self.outcomes
    }

    /// The target type it requires, if any.
    pub fn required_target_type(&self) -> Option<&str> {
        self.target_type.as_deref()
    }

    /// The data keys it declares.
    pub fn data_keys(&self) -> &[DataKey] {
        &self.data
    }
}

/// The action keys a service accepts: the shipped ones
/// ([`ActionRegistry::shipped`]) and those a bot registers at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRegistry {
    specs: BTreeMap<ActionKey, ActionSpec>,
}

impl Default for ActionRegistry {
    fn default() -> Self {
        Self::shipped()
    }
}

impl ActionRegistry {
    /// A registry with no keys at all.
    pub fn empty() -> Self {
        Self {
            specs: BTreeMap::new(),
        }
    }

    /// The keys a bot's admin surface needs, shipped with guildconf.
    /// `member.role_added`, `permission.denied` and `config.denied` are
    /// fixed (other programs rely on their shape); see `docs/FORMAT.md`.
    /// `token.created` and `token.revoked` are what guildconf itself
    /// records when an API token is created or revoked.
    pub fn shipped() -> Self {
        use DataType as T;
        use EventOutcome as O;
        let done = [O::Success, O::Failed];
        let specs = [
            ActionSpec::new("member.role_added", "A role was given to a member.").map(|s| {
                s.outcomes(&done)
                    .target_type("member")
                    .required("role_id", T::Snowflake)
            }),
            ActionSpec::new("member.role_removed", "A role was taken from a member.").map(|s| {
                s.outcomes(&done)
                    .target_type("member")
                    .required("role_id", T::Snowflake)
            }),
            ActionSpec::new("whitelist.added", "Something was added to a whitelist.")
                .map(|s| s.outcomes(&done).optional("list", T::String)),
            ActionSpec::new(
                "whitelist.removed",
                "Something was removed from a whitelist.",
            )
            .map(|s| s.outcomes(&done).optional("list", T::String)),
            ActionSpec::new(
                "permission.denied",
                "A command was refused for lack of a permission.",
            )
            .map(|s| s.outcomes(&[O::Blocked]).required("permission", T::String)),
            ActionSpec::new("ratelimit.exceeded", "A rate limit was tripped.").map(|s| {
                s.outcomes(&[O::Blocked, O::Info])
                    .optional("bucket", T::String)
                    .optional("limit", T::Integer)
                    .optional("window_seconds", T::Integer)
            }),
            ActionSpec::new("moderation.flagged", "Content was flagged by moderation.").map(|s| {
                s.outcomes(&[O::Info, O::Blocked])
                    .optional("category", T::String)
                    .optional("score", T::Number)
            }),
            ActionSpec::new("circuit_breaker.opened", "A circuit breaker opened.").map(|s| {
                s.outcomes(&[O::Info])
                    .optional("service", T::String)
                    .optional("failures", T::Integer)
            }),
            ActionSpec::new("circuit_breaker.closed", "A circuit breaker closed again.")
                .map(|s| s.outcomes(&[O::Info]).optional("service", T::String)),
            ActionSpec::new("conversation.reset", "A conversation's state was reset.")
                .map(|s| s.outcomes(&done).optional("messages", T::Integer)),
            ActionSpec::new("cost.threshold_breached", "Spending passed a threshold.").map(|s| {
                s.outcomes(&[O::Info, O::Blocked])
                    .optional("threshold", T::Number)
                    .optional("spent", T::Number)
                    .optional("currency", T::String)
            }),
            ActionSpec::new("audit.log_viewed", "Someone viewed the audit log.")
                .map(|s| s.outcomes(&done).optional("filter", T::String)),
            ActionSpec::new("audit.log_exported", "Someone exported the audit log.").map(|s| {
                s.outcomes(&done)
                    .optional("format", T::String)
                    .optional("entries", T::Integer)
            }),
            ActionSpec::new("config.backup_created", "A backup of the config was made.").map(|s| {
                s.outcomes(&done)
                    .optional("bytes", T::Integer)
                    // A backup destination may carry credentials in its URL.
                    .secret("destination", T::String)
            }),
            ActionSpec::new(
                "config.backup_skipped",
                "A scheduled config backup was skipped.",
            )
            .map(|s| s.outcomes(&[O::Info]).optional("reason", T::String)),
            ActionSpec::new("config.denied", "A config write was refused.")
                .map(|s| s.outcomes(&[O::Blocked]).required("paths", T::Pointers)),
            ActionSpec::new(
                TOKEN_CREATED,
                "An API token that reaches this guild was created.",
            )
            .map(token_event),
            ActionSpec::new(
                TOKEN_REVOKED,
                "An API token that reached this guild was revoked.",
            )
            .map(token_event),
        ];
        let mut registry = Self::empty();
        for spec in specs.into_iter().flatten() {
            registry.specs.insert(spec.key, spec);
        }
        registry
    }

    /// Adds a key.
    ///
    /// # Errors
    /// Returns a sentence when the key is already registered, allows no
    /// outcome, or names an invalid target type.
    pub fn register(&mut self, spec: ActionSpec) -> Result<(), String> {
        if self.specs.contains_key(&spec.key) {
            return Err(format!("action key {} is already registered", spec.key));
        }
        if spec.outcomes.is_empty() {
            return Err(format!("action key {} allows no outcome", spec.key));
        }
        if let Some(kind) = &spec.target_type {
            let mut problems = Vec::new();
            Target::new(kind.clone(), "1").check(&mut problems);
            if !problems.is_empty() {
                return Err(format!(
                    "action key {}: the target type must be 1 to {MAX_TARGET_TYPE} characters of a-z, 0-9 and _",
                    spec.key
                ));
            }
        }
        self.specs.insert(spec.key, spec);
        Ok(())
    }

    /// The spec of a key.
    pub fn get(&self, key: &str) -> Option<&ActionSpec> {
        ActionKey::parse(key).ok().and_then(|k| self.specs.get(&k))
    }

    /// Every spec, in key order.
    pub fn specs(&self) -> impl Iterator<Item = &ActionSpec> {
        self.specs.values()
    }

    /// Checks an event against its key's spec and redacts its secret data.
    ///
    /// # Errors
    /// Every problem, each with its path: an unknown or malformed key
    /// (`/action`), a disallowed outcome (`/outcome`), a bad target
    /// (`/target/...`), an undeclared data key, a missing required one or a
    /// value of the wrong type (`/data/<key>`).
    pub fn check(&self, event: &Event) -> Result<CheckedEvent, Violations> {
        let mut problems = Vec::new();
        event.target.check(&mut problems);
        let spec = match ActionKey::parse(&event.action) {
            Err(e) => {
                problems.push(Violation::new("/action", e));
                return Err(Violations(problems));
            }
            Ok(key) => match self.specs.get(&key) {
                Some(spec) => spec,
                None => {
                    problems.push(Violation::new(
                        "/action",
                        format!("{} is not a registered action key", event.action),
                    ));
                    return Err(Violations(problems));
                }
            },
        };
        if !spec.outcomes.contains(&event.outcome) {
            let allowed: Vec<&str> = spec.outcomes.iter().map(|o| o.as_str()).collect();
            problems.push(Violation::new(
                "/outcome",
                format!(
                    "{} allows the outcomes {}, not {}",
                    spec.key,
                    allowed.join(", "),
                    event.outcome
                ),
            ));
        }
        if let Some(kind) = &spec.target_type {
            if &event.target.kind != kind {
                problems.push(Violation::new(
                    "/target/type",
                    format!("{} needs a target of type {kind}", spec.key),
                ));
            }
        }
        if event.data.len() > MAX_DATA_KEYS {
            problems.push(Violation::new(
                "/data",
                format!("must hold at most {MAX_DATA_KEYS} keys"),
            ));
        }
        let mut data = Map::new();
        for (name, value) in &event.data {
            let path = format!("/data/{}", crate::json::escape_token(name));
            let Some(declared) = spec.data.iter().find(|d| &d.name == name) else {
                problems.push(Violation::new(
                    path,
                    format!("{} declares no data key {name:?}", spec.key),
                ));
                continue;
            };
            // The limits apply to the value as it will be stored (a
            // snowflake given as a bare integer is stored as its string).
            let accepted = declared.ty.accept(value);
            let mut limits = Vec::new();
            if let Some(stored) = &accepted {
                check_limits(stored, &mut Vec::new(), &mut limits);
            }
            match accepted {
                Some(_) if !limits.is_empty() => {
                    problems.push(Violation::new(path, "is too large or too deep"));
                }
                Some(_) if declared.secret => {
                    data.insert(name.clone(), Value::String(REDACTED.into()));
                }
                Some(stored) => {
                    data.insert(name.clone(), stored);
                }
                None => problems.push(Violation::new(
                    path,
                    format!("must be {}", declared.ty.name()),
                )),
            }
        }
        for declared in spec.data.iter().filter(|d| d.required) {
            if !event.data.contains_key(&declared.name) {
                problems.push(Violation::new(
                    format!("/data/{}", crate::json::escape_token(&declared.name)),
                    format!("{} requires it", spec.key),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Violations(problems));
        }
        Ok(CheckedEvent {
            key: spec.key,
            outcome: event.outcome,
            target: event.target.clone(),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::ActorKind;
    use crate::context::RequestContext;
    use crate::entry::Operation;
    use crate::ids::GuildId;
    use crate::link::{link, CanonicalDocument, LinkMeta, Step};
    use crate::secret_paths::SecretPaths;

    fn problems(result: Result<CheckedEvent, Violations>) -> Vec<String> {
        match result {
            Ok(e) => panic!("accepted {e:?}"),
            Err(Violations(v)) => v.iter().map(|v| v.path.clone()).collect(),
        }
    }

    #[test]
    fn action_keys_are_family_dot_verb_of_lowercase_parts() {
        let key = ActionKey::parse("member.role_added").expect("a valid key");
        assert_eq!((key.family(), key.verb()), ("member", "role_added"));
        for bad in [
            "",
            "member",
            "Member.role_added",
            "member.role-added",
            "a.b.c",
            ".verb",
            "family.",
            "é.b",
            &format!("{}.b", "a".repeat(63)),
        ] {
            assert!(ActionKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ActionKey::parse(&format!("{}.b", "a".repeat(62))).is_ok());
    }

    #[test]
    fn the_three_fixed_keys_are_as_specified() {
        let shipped = ActionRegistry::shipped();
        let role = shipped.get("member.role_added").expect("shipped");
        assert_eq!(role.required_target_type(), Some("member"));
        assert_eq!(
            role.data_keys(),
            [DataKey {
                name: "role_id".into(),
                ty: DataType::Snowflake,
                required: true,
                secret: false
            }]
        );
        for (key, data, ty) in [
            ("permission.denied", "permission", DataType::String),
            ("config.denied", "paths", DataType::Pointers),
        ] {
            let spec = shipped.get(key).expect("shipped");
            assert_eq!(spec.allowed_outcomes(), [EventOutcome::Blocked]);
            assert_eq!(spec.data_keys().len(), 1);
            assert_eq!(
                (spec.data_keys()[0].name.as_str(), spec.data_keys()[0].ty),
                (data, ty)
            );
        }
        assert_eq!(shipped.specs().count(), 18);
    }

    #[test]
    fn bad_events_are_refused_with_every_problem_named() {
        let shipped = ActionRegistry::shipped();
        let member = Target::new("member", "80351110224678912");
        let unknown = Event::new("member.teleported", EventOutcome::Success, member.clone());
        assert_eq!(problems(shipped.check(&unknown)), ["/action"]);
        let bad = Event::new("member.role_added", EventOutcome::Blocked, member.clone())
            .with("role_id", "not a snowflake")
            .with("colour", "red");
        assert_eq!(
            problems(shipped.check(&bad)),
            ["/outcome", "/data/colour", "/data/role_id"]
        );
        let missing = Event::new("member.role_added", EventOutcome::Success, member);
        assert_eq!(problems(shipped.check(&missing)), ["/data/role_id"]);
        let wrong_target = Event::new(
            "member.role_added",
            EventOutcome::Success,
            Target::new("Channel!", ""),
        )
        .with("role_id", "1");
        assert_eq!(
            problems(shipped.check(&wrong_target)),
            ["/target/type", "/target/id", "/target/type"]
        );
        let pointers = Event::new(
            "config.denied",
            EventOutcome::Blocked,
            Target::new("guild", "1"),
        )
        .with("paths", json!(["no leading slash"]));
        assert_eq!(problems(shipped.check(&pointers)), ["/data/paths"]);
    }

    #[test]
    fn secret_data_is_redacted_and_snowflakes_are_stored_as_strings() {
        let shipped = ActionRegistry::shipped();
        let backup = Event::new(
            "config.backup_created",
            EventOutcome::Success,
            Target::new("guild", "1"),
        )
        .with("destination", "s3://id:hunter2@bucket")
        .with("bytes", 10);
        let checked = shipped.check(&backup).expect("valid");
        assert_eq!(checked.data()["destination"], json!(REDACTED));
        let role = Event::new(
            "member.role_added",
            EventOutcome::Success,
            Target::new("member", "2"),
        )
        .with("role_id", 613_425_648_685_547_601_u64);
        let checked = shipped.check(&role).expect("valid");
        assert_eq!(checked.data()["role_id"], json!("613425648685547601"));
    }

    #[test]
    fn token_events_hold_a_role_and_guild_ids_as_strings() {
        let shipped = ActionRegistry::shipped();
        let target = Target::new("token", "00112233aabbccdd").with_label("dashboard");
        for key in [TOKEN_CREATED, TOKEN_REVOKED] {
            let event = Event::new(key, EventOutcome::Success, target.clone())
                .with("role", "viewer")
                .with(
                    "guilds",
                    json!([123_456_789_012_345_678_u64, "223456789012345678"]),
                );
            let checked = shipped.check(&event).expect("valid");
            assert_eq!(
                checked.data()["guilds"],
                json!(["123456789012345678", "223456789012345678"])
            );
            let bad = Event::new(key, EventOutcome::Failed, Target::new("member", "1"))
                .with("role", "viewer")
                .with("guilds", json!(["not a guild"]));
            assert_eq!(
                problems(shipped.check(&bad)),
                ["/outcome", "/target/type", "/data/guilds"]
            );
        }
    }

    #[test]
    fn a_bot_registers_its_own_keys_once() {
        let mut registry = ActionRegistry::shipped();
        let spec = ActionSpec::new("economy.bonus_paid", "A bonus was paid.")
            .expect("valid")
            .outcomes(&[EventOutcome::Success])
            .required("amount", DataType::Integer);
        registry.register(spec.clone()).expect("new key");
        assert!(registry.register(spec).is_err(), "registered twice");
        let paid = Event::new(
            "economy.bonus_paid",
            EventOutcome::Success,
            Target::new("member", "3"),
        )
        .with("amount", 5);
        assert!(registry.check(&paid).is_ok());
        assert!(ActionRegistry::shipped().check(&paid).is_err());
        let none = ActionSpec::new("a.b", "").expect("valid").outcomes(&[]);
        assert!(registry.register(none).is_err());
    }

    #[test]
    fn an_event_links_without_a_config_and_a_create_continues_the_chain() {
        let actor = Actor::new("80351110224678912", ActorKind::Human, Some("alice")).expect("ok");
        let context = RequestContext::new();
        let meta = LinkMeta {
            actor: &actor,
            reason: None,
            request_id: None,
            context: &context,
        };
        let guild = GuildId::parse("123456789012345678").expect("ok");
        let now = chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("ok");
        let secrets = SecretPaths::default();
        let event = ActionRegistry::shipped()
            .check(
                &Event::new(
                    "permission.denied",
                    EventOutcome::Blocked,
                    Target::new("member", "5").with_label("Bob"),
                )
                .with("permission", "manage_guild"),
            )
            .expect("valid");
        let one = link(guild, None, Step::Event(event.clone()), meta, &secrets, now)
            .expect("an event needs no config");
        let body = one.entry.body();
        assert_eq!((body.seq, body.config_version), (1, 0));
        assert_eq!(body.snapshot_sha256, None);
        assert!(body.changes.is_empty());
        assert_eq!(
            body.operation,
            Operation::Event(ActionKey::parse("permission.denied").expect("ok"))
        );
        assert_eq!(
            Value::Object(body.detail.clone()),
            json!({"outcome": "blocked", "target": {"type": "member", "id": "5", "label": "Bob"},
                   "data": {"permission": "manage_guild"}})
        );
        assert_eq!(
            CheckedEvent::from_detail(event.key(), &body.detail).expect("reads back"),
            event
        );
        assert_eq!((one.head.version, one.head.document.is_none()), (0, true));
        assert!(one.snapshot.is_none());
        let doc = CanonicalDocument::new(json!({"a": 1})).expect("ok");
        let sha = doc.sha256().to_owned();
        let two = link(
            guild,
            Some(&one.head),
            Step::Create(doc),
            meta,
            &secrets,
            now,
        )
        .expect("a create follows");
        assert_eq!((two.entry.body().seq, two.head.version), (2, 1));
        assert_eq!(two.entry.body().prev_hash, one.entry.entry_hash());
        let three = link(
            guild,
            Some(&two.head),
            Step::Event(event),
            meta,
            &secrets,
            now,
        )
        .expect("an event follows");
        assert_eq!(three.entry.body().config_version, 1);
        assert_eq!(
            three.entry.body().snapshot_sha256.as_deref(),
            Some(sha.as_str())
        );
        assert_eq!(three.head.document, two.head.document);
    }

    #[test]
    fn from_detail_refuses_what_detail_never_writes() {
        let key = ActionKey::parse("a.b").expect("ok");
        for detail in [
            json!({}),
            json!({"outcome": "won", "target": {"type": "m", "id": "1", "label": null}, "data": {}}),
            json!({"outcome": "info", "target": {"type": "m", "id": "1"}, "data": {}}),
            json!({"outcome": "info", "target": {"type": "m", "id": "1", "label": null}, "data": []}),
            json!({"outcome": "info", "target": {"type": "m", "id": "1", "label": null}, "data": {}, "x": 1}),
        ] {
            let Value::Object(detail) = detail else {
                unreachable!("an object")
            };
            assert!(
                CheckedEvent::from_detail(key, &detail).is_err(),
                "{detail:?}"
            );
        }
    }
}
