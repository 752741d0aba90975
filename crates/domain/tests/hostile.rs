//! Hostile input against every pure parser: arbitrary text and JSON never
//! panic, and always come back as a typed error or a valid value.
//! 10 000 cases per target (pure targets run the most cases; the database
//! targets of the contract suite run fewer).

use guildconf_domain::json::{
    canonical, canonical_sha256, parse_pointer, parse_user_path, pointer_from_segments, remove_at,
    set_at, value_sha256,
};
use guildconf_domain::{
    Actor, ActorKind, ChainVerifier, Change, Entry, EntryBody, GuildId, Operation, RequestContext,
    SnapshotEvidence, Timestamp, BODY_KEYS,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

const CASES: u32 = 10_000;

/// Text that mixes SQL metacharacters, JSON syntax, pointer escapes, control
/// characters, CR/LF and arbitrary Unicode.
fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "'",
        "\"",
        ";",
        "--",
        "/*",
        "*/",
        "\\",
        "/",
        "~",
        "~0",
        "~1",
        ".",
        "..",
        "=",
        ",",
        "\r\n",
        "\n",
        "\r",
        "\t",
        "\u{0}",
        "\u{7}",
        "\u{1b}[2J",
        "\u{2028}",
        "\u{feff}",
        "😀",
        "é",
        "DROP TABLE audit_entries;",
        "{",
        "}",
        "[",
        "]",
        ":",
        "null",
        "1e400",
        "-0",
        "9223372036854775808",
        " ",
    ]);
    prop_oneof![
        prop::collection::vec(pieces, 0..8).prop_map(|v| v.concat()),
        any::<String>(),
        "\\PC{0,12}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    nested(prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        hostile_text().prop_map(Value::String),
    ])
}

/// Arrays and objects with hostile keys, nested up to three deep, of `leaf`.
fn nested(leaf: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Value> {
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(hostile_text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An export line: sometimes a plausible entry with fields swapped for
/// hostile values, sometimes arbitrary JSON.
fn import_line() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(
        BODY_KEYS
            .into_iter()
            .chain(["entry_hash", "snapshot"])
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        json_value(),
        prop::collection::btree_map(keys, json_value(), 0..17)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn paths_never_panic_and_pointers_round_trip(text in hostile_text()) {
        if let Ok(segments) = parse_user_path(&text) {
            let pointer = pointer_from_segments(&segments);
            prop_assert_eq!(parse_pointer(&pointer), Ok(segments.clone()));
            let mut doc = Value::Object(Map::new());
            if set_at(&mut doc, &segments, Value::Bool(true)).is_ok() {
                prop_assert!(remove_at(&mut doc, &segments));
            }
        }
        let _ = parse_pointer(&text);
    }

    #[test]
    fn ids_times_and_names_never_panic(text in hostile_text()) {
        if let Ok(g) = GuildId::parse(&text) {
            prop_assert_eq!(g.to_string(), text.clone());
        }
        let _ = Timestamp::parse_rfc3339(&text);
        let _ = Timestamp::parse_stored(&text);
        let _ = Operation::parse(&text);
        if let Ok(kind) = ActorKind::parse(&text) {
            prop_assert_eq!(kind.as_str(), text.as_str());
        }
        for kind in [ActorKind::Human, ActorKind::System] {
            if let Ok(actor) = Actor::new(&text, kind, Some(&text)) {
                prop_assert!(!actor.id.chars().any(char::is_control));
            }
        }
    }

    #[test]
    fn request_context_strips_control_characters(key in hostile_text(), value in hostile_text()) {
        let ctx = RequestContext::new().with(&key, &value).with("source", &value);
        for (k, v) in ctx.to_map() {
            prop_assert!(!k.chars().any(char::is_control));
            let v = v.as_str().unwrap_or_default().to_owned();
            prop_assert!(!v.chars().any(char::is_control), "{:?}", v);
            prop_assert!(v.chars().count() <= 256);
        }
    }

    #[test]
    fn import_lines_never_panic(line in import_line()) {
        let _ = Entry::from_json(&line);
        if let Value::Object(map) = &line {
            let mut verifier = ChainVerifier::new(GuildId::parse("1").map_err(TestCaseError::fail)?);
            verifier.push(map, SnapshotEvidence::Unknown, None);
            verifier.push(map, SnapshotEvidence::Missing, None);
            // A random line never verifies as a valid chain start.
            prop_assert!(verifier.finish(None, false).is_err());
        }
    }
}

/// JSON with hostile keys and strings, and numbers of every kind RFC 8785
/// formats differently from `serde_json` (fractions, exponents, integers
/// beyond 2^53).
fn canonicalisable_value() -> impl Strategy<Value = Value> {
    nested(prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        hostile_text().prop_map(Value::String),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// The fast value hash always equals hashing the RFC 8785 text, also
    /// after a round trip through non-canonical text.
    #[test]
    fn value_sha256_equals_the_canonical_hash(value in canonicalisable_value()) {
        prop_assert_eq!(value_sha256(&value), canonical_sha256(&value));
        let reparsed: Value = serde_json::from_str(&serde_json::to_string_pretty(&value).expect("prints"))
            .expect("parses");
        prop_assert_eq!(value_sha256(&reparsed), canonical_sha256(&reparsed));
    }
}

/// A body whose changes, context, detail, reason and summary hold hostile
/// values: floats, integers past 2^53, keys at or above U+E000.
fn hostile_body() -> impl Strategy<Value = EntryBody> {
    let change = (
        0..3u8,
        hostile_text(),
        canonicalisable_value(),
        canonicalisable_value(),
    )
        .prop_map(|(kind, path, before, after)| match kind {
            0 => Change::Add { path, after },
            1 => Change::Remove { path, before },
            _ => Change::Replace {
                path,
                before,
                after,
            },
        });
    (
        prop::collection::vec(change, 0..4),
        canonicalisable_value(),
        hostile_text(),
        prop::option::of(hostile_text()),
        any::<u64>(),
    )
        .prop_map(|(changes, extra, summary, reason, seq)| {
            let map = |v: Value| match v {
                Value::Object(map) => map,
                other => Map::from_iter([("value".to_owned(), other)]),
            };
            EntryBody {
                actor: Actor::new("80351110224678912", ActorKind::Human, Some("bench"))
                    .expect("a valid actor"),
                changes,
                config_version: seq,
                context: map(extra.clone()),
                detail: map(extra),
                guild_id: GuildId::parse("80351110224678912").expect("a valid id"),
                occurred_at: Timestamp::parse_stored("2026-11-22T04:45:44.123000Z")
                    .expect("a valid time"),
                operation: Operation::Update,
                prev_hash: "0".repeat(64),
                reason,
                request_id: None,
                seq,
                snapshot_sha256: Some("f".repeat(64)),
                summary,
                v: 1,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// The body's own canonical text (compact serde text proved canonical by
    /// the scanner, else re-canonicalised) is byte for byte what the general
    /// RFC 8785 serializer writes.
    #[test]
    fn a_body_canonicalises_as_the_general_serializer_does(body in hostile_body()) {
        let general = canonical(&body).map_err(TestCaseError::fail)?;
        prop_assert_eq!(body.canonical().map_err(TestCaseError::fail)?, general);
    }
}
