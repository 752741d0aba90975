//! Verifying hash chains: in the database, or in an export file offline.

use std::collections::BTreeMap;
use std::io::BufRead;

use guildconf_domain::json::{sha256_hex, value_sha256};
use guildconf_domain::{
    ChainVerifier, GuildId, HeadFacts, Operation, Problem, ProblemCode, RowFacts, SnapshotEvidence,
};
use guildconf_ports::{PastHead, StoredEntry, StoredHead, StoredRequest};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::service::idempotency::parse_result;
use crate::service::{ConfigService, Outcome};
use crate::stream::{parallel_readers, GuildRanges, RangeStream};

/// One verification failure (the first per guild).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyProblem {
    /// The guild, when known (a line that is not JSON has none).
    pub guild_id: Option<GuildId>,
    /// The entry at fault, when one is.
    pub seq: Option<u64>,
    /// `seq_gap`, `prev_hash`, `entry_hash`, `snapshot` or `head`.
    pub problem: String,
    /// What was found.
    pub message: String,
}

impl From<Problem> for VerifyProblem {
    fn from(p: Problem) -> Self {
        Self {
            guild_id: Some(p.guild_id),
            seq: p.seq,
            problem: p.problem.as_str().to_owned(),
            message: p.message,
        }
    }
}

/// The outcome of a verification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Whether every chain verified.
    pub ok: bool,
    /// Guilds looked at.
    pub guilds_checked: u64,
    /// Entries looked at.
    pub entries_checked: u64,
    /// The first failure of each failing guild.
    pub problems: Vec<VerifyProblem>,
    /// Findings that are not failures (such as `checkpoint_purged`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<VerifyProblem>,
}

impl VerifyReport {
    fn finish_guild(&mut self, result: std::result::Result<u64, Problem>) {
        self.guilds_checked += 1;
        match result {
            Ok(n) => self.entries_checked += n,
            Err(p) => self.problems.push(p.into()),
        }
    }

    /// Adds a later range's report to this one.
    fn absorb(&mut self, part: VerifyReport) {
        self.guilds_checked += part.guilds_checked;
        self.entries_checked += part.entries_checked;
        self.problems.extend(part.problems);
        self.notices.extend(part.notices);
    }

    pub(crate) fn done(mut self) -> Self {
        self.ok = self.problems.is_empty();
        self
    }
}

fn head_facts(head: StoredHead) -> HeadFacts {
    HeadFacts {
        seq: head.seq,
        version: head.version,
        last_hash: head.last_hash,
        document_sha256: head
            .document
            .as_deref()
            .map(|text| sha256_hex(text.as_bytes())),
        updated_at: head.updated_at,
        actor_id: head.actor_id,
        actor_kind: head.actor_kind,
        actor_label: head.actor_label,
    }
}

/// The problem of a guild holding rows past its head.
fn past_head_problem(past: &PastHead) -> Problem {
    let message = match (past.entry_seq, past.snapshot_version) {
        (Some(seq), _) => format!("entry seq {seq} is stored past the guild's head"),
        (None, Some(v)) => format!("a snapshot of version {v} is stored past the guild's head"),
        (None, None) => "rows are stored past the guild's head".to_owned(),
    };
    Problem {
        guild_id: past.guild_id,
        seq: past.entry_seq,
        problem: ProblemCode::PastHead,
        message,
    }
}

/// The problem of an idempotency record, if it has one: its stored result
/// (what a retried write answers) must be the one the entry carrying its
/// request id implies. A record whose entry is not stored is a problem
/// unless the guild's chain was purged (records outlive purged entries).
/// The entry's columns are proven equal to its body by the chain check.
fn request_problem(record: &StoredRequest, purged: bool) -> Option<Problem> {
    let problem = |seq: Option<u64>, message: String| Problem {
        guild_id: record.guild_id,
        seq,
        problem: ProblemCode::Request,
        message,
    };
    let Some(entry) = &record.entry else {
        return (!purged).then(|| {
            problem(
                None,
                format!(
                    "request {:?} is recorded but no stored entry carries it",
                    record.request_id
                ),
            )
        });
    };
    let expected = Operation::parse(&entry.operation).ok().map(|op| {
        (
            record.guild_id,
            entry.config_version,
            Outcome::of(op),
            Some(entry.entry_hash.as_str()),
        )
    });
    let stored = serde_json::from_str::<Value>(&record.result)
        .ok()
        .as_ref()
        .and_then(parse_result);
    let agrees = match (&stored, expected) {
        (Some(r), Some(e)) => (r.guild_id, r.version, r.outcome, r.entry_hash.as_deref()) == e,
        _ => false,
    };
    (!agrees).then(|| {
        problem(
            Some(entry.seq),
            format!(
                "the stored result of request {:?} disagrees with entry seq {}",
                record.request_id, entry.seq
            ),
        )
    })
}

