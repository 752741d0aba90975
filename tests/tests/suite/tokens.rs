//! API tokens (issue 15), on both backends: a token authenticates until it
//! is revoked; creating and revoking it are events in the chain of every
//! guild it names, in one transaction with the token row, which verifies
//! (signed, when the service signs) and exports the same bytes from every
//! backend; only the secret's SHA-256 is stored; the database refuses any
//! change to a token but its revocation; another process's revocation is
//! seen within the documented bound. (Bad input: `cli::tokens`.)

use std::io::Cursor;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use guildconf::{
    CacheOptions, ConfigService, Error, ExportRequest, FieldEdit, IssuedToken, NewToken,
    OpenOptions, ReadCache, Signing, TokenRole, VerifyOptions, TOKEN_RECHECK_AFTER,
};
use guildconf_domain::ed25519_dalek::SigningKey;
use guildconf_ports::{StoreError, WriteStep};
use guildconf_tests::{contract, Backend, StepClock, StepEntropy, TestDb, BACKENDS};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::events::{alice, gid};

contract! {
    a_token_authenticates_until_it_is_revoked,
    another_process_revocation_is_seen_within_the_recheck_bound,
    only_the_secrets_hash_is_stored,
    a_token_row_takes_no_change_but_its_revocation,
    a_failed_event_insert_stores_no_token,
    token_writes_retry_when_a_guild_moves,
    a_signing_service_signs_token_events,
    tokens_through_the_read_cache_announce_their_guilds,
    a_refusal_is_recorded_whatever_keys_the_bot_registered,
}

/// A configured guild, and one that has no head before its token event.
const G1: u64 = 5;
const G2: u64 = 9;

fn editor(guilds: &[u64]) -> NewToken {
    NewToken {
        role: TokenRole::Editor,
        guilds: guilds.iter().copied().map(gid).collect(),
        label: "dashboard".into(),
        human_id: None,
    }
}

/// Every exported entry of `guild`, as JSON.
async fn chain(s: &ConfigService, guild: u64) -> Vec<Value> {
    let mut out = Vec::new();
    s.export(&ExportRequest::default(), &mut out)
        .await
        .expect("export");
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .filter(|e| e["guild_id"] == json!(guild.to_string()))
        .collect()
}

/// The token events of `guild`'s chain: (operation, target id, data).
async fn token_events(s: &ConfigService, guild: u64) -> Vec<(String, String, Value)> {
    chain(s, guild)
        .await
        .into_iter()
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("token."))
        })
        .map(|e| {
            (
                e["operation"].as_str().expect("a string").to_owned(),
                e["detail"]["target"]["id"]
                    .as_str()
                    .expect("a string")
                    .to_owned(),
                e["detail"]["data"].clone(),
            )
        })
        .collect()
}

