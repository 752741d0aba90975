//! Import an export into an empty database, and copy a whole database
//! between backends, every entry hash preserved.

use std::io::BufRead;

use guildconf_domain::json::canonical_sha256;
use guildconf_domain::{apply_changes, Entry, GuildId, Operation};
use guildconf_ports::{ChangeSet, ConfigStore, Head, Snapshot};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::stream::{GuildRanges, BATCH};
use crate::verify::{verify_export, VerifyReport};

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
    /// Any other error; nothing was stored.
    Failed(Error),
}

impl From<Error> for ImportRefusal {
    fn from(e: Error) -> Self {
        ImportRefusal::Failed(e)
    }
}

/// Replays one guild's entries into a store as change sets, rebuilding each
/// version's snapshot from the line's `snapshot` (present in
/// `export --with-snapshots` files) or from the changes.
struct GuildReplay {
    guild: GuildId,
    head: Option<Head>,
    document: Option<Value>,
}

impl GuildReplay {
    fn new(guild: GuildId) -> Self {
        Self {
            guild,
            head: None,
            document: None,
        }
    }

    fn change_set(&mut self, line_no: usize, line: &Map<String, Value>) -> Result<ChangeSet> {
        let at = |msg: String| Error::invalid("/file", format!("line {line_no}: {msg}"));
        let entry = Entry::from_json(&Value::Object(line.clone())).map_err(&at)?;
        let b = &entry.body;
        let given = line.get("snapshot").filter(|s| !s.is_null()).cloned();
        let document = match b.operation {
            Operation::Delete => None,
            Operation::Purge => self.document.clone().or(given),
            _ => match given {
                Some(doc) => Some(doc),
                None => {
                    let Some(base) = (if b.operation == Operation::Create {
                        Some(Value::Object(Map::new()))
                    } else {
                        self.document.clone()
                    }) else {
                        return Err(at(format!(
                            "guild {} seq {} starts after a purge, so its snapshot cannot be rebuilt from changes; \
                             export with --with-snapshots",
                            b.guild_id, b.seq
                        )));
                    };
                    Some(apply_changes(&base, &b.changes).map_err(&at)?)
                }
            },
        };
        if b.operation != Operation::Delete {
            let sha = document
                .as_ref()
                .map(canonical_sha256)
                .transpose()
                .map_err(&at)?;
            if sha != b.snapshot_sha256 {
                return Err(at(format!(
                    "the document of guild {} version {} cannot be rebuilt from its changes (a redacted secret \
                     or a missing snapshot); export with --with-snapshots",
                    b.guild_id, b.config_version
                )));
            }
        }
        let new_version = matches!(
            b.operation,
            Operation::Create | Operation::Update | Operation::Revert
        );
        let snapshot = match (&document, new_version) {
            (Some(doc), true) => Some(Snapshot {
                version: b.config_version,
                document: doc.clone(),
                sha256: b.snapshot_sha256.clone().unwrap_or_default(),
            }),
            _ => None,
        };
        let head = Head {
            guild_id: self.guild,
            version: b.config_version,
            seq: b.seq,
            last_hash: entry.entry_hash.clone(),
            updated_at: b.occurred_at,
            actor: b.actor.clone(),
            document: document.clone(),
        };
        let change = ChangeSet {
            guild_id: self.guild,
            expected_seq: self.head.as_ref().map(|h| h.seq),
            head: head.clone(),
            snapshot,
            entry,
            request: None,
        };
        self.head = Some(head);
        self.document = document;
        Ok(change)
    }
}

async fn require_empty(store: &dyn ConfigStore) -> Result<()> {
    if !store.guild_ids(None, 1).await?.is_empty() {
        return Err(Error::Conflict(
            "import and copy need an empty database; this one holds guilds already".into(),
        ));
    }
    Ok(())
}