fn feed(verifier: &mut ChainVerifier, row: &StoredEntry) {
    let facts = RowFacts {
        seq: row.seq,
        actor_id: &row.actor_id,
        occurred_at: &row.occurred_at,
        operation: &row.operation,
        entry_hash: &row.entry_hash,
        config_version: row.config_version,
        request_id: row.request_id.as_deref(),
        prev_hash: &row.prev_hash,
        snapshot_sha256: row.snapshot_sha256.as_deref(),
    };
    // Both backends store a document as the exact RFC 8785 text that was
    // hashed, so its bytes are hashed as they are: text that is equivalent
    // but not those bytes does not verify.
    let evidence = |_claimed: Option<&str>| {
        row.snapshot
            .as_deref()
            .map(|text| sha256_hex(text.as_bytes()))
            .map_or(SnapshotEvidence::Missing, SnapshotEvidence::Sha256)
    };
    verifier.push_stored(&row.body, &row.entry_hash, evidence, Some(&facts));
}

impl ConfigService {
    /// Re-verifies chains in the database: one guild, or all of them.
    /// Streams entries in batches, so memory does not grow with the log.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the one guild asked for has no history;
    /// [`Error::Storage`] when the database fails. Broken chains are not
    /// errors: they are listed in the report.
    pub async fn verify(&self, guild: Option<GuildId>) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        match guild {
            Some(g) => {
                if self.store.stored_head(g).await?.is_none()
                    && self.store.entries(g, 0, None, 1, false).await?.is_empty()
                {
                    return Err(Error::NotFound(format!("guild {g} has no history")));
                }
                self.verify_range(g, g, &mut report).await?;
            }
            None => self.verify_all(&mut report).await?,
        }
        Ok(report.done())
    }

    /// Verifies every guild, a range of guilds (see [`GuildRanges`]) per
    /// task, with up to [`parallel_readers`] ranges in flight, each reading on
    /// its own connection. A finished task's slot is refilled at once,
    /// whichever range is still running (a range holding one very long
    /// chain no longer idles the others); reports are merged in range
    /// order, so the problems come in ascending guild order whatever
    /// finishes first. Dropping the set aborts the tasks still running.
    async fn verify_all(&self, report: &mut VerifyReport) -> Result<()> {
        let workers = parallel_readers();
        let mut ranges = GuildRanges::new();
        let mut running: JoinSet<(usize, Result<VerifyReport>)> = JoinSet::new();
        let mut finished: BTreeMap<usize, VerifyReport> = BTreeMap::new();
        let (mut started, mut merged) = (0, 0);
        loop {
            // Once every guild is covered, `next_range` answers `None`
            // without a query.
            while running.len() < workers {
                let Some((first, last)) = ranges.next_covering_range(self.store.as_ref()).await?
                else {
                    break;
                };
                let (service, index) = (self.clone(), started);
                started += 1;
                running.spawn(async move {
                    let mut part = VerifyReport::default();
                    let outcome = service.verify_range(first, last, &mut part).await;
                    (index, outcome.map(|()| part))
                });
            }
            let Some(joined) = running.join_next().await else {
                return Ok(());
            };
            let (index, part) =
                joined.map_err(|e| Error::Storage(format!("a verify task failed: {e}")))?;
            finished.insert(index, part?);
            while let Some(part) = finished.remove(&merged) {
                report.absorb(part);
                merged += 1;
            }
        }
    }

    /// Verifies every guild from `first` through `last` (see
    /// [`ConfigService::check_range`]). A guild that showed entries but had
    /// no head when the heads were read may have been created meanwhile: it
    /// is checked once more on its own before anything is reported.
    async fn verify_range(
        &self,
        first: GuildId,
        last: GuildId,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let checked = self.check_range(first, last).await?;
        // Read after the chains: a row past the head then is past the head
        // now, whatever writes landed meanwhile (see `rows_past_heads`).
        let mut past: BTreeMap<GuildId, PastHead> = self
            .store
            .rows_past_heads(first, last)
            .await?
            .into_iter()
            .map(|p| (p.guild_id, p))
            .collect();
        let mut requests: BTreeMap<GuildId, Vec<StoredRequest>> = BTreeMap::new();
        for request in self.store.stored_requests(first, last).await? {
            requests.entry(request.guild_id).or_default().push(request);
        }
        for (guild, verifier, head) in checked {
            let (verifier, head) = match (verifier, head) {
                (Some(_), None) => {
                    tracing::debug!(guild = %guild, "entries but no head; reading the head again");
                    let mut again = self.check_range(guild, guild).await?;
                    match again.pop() {
                        Some((_, verifier, head)) => (verifier, head),
                        None => (None, None),
                    }
                }
                other => other,
            };
            let verifier = verifier.unwrap_or_else(|| ChainVerifier::new(guild));
            // One problem per guild: the chain's first, else rows past the
            // head, else an idempotency record the chain does not back.
            let past_here = past.remove(&guild);
            let requests_here = requests.remove(&guild).unwrap_or_default();
            let head_seq = head.as_ref().map_or(0, |h| h.seq);
            let result = verifier
                .finish(head.map(head_facts).as_ref(), true)
                .and_then(|n| match past_here {
                    Some(p) => Err(past_head_problem(&p)),
                    None => Ok(n),
                })
                .and_then(|n| {
                    // Fewer entries than the head's seq: the start was purged.
                    let purged = n < head_seq;
                    match requests_here
                        .iter()
                        .find_map(|r| request_problem(r, purged))
                    {
                        Some(problem) => Err(problem),
                        None => Ok(n),
                    }
                });
            report.finish_guild(result);
        }
        // Snapshots of a guild with neither a head nor entries.
        for p in past.into_values() {
            report.finish_guild(Err(past_head_problem(&p)));
        }
        // Request records of a guild with neither a head nor entries.
        for (_, records) in requests {
            if let Some(problem) = records.iter().find_map(|r| request_problem(r, false)) {
                report.finish_guild(Err(problem));
            }
        }
        Ok(())
    }

    /// Streams the chains of the guilds `first..=last` into verifiers, with
    /// one read of their heads and one stream of their entries (instead of
    /// two round trips per guild). Returns, in guild order, each guild's
    /// verifier (`None`: no entries) and head (`None`: no head).
    ///
    /// The heads are read *first*. A head and the entry that moved it commit
    /// in one transaction, so every entry up to a head's seq is in the
    /// database by the time the entries are streamed, and the entries a
    /// write adds meanwhile (past the head read) are left out: writes landing
    /// during verify never look like a head problem.
    async fn check_range(
        &self,
        first: GuildId,
        last: GuildId,
    ) -> Result<Vec<(GuildId, Option<ChainVerifier>, Option<StoredHead>)>> {
        let mut heads: BTreeMap<GuildId, StoredHead> = self
            .store
            .stored_heads(first, last)
            .await?
            .into_iter()
            .collect();
        let mut chains: BTreeMap<GuildId, ChainVerifier> = BTreeMap::new();
        let mut stream = RangeStream::new(self.store.clone(), first, last, None, true);
        while let Some(rows) = stream.next_batch().await? {
            for row in &rows {
                if heads.get(&row.guild_id).is_some_and(|h| row.seq > h.seq) {
                    continue;
                }
                let verifier = chains
                    .entry(row.guild_id)
                    .or_insert_with(|| ChainVerifier::new(row.guild_id));
                feed(verifier, row);
            }
        }
        let mut guilds: Vec<GuildId> = chains.keys().chain(heads.keys()).copied().collect();
        guilds.sort_unstable();
        guilds.dedup();
        Ok(guilds
            .into_iter()
            .map(|g| (g, chains.remove(&g), heads.remove(&g)))
            .collect())
    }
}

