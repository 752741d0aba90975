//! Choosing a store by URL.

use std::sync::Arc;

use guildconf_ports::ConfigStore;
use guildconf_postgres::{PgOptions, PgStore};
use guildconf_sqlite::{SqliteOptions, SqliteStore};

use crate::error::{Error, Result};
use crate::signing::{Signing, SigningStore};

/// How [`open`] opens a store.
///
/// ```
/// let options = guildconf::OpenOptions::new().create_if_missing(true);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    create_if_missing: bool,
    migrate: bool,
    backend: BackendOptions,
    signing: Option<Signing>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            create_if_missing: false,
            migrate: true,
            backend: BackendOptions::default(),
            signing: None,
        }
    }
}

impl OpenOptions {
    /// Open an existing database only (what read-only commands use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a missing SQLite file is created (with its schema). Default
    /// `false`, so a read can never create a database by accident.
    #[must_use]
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Whether pending schema migrations are applied on open (default
    /// `true`, so a fresh database just works). With `false` nothing is
    /// migrated, and a database whose schema is older or newer than this
    /// build knows is refused with a message saying what to do: run
    /// `guildconf migrate` as the owner, then run the application as a role
    /// without DDL rights.
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Sign every write's entry hash with this key (config writes, purges
    /// and every other operation written through the store), and refuse to
    /// build on a head whose entry does not carry a valid signature by a
    /// trusted key, or is unsigned without [`Signing::adopt_unsigned`]
    /// (exit 6, nothing written). Default: no signing. Import and copy keep
    /// the signatures of what they load and sign nothing themselves.
    #[must_use]
    pub fn signing(mut self, signing: Signing) -> Self {
        self.signing = Some(signing);
        self
    }

    /// Backend tuning (SQLite's `synchronous`, busy timeout, change-feed
    /// interval, inline commits; PostgreSQL's lock and statement timeouts);
    /// a backend ignores the other's.
    #[must_use]
    pub fn backend(mut self, backend: BackendOptions) -> Self {
        self.backend = backend;
        self
    }
}

/// Tuning for each backend: the one place adapter option types appear in
/// guildconf's API. Each backend reads its own part and ignores the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendOptions {
    /// SQLite's options. Their `create_if_missing` is replaced by
    /// [`OpenOptions::create_if_missing`].
    pub sqlite: guildconf_sqlite::SqliteOptions,
    /// PostgreSQL's options: the lock timeout (default 5 s) and statement
    /// timeout (default 30 s) of every connection. Their `migrate` is
    /// replaced by [`OpenOptions::migrate`].
    pub postgres: PgOptions,
}

/// Opens the store a URL names: `sqlite://PATH` (PATH taken literally:
/// `sqlite:///tmp/x.db` is absolute, `sqlite://x.db` relative) or
/// `postgres://…` / `postgresql://…` (as libpq). Migrations run on open.
///
/// # Errors
/// [`Error::Invalid`] for an unknown scheme or empty path;
/// [`Error::Storage`] when the database cannot be opened (a missing SQLite
/// file without [`OpenOptions::create_if_missing`] among them).
pub async fn open(url: &str, options: OpenOptions) -> Result<Arc<dyn ConfigStore>> {
    let sqlite = SqliteOptions {
        create_if_missing: options.create_if_missing,
        migrate: options.migrate,
        ..options.backend.sqlite
    };
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(Error::invalid(
                "/database_url",
                "sqlite:// needs a file path, such as sqlite://guildconf.db",
            ));
        }
        let store = SqliteStore::open(path, sqlite).map_err(Error::from)?;
        return Ok(signed(Arc::new(store), options.signing));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let postgres = PgOptions {
            migrate: options.migrate,
            ..options.backend.postgres
        };
        let store = PgStore::connect_with_options(url, postgres)
            .await
            .map_err(Error::from)?;
        return Ok(signed(Arc::new(store), options.signing));
    }
    Err(Error::invalid(
        "/database_url",
        "must start with sqlite:// or postgres:// (for example sqlite://guildconf.db)",
    ))
}

/// The store, wrapped so its writes are signed when a key is given.
fn signed(store: Arc<dyn ConfigStore>, signing: Option<Signing>) -> Arc<dyn ConfigStore> {
    match signing {
        Some(signing) => Arc::new(SigningStore::new(store, signing)),
        None => store,
    }
}
