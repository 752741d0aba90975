//! Property tests of the pure domain: diff/apply round trips,
//! diff shape, redaction, schema normalisation, snowflakes and JSON limits.
//!
//! Every target here is pure and cheap, so each property runs 10 000 cases.

use std::collections::BTreeMap;

use guildconf_domain::json::{check_limits, parse_pointer, pointer_from_segments};
use guildconf_domain::{
    apply_changes, diff, redact_changes, redact_document, summarise, Actor, ActorKind, Change,
    ConfigSchema, GuildConfigSchema, Operation, Snowflake, REDACTED,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const CASES: u32 = 10_000;

/// Object keys that stress pointers and ordering: `/`, `~`, `.`, the empty
/// key, digits, non-ASCII, a non-BMP emoji and a private-use character
/// (which sort differently in UTF-16 and UTF-8).
const TRICKY_KEYS: &[&str] = &[
    "a", "b", "a/b", "/", "~", "~0", "~1", "~01", "a.b", ".", "", "0", "é", "😀", "\u{e000}", " ",
    "a~b/c",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(TRICKY_KEYS).prop_map(str::to_owned),
        2 => "\\PC{0,6}",
        1 => any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        prop::sample::select(vec!["", "x", "[redacted]", "a/b"]).prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4).prop_map(to_object),
        ]
    })
}

fn to_object(map: BTreeMap<String, Value>) -> Value {
    Value::Object(map.into_iter().collect())
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(key(), value(), 0..6).prop_map(to_object)
}

/// Mixes two objects key by key (keep, take the other, drop, or mix the
/// nested objects), so the pair shares structure and the diff has adds,
/// removes, replaces and untouched keys at several depths.
fn blend(a: &Value, b: &Value, bits: &mut u64) -> Value {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return b.clone();
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Map::new();
    for k in keys {
        let choice = *bits & 3;
        *bits = bits.rotate_right(2) ^ 0x9e37_79b9_7f4a_7c15;
        let picked = match (choice, a.get(k), b.get(k)) {
            (0, Some(x), _) => Some(x.clone()),
            (1, _, Some(y)) => Some(y.clone()),
            (2, Some(x), Some(y)) => Some(blend(x, y, bits)),
            (2, Some(x), None) => Some(x.clone()),
            _ => None,
        };
        if let Some(v) = picked {
            out.insert(k.clone(), v);
        }
    }
    Value::Object(out)
}

fn pair() -> impl Strategy<Value = (Value, Value)> {
    prop_oneof![
        (object(), object()),
        (object(), object(), any::<u64>()).prop_map(|(a, b, mut bits)| {
            let c = blend(&a, &b, &mut bits);
            (a, c)
        }),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn diff_then_apply_round_trips((before, after) in pair()) {
        let changes = diff(&before, &after);
        prop_assert_eq!(apply_changes(&before, &changes), Ok(after.clone()));
        // A create diffs against {}, a delete back to {}.
        prop_assert_eq!(apply_changes(&json!({}), &diff(&json!({}), &after)), Ok(after.clone()));
        prop_assert_eq!(apply_changes(&after, &diff(&after, &json!({}))), Ok(json!({})));
        prop_assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn diff_is_sorted_and_well_shaped((before, after) in pair()) {
        let changes = diff(&before, &after);
        for window in changes.windows(2) {
            prop_assert!(
                window[0].path().as_bytes() < window[1].path().as_bytes(),
                "not strictly sorted by path bytes: {:?}", changes
            );
        }
        for change in &changes {
            let segments = parse_pointer(change.path());
            prop_assert!(segments.is_ok(), "invalid pointer {:?}", change.path());
            let value = serde_json::to_value(change).expect("a change serialises");
            let mut keys: Vec<&str> = value
                .as_object()
                .expect("a change is an object")
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            let expected: &[&str] = match change {
                Change::Add { .. } => &["after", "op", "path"],
                Change::Remove { .. } => &["before", "op", "path"],
                Change::Replace { .. } => &["after", "before", "op", "path"],
            };
            prop_assert_eq!(keys, expected.to_vec());
            // The wire form reads back as the same change.
            let back: Change = serde_json::from_value(value).expect("reads back");
            prop_assert_eq!(&back, change);
        }
    }
}

/// A secret that cannot occur by chance in the generated documents.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{12,24}".prop_map(|s| format!("https://discord.com/api/webhooks/1/S3CR3T{s}"))
}

/// A value at the secret path: the secret itself, or a larger value holding
/// it somewhere inside (an array, or an object the diff recurses into).
fn secret_value() -> impl Strategy<Value = (String, Value)> {
    (secret(), 0u8..5, leaf(), key()).prop_map(|(secret, shape, other, k)| {
        let hook = match shape {
            0 => json!([other, {k: [secret.clone()]}]),
            1 => json!({"nested": {"token": secret.clone()}, "plain": other}),
            _ => Value::String(secret.clone()),
        };
        (secret, hook)
    })
}

fn small_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(key(), leaf(), 0..3).prop_map(to_object)
}