async fn a_token_authenticates_until_it_is_revoked(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    s.create(gid(G1), json!({}), &alice())
        .await
        .expect("create");
    let IssuedToken { secret, info } = s
        .create_token(editor(&[G2, G1, G2]), &alice())
        .await
        .expect("a token");
    assert!(secret.starts_with("gct_") && secret.len() == 47, "{secret}");
    assert_eq!(info.guilds, [gid(G1), gid(G2)], "sorted, without repeats");
    assert_eq!((info.role, info.revoked_at), (TokenRole::Editor, None));
    assert_eq!(
        s.authenticate(&secret).await.expect("read"),
        Some(info.clone())
    );
    // Another secret of the right shape, one character off, and malformed
    // ones authenticate nothing.
    let last = secret.chars().last().expect("a character");
    let off = format!(
        "{}{}",
        &secret[..secret.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    for bad in [
        off.as_str(),
        "",
        "gct_",
        &secret[4..],
        &format!("{secret}A"),
    ] {
        assert_eq!(s.authenticate(bad).await.expect("read"), None, "{bad:?}");
    }
    assert_eq!(s.tokens().await.expect("list"), vec![info.clone()]);

    let data = json!({"role": "editor", "guilds": [G1.to_string(), G2.to_string()]});
    for guild in [G1, G2] {
        assert_eq!(
            token_events(&s, guild).await,
            [("token.created".to_owned(), info.id.clone(), data.clone())],
            "guild {guild}"
        );
    }
    assert!(s.verify(None).await.expect("verify").ok);

    let revoked = s.revoke_token(&info.id, &alice()).await.expect("revoked");
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        s.authenticate(&secret).await.expect("read"),
        None,
        "this process's own revocation takes effect at once"
    );
    assert_eq!(s.tokens().await.expect("list"), vec![revoked.clone()]);
    for guild in [G1, G2] {
        let events = token_events(&s, guild).await;
        assert_eq!(
            events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["token.created", "token.revoked"]
        );
        assert_eq!(events[1].2, data);
    }
    assert!(s.verify(None).await.expect("verify").ok);

    assert!(matches!(
        s.revoke_token(&info.id, &alice()).await,
        Err(Error::Conflict(m)) if m.contains("already revoked")
    ));
    assert!(matches!(
        s.revoke_token("ffffffffffffffff", &alice()).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.revoke_token("not-an-id", &alice()).await,
        Err(Error::Invalid(v)) if v.0[0].path == "/id"
    ));
    assert_eq!(token_events(&s, G1).await.len(), 2, "no refusal wrote");
}

/// Two processes' worth of services, each on its own store: a token one
/// has authenticated stops authenticating there within
/// `TOKEN_RECHECK_AFTER` of the other revoking it.
async fn another_process_revocation_is_seen_within_the_recheck_bound(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let here = db.service().await;
    let there = ConfigService::new(db.store().await).with_clock(Arc::new(StepClock::new()));
    let IssuedToken { secret, info } = here
        .create_token(editor(&[]), &alice())
        .await
        .expect("an unscoped token");
    assert!(info.guilds.is_empty());
    assert!(here.authenticate(&secret).await.expect("read").is_some());
    there
        .revoke_token(&info.id, &alice())
        .await
        .expect("revoked");
    let revoked = Instant::now();
    loop {
        if here.authenticate(&secret).await.expect("read").is_none() {
            break;
        }
        assert!(
            revoked.elapsed() < TOKEN_RECHECK_AFTER + Duration::from_secs(1),
            "still authenticating {:?} after another process revoked it",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every stored text of the database, as one string: each table's rows, all
/// columns as text.
async fn everything_stored(db: &TestDb) -> String {
    let mut all = String::new();
    for guild in [G1, G2] {
        all.push_str(&format!("{:?}", db.dump(&guild.to_string()).await));
    }
    let tokens = db
        .rows(
            "SELECT id, secret_sha256, role, guilds, label, COALESCE(human_id, ''), created_at, \
             COALESCE(revoked_at, '') FROM api_tokens",
        )
        .await;
    all.push_str(&format!("{tokens:?}"));
    all
}

async fn only_the_secrets_hash_is_stored(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    s.create(gid(G1), json!({}), &alice())
        .await
        .expect("create");
    let new = NewToken {
        role: TokenRole::Auditor,
        guilds: vec![gid(G1)],
        label: "audit bot".into(),
        human_id: Some("80351110224678912".into()),
    };
    let IssuedToken { secret, info } = s.create_token(new, &alice()).await.expect("a token");
    let random = &secret[4..];
    let hash = hex(&Sha256::digest(secret.as_bytes()));
    let stored = db
        .rows(&format!(
            "SELECT secret_sha256, role, guilds, label, human_id FROM api_tokens \
             WHERE id = '{}'",
            info.id
        ))
        .await;
    assert_eq!(
        stored,
        [vec![
            hash.clone(),
            "auditor".to_owned(),
            format!("[\"{G1}\"]"),
            "audit bot".to_owned(),
            "80351110224678912".to_owned()
        ]]
    );
    let everything = everything_stored(&db).await;
    assert!(
        !everything.contains(random),
        "a stored column holds the secret"
    );
    let mut export = Vec::new();
    s.export(&ExportRequest::default(), &mut export)
        .await
        .expect("export");
    let export = String::from_utf8(export).expect("utf-8");
    assert!(!export.contains(random) && !export.contains(&hash));
    // On SQLite, the very bytes of the database and its write-ahead log.
    if let Some(path) = db.url().strip_prefix("sqlite://") {
        for file in [path.to_owned(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(random.len()).any(|w| w == random.as_bytes()),
                "{file} holds the secret"
            );
            assert!(!bytes.is_empty() || file.ends_with("-wal"), "{file} read");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The table's triggers, as its owner would meet them with plain SQL: no
/// column but `revoked_at` changes, a revocation is neither undone nor
/// repeated, no row is deleted.
async fn a_token_row_takes_no_change_but_its_revocation(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    let live = s
        .create_token(editor(&[G1]), &alice())
        .await
        .expect("a token")
        .info;
    let gone = s
        .create_token(editor(&[]), &alice())
        .await
        .expect("a token")
        .info;
    s.revoke_token(&gone.id, &alice()).await.expect("revoked");
    let before = everything_stored(&db).await;
    let refused = |sql: String, message: &'static str| {
        let db = &db;
        async move {
            let err = db.exec(&sql).await.expect_err(&sql);
            assert!(err.contains(message), "{sql}: {err}");
        }
    };
    let revoke_only = "guildconf: a token may only be revoked, once";
    for set in [
        "role = 'auditor'",
        "guilds = '[]'",
        "label = 'x'",
        "human_id = '1'",
        "created_at = '2020-01-01T00:00:00.000000Z'",
        "id = 'ffffffffffffffff'",
    ] {
        refused(
            format!("UPDATE api_tokens SET {set} WHERE id = '{}'", live.id),
            revoke_only,
        )
        .await;
    }
    refused(
        format!(
            "UPDATE api_tokens SET secret_sha256 = '{}' WHERE id = '{}'",
            "0".repeat(64),
            live.id
        ),
        revoke_only,
    )
    .await;
    refused(
        format!(
            "UPDATE api_tokens SET revoked_at = NULL WHERE id = '{}'",
            gone.id
        ),
        revoke_only,
    )
    .await;
    refused(
        format!(
            "UPDATE api_tokens SET revoked_at = '2099-01-01T00:00:00.000000Z' WHERE id = '{}'",
            gone.id
        ),
        revoke_only,
    )
    .await;
    refused(
        "DELETE FROM api_tokens".into(),
        "guildconf: api_tokens keeps every token",
    )
    .await;
    assert_eq!(everything_stored(&db).await, before, "nothing changed");
}

/// The token row and its guilds' events are one transaction: when the
/// second guild's event cannot be inserted, neither the token nor the first
/// guild's event is stored.
async fn a_failed_event_insert_stores_no_token(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    db.service()
        .await
        .create(gid(G1), json!({}), &alice())
        .await
        .expect("create");
    let before = everything_stored(&db).await;
    let inserts = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&inserts);
    let store = db
        .store_with_fault_hook(Arc::new(move |step| {
            if step == WriteStep::EntryInsert && seen.fetch_add(1, Ordering::SeqCst) == 1 {
                return Err(StoreError::Storage("injected: second event insert".into()));
            }
            Ok(())
        }))
        .await;
    let s = ConfigService::new(store)
        .with_clock(Arc::new(StepClock::new()))
        .with_entropy(Arc::new(StepEntropy::default()));
    match s.create_token(editor(&[G1, G2]), &alice()).await {
        Err(Error::Storage(m)) if m.contains("injected") => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        inserts.load(Ordering::SeqCst),
        2,
        "the first event was inserted"
    );
    assert_eq!(everything_stored(&db).await, before, "and rolled back");
    assert!(s.tokens().await.expect("list").is_empty());
    assert!(s.verify(None).await.expect("verify").ok);
}

/// Config writes race a token write on the same guild: every write lands,
/// the token write is recomputed on the moved head, and the chain verifies.
async fn token_writes_retry_when_a_guild_moves(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db.service().await;
    s.create(gid(G1), json!({}), &alice())
        .await
        .expect("create");
    let mut writers = Vec::new();
    for n in 0..8 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            let edit =
                FieldEdit::new().set(format!("/features/f{n}").parse().expect("a path"), true);
            s.update(gid(G1), edit, &alice()).await.map(|_| ())
        }));
    }
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let s = s.clone();
        tokens.push(tokio::spawn(async move {
            s.create_token(editor(&[G1, G2]), &alice())
                .await
                .map(|_| ())
        }));
    }
    for task in writers.into_iter().chain(tokens) {
        task.await.expect("joined").expect("every write lands");
    }
    assert_eq!(s.tokens().await.expect("list").len(), 3);
    assert_eq!(token_events(&s, G1).await.len(), 3);
    assert_eq!(token_events(&s, G2).await.len(), 3);
    assert_eq!(db.count("audit_entries", &G1.to_string()).await, 1 + 8 + 3);
    assert!(s.verify(None).await.expect("verify").ok);
}

