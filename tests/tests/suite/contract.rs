//! The storage contract (docs/STORAGE.md and docs/FORMAT.md), written once
//! and run against SQLite and PostgreSQL through the public service.

use std::collections::BTreeSet;
use std::sync::Arc;

use guildconf::{
    Actor, ActorKind, At, ConfigService, Edit, Error, ExportFormat, ExportRequest, FieldEdit,
    FieldPath, GuildId, HistoryRequest, Operation, Outcome, Timestamp, WriteMeta,
};
use guildconf_domain::{apply_changes, Change, BODY_KEYS};
use guildconf_ports::{FaultHook, StoreError, WriteStep};
use guildconf_tests::{contract, Backend, Postgres, StepClock, TestDb, BACKENDS};
use serde_json::{json, Value};

fn gid(n: u64) -> GuildId {
    GuildId::from_u64(n).expect("test ids are valid")
}

fn actor(id: &str, label: &str) -> WriteMeta {
    WriteMeta::new(Actor::new(id, ActorKind::Human, Some(label)).expect("test actors are valid"))
}

fn alice() -> WriteMeta {
    actor("80351110224678912", "alice")
}

fn bob() -> WriteMeta {
    actor("80351110224678913", "bob")
}

fn set(path: &str, value: Value) -> FieldEdit {
    FieldEdit::new().set(path.parse().expect("a valid path"), value)
}

/// Every entry of a guild, oldest first, through the public history API.
async fn all_entries(service: &ConfigService, guild: GuildId) -> Vec<guildconf::Entry> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = service
            .history(&HistoryRequest {
                guild_id: Some(guild),
                limit: Some(1000),
                cursor,
                ..Default::default()
            })
            .await
            .expect("history reads");
        out.extend(page.entries);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.reverse();
    out
}

/// Applying entry N's changes to snapshot N-1 gives snapshot N.
async fn assert_changes_replay(service: &ConfigService, guild: GuildId) {
    let mut previous = json!({});
    for entry in all_entries(service, guild).await {
        let b = &entry.body;
        let replayed =
            apply_changes(&previous, &b.changes).expect("changes apply to the predecessor");
        if b.operation == Operation::Delete {
            assert_eq!(replayed, json!({}), "a delete removes every section");
            previous = json!({});
        } else {
            let snapshot = service
                .get(guild, At::Version(b.config_version))
                .await
                .expect("snapshot exists")
                .document;
            assert_eq!(
                replayed, snapshot,
                "entry {} diffs against its real predecessor",
                b.seq
            );
            previous = snapshot;
        }
    }
}

async fn counts(db: &TestDb, guild: &str) -> (u64, u64, u64) {
    (
        db.count("guild_heads", guild).await,
        db.count("guild_snapshots", guild).await,
        db.count("audit_entries", guild).await,
    )
}

contract! {
    each_write_appends_exactly_one_complete_entry,
    unchanged_and_dry_run_write_nothing,
    reads_at_version_and_time_and_diff,
    revert_makes_an_old_version_current_as_a_new_entry,
    delete_keeps_history_and_recreate_continues_the_chain,
    defaults_are_read_without_writing,
    create_if_absent_is_safe_when_shards_race,
    history_is_per_guild_newest_first_and_filters_combine,
    cursor_pages_never_skip_or_repeat_while_writes_go_on,
    actor_trail_across_guilds,
    request_ids_replay_and_conflict,
    expected_version_race_has_one_winner,
    concurrent_writers_on_one_guild_lose_nothing,
    concurrent_writers_on_many_guilds,
    a_fault_at_each_step_of_a_write_leaves_everything_as_before,
    a_fault_hook_at_each_write_step_rolls_everything_back,
    verify_is_ok_while_writes_land,
    audit_tables_are_append_only,
    tampering_with_plain_sql_is_caught,
    invalid_input_stores_nothing,
    export_streams_and_verifies_offline,
    checkpoints_catch_a_restored_backup_and_a_recomputed_chain,
    upsert_creates_then_updates_and_replays_across_both,
    verify_and_export_stream_across_guild_and_batch_boundaries,
    a_remembered_head_gives_way_to_other_writers,
    a_head_at_the_same_seq_with_another_hash_is_read_not_written_past,
    verify_checks_guild_ranges_in_parallel_and_reports_in_guild_order,
    a_float_and_the_integer_it_equals_are_the_same_config,
    a_typed_modify_is_diffed_validated_and_audited,
    every_stored_column_is_proven_by_verify,
    head_edits_and_rows_past_the_head_are_caught_with_the_triggers_on,
}

/// The tamper matrix: every column of every table guildconf reads back
/// (entries, snapshots, heads, idempotency records; the records'
/// `fingerprint` is outside the proof, see SECURITY.md), edited with plain
/// SQL by the database's owner
/// with the append-only triggers dropped, each on a guild of its own, and
/// each caught by verify with the guild, the seq and the problem code.
async fn every_stored_column_is_proven_by_verify(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let ones = "1".repeat(64);
    let hash_of = |g: u64, seq: u64| {
        format!("(SELECT entry_hash FROM audit_entries WHERE guild_id = {g} AND seq = {seq})")
    };
    // (what, sql with {g} for the guild, [(guild offset, seq, code)]).
    type Case = (&'static str, String, Vec<(u64, Option<u64>, &'static str)>);
    let e = |col: &str, value: &str| {
        format!("UPDATE audit_entries SET {col} = {value} WHERE guild_id = {{g}} AND seq = 2")
    };
    let h = |set: &str| format!("UPDATE guild_heads SET {set} WHERE guild_id = {{g}}");
    let cases: Vec<Case> = vec![
        ("entries.seq", e("seq", "7"), vec![(0, Some(3), "seq_gap")]),
        ("entries.config_version", e("config_version", "9"), vec![(0, Some(2), "entry_hash")]),
        ("entries.operation", e("operation", "'delete'"), vec![(0, Some(2), "entry_hash")]),
        (
            "entries.occurred_at",
            e("occurred_at", "'2020-01-01T00:00:00.000000Z'"),
            vec![(0, Some(2), "entry_hash")],
        ),
        ("entries.actor_id", e("actor_id", "'mallory'"), vec![(0, Some(2), "entry_hash")]),
        ("entries.request_id", e("request_id", "'forged'"), vec![(0, Some(2), "entry_hash")]),
        ("entries.prev_hash", e("prev_hash", &format!("'{ones}'")), vec![(0, Some(2), "entry_hash")]),
        ("entries.entry_hash", e("entry_hash", &format!("'{ones}'")), vec![(0, Some(2), "entry_hash")]),
        (
            "entries.body",
            e("body", "REPLACE(body, '\"summary\":\"', '\"summary\":\"x')"),
            vec![(0, Some(2), "entry_hash")],
        ),
        (
            "entries.guild_id",
            "UPDATE audit_entries SET guild_id = {g} + 500 WHERE guild_id = {g} AND seq = 3".into(),
            vec![(0, Some(2), "head"), (500, Some(3), "entry_hash")],
        ),
        (
            "snapshots.document",
            format!(
                "UPDATE guild_snapshots SET document = {} WHERE guild_id = {{g}} AND version = 2",
                backend.set_json_bool_sql("document", &["features", "a"], false)
            ),
            vec![(0, Some(2), "snapshot")],
        ),
        (
            "snapshots.sha256",
            format!("UPDATE guild_snapshots SET sha256 = '{ones}' WHERE guild_id = {{g}} AND version = 2"),
            vec![(0, Some(2), "snapshot")],
        ),
        (
            "snapshots.version",
            "UPDATE guild_snapshots SET version = 9 WHERE guild_id = {g} AND version = 2".into(),
            vec![(0, Some(2), "snapshot")],
        ),
        (
            "snapshots.guild_id",
            "UPDATE guild_snapshots SET guild_id = {g} + 500 WHERE guild_id = {g} AND version = 2"
                .into(),
            vec![(0, Some(2), "snapshot"), (500, None, "past_head")],
        ),
        ("heads.version", h("version = 2"), vec![(0, Some(3), "head")]),
        ("heads.last_hash", h(&format!("last_hash = '{ones}'")), vec![(0, Some(3), "head")]),
        (
            "heads.updated_at",
            h("updated_at = '2099-01-01T00:00:00.000000Z'"),
            vec![(0, Some(3), "head")],
        ),
        ("heads.actor_id", h("actor_id = '80351110224678913'"), vec![(0, Some(3), "head")]),
        ("heads.actor_kind", h("actor_kind = 'system'"), vec![(0, Some(3), "head")]),
        ("heads.actor_label", h("actor_label = 'mallory'"), vec![(0, Some(3), "head")]),
        (
            "heads.document",
            format!("UPDATE guild_heads SET document = {} WHERE guild_id = {{g}}",
                backend.set_json_bool_sql("document", &["features", "b"], false)),
            vec![(0, Some(3), "head")],
        ),
        (
            "heads.seq (rollback)",
            format!(
                "UPDATE guild_heads SET version = 2, seq = 2, last_hash = {}, document = \
                 (SELECT document FROM guild_snapshots WHERE guild_id = {{g}} AND version = 2), \
                 updated_at = (SELECT occurred_at FROM audit_entries WHERE guild_id = {{g}} AND seq = 2), \
                 actor_id = '80351110224678913', actor_label = 'bob' WHERE guild_id = {{g}}",
                hash_of(0, 2).replace("guild_id = 0", "guild_id = {g}")
            ),
            vec![(0, Some(3), "past_head")],
        ),
        (
            "heads.guild_id",
            h("guild_id = {g} + 500"),
            vec![(0, Some(3), "head"), (500, None, "head")],
        ),
        (
            "requests.result",
            "UPDATE audit_requests SET result = REPLACE(result, '\"version\":2', '\"version\":1') \
             WHERE guild_id = {g}"
                .into(),
            vec![(0, Some(2), "request")],
        ),
        (
            "requests.request_id",
            "UPDATE audit_requests SET request_id = 'forged' WHERE guild_id = {g}".into(),
            vec![(0, None, "request")],
        ),
        (
            "requests.guild_id",
            "UPDATE audit_requests SET guild_id = {g} + 500 WHERE guild_id = {g}".into(),
            vec![(500, None, "request")],
        ),
    ];
    let mut expected = Vec::new();
    for (i, (what, _sql, problems)) in cases.iter().enumerate() {
        let g = 1000 + i as u64;
        seed_three_versions(&s, g).await;
        for (offset, seq, code) in problems {
            expected.push((g + offset, *seq, code.to_string(), *what));
        }
    }
    assert!(
        s.verify(None).await.expect("verify").ok,
        "untouched, it verifies"
    );
    db.drop_triggers().await;
    for (i, (what, sql, _)) in cases.iter().enumerate() {
        let g = 1000 + i as u64;
        db.exec(&sql.replace("{g}", &g.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{what}: the tampering SQL runs: {e}"));
    }
    let report = s.verify(None).await.expect("verify runs");
    let found = report
        .problems
        .iter()
        .map(|p| {
            let g = p
                .guild_id
                .expect("a guild")
                .to_string()
                .parse::<u64>()
                .expect("a number");
            (g, p.seq, p.problem.clone())
        })
        .collect();
    assert_found_exactly(found, &expected);
}

/// The tamper matrix with the chain guards on, as anyone may who can write
/// plain SQL without dropping a trigger (on PostgreSQL the application role
/// does the same in
/// `privileges::the_application_role_cannot_roll_back_a_head_or_write_past_it_unseen`):
/// the head moved back is refused; a head rolled back or edited at its own
/// seq, and a real next entry and snapshot slipped in past the head, are
/// caught by verify with the guild, the seq and the problem code.
async fn head_edits_and_rows_past_the_head_are_caught_with_the_triggers_on(
    backend: Backend,
    name: &str,
) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    for g in 3000..3006 {
        seed_three_versions(&s, g).await;
    }
    // Guild 3004's next write, made for real on a copy.
    // (A short name: a test database's name is cut to 63 characters.)
    let twin = TestDb::new(
        backend,
        &format!("{}_guards_on_twin", backend.test_prefix()),
    )
    .await;
    guildconf::copy(db.store().await, twin.store().await.as_ref(), |_| {})
        .await
        .expect("copies");
    twin.service()
        .await
        .update(gid(3004), set("features.c", json!(true)), &alice())
        .await
        .expect("v4");
    let next_write = next_write_sql(backend, twin.url(), 3004, 4).await;
    let err = db
        .exec(&head_rollback_sql(3000))
        .await
        .expect_err("a head moved back is refused");
    assert!(err.contains("guildconf: a head m"), "{err}");
    let mut expected = Vec::new();
    for (what, sql, (g, seq, code)) in triggers_on_tamperings(3001, next_write) {
        db.exec(&sql)
            .await
            .unwrap_or_else(|e| panic!("{what}: the guards let it in: {e}"));
        expected.push((g, seq, code.to_owned(), what));
    }
    let report = s.verify(None).await.expect("verify runs");
    let found = report
        .problems
        .iter()
        .map(|p| {
            let g = p.guild_id.expect("a guild").to_string().parse().expect("n");
            (g, p.seq, p.problem.clone())
        })
        .collect();
    assert_found_exactly(found, &expected);
}

