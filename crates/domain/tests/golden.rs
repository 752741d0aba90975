//! Golden vectors for the public hash-chain format (docs/FORMAT.md).
//!
//! The fixtures were made by `fixtures/make_golden.py` with the `rfc8785`
//! Python package, an RFC 8785 implementation independent of the one the
//! domain uses. Every check here compares the Rust domain's bytes and hashes
//! against that independent output, and then shows that tampered copies of
//! the export are rejected with the right problem code.

use guildconf_domain::json::{canonical, canonical_sha256, sha256_hex};
use guildconf_domain::{
    apply_changes, diff, redact_changes, redact_document, summarise, ChainVerifier, ConfigSchema,
    Entry, EntryBody, GuildConfigSchema, GuildId, HeadFacts, Operation, Problem, ProblemCode,
    SecretPaths, SnapshotEvidence, GENESIS_HASH,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

const GOLDEN_JSONL: &str = include_str!("fixtures/golden.jsonl");
const GOLDEN_CANONICAL: &str = include_str!("fixtures/golden_canonical.json");

/// The guild whose documents follow the shipped `GuildConfig` schema.
const GUILD_A: &str = "613425648685547541";
/// The guild of a bot with its own config type (secret: `/integrations/api_key`).
const GUILD_B: &str = "1098765432109876543";

#[derive(Debug, Deserialize)]
struct Vector {
    canonical: String,
    entry_hash: String,
    input: String,
    snapshot: Option<Value>,
}

fn lines() -> Vec<&'static str> {
    let lines: Vec<&str> = GOLDEN_JSONL.lines().collect();
    assert!(
        GOLDEN_JSONL.ends_with('\n') && !GOLDEN_JSONL.contains('\r'),
        "every export line ends in a bare \\n"
    );
    lines
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(GOLDEN_CANONICAL).expect("golden_canonical.json should parse")
}

fn line_map(line: &str) -> Map<String, Value> {
    match serde_json::from_str(line).expect("fixture lines should be JSON") {
        Value::Object(map) => map,
        other => panic!("fixture line is not an object: {other}"),
    }
}

fn entries() -> Vec<Entry> {
    lines()
        .iter()
        .map(|l| Entry::from_json(&serde_json::from_str(l).expect("JSON")).expect("valid entry"))
        .collect()
}

fn secrets_of(guild: &str) -> SecretPaths {
    if guild == GUILD_A {
        GuildConfigSchema.secret_paths()
    } else {
        SecretPaths::new(["/integrations/api_key"])
    }
}

#[test]
fn fixtures_cover_the_brief() {
    let entries = entries();
    assert_eq!(entries.len(), vectors().len());
    let ops: Vec<Operation> = entries.iter().map(|e| e.body.operation).collect();
    for op in [
        Operation::Create,
        Operation::Update,
        Operation::Revert,
        Operation::Delete,
    ] {
        assert!(ops.contains(&op), "fixtures lack a {op} entry");
    }
    let guilds: Vec<String> = entries
        .iter()
        .map(|e| e.body.guild_id.to_string())
        .collect();
    assert!(guilds.contains(&GUILD_A.to_owned()) && guilds.contains(&GUILD_B.to_owned()));
    let text = GOLDEN_JSONL;
    for needle in [
        "\u{1F600}",
        "\u{E000}",
        "\u{2028}",
        r#"\"friend\" \\o/"#,
        r"\r\n",
        "1.5",
        "1e+21",
        "9007199254740992",
        "\"[redacted]\"",
        r#""context":{"source":"cli"}"#,
        r#""detail":{"to_version":1}"#,
    ] {
        assert!(text.contains(needle), "fixtures lack {needle:?}");
    }
    for line in lines() {
        let map = line_map(line);
        assert_eq!(map.len(), 16, "15 body keys plus entry_hash: {line}");
    }
    // The secret values in the snapshots never reach an export line.
    assert!(!text.contains("golden-fixture-token"));
    assert!(!text.contains("golden-fixture-api-key"));
}

