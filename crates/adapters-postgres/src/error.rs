//! The one place sqlx errors become [`StoreError`]s.
//!
//! Messages never carry PostgreSQL's DETAIL (which quotes row values) nor any
//! other row data: a secret must not leak through an error message.

use std::time::Duration;

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
/// - a lock wait past the lock timeout (`55P03`) and a cancelled statement
///   (`57014`) → `Storage` naming the timeout (without its value: see
///   [`Timeouts::map`], which names it);
/// - anything else → `Storage` with the SQLSTATE and the primary message.
pub(crate) fn map_sqlx(error: sqlx::Error) -> StoreError {
    Timeouts::UNKNOWN.map(error)
}

/// The lock and statement timeouts a store's connections run with, so that
/// an error they cause names the value that was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// `lock_timeout`, `None` when not known to the caller.
    pub(crate) lock: Option<Duration>,
    /// `statement_timeout`, `None` when not known to the caller.
    pub(crate) statement: Option<Duration>,
}

/// A duration as PostgreSQL's settings and guildconf's flags write it:
/// whole seconds as `5s`, anything else in milliseconds, zero as `off`.
pub(crate) fn human(d: Duration) -> String {
    if d.is_zero() {
        "off".into()
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl Timeouts {
    /// For errors mapped where the store's settings are not at hand.
    const UNKNOWN: Self = Self {
        lock: None,
        statement: None,
    };

    /// Maps a sqlx error to a store error as [`map_sqlx`] does, naming the
    /// timeout's value when a lock wait or a statement ran past it.
    pub(crate) fn map(&self, error: sqlx::Error) -> StoreError {
        let value = |d: Option<Duration>| d.map(|d| format!(" ({})", human(d))).unwrap_or_default();
        match error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03") => {
                StoreError::Storage(format!(
                    "a lock wait exceeded the lock timeout{}: another session holds a lock \
                     this statement needs (SQLSTATE 55P03)",
                    value(self.lock)
                ))
            }
            // 57014 is also what an operator's pg_cancel_backend gives; the
            // message says both, since SQLSTATE alone cannot tell them apart.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
                StoreError::Storage(format!(
                    "a statement was cancelled: it ran past the statement timeout{}, or an \
                     operator cancelled it (SQLSTATE 57014)",
                    value(self.statement)
                ))
            }
            other => map_other(other),
        }
    }
}

fn map_other(error: sqlx::Error) -> StoreError {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::human;

    #[test]
    fn timeouts_are_written_as_the_flags_take_them() {
        assert_eq!(human(Duration::ZERO), "off");
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_millis(300)), "300ms");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
    }
}
