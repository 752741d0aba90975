//! Verifying hash chains: in the database, or in an export file offline.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Arc;

use guildconf_domain::json::{sha256_hex, value_sha256};
use guildconf_domain::{
    ChainVerifier, EntrySignature, GuildId, HeadFacts, Operation, Problem, ProblemCode, RowFacts,
    SignaturePolicy, SnapshotEvidence, TrustedKeys,
};
use guildconf_ports::{PastHead, StoredEntry, StoredHead, StoredRequest};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::fanout::{self, RunStart};
use crate::service::idempotency::parse_result;
use crate::service::{ConfigService, Outcome};
use crate::signing::PublicKey;
use crate::stream::{parallel_readers, GuildRanges, RangeStream};

/// What verify checks beyond the chain: signatures, when trusted keys are
/// given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    policy: Option<Arc<SignaturePolicy>>,
}

impl VerifyOptions {
    /// Check the chain only (what verify does without `--trusted-key`):
    /// signatures are not looked at.
    pub fn new() -> Self {
        Self::default()
    }

    /// Check signatures against these keys (`verify --trusted-key`, repeated
    /// for rotated keys): once a guild's chain holds an entry signed by one
    /// of them, every later entry must carry a valid signature by one of
    /// them, and any signature present must be valid and by one of them.
    /// Each failure is problem `signature`.
    #[must_use]
    pub fn trusted_keys(self, keys: impl IntoIterator<Item = PublicKey>) -> Self {
        let mut policy = self.policy.as_deref().cloned().unwrap_or_default();
        for key in keys {
            policy.trusted.add(key);
        }
        Self {
            policy: Some(Arc::new(policy)),
        }
    }

    /// Also require every guild's last entry to carry a valid signature by a
    /// trusted key (`verify --require-signed`): a guild never signed, or
    /// stripped of its signatures, fails.
    #[must_use]
    pub fn require_signed(self, require: bool) -> Self {
        let mut policy = self
            .policy
            .as_deref()
            .cloned()
            .unwrap_or_else(|| SignaturePolicy {
                trusted: TrustedKeys::default(),
                require_signed: false,
            });
        policy.require_signed = require;
        Self {
            policy: Some(Arc::new(policy)),
        }
    }

    fn policy(&self) -> Option<&Arc<SignaturePolicy>> {
        self.policy.as_ref()
    }
}

