//! Signed entries (issue 13), on both backends: the bot signs every entry
//! hash with a key the database never sees, and every attack someone with
//! write access to the database can make without that key is caught, by
//! verify in the database and from an export, and, where the bot writes
//! next, by the write itself (exit 6, nothing written).
//!
//! The attacker acts as one would: through guildconf's own library without
//! the key (correct hashes, no signature), with a key of their own, and with
//! plain SQL as the table owner once the append-only triggers are dropped.

use std::io::Cursor;
use std::sync::Arc;

use guildconf::{
    ConfigService, Error, ExportRequest, FieldEdit, GuildId, OpenOptions, Signing, Timestamp,
    VerifyOptions, WriteMeta,
};
use guildconf_domain::ed25519_dalek::SigningKey;
use guildconf_tests::{contract, Backend, StepClock, TestDb, BACKENDS};
use serde_json::{json, Value};

contract! {
    an_entry_appended_without_the_key_is_caught,
    post_checkpoint_entries_rewritten_consistently_are_caught,
    a_forged_purge_entry_is_caught,
    a_signature_copied_from_another_entry_is_caught,
    an_entry_signed_by_an_untrusted_key_is_caught,
    a_rewrite_under_the_bots_next_signed_write_is_caught,
    a_guild_stripped_of_every_signature_and_rewritten_is_caught,
    a_chain_switches_from_unsigned_to_signed_and_verifies,
    signed_purge_entries_and_rotated_keys_verify,
}

/// The guild every test attacks.
const G: u64 = 5;

fn gid(n: u64) -> GuildId {
    GuildId::from_u64(n).expect("valid")
}

fn meta(id: &str, label: &str) -> WriteMeta {
    WriteMeta::new(
        guildconf::Actor::new(id, guildconf::ActorKind::Human, Some(label)).expect("valid"),
    )
}

fn alice() -> WriteMeta {
    meta("80351110224678912", "alice")
}

fn mallory() -> WriteMeta {
    meta("80351110224678999", "mallory")
}

fn set(path: &str, value: Value) -> FieldEdit {
    FieldEdit::new().set(path.parse().expect("path"), value)
}

/// The bot's key (fixed, so both backends sign the same bytes).
fn bot_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// A key the attacker made.
fn mallory_key() -> SigningKey {
    SigningKey::from_bytes(&[66; 32])
}

/// Verify trusting the bot's key.
fn trusted() -> VerifyOptions {
    VerifyOptions::new().trusted_keys([bot_key().verifying_key()])
}

/// A service on the database whose writes sign with `signing`.
async fn signer(db: &TestDb, signing: Signing) -> ConfigService {
    let store = guildconf::open(
        db.url(),
        OpenOptions::new().create_if_missing(true).signing(signing),
    )
    .await
    .expect("opens");
    ConfigService::new(store).with_clock(Arc::new(StepClock::new()))
}

/// The bot: signs with its key.
async fn bot(db: &TestDb) -> ConfigService {
    signer(db, Signing::new(bot_key())).await
}

/// A database whose guild G holds three entries the bot signed (and
/// another guild that is never touched).
async fn signed_chain(backend: Backend, name: &str) -> TestDb {
    let db = TestDb::new(backend, name).await;
    let b = bot(&db).await;
    b.create(gid(G), json!({}), &alice()).await.expect("v1");
    b.create(gid(G + 1), json!({}), &alice())
        .await
        .expect("other");
    b.update(gid(G), set("features.a", json!(true)), &alice())
        .await
        .expect("v2");
    b.update(gid(G), set("features.b", json!(true)), &alice())
        .await
        .expect("v3");
    let signed = db
        .rows(&format!(
            "SELECT CAST(seq AS TEXT) FROM audit_entries WHERE guild_id = {G} AND sig_value IS NOT NULL"
        ))
        .await;
    assert_eq!(signed.len(), 3, "the bot signed every entry");
    assert!(
        db.service()
            .await
            .verify_with(None, &trusted().require_signed(true))
            .await
            .expect("verify")
            .ok,
        "an untouched signed chain verifies"
    );
    db
}

/// The export of the whole database.
async fn export(db: &TestDb) -> Vec<u8> {
    let mut out = Vec::new();
    db.service()
        .await
        .export(&ExportRequest::default(), &mut out)
        .await
        .expect("export");
    out
}

