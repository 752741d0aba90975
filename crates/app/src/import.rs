//! Import an export into an empty database, and copy a whole database
//! between backends, every entry hash preserved.

use std::io::BufRead;

use guildconf_domain::{
    apply_changes, link, unapply_changes, CanonicalDocument, ChainVerifier, CheckedEvent,
    ConfigSchema, Entry, EntryBody, EntrySignature, GuildConfigSchema, GuildId, Head, LinkMeta,
    Operation, RequestContext, SecretPaths, Step, Timestamp, BODY_KEYS,
};
use guildconf_ports::{ChangeSet, ConfigStore, StoreError};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::fanout::{self, RunStart};
use crate::verify::{line_sig, line_snapshot_evidence, verify_export, FastLine, VerifyReport};

/// What an import wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Guilds written.
    pub guilds: u64,
    /// Entries written.
    pub entries: u64,
}

/// Why an import refused to write anything.
#[derive(Debug)]
pub enum ImportRefusal {
    /// The file does not verify; nothing was stored.
    Unverified(VerifyReport),
    /// The file holds a line guildconf could not have written (a document
    /// the schema refuses, changes that do not give the next document, a
    /// time that goes backwards, an entry that is not what the write it
    /// describes makes); the message names the line. Nothing was stored.
    Rejected(String),
    /// Any other error; nothing was stored.
    Failed(Error),
}

impl From<Error> for ImportRefusal {
    fn from(e: Error) -> Self {
        ImportRefusal::Failed(e)
    }
}

/// Replays one guild's entries into a store as change sets. Each line is
/// rebuilt through the one maker of links ([`link`]) from what it says (the
/// operation, the documents before and after, actor, request metadata and
/// time) and must come out byte for byte as the line's entry: a file holds
/// only entries guildconf itself could have written. Each version's document
/// comes from the line's `snapshot` (present in `export --with-snapshots`
/// files) or from applying the changes to the previous one.
struct GuildReplay {
    guild: GuildId,
    head: Option<Head>,
    secrets: SecretPaths,
}

impl GuildReplay {
    fn new(guild: GuildId, secrets: SecretPaths) -> Self {
        Self {
            guild,
            head: None,
            secrets,
        }
    }

    /// The next line of the guild's run: checked by the chain verifier as
    /// `verify --file` checks it (hashes, seq and `prev_hash`, snapshots), then
    /// rebuilt into its change set.
    fn next(&mut self, line: fanout::Line, verifier: &mut ChainVerifier) -> Result<ChangeSet> {
        let no = line.no;
        let text = line.text.map_err(|e| match e {
            crate::input::InputError::Io(e) => Error::Storage(format!("cannot read the file: {e}")),
            other => Error::invalid("/file", format!("line {no} {other}")),
        })?;
        let fast = line.routed.and_then(|_| FastLine::of(&text));
        let (entry, snapshot, sig) = match fast {
            Some(fast) => {
                let evidence = fast.snapshot_evidence();
                verifier.push_stored(&fast.body, fast.entry_hash, |_| evidence, None);
                refuse_unverified(no, verifier)?;
                let body = serde_json::from_str::<EntryBody>(&fast.body).map_err(|e| {
                    Unbuilt::Refused(format!("malformed entry body: {e}")).at_line(no)
                })?;
                let snapshot = fast
                    .snapshot
                    .map(|raw| serde_json::from_str::<Value>(raw.get()))
                    .transpose()
                    .map_err(|e| {
                        Unbuilt::Refused(format!("malformed snapshot: {e}")).at_line(no)
                    })?;
                let entry_hash = fast.entry_hash.to_owned();
                (Entry { body, entry_hash }, snapshot, fast.sig)
            }
            None => {
                let map = parse_line(no, &text)?;
                if line_guild(no, &map)? != self.guild {
                    return Err(Error::Corrupt(format!(
                        "line {no} cannot be read as an entry of guild {}, whose lines are around it",
                        self.guild
                    )));
                }
                verifier.push(&map, line_snapshot_evidence(&map), None);
                refuse_unverified(no, verifier)?;
                let mut line = Value::Object(map);
                let entry = Entry::from_json(&line).map_err(|e| Unbuilt::from(e).at_line(no))?;
                let snapshot = line
                    .as_object_mut()
                    .and_then(|m| m.remove("snapshot"))
                    .filter(|s| !s.is_null());
                let sig = line_sig(line.get("sig"));
                (entry, snapshot, sig)
            }
        };
        self.change_set(no, entry, snapshot, sig)
    }