/// A tampering: what it does, its SQL, and the problem verify must report
/// (guild, seq, code).
pub(crate) type Tampering = (&'static str, String, (u64, Option<u64>, &'static str));

/// Moves guild `g`'s head back to seq 1 (of [`seed_three_versions`]),
/// every column as version 1 left it: what the head-forward guard refuses.
pub(crate) fn head_rollback_sql(g: u64) -> String {
    format!(
        "UPDATE guild_heads SET version = 1, seq = 1, \
         last_hash = (SELECT entry_hash FROM audit_entries WHERE guild_id = {g} AND seq = 1), \
         document = (SELECT document FROM guild_snapshots WHERE guild_id = {g} AND version = 1), \
         updated_at = (SELECT occurred_at FROM audit_entries WHERE guild_id = {g} AND seq = 1) \
         WHERE guild_id = {g}"
    )
}

/// What the chain guards let through, on guilds `g`..`g + 4` of
/// [`seed_three_versions`]: the version and document rolled back at the
/// head's own seq, the head's actor label and document edited in place,
/// `next_write` (guild `g + 3`'s real next entry and snapshot, from
/// [`next_write_sql`]) slipped in without moving the head, and a snapshot
/// past the head.
pub(crate) fn triggers_on_tamperings(g: u64, next_write: String) -> Vec<Tampering> {
    let snapshot = |g: u64, version: u64| {
        format!(
            "(SELECT document FROM guild_snapshots WHERE guild_id = {g} AND version = {version})"
        )
    };
    vec![
        (
            "the version and document rolled back at the same seq",
            format!(
                "UPDATE guild_heads SET version = 1, document = {} WHERE guild_id = {g}",
                snapshot(g, 1)
            ),
            (g, Some(3), "head"),
        ),
        (
            "the head's actor label edited in place",
            format!(
                "UPDATE guild_heads SET actor_label = 'mallory' WHERE guild_id = {}",
                g + 1
            ),
            (g + 1, Some(3), "head"),
        ),
        (
            "the head's document edited in place",
            format!(
                "UPDATE guild_heads SET document = {} WHERE guild_id = {}",
                snapshot(g + 2, 2),
                g + 2
            ),
            (g + 2, Some(3), "head"),
        ),
        (
            "a valid next entry and snapshot past the head, which stays",
            next_write,
            (g + 3, Some(4), "past_head"),
        ),
        (
            "a snapshot past the head",
            format!(
                "INSERT INTO guild_snapshots (guild_id, version, document, sha256) \
                 SELECT guild_id, 4, document, sha256 FROM guild_snapshots \
                 WHERE guild_id = {} AND version = 1",
                g + 4
            ),
            (g + 4, None, "past_head"),
        ),
    ]
}

/// SQL that inserts guild `g`'s entry `seq`, and the snapshot of its
/// version, exactly as the database at `url` stores them: a link that
/// extends the chain in every respect, for slipping into another database.
/// The database writes the literals itself, quotes doubled.
pub(crate) async fn next_write_sql(backend: Backend, url: &str, g: u64, seq: u64) -> String {
    let literal = |column: &str| {
        format!(
            "CASE WHEN {column} IS NULL THEN 'NULL' \
             ELSE '''' || replace(CAST({column} AS TEXT), '''', '''''') || '''' END"
        )
    };
    let values = |columns: &str| {
        columns
            .split(", ")
            .map(literal)
            .collect::<Vec<_>>()
            .join(" || ', ' || ")
    };
    let entry = "guild_id, seq, config_version, operation, occurred_at, actor_id, request_id, \
                 body, entry_hash, prev_hash";
    let snapshot = "guild_id, version, document, sha256";
    let entry_values = first_value(
        backend,
        url,
        &format!(
            "SELECT {} FROM audit_entries WHERE guild_id = {g} AND seq = {seq}",
            values(entry)
        ),
    )
    .await;
    let snapshot_values = first_value(
        backend,
        url,
        &format!(
            "SELECT {} FROM guild_snapshots WHERE guild_id = {g} AND version = \
             (SELECT config_version FROM audit_entries WHERE guild_id = {g} AND seq = {seq})",
            values(snapshot)
        ),
    )
    .await;
    format!(
        "INSERT INTO audit_entries ({entry}) VALUES ({entry_values}); \
         INSERT INTO guild_snapshots ({snapshot}) VALUES ({snapshot_values})"
    )
}