/// Loads an export into an empty database. The whole file is verified first,
/// then every snapshot is rebuilt in a dry pass; a file that does not verify,
/// or cannot be rebuilt, stores nothing. `open` is called for each pass and
/// must return the file from its start; memory does not grow with the file.
/// `progress` is told each entry written.
///
/// # Errors
/// [`ImportRefusal::Unverified`] for a tampered file;
/// [`ImportRefusal::Failed`] with [`Error::Conflict`] for a database that is
/// not empty, [`Error::Invalid`] for a file that cannot be rebuilt,
/// [`Error::Storage`] when the database fails.
pub async fn import<R: BufRead>(
    store: &dyn ConfigStore,
    mut open: impl FnMut() -> Result<R>,
    mut progress: impl FnMut(u64),
) -> std::result::Result<ImportReport, ImportRefusal> {
    require_empty(store).await?;
    let report = verify_export(open()?)?;
    if !report.ok {
        return Err(ImportRefusal::Unverified(report));
    }
    let mut dry = LineReplay::new(open()?);
    while dry.next_change()?.is_some() {}
    let mut written = ImportReport::default();
    let mut last_guild = None;
    let mut lines = LineReplay::new(open()?);
    while let Some(change) = lines.next_change()? {
        if last_guild != Some(change.guild_id) {
            written.guilds += 1;
            last_guild = Some(change.guild_id);
        }
        store.commit(change).await.map_err(Error::from)?;
        written.entries += 1;
        progress(written.entries);
    }
    Ok(written)
}

/// Turns export lines into change sets, one at a time.
struct LineReplay<R> {
    lines: std::iter::Enumerate<std::io::Lines<R>>,
    current: Option<GuildReplay>,
}

impl<R: BufRead> LineReplay<R> {
    fn new(reader: R) -> Self {
        Self {
            lines: reader.lines().enumerate(),
            current: None,
        }
    }

    fn next_change(&mut self) -> Result<Option<ChangeSet>> {
        for (index, line) in self.lines.by_ref() {
            let line = line.map_err(|e| Error::Storage(format!("cannot read the file: {e}")))?;
            if line.is_empty() {
                continue;
            }
            let map = match serde_json::from_str::<Value>(&line) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(Error::invalid(
                        "/file",
                        format!("line {} is not a JSON object", index + 1),
                    ))
                }
            };
            let guild = map
                .get("guild_id")
                .and_then(Value::as_str)
                .and_then(|g| GuildId::parse(g).ok())
                .ok_or_else(|| {
                    Error::invalid("/file", format!("line {} has no valid guild_id", index + 1))
                })?;
            let replay = match self.current.take() {
                Some(r) if r.guild == guild => self.current.insert(r),
                _ => self.current.insert(GuildReplay::new(guild)),
            };
            return replay.change_set(index + 1, &map).map(Some);
        }
        Ok(None)
    }
}

/// Copies every guild's history from one store into another, empty one,
/// preserving every entry hash. Reads the source in batches with snapshots.
///
/// # Errors
/// [`Error::Conflict`] when the destination is not empty;
/// [`Error::Invalid`] when a stored snapshot is missing or corrupt;
/// [`Error::Storage`] when either database fails.
pub async fn copy(
    from: &dyn ConfigStore,
    to: &dyn ConfigStore,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport> {
    require_empty(to).await?;
    let mut report = ImportReport::default();
    let mut batches = GuildRanges::new();
    while let Some(ids) = batches.next(from).await? {
        for guild in &ids {
            let mut replay = GuildReplay::new(*guild);
            let mut after_seq = 0;
            report.guilds += 1;
            loop {
                let rows = from.entries(*guild, after_seq, None, BATCH, true).await?;
                for row in &rows {
                    let mut line = match serde_json::from_str::<Value>(&row.body) {
                        Ok(Value::Object(map)) => map,
                        _ => {
                            return Err(Error::Corrupt(format!(
                                "guild {guild} seq {} has a corrupt body",
                                row.seq
                            )))
                        }
                    };
                    line.insert("entry_hash".into(), Value::String(row.entry_hash.clone()));
                    if let Some(text) = &row.snapshot {
                        let doc: Value = serde_json::from_str(text).map_err(|_| {
                            Error::Corrupt(format!(
                                "guild {guild} seq {} has a corrupt snapshot",
                                row.seq
                            ))
                        })?;
                        line.insert("snapshot".into(), doc);
                    }
                    let change =
                        replay.change_set(usize::try_from(row.seq).unwrap_or(usize::MAX), &line)?;
                    to.commit(change).await?;
                    report.entries += 1;
                    progress(report.entries);
                }
                match rows.last() {
                    Some(last) if rows.len() == BATCH as usize => after_seq = last.seq,
                    _ => break,
                }
            }
        }
    }
    Ok(report)
}