    fn change_set(
        &mut self,
        line_no: usize,
        claimed: Entry,
        given: Option<Value>,
        sig: Option<EntrySignature>,
    ) -> Result<ChangeSet> {
        let at = |why: Unbuilt| why.at_line(line_no);
        check_as_written(&claimed.body).map_err(|e| at(e.into()))?;
        let b = &claimed.body;
        let anchored;
        let prev = match &self.head {
            Some(head) => Some(head),
            None if b.seq <= 1 => None,
            None => {
                anchored = anchor(b, given.as_ref()).map_err(&at)?;
                Some(&anchored)
            }
        };
        let current = prev.and_then(|h| h.document.as_ref());
        let step = Self::step(b, current, given).map_err(&at)?;
        let context = RequestContext::from_map(&b.context);
        let meta = LinkMeta {
            actor: &b.actor,
            reason: b.reason.as_deref(),
            request_id: b.request_id.as_deref(),
            context: &context,
        };
        let now = b.occurred_at.datetime();
        let link = link(self.guild, prev, step, meta, &self.secrets, now)
            .map_err(|e| at(e.to_string().into()))?;
        if link.entry.entry_hash() != claimed.entry_hash {
            return Err(at(Unbuilt::Refused(format!(
                "guild {} seq {} is not an entry guildconf writes: its {} differs from the entry \
                 rebuilt from it",
                b.guild_id,
                b.seq,
                first_difference(b, link.entry.body())
            ))));
        }
        let mut change = ChangeSet::new(link, self.head.as_ref().map(|h| h.seq), None);
        // The signature travels as the file has it, byte for byte; a `sig`
        // that is not a well-formed signature is refused with the line.
        if let Some(sig) = sig {
            if sig.check_shape().is_err() {
                return Err(at(Unbuilt::Refused(format!(
                    "guild {} seq {} has a sig that is not a well-formed ed25519 signature",
                    b.guild_id, b.seq
                ))));
            }
            change.signature = Some(sig);
        }
        self.head = Some(change.head.clone());
        Ok(change)
    }

    /// The chain step a line says it made.
    fn step(
        b: &EntryBody,
        current: Option<&Value>,
        given: Option<Value>,
    ) -> std::result::Result<Step, Unbuilt> {
        let document = |base: Option<&Value>| -> std::result::Result<CanonicalDocument, Unbuilt> {
            let doc = match (given, base) {
                (Some(doc), _) => doc,
                (None, Some(base)) => apply_changes(base, &b.changes)?,
                (None, None) => {
                    return Err(Unbuilt::Refused(format!(
                        "guild {} seq {} follows no document to apply its changes to",
                        b.guild_id, b.seq
                    )))
                }
            };
            let doc = CanonicalDocument::new(doc)?;
            if b.snapshot_sha256.as_deref() != Some(doc.sha256()) {
                return Err(Unbuilt::NeedsSnapshots(format!(
                    "the document of guild {} version {} cannot be rebuilt from its changes (a redacted \
                     secret or a missing snapshot); export with --with-snapshots",
                    b.guild_id, b.config_version
                )));
            }
            check_document(doc.value())?;
            Ok(doc)
        };
        let empty = Value::Object(Map::new());
        Ok(match b.operation {
            Operation::Create => Step::Create(document(Some(&empty))?),
            Operation::Update => Step::Update(document(current)?),
            Operation::Revert => Step::Revert {
                to: b
                    .detail
                    .get("to_version")
                    .and_then(Value::as_u64)
                    .ok_or("a revert entry names no detail.to_version")?,
                document: document(current)?,
            },
            Operation::Delete => Step::Delete,
            Operation::Purge => {
                let field = |key: &str| {
                    b.detail
                        .get(key)
                        .ok_or(format!("a purge entry names no detail.{key}"))
                };
                let through_seq = field("through_seq")?
                    .as_u64()
                    .ok_or("detail.through_seq is not a count")?;
                Step::Purge {
                    before: field("before")?
                        .as_str()
                        .and_then(|t| Timestamp::parse_stored(t).ok())
                        .ok_or("detail.before is not a stored time")?,
                    through_seq,
                    through_hash: field("through_hash")?
                        .as_str()
                        .ok_or("detail.through_hash is not a string")?
                        .to_owned(),
                    entries: purged_count(b).ok_or("a purge entry's summary names no count")?,
                }
            }
            // An event is checked for its shape only: the keys the writing
            // bot registered are not known here. Its data was redacted when it
            // was recorded, and the rebuilt entry must hash the same.
            Operation::Event(key) => {
                Step::Event(CheckedEvent::from_detail(key, &b.detail).map_err(|v| {
                    format!(
                        "guild {} seq {} is not an event guildconf writes: {v}",
                        b.guild_id, b.seq
                    )
                })?)
            }
        })
    }
}

