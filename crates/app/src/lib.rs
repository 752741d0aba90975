//! guildconf: each guild's configuration in a database, with an audit entry
//! for every change written in the same transaction, chained by SHA-256.
//!
//! API boundary for bot authors: [`ConfigService`], [`open`] and
//! [`OpenOptions`], [`WriteMeta`], [`FieldEdit`] and [`FieldPath`], [`Edit`], [`At`], [`Error`], the read cache ([`ReadCache`],
//! [`CachedConfig`], [`ConfigChanged`]), API tokens ([`NewToken`],
//! [`IssuedToken`], [`TokenInfo`], [`TokenRole`], [`Permission`]), scheduled
//! retention ([`spawn_retention`], [`RetentionPolicy`]), and the domain types
//! re-exported below.
//!
//! With the cargo feature `metrics` (off by default), writes, events,
//! conflicts, retries, audit write failures, verify problems and retention
//! runs are counted, and write latency measured, through the
//! [`metrics`](https://docs.rs/metrics) facade, for whichever recorder the
//! bot installs: `guildconf_writes_total{operation, outcome}`,
//! `guildconf_write_errors_total{operation, error}`,
//! `guildconf_write_conflicts_total{operation}`,
//! `guildconf_write_retries_total{operation}`,
//! `guildconf_audit_write_failures_total{operation, error}`, the histogram
//! `guildconf_write_duration_seconds{operation}`,
//! `guildconf_verify_runs_total{outcome}`,
//! `guildconf_verify_problems_total{problem}`,
//! `guildconf_retention_runs_total{outcome}` and
//! `guildconf_retention_purged_entries_total` (the README says what each
//! label holds). No label carries a guild id. Without the feature no
//! metrics code is compiled in.
//!
//! ```no_run
//! # async fn run() -> Result<(), guildconf::Error> {
//! use guildconf::{open, Actor, ActorKind, ConfigService, FieldEdit, GuildId, OpenOptions, WriteMeta};
//! let store = open("sqlite://guildconf.db", OpenOptions::new().create_if_missing(true)).await?;
//! let service = ConfigService::new(store);
//! let guild = GuildId::parse("123456789012345678").map_err(|e| guildconf::Error::invalid("/guild_id", e))?;
//! let config = service.guild_config(guild).await?; // defaults for a new guild, nothing written
//! let meta = WriteMeta::new(Actor::new("80351110224678912", ActorKind::Human, Some("alice"))?);
//! // Fields by path…
//! let edit = FieldEdit::new().set("onboarding.welcome_channel".parse()?, "555");
//! service.upsert(guild, edit, &meta).await?;
//! // …or the typed config, diffed and validated for you.
//! service.modify(guild, &meta, |cfg| cfg.onboarding.enabled = true).await?;
//! # let _ = config; Ok(()) }
//! ```

#![warn(missing_docs)]

mod backend;
mod cache;
mod checkpoint;
mod error;
mod export;
mod fanout;
mod hints;
mod history;
pub mod http;
mod import;
pub mod input;
mod metrics;
mod purge;
mod retention;
mod service;
pub mod signing;
mod stream;
mod tokens;
pub mod ui;
mod verify;
mod wrapper;

pub use backend::{open, BackendOptions, OpenOptions};
pub use cache::{CacheOptions, CachedConfig, ConfigChanged, ReadCache};
pub use checkpoint::{Checkpoint, CheckpointHead, CHECKPOINT_VERSION};
pub use error::{Error, Result};
pub use export::{ExportFormat, ExportRequest};
pub use hints::DEFAULT_HEAD_HINTS;
pub use history::{HistoryPage, HistoryRequest};
pub use import::{copy, import, ImportRefusal, ImportReport};
pub use purge::PurgeResult;
pub use retention::{
    spawn_retention, RetentionHandle, RetentionPolicy, RetentionRun, RetentionStatus,
    DEFAULT_RETENTION_ACTOR,
};
pub use service::{
    check_recordable, value_at, At, ConfigService, Edit, FieldEdit, Outcome, Shown, WriteMeta,
    WriteResult, DEFAULT_MAX_RETRIES,
};
pub use signing::{keygen, read_public_key, read_signing_key, PublicKey, Signing};
pub use tokens::{Entropy, IssuedToken, NewToken, OsEntropy, TOKEN_PREFIX, TOKEN_RECHECK_AFTER};
pub use verify::{verify_export, verify_export_with, VerifyOptions, VerifyProblem, VerifyReport};

/// JSON helpers: pointers, user paths, canonical form.
pub use guildconf_domain::json;
pub use guildconf_domain::{
    ActionKey, ActionRegistry, ActionSpec, CheckedEvent, DataKey, DataType, Event, EventOutcome,
    Target,
};
pub use guildconf_domain::{
    Actor, ActorKind, Change, ConfigSchema, Entry, EntryBody, FieldPath, GuildConfig,
    GuildConfigSchema, GuildId, Operation, RequestContext, Snowflake, Timestamp, Violation,
    Violations,
};
pub use guildconf_domain::{Permission, TokenInfo, TokenRole, MAX_TOKEN_GUILDS, MAX_TOKEN_LABEL};
pub use guildconf_ports::{
    Clock, ConfigStore, EntryFilter, GuildSummary, StatsBy, StatsQuery, StatsRow, SystemClock,
};
/// The SQLite adapter's option types, for [`BackendOptions::sqlite`].
pub mod sqlite {
    pub use guildconf_sqlite::{SqliteOptions, Synchronous};
}
/// The PostgreSQL adapter's option type and defaults, for
/// [`BackendOptions::postgres`].
pub mod postgres {
    pub use guildconf_postgres::{PgOptions, DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT};
}
