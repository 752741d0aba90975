//! The one place where SQLite errors become [`StoreError`]s.
//!
//! Messages name tables, constraints and SQLite result codes, never row
//! values: a secret in a document must not leak through an error message.

use guildconf_ports::StoreError;
use rusqlite::ffi;
use rusqlite::ErrorCode;

/// Maps a rusqlite error to the port's error.
///
/// - a unique or primary-key violation is a [`StoreError::Conflict`] (a
///   concurrent writer took the seq, version or request id first);
/// - `SQLITE_BUSY` / `SQLITE_LOCKED` is a [`StoreError::Storage`] saying the
///   database is busy (the busy timeout ran out);
/// - everything else is [`StoreError::Storage`].
///
/// SQLite's own message is kept for SQLite failures: it names tables, columns,
/// constraints or a trigger's `RAISE` text, but never bound values. For the
/// other rusqlite variants, whose `Display` may quote data (an out-of-range
/// integer, a conversion error), only a fixed description is used.
pub(crate) fn db_err(error: rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => {
            let extended = code.extended_code;
            let detail = message.unwrap_or_else(|| code.to_string());
            match code.code {
                // The chain guards (migration 0003): a head and its chain
                // that disagree are not a race to retry.
                ErrorCode::ConstraintViolation
                    if extended == ffi::SQLITE_CONSTRAINT_TRIGGER
                        && (detail.contains("must extend its guild")
                            || detail.contains("a head m")) =>
                {
                    StoreError::Corrupt(format!(
                        "{detail}: the guild's head and its chain disagree; run guildconf verify"
                    ))
                }
                // An entry already stored at the next seq while the head
                // was where the write expected it: a row past the head.
                ErrorCode::ConstraintViolation
                    if extended == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                        && (detail.contains("audit_entries.")
                            || detail.contains("guild_snapshots.")) =>
                {
                    StoreError::Corrupt(
                        "a row is stored past the guild's head; run guildconf verify".into(),
                    )
                }
                ErrorCode::ConstraintViolation
                    if extended == ffi::SQLITE_CONSTRAINT_UNIQUE
                        || extended == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    StoreError::Conflict(format!("{detail} (sqlite error {extended})"))
                }
                // A full disk shows as SQLITE_FULL, or, when the shared
                // memory file cannot grow, as SQLITE_IOERR_SHMSIZE.
                ErrorCode::DiskFull => disk_full(extended),
                _ if extended == ffi::SQLITE_IOERR_SHMSIZE => disk_full(extended),
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Storage(format!(
                    "database is busy (another writer holds the lock; sqlite error {extended}: {detail})"
                )),
                _ => StoreError::Storage(format!("{detail} (sqlite error {extended})")),
            }
        }
        rusqlite::Error::QueryReturnedNoRows => {
            StoreError::Storage("query returned no rows".into())
        }
        rusqlite::Error::FromSqlConversionFailure(column, ty, _)
        | rusqlite::Error::InvalidColumnType(column, _, ty) => StoreError::Storage(format!(
            "column {column} holds a value of unexpected type {ty}"
        )),
        rusqlite::Error::IntegralValueOutOfRange(column, _) => {
            StoreError::Storage(format!("column {column} holds an integer out of range"))
        }
        rusqlite::Error::Utf8Error(_) => StoreError::Storage("stored text is not UTF-8".into()),
        rusqlite::Error::InvalidPath(_) => StoreError::Storage("invalid database path".into()),
        rusqlite::Error::ToSqlConversionFailure(_) => {
            StoreError::Storage("a value could not be converted for SQLite".into())
        }
        // The remaining variants are programming errors (bad SQL text, wrong
        // column index or name) whose messages hold no row data.
        other => StoreError::Storage(format!("sqlite: {other}")),
    }
}

fn disk_full(extended: i32) -> StoreError {
    StoreError::Storage(format!(
        "disk full: the database could not grow (sqlite error {extended}); nothing was written"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(message.into()))
    }

    #[test]
    fn maps_codes() {
        // An entry or snapshot already at the next position while the head
        // check passed is a row past the head: corrupt, not a race.
        assert!(matches!(
            db_err(failure(
                ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
                "UNIQUE constraint failed: audit_entries.guild_id, audit_entries.seq"
            )),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            db_err(failure(
                ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
                "UNIQUE constraint failed: audit_requests.guild_id, audit_requests.request_id"
            )),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            db_err(failure(ffi::SQLITE_CONSTRAINT_UNIQUE, "x")),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            db_err(failure(
                ffi::SQLITE_CONSTRAINT_TRIGGER,
                "guildconf: t is append-only"
            )),
            StoreError::Storage(_)
        ));
        for code in [ffi::SQLITE_FULL, ffi::SQLITE_IOERR_SHMSIZE] {
            match db_err(failure(code, "database or disk is full")) {
                StoreError::Storage(m) => assert!(m.starts_with("disk full"), "{m}"),
                other => panic!("unexpected {other:?}"),
            }
        }
        match db_err(failure(ffi::SQLITE_BUSY, "database is locked")) {
            StoreError::Storage(m) => assert!(m.starts_with("database is busy"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
        match db_err(failure(ffi::SQLITE_LOCKED, "database table is locked")) {
            StoreError::Storage(m) => assert!(m.starts_with("database is busy"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
        match db_err(rusqlite::Error::IntegralValueOutOfRange(2, 123_456_789)) {
            StoreError::Storage(m) => assert!(!m.contains("123456789"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