/// Why a line cannot be replayed.
enum Unbuilt {
    /// The file lacks what rebuilding the line needs (its snapshots): a file
    /// guildconf wrote, but not an importable one (invalid input, exit 3).
    NeedsSnapshots(String),
    /// The line is not what guildconf writes (refused, exit 6).
    Refused(String),
}

impl Unbuilt {
    fn at_line(self, line_no: usize) -> Error {
        match self {
            Unbuilt::NeedsSnapshots(m) => Error::invalid("/file", format!("line {line_no}: {m}")),
            Unbuilt::Refused(m) => Error::Corrupt(format!("line {line_no}: {m}")),
        }
    }
}

impl From<String> for Unbuilt {
    fn from(message: String) -> Self {
        Unbuilt::Refused(message)
    }
}

impl From<&str> for Unbuilt {
    fn from(message: &str) -> Self {
        Unbuilt::Refused(message.to_owned())
    }
}

/// What a write checks of its metadata, checked of a line: the reason and
/// request id rules, and the format version.
fn check_as_written(b: &EntryBody) -> std::result::Result<(), String> {
    if b.v != guildconf_domain::ENTRY_FORMAT_VERSION {
        return Err(format!(
            "entry format v {} is not one guildconf writes",
            b.v
        ));
    }
    let mut meta = crate::service::WriteMeta::new(b.actor.clone());
    meta.reason.clone_from(&b.reason);
    meta.request_id.clone_from(&b.request_id);
    crate::service::check_meta(&meta).map_err(|e| match e {
        Error::Invalid(v) => v.to_string(),
        other => other.to_string(),
    })
}

/// A version's document must be what a write stores: the schema's
/// normalised form of itself, within every limit.
fn check_document(doc: &Value) -> std::result::Result<(), String> {
    let schema = GuildConfigSchema;
    match schema.normalise(doc) {
        Ok(normal) if normal == *doc => {}
        Ok(_) => return Err("a document is not in the schema's normalised form".into()),
        Err(v) => return Err(format!("a document the schema refuses: {v}")),
    }
    let mut problems = Vec::new();
    guildconf_domain::json::check_limits(doc, &mut Vec::new(), &mut problems);
    match problems.first() {
        Some(p) => Err(format!("a document past the limits: {p}")),
        None => Ok(()),
    }
}

/// The head before a guild's first kept entry when earlier ones were purged:
/// at the seq, hash and version the entry follows, one microsecond before
/// it, with the document before it (undoing its changes on the snapshot the
/// line carries).
fn anchor(b: &EntryBody, given: Option<&Value>) -> std::result::Result<Head, Unbuilt> {
    let makes_version = b.operation.makes_version();
    let version = if makes_version {
        b.config_version
            .checked_sub(1)
            .ok_or("config_version 0 makes no version")?
    } else {
        b.config_version
    };
    let document = match (b.operation, given) {
        (Operation::Create, _) => None,
        (Operation::Delete, _) => Some(unapply_changes(&Value::Object(Map::new()), &b.changes)?),
        (Operation::Purge, Some(doc)) => Some(doc.clone()),
        (_, Some(doc)) => Some(unapply_changes(doc, &b.changes)?),
        (_, None) => {
            return Err(Unbuilt::NeedsSnapshots(format!(
                "guild {} seq {} starts after a purge, so its snapshot cannot be rebuilt from changes; \
                 export with --with-snapshots",
                b.guild_id, b.seq
            )))
        }
    };
    let before = b.occurred_at.datetime() - chrono::TimeDelta::microseconds(1);
    Ok(Head {
        guild_id: b.guild_id,
        version,
        seq: b.seq - 1,
        last_hash: b.prev_hash.clone(),
        updated_at: Timestamp::from_datetime(before),
        actor: b.actor.clone(),
        document,
    })
}

/// How many entries a purge entry says it removed. Those entries are gone
/// from every file made after the purge, so the count cannot be recounted:
/// it is read from the summary, which the rebuilt entry must then match
/// byte for byte (as every other field must).
fn purged_count(b: &EntryBody) -> Option<u64> {
    let prefix = format!("{} ({}) purged ", b.actor.label, b.actor.kind);
    let rest = b.summary.strip_prefix(&prefix)?;
    let digits = rest.split(' ').next()?;
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The first body key whose value differs between two bodies, for an error
/// message.
fn first_difference(a: &EntryBody, b: &EntryBody) -> String {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return "body".into();
    };
    BODY_KEYS
        .iter()
        .find(|k| a.get(**k) != b.get(**k))
        .map_or_else(|| "hash".into(), |k| format!("`{k}`"))
}

