//! Differential test of chain verification: `ChainVerifier::push_stored`
//! (stored canonical text, read in place) against `ChainVerifier::push` (the
//! general path) on 20,000 generated chains of 1–4 entries with wrong guild
//! ids, seqs, operations, time forms, actor shapes, wrong-typed and missing
//! keys, purge anchors (`through_seq` as integer, float or missing), extra
//! keys, uppercase hashes, every kind of snapshot evidence and a head or
//! none. Both must agree on every outcome and on the (seq, problem) reported.
//! Contributed by a review of the verify fast path.

use guildconf_domain::json::{canonical, sha256_hex};
use guildconf_domain::{ChainVerifier, GuildId, HeadFacts, Problem, SnapshotEvidence};
use serde_json::{json, Map, Value};

/// xorshift64: deterministic, so a failure reproduces.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn pick<'a, T>(s: &mut u64, v: &'a [T]) -> &'a T {
    &v[(rng(s) % v.len() as u64) as usize]
}

#[test]
fn the_stored_fast_path_agrees_with_the_general_path_on_generated_chains() {
    let mut s = 0x9e3779b97f4a7c15u64;
    let g = GuildId::from_u64(7).expect("valid id");
    let mut disagreements = 0;
    for _case in 0..20000 {
        let n = 1 + rng(&mut s) % 4;
        let mut prev = "0".repeat(64);
        let mut hashes = vec![prev.clone()];
        let mut stored = Vec::new();
        let start = 1 + rng(&mut s) % 3;
        for i in 0..n {
            let seq = start + i;
            let mut m = Map::new();
            m.insert("v".into(), json!(1));
            m.insert(
                "guild_id".into(),
                pick(
                    &mut s,
                    &[json!("7"), json!("7"), json!(7), json!("8"), json!("07")],
                )
                .clone(),
            );
            m.insert(
                "seq".into(),
                pick(
                    &mut s,
                    &[
                        json!(seq),
                        json!(seq),
                        json!(seq),
                        json!(seq as f64 + 0.5),
                        json!(seq + 1),
                    ],
                )
                .clone(),
            );
            m.insert("config_version".into(), json!(seq));
            let op = pick(&mut s, &["update", "update", "purge", "delete", "Update"]).to_string();
            m.insert("operation".into(), json!(op));
            m.insert(
                "occurred_at".into(),
                pick(
                    &mut s,
                    &[
                        json!(format!("2026-01-01T00:00:{:02}.000000Z", seq)),
                        json!(format!("2026-01-01T00:00:{:02}Z", seq)),
                        json!(format!("2026-01-01T00:00:{:02}.000000+00:00", seq)),
                        json!("2026-01-01T00:00:60.000000Z"),
                    ],
                )
                .clone(),
            );
            m.insert(
                "actor".into(),
                pick(
                    &mut s,
                    &[
                        json!({"id":"system","kind":"system","label":"s"}),
                        json!({"id":"system","kind":"bot","label":"s"}),
                        json!({"id":"system","kind":"system"}),
                        json!({"id":"system","kind":"system","label":"s","x":1}),
                    ],
                )
                .clone(),
            );
            m.insert("changes".into(), json!([]));
            m.insert(
                "summary".into(),
                pick(&mut s, &[json!("x"), json!("x"), json!(1), json!(null)]).clone(),
            );
            let snap = pick(
                &mut s,
                &[
                    Some(json!("a".repeat(64))),
                    Some(json!(null)),
                    None,
                    Some(json!(5)),
                ],
            )
            .clone();
            if let Some(v) = snap {
                m.insert("snapshot_sha256".into(), v);
            }
            if !rng(&mut s).is_multiple_of(4) {
                m.insert(
                    "reason".into(),
                    pick(&mut s, &[json!(null), json!("r"), json!(3)]).clone(),
                );
            }
            m.insert("request_id".into(), json!(null));
            m.insert(
                "context".into(),
                pick(&mut s, &[json!({}), json!({}), json!([]), json!(null)]).clone(),
            );
            let ts = if seq > 1 { (seq - 1) as usize } else { 0 };
            let th = hashes[ts.min(hashes.len() - 1)].clone();
            m.insert(
                "detail".into(),
                pick(
                    &mut s,
                    &[
                        json!({}),
                        json!({"through_seq": start-1, "through_hash": prev.clone()}),
                        json!({"through_seq": (start-1) as f64, "through_hash": prev.clone()}),
                        json!({"through_seq": ts, "through_hash": th}),
                        json!({"through_seq": start - 1}),
                    ],
                )
                .clone(),
            );
            m.insert(
                "prev_hash".into(),
                pick(
                    &mut s,
                    &[
                        json!(prev.clone()),
                        json!(prev.clone()),
                        json!(prev.clone()),
                        json!("b".repeat(64)),
                    ],
                )
                .clone(),
            );
            if rng(&mut s).is_multiple_of(10) {
                m.insert("snapshot".into(), json!({}));
            }
            if rng(&mut s).is_multiple_of(10) {
                m.remove("v");
            }
            let text = canonical(&Value::Object(m.clone())).expect("canonical");
            let mut h = sha256_hex(text.as_bytes());
            if rng(&mut s).is_multiple_of(10) {
                h = h.to_uppercase();
            }
            prev = h.clone();
            hashes.push(h.clone());
            stored.push((text, h));
        }
        let evs = [
            SnapshotEvidence::Unknown,
            SnapshotEvidence::Missing,
            SnapshotEvidence::Sha256("a".repeat(64)),
        ];
        let ev = pick(&mut s, &evs).clone();
        let head = if rng(&mut s).is_multiple_of(2) {
            None
        } else {
            Some(HeadFacts {
                seq: start + n - 1,
                version: start + n - 1,
                last_hash: prev.clone(),
                document_sha256: Some("a".repeat(64)),
                updated_at: String::new(),
                actor_id: "system".into(),
                actor_kind: "system".into(),
                actor_label: "system".into(),
            })
        };
        let mut a = ChainVerifier::new(g);
        let mut b = ChainVerifier::new(g);
        for (text, h) in &stored {
            let e1 = ev.clone();
            a.push_stored(text, h, move |_| e1, None);
            let Ok(Value::Object(mut line)) = serde_json::from_str::<Value>(text) else {
                panic!("an object")
            };
            line.insert("entry_hash".into(), json!(h));
            b.push(&line, ev.clone(), None);
        }
        let ra = a.finish(head.as_ref(), true);
        let rb = b.finish(head.as_ref(), true);
        let key = |r: &Result<u64, Problem>| r.as_ref().map(|n| *n).map_err(|p| (p.seq, p.problem));
        if key(&ra) != key(&rb) {
            disagreements += 1;
            if disagreements < 5 {
                eprintln!(
                    "DISAGREE fast={:?} general={:?}\n{:#?}",
                    ra,
                    rb,
                    stored.iter().map(|x| &x.0).collect::<Vec<_>>()
                );
            }
        }
    }
    assert_eq!(disagreements, 0);
}
