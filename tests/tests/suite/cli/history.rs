//! `history`: filters, order, pagination, and one actor across guilds.

use std::collections::BTreeSet;

use guildconf_tests::{Backend, TestDb};
use serde_json::{json, Value};

use super::{gc, gc_plain, history, occurred_at, seqs};

/// The two guilds and two actors of these tests.
const H1: &str = "2001";
const H2: &str = "2002";
const A: &str = "42";
const B: &str = "43";

/// Nine writes by two actors in two guilds: H1 gets seq 1 to 6, H2 seq 1
/// to 3.
fn nine_writes(db: &TestDb) {
    let w = |args: &[&str], actor: &str| {
        let mut all = args.to_vec();
        all.extend(["--actor", actor]);
        gc(db, &all).ok();
    };
    w(&["create", H1], A); // H1 seq 1
    w(&["set", H1, "features.a=true"], B); // seq 2
    w(&["create", H2], B); // H2 seq 1
    w(&["set", H1, "features.ab=true"], A); // seq 3
    w(&["set", H1, "onboarding.welcome_message=hi"], B); // seq 4
    w(&["set", H2, "features.a=true"], A); // H2 seq 2
    w(&["set", H1, "features.a=false"], B); // seq 5
    w(&["revert", H1, "--to", "2"], A); // seq 6
    w(&["set", H2, "features.z=true"], B); // H2 seq 3
}

/// Every page of `history ARGS… --limit LIMIT`, following the cursors.
fn pages(db: &TestDb, args: &[&str], limit: &str) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let mut full = vec!["history"];
        full.extend(args);
        full.extend(["--limit", limit]);
        if let Some(c) = &cursor {
            full.extend(["--cursor", c.as_str()]);
        }
        let page = gc(db, &full).ok().json();
        let entries = page["entries"].as_array().expect("entries").clone();
        assert!(entries.len() <= limit.parse().expect("a number"), "{page}");
        out.push(entries);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("pagination never ended: {out:?}");
}

/// Each entry as (guild, seq).
fn guild_seqs(entries: &[Value]) -> Vec<(String, u64)> {
    entries
        .iter()
        .map(|e| {
            (
                e["guild_id"].as_str().expect("guild_id").to_owned(),
                e["seq"].as_u64().expect("seq"),
            )
        })
        .collect()
}

async fn history_filters_by_actor_operation_path_and_time(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    nine_writes(&db);
    let all = history(&db, &[H1]);
    assert_eq!(seqs(&all), vec![6, 5, 4, 3, 2, 1], "newest first");
    assert!(all.iter().all(|e| e["guild_id"] == json!(H1)));
    let q = |args: &[&str]| {
        let mut full = vec![H1];
        full.extend(args);
        seqs(&history(&db, &full))
    };
    assert_eq!(q(&["--actor", B]), vec![5, 4, 2]);
    assert_eq!(q(&["--operation", "update"]), vec![5, 4, 3, 2]);
    assert_eq!(q(&["--operation", "revert"]), vec![6]);
    assert_eq!(
        q(&["--path", "features.a"]),
        vec![6, 5, 2, 1],
        "whole segments: not /features/ab; the create is an ancestor"
    );
    assert_eq!(q(&["--path", "/features"]), vec![6, 5, 3, 2, 1]);
    assert_eq!(
        q(&[
            "--actor",
            B,
            "--operation",
            "update",
            "--path",
            "features.a"
        ]),
        vec![5, 2]
    );
    assert_eq!(q(&["--actor", A, "--path", "features.a"]), vec![6, 1]);
    assert_eq!(q(&["--actor", "99"]), Vec::<u64>::new());
    let t3 = occurred_at(&all, 3);
    let t5 = occurred_at(&all, 5);
    assert_eq!(q(&["--since", &t3, "--until", &t5]), vec![4, 3]);
    assert_eq!(q(&["--since", &t5]), vec![6, 5]);
    assert_eq!(
        q(&["--until", &t3, "--actor", B]),
        vec![2],
        "--until is exclusive"
    );
}

async fn history_pages_give_every_entry_once_in_order(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    nine_writes(&db);
    let seq_pages = |args: &[&str], limit: &str| -> Vec<Vec<u64>> {
        pages(&db, args, limit).iter().map(|p| seqs(p)).collect()
    };
    let p = seq_pages(&[H1], "2");
    assert_eq!(p.concat(), vec![6, 5, 4, 3, 2, 1]);
    assert_eq!(&p[..3], &[vec![6, 5], vec![4, 3], vec![2, 1]]);
    let p = seq_pages(&[H1, "--actor", B], "1");
    assert_eq!(p.concat(), vec![5, 4, 2]);
    let p = seq_pages(&[H1, "--path", "features.a"], "3");
    assert_eq!(p.concat(), vec![6, 5, 2, 1]);
    let plain = gc_plain(&db, &["history", H1]).ok();
    assert!(plain.stdout.lines().count() >= 7, "{}", plain.context());
}

async fn history_of_an_actor_spans_guilds_newest_first(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    nine_writes(&db);
    let by_b = history(&db, &["--actor", B]);
    let got = guild_seqs(&by_b);
    let expected: BTreeSet<(String, u64)> = [(H1, 5), (H1, 4), (H1, 2), (H2, 1), (H2, 3)]
        .iter()
        .map(|(g, s)| ((*g).to_owned(), *s))
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:?}");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(by_b.iter().all(|e| e["actor"]["id"] == json!(B)));
    let times: Vec<&str> = by_b
        .iter()
        .filter_map(|e| e["occurred_at"].as_str())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    assert_eq!(
        got[0],
        (H2.to_owned(), 3),
        "the newest entry by {B} comes first"
    );
    // Paging across guilds too.
    let paged = guild_seqs(&pages(&db, &["--actor", B], "2").concat());
    assert_eq!(paged, got, "paging across guilds: no skip, no repeat");
}

guildconf_tests::contract! {
    history_filters_by_actor_operation_path_and_time,
    history_pages_give_every_entry_once_in_order,
    history_of_an_actor_spans_guilds_newest_first,
}
