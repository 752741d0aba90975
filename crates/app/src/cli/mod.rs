//! Argument parsing, dispatch, output and exit codes of the `guildconf` binary.
//!
//! `main` parses and maps the outcome to an exit code; [`run`] hands each
//! command to its own function in [`commands`]; [`input`] turns the text of
//! arguments into values (and invalid text into exit 3) once for all of them.

mod args;
mod commands;
mod input;
mod output;
mod progress;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::Parser;
use guildconf::{BackendOptions, ConfigService, Error, OpenOptions, PublicKey, Signing};
use serde_json::json;

use args::{Cli, Command, TokenCommand};
use commands::{admin, audit, read, serve, tokens, write};
use output::Output;

/// Exit codes of the command line (a public contract).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Storage or internal error.
    pub const STORAGE: u8 = 1;
    /// Usage: unknown flag, missing argument.
    pub const USAGE: u8 = 2;
    /// Invalid input: any bad value.
    pub const INVALID: u8 = 3;
    /// Conflict.
    pub const CONFLICT: u8 = 4;
    /// Not found.
    pub const NOT_FOUND: u8 = 5;
    /// Verification failed.
    pub const VERIFY_FAILED: u8 = 6;
}

fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Invalid(_) => exit::INVALID,
        Error::Conflict(_) => exit::CONFLICT,
        Error::NotFound(_) => exit::NOT_FOUND,
        Error::Storage(_) => exit::STORAGE,
        // Data guildconf did not write: what `verify` reports, so its code.
        Error::Corrupt(_) => exit::VERIFY_FAILED,
    }
}

/// Parses, runs and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let wants_json = std::env::args_os().skip(1).any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if wants_json {
                let message = e.to_string();
                let first = message
                    .lines()
                    .next()
                    .unwrap_or("usage error")
                    .trim_start_matches("error: ");
                eprintln!("{}", json!({"error": "usage", "message": first}));
            } else {
                let _ = e.print();
            }
            return ExitCode::from(exit::USAGE);
        }
    };
    init_logging(cli.json);
    let out = Output::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out.error("internal", &format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::STORAGE);
        }
    };
    match runtime.block_on(run(cli, &out)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            out.error(e.code(), &error_message(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

fn error_message(e: &Error) -> String {
    match e {
        Error::Invalid(v) => {
            v.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        }
        other => other.to_string(),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`). With `--json`
/// and no `RUST_LOG`, nothing is logged: stderr then holds exactly the one
/// JSON error object of a failure (a driver's warning while the runtime
/// shuts down would otherwise follow it).
fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if json { "off" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

/// What every command needs: the database it runs on and where it prints.
pub struct Ctx<'a> {
    /// The `--database-url`.
    pub url: &'a str,
    /// Output in the chosen style (`--json` or for people).
    pub out: &'a Output,
    /// Whether opening a database may apply migrations (not `--no-migrate`).
    pub migrate: bool,
    /// Backend tuning from the global flags (PostgreSQL's timeouts).
    pub backend: BackendOptions,
    /// How writes are signed (`--signing-key`), when they are.
    pub signing: Option<Signing>,
    /// The `--trusted-key` public keys.
    pub trusted: Vec<PublicKey>,
}

impl Ctx<'_> {
    /// How this run opens a database: created first when `create` is set,
    /// migrated unless `--no-migrate`.
    pub fn open_options(&self, create: bool) -> OpenOptions {
        let options = OpenOptions::new()
            .create_if_missing(create)
            .migrate(self.migrate)
            .backend(self.backend.clone());
        match &self.signing {
            Some(signing) => options.signing(signing.clone()),
            None => options,
        }
    }

    /// The service on the database, created first when `create` is set.
    pub async fn service(&self, create: bool) -> Result<ConfigService, Error> {
        Ok(ConfigService::new(
            guildconf::open(self.url, self.open_options(create)).await?,
        ))
    }
}

/// The backend tuning the global flags ask for.
fn backend_options(cli: &Cli) -> Result<BackendOptions, Error> {
    let mut backend = BackendOptions::default();
    if let Some(text) = &cli.lock_timeout {
        backend.postgres.lock_timeout = input::parse_duration("lock_timeout", text)?;
    }
    if let Some(text) = &cli.statement_timeout {
        backend.postgres.statement_timeout = input::parse_duration("statement_timeout", text)?;
    }
    Ok(backend)
}

/// Runs one command and returns its exit code.
async fn run(cli: Cli, out: &Output) -> Result<u8, Error> {
    let trusted = cli
        .trusted_key
        .iter()
        .map(|path| guildconf::read_public_key(path))
        .collect::<Result<Vec<_>, _>>()?;
    if cli.adopt_unsigned && cli.signing_key.is_none() {
        return Err(input::invalid(
            "/adopt_unsigned",
            "--adopt-unsigned only means something with --signing-key",
        ));
    }
    let signing = match &cli.signing_key {
        Some(path) => Some(
            trusted
                .iter()
                .fold(Signing::new(guildconf::read_signing_key(path)?), |s, k| {
                    s.trust(*k)
                })
                .adopt_unsigned(cli.adopt_unsigned),
        ),
        None => None,
    };
    let ctx = Ctx {
        url: &cli.database_url,
        out,
        migrate: !cli.no_migrate,
        backend: backend_options(&cli)?,
        signing,
        trusted,
    };
    match cli.command {
        Command::Create(args) => write::create(&ctx, args).await,
        Command::Set(args) => write::set(&ctx, args).await,
        Command::Apply(args) => write::apply(&ctx, args).await,
        Command::Revert(args) => write::revert(&ctx, args).await,
        Command::Delete(args) => write::delete(&ctx, args).await,
        Command::Event(args) => write::event(&ctx, args).await,
        Command::Show(args) => read::show(&ctx, args).await,
        Command::List => read::list(&ctx).await,
        Command::History(args) => read::history(&ctx, args).await,
        Command::Diff(args) => read::diff(&ctx, args).await,
        Command::Stats(args) => read::stats(&ctx, args).await,
        Command::Verify(args) => audit::verify(&ctx, args).await,
        Command::Checkpoint(args) => audit::checkpoint(&ctx, args).await,
        Command::Export(args) => audit::export(&ctx, args).await,
        Command::Purge(args) => admin::purge(&ctx, args).await,
        Command::Import(args) => admin::import(&ctx, args).await,
        Command::Copy(args) => admin::copy(&ctx, args).await,
        Command::Migrate => admin::migrate(&ctx).await,
        Command::Keygen(args) => admin::keygen(&ctx, args),
        Command::Token(TokenCommand::Create(args)) => tokens::create(&ctx, args).await,
        Command::Token(TokenCommand::List) => tokens::list(&ctx).await,
        Command::Token(TokenCommand::Revoke(args)) => tokens::revoke(&ctx, args).await,
        Command::Serve(args) => serve::serve(&ctx, args).await,
    }
}