/// With a signing key, a token's events are signed like every other entry,
/// so a verify that requires signatures passes.
async fn a_signing_service_signs_token_events(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let key = SigningKey::from_bytes(&[7; 32]);
    let store = guildconf::open(
        db.url(),
        OpenOptions::new()
            .create_if_missing(true)
            .signing(Signing::new(key.clone())),
    )
    .await
    .expect("opens");
    let s = ConfigService::new(store).with_clock(Arc::new(StepClock::new()));
    s.create(gid(G1), json!({}), &alice())
        .await
        .expect("create");
    let info = s
        .create_token(editor(&[G1, G2]), &alice())
        .await
        .expect("a token")
        .info;
    s.revoke_token(&info.id, &alice()).await.expect("revoked");
    let unsigned = db
        .rows("SELECT CAST(seq AS TEXT) FROM audit_entries WHERE sig_value IS NULL")
        .await;
    assert!(unsigned.is_empty(), "unsigned entries: {unsigned:?}");
    let options = VerifyOptions::new()
        .trusted_keys([key.verifying_key()])
        .require_signed(true);
    assert!(s.verify_with(None, &options).await.expect("verify").ok);
}

/// The changes announced so far, as (guild, seq), sorted. Read without
/// waiting: a write through the cache's service announces before it
/// returns, not a poll of the change feed later.
fn announced(
    changes: &mut tokio::sync::broadcast::Receiver<guildconf::ConfigChanged>,
) -> Vec<(guildconf::GuildId, u64)> {
    let mut seen = Vec::new();
    while let Ok(change) = changes.try_recv() {
        seen.push((change.guild_id, change.seq));
    }
    seen.sort();
    seen
}

