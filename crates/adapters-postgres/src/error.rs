//! The one place sqlx errors become [`StoreError`]s.
//!
//! Messages never carry PostgreSQL's DETAIL (which quotes row values) nor any
//! other row data: a secret must not leak through an error message.

use guildconf_ports::StoreError;
use sqlx::migrate::MigrateError;

/// SQLSTATE classes whose primary message may quote the offending input
/// (such as `invalid input syntax for type bigint: "…"`); only the code is
/// reported for them.
const DATA_EXCEPTION_CLASS: &str = "22";

/// Maps a sqlx error to a store error.
///
/// - unique violation (`23505`) → [`StoreError::Conflict`] naming the
///   constraint only;
/// - serialization failure (`40001`) and deadlock (`40P01`) → `Conflict`;
/// - connection, pool and I/O failures → `Storage("database unreachable …")`;
/// - anything else → `Storage` with the SQLSTATE and the primary message.
pub(crate) fn map_sqlx(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // The chain guards (migration 0004): a head and its chain
                // that disagree are not a race to retry.
                "GC001" => StoreError::Corrupt(format!(
                    "{}: the guild's head and its chain disagree; run guildconf verify",
                    db.message()
                )),
                // An entry already stored at the next seq while the head was
                // where the write expected it: a row past the head.
                "23505"
                    if matches!(
                        db.constraint(),
                        Some("audit_entries_pkey" | "guild_snapshots_pkey")
                    ) =>
                {
                    StoreError::Corrupt(
                        "a row is stored past the guild's head; run guildconf verify".into(),
                    )
                }
                "23505" => StoreError::Conflict(format!(
                    "unique constraint {} is taken",
                    db.constraint().unwrap_or("(unnamed)")
                )),
                "40001" => StoreError::Conflict("serialization failure, try again".into()),
                "40P01" => StoreError::Conflict("deadlock detected, try again".into()),
                // connection exceptions, operator intervention (shutdown),
                // insufficient resources (too many connections)
                c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => {
                    StoreError::Storage(format!("database unreachable (SQLSTATE {c})"))
                }
                c if c.starts_with(DATA_EXCEPTION_CLASS) => {
                    StoreError::Storage(format!("database error (SQLSTATE {c}): invalid data"))
                }
                c => {
                    StoreError::Storage(format!("database error (SQLSTATE {c}): {}", db.message()))
                }
            }
        }
        sqlx::Error::Io(e) => StoreError::Storage(format!("database unreachable: {e}")),
        sqlx::Error::Tls(_) => StoreError::Storage("database unreachable: TLS failure".into()),
        sqlx::Error::PoolTimedOut => {
            StoreError::Storage("database unreachable: timed out waiting for a connection".into())
        }
        sqlx::Error::PoolClosed => {
            StoreError::Storage("database unreachable: the connection pool is closed".into())
        }
        sqlx::Error::WorkerCrashed => {
            StoreError::Storage("database unreachable: the connection worker crashed".into())
        }
        sqlx::Error::Protocol(_) => {
            StoreError::Storage("database unreachable: protocol error".into())
        }
        // The URL may hold a password: never echo it.
        sqlx::Error::Configuration(_) => {
            StoreError::Storage("invalid PostgreSQL connection settings".into())
        }
        sqlx::Error::ColumnDecode { index, .. } => {
            StoreError::Storage(format!("cannot decode stored column {index}"))
        }
        sqlx::Error::Decode(_) => StoreError::Storage("cannot decode a stored value".into()),
        sqlx::Error::Encode(_) => StoreError::Storage("cannot encode a value".into()),
        sqlx::Error::RowNotFound => StoreError::Storage("expected row not found".into()),
        sqlx::Error::ColumnNotFound(name) => {
            StoreError::Storage(format!("column {name} not found"))
        }
        sqlx::Error::Migrate(e) => map_migrate(*e),
        other => StoreError::Storage(format!("database error: {}", kind_name(&other))),
    }
}

/// Maps a migration failure.
pub(crate) fn map_migrate(error: MigrateError) -> StoreError {
    match error {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => match map_sqlx(e) {
            StoreError::Storage(m) | StoreError::Conflict(m) | StoreError::Corrupt(m) => {
                StoreError::Storage(format!("migration failed: {m}"))
            }
        },
        // The remaining variants name versions only.
        other => StoreError::Storage(format!("migration failed: {other}")),
    }
}

fn kind_name(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::InvalidArgument(_) => "invalid argument",
        sqlx::Error::TypeNotFound { .. } => "type not found",
        sqlx::Error::ColumnIndexOutOfBounds { .. } => "column index out of bounds",
        sqlx::Error::BeginFailed => "could not begin a transaction",
        _ => "unexpected failure",
    }
}