type Found = Vec<(Option<GuildId>, Option<u64>, String)>;

/// The problems verify finds in the database and in an export of it.
async fn problems(db: &TestDb, options: &VerifyOptions) -> (Found, Found) {
    let list = |r: guildconf::VerifyReport| -> Found {
        r.problems
            .into_iter()
            .map(|p| (p.guild_id, p.seq, p.problem))
            .collect()
    };
    let in_db = db
        .service()
        .await
        .verify_with(None, options)
        .await
        .expect("verify runs");
    let in_file =
        guildconf::verify_export_with(Cursor::new(export(db).await), options).expect("reads");
    (list(in_db), list(in_file))
}

/// Verify with the bot's key trusted fails guild G at `seq` with `code`,
/// in the database and from an export, and nothing else fails; without
/// keys, `plain` says whether the chain alone passes.
#[track_caller]
fn assert_caught(found: &(Found, Found), seq: u64, code: &str, what: &str) {
    let expected = vec![(Some(gid(G)), Some(seq), code.to_owned())];
    assert_eq!(found.0, expected, "{what}: in the database");
    assert_eq!(found.1, expected, "{what}: from an export");
}

/// The number of entries of guild G.
async fn entries(db: &TestDb) -> u64 {
    db.count("audit_entries", &G.to_string()).await
}

/// A signing write on guild G that must be refused as corrupt data (exit 6)
/// with nothing written.
async fn assert_write_refused(db: &TestDb, service: &ConfigService, why: &str) {
    let before = entries(db).await;
    match service
        .update(gid(G), set("features.bot", json!(true)), &alice())
        .await
    {
        Err(Error::Corrupt(m)) => assert!(m.contains("guildconf verify"), "{why}: {m}"),
        other => panic!("{why}: expected a refusal as corrupt data, got {other:?}"),
    }
    assert_eq!(entries(db).await, before, "{why}: nothing written");
}

/// Rewrites guild G's chain from `from_seq` on, consistently (each body
/// re-hashed, each `prev_hash` the new hash before it, the head moved onto
/// the new last hash), as the table owner with the triggers dropped. With
/// `strip`, the rewritten entries' signatures are removed too.
async fn rewrite_from(db: &TestDb, from_seq: u64, strip: bool) {
    let rows = db
        .rows(&format!(
            "SELECT body FROM audit_entries WHERE guild_id = {G} ORDER BY seq"
        ))
        .await;
    let mut prev: Option<String> = None;
    let mut sql = String::new();
    for row in rows {
        let mut body: guildconf::EntryBody = serde_json::from_str(&row[0]).expect("parses");
        if body.seq < from_seq {
            prev = Some(body.seal().expect("seals").entry_hash().to_owned());
            continue;
        }
        if body.seq == from_seq {
            body.summary = "nothing to see here".into();
        }
        if let Some(p) = &prev {
            body.prev_hash = p.clone();
        }
        let entry = body.clone().seal().expect("seals");
        let strip_sql = if strip {
            ", sig_alg = NULL, sig_key = NULL, sig_value = NULL"
        } else {
            ""
        };
        sql.push_str(&format!(
            "UPDATE audit_entries SET body = '{text}', entry_hash = '{h}', prev_hash = '{p}'{strip_sql} \
             WHERE guild_id = {G} AND seq = {s};\n\
             UPDATE guild_heads SET last_hash = '{h}' WHERE guild_id = {G} AND seq = {s};\n",
            text = entry.text().replace('\'', "''"),
            h = entry.entry_hash(),
            p = body.prev_hash,
            s = body.seq
        ));
        prev = Some(entry.entry_hash().to_owned());
    }
    db.exec(&sql)
        .await
        .expect("rewriting works without the triggers");
}

/// Someone with write access appends a correctly hashed entry through
/// guildconf itself, without the key: verify names it, and the bot's next
/// signed write refuses to vouch for it.
async fn an_entry_appended_without_the_key_is_caught(backend: Backend, name: &str) {
    let db = signed_chain(backend, name).await;
    db.service()
        .await
        .update(gid(G), set("features.forged", json!(true)), &mallory())
        .await
        .expect("the database takes an unsigned write");
    assert!(
        db.service().await.verify(None).await.expect("verify").ok,
        "the chain alone cannot tell"
    );
    let found = problems(&db, &trusted()).await;
    assert_caught(&found, 4, "signature", "appended without the key");
    assert_write_refused(&db, &bot(&db).await, "on an unsigned head").await;
}