/// One verification failure (the first per guild).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyProblem {
    /// The guild, when known (a line that is not JSON has none).
    pub guild_id: Option<GuildId>,
    /// The entry at fault, when one is.
    pub seq: Option<u64>,
    /// `seq_gap`, `prev_hash`, `entry_hash`, `snapshot`, `head`,
    /// `past_head` or `signature` (and the checkpoint codes).
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

    /// Finishes a verification's report; called once per verification,
    /// which is where its metrics are counted.
    pub(crate) fn done(mut self) -> Self {
        self.ok = self.problems.is_empty();
        crate::metrics::verified(&self);
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
    verifier.push_stored_signed(
        &row.body,
        &row.entry_hash,
        row.signature.as_ref(),
        evidence,
        Some(&facts),
    );
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
        self.verify_with(guild, &VerifyOptions::default()).await
    }

    /// [`ConfigService::verify`], checking signatures as `options` say.
    ///
    /// # Errors
    /// As [`ConfigService::verify`].
    pub async fn verify_with(
        &self,
        guild: Option<GuildId>,
        options: &VerifyOptions,
    ) -> Result<VerifyReport> {
        Ok(self.check_chains(guild, options).await?.done())
    }

    /// The chain checks of [`ConfigService::verify_with`], before the
    /// report is finished: a checkpoint's verification adds its own
    /// problems first, so that one verification is finished (and counted)
    /// once.
    pub(crate) async fn check_chains(
        &self,
        guild: Option<GuildId>,
        options: &VerifyOptions,
    ) -> Result<VerifyReport> {
        let policy = options.policy().cloned();
        let mut report = VerifyReport::default();
        match guild {
            Some(g) => {
                if self.store.stored_head(g).await?.is_none()
                    && self.store.entries(g, 0, None, 1, false).await?.is_empty()
                {
                    return Err(Error::NotFound(format!("guild {g} has no history")));
                }
                self.verify_range(g, g, policy.as_ref(), &mut report)
                    .await?;
            }
            None => self.verify_all(policy.as_ref(), &mut report).await?,
        }
        Ok(report)
    }

    /// Verifies every guild, a range of guilds (see [`GuildRanges`]) per
    /// task, with up to [`parallel_readers`] ranges in flight, each reading on
    /// its own connection. A finished task's slot is refilled at once,
    /// whichever range is still running (a range holding one very long
    /// chain no longer idles the others); reports are merged in range
    /// order, so the problems come in ascending guild order whatever
    /// finishes first. Dropping the set aborts the tasks still running.
    async fn verify_all(
        &self,
        policy: Option<&Arc<SignaturePolicy>>,
        report: &mut VerifyReport,
    ) -> Result<()> {
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
                let (service, index, policy) = (self.clone(), started, policy.cloned());
                started += 1;
                running.spawn(async move {
                    let mut part = VerifyReport::default();
                    let outcome = service
                        .verify_range(first, last, policy.as_ref(), &mut part)
                        .await;
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
        policy: Option<&Arc<SignaturePolicy>>,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let checked = self.check_range(first, last, policy).await?;
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
                    let mut again = self.check_range(guild, guild, policy).await?;
                    match again.pop() {
                        Some((_, verifier, head)) => (verifier, head),
                        None => (None, None),
                    }
                }
                other => other,
            };
            let verifier = verifier.unwrap_or_else(|| ChainVerifier::for_policy(guild, policy));
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
        policy: Option<&Arc<SignaturePolicy>>,
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
                    .or_insert_with(|| ChainVerifier::for_policy(row.guild_id, policy));
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
/// `snapshot_sha256`. Reads line by line on the calling thread; the guilds'
/// chains are checked on worker threads, one per core and at most four
/// (each guild's lines come together in an export and its chain depends on
/// no other guild's), and the report lists what they found in file order.
///
/// # Errors
/// [`Error::Storage`] when the file cannot be read. Broken chains and
/// malformed lines are listed in the report.
pub fn verify_export(reader: impl BufRead) -> Result<VerifyReport> {
    verify_export_with(reader, &VerifyOptions::default())
}

/// [`verify_export`], checking each line's `sig` as `options` say.
///
/// # Errors
/// As [`verify_export`].
pub fn verify_export_with(reader: impl BufRead, options: &VerifyOptions) -> Result<VerifyReport> {
    let policy = options.policy().cloned();
    let (mut dispatch, ordered) = fanout::start(fanout::workers(), move |start, lines, emit| {
        verify_run(start, lines, emit, policy.as_ref());
    });
    let merged = std::thread::spawn(move || merge(ordered));
    for (index, line) in crate::input::Lines::new(reader).enumerate() {
        if !dispatch.line(index + 1, line) {
            break;
        }
    }
    dispatch.finish();
    merged
        .join()
        .map_err(|_| Error::Storage("the verify's merging thread failed".into()))?
}

/// What a worker found in a run of an export's lines.
pub(crate) enum Found {
    /// A problem, in the order the lines show it.
    Problem(VerifyProblem),
    /// A guild's chain is over: its entry count, or its first failure.
    Guild(std::result::Result<u64, Problem>),
    /// The file could not be read on.
    Failed(Error),
}

/// The report of an export's runs, in file order.
fn merge(ordered: fanout::Ordered<Found>) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    for found in ordered {
        match found {
            Ok(Found::Problem(p)) => report.problems.push(p),
            Ok(Found::Guild(result)) => report.finish_guild(result),
            Ok(Found::Failed(e)) => return Err(e),
            Err(fanout::Broken) => {
                return Err(Error::Storage(
                    "a verify thread stopped before the end of the file".into(),
                ))
            }
        }
    }
    Ok(report.done())
}

/// Checks one run of an export's lines (see [`fanout`]): a guild's chain,
/// or, after a guild came back, the lines skipped until the next new guild.
pub(crate) fn verify_run(
    start: RunStart,
    lines: &mut dyn Iterator<Item = fanout::Line>,
    emit: &mut dyn FnMut(Found) -> bool,
    policy: Option<&Arc<SignaturePolicy>>,
) {
    let mut current = match start {
        RunStart::Chain(guild) => Some((guild, ChainVerifier::for_policy(guild, policy))),
        RunStart::Skipped(returned) => {
            if let Some((guild, no)) = returned {
                emit(Found::Problem(VerifyProblem {
                    guild_id: Some(guild),
                    seq: None,
                    problem: "seq_gap".into(),
                    message: format!(
                        "line {no}: guild {guild}'s lines come back after another guild's"
                    ),
                }));
            }
            None
        }
    };
    for line in lines {
        let text = match line.text {
            Ok(text) => text,
            Err(crate::input::InputError::Io(e)) => {
                emit(Found::Failed(Error::Storage(format!(
                    "cannot read the export: {e}"
                ))));
                return;
            }
            // Bytes guildconf never writes: a verification failure (exit 6),
            // as a line that is not JSON is.
            Err(other) => {
                let message = format!("line {} {other}", line.no);
                if !emit(Found::Problem(unreadable(&current, message))) {
                    return;
                }
                continue;
            }
        };
        if let Some(problem) = check_line(line.no, &text, line.routed, &mut current) {
            if !emit(Found::Problem(problem)) {
                return;
            }
        }
    }
    if let Some((_, verifier)) = current {
        emit(Found::Guild(verifier.finish(None, false)));
    }
}