/// Verifies an export file offline: every line's hash, each guild's seq and
/// `prev_hash` chain, and each embedded `snapshot` against its
/// `snapshot_sha256`. Reads line by line.
///
/// # Errors
/// [`Error::Storage`] when the file cannot be read. Broken chains and
/// malformed lines are listed in the report.
pub fn verify_export(reader: impl BufRead) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut current: Option<(GuildId, ChainVerifier)> = None;
    let mut guilds = GuildOrder::default();
    for (index, line) in crate::input::Lines::new(reader).enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(crate::input::InputError::Io(e)) => {
                return Err(Error::Storage(format!("cannot read the export: {e}")))
            }
            // Bytes guildconf never writes: a verification failure (exit 6),
            // as a line that is not JSON is.
            Err(other) => {
                report
                    .problems
                    .push(unreadable(&current, format!("line {} {other}", index + 1)));
                continue;
            }
        };
        if line.is_empty() {
            continue;
        }
        // The line guildconf writes: its body's canonical text is read out of
        // the line as it is and checked on the stored-body path (no `Value`).
        if let Some(fast) = FastLine::of(&line) {
            if !guilds.enter(fast.guild, index, &mut current, &mut report) {
                continue;
            }
            if let Some((_, verifier)) = current.as_mut() {
                let evidence = fast.snapshot_evidence();
                verifier.push_stored(&fast.body, fast.entry_hash, |_| evidence, None);
            }
            continue;
        }
        let parsed = serde_json::from_str::<Value>(&line).ok();
        let map = match parsed {
            Some(Value::Object(map)) => map,
            _ => {
                let message = format!("line {} is not a JSON object", index + 1);
                report.problems.push(unreadable(&current, message));
                continue;
            }
        };
        let Some(guild) = map
            .get("guild_id")
            .and_then(Value::as_str)
            .and_then(|g| GuildId::parse(g).ok())
        else {
            report.problems.push(VerifyProblem {
                guild_id: None,
                seq: map.get("seq").and_then(Value::as_u64),
                problem: "entry_hash".into(),
                message: format!("line {} has no valid guild_id", index + 1),
            });
            continue;
        };
        if !guilds.enter(guild, index, &mut current, &mut report) {
            continue;
        }
        if let Some((_, verifier)) = current.as_mut() {
            let evidence = match map.get("snapshot") {
                Some(snapshot) => value_sha256(snapshot)
                    .map_or(SnapshotEvidence::Missing, SnapshotEvidence::Sha256),
                None => SnapshotEvidence::Unknown,
            };
            verifier.push(&map, evidence, None);
        }
    }
    if let Some((_, verifier)) = current.take() {
        report.finish_guild(verifier.finish(None, false));
    }
    Ok(report.done())
}