/// The entries after a checkpoint, rewritten consistently (their signatures
/// left as they were, or stripped): the chain and the checkpoint's own seq
/// still look fine past the first rewritten entry, the signatures do not.
async fn post_checkpoint_entries_rewritten_consistently_are_caught(backend: Backend, name: &str) {
    for strip in [false, true] {
        let db = signed_chain(backend, &format!("{name}_{strip}")).await;
        let checkpoint = db
            .service()
            .await
            .checkpoint(Timestamp::parse_stored("2026-06-01T00:00:00.000000Z").expect("time"))
            .await
            .expect("checkpoint");
        let b = bot(&db).await;
        b.update(gid(G), set("features.c", json!(true)), &alice())
            .await
            .expect("v4");
        b.update(gid(G), set("features.d", json!(true)), &alice())
            .await
            .expect("v5");
        db.drop_triggers().await;
        rewrite_from(&db, 4, strip).await;
        let s = db.service().await;
        assert!(
            s.verify(None).await.expect("verify").ok,
            "the chain alone passes"
        );
        assert!(
            s.verify_checkpoint(&checkpoint).await.expect("verify").ok,
            "strip={strip}: the checkpoint only covers what existed when it was taken"
        );
        let found = problems(&db, &trusted()).await;
        assert_caught(&found, 4, "signature", &format!("rewritten, strip={strip}"));
    }
}

/// A purge entry forged through guildconf without the key (it removes the
/// oldest entries and records itself): caught like any other forged entry.
async fn a_forged_purge_entry_is_caught(backend: Backend, name: &str) {
    let db = signed_chain(backend, name).await;
    let before = Timestamp::parse_stored("2026-01-01T00:00:30.000000Z").expect("time");
    let done = db
        .service()
        .await
        .purge(before, Some(gid(G)), &mallory())
        .await
        .expect("the database takes an unsigned purge");
    assert_eq!(done.first().map(|p| p.through_seq), Some(2));
    assert!(
        db.service().await.verify(None).await.expect("verify").ok,
        "the chain alone accepts the purge"
    );
    let found = problems(&db, &trusted()).await;
    assert_caught(&found, 4, "signature", "forged purge");
}

/// An unsigned entry appended without the key, given the signature of the
/// entry before it (a valid signature, of another hash): caught.
async fn a_signature_copied_from_another_entry_is_caught(backend: Backend, name: &str) {
    let db = signed_chain(backend, name).await;
    db.service()
        .await
        .update(gid(G), set("features.forged", json!(true)), &mallory())
        .await
        .expect("unsigned write");
    db.drop_triggers().await;
    let copy = |col: &str| {
        format!("{col} = (SELECT {col} FROM audit_entries WHERE guild_id = {G} AND seq = 3)")
    };
    db.exec(&format!(
        "UPDATE audit_entries SET {}, {}, {} WHERE guild_id = {G} AND seq = 4",
        copy("sig_alg"),
        copy("sig_key"),
        copy("sig_value")
    ))
    .await
    .expect("copy the signature");
    let copied = db
        .rows(&format!(
            "SELECT sig_value FROM audit_entries WHERE guild_id = {G} AND seq IN (3, 4)"
        ))
        .await;
    assert_eq!(copied[0], copied[1], "the signature was copied");
    let found = problems(&db, &trusted()).await;
    assert_caught(&found, 4, "signature", "copied signature");
    assert_write_refused(&db, &bot(&db).await, "on a head with a copied signature").await;
}