fn with_secret(doc: &Value, announcements_extra: &Value, hook: Value) -> Value {
    let mut doc = doc.clone();
    let mut ann = match announcements_extra {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    ann.insert("webhook_url".into(), hook);
    if let Value::Object(map) = &mut doc {
        map.insert("announcements".into(), Value::Object(ann));
    }
    doc
}

/// Two documents: one with a secret, and another that has a different
/// secret, no announcements, a null secret, or announcements that are not an
/// object at all.
fn secret_case() -> impl Strategy<Value = (String, String, Value, Value)> {
    (
        (object(), small_object(), secret_value()),
        (object(), small_object(), secret_value(), 0u8..4),
    )
        .prop_map(|((d1, x1, (s1, h1)), (d2, x2, (s2, h2), shape))| {
            let with = with_secret(&d1, &x1, h1);
            let other = match shape {
                0 => with_secret(&d2, &x2, h2),
                1 => {
                    let mut d = d2;
                    if let Value::Object(m) = &mut d {
                        m.remove("announcements");
                    }
                    d
                }
                2 => with_secret(&d2, &x2, Value::Null),
                _ => {
                    let mut d = d2;
                    if let Value::Object(m) = &mut d {
                        m.insert("announcements".into(), json!("plain"));
                    }
                    d
                }
            };
            (s1, s2, with, other)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn redaction_never_leaks((s1, s2, with, other) in secret_case()) {
        let secrets = GuildConfigSchema.secret_paths();
        let actor = Actor::new("80351110224678912", ActorKind::Human, Some("alice")).expect("valid");
        for (before, after) in [
            (&json!({}), &with),      // create: the secret inside a larger added value
            (&with, &json!({})),      // delete: inside a larger removed value
            (&other, &with),
            (&with, &other),
        ] {
            let changes = redact_changes(&diff(before, after), &secrets);
            let text = serde_json::to_string(&changes).expect("serialises");
            let debug = format!("{changes:?}");
            for s in [&s1, &s2] {
                prop_assert!(!text.contains(s.as_str()), "leak in {}", text);
                prop_assert!(!debug.contains(s.as_str()), "leak in {}", debug);
            }
            for op in [Operation::Create, Operation::Update, Operation::Revert, Operation::Delete] {
                let line = summarise(&actor, op, &changes, Some(1));
                prop_assert!(!line.contains("S3CR3T"), "leak in {}", line);
            }
            // That the secret changed is still recorded.
            let secret_changed = before.pointer("/announcements/webhook_url")
                != after.pointer("/announcements/webhook_url");
            if secret_changed {
                prop_assert!(changes.iter().any(|c| {
                    "/announcements/webhook_url".starts_with(c.path())
                        || c.path().starts_with("/announcements/webhook_url")
                }), "secret change not recorded: {:?}", changes);
            }
        }
        for doc in [&with, &other] {
            let redacted = redact_document(doc, &secrets);
            let text = serde_json::to_string(&redacted).expect("serialises");
            prop_assert!(!text.contains("S3CR3T"), "leak in {}", text);
            // Only the secret changed: everything else is untouched, and a
            // present non-null secret shows as "[redacted]".
            if let Some(hook) = doc.pointer("/announcements/webhook_url") {
                let shown = redacted.pointer("/announcements/webhook_url");
                if hook.is_null() {
                    prop_assert_eq!(shown, Some(&Value::Null));
                } else {
                    prop_assert_eq!(shown, Some(&json!(REDACTED)));
                }
            }
            let mut a = doc.clone();
            let mut b = redacted.clone();
            for v in [&mut a, &mut b] {
                if let Some(Value::Object(ann)) = v.get_mut("announcements") {
                    ann.remove("webhook_url");
                }
            }
            prop_assert_eq!(a, b);
        }
    }
}

// ---------------------------------------------------------------------------
// GuildConfigSchema::normalise on schema-shaped, mostly wrong input.

fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![4 => leaf(), 1 => value()]
}

fn snowflakeish() -> BoxedStrategy<Value> {
    prop_oneof![
        12 => "[1-9][0-9]{0,17}".prop_map(Value::String),
        4 => (1u64..(1 << 53)).prop_map(Value::from),
        1 => "[1-9][0-9]{18}".prop_map(Value::String),
        1 => any::<u64>().prop_map(Value::from),
        1 => prop::sample::select(vec![json!("0"), json!("007"), json!(-5), json!(1.5), json!(null), json!("abc"), json!(" 1")]),
        1 => junk(),
    ]
    .boxed()
}

fn text() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => "\\PC{0,12}".prop_map(Value::String),
        2 => Just(Value::Null),
        1 => Just(Value::String("x".repeat(2001))),
        1 => Just(Value::String("é".repeat(2000))),
        1 => junk(),
    ]
    .boxed()
}