/// A line that cannot be read as an entry, charged to the guild being read.
fn unreadable(current: &Option<(GuildId, ChainVerifier)>, message: String) -> VerifyProblem {
    VerifyProblem {
        guild_id: current.as_ref().map(|(g, _)| *g),
        seq: None,
        problem: "entry_hash".into(),
        message,
    }
}

/// The guilds an export has shown so far: each guild's lines come together,
/// so a guild that comes back after another is a problem (`seq_gap`), and
/// its later lines are not checked again.
#[derive(Default)]
struct GuildOrder {
    seen: std::collections::BTreeSet<GuildId>,
    scattered: std::collections::BTreeSet<GuildId>,
}

impl GuildOrder {
    /// Moves on to `guild`'s line `index`; whether to check the line.
    fn enter(
        &mut self,
        guild: GuildId,
        index: usize,
        current: &mut Option<(GuildId, ChainVerifier)>,
        report: &mut VerifyReport,
    ) -> bool {
        if current.as_ref().is_some_and(|(g, _)| *g == guild) {
            return true;
        }
        if let Some((_, verifier)) = current.take() {
            report.finish_guild(verifier.finish(None, false));
        }
        if self.scattered.contains(&guild) {
            return false;
        }
        if !self.seen.insert(guild) {
            self.scattered.insert(guild);
            report.problems.push(VerifyProblem {
                guild_id: Some(guild),
                seq: None,
                problem: "seq_gap".into(),
                message: format!(
                    "line {}: guild {guild}'s lines come back after another guild's",
                    index + 1
                ),
            });
            return false;
        }
        *current = Some((guild, ChainVerifier::new(guild)));
        true
    }
}

