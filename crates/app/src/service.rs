//! `ConfigService`: the use cases, on top of any store and clock.

use std::sync::Arc;

use guildconf_domain::json::{self, canonical_json, canonical_sha256, check_limits, get_at};
use guildconf_domain::{
    diff, link, redact_changes, redact_document, restore_kept_secrets, Actor, CanonicalDocument,
    Change, ConfigSchema, FieldPath, GuildConfig, GuildConfigSchema, GuildId, LinkMeta, Operation,
    RequestContext, Step, Timestamp, Violation, Violations,
};
use guildconf_ports::{
    ChangeSet, Clock, ConfigStore, GuildSummary, Head, RequestRecord, StoreError, SystemClock,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::hints::{HeadHints, DEFAULT_HEAD_HINTS};

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
}

impl Edit {
    fn operation_name(&self) -> &'static str {
        match self {
            Edit::Create { .. } => "create",
            Edit::Update(_) => "update",
            Edit::Upsert(_) => "upsert",
            Edit::Replace { .. } => "apply",
            Edit::Revert { .. } => "revert",
            Edit::Delete => "delete",
        }
    }

    /// The canonical form of the input, for the idempotency fingerprint.
    fn fingerprint_input(&self) -> Value {
        let path = |p: &FieldPath| Value::String(p.to_string());
        match self {
            Edit::Create { input } => input.clone(),
            Edit::Update(edit) | Edit::Upsert(edit) => json!({
                "set": edit.sets.iter().map(|(p, v)| json!([path(p), v])).collect::<Vec<_>>(),
                "unset": edit.unsets.iter().map(path).collect::<Vec<_>>(),
            }),
            Edit::Replace { document } => document.clone(),
            Edit::Revert { to } => json!({ "to": to }),
            Edit::Delete => Value::Null,
        }
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
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
}

impl ConfigService {
    /// A service over `store` with the system clock and the shipped
    /// [`GuildConfig`] schema.
    pub fn new(store: Arc<dyn ConfigStore>) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
            schema: Arc::new(GuildConfigSchema),
            max_retries: DEFAULT_MAX_RETRIES,
            hints: Arc::new(HeadHints::new(DEFAULT_HEAD_HINTS)),
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

    /// Creates a guild's config: the defaults, overlaid with `input`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad document; [`Error::Conflict`] when the
    /// guild is already configured; [`Error::Storage`] when the write fails.
    pub async fn create(
        &self,
        guild: GuildId,
        input: Value,
        meta: &WriteMeta,
    ) -> Result<WriteResult> {
        self.write(guild, Edit::Create { input }, meta).await
    }

    /// Sets and unsets fields.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the guild has no config; otherwise as
    /// [`ConfigService::create`].
    pub async fn update(
        &self,
        guild: GuildId,
        edit: FieldEdit,
        meta: &WriteMeta,
    ) -> Result<WriteResult> {
        self.write(guild, Edit::Update(edit), meta).await
    }

    /// Sets and unsets fields, creating the config from the defaults first
    /// when the guild has none: what a slash-command handler wants.
    ///
    /// # Errors
    /// As [`ConfigService::update`], except that a missing guild is created.
    pub async fn upsert(
        &self,
        guild: GuildId,
        edit: FieldEdit,
        meta: &WriteMeta,
    ) -> Result<WriteResult> {
        self.write(guild, Edit::Upsert(edit), meta).await
    }