fn boolish() -> BoxedStrategy<Value> {
    prop_oneof![12 => any::<bool>().prop_map(Value::Bool), 1 => junk()].boxed()
}

fn int_in(lo: i64, hi: i64) -> BoxedStrategy<Value> {
    prop_oneof![12 => (lo..=hi).prop_map(Value::from), 1 => junk(), 1 => Just(json!(10.0))].boxed()
}

/// An object whose listed fields are each present with probability 3/4,
/// sometimes with an unknown field added; sometimes not an object at all.
fn fields(list: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let present: Vec<BoxedStrategy<Option<(String, Value)>>> = list
        .into_iter()
        .map(|(name, s)| {
            prop::option::weighted(0.75, s.prop_map(move |v| (name.to_owned(), v))).boxed()
        })
        .collect();
    prop_oneof![
        30 => (present, prop::option::weighted(0.05, (key(), leaf()))).prop_map(|(items, extra)| {
            let mut map: Map<String, Value> = items.into_iter().flatten().collect();
            if let Some((k, v)) = extra {
                map.entry(k).or_insert(v);
            }
            Value::Object(map)
        }),
        1 => junk(),
    ]
    .boxed()
}

fn schema_doc() -> BoxedStrategy<Value> {
    let role_key = prop_oneof![24 => "[a-z_]{1,10}", 1 => key(), 1 => Just("x".repeat(65))];
    let flag = prop_oneof![24 => "[a-z0-9_]{1,10}", 1 => key()];
    let hook = prop_oneof![
        12 => "[a-z0-9]{1,8}".prop_map(|s| Value::String(format!("https://{s}.example/hooks/S3CR3T"))),
        4 => Just(Value::Null),
        1 => Just(json!("http://example.com/S3CR3T")),
        1 => Just(json!("S3CR3T not a url")),
        1 => Just(json!("[redacted]")),
        1 => Just(Value::Null),
        1 => junk(),
    ];
    let verification = fields(vec![
        (
            "mode",
            prop_oneof![
                12 => prop::sample::select(vec!["none", "reaction", "captcha", "manual"]).prop_map(Value::from),
                1 => junk(),
            ]
            .boxed(),
        ),
        ("verified_role", snowflakeish()),
        ("timeout_minutes", int_in(0, 10_081)),
    ]);
    let document = fields(vec![
        (
            "role_mapping",
            prop_oneof![
                12 => prop::collection::btree_map(role_key, snowflakeish(), 0..4).prop_map(to_object),
                1 => junk(),
            ]
            .boxed(),
        ),
        (
            "onboarding",
            fields(vec![
                ("enabled", boolish()),
                ("welcome_channel", snowflakeish()),
                ("welcome_message", text()),
                ("verification", verification),
            ]),
        ),
        (
            "yearly_reset",
            fields(vec![
                ("enabled", boolish()),
                ("month", int_in(0, 13)),
                ("day", int_in(0, 32)),
                (
                    "timezone",
                    prop_oneof![
                        3 => prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Mars/Base", ""]).prop_map(Value::from),
                        1 => junk(),
                    ]
                    .boxed(),
                ),
                (
                    "preserve_roles",
                    prop_oneof![
                        4 => prop::collection::vec(snowflakeish(), 0..4).prop_map(Value::Array),
                        1 => junk(),
                    ]
                    .boxed(),
                ),
            ]),
        ),
        (
            "announcements",
            fields(vec![
                ("enabled", boolish()),
                ("channel", snowflakeish()),
                ("mention_role", snowflakeish()),
                ("webhook_url", hook.boxed()),
            ]),
        ),
        (
            "features",
            prop_oneof![
                12 => prop::collection::btree_map(flag, boolish(), 0..4).prop_map(to_object),
                1 => junk(),
            ]
            .boxed(),
        ),
    ]);
    prop_oneof![20 => document, 1 => value()].boxed()
}

