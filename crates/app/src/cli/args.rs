//! The command-line grammar. Values are taken as text and parsed by the
//! commands themselves, so a bad value is "invalid input" (exit 3) with a
//! message naming it, while clap's own errors stay "usage" (exit 2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Guild configuration with an append-only, hash-chained audit trail.";

const LONG_ABOUT: &str = "\
Keeps each guild's configuration in a database and writes an audit entry for \
every change in the same transaction. Every guild's entries form a SHA-256 hash \
chain that `guildconf verify` (or any third party, from an export) re-checks.

The database is chosen by --database-url or GUILDCONF_DATABASE_URL:
  sqlite://guildconf.db          an embedded SQLite file (the default)
  postgres://user@host:5432/db   a PostgreSQL server

Paths name a field: dotted (onboarding.enabled) or a JSON Pointer
(/features/my_flag); use a pointer for keys that contain a dot.
Times are RFC 3339 with an offset, e.g. 2026-11-22T04:45:44Z.

Exit codes: 0 ok, 1 storage or internal error, 2 usage, 3 invalid input,
4 conflict, 5 not found, 6 verification failed.";

const EXAMPLES: &str = "\
Examples:
  guildconf create 123456789012345678 --actor 80351110224678912 --actor-label alice
  guildconf set 123456789012345678 onboarding.enabled=true onboarding.welcome_channel=555 --actor 80351110224678912
  guildconf history 123456789012345678
  guildconf diff 123456789012345678 1 2
  guildconf verify";

/// guildconf command line.
#[derive(Debug, Parser)]
#[command(name = "guildconf", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// Database URL: sqlite://PATH or postgres://...
    #[arg(
        long,
        global = true,
        env = "GUILDCONF_DATABASE_URL",
        default_value = "sqlite://guildconf.db"
    )]
    pub database_url: String,

    /// Machine-readable JSON on stdout; errors as one JSON object on stderr.
    #[arg(long, global = true)]
    pub json: bool,

    /// Never change the schema: refuse a database whose schema is older or
    /// newer than this guildconf knows (run `guildconf migrate` first).
    /// Lets the application's role run without DDL rights.
    #[arg(long, global = true, env = "GUILDCONF_NO_MIGRATE")]
    pub no_migrate: bool,

    /// PostgreSQL: how long a statement waits for a lock another session
    /// holds before failing (exit 1), such as 500ms, 5s or 1m; 0 waits
    /// without bound. Default 5s.
    #[arg(
        long,
        global = true,
        env = "GUILDCONF_LOCK_TIMEOUT",
        value_name = "DURATION"
    )]
    pub lock_timeout: Option<String>,

    /// PostgreSQL: how long one statement may run before it is cancelled
    /// (exit 1); 0 for no limit. Default 30s.
    #[arg(
        long,
        global = true,
        env = "GUILDCONF_STATEMENT_TIMEOUT",
        value_name = "DURATION"
    )]
    pub statement_timeout: Option<String>,

    /// Sign every write's entry with this Ed25519 private key (PKCS#8 PEM,
    /// as `keygen` writes it), and refuse to build on a head that is not
    /// signed by a trusted key.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "GUILDCONF_SIGNING_KEY"
    )]
    pub signing_key: Option<PathBuf>,

    /// A public key (FILE.pub) whose signatures are trusted: by `verify`, and
    /// by a signing write for the head it builds on (a rotated-out key).
    /// Repeatable.
    #[arg(long, global = true, value_name = "FILE.pub")]
    pub trusted_key: Vec<PathBuf>,

    /// With --signing-key, build on an unsigned head: the one-time step when
    /// signing is first turned on for guilds written without it.
    #[arg(long, global = true)]
    pub adopt_unsigned: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Who is making a change, and why. Required on every write.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Who makes the change: a user snowflake for humans, any name otherwise.
    #[arg(long)]
    pub actor: String,
    /// human, system, scheduled or integration.
    #[arg(long, default_value = "human")]
    pub actor_kind: String,
    /// Display name kept in history (default: the actor id).
    #[arg(long)]
    pub actor_label: Option<String>,
    /// Why the change is made; kept in the audit entry.
    #[arg(long)]
    pub reason: Option<String>,
    /// Idempotency key: a retry with the same id returns the first result.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// Who runs a purge, and why.
#[derive(Debug, Args)]
pub struct PurgeActorArgs {
    /// Who purges: a user snowflake for humans, any name otherwise.
    #[arg(long)]
    pub actor: String,
    /// human, system, scheduled or integration.
    #[arg(long, default_value = "human")]
    pub actor_kind: String,
    /// Display name kept in history (default: the actor id).
    #[arg(long)]
    pub actor_label: Option<String>,
    /// Why; kept in each purge entry.
    #[arg(long)]
    pub reason: Option<String>,
}