/// An export line read without building a `Value`: the 15 body members and
/// `entry_hash` (and `snapshot`) as the exact text they have in the line.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine<'a> {
    #[serde(borrow)]
    actor: &'a RawValue,
    #[serde(borrow)]
    changes: &'a RawValue,
    #[serde(borrow)]
    config_version: &'a RawValue,
    #[serde(borrow)]
    context: &'a RawValue,
    #[serde(borrow)]
    detail: &'a RawValue,
    entry_hash: &'a str,
    #[serde(borrow)]
    guild_id: &'a RawValue,
    #[serde(borrow)]
    occurred_at: &'a RawValue,
    #[serde(borrow)]
    operation: &'a RawValue,
    #[serde(borrow)]
    prev_hash: &'a RawValue,
    #[serde(borrow)]
    reason: &'a RawValue,
    #[serde(borrow)]
    request_id: &'a RawValue,
    #[serde(borrow)]
    seq: &'a RawValue,
    #[serde(borrow, default, deserialize_with = "raw_even_null")]
    snapshot: Option<&'a RawValue>,
    #[serde(borrow)]
    snapshot_sha256: &'a RawValue,
    #[serde(borrow)]
    summary: &'a RawValue,
    #[serde(borrow)]
    v: &'a RawValue,
}

/// A member's raw text, `null` included (serde reads a `null` into an
/// `Option` as `None`; the fast path must see it to send the line on).
fn raw_even_null<'de, D>(deserializer: D) -> std::result::Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// What the fast path of [`verify_export`] needs of a line.
struct FastLine<'a> {
    guild: GuildId,
    body: String,
    entry_hash: &'a str,
    snapshot: Option<&'a RawValue>,
}

impl<'a> FastLine<'a> {
    /// The line's body text, rebuilt from its own members in the canonical
    /// key order; `None` sends the line down the general path (which also
    /// names what is wrong with it). The chain verifier accepts the body only
    /// if that text is canonical and hashes to `entry_hash`, so nothing here
    /// is trusted.
    fn of(line: &'a str) -> Option<Self> {
        let raw: RawLine<'a> = serde_json::from_str(line).ok()?;
        // A `null` snapshot takes the general path, which hashes it (and so
        // refuses it unless the entry names none).
        if raw.snapshot.is_some_and(|s| s.get() == "null") {
            return None;
        }
        // A guild id is a string: a bare number takes the general path,
        // which refuses it.
        let id = raw.guild_id.get().strip_prefix('"')?.strip_suffix('"')?;
        let guild = GuildId::parse(id).ok()?;
        let members: [(&str, &RawValue); 15] = [
            ("actor", raw.actor),
            ("changes", raw.changes),
            ("config_version", raw.config_version),
            ("context", raw.context),
            ("detail", raw.detail),
            ("guild_id", raw.guild_id),
            ("occurred_at", raw.occurred_at),
            ("operation", raw.operation),
            ("prev_hash", raw.prev_hash),
            ("reason", raw.reason),
            ("request_id", raw.request_id),
            ("seq", raw.seq),
            ("snapshot_sha256", raw.snapshot_sha256),
            ("summary", raw.summary),
            ("v", raw.v),
        ];
        let mut body = String::with_capacity(line.len());
        body.push('{');
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push('"');
            body.push_str(key);
            body.push_str("\":");
            body.push_str(value.get());
        }
        body.push('}');
        Some(Self {
            guild,
            body,
            entry_hash: raw.entry_hash,
            snapshot: raw.snapshot,
        })
    }

    /// The hash of the line's snapshot: of its text when that is canonical,
    /// else of its canonical form.
    fn snapshot_evidence(&self) -> SnapshotEvidence {
        let Some(raw) = self.snapshot else {
            return SnapshotEvidence::Unknown;
        };
        let text = raw.get();
        let sha = if guildconf_domain::json::is_canonical(text) && text.starts_with('{') {
            Some(guildconf_domain::json::sha256_hex(text.as_bytes()))
        } else {
            serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| value_sha256(&v).ok())
        };
        sha.map_or(SnapshotEvidence::Missing, SnapshotEvidence::Sha256)
    }
}

