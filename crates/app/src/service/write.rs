//! The write use cases: the write loop (head, replay, plan, link, commit,
//! retry), the typed edit, and the checks every write makes first.

use std::sync::Arc;

use guildconf_domain::json::{self, canonical_json, check_limits};
use guildconf_domain::{
    link, restore_kept_secrets, CanonicalDocument, Event, GuildConfig, GuildId, Step, Violation,
    Violations,
};
use guildconf_ports::{ChangeSet, Head, RequestRecord, StoreError};
use serde_json::{json, Value};

use super::idempotency::{fingerprint, replay};
use super::{
    ConfigService, Edit, FieldEdit, Outcome, Shown, WriteMeta, WriteResult, MAX_REASON,
    MAX_REQUEST_ID,
};
use crate::error::{Error, Result};
use crate::metrics::WriteProbe;

/// The family of the events guildconf records for API tokens, which callers
/// may not record themselves.
const TOKEN_FAMILY: &str = "token";

/// Refuses an event only guildconf itself records: the `token` family
/// (`token.created`, `token.revoked`), written when an API token is created
/// or revoked, so that such an entry always stands for a real token.
/// [`ConfigService::record`] runs it; a caller can run it before opening a
/// database, so that such an event leaves no trace at all.
///
/// # Errors
/// [`Error::Invalid`] at `/action` for a key of the `token` family.
pub fn check_recordable(event: &Event) -> Result<()> {
    // A refusal of a token is recorded by guildconf itself
    // (`ConfigService::record_denial`); one recorded by hand could blame a
    // token that was never refused.
    if event.action == "permission.denied" && event.target.kind == "token" {
        return Err(Error::invalid(
            "/target/type",
            "permission.denied on a token is recorded by guildconf itself when it refuses that token",
        ));
    }
    if event.action.split_once('.').map(|(family, _)| family) == Some(TOKEN_FAMILY) {
        return Err(Error::invalid(
            "/action",
            format!(
                "{} is recorded by guildconf itself when an API token is created or revoked",
                event.action
            ),
        ));
    }
    Ok(())
}

impl ConfigService {
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
            let (version, seq, document) = match head {
                Some(Head {
                    version,
                    seq,
                    document: Some(document),
                    ..
                }) => (version, seq, document),
                Some(h) if h.version > 0 => {
                    return Err(Error::NotFound(format!(
                        "guild {guild}'s config is deleted"
                    )))
                }
                // A head at version 0 has recorded events only.
                Some(_) | None => {
                    return Err(Error::NotFound(format!("guild {guild} has no config")))
                }
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
                        // Any move of the chain (a purge moves the seq
                        // but keeps the version) is worth a fresh read.
                        && self.store.head(guild).await?.map(|h| h.seq) != Some(seq) =>
                {
                    attempt += 1;
                    crate::metrics::retried("replace");
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

    /// Records an event in the guild's chain: checked against the service's
    /// action registry ([`ConfigService::with_actions`]), its secret data
    /// redacted, written as the guild's next entry with the current config
    /// version and document hash (0 and none for a guild without a config).
    /// The config is unchanged. Idempotent with `meta.request_id` as any
    /// write is.
    ///
    /// The `token` family (`token.created`, `token.revoked`) is guildconf's
    /// own record of API tokens, written only when a token is created or
    /// revoked, so that such an entry in a chain always stands for a real
    /// token.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an unknown action key, a key of the `token`
    /// family, a disallowed outcome, a bad target, or data the key does not
    /// declare or of the wrong type (then nothing is stored); otherwise as
    /// [`ConfigService::write`].
    pub async fn record(
        &self,
        guild: GuildId,
        event: &Event,
        meta: &WriteMeta,
    ) -> Result<WriteResult> {
        check_recordable(event)?;
        let checked = self.actions.check(event).map_err(|e| {
            let e = Error::from(e);
            crate::metrics::event_refused(&e);
            e
        })?;
        self.write(guild, Edit::Event(checked), meta).await
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
        let probe = WriteProbe::start(&edit);
        let result = self.write_loop(guild, edit, meta, &probe).await;
        probe.finish(&result);
        result
    }

    /// The loop of [`ConfigService::write`], telling `probe` of each commit
    /// and retry.
    async fn write_loop(
        &self,
        guild: GuildId,
        edit: Edit,
        meta: &WriteMeta,
        probe: &WriteProbe,
    ) -> Result<WriteResult> {
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
            let committed = self.store.commit(change_set).await;
            probe.committed(&committed);
            match committed {
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
                    probe.retried();
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
                Some(h) if h.version > 0 => {
                    Error::NotFound(format!("guild {guild}'s config is deleted"))
                }
                // A head at version 0 has recorded events only.
                _ => Error::NotFound(format!("guild {guild} has no config (create it first)")),
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
            Edit::Event(event) => Step::Event(event.clone()),
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
    pub(crate) fn change_set(
        &self,
        guild: GuildId,
        head: Option<&Head>,
        step: Step,
        meta: &WriteMeta,
        fingerprint: Option<&str>,
    ) -> Result<(ChangeSet, WriteResult)> {
        let outcome = Outcome::of(step.operation());
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
        // As a set of an unknown field is refused, so is its unset.
        if path.is_root() {
            problems.push(Violation::new("", "cannot unset the whole document"));
        } else if !json::remove_at(&mut doc, path.segments()) {
            problems.push(Violation::new(path.to_string(), "nothing to unset here"));
        }
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
        // The rule labels follow: CR, LF, ESC and the rest would reach CSV
        // exports and terminals raw.
        if reason.chars().any(char::is_control) {
            problems.push(Violation::new(
                "/reason",
                "must not contain control characters",
            ));
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