/// Token events move their guilds' heads; through the read cache's service
/// each moved guild is announced as soon as the write commits (the
/// write-through store wraps token writes as it wraps config writes).
async fn tokens_through_the_read_cache_announce_their_guilds(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let base = db.service().await;
    let cache = ReadCache::start(&base, CacheOptions::default())
        .await
        .expect("the cache starts");
    let s = cache.service();
    let mut changes = cache.subscribe();
    let info = s
        .create_token(editor(&[G1, G2]), &alice())
        .await
        .expect("a token")
        .info;
    assert_eq!(announced(&mut changes), [(gid(G1), 1), (gid(G2), 1)]);
    s.revoke_token(&info.id, &alice()).await.expect("revoked");
    assert_eq!(announced(&mut changes), [(gid(G1), 2), (gid(G2), 2)]);
}

/// The same token story exports the same bytes from every backend, and the
/// export imports into every backend and verifies there. Import carries
/// chains, not tokens: the destination holds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_events_export_the_same_bytes_everywhere() {
    let mut exports = Vec::new();
    for &backend in BACKENDS {
        let db = TestDb::new(backend, &format!("tokens_src_{}", backend.name())).await;
        let s = db.service().await;
        s.create(gid(G1), json!({}), &alice())
            .await
            .expect("create");
        let a = s
            .create_token(editor(&[G1, G2]), &alice())
            .await
            .expect("a token");
        s.create_token(editor(&[G2]), &alice())
            .await
            .expect("another");
        let edit = FieldEdit::new().set("features.a".parse().expect("path"), true);
        s.update(gid(G1), edit, &alice()).await.expect("update");
        s.revoke_token(&a.info.id, &alice()).await.expect("revoked");
        let mut out = Vec::new();
        s.export(&ExportRequest::default(), &mut out)
            .await
            .expect("export");
        exports.push(out);
    }
    assert!(
        exports.windows(2).all(|w| w[0] == w[1]),
        "every backend exports the same bytes"
    );
    let bytes = exports[0].clone();
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert_eq!(text.matches(r#""operation":"token.created""#).count(), 3);
    assert_eq!(text.matches(r#""operation":"token.revoked""#).count(), 2);
    for &to in BACKENDS {
        let dest = TestDb::new(to, &format!("tokens_imp_{}", to.name())).await;
        let store = dest.store().await;
        let copy = bytes.clone();
        guildconf::import(
            store.as_ref(),
            move || Ok(Cursor::new(copy.clone())),
            |_| {},
        )
        .await
        .expect("an export with token events imports");
        let s = dest.service().await;
        assert!(s.verify(None).await.expect("verify").ok);
        assert!(s.tokens().await.expect("list").is_empty());
        let mut again = Vec::new();
        s.export(&ExportRequest::default(), &mut again)
            .await
            .expect("export");
        assert_eq!(again, bytes);
    }
}

/// A bot that registers no action keys (or its own `permission.denied`)
/// still gets every refusal of a token recorded, in the fixed shape: the
/// refusal is checked against the shipped registry, not the bot's.
async fn a_refusal_is_recorded_whatever_keys_the_bot_registered(backend: Backend, name: &str) {
    let db = TestDb::new(backend, name).await;
    let s = db
        .service()
        .await
        .with_actions(guildconf::ActionRegistry::empty());
    let IssuedToken { info, .. } = s
        .create_token(editor(&[G1]), &alice())
        .await
        .expect("a token");
    let meta = guildconf::WriteMeta::new(info.actor().expect("the token's actor"));
    s.record_denial(gid(G2), &info, guildconf::Permission::Export, &meta)
        .await
        .expect("the refusal is recorded");
    let entries = chain(&s, G2).await;
    let last = entries.last().expect("an entry");
    assert_eq!(last["operation"], "permission.denied");
    assert_eq!(last["detail"]["outcome"], "blocked");
    assert_eq!(last["detail"]["target"]["id"], json!(info.id));
    assert_eq!(last["detail"]["data"]["permission"], "audit.export");
    assert!(s.verify(Some(gid(G2))).await.expect("verify").ok);
}
