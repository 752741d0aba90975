//! Streaming exports: JSONL lines of the public format, or CSV.

use std::io::Write;

use guildconf_domain::json::{canonical, sha256_hex};
use guildconf_domain::{GuildId, Timestamp};
use guildconf_ports::StoredEntry;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::ConfigService;
use crate::stream::{parallel_readers, OrderedStream};

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExportFormat {
    /// One canonical entry per line (body plus `entry_hash`).
    #[default]
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// What to export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportRequest {
    /// Only this guild; otherwise every guild in ascending id.
    pub guild_id: Option<GuildId>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// The format.
    pub format: ExportFormat,
    /// Add each version's stored document under `snapshot` (outside the
    /// hashed body). Such a file holds secrets and is itself a secret.
    pub with_snapshots: bool,
}

/// The CSV header, in column order.
pub const CSV_COLUMNS: [&str; 17] = [
    "guild_id",
    "seq",
    "config_version",
    "operation",
    "occurred_at",
    "actor_id",
    "actor_kind",
    "actor_label",
    "changed_paths",
    "summary",
    "reason",
    "request_id",
    "entry_hash",
    "outcome",
    "target_type",
    "target_id",
    "target_label",
];

fn io_error(e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("cannot write the export: {e}"))
}

fn body_of(row: &StoredEntry) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_str::<Value>(&row.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::Corrupt(format!(
            "guild {} entry {} has a stored body that is not a JSON object",
            row.guild_id, row.seq
        ))),
    }
}

