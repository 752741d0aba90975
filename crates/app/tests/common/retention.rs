//! What the retention loop's tests on mocked stores share: a fixed clock
//! and a store that fails once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use guildconf::{GuildId, Timestamp};
use guildconf_ports::{Clock, MockConfigStore, StoreError};

/// An hour, a retention interval.
pub const HOUR: Duration = Duration::from_secs(60 * 60);
/// A day, a kept age.
pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Always 2026-03-01T12:00:00Z.
#[derive(Debug)]
pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }
}

/// The guild the flaky store lists.
pub fn guild() -> GuildId {
    GuildId::parse("123456789012345678").expect("valid id")
}

/// A store whose guild list fails on the first run and lists one guild
/// afterwards, with nothing to purge; the cut-offs it was asked about are
/// kept in the returned list.
pub fn flaky_store() -> (MockConfigStore, Arc<Mutex<Vec<Timestamp>>>) {
    let mut store = MockConfigStore::new();
    let mut calls = 0;
    store.expect_guild_ids().returning(move |_, _| {
        calls += 1;
        if calls == 1 {
            Err(StoreError::Storage("the database is down".into()))
        } else {
            Ok(vec![guild()])
        }
    });
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&asked);
    store.expect_purge_candidate().returning(move |_, before| {
        seen.lock().expect("not poisoned").push(before);
        Ok(None)
    });
    (store, asked)
}
