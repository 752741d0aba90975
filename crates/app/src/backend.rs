//! Choosing a store by URL.

use std::sync::Arc;

use guildconf_ports::ConfigStore;
use guildconf_postgres::PgStore;
use guildconf_sqlite::{SqliteOptions, SqliteStore};

use crate::error::{Error, Result};

/// Opens the store a URL names: `sqlite://PATH` (PATH taken literally:
/// `sqlite:///tmp/x.db` is absolute, `sqlite://x.db` relative) or
/// `postgres://…` / `postgresql://…` (as libpq). Migrations run on open.
///
/// With `create` false, a missing SQLite file is an error and is not
/// created (read-only commands never create a database).
///
/// # Errors
/// [`Error::Invalid`] for an unknown scheme or empty path;
/// [`Error::Storage`] when the database cannot be opened.
pub async fn open(url: &str, create: bool) -> Result<Arc<dyn ConfigStore>> {
    open_with(
        url,
        SqliteOptions {
            create_if_missing: create,
            ..SqliteOptions::default()
        },
    )
    .await
}

/// Like [`open`], with the SQLite options spelled out (`synchronous`, the
/// busy timeout, the change-feed interval); they are ignored for PostgreSQL.
///
/// # Errors
/// As [`open`].
pub async fn open_with(url: &str, sqlite: SqliteOptions) -> Result<Arc<dyn ConfigStore>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(Error::invalid(
                "/database_url",
                "sqlite:// needs a file path, such as sqlite://guildconf.db",
            ));
        }
        let store = SqliteStore::open(path, sqlite).map_err(Error::from)?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(url).await.map_err(Error::from)?;
        return Ok(Arc::new(store));
    }
    Err(Error::invalid(
        "/database_url",
        "must start with sqlite:// or postgres:// (for example sqlite://guildconf.db)",
    ))
}