/// The guard and mode every write to an existing config takes.
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// Fail with exit 4 unless the guild is at this version.
    #[arg(long, value_name = "N")]
    pub expect_version: Option<String>,
    /// Print the changes and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a guild's config: the defaults, then --file, then each --set.
    Create(CreateArgs),
    /// Change fields of a guild's config.
    Set(SetArgs),
    /// Replace a guild's whole document ("[redacted]" keeps a stored secret).
    Apply(ApplyArgs),
    /// Make version N's document current again, as a new entry.
    Revert(RevertArgs),
    /// Delete a guild's config; its history stays.
    Delete(DeleteArgs),
    /// Record an event (an admin action) in the guild's chain; the config is
    /// unchanged. ACTION is a registered action key such as member.role_added.
    Event(EventArgs),
    /// Show a guild's document now, at a version, or at a time.
    Show(ShowArgs),
    /// List every guild with its version, last change time and actor.
    List,
    /// Show audit entries, newest first (a guild's, or an actor's across guilds).
    History(HistoryArgs),
    /// Show the changes between two versions.
    Diff(DiffArgs),
    /// Count entries by operation, family, actor, outcome or UTC day,
    /// computed by the database.
    Stats(StatsArgs),
    /// Re-verify hash chains in the database, or an export file offline.
    Verify(VerifyArgs),
    /// Print a checkpoint: one digest over every guild's head, to keep outside
    /// the database; `verify --checkpoint` later proves the log only grew.
    Checkpoint(CheckpointArgs),
    /// Retention: remove audit entries older than --before (and snapshots only
    /// they needed), recorded by a chained purge entry per guild. Without
    /// --yes it prints what it would remove and asks on a terminal.
    Purge(PurgeArgs),
    /// Stream audit entries as JSONL (the verifiable format) or CSV.
    Export(ExportArgs),
    /// Load an export (.jsonl) into an empty database, verifying the whole
    /// file before writing anything.
    Import(ImportArgs),
    /// Copy the whole database (every guild, every entry hash) into another,
    /// empty one: SQLite to PostgreSQL and back.
    Copy(CopyArgs),
    /// Create the database if missing and apply the schema migrations this
    /// guildconf ships (as a role that may change the schema).
    Migrate,
    /// Manage API tokens for the HTTP API: create one (its secret is printed
    /// once; only its SHA-256 is stored), list them, revoke one.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Serve the HTTP API (docs/HTTP.md) until SIGINT or SIGTERM; prints the
    /// address it listens on first (port 0 picks a free port).
    Serve(ServeArgs),
    /// Make an Ed25519 key pair for signing entries: the private key to
    /// --output (mode 0600), the public key to FILE.pub; prints the public
    /// key's fingerprint. Never overwrites a file.
    Keygen(KeygenArgs),
}

/// The `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token and print its secret, this once: guildconf keeps only
    /// its SHA-256. Recorded as a token.created event in the chain of every
    /// --guild.
    Create(TokenCreateArgs),
    /// List every token, revoked ones too (never a secret).
    List,
    /// Revoke a token for good; recorded as a token.revoked event in the
    /// chain of every guild it names.
    Revoke(TokenRevokeArgs),
}

/// The arguments of `token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// viewer (reads config and history), editor (also writes) or auditor
    /// (also exports, verifies and reads stats).
    #[arg(long)]
    pub role: String,
    /// A guild the token may reach (repeatable); without any, every guild.
    #[arg(long = "guild", value_name = "G")]
    pub guilds: Vec<String>,
    /// Who or what holds the token (1 to 128 characters): the actor label
    /// of its writes.
    #[arg(long, value_name = "L")]
    pub label: String,
    /// Attribute the token's writes to this person (a user snowflake)
    /// instead of to an integration named by the label.
    #[arg(long, value_name = "ID")]
    pub human_id: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// The arguments of `token revoke`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (16 hex digits, as `token list` shows).
    pub id: String,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// The arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on, IP:PORT (port 0 for any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Mark the audit pages' cookies `Secure` (sent over https only): use it
    /// when the server is reached through a TLS-terminating proxy.
    #[arg(long)]
    pub secure_cookies: bool,
}

/// The arguments of `keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key; the public key goes to FILE.pub.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
}

/// The arguments of `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Guild id (snowflake).
    pub guild: String,
    /// A JSON document (possibly partial) to start from.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// PATH=VALUE to set; VALUE is JSON if it parses, else a string.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Print the changes and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// The arguments of `set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Guild id (snowflake).
    pub guild: String,
    /// PATH=VALUE pairs; VALUE is JSON if it parses, else a string.
    #[arg(value_name = "PATH=VALUE")]
    pub assignments: Vec<String>,
    /// Remove a map key, or reset a field to its default.
    #[arg(long, value_name = "PATH")]
    pub unset: Vec<String>,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// The arguments of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Guild id (snowflake).
    pub guild: String,
    /// The new document.
    #[arg(long)]
    pub file: PathBuf,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// The arguments of `revert`.
