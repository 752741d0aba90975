//! API tokens (issue 15), on both backends: a token authenticates until it
//! is revoked; creating and revoking it are events in the chain of every
//! guild it names, which verifies; only the secret's SHA-256 is stored;
//! another process's revocation is seen within the documented bound; bad
//! input stores nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use guildconf::{
    ConfigService, Error, ExportRequest, IssuedToken, NewToken, TokenRole, TOKEN_RECHECK_AFTER,
};
use guildconf_tests::{contract, Backend, StepClock, TestDb};
use serde_json::{json, Value};

use super::events::{alice, gid};

contract! {
    a_token_authenticates_until_it_is_revoked,
    another_process_revocation_is_seen_within_the_recheck_bound,
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