/// The export line of a row. Fast path: the stored body is exactly the
/// canonical text that was hashed, so when it still hashes to the stored
/// `entry_hash`, the line is that text with `"entry_hash":"…",` spliced in
/// before the top-level `"guild_id"` and, for a signed entry,
/// `"sig":{"alg":…,"key":…,"value":…},` before the top-level
/// `"snapshot_sha256"` (their places in RFC 8785 key order), byte-identical
/// to re-canonicalising. Anything else (a tampered or non-canonical body, a
/// malformed signature) takes the slow path: parse, add, canonicalise.
fn jsonl_line(row: &StoredEntry) -> Result<String> {
    // The fast path splices `entry_hash` into the stored canonical text; a
    // line that also carries a snapshot takes the general path below. A
    // well-formed signature's texts (hex, base64, `ed25519`) need no JSON
    // escaping, so they are written as they are.
    let plain_sig = row
        .signature
        .as_ref()
        .is_none_or(|s| s.check_shape().is_ok());
    if row.snapshot.is_none() && plain_sig && sha256_hex(row.body.as_bytes()) == row.entry_hash {
        // After the top-level guild_id (and snapshot_sha256) only scalars
        // follow, and a `"` inside a string is escaped, so the last match is
        // the top-level key.
        if let (Some(at), Some(sig_at)) = (
            row.body.rfind(r#","guild_id":""#),
            row.body.rfind(r#","snapshot_sha256":"#),
        ) {
            let mut line = String::with_capacity(row.body.len() + 240);
            line.push_str(&row.body[..at]);
            line.push_str(r#","entry_hash":""#);
            line.push_str(&row.entry_hash);
            line.push('"');
            line.push_str(&row.body[at..sig_at]);
            if let Some(sig) = &row.signature {
                line.push_str(r#","sig":{"alg":""#);
                line.push_str(&sig.alg);
                line.push_str(r#"","key":""#);
                line.push_str(&sig.key);
                line.push_str(r#"","value":""#);
                line.push_str(&sig.value);
                line.push_str(r#""}"#);
            }
            line.push_str(&row.body[sig_at..]);
            return Ok(line);
        }
    }
    let mut map = body_of(row)?;
    map.insert("entry_hash".into(), Value::String(row.entry_hash.clone()));
    if let Some(sig) = &row.signature {
        let sig = serde_json::to_value(sig).map_err(|e| Error::Corrupt(e.to_string()))?;
        map.insert("sig".into(), sig);
    }
    if let Some(text) = &row.snapshot {
        let snapshot: Value = serde_json::from_str(text).map_err(|_| {
            Error::Corrupt(format!(
                "guild {} version {} has a stored snapshot that is not JSON",
                row.guild_id, row.config_version
            ))
        })?;
        map.insert("snapshot".into(), snapshot);
    }
    canonical(&Value::Object(map)).map_err(Error::Corrupt)
}

fn csv_record(row: &StoredEntry) -> Result<Vec<String>> {
    let map = body_of(row)?;
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let actor = map.get("actor");
    let is_event = map
        .get("operation")
        .and_then(Value::as_str)
        .is_some_and(|o| o.contains('.'));
    let detail = map.get("detail").filter(|_| is_event);
    let target = detail.and_then(|d| d.get("target"));
    let paths: Vec<Value> = map
        .get("changes")
        .and_then(Value::as_array)
        .map(|changes| {
            changes
                .iter()
                .filter_map(|c| c.get("path").cloned())
                .collect()
        })
        .unwrap_or_default();
    Ok(vec![
        text(map.get("guild_id")),
        text(map.get("seq")),
        text(map.get("config_version")),
        text(map.get("operation")),
        text(map.get("occurred_at")),
        text(actor.and_then(|a| a.get("id"))),
        text(actor.and_then(|a| a.get("kind"))),
        text(actor.and_then(|a| a.get("label"))),
        Value::Array(paths).to_string(),
        text(map.get("summary")),
        text(map.get("reason")),
        text(map.get("request_id")),
        row.entry_hash.clone(),
        // Config entries read as outcome success with no target.
        if is_event {
            text(detail.and_then(|d| d.get("outcome")))
        } else {
            "success".to_owned()
        },
        text(target.and_then(|t| t.get("type"))),
        text(target.and_then(|t| t.get("id"))),
        text(target.and_then(|t| t.get("label"))),
    ])
}

/// Renders rows in the chosen format, a batch at a time, into bytes: the
/// one renderer behind [`ConfigService::export`] (to a writer) and the HTTP
/// API's streamed body, so both give the same bytes.
enum Render {
    Jsonl,
    /// CSV; `header` is still to be written (before the first batch).
    Csv {
        header: bool,
    },
}

impl Render {
    fn new(format: ExportFormat) -> Self {
        match format {
            ExportFormat::Jsonl => Render::Jsonl,
            ExportFormat::Csv => Render::Csv { header: true },
        }
    }

    /// What comes before any row: the CSV header, nothing for JSONL.
    fn start(&mut self) -> Result<Vec<u8>> {
        match self {
            Render::Jsonl => Ok(Vec::new()),
            Render::Csv { header } => {
                *header = false;
                csv_bytes(|w| w.write_record(CSV_COLUMNS))
            }
        }
    }

    fn rows(&self, rows: &[StoredEntry]) -> Result<Vec<u8>> {
        match self {
            Render::Csv { .. } => {
                let records = rows.iter().map(csv_record).collect::<Result<Vec<_>>>()?;
                csv_bytes(|w| {
                    for record in &records {
                        w.write_record(record)?;
                    }
                    Ok(())
                })
            }
            Render::Jsonl => {
                let mut out = Vec::with_capacity(rows.len() * 512);
                for row in rows {
                    out.extend_from_slice(jsonl_line(row)?.as_bytes());
                    out.push(b'\n');
                }
                Ok(out)
            }
        }
    }
}

/// The bytes `write` puts through an RFC 4180 writer with CRLF line ends.
fn csv_bytes(
    write: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> std::result::Result<(), csv::Error>,
) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .has_headers(false)
        .from_writer(Vec::new());
    write(&mut w).map_err(io_error)?;
    w.into_inner().map_err(io_error)
}

/// An export being read: its bytes, one batch of entries at a time, in the
/// order of the file. Reads run one batch ahead of the caller only, so a
/// consumer that stops pulling (a slow HTTP client) stops the reads too.
pub(crate) struct ExportChunks {
    render: Render,
    stream: OrderedStream,
    started: bool,
    entries: u64,
}

impl ExportChunks {
    /// The next chunk of the file; `None` once it is complete.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails; [`Error::Corrupt`] for a
    /// stored row guildconf did not write.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if !self.started {
            self.started = true;
            let head = self.render.start()?;
            if !head.is_empty() {
                return Ok(Some(head));
            }
        }
        match self.stream.next_batch().await? {
            Some(rows) => {
                self.entries += rows.len() as u64;
                Ok(Some(self.render.rows(&rows)?))
            }
            None => Ok(None),
        }
    }

    /// How many entries the chunks so far held.
    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }
}

impl ConfigService {
    /// Streams entries to `out`: guilds in ascending id, entries by seq, in
    /// batches, so memory does not grow with the log. Returns the number of
    /// entries written.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the one guild asked for has no history;
    /// [`Error::Storage`] when the database or the writer fails.
    pub async fn export(&self, request: &ExportRequest, out: &mut dyn Write) -> Result<u64> {
        let mut chunks = self.export_chunks(request).await?;
        while let Some(chunk) = chunks.next_chunk().await? {
            out.write_all(&chunk).map_err(io_error)?;
        }
        out.flush().map_err(io_error)?;
        Ok(chunks.entries())
    }

    /// The export `request` asks for, as chunks of bytes to pull.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the one guild asked for has no history;
    /// [`Error::Storage`] when the database fails.
    pub(crate) async fn export_chunks(&self, request: &ExportRequest) -> Result<ExportChunks> {
        let stream = match request.guild_id {
            Some(guild) => {
                if self.store.stored_head(guild).await?.is_none() {
                    return Err(Error::NotFound(format!("guild {guild} has no history")));
                }
                OrderedStream::guild(
                    self.store.clone(),
                    guild,
                    request.since,
                    request.with_snapshots,
                )
            }
            // Snapshots are up to 64 KiB each: an export that carries them
            // keeps one reader, so memory stays at four batches.
            None => OrderedStream::all(
                self.store.clone(),
                request.since,
                request.with_snapshots,
                if request.with_snapshots {
                    1
                } else {
                    parallel_readers()
                },
            ),
        };
        Ok(ExportChunks {
            render: Render::new(request.format),
            stream,
            started: false,
            entries: 0,
        })
    }
}