#[derive(Debug, Args)]
pub struct RevertArgs {
    /// Guild id (snowflake).
    pub guild: String,
    /// The version to return to.
    #[arg(long, value_name = "N")]
    pub to: String,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// The arguments of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Guild id (snowflake).
    pub guild: String,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// The arguments of `event`.
#[derive(Debug, Args)]
pub struct EventArgs {
    /// Guild id (snowflake).
    pub guild: String,
    /// The action key, family.verb (for example member.role_added).
    pub action: String,
    /// success, failed, partial, info or blocked.
    #[arg(long)]
    pub outcome: String,
    /// What the action acted on: member, channel, role, ...
    #[arg(long, value_name = "T")]
    pub target_type: String,
    /// The target's id.
    #[arg(long, value_name = "ID")]
    pub target_id: String,
    /// The target's display name.
    #[arg(long, value_name = "L")]
    pub target_label: Option<String>,
    /// KEY=VALUE facts the action declares; VALUE is JSON if it parses, else
    /// a string.
    #[arg(long = "data", value_name = "KEY=VALUE")]
    pub data: Vec<String>,
    /// Print the entry's result and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// The arguments of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Guild id (snowflake).
    pub guild: String,
    /// Show this version.
    #[arg(long, value_name = "N")]
    pub version: Option<String>,
    /// Show the document current at this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Show only this field.
    #[arg(long)]
    pub path: Option<String>,
    /// Show secrets instead of "[redacted]".
    #[arg(long)]
    pub reveal_secrets: bool,
}

/// The arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Guild id (snowflake); omit it and give --actor to search every guild.
    pub guild: Option<String>,
    /// Only entries by this actor id.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this operation: create, update, revert, delete, purge, or an
    /// event's action key.
    #[arg(long)]
    pub operation: Option<String>,
    /// Only entries that changed this path, below it, or an ancestor of it.
    #[arg(long)]
    pub path: Option<String>,
    /// Only this family: config, or an action key's part before the dot.
    #[arg(long, value_name = "F")]
    pub family: Option<String>,
    /// Only this outcome: success (every config entry), failed, partial,
    /// info or blocked.
    #[arg(long, value_name = "O")]
    pub outcome: Option<String>,
    /// Only events whose target has this type.
    #[arg(long, value_name = "T")]
    pub target_type: Option<String>,
    /// Only events whose target has this id.
    #[arg(long, value_name = "ID")]
    pub target_id: Option<String>,
    /// Entries at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Entries before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Entries per page (default 50, at most 1000).
    #[arg(long, value_name = "N")]
    pub limit: Option<String>,
    /// The next_cursor printed by the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

/// The arguments of `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this guild.
    #[arg(long)]
    pub guild: Option<String>,
    /// Entries at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Entries before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// operation, family, actor, outcome or day.
    #[arg(long)]
    pub by: String,
}

/// The arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Guild id (snowflake).
    pub guild: String,
    /// From version.
    pub from: String,
    /// To version.
    pub to: String,
}

/// The arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only this guild.
    pub guild: Option<String>,
    /// Verify this export (.jsonl) instead of the database.
    #[arg(long, conflicts_with = "checkpoint")]
    pub file: Option<PathBuf>,
    /// Also prove the log extends this checkpoint (from `guildconf checkpoint`).
    #[arg(long, value_name = "FILE", conflicts_with = "guild")]
    pub checkpoint: Option<PathBuf>,
    /// Also require every guild's last entry to carry a valid signature by a
    /// --trusted-key (a guild never signed, or stripped bare, fails).
    #[arg(long)]
    pub require_signed: bool,
}

/// The arguments of `checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Write the checkpoint to this file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// The arguments of `purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Remove entries that occurred before this time (exclusive, RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub before: String,
    /// Only this guild.
    #[arg(long)]
    pub guild: Option<String>,
    /// Purge without asking.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub actor: PurgeActorArgs,
}

/// The arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this guild.
    #[arg(long)]
    pub guild: Option<String>,
    /// Entries at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// jsonl or csv.
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Add each version's stored document under "snapshot" (outside the
    /// hashed body). Secrets included: the file is then itself a secret.
    #[arg(long)]
    pub with_snapshots: bool,
}

/// The arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export file.
    pub file: PathBuf,
}

/// The arguments of `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The destination database URL.
    #[arg(long, value_name = "URL")]
    pub to: String,
}
