//! The pure core of guildconf.
//!
//! Everything here is deterministic and free of I/O: no clock reads, no
//! randomness, no database. The application layer feeds this crate the head it
//! read and the caller's input, and gets back a fully computed change set —
//! normalised document, diff, redacted changes, summary and chained audit entry.
//!
//! API boundary: the types re-exported here are what bot authors and the
//! storage adapters depend on. The JSON forms of [`EntryBody`] and [`Change`]
//! are a public, third-party-verified format (see `docs/FORMAT.md`).

#![warn(missing_docs)]

mod actor;
mod chain;
mod context;
mod diff;
mod entry;
mod event;
mod guild_config;
mod ids;
pub mod json;
mod link;
mod path;
mod redact;
mod schema;
mod secret_paths;
mod signature;
mod summary;
mod time;
mod token;
mod violation;

pub use actor::{Actor, ActorKind};
pub use chain::{
    purge_through, ChainVerifier, HeadFacts, Problem, ProblemCode, RowFacts, SnapshotEvidence,
};
pub use context::RequestContext;
pub use diff::{apply_changes, diff, unapply_changes, Change};
/// The Ed25519 implementation guildconf signs with, for key types.
pub use ed25519_dalek;
pub use entry::{
    body_value, Entry, EntryBody, Operation, SealedEntry, BODY_KEYS, ENTRY_FORMAT_VERSION,
    GENESIS_HASH,
};
pub use event::{
    ActionKey, ActionRegistry, ActionSpec, CheckedEvent, DataKey, DataType, Event, EventOutcome,
    Target, MAX_ACTION_KEY, MAX_DATA_KEYS, MAX_DATA_STRING, MAX_TARGET_ID, MAX_TARGET_LABEL,
    MAX_TARGET_TYPE, TOKEN_CREATED, TOKEN_REVOKED,
};
pub use guild_config::{
    Announcements, GuildConfig, GuildConfigSchema, Onboarding, Verification, VerificationMode,
    YearlyReset,
};
pub use ids::{GuildId, Snowflake};
pub use link::{link, CanonicalDocument, Head, Link, LinkError, LinkMeta, SealedSnapshot, Step};
pub use path::FieldPath;
pub use redact::{redact_changes, redact_document, restore_kept_secrets, Secret, REDACTED};
pub use schema::ConfigSchema;
pub use secret_paths::SecretPaths;
pub use signature::{
    fingerprint, is_fingerprint, EntrySignature, SignatureFault, SignaturePolicy, TrustedKeys,
    SIG_ALG,
};
pub use summary::{summarise, summarise_purge};
pub use time::Timestamp;
pub use token::{Permission, TokenInfo, TokenRole, MAX_TOKEN_GUILDS, MAX_TOKEN_LABEL};
pub use violation::{Violation, Violations};