fn is_pointer(path: &str) -> bool {
    path.is_empty() || (path.starts_with('/') && parse_pointer(path).is_ok())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn normalise_is_total_idempotent_and_points_at_its_violations(input in schema_doc()) {
        let schema = GuildConfigSchema;
        match schema.normalise(&input) {
            Ok(out) => {
                prop_assert_eq!(schema.normalise(&out), Ok(out.clone()));
                // The stored form: every field present, a typed GuildConfig.
                let keys: Vec<&String> = out.as_object().expect("an object").keys().collect();
                prop_assert_eq!(keys.len(), 5);
                prop_assert!(guildconf_domain::GuildConfig::from_document(&out).is_ok());
            }
            Err(violations) => {
                prop_assert!(!violations.0.is_empty());
                for v in &violations.0 {
                    prop_assert!(is_pointer(&v.path), "bad path {:?}", v.path);
                }
                // Messages never echo a secret.
                let text = violations.to_string();
                prop_assert!(!text.contains("S3CR3T"), "echoed: {}", text);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Snowflakes and JSON limits.

/// The oracle: decimal digits, no leading zero, value in 1..2^63.
fn expected_snowflake(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.starts_with('0') {
        return None;
    }
    text.parse::<u128>()
        .ok()
        .filter(|n| (1..(1u128 << 63)).contains(n))
        .and_then(|n| u64::try_from(n).ok())
}

fn snowflake_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{1,22}",
        "[-+ 0]?[0-9]{1,20}[ a.]?",
        any::<u64>().prop_map(|n| n.to_string()),
        (1u64..(1 << 63)).prop_map(|n| n.to_string()),
        ((1u64 << 63) - 3..=u64::MAX).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "0",
            "00",
            "01",
            "1",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
            "١٢٣",
            "１２",
        ])
        .prop_map(str::to_owned),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn snowflake_parse_accepts_exactly_canonical_decimals(text in snowflake_text()) {
        let parsed = Snowflake::parse(&text);
        let expected = expected_snowflake(&text);
        prop_assert_eq!(parsed.as_ref().ok().map(|s| s.get()), expected);
        if let Ok(s) = parsed {
            prop_assert_eq!(s.to_string(), text.clone());
            prop_assert_eq!(serde_json::to_value(s).expect("serialises"), Value::String(text));
        }
    }
}

const LIMIT: u64 = 1 << 53;

fn limit_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..4).prop_map(|k| Value::from(LIMIT - 2 + k)),
        (0i64..4).prop_map(|k| Value::from(-(1i64 << 53) + 1 - k)),
        (-1000i64..1000).prop_map(Value::from),
    ]
}

fn limit_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,6}",
        1 => ("\\PC{0,3}", "\\PC{0,3}").prop_map(|(a, b)| format!("{a}\u{0}{b}")),
    ]
}

fn limit_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        limit_number(),
        limit_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            // Keys without U+0000: this property is about values.
            prop::collection::btree_map("\\PC{0,4}", inner, 0..4).prop_map(to_object),
        ]
    })
}

/// The oracle: the pointer of every integer beyond ±2^53 and every string
/// holding U+0000.
fn expected_breaches(value: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    match value {
        Value::Number(n) => {
            let beyond = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u > LIMIT,
                (None, Some(i)) => i < -(1i64 << 53),
                (None, None) => false,
            };
            if beyond {
                out.push(pointer_from_segments(path));
            }
        }
        Value::String(s) if s.contains('\u{0}') => out.push(pointer_from_segments(path)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                expected_breaches(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                expected_breaches(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn check_limits_flags_exactly_big_integers_and_nul(value in limit_value()) {
        let mut found = Vec::new();
        check_limits(&value, &mut Vec::new(), &mut found);
        let mut found: Vec<String> = found.into_iter().map(|v| v.path).collect();
        let mut expected = Vec::new();
        expected_breaches(&value, &mut Vec::new(), &mut expected);
        found.sort();
        expected.sort();
        prop_assert_eq!(found, expected);
    }
}