/// Feeds one line to the run's chain (`None`: a skipped run), or names why
/// it cannot be read as an entry.
fn check_line(
    no: usize,
    text: &str,
    routed: Option<GuildId>,
    current: &mut Option<(GuildId, ChainVerifier)>,
) -> Option<VerifyProblem> {
    if routed.is_some() {
        // A line of a guild that came back is not checked again.
        let (_, verifier) = current.as_mut()?;
        // The line guildconf writes: its body's canonical text is read out of
        // the line as it is and checked on the stored-body path (no `Value`).
        if let Some(fast) = FastLine::of(text) {
            let evidence = fast.snapshot_evidence();
            verifier.push_stored_signed(
                &fast.body,
                fast.entry_hash,
                fast.sig.as_ref(),
                |_| evidence,
                None,
            );
            return None;
        }
    }
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Some(unreadable(
                current,
                format!("line {no} is not a JSON object"),
            ))
        }
    };
    let Some(guild) = map
        .get("guild_id")
        .and_then(Value::as_str)
        .and_then(|g| GuildId::parse(g).ok())
    else {
        return Some(VerifyProblem {
            guild_id: None,
            seq: map.get("seq").and_then(Value::as_u64),
            problem: "entry_hash".into(),
            message: format!("line {no} has no valid guild_id"),
        });
    };
    match current.as_mut() {
        Some((g, verifier)) if *g == guild => {
            let evidence = line_snapshot_evidence(&map);
            verifier.push_signed(&map, line_sig(map.get("sig")).as_ref(), evidence, None);
            None
        }
        None if routed.is_some() => None,
        // The reader's scan of the line and its full parse disagree on its
        // guild: never the case for JSON, but never passed either.
        _ => Some(unreadable(
            current,
            format!("line {no} cannot be read as an entry of the guild around it"),
        )),
    }
}

/// The hash of a parsed line's `snapshot` member: unknown when the line has
/// none (an export without snapshots), missing when it cannot be hashed.
pub(crate) fn line_snapshot_evidence(line: &Map<String, Value>) -> SnapshotEvidence {
    match line.get("snapshot") {
        Some(snapshot) => {
            value_sha256(snapshot).map_or(SnapshotEvidence::Missing, SnapshotEvidence::Sha256)
        }
        None => SnapshotEvidence::Unknown,
    }
}

/// A line's `sig` member as a signature. A `sig` that is not an object of
/// the three strings reads as a malformed signature (empty parts), so a
/// verify with trusted keys names it; without them it is not looked at.
pub(crate) fn line_sig(sig: Option<&Value>) -> Option<EntrySignature> {
    let sig = sig?;
    Some(
        serde_json::from_value::<EntrySignature>(sig.clone()).unwrap_or(EntrySignature {
            alg: String::new(),
            key: String::new(),
            value: String::new(),
        }),
    )
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
    sig: Option<&'a RawValue>,
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
pub(crate) struct FastLine<'a> {
    pub body: String,
    pub entry_hash: &'a str,
    pub snapshot: Option<&'a RawValue>,
    pub sig: Option<EntrySignature>,
}

impl<'a> FastLine<'a> {
    /// The line's body text, rebuilt from its own members in the canonical
    /// key order; `None` sends the line down the general path (which also
    /// names what is wrong with it). The chain verifier accepts the body only
    /// if that text is canonical and hashes to `entry_hash`, so nothing here
    /// is trusted.
    pub fn of(line: &'a str) -> Option<Self> {
        let raw: RawLine<'a> = serde_json::from_str(line).ok()?;
        // A `null` snapshot takes the general path, which hashes it (and so
        // refuses it unless the entry names none).
        if raw.snapshot.is_some_and(|s| s.get() == "null") {
            return None;
        }
        // So does a `sig` that is `null` or not an object of the three
        // strings: the general path reads it as a malformed signature.
        let sig = match raw.sig {
            Some(text) => Some(serde_json::from_str::<EntrySignature>(text.get()).ok()?),
            None => None,
        };
        // A guild id is a string: a bare number takes the general path,
        // which refuses it.
        let id = raw.guild_id.get().strip_prefix('"')?.strip_suffix('"')?;
        GuildId::parse(id).ok()?;
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
            body,
            entry_hash: raw.entry_hash,
            snapshot: raw.snapshot,
            sig,
        })
    }

    /// The hash of the line's snapshot: of its text when that is canonical,
    /// else of its canonical form.
    pub fn snapshot_evidence(&self) -> SnapshotEvidence {
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

    /// The reader routes a line by its first `guild_id`; a line that names
    /// another guild in a second `guild_id` is caught by the worker's full
    /// parse, never passed.
    #[test]
    fn a_line_naming_two_guilds_does_not_verify() {
        let mut lines = export();
        lines[13] = lines[13].replacen("{", "{\"guild_id\":\"7\",", 1);
        let (ok, problems, _) = report(&lines);
        assert!(!ok, "{problems:?}");
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