    /// Edits the typed config of the shipped schema: reads the guild's
    /// current [`GuildConfig`], lets `change` modify it, and writes the
    /// result like any write (normalised, validated, diffed and audited for
    /// you; nothing is written when `change` changes nothing). If another
    /// writer moves the guild in between, the config is read again and
    /// `change` runs again, up to the retry count; with
    /// `meta.expect_version` a moved guild is a conflict straight away.
    ///
    /// ```no_run
    /// # async fn run(service: guildconf::ConfigService, guild: guildconf::GuildId,
    /// #              meta: guildconf::WriteMeta) -> guildconf::Result<()> {
    /// service
    ///     .modify(guild, &meta, |cfg| cfg.onboarding.enabled = !cfg.onboarding.enabled)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`] when the guild has no config;
    /// [`Error::Invalid`] when the changed config does not validate, or the
    /// service uses another schema than [`GuildConfig`]; otherwise as
    /// [`ConfigService::update`].
    pub async fn modify<F>(
        &self,
        guild: GuildId,
        meta: &WriteMeta,
        change: F,
    ) -> Result<WriteResult>
    where
        F: Fn(&mut GuildConfig),
    {
        let mut attempt = 0;
        loop {
            let head = self.store.head(guild).await?;
            let (version, document) = match head {
                Some(Head {
                    version,
                    document: Some(document),
                    ..
                }) => (version, document),
                Some(_) => {
                    return Err(Error::NotFound(format!(
                        "guild {guild}'s config is deleted"
                    )))
                }
                None => return Err(Error::NotFound(format!("guild {guild} has no config"))),
            };
            let mut config = GuildConfig::from_document(&document).map_err(|_| {
                Error::invalid("", "modify edits the shipped GuildConfig schema only")
            })?;
            change(&mut config);
            let document =
                serde_json::to_value(&config).map_err(|e| Error::invalid("", e.to_string()))?;
            let mut pinned = meta.clone();
            pinned.expect_version = Some(meta.expect_version.unwrap_or(version));
            match self.write(guild, Edit::Replace { document }, &pinned).await {
                Err(Error::Conflict(_))
                    if meta.expect_version.is_none()
                        && attempt < self.max_retries
                        && self.store.head(guild).await?.map(|h| h.version) != Some(version) =>
                {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Replaces the whole document.
    ///
    /// # Errors
    /// As [`ConfigService::update`].
    pub async fn replace(
        &self,
        guild: GuildId,
        document: Value,
        meta: &WriteMeta,
    ) -> Result<WriteResult> {
        self.write(guild, Edit::Replace { document }, meta).await
    }

    /// Makes version `to` current again, as a new `revert` entry.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the guild or version does not exist.
    pub async fn revert(&self, guild: GuildId, to: u64, meta: &WriteMeta) -> Result<WriteResult> {
        self.write(guild, Edit::Revert { to }, meta).await
    }

    /// Deletes the config; history stays.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the guild has no config.
    pub async fn delete(&self, guild: GuildId, meta: &WriteMeta) -> Result<WriteResult> {
        self.write(guild, Edit::Delete, meta).await
    }

    /// Returns the current document, creating the default config first when
    /// the guild has none. Safe when shards race: the loser reads the
    /// winner's config.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails.
    pub async fn get_or_create(&self, guild: GuildId, meta: &WriteMeta) -> Result<Shown> {
        for _ in 0..=self.max_retries {
            if let Some(head) = self.store.head(guild).await? {
                if let Some(document) = head.document {
                    return Ok(Shown {
                        guild_id: guild,
                        version: head.version,
                        document,
                    });
                }
            }
            match self.create(guild, json!({}), meta).await {
                Ok(_) | Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(
            "the guild's config kept changing while it was being created".into(),
        ))
    }

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
                    Some(_) => Err(Error::NotFound(format!(
                        "guild {guild}'s config is deleted"
                    ))),
                    None => Err(Error::NotFound(format!("guild {guild} has no config"))),
                }
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

    /// Every configured guild with its version and last change.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails.
    pub async fn list(&self) -> Result<Vec<GuildSummary>> {
        Ok(self.store.list_guilds().await?)
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

    /// Applies an edit: computes the change set from the current head with
    /// pure domain code and commits it, recomputing from the new head when a
    /// concurrent writer got there first (unless an expected version was
    /// given).
    ///
    /// # Errors
    /// [`Error::Invalid`] for bad input, [`Error::Conflict`] for a version
    /// mismatch, an existing guild, a reused request id or a race lost after
    /// the retries, [`Error::NotFound`] for a missing guild or version,
    /// [`Error::Storage`] when the write fails (then nothing was written).
    pub async fn write(&self, guild: GuildId, edit: Edit, meta: &WriteMeta) -> Result<WriteResult> {
        check_meta(meta)?;
        let fingerprint = meta
            .request_id
            .as_ref()
            .map(|_| fingerprint(guild, &edit, &meta.actor))
            .transpose()?;
        let mut attempt = 0;
        // A remembered head is tried once, and only by a write that would
        // commit; anything else is decided on a freshly read head.
        let mut try_hint = !meta.dry_run;
        loop {
            let hinted = if try_hint {
                self.hints.get(guild)
            } else {
                None
            };
            try_hint = false;
            let from_hint = hinted.is_some();
            let head = match hinted {
                Some(head) => Some(head),
                None => self.store.head(guild).await?.map(Arc::new),
            };
            let head = head.as_deref();
            if let (Some(request_id), Some(fp)) = (&meta.request_id, &fingerprint) {
                if let Some(record) = self.store.request(guild, request_id).await? {
                    return replay(record, fp);
                }
            }
            if let Some(expected) = meta.expect_version {
                let current = head.map_or(0, |h| h.version);
                if current != expected {
                    if from_hint {
                        continue;
                    }
                    return Err(Error::Conflict(format!(
                        "guild {guild} is at version {current}, not the expected {expected}"
                    )));
                }
            }
            let planned = match self.plan(guild, head, &edit).await {
                Ok(Some(step)) => self
                    .change_set(guild, head, step, meta, fingerprint.as_deref())
                    .map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let (change_set, mut result) = match planned {
                Ok(Some(planned)) => planned,
                // A remembered head only ever leads to a commit.
                _ if from_hint => continue,
                Ok(None) => {
                    return Ok(WriteResult {
                        guild_id: guild,
                        version: head.map_or(0, |h| h.version),
                        outcome: Outcome::Unchanged,
                        entry_hash: None,
                        changes: meta.dry_run.then(Vec::new),
                        dry_run: meta.dry_run,
                        replayed: false,
                    });
                }
                Err(e) => return Err(e),
            };
            if meta.dry_run {
                result.entry_hash = None;
                result.changes = Some(change_set.entry.body().changes.clone());
                result.dry_run = true;
                return Ok(result);
            }
            // Only a document that reads back exactly as it is held here is
            // remembered: a float such as 2.0 comes back from SQLite's
            // canonical text as the integer 2, and a plan computed from the
            // float could report a change the stored document does not have.
            let new_head = (self.hints.is_enabled()
                && change_set
                    .head
                    .document
                    .as_ref()
                    .is_none_or(reads_back_exactly))
            .then(|| change_set.head.clone());
            match self.store.commit(change_set).await {
                Ok(()) => {
                    match new_head {
                        Some(new_head) => self.hints.put(new_head),
                        None => self.hints.forget(guild),
                    }
                    tracing::info!(guild = %guild, version = result.version, outcome = ?result.outcome, "config written");
                    return Ok(result);
                }
                Err(StoreError::Conflict(reason)) if from_hint => {
                    // Another writer moved the head: not a lost race yet.
                    self.hints.forget(guild);
                    tracing::debug!(guild = %guild, %reason, "remembered head is stale; reading it");
                }
                Err(StoreError::Conflict(reason))
                    if meta.expect_version.is_none() && attempt < self.max_retries =>
                {
                    attempt += 1;
                    tracing::debug!(guild = %guild, attempt, %reason, "lost a race; recomputing from the new head");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(StoreError::Conflict(reason)) if meta.expect_version.is_some() => {
                    return Err(Error::Conflict(format!(
                        "guild {guild} changed while this write was computed ({reason})"
                    )))
                }
                Err(StoreError::Conflict(_)) => {
                    return Err(Error::Conflict(format!(
                        "guild {guild} kept changing; the write lost the race {} times",
                        attempt + 1
                    )))
                }
                Err(e) => {
                    // Whether it landed is unknown: read the head next time.
                    self.hints.forget(guild);
                    return Err(e.into());
                }
            }
        }
    }

    /// Computes the chain step the edit makes, or `None` when nothing would
    /// change.
    async fn plan(&self, guild: GuildId, head: Option<&Head>, edit: &Edit) -> Result<Option<Step>> {
        let current = head.and_then(|h| h.document.as_ref());
        let version = head.map_or(0, |h| h.version);
        let existing = || {
            current.ok_or_else(|| match head {
                Some(_) => Error::NotFound(format!("guild {guild}'s config is deleted")),
                None => Error::NotFound(format!("guild {guild} has no config (create it first)")),
            })
        };
        // An edit of the current document: `None` when it changes nothing.
        let update = |doc: CanonicalDocument, current: &Value| {
            (!same_document(doc.value(), current)).then_some(Step::Update(doc))
        };
        let step = match edit {
            Edit::Create { input } => {
                if current.is_some() {
                    return Err(Error::Conflict(format!(
                        "guild {guild} already has a config"
                    )));
                }
                Step::Create(self.normalise(input.clone(), None)?)
            }
            Edit::Update(edit) => {
                let current = existing()?;
                let doc = self.normalise(apply_edits(current.clone(), edit)?, Some(current))?;
                return Ok(update(doc, current));
            }
            Edit::Upsert(edit) => match current {
                Some(current) => {
                    let doc = self.normalise(apply_edits(current.clone(), edit)?, Some(current))?;
                    return Ok(update(doc, current));
                }
                None => {
                    let input = apply_edits(self.schema.defaults(), edit)?;
                    Step::Create(self.normalise(input, None)?)
                }
            },
            Edit::Replace { document } => {
                let current = existing()?;
                let doc = self.normalise(document.clone(), Some(current))?;
                return Ok(update(doc, current));
            }
            Edit::Revert { to } => {
                let current = existing()?;
                if *to == 0 || *to > version {
                    return Err(Error::NotFound(format!(
                        "guild {guild} has no version {to}"
                    )));
                }
                let Some(snapshot) = self.store.snapshot(guild, *to).await? else {
                    return Err(Error::NotFound(format!(
                        "guild {guild} has no version {to}"
                    )));
                };
                if same_document(&snapshot.document, current) {
                    return Ok(None);
                }
                let document =
                    CanonicalDocument::new(snapshot.document).map_err(|e| Error::invalid("", e))?;
                Step::Revert { to: *to, document }
            }
            Edit::Delete => {
                existing()?;
                Step::Delete
            }
        };
        Ok(Some(step))
    }

    /// Normalises and validates an input document against the schema and the
    /// limits every stored document obeys.
    /// Returns the document with its RFC 8785 text, written once for the
    /// size check, the snapshot's hash and the stored text.
    fn normalise(&self, mut input: Value, current: Option<&Value>) -> Result<CanonicalDocument> {
        restore_kept_secrets(&mut input, current, &self.schema.secret_paths())?;
        let mut problems = Vec::new();
        let doc = match self.schema.normalise(&input) {
            Ok(doc) => doc,
            Err(Violations(v)) => {
                problems.extend(v);
                // Raw limits are still worth reporting alongside schema errors.
                check_limits(&input, &mut Vec::new(), &mut problems);
                problems.dedup();
                return Err(problems.into());
            }
        };
        check_limits(&doc, &mut Vec::new(), &mut problems);
        if !problems.is_empty() {
            return Err(problems.into());
        }
        let doc = CanonicalDocument::new(doc).map_err(|e| Error::invalid("", e))?;
        if doc.text().len() > json::MAX_DOCUMENT_BYTES {
            return Err(vec![Violation::new(
                "",
                format!(
                    "document is {} bytes of canonical JSON; the limit is {} (64 KiB)",
                    doc.text().len(),
                    json::MAX_DOCUMENT_BYTES
                ),
            )]
            .into());
        }
        Ok(doc)
    }

    /// Builds the chained change set and the result it will report.
    fn change_set(
        &self,
        guild: GuildId,
        head: Option<&Head>,
        step: Step,
        meta: &WriteMeta,
        fingerprint: Option<&str>,
    ) -> Result<(ChangeSet, WriteResult)> {
        let outcome = match step.operation() {
            Operation::Create => Outcome::Created,
            Operation::Update | Operation::Purge => Outcome::Updated,
            Operation::Revert => Outcome::Reverted,
            Operation::Delete => Outcome::Deleted,
        };
        let link = link(
            guild,
            head,
            step,
            meta.link_meta(),
            &self.schema.secret_paths(),
            self.clock.now(),
        )
        .map_err(|e| Error::invalid("", e.to_string()))?;
        let result = WriteResult {
            guild_id: guild,
            version: link.head.version,
            outcome,
            entry_hash: Some(link.entry.entry_hash().to_owned()),
            changes: None,
            dry_run: false,
            replayed: false,
        };
        let request = match (&meta.request_id, fingerprint) {
            (Some(id), Some(fp)) => Some(RequestRecord {
                request_id: id.clone(),
                fingerprint: fp.to_owned(),
                result: serde_json::to_value(&result).map_err(|e| Error::Storage(e.to_string()))?,
            }),
            _ => None,
        };
        Ok((ChangeSet::new(link, head.map(|h| h.seq), request), result))
    }
}

/// Whether two documents are the same config: equal values, or, when floats
/// are involved (2.0 and 2 differ as values), the same RFC 8785 text, which
/// is what the chain hashes and what SQLite stores.
fn same_document(a: &Value, b: &Value) -> bool {
    a == b
        || ((!reads_back_exactly(a) || !reads_back_exactly(b))
            && matches!((canonical_json(a), canonical_json(b)), (Ok(x), Ok(y)) if x == y))
}

/// Whether a document reads back from either store exactly as it is held:
/// no number in it is a float (integers, strings, booleans and nulls are
/// stored and read back as they are, whatever the backend).
fn reads_back_exactly(document: &Value) -> bool {
    match document {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(items) => items.iter().all(reads_back_exactly),
        Value::Object(map) => map.values().all(reads_back_exactly),
        Value::Null | Value::Bool(_) | Value::String(_) => true,
    }
}

/// A short, jittered, growing pause before recomputing a write that lost a
/// race, so writers hammering one guild spread out instead of colliding
/// again in lockstep.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, RandomState};
    let ceiling_micros = 500u64 << attempt.min(6); // 1 ms, 2 ms, … up to 32 ms
    let jitter = RandomState::new().hash_one(attempt) % ceiling_micros.max(1);
    std::time::Duration::from_micros(jitter)
}

/// Applies unsets, then sets, to a document.
fn apply_edits(mut doc: Value, edit: &FieldEdit) -> Result<Value> {
    let mut problems = Vec::new();
    for path in &edit.unsets {
        json::remove_at(&mut doc, path.segments());
    }
    for (path, value) in &edit.sets {
        if let Err(e) = json::set_at(&mut doc, path.segments(), value.clone()) {
            problems.push(Violation::new(path.to_string(), e));
        }
    }
    if problems.is_empty() {
        Ok(doc)
    } else {
        Err(problems.into())
    }
}

pub(crate) fn check_meta(meta: &WriteMeta) -> Result<()> {
    let mut problems = Vec::new();
    if let Some(reason) = &meta.reason {
        if reason.chars().count() > MAX_REASON {
            problems.push(Violation::new(
                "/reason",
                format!("must be at most {MAX_REASON} characters"),
            ));
        }
        if reason.contains('\0') {
            problems.push(Violation::new("/reason", "must not contain U+0000"));
        }
    }
    if let Some(id) = &meta.request_id {
        let n = id.chars().count();
        if n == 0 || n > MAX_REQUEST_ID || id.chars().any(char::is_control) {
            problems.push(Violation::new(
                "/request_id",
                format!("must be 1 to {MAX_REQUEST_ID} characters without control characters"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into())
    }
}

/// SHA-256 over operation, guild, input and actor: a retry with the same
/// request id must carry the same fingerprint.
fn fingerprint(guild: GuildId, edit: &Edit, actor: &Actor) -> Result<String> {
    canonical_sha256(&json!({
        "operation": edit.operation_name(),
        "guild_id": guild,
        "input": edit.fingerprint_input(),
        "actor": actor,
    }))
    .map_err(|e| Error::invalid("", e))
}

fn replay(record: RequestRecord, fingerprint: &str) -> Result<WriteResult> {
    if record.fingerprint != fingerprint {
        return Err(Error::Conflict(format!(
            "request id {:?} was already used for a different write",
            record.request_id
        )));
    }
    let mut result = parse_result(&record.result)
        .ok_or_else(|| Error::Corrupt("a stored request result does not parse".into()))?;
    result.replayed = true;
    Ok(result)
}

fn parse_result(value: &Value) -> Option<WriteResult> {
    Some(WriteResult {
        guild_id: GuildId::parse(value.get("guild_id")?.as_str()?).ok()?,
        version: value.get("version")?.as_u64()?,
        outcome: serde_json::from_value(value.get("outcome")?.clone()).ok()?,
        entry_hash: value.get("entry_hash")?.as_str().map(str::to_owned),
        changes: None,
        dry_run: false,
        replayed: false,
    })
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