#[test]
fn canonical_form_and_hash_match_the_independent_implementation() {
    let vectors = vectors();
    for (line, vector) in lines().into_iter().zip(&vectors) {
        let entry = Entry::from_json(&serde_json::from_str(line).expect("JSON"))
            .expect("fixture line should be a valid entry");
        let canonical_body = entry.body.canonical().expect("canonicalises");
        assert_eq!(canonical_body, vector.canonical, "canonical body of {line}");
        assert_eq!(sha256_hex(canonical_body.as_bytes()), vector.entry_hash);
        assert_eq!(entry.entry_hash, vector.entry_hash);

        let sealed = entry.body.clone().seal().expect("seals");
        assert_eq!(sealed.entry_hash(), vector.entry_hash);
        assert_eq!(
            sealed.text(),
            vector.canonical,
            "the sealed text is the hashed text"
        );
        assert_eq!(sealed.entry(), &entry);
        assert_eq!(entry.export_line().expect("exports"), line);
    }
}

#[test]
fn non_canonical_input_canonicalises_to_the_same_bytes() {
    // `input` holds each body as ordinary JSON: keys shuffled, non-ASCII as
    // \u escapes (surrogate pairs for the emoji), numbers such as -0.0,
    // 1e+21 and 9007199254740992.0 as Python writes them.
    for vector in vectors() {
        let value: Value = serde_json::from_str(&vector.input).expect("input is JSON");
        assert_eq!(
            canonical(&value).expect("canonicalises"),
            vector.canonical,
            "raw JSON value"
        );
        let body: EntryBody = serde_json::from_value(value).expect("input is a valid body");
        assert_eq!(body.canonical().expect("canonicalises"), vector.canonical);
        assert_eq!(
            body.seal().expect("seals").entry_hash(),
            vector.entry_hash,
            "typed body"
        );
    }
    assert!(GOLDEN_CANONICAL.contains("-0.0") && GOLDEN_CANONICAL.contains("\\ud83d\\ude00"));
}

#[test]
fn snapshots_diffs_redaction_and_summaries_agree() {
    let entries = entries();
    let vectors = vectors();
    let mut previous: Option<(String, Value)> = None;
    for (entry, vector) in entries.iter().zip(&vectors) {
        let body = &entry.body;
        let guild = body.guild_id.to_string();
        let secrets = secrets_of(&guild);
        let before = match &previous {
            Some((g, doc)) if *g == guild => doc.clone(),
            _ => json!({}),
        };
        // The document as stored: re-read from its canonical text, so -0.0
        // and 9007199254740992.0 become the numbers every reader sees.
        let after = vector.snapshot.as_ref().map_or_else(
            || json!({}),
            |doc| serde_json::from_str(&canonical(doc).expect("canonicalises")).expect("re-reads"),
        );

        // snapshot_sha256 is the independent canonical hash of the document.
        match (&vector.snapshot, &body.snapshot_sha256) {
            (Some(doc), Some(sha)) => {
                assert_eq!(&canonical_sha256(doc).expect("hashes"), sha);
            }
            (None, None) => assert_eq!(body.operation, Operation::Delete),
            other => panic!("snapshot and snapshot_sha256 disagree: {other:?}"),
        }
        // The shipped schema's stored documents are already normalised.
        if let (true, Some(doc)) = (guild == GUILD_A, &vector.snapshot) {
            assert_eq!(GuildConfigSchema.normalise(doc).as_ref(), Ok(doc));
        }
        // Our diff and redaction give the changes Python computed.
        let changes = redact_changes(&diff(&before, &after), &secrets);
        assert_eq!(changes, body.changes, "seq {} of guild {guild}", body.seq);
        // Applying the recorded changes to the previous snapshot gives this
        // one, redacted values aside.
        assert_eq!(
            apply_changes(&redact_document(&before, &secrets), &body.changes),
            Ok(redact_document(&after, &secrets))
        );
        let to_version = body.detail.get("to_version").and_then(Value::as_u64);
        assert_eq!(
            summarise(&body.actor, body.operation, &body.changes, to_version),
            body.summary
        );
        previous = Some((guild, after));
    }
}

