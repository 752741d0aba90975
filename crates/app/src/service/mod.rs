//! `ConfigService`: the use cases, on top of any store and clock. The types
//! a caller passes and gets back live here; the use cases are split by job:
//! reads (`read.rs`), the write loop and the checks every write makes
//! (`write.rs`), and idempotency (`idempotency.rs`).

pub(crate) mod idempotency;
mod read;
mod write;

use std::sync::Arc;

use guildconf_domain::{
    redact_document, ActionRegistry, Actor, Change, CheckedEvent, ConfigSchema, FieldPath,
    GuildConfigSchema, GuildId, LinkMeta, Operation, RequestContext, Timestamp,
};
use guildconf_ports::{Clock, ConfigStore, SystemClock};
use serde::Serialize;
use serde_json::Value;

use crate::hints::{HeadHints, DEFAULT_HEAD_HINTS};
use crate::tokens::{Entropy, OsEntropy, TokenCache};

pub use read::value_at;
pub use write::check_recordable;
pub(crate) use write::{backoff, check_meta};

/// How many times a write without an expected version is recomputed from the
/// new head after losing a race, before the caller gets a conflict.
pub const DEFAULT_MAX_RETRIES: u32 = 12;

/// Longest `reason`, in characters.
pub const MAX_REASON: usize = 1000;
/// Longest `request_id`, in characters.
pub const MAX_REQUEST_ID: usize = 128;

/// Who is writing, why, and under which conditions.
#[derive(Clone, Debug)]
pub struct WriteMeta {
    /// The actor recorded in the entry.
    pub actor: Actor,
    /// Why, in the actor's words.
    pub reason: Option<String>,
    /// An idempotency key, unique per guild.
    pub request_id: Option<String>,
    /// Sanitised request metadata.
    pub context: RequestContext,
    /// Fail with a conflict unless the guild is at this version.
    pub expect_version: Option<u64>,
    /// Compute and report the change, write nothing.
    pub dry_run: bool,
}

impl WriteMeta {
    /// The part of the metadata an entry records.
    pub(crate) fn link_meta(&self) -> LinkMeta<'_> {
        LinkMeta {
            actor: &self.actor,
            reason: self.reason.as_deref(),
            request_id: self.request_id.as_deref(),
            context: &self.context,
        }
    }

    /// Metadata for `actor` with nothing else set.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            reason: None,
            request_id: None,
            context: RequestContext::new(),
            expect_version: None,
            dry_run: false,
        }
    }
}

/// Sets and unsets of fields: unsets first (a map key removed, a field
/// reset to its default), then sets.
///
/// ```
/// use guildconf::{FieldEdit, FieldPath};
/// let edit = FieldEdit::new()
///     .set("onboarding.enabled".parse()?, true)
///     .set("onboarding.welcome_channel".parse()?, "555")
///     .unset("role_mapping.mod".parse()?);
/// # let _ = edit; Ok::<(), guildconf::Violations>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldEdit {
    sets: Vec<(FieldPath, Value)>,
    unsets: Vec<FieldPath>,
}

impl FieldEdit {
    /// An edit that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the field at `path` to `value`.
    #[must_use]
    pub fn set(mut self, path: FieldPath, value: impl Into<Value>) -> Self {
        self.sets.push((path, value.into()));
        self
    }

    /// Removes the map key at `path`, or resets the field there to its
    /// default.
    #[must_use]
    pub fn unset(mut self, path: FieldPath) -> Self {
        self.unsets.push(path);
        self
    }

    /// The sets, in order.
    pub fn sets(&self) -> &[(FieldPath, Value)] {
        &self.sets
    }

    /// The unsets, in order.
    pub fn unsets(&self) -> &[FieldPath] {
        &self.unsets
    }
}

/// A change to a guild's config.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    /// Create the config from the defaults overlaid with a (partial) document.
    Create {
        /// The partial document (`{}` for pure defaults).
        input: Value,
    },
    /// Set and unset fields of the current config.
    Update(FieldEdit),
    /// Set and unset fields, creating the config from the defaults first when
    /// the guild has none (or it was deleted). One request id covers both
    /// branches, so a redelivered interaction replays instead of conflicting.
    Upsert(FieldEdit),
    /// Replace the whole document.
    Replace {
        /// The new (possibly partial) document.
        document: Value,
    },
    /// Make version N's document current again.
    Revert {
        /// The version to return to.
        to: u64,
    },
    /// Delete the config; history stays.
    Delete,
    /// Record an event (checked against the service's action registry);
    /// the config is unchanged.
    Event(CheckedEvent),
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A config was created.
    Created,
    /// Fields changed.
    Updated,
    /// Nothing would change; nothing was written.
    Unchanged,
    /// An earlier version is current again.
    Reverted,
    /// The config was deleted.
    Deleted,
    /// An event was recorded; the config is unchanged.
    Recorded,
}