/// The attacker signs with a key of their own (trusting the bot's, so their
/// own signing write builds on the bot's head): caught as an untrusted key.
async fn an_entry_signed_by_an_untrusted_key_is_caught(backend: Backend, name: &str) {
    let db = signed_chain(backend, name).await;
    let theirs = signer(
        &db,
        Signing::new(mallory_key()).trust(bot_key().verifying_key()),
    )
    .await;
    theirs
        .update(gid(G), set("features.forged", json!(true)), &mallory())
        .await
        .expect("signed with the attacker's key");
    let found = problems(&db, &trusted()).await;
    assert_caught(&found, 4, "signature", "untrusted key");
    assert_write_refused(&db, &bot(&db).await, "on a head by an untrusted key").await;
    // Trusting the attacker's key too makes it pass: trust is the keys given.
    let both = trusted().trusted_keys([mallory_key().verifying_key()]);
    let found = problems(&db, &both).await;
    assert_eq!(found, (vec![], vec![]), "with both keys trusted");
}

/// The hard case: history rewritten, then the bot writes a signed entry on
/// top. The bot refuses (its head's signature does not verify over the new
/// hash); and a bot told to adopt an unsigned head (the attacker stripped
/// the rewritten entries' signatures) does write on top, which verify still
/// catches, since every entry after the first signed one must be signed.
async fn a_rewrite_under_the_bots_next_signed_write_is_caught(backend: Backend, name: &str) {
    let db = signed_chain(backend, name).await;
    let b = bot(&db).await;
    db.drop_triggers().await;
    rewrite_from(&db, 2, false).await;
    assert_write_refused(&db, &b, "on a rewritten head").await;
    assert_write_refused(&db, &bot(&db).await, "a fresh bot on a rewritten head").await;
    assert_caught(
        &problems(&db, &trusted()).await,
        2,
        "signature",
        "rewritten",
    );

    let db = signed_chain(backend, &format!("{name}_adopt")).await;
    db.drop_triggers().await;
    rewrite_from(&db, 2, true).await;
    let adopting = signer(&db, Signing::new(bot_key()).adopt_unsigned(true)).await;
    adopting
        .update(gid(G), set("features.bot", json!(true)), &alice())
        .await
        .expect("adopt-unsigned builds on the stripped head");
    let found = problems(&db, &trusted().require_signed(true)).await;
    assert_caught(&found, 2, "signature", "bot wrote on a stripped rewrite");
}

/// Every signature stripped, then the chain rewritten: the chain is now
/// unsigned throughout, so the bot's next signed write is refused, and
/// `--require-signed` fails the guild (its head is unsigned). Verify with
/// trusted keys alone accepts it, as it accepts a chain never signed.
async fn a_guild_stripped_of_every_signature_and_rewritten_is_caught(backend: Backend, name: &str) {
    let db = signed_chain(backend, name).await;
    db.drop_triggers().await;
    db.exec(&format!(
        "UPDATE audit_entries SET sig_alg = NULL, sig_key = NULL, sig_value = NULL \
         WHERE guild_id = {G}"
    ))
    .await
    .expect("strip");
    rewrite_from(&db, 2, true).await;
    assert_write_refused(&db, &bot(&db).await, "on a stripped head").await;
    let found = problems(&db, &trusted()).await;
    assert_eq!(found, (vec![], vec![]), "without --require-signed");
    let found = problems(&db, &trusted().require_signed(true)).await;
    assert_caught(&found, 3, "signature", "stripped and rewritten");
}