/// The secret paths entries are redacted at: the shipped schema's (import
/// and copy rebuild entries as the `guildconf` command writes them).
fn shipped_secrets() -> SecretPaths {
    GuildConfigSchema.secret_paths()
}

async fn require_empty(store: &dyn ConfigStore) -> Result<()> {
    if !store.guild_ids(None, 1).await?.is_empty() {
        return Err(Error::Conflict(
            "import and copy need an empty database; this one holds guilds already".into(),
        ));
    }
    Ok(())
}

/// Loads an export into an empty database, in one transaction. The file is
/// read once: a reader thread cuts it into guilds, worker threads check each
/// guild's lines as `verify --file` does and rebuild them into change sets
/// (guilds are independent chains), and the store writes them in file
/// order while they come. A file that does not verify or cannot be rebuilt
/// stores nothing; only then is it read again, to tell a file that does not
/// verify (with its verify report) from one that verifies but is refused.
/// `open` must return the file from its start each time; memory does not
/// grow with the file. `progress` is told each entry written.
///
/// # Errors
/// [`ImportRefusal::Unverified`] for a tampered file;
/// [`ImportRefusal::Rejected`] for a file guildconf could not have written;
/// [`ImportRefusal::Failed`] with [`Error::Conflict`] for a database that is
/// not empty, [`Error::Invalid`] for a file that cannot be rebuilt,
/// [`Error::Storage`] when the database fails.
pub async fn import<R: BufRead + Send + 'static>(
    store: &dyn ConfigStore,
    mut open: impl FnMut() -> Result<R>,
    mut progress: impl FnMut(u64) + Send + 'static,
) -> std::result::Result<ImportReport, ImportRefusal> {
    require_empty(store).await?;
    // One pass, in one transaction: every line checked, rebuilt and
    // written. A refused line, a failure or a kill leaves the database as
    // empty as it was, and a retry starts afresh.
    let (dispatch, ordered) = fanout::start(fanout::workers(), replay_run);
    fanout::spawn_reader(open()?, dispatch);
    let tally = std::sync::Arc::new(std::sync::Mutex::new((ImportReport::default(), None)));
    let refused = std::sync::Arc::new(std::sync::Mutex::new(None::<Error>));
    let (counts, why) = (
        std::sync::Arc::clone(&tally),
        std::sync::Arc::clone(&refused),
    );
    let changes = ordered.map(move |replayed| match replayed {
        Ok(Ok(change)) => {
            // A poisoned tally must fail the import, never end it early
            // (that would commit a part of the file).
            let Ok(mut guard) = counts.lock() else {
                return Err(StoreError::Storage(
                    "the import's tally was poisoned".into(),
                ));
            };
            let (report, last) = &mut *guard;
            if *last != Some(change.guild_id) {
                report.guilds += 1;
                *last = Some(change.guild_id);
            }
            report.entries += 1;
            progress(report.entries);
            Ok(change)
        }
        Ok(Err(e)) => {
            let message = e.to_string();
            if let Ok(mut slot) = why.lock() {
                *slot = Some(e);
            }
            Err(StoreError::Storage(message))
        }
        Err(fanout::Broken) => Err(StoreError::Storage(
            "an import thread stopped before the end of the file".into(),
        )),
    });
    let outcome = store.commit_all(Box::new(changes)).await;
    if let Some(e) = refused.lock().ok().and_then(|mut slot| slot.take()) {
        let report = verify_export(open()?)?;
        if !report.ok {
            return Err(ImportRefusal::Unverified(report));
        }
        return Err(match e {
            Error::Corrupt(reason) => ImportRefusal::Rejected(reason),
            other => ImportRefusal::Failed(other),
        });
    }
    outcome.map_err(Error::from)?;
    let written = tally
        .lock()
        .map(|guard| guard.0.clone())
        .map_err(|_| Error::Storage("the import's tally was poisoned".into()))?;
    Ok(written)
}