/// Verifies an export's lines per guild (lines grouped by guild id, in the
/// order they appear), as `verify --file` does. Returns the problems found.
fn verify(lines: &[String]) -> (u64, Vec<Problem>) {
    let mut order: Vec<GuildId> = Vec::new();
    let mut verifiers: Vec<ChainVerifier> = Vec::new();
    for line in lines {
        let map = line_map(line);
        let guild =
            GuildId::parse(map["guild_id"].as_str().expect("guild_id string")).expect("guild id");
        let index = match order.iter().position(|g| *g == guild) {
            Some(i) => i,
            None => {
                order.push(guild);
                verifiers.push(ChainVerifier::new(guild));
                order.len() - 1
            }
        };
        verifiers[index].push(&map, SnapshotEvidence::Unknown, None);
    }
    let mut checked = 0;
    let mut problems = Vec::new();
    for verifier in verifiers {
        match verifier.finish(None, false) {
            Ok(n) => checked += n,
            Err(p) => problems.push(p),
        }
    }
    (checked, problems)
}

fn owned_lines() -> Vec<String> {
    lines().into_iter().map(str::to_owned).collect()
}

/// The index of a guild's entry in the fixture lines.
fn index_of(lines: &[String], guild: &str, seq: u64) -> usize {
    lines
        .iter()
        .position(|l| {
            let m = line_map(l);
            m["guild_id"] == json!(guild) && m["seq"] == json!(seq)
        })
        .expect("entry exists")
}

/// Edits one line's JSON and writes it back in export form; when `rehash`,
/// recomputes `entry_hash` as a forger would.
fn edit(lines: &mut [String], index: usize, rehash: bool, f: impl FnOnce(&mut Map<String, Value>)) {
    let mut map = line_map(&lines[index]);
    f(&mut map);
    if rehash {
        let mut body = map.clone();
        body.remove("entry_hash");
        let hash = canonical_sha256(&Value::Object(body)).expect("hashes");
        map.insert("entry_hash".into(), Value::String(hash));
    }
    lines[index] = canonical(&Value::Object(map)).expect("canonicalises");
}

fn assert_one_problem(lines: &[String], guild: &str, seq: u64, code: ProblemCode) {
    let (_, problems) = verify(lines);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert_eq!(p.guild_id.to_string(), guild, "{p:?}");
    assert_eq!(p.seq, Some(seq), "{p:?}");
    assert_eq!(p.problem, code, "{p:?}");
    assert!(
        !p.message.contains("golden-fixture"),
        "messages never hold values"
    );
}

#[test]
fn untouched_export_verifies_in_export_order() {
    let lines = owned_lines();
    let (checked, problems) = verify(&lines);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(checked, lines.len() as u64);

    // Guilds in ascending numeric id (not string order), entries by seq from
    // 1, the first entry chained to the genesis hash.
    let keys: Vec<(u64, u64)> = entries()
        .iter()
        .map(|e| (e.body.guild_id.snowflake().get(), e.body.seq))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    assert!(GUILD_A.len() < GUILD_B.len() && GUILD_A > GUILD_B);
    for e in entries().iter().filter(|e| e.body.seq == 1) {
        assert_eq!(e.body.prev_hash, GENESIS_HASH);
    }
}

#[test]
fn verifier_checks_snapshots_and_heads_when_given() {
    let entries = entries();
    let vectors = vectors();
    for guild in [GUILD_A, GUILD_B] {
        let id = GuildId::parse(guild).expect("id");
        let mut verifier = ChainVerifier::new(id);
        let mut last = None;
        for ((line, entry), vector) in lines().into_iter().zip(&entries).zip(&vectors) {
            if entry.body.guild_id != id {
                continue;
            }
            let evidence = match &vector.snapshot {
                Some(doc) => SnapshotEvidence::Sha256(canonical_sha256(doc).expect("hashes")),
                None => SnapshotEvidence::Missing,
            };
            verifier.push(&line_map(line), evidence, None);
            last = Some(entry.clone());
        }
        let last = last.expect("guild has entries");
        let head = HeadFacts {
            seq: last.body.seq,
            version: last.body.config_version,
            last_hash: last.entry_hash.clone(),
            document_sha256: last.body.snapshot_sha256.clone(),
            updated_at: last.body.occurred_at.to_string(),
            actor_id: last.body.actor.id.clone(),
            actor_kind: last.body.actor.kind.as_str().to_owned(),
            actor_label: last.body.actor.label.clone(),
        };
        assert_eq!(verifier.finish(Some(&head), true), Ok(last.body.seq));
    }
}