impl Outcome {
    /// What a write that appended an entry of `operation` reports (and what
    /// its idempotency record must say, which verify checks).
    pub fn of(operation: Operation) -> Self {
        match operation {
            Operation::Create => Outcome::Created,
            Operation::Update | Operation::Purge => Outcome::Updated,
            Operation::Revert => Outcome::Reverted,
            Operation::Delete => Outcome::Deleted,
            Operation::Event(_) => Outcome::Recorded,
        }
    }
}

/// The result of a write, as the command line prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WriteResult {
    /// The guild.
    pub guild_id: GuildId,
    /// The config version after the write.
    pub version: u64,
    /// What happened.
    pub outcome: Outcome,
    /// The new entry's hash; `None` when unchanged (or a dry run).
    pub entry_hash: Option<String>,
    /// The (redacted) changes; printed for dry runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
    /// Whether this was a dry run (nothing written).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Whether this is the stored result of an earlier request with the same id.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// Which document to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// The current document.
    Now,
    /// A version's document.
    Version(u64),
    /// The document current at a time (highest version with `occurred_at` ≤ T).
    Time(Timestamp),
}

/// A document as read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shown {
    /// The guild.
    pub guild_id: GuildId,
    /// Its version.
    pub version: u64,
    /// The document, secrets included: redact before showing it.
    pub document: Value,
}

/// The use cases of guildconf on one store. Cheap to clone; share one per
/// process.
#[derive(Clone, Debug)]
pub struct ConfigService {
    pub(crate) store: Arc<dyn ConfigStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) schema: Arc<dyn ConfigSchema>,
    pub(crate) max_retries: u32,
    pub(crate) hints: Arc<HeadHints>,
    pub(crate) actions: Arc<ActionRegistry>,
    /// Tokens this service authenticated, shared by its clones (and by the
    /// read cache's service), so a revocation here reaches them all at once.
    pub(crate) token_cache: Arc<TokenCache>,
    /// Where token secrets and ids are drawn from.
    pub(crate) entropy: Arc<dyn Entropy>,
}

impl ConfigService {
    /// A service over `store` with the system clock and the shipped
    /// [`GuildConfig`](crate::GuildConfig) schema.
    pub fn new(store: Arc<dyn ConfigStore>) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
            schema: Arc::new(GuildConfigSchema),
            max_retries: DEFAULT_MAX_RETRIES,
            hints: Arc::new(HeadHints::new(DEFAULT_HEAD_HINTS)),
            actions: Arc::new(ActionRegistry::shipped()),
            token_cache: Arc::new(TokenCache::default()),
            entropy: Arc::new(OsEntropy),
        }
    }

    /// Replaces the clock (tests inject a fixed one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the config schema (a bot bringing its own config type).
    #[must_use]
    pub fn with_schema(mut self, schema: Arc<dyn ConfigSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// Replaces the registry of action keys events may use (by default
    /// [`ActionRegistry::shipped`]). A bot registers its own keys at
    /// start-up:
    ///
    /// ```
    /// use guildconf::{ActionRegistry, ActionSpec, DataType, EventOutcome};
    /// let mut actions = ActionRegistry::shipped();
    /// actions.register(
    ///     ActionSpec::new("economy.bonus_paid", "A daily bonus was paid.")?
    ///         .outcomes(&[EventOutcome::Success])
    ///         .required("amount", DataType::Integer),
    /// )?;
    /// # let _ = actions; Ok::<(), String>(())
    /// ```
    #[must_use]
    pub fn with_actions(mut self, actions: ActionRegistry) -> Self {
        self.actions = Arc::new(actions);
        self
    }

    /// The action keys this service accepts.
    pub fn actions(&self) -> &ActionRegistry {
        &self.actions
    }

    /// Sets how often a lost race is retried before a conflict is reported.
    #[must_use]
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets how many guilds' heads this service remembers from its own
    /// writes ([`DEFAULT_HEAD_HINTS`]; 0 turns head hints off).
    ///
    /// A write to a remembered guild is computed from the remembered head
    /// and skips reading it: one round trip instead of two on PostgreSQL. If
    /// another writer moved the head meanwhile, the store refuses the write
    /// (it moves a head only from the seq and hash the write was computed
    /// from), and the write is recomputed from a freshly read head. Unchanged
    /// writes, dry runs and every error are decided on a freshly read head.
    #[must_use]
    pub fn with_head_hints(mut self, capacity: usize) -> Self {
        self.hints = Arc::new(HeadHints::new(capacity));
        self
    }

    /// The same service over another store (the read cache's write-through).
    pub(crate) fn with_store(&self, store: Arc<dyn ConfigStore>) -> Self {
        Self {
            store,
            ..self.clone()
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn ConfigStore> {
        &self.store
    }

    /// The schema in use.
    pub fn schema(&self) -> &Arc<dyn ConfigSchema> {
        &self.schema
    }

    /// A document with its secrets redacted, for showing.
    pub fn redact(&self, document: &Value) -> Value {
        redact_document(document, &self.schema.secret_paths())
    }
}