#[cfg(test)]
mod tests {
    use guildconf_domain::{
        link, Actor, ActorKind, CanonicalDocument, GuildId, Head, LinkMeta, RequestContext,
        SecretPaths, Step,
    };
    use serde_json::{json, Value};

    use super::verify_export;

    /// Export lines (with snapshots) of two guilds' chains, made by the one
    /// maker of links.
    fn export() -> Vec<String> {
        let actor =
            Actor::new("80351110224678912", ActorKind::Human, Some("alice")).expect("actor");
        let context = RequestContext::new().with("source", "test");
        let meta = LinkMeta {
            actor: &actor,
            reason: Some("why"),
            request_id: None,
            context: &context,
        };
        let mut lines = Vec::new();
        for g in [7u64, 9] {
            let guild = GuildId::from_u64(g).expect("id");
            let mut head: Option<Head> = None;
            for i in 0..12u64 {
                let doc = CanonicalDocument::new(json!({"n": i, "s": format!("é{i}\u{2028}")}))
                    .expect("doc");
                let step = if i == 0 {
                    Step::Create(doc)
                } else {
                    Step::Update(doc)
                };
                let now = chrono::DateTime::from_timestamp(1_767_225_600 + i as i64, 0).expect("t");
                let next = link(
                    guild,
                    head.as_ref(),
                    step,
                    meta,
                    &SecretPaths::new(Vec::<String>::new()),
                    now,
                )
                .expect("links");
                let mut line = next.entry.entry().to_json().expect("json");
                if let Some(s) = &next.snapshot {
                    line["snapshot"] = s.document.value().clone();
                }
                lines.push(guildconf_domain::json::canonical(&line).expect("canonical"));
                head = Some(next.head);
            }
        }
        lines
    }

    fn report(lines: &[String]) -> (bool, Vec<(Option<u64>, String)>, u64) {
        let text = lines.join("\n") + "\n";
        let r = verify_export(text.as_bytes()).expect("reads");
        (
            r.ok,
            r.problems.into_iter().map(|p| (p.seq, p.problem)).collect(),
            r.entries_checked,
        )
    }

    /// The canonical lines take the fast path; the same lines re-written with
    /// spaces (not canonical) take the general one. Whatever the tampering,
    /// both reach the same verdict, at the same entry, with the same code.
    #[test]
    fn the_fast_path_agrees_with_the_general_path() {
        let lines = export();
        let spaced = |ls: &[String]| -> Vec<String> {
            ls.iter()
                .map(|l| {
                    serde_json::to_string_pretty(&serde_json::from_str::<Value>(l).expect("json"))
                        .expect("s")
                        .replace('\n', " ")
                })
                .collect()
        };
        type Tamper = fn(&mut Vec<String>);
        let tampers: [(&str, Tamper); 9] = [
            ("none", |_| {}),
            ("summary byte", |l| {
                l[3] = l[3].replacen("updated", "updatex", 1)
            }),
            ("line removed", |l| {
                l.remove(4);
            }),
            ("snapshot value", |l| {
                l[5] = l[5].replacen("\"n\":5", "\"n\":6", 1)
            }),
            ("snapshot null", |l| {
                let mut v: Value = serde_json::from_str(&l[6]).expect("json");
                v["snapshot"] = Value::Null;
                l[6] = guildconf_domain::json::canonical(&v).expect("canonical");
            }),
            ("guild comes back", |l| {
                let again = l[0].clone();
                l.push(again);
            }),
            ("entry_hash", |l| {
                l[2] = l[2].replacen("\"entry_hash\":\"", "\"entry_hash\":\"0", 1)
            }),
            ("unknown key", |l| {
                l[1] = l[1].replacen("{", "{\"zz\":1,", 1)
            }),
            ("v 2", |l| l[8] = l[8].replacen("\"v\":1", "\"v\":2", 1)),
        ];
        for (name, tamper) in tampers {
            let mut canonical = lines.clone();
            tamper(&mut canonical);
            let general = spaced(&canonical);
            assert_eq!(report(&canonical), report(&general), "{name}");
            if name == "none" {
                assert!(report(&canonical).0, "an untouched export verifies");
            } else {
                assert!(!report(&canonical).0, "{name} is caught");
            }
        }
    }
}