/// Replays one run of the file's lines (see [`fanout`]) into change sets:
/// a guild's whole chain, checked and rebuilt line by line. Stops at the
/// first line refused; a run of a guild that came back after another
/// guild's lines, or of lines before the first guild, is refused at once.
fn replay_run(
    start: RunStart,
    lines: &mut dyn Iterator<Item = fanout::Line>,
    emit: &mut dyn FnMut(Result<ChangeSet>) -> bool,
) {
    let guild = match start {
        RunStart::Chain(guild) => guild,
        RunStart::Skipped(Some((guild, no))) => {
            emit(Err(Error::Corrupt(format!(
                "line {no}: guild {guild}'s lines come back after another guild's"
            ))));
            return;
        }
        RunStart::Skipped(None) => {
            if let Some(line) = lines.next() {
                emit(Err(unreadable(line)));
            }
            return;
        }
    };
    let mut replay = GuildReplay::new(guild, shipped_secrets());
    let mut verifier = ChainVerifier::new(guild);
    for line in lines {
        let change = replay.next(line, &mut verifier);
        let refused = change.is_err();
        if !emit(change) || refused {
            return;
        }
    }
    if let Err(p) = verifier.finish(None, false) {
        emit(Err(Error::Corrupt(format!(
            "guild {guild} does not verify: {}",
            p.message
        ))));
    }
}

/// Why a line that names no guild cannot be replayed.
fn unreadable(line: fanout::Line) -> Error {
    let no = line.no;
    match line.text {
        Err(crate::input::InputError::Io(e)) => {
            Error::Storage(format!("cannot read the file: {e}"))
        }
        Err(other) => Error::invalid("/file", format!("line {no} {other}")),
        Ok(text) => match parse_line(no, &text) {
            Ok(map) => line_guild(no, &map).err().unwrap_or_else(|| {
                Error::invalid("/file", format!("line {no} has no valid guild_id"))
            }),
            Err(e) => e,
        },
    }
}

/// A line as a JSON object.
fn parse_line(no: usize, text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::invalid(
            "/file",
            format!("line {no} is not a JSON object"),
        )),
    }
}

/// The guild a parsed line names.
fn line_guild(no: usize, map: &Map<String, Value>) -> Result<GuildId> {
    map.get("guild_id")
        .and_then(Value::as_str)
        .and_then(|g| GuildId::parse(g).ok())
        .ok_or_else(|| Error::invalid("/file", format!("line {no} has no valid guild_id")))
}

/// A line the chain verifier refused, as an import refusal.
fn refuse_unverified(no: usize, verifier: &ChainVerifier) -> Result<()> {
    match verifier.problem() {
        Some(p) => Err(Error::Corrupt(format!("line {no}: {}", p.message))),
        None => Ok(()),
    }
}

/// Copies every guild's history from one store into another, empty one,
/// preserving every entry hash: the source is exported with its snapshots to
/// a temporary file, which is then imported, so a copy is checked, refused
/// and atomic exactly as an import is.
///
/// # Errors
/// [`ImportRefusal::Rejected`] or [`ImportRefusal::Unverified`] when the
/// source holds history guildconf did not write; [`ImportRefusal::Failed`]
/// with [`Error::Conflict`] when the destination is not empty, and
/// [`Error::Storage`] when either database or the temporary file fails.
pub async fn copy(
    from: std::sync::Arc<dyn ConfigStore>,
    to: &dyn ConfigStore,
    progress: impl FnMut(u64) + Send + 'static,
) -> std::result::Result<ImportReport, ImportRefusal> {
    require_empty(to).await?;
    let path = std::env::temp_dir().join(format!(
        "guildconf-copy-{}-{}.jsonl",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let result = copy_through(from, to, &path, progress).await;
    let _ = std::fs::remove_file(&path);
    result
}

async fn copy_through(
    from: std::sync::Arc<dyn ConfigStore>,
    to: &dyn ConfigStore,
    path: &std::path::Path,
    progress: impl FnMut(u64) + Send + 'static,
) -> std::result::Result<ImportReport, ImportRefusal> {
    let storage = |e: std::io::Error| Error::Storage(format!("the copy's temporary file: {e}"));
    {
        // The file holds the source's secrets: created afresh (never through
        // a link an attacker left there) and readable by this user only.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(storage)?;
        let mut out = std::io::BufWriter::new(file);
        let source = crate::ConfigService::new(from);
        source
            .export(
                &crate::ExportRequest {
                    with_snapshots: true,
                    ..Default::default()
                },
                &mut out,
            )
            .await?;
        std::io::Write::flush(&mut out).map_err(storage)?;
    }
    let open = || {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| Error::Storage(format!("the copy's temporary file: {e}")))
    };
    import(to, open, progress).await
}