/// A chain written before signing was turned on verifies as before; the bot
/// adopts its unsigned head once; from there every entry is signed, and the
/// whole chain verifies with and without keys. A signed chain never goes
/// back to unsigned (the first test above). Both backends export the same
/// bytes, and import and copy keep every signature byte for byte.
async fn a_chain_switches_from_unsigned_to_signed_and_verifies(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let old = db.service().await;
    old.create(gid(G), json!({}), &alice()).await.expect("v1");
    old.update(gid(G), set("features.a", json!(true)), &alice())
        .await
        .expect("v2");
    let report = old.verify(None).await.expect("verify");
    assert!(
        report.ok,
        "a chain written before signing verifies as before"
    );
    assert!(
        problems(&db, &trusted()).await == (vec![], vec![]),
        "and with a trusted key, since no entry is signed yet"
    );
    assert_write_refused(&db, &bot(&db).await, "without --adopt-unsigned").await;
    let adopting = signer(&db, Signing::new(bot_key()).adopt_unsigned(true)).await;
    adopting
        .update(gid(G), set("features.b", json!(true)), &alice())
        .await
        .expect("adopts the unsigned head once");
    let b = bot(&db).await;
    b.update(gid(G), set("features.c", json!(true)), &alice())
        .await
        .expect("builds on its own signed head");
    b.delete(gid(G), &alice())
        .await
        .expect("delete is signed too");
    let sigs = db
        .rows(&format!(
            "SELECT CAST(seq AS TEXT), COALESCE(sig_alg, '-') FROM audit_entries \
             WHERE guild_id = {G} ORDER BY seq"
        ))
        .await;
    let sigs: Vec<(&str, &str)> = sigs
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        sigs,
        vec![
            ("1", "-"),
            ("2", "-"),
            ("3", "ed25519"),
            ("4", "ed25519"),
            ("5", "ed25519")
        ]
    );
    let found = problems(&db, &trusted().require_signed(true)).await;
    assert_eq!(found, (vec![], vec![]), "a mixed chain verifies");
    let bytes = export(&db).await;
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert_eq!(
        text.matches("\"sig\":{\"alg\":\"ed25519\",\"key\":\"")
            .count(),
        3
    );
    // The export with snapshots carries the same signatures.
    let mut with_snapshots = Vec::new();
    db.service()
        .await
        .export(
            &ExportRequest {
                with_snapshots: true,
                ..Default::default()
            },
            &mut with_snapshots,
        )
        .await
        .expect("export");
    let report = guildconf::verify_export_with(
        Cursor::new(with_snapshots.clone()),
        &trusted().require_signed(true),
    )
    .expect("reads");
    assert!(report.ok, "{report:?}");
    // Import into, and copy to, every backend: every signature byte for byte.
    for &to in BACKENDS {
        let dest = TestDb::new(to, &format!("{name}_to_{}", to.name())).await;
        let store = dest.store().await;
        guildconf::import(
            store.as_ref(),
            || Ok(Cursor::new(with_snapshots.clone())),
            |_| {},
        )
        .await
        .expect("imports");
        assert_eq!(export(&dest).await, bytes, "import into {}", to.name());
        let copy = TestDb::new(to, &format!("{name}_copy_{}", to.name())).await;
        let copy_store = copy.store().await;
        guildconf::copy(db.store().await, copy_store.as_ref(), |_| {})
            .await
            .expect("copies");
        assert_eq!(export(&copy).await, bytes, "copy to {}", to.name());
        let sig_columns = format!(
            "SELECT CAST(seq AS TEXT), sig_alg, sig_key, sig_value FROM audit_entries \
             WHERE guild_id = {G} AND sig_value IS NOT NULL ORDER BY seq"
        );
        assert_eq!(
            copy.rows(&sig_columns).await,
            db.rows(&sig_columns).await,
            "the stored columns are the same"
        );
    }
}

/// Purge entries are signed like every other write; after a key rotation,
/// the new key builds on the old key's head when told to trust it, and
/// verify accepts the chain with both keys given.
async fn signed_purge_entries_and_rotated_keys_verify(backend: Backend, name: &str) {
    let db = signed_chain(backend, name).await;
    let before = Timestamp::parse_stored("2026-01-01T00:00:30.000000Z").expect("time");
    let done = bot(&db)
        .await
        .purge(before, Some(gid(G)), &alice())
        .await
        .expect("purge");
    assert_eq!(done.first().map(|p| p.through_seq), Some(2));
    let found = problems(&db, &trusted().require_signed(true)).await;
    assert_eq!(found, (vec![], vec![]), "a signed purge verifies");
    let new_key = SigningKey::from_bytes(&[8; 32]);
    assert_write_refused(
        &db,
        &signer(&db, Signing::new(new_key.clone())).await,
        "a new key that does not trust the old one",
    )
    .await;
    signer(
        &db,
        Signing::new(new_key.clone()).trust(bot_key().verifying_key()),
    )
    .await
    .update(gid(G), set("features.rotated", json!(true)), &alice())
    .await
    .expect("the new key builds on the old key's head");
    let found = problems(&db, &trusted().require_signed(true)).await;
    assert_caught(&found, 5, "signature", "the new key is not trusted yet");
    let both = trusted()
        .trusted_keys([new_key.verifying_key()])
        .require_signed(true);
    assert_eq!(
        problems(&db, &both).await,
        (vec![], vec![]),
        "both keys trusted"
    );
}