#[test]
fn a_changed_value_is_an_entry_hash_problem() {
    let mut lines = owned_lines();
    let i = index_of(&lines, GUILD_A, 2);
    edit(&mut lines, i, false, |m| {
        m["changes"][0]["after"] = json!("https://discord.com/api/webhooks/1/evil");
    });
    assert_one_problem(&lines, GUILD_A, 2, ProblemCode::EntryHash);

    let mut lines = owned_lines();
    let i = index_of(&lines, GUILD_B, 2);
    edit(&mut lines, i, false, |m| {
        m.insert("economy_note".into(), json!(null));
    });
    // An extra key makes the body malformed, which is an entry_hash problem.
    assert_one_problem(&lines, GUILD_B, 2, ProblemCode::EntryHash);

    let mut lines = owned_lines();
    let i = index_of(&lines, GUILD_B, 1);
    edit(&mut lines, i, false, |m| m["reason"] = json!("backdated"));
    assert_one_problem(&lines, GUILD_B, 1, ProblemCode::EntryHash);
}

#[test]
fn a_rehashed_edit_breaks_the_next_link() {
    let mut lines = owned_lines();
    let i = index_of(&lines, GUILD_A, 3);
    edit(&mut lines, i, true, |m| {
        m["actor"]["label"] = json!("mallory")
    });
    assert_one_problem(&lines, GUILD_A, 4, ProblemCode::PrevHash);
}

#[test]
fn a_dropped_line_is_a_seq_gap() {
    let mut lines = owned_lines();
    lines.remove(index_of(&lines, GUILD_A, 3));
    assert_one_problem(&lines, GUILD_A, 4, ProblemCode::SeqGap);

    // A chain must start at seq 1 unless a purge entry anchors a later start.
    let mut lines = owned_lines();
    lines.remove(index_of(&lines, GUILD_B, 1));
    assert_one_problem(&lines, GUILD_B, 2, ProblemCode::SeqGap);

    // A dropped last line is invisible in an export alone; the database
    // check compares the head (see `verifier_checks_snapshots_and_heads_when_given`).
    let mut lines = owned_lines();
    lines.remove(index_of(&lines, GUILD_B, 3));
    assert!(verify(&lines).1.is_empty());
}

#[test]
fn swapped_lines_are_a_seq_gap() {
    let mut lines = owned_lines();
    let (a, b) = (index_of(&lines, GUILD_A, 2), index_of(&lines, GUILD_A, 3));
    lines.swap(a, b);
    assert_one_problem(&lines, GUILD_A, 3, ProblemCode::SeqGap);
}

#[test]
fn a_broken_prev_hash_is_a_prev_hash_problem() {
    // Even when the forger rehashes the entry itself.
    for rehash in [false, true] {
        let mut lines = owned_lines();
        let i = index_of(&lines, GUILD_A, 5);
        edit(&mut lines, i, rehash, |m| {
            m["prev_hash"] = json!("f".repeat(64));
        });
        assert_one_problem(&lines, GUILD_A, 5, ProblemCode::PrevHash);
    }
    let mut lines = owned_lines();
    let i = index_of(&lines, GUILD_B, 1);
    edit(&mut lines, i, true, |m| {
        m["prev_hash"] = json!("1".repeat(64))
    });
    assert_one_problem(&lines, GUILD_B, 1, ProblemCode::PrevHash);
}

#[test]
fn a_renumbered_line_is_a_seq_gap() {
    let mut lines = owned_lines();
    let i = index_of(&lines, GUILD_A, 6);
    edit(&mut lines, i, true, |m| m["seq"] = json!(7));
    assert_one_problem(&lines, GUILD_A, 7, ProblemCode::SeqGap);
}

#[test]
fn extra_snapshot_key_is_ignored_by_the_hash() {
    // `export --with-snapshots` adds `snapshot` outside the body.
    let mut lines = owned_lines();
    let vectors = vectors();
    for (line, vector) in lines.iter_mut().zip(&vectors) {
        let mut map = line_map(line);
        map.insert(
            "snapshot".into(),
            vector.snapshot.clone().unwrap_or(Value::Null),
        );
        *line = canonical(&Value::Object(map)).expect("canonicalises");
        let entry = Entry::from_json(&serde_json::from_str(line).expect("JSON")).expect("entry");
        assert_eq!(entry.entry_hash, vector.entry_hash);
        assert_eq!(entry.body.canonical().expect("canonical"), vector.canonical);
    }
    assert!(verify(&lines).1.is_empty());
}