/// The first column of the first row of a query at `url`.
async fn first_value(backend: Backend, url: &str, sql: &str) -> String {
    backend
        .rows(url, sql)
        .await
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// A guild of the tamper matrix: version 1 by alice, version 2 by bob with
/// request id `r2`, version 3 by alice (three entries, three snapshots).
pub(crate) async fn seed_three_versions(s: &ConfigService, g: u64) {
    s.create(gid(g), json!({}), &alice()).await.expect("v1");
    let mut m = bob();
    m.request_id = Some("r2".into());
    s.update(gid(g), set("features.a", json!(true)), &m)
        .await
        .expect("v2");
    s.update(gid(g), set("features.b", json!(true)), &alice())
        .await
        .expect("v3");
}

/// Verify's problems, as (guild, seq, code), are exactly the `expected`
/// ones: (guild, seq, code, the tampering that should cause it).
pub(crate) fn assert_found_exactly(
    mut found: Vec<(u64, Option<u64>, String)>,
    expected: &[(u64, Option<u64>, String, &str)],
) {
    found.sort();
    let mut want: Vec<(u64, Option<u64>, String)> = expected
        .iter()
        .map(|(g, seq, code, _)| (*g, *seq, code.clone()))
        .collect();
    want.sort();
    for (g, seq, code, what) in expected {
        assert!(
            found.contains(&(*g, *seq, code.clone())),
            "{what}: expected guild {g} seq {seq:?} {code}; verify found {found:?}"
        );
    }
    assert_eq!(found, want, "nothing else is reported");
}

/// `modify` edits the typed `GuildConfig`: the diff and audit entry are
/// computed for the author, an edit that changes nothing writes nothing, an
/// invalid result is refused with nothing stored, and a missing guild is not
/// found.
async fn a_typed_modify_is_diffed_validated_and_audited(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(77);
    assert!(matches!(
        s.modify(g, &alice(), |cfg| cfg.onboarding.enabled = true)
            .await,
        Err(Error::NotFound(_))
    ));
    s.create(g, json!({}), &alice()).await.expect("v1");
    let r = s
        .modify(g, &bob(), |cfg| {
            cfg.features.insert("beta".into(), true);
        })
        .await
        .expect("v2");
    assert_eq!((r.outcome, r.version), (Outcome::Updated, 2));
    let entries = all_entries(&s, g).await;
    let last = entries.last().expect("an entry");
    assert_eq!(
        serde_json::to_value(&last.body.changes).expect("json"),
        json!([{"op": "add", "path": "/features/beta", "after": true}])
    );
    assert_eq!(last.body.actor.label, "bob");
    let same = s
        .modify(g, &alice(), |cfg| {
            cfg.features.insert("beta".into(), true);
        })
        .await
        .expect("no-op");
    assert_eq!((same.outcome, same.entry_hash), (Outcome::Unchanged, None));
    // Enabled onboarding needs a welcome channel: refused, nothing stored.
    let refused = s
        .modify(g, &alice(), |cfg| cfg.onboarding.enabled = true)
        .await
        .expect_err("invalid");
    match refused {
        Error::Invalid(v) => assert!(v.to_string().contains("/onboarding/welcome_channel"), "{v}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
    assert_eq!(all_entries(&s, g).await.len(), 2);
    assert!(s.verify(Some(g)).await.expect("verify").ok);
}

async fn each_write_appends_exactly_one_complete_entry(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(42);
    let writes: Vec<(Edit, Outcome)> = vec![
        (Edit::Create { input: json!({}) }, Outcome::Created),
        (
            Edit::Update(set("features.beta", json!(true))),
            Outcome::Updated,
        ),
        (
            Edit::Replace {
                document: json!({"features": {"beta": false}}),
            },
            Outcome::Updated,
        ),
        (Edit::Revert { to: 2 }, Outcome::Reverted),
        (Edit::Delete, Outcome::Deleted),
    ];
    for (i, (edit, outcome)) in writes.into_iter().enumerate() {
        let before = db.count("audit_entries", "42").await;
        let result = s.write(g, edit, &alice()).await.expect("write lands");
        assert_eq!(result.outcome, outcome);
        assert_eq!(
            db.count("audit_entries", "42").await,
            before + 1,
            "write {i} appends exactly one entry"
        );
        let entry = all_entries(&s, g).await.pop().expect("an entry");
        let json = entry.to_json().expect("serialises");
        let keys: BTreeSet<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = BODY_KEYS.into_iter().chain(["entry_hash"]).collect();
        assert_eq!(keys, expected, "every §4 key, nulls written");
        assert_eq!(Some(entry.entry_hash.clone()), result.entry_hash);
        assert_eq!(entry.body.seq, i as u64 + 1);
    }
    assert!(s.verify(Some(g)).await.expect("verifies").ok);
    assert_changes_replay(&s, g).await;
}

async fn unchanged_and_dry_run_write_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(7);
    s.create(g, json!({"features": {"a": true}}), &alice())
        .await
        .expect("created");
    let before = counts(&db, "7").await;
    let r = s
        .update(g, set("features.a", json!(true)), &alice())
        .await
        .expect("no-op");
    assert_eq!(
        (r.outcome, r.entry_hash.clone(), r.version),
        (Outcome::Unchanged, None, 1)
    );
    let r = s
        .replace(g, json!({"features": {"a": true}}), &alice())
        .await
        .expect("no-op");
    assert_eq!(r.outcome, Outcome::Unchanged);
    let r = s.revert(g, 1, &alice()).await.expect("no-op");
    assert_eq!(r.outcome, Outcome::Unchanged);
    let mut dry = alice();
    dry.dry_run = true;
    let r = s
        .update(g, set("features.a", json!(false)), &dry)
        .await
        .expect("dry run");
    assert!(r.dry_run && r.entry_hash.is_none());
    assert_eq!(r.changes.as_ref().map(Vec::len), Some(1));
    s.delete(g, &dry).await.expect("dry delete");
    s.create(gid(8), json!({}), &dry).await.expect("dry create");
    assert_eq!(counts(&db, "7").await, before, "nothing written");
    assert_eq!(
        counts(&db, "8").await,
        (0, 0, 0),
        "a dry-run create writes nothing"
    );
}

async fn reads_at_version_and_time_and_diff(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(9);
    s.create(g, json!({}), &alice()).await.expect("v1");
    s.update(g, set("features.x", json!(true)), &bob())
        .await
        .expect("v2");
    s.update(g, set("features.x", json!(false)), &alice())
        .await
        .expect("v3");
    let entries = all_entries(&s, g).await;
    for entry in &entries {
        let v = entry.body.config_version;
        let by_version = s.get(g, At::Version(v)).await.expect("version exists");
        let by_time = s
            .get(g, At::Time(entry.body.occurred_at))
            .await
            .expect("time exists");
        assert_eq!(
            by_time, by_version,
            "show --at the entry's time is that version"
        );
        assert_eq!(
            guildconf_domain::json::canonical_sha256(&by_version.document).ok(),
            entry.body.snapshot_sha256,
            "snapshot of version {v} is the hashed one"
        );
    }
    // Between two entries, the earlier version is current.
    let between = Timestamp::from_datetime(
        entries[1].body.occurred_at.datetime() + chrono::TimeDelta::milliseconds(500),
    );
    assert_eq!(
        s.get(g, At::Time(between)).await.expect("exists").version,
        2
    );
    let before = Timestamp::from_datetime(
        entries[0].body.occurred_at.datetime() - chrono::TimeDelta::seconds(1),
    );
    assert!(
        matches!(s.get(g, At::Time(before)).await, Err(Error::NotFound(_))),
        "before the guild existed"
    );
    assert!(matches!(
        s.get(g, At::Version(4)).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.get(g, At::Version(0)).await,
        Err(Error::NotFound(_))
    ));
    let d = s.diff(g, 1, 3).await.expect("diff");
    assert_eq!(
        d,
        vec![Change::Add {
            path: "/features/x".into(),
            after: json!(false)
        }]
    );
    let d = s.diff(g, 3, 2).await.expect("diff");
    assert_eq!(
        d,
        vec![Change::Replace {
            path: "/features/x".into(),
            before: json!(false),
            after: json!(true)
        }]
    );
    assert!(s.diff(g, 1, 1).await.expect("diff").is_empty());
}

async fn revert_makes_an_old_version_current_as_a_new_entry(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(10);
    s.create(g, json!({"features": {"a": true}}), &alice())
        .await
        .expect("v1");
    s.update(g, set("features.b", json!(true)), &alice())
        .await
        .expect("v2");
    s.update(g, set("features.a", json!(false)), &alice())
        .await
        .expect("v3");
    let r = s.revert(g, 1, &bob()).await.expect("reverted");
    assert_eq!((r.outcome, r.version), (Outcome::Reverted, 4));
    let now = s.get(g, At::Now).await.expect("current");
    assert_eq!(
        now.document,
        s.get(g, At::Version(1)).await.expect("v1").document
    );
    let last = all_entries(&s, g).await.pop().expect("entry");
    assert_eq!(last.body.operation, Operation::Revert);
    assert_eq!(last.body.detail.get("to_version"), Some(&json!(1)));
    assert!(matches!(
        s.revert(g, 9, &bob()).await,
        Err(Error::NotFound(_))
    ));
    assert_changes_replay(&s, g).await;
}

async fn delete_keeps_history_and_recreate_continues_the_chain(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(11);
    s.create(g, json!({}), &alice()).await.expect("v1");
    let d = s.delete(g, &alice()).await.expect("deleted");
    assert_eq!((d.outcome, d.version), (Outcome::Deleted, 1));
    assert!(matches!(s.get(g, At::Now).await, Err(Error::NotFound(_))));
    assert!(matches!(
        s.delete(g, &alice()).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.update(g, set("features.a", json!(true)), &alice()).await,
        Err(Error::NotFound(_))
    ));
    let c = s
        .create(g, json!({"features": {"a": true}}), &alice())
        .await
        .expect("re-created");
    assert_eq!((c.outcome, c.version), (Outcome::Created, 2));
    let entries = all_entries(&s, g).await;
    assert_eq!(
        entries.iter().map(|e| e.body.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(entries[1].body.snapshot_sha256, None);
    assert_eq!(entries[2].body.prev_hash, entries[1].entry_hash);
    assert!(matches!(
        s.create(g, json!({}), &alice()).await,
        Err(Error::Conflict(_))
    ));
    assert!(s.verify(None).await.expect("verifies").ok);
    assert_changes_replay(&s, g).await;
}

async fn defaults_are_read_without_writing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(12);
    let shown = s.get_or_default(g).await.expect("defaults");
    assert_eq!(shown.version, 0);
    let typed = s.guild_config(g).await.expect("typed defaults");
    assert!(!typed.onboarding.enabled);
    assert_eq!(counts(&db, "12").await, (0, 0, 0));
    assert!(matches!(s.get(g, At::Now).await, Err(Error::NotFound(_))));
}

async fn create_if_absent_is_safe_when_shards_race(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let g = gid(13);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = db.service().await;
        let shard =
            Actor::new(&format!("shard-{i}"), ActorKind::System, None).expect("valid system actor");
        tasks.push(tokio::spawn(async move {
            s.get_or_create(g, &WriteMeta::new(shard)).await
        }));
    }
    let mut versions = BTreeSet::new();
    for t in tasks {
        let shown = t.await.expect("task joins");
        let shown = shown.unwrap_or_else(|e| panic!("every shard gets a config: {e}"));
        versions.insert((shown.version, shown.document.to_string()));
    }
    assert_eq!(versions.len(), 1, "every shard sees the winner's config");
    assert_eq!(
        db.count("audit_entries", "13").await,
        1,
        "exactly one create landed"
    );
}

async fn history_is_per_guild_newest_first_and_filters_combine(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let (g1, g2) = (gid(20), gid(21));
    s.create(g1, json!({}), &alice()).await.expect("g1 v1");
    s.create(g2, json!({}), &alice()).await.expect("g2 v1");
    s.update(g1, set("features.a", json!(true)), &bob())
        .await
        .expect("g1 v2");
    s.update(g1, set("onboarding.welcome_message", json!("hi")), &alice())
        .await
        .expect("g1 v3");
    s.update(g2, set("features.a", json!(true)), &bob())
        .await
        .expect("g2 v2");
    s.update(g1, set("features.b", json!(true)), &bob())
        .await
        .expect("g1 v4");
    let q = |f: fn(&mut HistoryRequest)| {
        let mut r = HistoryRequest {
            guild_id: Some(g1),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    let seqs = |page: guildconf::HistoryPage| {
        page.entries
            .iter()
            .map(|e| (e.body.guild_id, e.body.seq))
            .collect::<Vec<_>>()
    };
    let all = seqs(s.history(&q(|_| {})).await.expect("history"));
    assert_eq!(
        all,
        vec![(g1, 4), (g1, 3), (g1, 2), (g1, 1)],
        "only g1, newest first"
    );
    let by_bob = seqs(
        s.history(&q(|r| r.actor_id = Some("80351110224678913".into())))
            .await
            .expect("h"),
    );
    assert_eq!(by_bob, vec![(g1, 4), (g1, 2)]);
    let bob_features_a = seqs(
        s.history(&q(|r| {
            r.actor_id = Some("80351110224678913".into());
            r.path = Some(FieldPath::from_segments(["features", "a"]));
        }))
        .await
        .expect("h"),
    );
    assert_eq!(bob_features_a, vec![(g1, 2)], "actor AND path");
    let features = seqs(
        s.history(&q(|r| {
            r.path = Some(FieldPath::from_segments(["features"]))
        }))
        .await
        .expect("h"),
    );
    assert_eq!(
        features,
        vec![(g1, 4), (g1, 2), (g1, 1)],
        "below the path, and the create (an ancestor)"
    );
    let creates = seqs(
        s.history(&q(|r| r.operation = Some(Operation::Create)))
            .await
            .expect("h"),
    );
    assert_eq!(creates, vec![(g1, 1)]);
    let entries = all_entries(&s, g1).await;
    let (t2, t4) = (entries[1].body.occurred_at, entries[3].body.occurred_at);
    let window = seqs(
        s.history(&HistoryRequest {
            guild_id: Some(g1),
            since: Some(t2),
            until: Some(t4),
            ..Default::default()
        })
        .await
        .expect("h"),
    );
    assert_eq!(
        window,
        vec![(g1, 3), (g1, 2)],
        "since inclusive, until exclusive"
    );
    assert!(matches!(
        s.history(&HistoryRequest {
            guild_id: Some(g1),
            limit: Some(1001),
            ..Default::default()
        })
        .await,
        Err(Error::Invalid(_))
    ));
}

async fn cursor_pages_never_skip_or_repeat_while_writes_go_on(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(30);
    s.create(g, json!({}), &alice()).await.expect("v1");
    for i in 0..24 {
        s.update(g, set("features.n", json!(i % 2 == 0)), &alice())
            .await
            .expect("update");
    }
    let total_before = 25;
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut writes = 0;
    loop {
        let page = s
            .history(&HistoryRequest {
                guild_id: Some(g),
                limit: Some(4),
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .expect("page");
        seen.extend(page.entries.iter().map(|e| e.body.seq));
        // Writes land between pages.
        s.update(g, set("features.n", json!(writes % 2 == 1)), &bob())
            .await
            .expect("concurrent write");
        writes += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<u64> = (1..=total_before).rev().collect();
    assert_eq!(
        seen, expected,
        "every entry that existed at the first page, once, in order"
    );
    // A cursor is only valid for the query it came from.
    let page = s
        .history(&HistoryRequest {
            guild_id: Some(g),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .expect("p");
    let c = page.next_cursor.expect("more pages");
    let other = HistoryRequest {
        guild_id: Some(g),
        operation: Some(Operation::Update),
        cursor: Some(c),
        ..Default::default()
    };
    assert!(matches!(s.history(&other).await, Err(Error::Invalid(_))));
}

async fn actor_trail_across_guilds(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    for g in [40, 41, 42] {
        s.create(gid(g), json!({}), &alice()).await.expect("create");
        s.update(gid(g), set("features.x", json!(true)), &bob())
            .await
            .expect("bob");
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .history(&HistoryRequest {
                actor_id: Some("80351110224678913".into()),
                limit: Some(2),
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .expect("actor trail");
        seen.extend(page.entries.iter().map(|e| {
            (
                e.body.guild_id.to_string(),
                e.body.seq,
                e.body.actor.label.clone(),
            )
        }));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<(String, u64, String)> = ["42", "41", "40"]
        .iter()
        .map(|g| ((*g).to_string(), 2, "bob".to_string()))
        .collect();
    assert_eq!(seen, expected, "bob's entries in every guild, newest first");
    assert!(matches!(
        s.history(&HistoryRequest::default()).await,
        Err(Error::Invalid(_))
    ));
}

async fn request_ids_replay_and_conflict(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(50);
    s.create(g, json!({}), &alice()).await.expect("v1");
    let mut m = alice();
    m.request_id = Some("interaction-1".into());
    let first = s
        .update(g, set("features.a", json!(true)), &m)
        .await
        .expect("lands");
    let second = s
        .update(g, set("features.a", json!(true)), &m)
        .await
        .expect("replayed");
    assert!(second.replayed);
    assert_eq!(
        (second.version, second.entry_hash.clone()),
        (first.version, first.entry_hash.clone())
    );
    assert_eq!(
        db.count("audit_entries", "50").await,
        2,
        "the replay wrote nothing"
    );
    // The replay check comes before the expected-version check.
    m.expect_version = Some(1);
    assert!(
        s.update(g, set("features.a", json!(true)), &m)
            .await
            .expect("replayed")
            .replayed
    );
    m.expect_version = None;
    let err = s
        .update(g, set("features.a", json!(false)), &m)
        .await
        .expect_err("reused id");
    assert!(matches!(err, Error::Conflict(_)));
    assert_eq!(db.count("audit_entries", "50").await, 2);
    let last = all_entries(&s, g).await.pop().expect("entry");
    assert_eq!(last.body.request_id.as_deref(), Some("interaction-1"));
}

async fn expected_version_race_has_one_winner(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let g = gid(60);
    db.service()
        .await
        .create(g, json!({}), &alice())
        .await
        .expect("v1");
    for round in 0..5u64 {
        let mut tasks = Vec::new();
        for i in 0..4 {
            let s = db.service().await;
            let mut m = alice();
            m.expect_version = Some(round + 1);
            tasks.push(tokio::spawn(async move {
                s.update(
                    g,
                    set(&format!("role_mapping.w{i}"), json!(round * 10 + i + 1)),
                    &m,
                )
                .await
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.expect("joins") {
                Ok(_) => won += 1,
                Err(Error::Conflict(_)) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!(
            won, 1,
            "round {round}: exactly one writer with the expected version lands"
        );
    }
    assert_eq!(db.count("audit_entries", "60").await, 6);
}

/// Writers on separate connections; returns (landed, conflicts).
async fn run_writers(db: &TestDb, guilds: &[GuildId], writers: u64, per_writer: u64) -> (u64, u64) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let s = ConfigService::new(db.store().await).with_clock(Arc::new(StepClock::new()));
        let guilds = guilds.to_vec();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut conflicts) = (0, 0);
            for j in 0..per_writer {
                let g = guilds[(j as usize + w as usize) % guilds.len()];
                match s
                    .update(
                        g,
                        set(&format!("role_mapping.w{w}"), json!(j + 1)),
                        &alice(),
                    )
                    .await
                {
                    Ok(r) => {
                        assert_eq!(r.outcome, Outcome::Updated);
                        ok += 1;
                    }
                    Err(Error::Conflict(_)) => conflicts += 1,
                    Err(e) => panic!("writer {w}: unexpected error {e}"),
                }
            }
            (ok, conflicts)
        }));
    }
    let mut totals = (0, 0);
    for t in tasks {
        let (ok, c) = t.await.expect("writer joins");
        totals.0 += ok;
        totals.1 += c;
    }
    totals
}

async fn concurrent_writers_on_one_guild_lose_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let g = gid(70);
    let s = db.service().await;
    s.create(g, json!({}), &alice()).await.expect("v1");
    let (landed, conflicts) = run_writers(&db, &[g], 8, 200).await;
    println!("{backend:?}: 8 writers x 200 updates on one guild: {landed} landed, {conflicts} exhausted their retries");
    assert_eq!(landed + conflicts, 1600);
    let head = s.get(g, At::Now).await.expect("current");
    assert_eq!(
        head.version,
        landed + 1,
        "versions are gapless: one per landed write"
    );
    let entries = all_entries(&s, g).await;
    assert_eq!(
        entries.iter().map(|e| e.body.seq).collect::<Vec<_>>(),
        (1..=landed + 1).collect::<Vec<_>>()
    );
    assert!(s.verify(Some(g)).await.expect("verify").ok);
    assert_changes_replay(&s, g).await;
}

async fn concurrent_writers_on_many_guilds(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let guilds: Vec<GuildId> = (100..116).map(gid).collect();
    for g in &guilds {
        s.create(*g, json!({}), &alice()).await.expect("created");
    }
    let (landed, conflicts) = run_writers(&db, &guilds, 8, 200).await;
    println!("{backend:?}: 8 writers x 200 updates over 16 guilds: {landed} landed, {conflicts} conflicts");
    let mut versions = 0;
    for g in &guilds {
        versions += s.get(*g, At::Now).await.expect("current").version - 1;
    }
    assert_eq!(
        versions, landed,
        "every landed write is one version, none lost"
    );
    let report = s.verify(None).await.expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries_checked, landed + 16);
}

async fn a_fault_at_each_step_of_a_write_leaves_everything_as_before(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(80);
    s.create(g, json!({}), &alice()).await.expect("v1");
    let steps = [
        ("guild_snapshots", "INSERT"),
        ("audit_entries", "INSERT"),
        ("audit_requests", "INSERT"),
        ("guild_heads", "UPDATE"),
    ];
    for (i, (table, event)) in steps.into_iter().enumerate() {
        let before_doc = s.get(g, At::Now).await.expect("current");
        let before = counts(&db, "80").await;
        let before_history = all_entries(&s, g).await;
        db.fail_on(table, event).await;
        let mut m = alice();
        m.request_id = Some(format!("fault-{table}"));
        let err = s.update(g, set("role_mapping.f", json!(i + 1)), &m).await;
        assert!(
            matches!(err, Err(Error::Storage(_))),
            "{table} {event}: the caller gets an error: {err:?}"
        );
        assert_eq!(counts(&db, "80").await, before, "{table}: nothing written");
        assert_eq!(
            s.get(g, At::Now).await.expect("current"),
            before_doc,
            "{table}: config as before"
        );
        assert_eq!(
            all_entries(&s, g).await,
            before_history,
            "{table}: history as before"
        );
        db.heal(table).await;
    }
    // With the faults gone the same write lands, and the chain verifies.
    s.update(g, set("features.f", json!(true)), &alice())
        .await
        .expect("lands");
    assert!(s.verify(None).await.expect("verify").ok);
}

/// The adapters' fault hook fails the write right before one step, inside
/// the transaction; the caller gets the error and the stored state, `get` and
/// history are exactly as before. Without the hook the same write (same
/// request id) then lands and the chain verifies.
async fn a_fault_hook_at_each_write_step_rolls_everything_back(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(81);
    s.create(g, json!({}), &alice()).await.expect("v1");
    for (i, step) in WriteStep::ALL.into_iter().enumerate() {
        let hook: FaultHook = Arc::new(move |at: WriteStep| {
            if at == step {
                Err(StoreError::Storage(format!("injected fault before {at:?}")))
            } else {
                Ok(())
            }
        });
        let faulty = ConfigService::new(db.store_with_fault_hook(hook).await)
            .with_clock(Arc::new(StepClock::new()));
        let before_rows = db.dump("81").await;
        let before_doc = s.get(g, At::Now).await.expect("current");
        let before_history = all_entries(&s, g).await;
        // A request id, so every step (the request insert too) runs.
        let mut m = alice();
        m.request_id = Some(format!("hook-{step:?}"));
        let edit = set("role_mapping.h", json!(i + 1));
        let err = faulty.update(g, edit.clone(), &m).await;
        match &err {
            Err(Error::Storage(message)) => assert!(
                message.contains(&format!("injected fault before {step:?}")),
                "{step:?}: the caller gets the injected error: {message}"
            ),
            other => panic!("{step:?}: the caller gets an error, got {other:?}"),
        }
        assert_eq!(
            db.dump("81").await,
            before_rows,
            "{step:?}: head, snapshots, entries and requests as before"
        );
        assert_eq!(
            s.get(g, At::Now).await.expect("current"),
            before_doc,
            "{step:?}: config as before"
        );
        assert_eq!(
            all_entries(&s, g).await,
            before_history,
            "{step:?}: history as before"
        );
        // The same write without the hook lands, and the chain verifies.
        let landed = s.update(g, edit, &m).await.expect("lands");
        assert_eq!(landed.outcome, Outcome::Updated, "{step:?}");
        assert!(
            !landed.replayed,
            "{step:?}: the failed attempt left no record"
        );
        assert_eq!(landed.version, before_doc.version + 1, "{step:?}");
        let report = s.verify(Some(g)).await.expect("verify");
        assert!(report.ok, "{step:?}: {report:?}");
    }
    assert_eq!(
        counts(&db, "81").await,
        (1, 6, 6),
        "one head, six snapshots and entries"
    );
}

/// Writes landing while verify runs are never a `head` problem: verify reads
/// heads first and checks the entries up to them. Guilds created meanwhile
/// are fine too.
async fn verify_is_ok_while_writes_land(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(83);
    s.create(g, json!({}), &alice()).await.expect("v1");
    let writer = ConfigService::new(db.store().await).with_clock(Arc::new(StepClock::new()));
    let writes = tokio::spawn(async move {
        for j in 0..300u64 {
            writer
                .update(g, set("role_mapping.v", json!(j + 1)), &bob())
                .await
                .expect("lands");
            // New guilds appear too, so verify also meets guilds whose head
            // and first entry commit while it runs.
            if j % 10 == 0 {
                writer
                    .create(gid(1000 + j), json!({}), &bob())
                    .await
                    .expect("lands");
            }
        }
    });
    let mut runs = 0;
    while !writes.is_finished() {
        let one = s.verify(Some(g)).await.expect("verify one guild");
        assert!(one.ok, "run {runs}, one guild: {one:?}");
        let all = s.verify(None).await.expect("verify all");
        assert!(all.ok, "run {runs}, all guilds: {all:?}");
        runs += 1;
    }
    writes.await.expect("the writer joins");
    println!("{backend:?}: {runs} verify rounds ran while 300 writes landed, all ok");
    assert!(
        runs >= 3,
        "verify ran while the writes landed ({runs} rounds)"
    );
    let last = s.verify(Some(g)).await.expect("verify");
    assert!(last.ok && last.entries_checked == 301, "{last:?}");
}

async fn audit_tables_are_append_only(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    s.create(gid(90), json!({}), &alice()).await.expect("v1");
    let mut statements = vec![
        "UPDATE audit_entries SET actor_id = 'mallory'".to_string(),
        "DELETE FROM audit_entries".to_string(),
        "UPDATE guild_snapshots SET sha256 = 'x'".to_string(),
        "DELETE FROM guild_snapshots".to_string(),
    ];
    statements.extend(backend.append_only_bypasses());
    for sql in &statements {
        let result = db.exec(sql).await;
        assert!(result.is_err(), "{sql} must be refused");
        assert!(
            result.err().unwrap_or_default().contains("append-only"),
            "{sql}: refused by the trigger"
        );
    }
    assert_eq!(counts(&db, "90").await, (1, 1, 1));
    assert!(s.verify(None).await.expect("verify").ok);
}

async fn tampering_with_plain_sql_is_caught(backend: Backend, name: &str) {
    let sub = |what: &str| format!("{name}_{what}");
    // Each kind of tampering on its own database: (sql, seq, problem).
    let cases: Vec<(&str, String, Option<u64>, &str)> = vec![
        (
            "value",
            "UPDATE audit_entries SET body = REPLACE(body, '\"after\":true', '\"after\":false') WHERE guild_id = 5 AND seq = 2".into(),
            Some(2),
            "entry_hash",
        ),
        ("actor", "UPDATE audit_entries SET actor_id = 'mallory' WHERE guild_id = 5 AND seq = 2".into(), Some(2), "entry_hash"),
        ("delete_middle", "DELETE FROM audit_entries WHERE guild_id = 5 AND seq = 2".into(), Some(3), "seq_gap"),
        (
            "occurred_at",
            "UPDATE audit_entries SET body = REPLACE(body, occurred_at, '2020-01-01T00:00:00.000000Z'), \
             occurred_at = '2020-01-01T00:00:00.000000Z' WHERE guild_id = 5 AND seq = 2"
                .into(),
            Some(2),
            "entry_hash",
        ),
        (
            "swap_seq",
            "UPDATE audit_entries SET seq = 1000 WHERE guild_id = 5 AND seq = 2; \
             UPDATE audit_entries SET seq = 2 WHERE guild_id = 5 AND seq = 3; \
             UPDATE audit_entries SET seq = 3 WHERE guild_id = 5 AND seq = 1000;"
                .into(),
            Some(3),
            "seq_gap",
        ),
        (
            "forged_middle",
            "UPDATE audit_entries SET seq = seq + 1000 WHERE guild_id = 5 AND seq >= 3; \
             UPDATE audit_entries SET seq = seq - 999 WHERE guild_id = 5 AND seq >= 1000; \
             INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at, actor_id, request_id, body, entry_hash, prev_hash) \
             SELECT guild_id, 3, config_version, operation, occurred_at, actor_id, request_id, REPLACE(body, '\"seq\":2', '\"seq\":3'), entry_hash, prev_hash \
             FROM audit_entries WHERE guild_id = 5 AND seq = 2;"
                .into(),
            Some(3),
            "prev_hash",
        ),
        (
            "snapshot",
            format!(
                "UPDATE guild_snapshots SET document = {} WHERE guild_id = 5 AND version = 2",
                backend.set_json_bool_sql("document", &["features", "a"], false)
            ),
            Some(2),
            "snapshot",
        ),
        (
            "current_document",
            format!(
                "UPDATE guild_heads SET document = {} WHERE guild_id = 5",
                backend.set_json_bool_sql("document", &["features", "b"], false)
            ),
            Some(3),
            "head",
        ),
    ];
    for (what, sql, seq, problem) in cases {
        let db = TestDb::new(backend, &sub(what)).await;
        let s = db.service().await;
        let g = gid(5);
        s.create(g, json!({}), &alice()).await.expect("v1");
        s.update(g, set("features.a", json!(true)), &bob())
            .await
            .expect("v2");
        s.update(g, set("features.b", json!(true)), &alice())
            .await
            .expect("v3");
        s.create(gid(6), json!({}), &alice())
            .await
            .expect("another guild");
        assert!(
            s.verify(None).await.expect("verify").ok,
            "{what}: untouched database verifies"
        );
        db.drop_triggers().await;
        db.exec(&sql)
            .await
            .unwrap_or_else(|e| panic!("{what}: tampering SQL failed: {e}"));
        let report = s.verify(None).await.expect("verify runs");
        assert!(!report.ok, "{what}: tampering is caught");
        assert_eq!(
            report.problems.len(),
            1,
            "{what}: only the tampered guild fails: {report:?}"
        );
        let found = &report.problems[0];
        assert_eq!(
            (found.guild_id, found.seq, found.problem.as_str()),
            (Some(g), seq, problem),
            "{what}: {report:?}"
        );
    }
}

/// Verify and export read many guilds per round trip, in batches of 1,000
/// entries that end in the middle of a guild: every entry is checked and
/// exported once, in `(guild, seq)` order, and a guild that only has a head,
/// or only entries, is still reported.
async fn verify_and_export_stream_across_guild_and_batch_boundaries(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    // 1,202 entries: the first batch ends inside guild 21, the second
    // inside guild 23.
    let sizes = [(20u64, 600u64), (21, 450), (22, 1), (23, 150), (24, 1)];
    for (g, n) in sizes {
        s.create(gid(g), json!({}), &alice()).await.expect("create");
        for j in 1..n {
            s.update(gid(g), set("role_mapping.v", json!(j)), &bob())
                .await
                .expect("update");
        }
    }
    s.delete(gid(22), &alice()).await.expect("delete");
    let total: u64 = sizes.iter().map(|(_, n)| n).sum::<u64>() + 1;
    let report = s.verify(None).await.expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!((report.guilds_checked, report.entries_checked), (5, total));

    let mut out = Vec::new();
    let written = s
        .export(&ExportRequest::default(), &mut out)
        .await
        .expect("export");
    assert_eq!(written, total);
    let keys: Vec<(u64, u64)> = String::from_utf8(out.clone())
        .expect("utf-8")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json line");
            let g = v["guild_id"]
                .as_str()
                .and_then(|g| g.parse().ok())
                .expect("guild");
            (g, v["seq"].as_u64().expect("seq"))
        })
        .collect();
    let mut expected = Vec::new();
    for (g, n) in sizes {
        let n = if g == 22 { n + 1 } else { n };
        expected.extend((1..=n).map(|seq| (g, seq)));
    }
    assert_eq!(keys, expected, "every entry once, in (guild, seq) order");
    let offline = guildconf::verify_export(std::io::Cursor::new(out)).expect("reads");
    assert!(
        offline.ok && offline.entries_checked == total,
        "{offline:?}"
    );

    // A head whose entries are gone, and entries whose head is gone, in the
    // middle of the range: each is its guild's own problem.
    db.drop_triggers().await;
    db.exec("DELETE FROM audit_entries WHERE guild_id = 22")
        .await
        .expect("tampering runs");
    db.exec("DELETE FROM guild_heads WHERE guild_id = 23")
        .await
        .expect("tampering runs");
    db.exec("UPDATE audit_entries SET actor_id = 'mallory' WHERE guild_id = 21 AND seq = 450")
        .await
        .expect("tampering runs");
    let report = s.verify(None).await.expect("verify");
    let found: Vec<(Option<GuildId>, Option<u64>, &str)> = report
        .problems
        .iter()
        .map(|p| (p.guild_id, p.seq, p.problem.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (Some(gid(21)), Some(450), "entry_hash"),
            (Some(gid(22)), None, "head"),
            (Some(gid(23)), Some(150), "head"),
        ],
        "{report:?}"
    );
    assert_eq!(report.guilds_checked, 5);
}

async fn invalid_input_stores_nothing(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(95);
    s.create(g, json!({}), &alice()).await.expect("v1");
    let before = counts(&db, "95").await;
    let bad: Vec<(Value, &str)> = vec![
        (json!({"bogus": 1}), "/bogus"),
        (
            json!({"yearly_reset": {"month": 2, "day": 30}}),
            "/yearly_reset/day",
        ),
        (
            json!({"features": {"Bad-Flag": true}}),
            "/features/Bad-Flag",
        ),
        (
            json!({"onboarding": {"welcome_message": "x".repeat(2001)}}),
            "/onboarding/welcome_message",
        ),
        (
            json!({"onboarding": {"welcome_channel": 0}}),
            "/onboarding/welcome_channel",
        ),
        (
            json!({"onboarding": {"welcome_channel": "abc"}}),
            "/onboarding/welcome_channel",
        ),
        (
            json!({"onboarding": {"welcome_channel": "9223372036854775808"}}),
            "/onboarding/welcome_channel",
        ),
        (
            json!({"onboarding": {"verification": {"timeout_minutes": 9007199254740993u64}}}),
            "/onboarding/verification/timeout_minutes",
        ),
        (
            json!({"onboarding": {"welcome_message": "a\u{0}b"}}),
            "/onboarding/welcome_message",
        ),
        (
            json!({"role_mapping": (0..1500).map(|i| (format!("{i:0>60}"), json!("1"))).collect::<serde_json::Map<_, _>>()}),
            "",
        ),
    ];
    for (doc, path) in bad {
        match s.replace(g, doc.clone(), &alice()).await {
            Err(Error::Invalid(v)) => {
                assert!(v.0.iter().any(|x| x.path == path), "{path}: violations {v}")
            }
            other => panic!("{path}: expected invalid input, got {other:?}"),
        }
        assert!(matches!(
            s.create(gid(96), doc, &alice()).await,
            Err(Error::Invalid(_))
        ));
    }
    assert_eq!(counts(&db, "95").await, before);
    assert_eq!(counts(&db, "96").await, (0, 0, 0));
}

async fn export_streams_and_verifies_offline(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    for g in [3, 1, 2] {
        s.create(gid(g), json!({}), &alice()).await.expect("create");
        s.update(
            gid(g),
            set(
                "announcements.webhook_url",
                json!("https://example.com/hook/SECRET"),
            ),
            &bob(),
        )
        .await
        .expect("secret");
    }
    let mut out = Vec::new();
    let n = s
        .export(&ExportRequest::default(), &mut out)
        .await
        .expect("export");
    assert_eq!(n, 6);
    let text = String::from_utf8(out.clone()).expect("utf-8");
    assert!(!text.contains("SECRET"), "exports carry no secrets");
    let guild_order: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["guild_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        guild_order,
        vec!["1", "1", "2", "2", "3", "3"],
        "guilds ascending, entries by seq"
    );
    let report = guildconf::verify_export(std::io::Cursor::new(out)).expect("reads");
    assert!(report.ok && report.entries_checked == 6, "{report:?}");
    let mut csv = Vec::new();
    let request = ExportRequest {
        guild_id: Some(gid(2)),
        format: ExportFormat::Csv,
        ..Default::default()
    };
    assert_eq!(s.export(&request, &mut csv).await.expect("csv"), 2);
    let csv = String::from_utf8(csv).expect("utf-8");
    assert!(csv.starts_with("guild_id,seq,config_version,operation,occurred_at,actor_id,actor_kind,actor_label,changed_paths,summary,reason,request_id,entry_hash,outcome,target_type,target_id,target_label\r\n"));
    assert_eq!(csv.matches("\r\n").count(), 3);
}

/// The same operations with the same injected clock export byte-identical
/// JSONL from SQLite and from PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_byte_identical_across_backends() {
    let mut exports = Vec::new();
    for &backend in BACKENDS {
        let db = TestDb::new(backend, "byte_identical_export").await;
        let s = db.service().await;
        let mut m = alice();
        m.reason = Some("tab-free, \"quotes\", \u{2028} and 🎉".into());
        m.request_id = Some("req-1".into());
        m.context = guildconf::RequestContext::new().with("source", "test");
        s.create(
            gid(2),
            json!({"features": {"a": true}, "onboarding": {"welcome_message": "héllo\u{2028}"}}),
            &m,
        )
        .await
        .expect("create");
        s.create(gid(1), json!({}), &bob()).await.expect("create");
        s.update(
            gid(2),
            set("yearly_reset.timezone", json!("Europe/Berlin")),
            &bob(),
        )
        .await
        .expect("update");
        s.revert(gid(2), 1, &alice()).await.expect("revert");
        s.delete(gid(1), &alice()).await.expect("delete");
        let mut out = Vec::new();
        s.export(&ExportRequest::default(), &mut out)
            .await
            .expect("export");
        exports.push(out);
    }
    assert!(!exports[0].is_empty());
    assert_eq!(
        String::from_utf8_lossy(&exports[0]),
        String::from_utf8_lossy(&exports[1]),
        "SQLite and PostgreSQL export the same bytes"
    );
}

/// Rewrites guild 5's chain from `from_seq` on with valid hashes, as an
/// attacker with SQL access and this library would: the chain verifies, only
/// a checkpoint taken earlier can tell.
async fn recompute_chain(db: &TestDb, from_seq: u64) {
    let rows = db
        .rows("SELECT body FROM audit_entries WHERE guild_id = 5 ORDER BY seq")
        .await;
    let mut prev: Option<String> = None;
    let mut sql = String::new();
    for row in rows {
        let mut body: guildconf::EntryBody =
            serde_json::from_str(&row[0]).expect("stored body parses");
        if body.seq >= from_seq {
            if body.seq == from_seq {
                body.summary = "nothing to see here".into();
            }
            if let Some(p) = &prev {
                body.prev_hash = p.clone();
            }
            let entry = body.clone().seal().expect("seals");
            let text = entry.text().replace('\'', "''");
            sql.push_str(&format!(
                "UPDATE audit_entries SET body = '{text}', entry_hash = '{h}', prev_hash = '{p}' WHERE guild_id = 5 AND seq = {s};\n",
                h = entry.entry_hash(),
                p = body.prev_hash,
                s = body.seq
            ));
            sql.push_str(&format!(
                "UPDATE guild_heads SET last_hash = '{h}' WHERE guild_id = 5 AND seq = {s};\n",
                h = entry.entry_hash(),
                s = body.seq
            ));
            prev = Some(entry.entry_hash().to_owned());
        } else {
            prev = Some(body.seal().expect("seals").entry_hash().to_owned());
        }
    }
    db.exec(&sql)
        .await
        .expect("rewriting works once the triggers are gone");
}

async fn checkpoints_catch_a_restored_backup_and_a_recomputed_chain(backend: Backend, name: &str) {
    for attack in ["rollback", "recompute"] {
        let db = TestDb::new(backend, &format!("{name}_{attack}")).await;
        let s = db.service().await;
        let g = gid(5);
        s.create(g, json!({}), &alice()).await.expect("v1");
        s.create(gid(6), json!({}), &alice())
            .await
            .expect("another guild");
        s.update(g, set("features.a", json!(true)), &bob())
            .await
            .expect("v2");
        s.update(g, set("features.b", json!(true)), &bob())
            .await
            .expect("v3");
        let now = Timestamp::parse_stored("2026-06-01T00:00:00.000000Z").expect("valid");
        let checkpoint = s.checkpoint(now).await.expect("checkpoint");
        assert_eq!(checkpoint.heads.len(), 2);
        // The log only grew: still extends the checkpoint.
        s.update(g, set("features.c", json!(true)), &bob())
            .await
            .expect("v4");
        let report = s.verify_checkpoint(&checkpoint).await.expect("verify");
        assert!(
            report.ok,
            "{attack}: a grown log extends its checkpoint: {report:?}"
        );
        // The file carries its own digest: an edited file is refused.
        let mut text = serde_json::to_value(&checkpoint).expect("serialises");
        text["heads"][0]["seq"] = json!(1);
        assert!(matches!(
            guildconf::Checkpoint::parse(&text.to_string()),
            Err(Error::Invalid(_))
        ));
        db.drop_triggers().await;
        match attack {
            "rollback" => {
                // A restored old backup: seq 3 and 4 gone, the head consistently back at seq 2.
                db.exec(
                    "DELETE FROM audit_entries WHERE guild_id = 5 AND seq >= 3; \
                     DELETE FROM guild_snapshots WHERE guild_id = 5 AND version >= 3; \
                     UPDATE guild_heads SET seq = 2, version = 2, \
                       last_hash = (SELECT entry_hash FROM audit_entries WHERE guild_id = 5 AND seq = 2), \
                       document = (SELECT document FROM guild_snapshots WHERE guild_id = 5 AND version = 2), \
                       updated_at = (SELECT occurred_at FROM audit_entries WHERE guild_id = 5 AND seq = 2) \
                     WHERE guild_id = 5;",
                )
                .await
                .expect("rollback SQL");
            }
            _ => recompute_chain(&db, 2).await,
        }
        assert!(
            s.verify(None).await.expect("verify").ok,
            "{attack}: the chain alone looks fine"
        );
        let report = s.verify_checkpoint(&checkpoint).await.expect("verify");
        assert!(!report.ok, "{attack}: the checkpoint catches it");
        let found: Vec<_> = report
            .problems
            .iter()
            .map(|p| (p.guild_id, p.seq, p.problem.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![(Some(g), Some(3), "checkpoint")],
            "{attack}: {report:?}"
        );
    }
}

async fn upsert_creates_then_updates_and_replays_across_both(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(77);
    let mut m = alice();
    m.request_id = Some("interaction-9".into());
    let first = s
        .upsert(g, set("features.a", json!(true)), &m)
        .await
        .expect("creates");
    assert_eq!((first.outcome, first.version), (Outcome::Created, 1));
    assert_eq!(
        s.get(g, At::Now).await.expect("doc").document["features"]["a"],
        json!(true)
    );
    // The redelivered interaction replays the create instead of conflicting.
    let again = s
        .upsert(g, set("features.a", json!(true)), &m)
        .await
        .expect("replays");
    assert!(again.replayed && again.outcome == Outcome::Created);
    let second = s
        .upsert(g, set("features.b", json!(true)), &bob())
        .await
        .expect("updates");
    assert_eq!((second.outcome, second.version), (Outcome::Updated, 2));
    let same = s
        .upsert(g, set("features.b", json!(true)), &bob())
        .await
        .expect("no-op");
    assert_eq!(same.outcome, Outcome::Unchanged);
    assert_eq!(db.count("audit_entries", "77").await, 2);
    assert_changes_replay(&s, g).await;
}

/// The pool pings only connections that sat idle for over a second (not on
/// every acquire): connections cut while idle, as by a server restart, are
/// replaced before use, so the next reads and writes succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_connections_cut_while_idle_are_replaced_before_use() {
    let db = TestDb::new(&Postgres, "pg_connections_cut_while_idle").await;
    let s = db.service().await;
    let g = gid(84);
    s.create(g, json!({}), &alice()).await.expect("v1");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let killed = db
        .rows(
            "SELECT CAST(count(pg_terminate_backend(pid)) AS TEXT) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await;
    println!("idle pool connections cut: {killed:?}");
    assert_ne!(
        killed,
        vec![vec!["0".to_string()]],
        "some pool connection was cut"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    s.update(g, set("features.after_cut", json!(true)), &bob())
        .await
        .expect("the write after the cut lands");
    assert_eq!(
        s.get(g, At::Now).await.expect("reads").document["features"]["after_cut"],
        json!(true)
    );
}

/// A real database fault mid-transaction: the backend running the write is
/// killed with `pg_terminate_backend` while a test trigger holds its audit
/// entry insert. The caller gets an error, nothing is written, and the same
/// service (its pool) writes again once the trigger is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_backend_killed_mid_write_writes_nothing_and_the_pool_recovers() {
    let db = TestDb::new(&Postgres, "pg_backend_killed_mid_write").await;
    let s = db.service().await;
    let g = gid(82);
    s.create(g, json!({}), &alice()).await.expect("v1");
    let before_rows = db.dump("82").await;
    let before_doc = s.get(g, At::Now).await.expect("current");
    let before_history = all_entries(&s, g).await;
    db.exec(
        "CREATE FUNCTION test_slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$;
         CREATE TRIGGER test_slow_insert BEFORE INSERT ON audit_entries
             FOR EACH ROW EXECUTE FUNCTION test_slow_insert();",
    )
    .await
    .expect("the slow trigger is created");

    let writer = s.clone();
    let mut m = alice();
    m.request_id = Some("killed".into());
    let write = tokio::spawn(async move {
        writer
            .update(g, set("features.killed", json!(true)), &m)
            .await
    });

    // From another connection: find the backend stuck in the insert, kill it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    let pid = loop {
        let rows = db
            .rows(
                "SELECT CAST(pid AS TEXT) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND state = 'active' AND query ILIKE '%audit_entries%'",
            )
            .await;
        if let Some(row) = rows.first() {
            break row[0].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the write never showed up in pg_stat_activity"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let killed = db
        .rows(&format!("SELECT CAST(pg_terminate_backend({pid}) AS TEXT)"))
        .await;
    assert_eq!(
        killed,
        vec![vec!["true".to_string()]],
        "backend {pid} killed"
    );

    let result = write.await.expect("the writer task joins");
    println!("pg_terminate_backend({pid}) mid-write: the caller got {result:?}");
    assert!(
        matches!(result, Err(Error::Storage(_))),
        "the caller gets a storage error: {result:?}"
    );
    db.exec("DROP TRIGGER test_slow_insert ON audit_entries; DROP FUNCTION test_slow_insert();")
        .await
        .expect("the slow trigger is dropped");
    assert_eq!(db.dump("82").await, before_rows, "nothing was written");
    assert_eq!(s.get(g, At::Now).await.expect("current"), before_doc);
    assert_eq!(all_entries(&s, g).await, before_history);

    // The same service, so the same pool: it recovered from the dead
    // connection, and the same write (same request id) lands.
    let mut m = alice();
    m.request_id = Some("killed".into());
    let landed = s
        .update(g, set("features.killed", json!(true)), &m)
        .await
        .expect("the pool recovered and the write lands");
    assert_eq!((landed.outcome, landed.version), (Outcome::Updated, 2));
    assert!(!landed.replayed);
    assert!(s.verify(Some(g)).await.expect("verify").ok);
}

/// A service writes from the head its own last write left behind (one round
/// trip); when another writer moved the head meanwhile, the store refuses
/// that write and it is recomputed from the head in the database. Outcomes
/// other than a commit are decided on the database's head, never on memory.
async fn a_remembered_head_gives_way_to_other_writers(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let a = db.service().await;
    let b = db.service().await;
    let g = gid(77);
    let write = |s: &ConfigService, key: &str, value: u64, meta: WriteMeta| {
        let s = s.clone();
        let path = format!("role_mapping.{key}");
        async move { s.update(g, set(&path, json!(value)), &meta).await }
    };
    a.create(g, json!({}), &alice()).await.expect("v1");
    assert_eq!(write(&a, "a", 1, alice()).await.expect("v2").version, 2);
    assert_eq!(write(&b, "b", 2, bob()).await.expect("v3").version, 3);

    // a's memory says v2; the write lands on v3, keeping b's change.
    let r = write(&a, "c", 3, alice())
        .await
        .expect("recomputed, not lost");
    assert_eq!((r.version, r.outcome), (4, Outcome::Updated));
    let now = a.get(g, At::Now).await.expect("reads").document;
    assert_eq!(
        now["role_mapping"],
        json!({"a": "1", "b": "2", "c": "3"}),
        "built on b's write"
    );

    // Unchanged by a's memory (a = 1), changed in the database (a = 9).
    write(&b, "a", 9, bob()).await.expect("v5");
    let r = write(&a, "a", 1, alice()).await.expect("written");
    assert_eq!((r.version, r.outcome), (6, Outcome::Updated));

    // Changed by a's memory (a = 1), unchanged in the database (a = 5).
    write(&b, "a", 5, bob()).await.expect("v7");
    let r = write(&a, "a", 5, alice()).await.expect("answered");
    assert_eq!((r.version, r.outcome), (7, Outcome::Unchanged));
    assert_changes_replay(&a, g).await;

    // A purge by b moves the head but keeps the version: a's write that
    // expects that version lands instead of reporting a false conflict.
    write(&a, "c", 4, alice()).await.expect("v8");
    let far = Timestamp::parse_rfc3339("2100-01-01T00:00:00Z").expect("valid time");
    let purged = b.purge(far, Some(g), &bob()).await.expect("purge");
    assert!(purged[0].entry_hash.is_some(), "{purged:?}");
    let mut meta = alice();
    meta.expect_version = Some(8);
    let r = a
        .update(g, set("role_mapping.c", json!(5)), &meta)
        .await
        .expect("the expected version is the database's");
    assert_eq!(r.version, 9);
    // ... and a version a's memory matches but the database does not fails.
    write(&b, "b", 6, bob()).await.expect("v10");
    meta.expect_version = Some(9);
    let err = a
        .update(g, set("role_mapping.c", json!(6)), &meta)
        .await
        .expect_err("at version 10, not 9");
    assert!(
        matches!(err, Error::Conflict(ref m) if m.contains("version 10")),
        "{err:?}"
    );

    // Deleted by b: a's write is refused as not found, and writes nothing.
    b.delete(g, &bob()).await.expect("deleted");
    let before = counts(&db, "77").await;
    let err = write(&a, "c", 7, alice()).await.expect_err("deleted");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(counts(&db, "77").await, before, "nothing written");

    let report = a.verify(Some(g)).await.expect("verify");
    assert!(report.ok, "{report:?}");
}

/// The store moves a head only from the seq *and* hash a write was computed
/// from: a head rewritten in place (a restored backup, an admin's SQL) at the
/// same seq is read again, and the next entry chains to the hash actually
/// stored rather than to the one this process remembers.
async fn a_head_at_the_same_seq_with_another_hash_is_read_not_written_past(
    backend: Backend,
    name: &str,
) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let g = gid(78);
    s.create(g, json!({}), &alice()).await.expect("v1");
    s.update(g, set("role_mapping.a", json!(1)), &alice())
        .await
        .expect("v2");
    let other = "f".repeat(64);
    let rewrite = format!("UPDATE guild_heads SET last_hash = '{other}' WHERE guild_id = 78");
    // With the chain guards on, the database refuses a head onto no entry.
    let refused = db.exec(&rewrite).await.expect_err("the guard refuses it");
    assert!(refused.contains("guildconf: a head m"), "{refused}");
    db.drop_triggers().await;
    db.exec(&rewrite).await.expect("head rewritten");
    let r = s
        .update(g, set("role_mapping.a", json!(2)), &alice())
        .await
        .expect("written");
    assert_eq!(r.version, 3);
    let newest = all_entries(&s, g).await.pop().expect("entries");
    assert_eq!(newest.body.seq, 3);
    assert_eq!(
        newest.body.prev_hash, other,
        "chained to the stored head, not the remembered one"
    );
}

/// `verify` of every guild checks ranges of 1,000 guilds on parallel tasks;
/// whichever finishes first, every guild is counted once and the problems
/// come in ascending guild order. The first range is made the slowest (one
/// long chain), so a merge in finishing order would put range 2 first.
async fn verify_checks_guild_ranges_in_parallel_and_reports_in_guild_order(
    backend: Backend,
    name: &str,
) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    const GUILDS: u64 = 2_100;
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for g in (1..=GUILDS).filter(|g| g % 8 == w) {
                s.create(gid(g), json!({}), &alice()).await.expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("creator joins");
    }
    for j in 1..300u64 {
        s.update(gid(1), set("role_mapping.v", json!(j)), &bob())
            .await
            .expect("update");
    }
    let report = s.verify(None).await.expect("verify");
    assert!(report.ok, "{:?}", report.problems.first());
    assert_eq!(
        (report.guilds_checked, report.entries_checked),
        (GUILDS, GUILDS + 299)
    );

    // Export reads sub-ranges of 250 guilds on parallel tasks: the lines
    // still come once each, in (guild, seq) order.
    let mut out = Vec::new();
    let written = s
        .export(&ExportRequest::default(), &mut out)
        .await
        .expect("export");
    assert_eq!(written, GUILDS + 299);
    let keys: Vec<(u64, u64)> = String::from_utf8(out.clone())
        .expect("utf-8")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json line");
            let g = v["guild_id"].as_str().and_then(|g| g.parse().ok());
            (g.expect("guild"), v["seq"].as_u64().expect("seq"))
        })
        .collect();
    let mut expected: Vec<(u64, u64)> = (1..=300).map(|seq| (1, seq)).collect();
    expected.extend((2..=GUILDS).map(|g| (g, 1)));
    assert_eq!(keys.len(), expected.len());
    assert!(keys == expected, "every entry once, in (guild, seq) order");
    let offline = guildconf::verify_export(std::io::Cursor::new(out)).expect("reads");
    assert!(offline.ok && offline.entries_checked == GUILDS + 299);

    // One problem in each range, tampered in reverse order.
    db.drop_triggers().await;
    for g in [2_050u64, 1_500, 2] {
        db.exec(&format!(
            "UPDATE audit_entries SET actor_id = 'mallory' WHERE guild_id = {g}"
        ))
        .await
        .expect("tampering runs");
    }
    let report = s.verify(None).await.expect("verify");
    let found: Vec<Option<GuildId>> = report.problems.iter().map(|p| p.guild_id).collect();
    assert_eq!(
        found,
        vec![Some(gid(2)), Some(gid(1_500)), Some(gid(2_050))]
    );
    assert_eq!(report.guilds_checked, GUILDS);
}

/// A bot's own schema that keeps any JSON, floats included.
#[derive(Debug)]
struct AnyJson;

impl guildconf::ConfigSchema for AnyJson {
    fn defaults(&self) -> Value {
        json!({})
    }
    fn normalise(&self, input: &Value) -> Result<Value, guildconf::Violations> {
        Ok(input.clone())
    }
    fn secret_paths(&self) -> guildconf_domain::SecretPaths {
        guildconf_domain::SecretPaths::default()
    }
}

/// 2.0 and 2 are one RFC 8785 number: setting one over the other is
/// `unchanged` on both backends (SQLite reads 2.0 back as 2, PostgreSQL's
/// jsonb keeps 2.0), whether the write starts from a remembered head or a
/// freshly read one.
async fn a_float_and_the_integer_it_equals_are_the_same_config(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await.with_schema(Arc::new(AnyJson));
    let g = gid(79);
    s.create(g, json!({"ratio": 1}), &alice())
        .await
        .expect("v1");
    let r = s
        .update(g, set("ratio", json!(2.0)), &alice())
        .await
        .expect("v2");
    assert_eq!((r.version, r.outcome), (2, Outcome::Updated));
    for (value, outcome, version) in [
        (json!(2), Outcome::Unchanged, 2),
        (json!(2.0), Outcome::Unchanged, 2),
        (json!(2.5), Outcome::Updated, 3),
        (json!(2.5), Outcome::Unchanged, 3),
        (json!(25e-1), Outcome::Unchanged, 3),
    ] {
        let r = s
            .update(g, set("ratio", value.clone()), &alice())
            .await
            .expect("answered");
        assert_eq!(
            (r.outcome, r.version),
            (outcome, version),
            "ratio = {value}"
        );
    }
    let report = s.verify(Some(g)).await.expect("verify");
    assert!(report.ok, "{report:?}");
}
