//! Embedded schema migrations, tracked with `PRAGMA user_version`.
//!
//! Migration `i` (counting from 1) takes a database from `user_version = i - 1`
//! to `user_version = i`. Each runs in its own `BEGIN IMMEDIATE` transaction
//! that re-reads the version first, so two processes opening the same new file
//! at once apply each migration exactly once. Migrations are append-only: a
//! shipped file is never edited, a change is a new file.

use guildconf_ports::{StoreError, StoreResult};
use rusqlite::{Connection, TransactionBehavior};

use crate::error::db_err;

/// The migrations, in order. Index `i` produces schema version `i + 1`.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../migrations/0001_initial.sql"),
    ),
    (
        "0002_purge_gate",
        include_str!("../migrations/0002_purge_gate.sql"),
    ),
    (
        "0003_chain_guards",
        include_str!("../migrations/0003_chain_guards.sql"),
    ),
    (
        "0004_signatures",
        include_str!("../migrations/0004_signatures.sql"),
    ),
    (
        "0005_event_filters",
        include_str!("../migrations/0005_event_filters.sql"),
    ),
    ("0006_tokens", include_str!("../migrations/0006_tokens.sql")),
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = 6;

// The constant must follow the migration list.
const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION as usize);

fn user_version(conn: &Connection) -> StoreResult<u32> {
    let raw: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(db_err)?;
    u32::try_from(raw)
        .map_err(|_| StoreError::Corrupt("the database's schema version is out of range".into()))
}

/// Refuses a database whose schema is not exactly [`SCHEMA_VERSION`] (for
/// opening without migrating).
pub(crate) fn check_current(conn: &Connection) -> StoreResult<()> {
    let version = user_version(conn)?;
    match version.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(StoreError::Storage(format!(
            "the database's schema is at version {version}, this guildconf needs version \
             {SCHEMA_VERSION}: run `guildconf migrate` (as a role that may change the schema)"
        ))),
        std::cmp::Ordering::Greater => Err(StoreError::Storage(format!(
            "the database's schema is at version {version}, newer than this guildconf knows \
             ({SCHEMA_VERSION}): upgrade guildconf"
        ))),
    }
}

/// Brings the database up to [`SCHEMA_VERSION`].
///
/// # Errors
/// [`StoreError::Storage`] when a migration fails (that migration is rolled
/// back; earlier ones stay) or the database was made by a newer guildconf.
pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    // The common case, an up-to-date database, needs no write lock, so opening
    // does not queue behind another process's long write.
    if user_version(conn)? == SCHEMA_VERSION {
        return Ok(());
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let target = u32::try_from(index + 1)
            .map_err(|_| StoreError::Storage("too many migrations".into()))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let current = user_version(&tx)?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::Storage(format!(
                "the database has schema version {current}, newer than the {SCHEMA_VERSION} this guildconf supports"
            )));
        }
        if current >= target {
            continue;
        }
        tx.execute_batch(sql).map_err(db_err)?;
        // PRAGMA does not take bound parameters; `target` is our own number.
        tx.execute_batch(&format!("PRAGMA user_version = {target}"))
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        tracing::info!(
            migration = name,
            version = target,
            "applied sqlite migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_in_memory_and_is_idempotent() -> StoreResult<()> {
        let mut conn = Connection::open_in_memory().map_err(db_err)?;
        migrate(&mut conn)?;
        assert_eq!(user_version(&conn)?, SCHEMA_VERSION);
        migrate(&mut conn)?;
        assert_eq!(user_version(&conn)?, SCHEMA_VERSION);
        Ok(())
    }

    #[test]
    fn refuses_newer_schema() -> StoreResult<()> {
        let mut conn = Connection::open_in_memory().map_err(db_err)?;
        conn.execute_batch("PRAGMA user_version = 99")
            .map_err(db_err)?;
        assert!(matches!(migrate(&mut conn), Err(StoreError::Storage(_))));
        Ok(())
    }
}
