//! Argument parsing, dispatch, output and exit codes of the `guildconf` binary.

mod args;
mod output;
mod progress;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use guildconf::{
    At, ConfigService, Error, ExportFormat, ExportRequest, HistoryRequest, Operation, Timestamp,
    VerifyReport, WriteMeta,
};
use serde_json::{json, Value};

use args::{Cli, Command, PurgeActorArgs, WriteArgs};
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
        Error::Storage(_) | Error::Corrupt(_) => exit::STORAGE,
    }
}

/// Parses, runs and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let wants_json = std::env::args().skip(1).any(|a| a == "--json");
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
    init_logging();
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

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

fn invalid(path: &str, message: impl Into<String>) -> Error {
    Error::invalid(path, message)
}

fn parse_guild(text: &str) -> Result<guildconf::GuildId, Error> {
    guildconf::GuildId::parse(text).map_err(|e| invalid("/guild_id", format!("guild id {e}")))
}

fn parse_u64(name: &str, text: &str) -> Result<u64, Error> {
    text.parse::<u64>().map_err(|_| {
        invalid(
            &format!("/{name}"),
            format!(
                "--{} must be a non-negative integer",
                name.replace('_', "-")
            ),
        )
    })
}

fn parse_time(name: &str, text: &str) -> Result<Timestamp, Error> {
    Timestamp::parse_rfc3339(text)
        .map_err(|e| invalid(&format!("/{name}"), format!("--{name} {e}")))
}

fn parse_path(text: &str) -> Result<Vec<String>, Error> {
    guildconf::json::parse_user_path(text).map_err(|e| invalid("/path", e))
}

fn read_json_file(path: &Path) -> Result<Value, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid("/file", format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        invalid(
            "/file",
            format!("{} is not valid JSON: {e}", path.display()),
        )
    })
}

/// `PATH=VALUE`: VALUE is JSON if it parses, otherwise a string.
fn parse_assignment(text: &str) -> Result<(Vec<String>, Value), Error> {
    let Some((path, value)) = text.split_once('=') else {
        return Err(invalid(
            "/set",
            format!("expected PATH=VALUE, got {text:?}"),
        ));
    };
    let segments = parse_path(path)?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((segments, value))
}

fn write_meta(
    w: &WriteArgs,
    expect_version: Option<&str>,
    dry_run: bool,
) -> Result<WriteMeta, Error> {
    let kind = guildconf::ActorKind::parse(&w.actor_kind)
        .map_err(|e| invalid("/actor/kind", format!("--actor-kind {e}")))?;
    let actor = guildconf::Actor::new(&w.actor, kind, w.actor_label.as_deref())?;
    let mut meta = WriteMeta::new(actor);
    meta.reason.clone_from(&w.reason);
    meta.request_id.clone_from(&w.request_id);
    meta.context = guildconf::RequestContext::new().with("source", "cli");
    meta.expect_version = expect_version
        .map(|v| parse_u64("expect_version", v))
        .transpose()?;
    meta.dry_run = dry_run;
    Ok(meta)
}

async fn service(url: &str, create: bool) -> Result<ConfigService, Error> {
    Ok(ConfigService::new(guildconf::open(url, create).await?))
}

async fn run(cli: Cli, out: &Output) -> Result<u8, Error> {
    let url = cli.database_url.as_str();
    let json_output = cli.json;
    match cli.command {
        Command::Create {
            guild,
            file,
            set,
            write,
            dry_run,
        } => {
            let guild = parse_guild(&guild)?;
            let mut input = match &file {
                Some(path) => read_json_file(path)?,
                None => json!({}),
            };
            for assignment in &set {
                let (path, value) = parse_assignment(assignment)?;
                guildconf::json::set_at(&mut input, &path, value)
                    .map_err(|e| invalid("/set", e))?;
            }
            let meta = write_meta(&write, None, dry_run)?;
            let result = service(url, !dry_run)
                .await?
                .create(guild, input, &meta)
                .await?;
            out.write_result(&result);
        }
        Command::Set {
            guild,
            assignments,
            unset,
            expect_version,
            dry_run,
            write,
        } => {
            let guild = parse_guild(&guild)?;
            let sets = assignments
                .iter()
                .map(|a| parse_assignment(a))
                .collect::<Result<Vec<_>, _>>()?;
            let unsets = unset
                .iter()
                .map(|p| parse_path(p))
                .collect::<Result<Vec<_>, _>>()?;
            if sets.is_empty() && unsets.is_empty() {
                return Err(invalid(
                    "/set",
                    "give at least one PATH=VALUE or --unset PATH",
                ));
            }
            let meta = write_meta(&write, expect_version.as_deref(), dry_run)?;
            let result = service(url, false)
                .await?
                .update(guild, sets, unsets, &meta)
                .await?;
            out.write_result(&result);
        }
        Command::Apply {
            guild,
            file,
            expect_version,
            dry_run,
            write,
        } => {
            let guild = parse_guild(&guild)?;
            let document = read_json_file(&file)?;
            let meta = write_meta(&write, expect_version.as_deref(), dry_run)?;
            let result = service(url, false)
                .await?
                .replace(guild, document, &meta)
                .await?;
            out.write_result(&result);
        }
        Command::Revert {
            guild,
            to,
            expect_version,
            dry_run,
            write,
        } => {
            let guild = parse_guild(&guild)?;
            let to = parse_u64("to", &to)?;
            let meta = write_meta(&write, expect_version.as_deref(), dry_run)?;
            let result = service(url, false).await?.revert(guild, to, &meta).await?;
            out.write_result(&result);
        }
        Command::Delete {
            guild,
            expect_version,
            dry_run,
            write,
        } => {
            let guild = parse_guild(&guild)?;
            let meta = write_meta(&write, expect_version.as_deref(), dry_run)?;
            let result = service(url, false).await?.delete(guild, &meta).await?;
            out.write_result(&result);
        }
        Command::Show {
            guild,
            version,
            at,
            path,
            reveal_secrets,
        } => {
            let guild = parse_guild(&guild)?;
            let at = match (version, at) {
                (Some(v), None) => At::Version(parse_u64("version", &v)?),
                (None, Some(t)) => At::Time(parse_time("at", &t)?),
                (None, None) => At::Now,
                (Some(_), Some(_)) => {
                    return Err(invalid("/version", "give --version or --at, not both"))
                }
            };
            let path = path.as_deref().map(parse_path).transpose()?;
            let service = service(url, false).await?;
            let shown = service.get(guild, at).await?;
            let document = if reveal_secrets {
                shown.document.clone()
            } else {
                service.redact(&shown.document)
            };
            out.show(&shown, document, path.as_deref())?;
        }
        Command::List => {
            let guilds = service(url, false).await?.list().await?;
            out.list(&guilds);
        }
        Command::History {
            guild,
            actor,
            operation,
            path,
            since,
            until,
            limit,
            cursor,
        } => {
            let request = HistoryRequest {
                guild_id: guild.as_deref().map(parse_guild).transpose()?,
                actor_id: actor,
                operation: operation
                    .as_deref()
                    .map(|o| {
                        Operation::parse(o)
                            .map_err(|e| invalid("/operation", format!("--operation {e}")))
                    })
                    .transpose()?,
                path: path.as_deref().map(parse_path).transpose()?,
                since: since
                    .as_deref()
                    .map(|t| parse_time("since", t))
                    .transpose()?,
                until: until
                    .as_deref()
                    .map(|t| parse_time("until", t))
                    .transpose()?,
                limit: limit
                    .as_deref()
                    .map(|l| {
                        parse_u64("limit", l).and_then(|n| {
                            u32::try_from(n).map_err(|_| invalid("/limit", "--limit is too large"))
                        })
                    })
                    .transpose()?,
                cursor,
            };
            let page = service(url, false).await?.history(&request).await?;
            out.history(&page)?;
        }
        Command::Diff { guild, from, to } => {
            let guild = parse_guild(&guild)?;
            let (from, to) = (parse_u64("from", &from)?, parse_u64("to", &to)?);
            let changes = service(url, false).await?.diff(guild, from, to).await?;
            out.diff(guild, from, to, &changes);
        }
        Command::Verify {
            guild,
            file,
            checkpoint,
        } => {
            let report = match (file, checkpoint) {
                (_, Some(path)) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        invalid(
                            "/checkpoint",
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?;
                    let checkpoint = guildconf::Checkpoint::parse(&text)?;
                    service(url, false)
                        .await?
                        .verify_checkpoint(&checkpoint)
                        .await?
                }
                (Some(path), None) => {
                    let f = File::open(&path).map_err(|e| {
                        invalid("/file", format!("cannot open {}: {e}", path.display()))
                    })?;
                    guildconf::verify_export(BufReader::new(f))?
                }
                (None, None) => {
                    let guild = guild.as_deref().map(parse_guild).transpose()?;
                    let bar = progress::spinner("verifying", json_output);
                    let report = service(url, false).await?.verify(guild).await;
                    bar.finish_and_clear();
                    report?
                }
            };
            out.verify(&report);
            return Ok(verify_exit(&report, out));
        }
        Command::Checkpoint { output } => {
            let now = Timestamp::from_datetime(chrono::Utc::now());
            let checkpoint = service(url, false).await?.checkpoint(now).await?;
            let text =
                serde_json::to_string(&checkpoint).map_err(|e| Error::Storage(e.to_string()))?;
            match &output {
                Some(path) => std::fs::write(path, format!("{text}\n"))
                    .map_err(|e| Error::Storage(format!("cannot write {}: {e}", path.display())))?,
                None => println!("{text}"),
            }
            if !json_output {
                eprintln!(
                    "checkpoint of {} guild(s), digest {}: keep it (or the file) outside the database",
                    checkpoint.heads.len(),
                    checkpoint.digest
                );
            }
        }
        Command::Purge {
            before,
            guild,
            yes,
            actor,
        } => return purge(url, out, &before, guild.as_deref(), yes, &actor).await,
        Command::Export {
            guild,
            since,
            format,
            output,
            with_snapshots,
        } => {
            let request = ExportRequest {
                guild_id: guild.as_deref().map(parse_guild).transpose()?,
                since: since
                    .as_deref()
                    .map(|t| parse_time("since", t))
                    .transpose()?,
                format: match format.as_str() {
                    "jsonl" => ExportFormat::Jsonl,
                    "csv" => ExportFormat::Csv,
                    _ => return Err(invalid("/format", "--format must be jsonl or csv")),
                },
                with_snapshots,
            };
            let service = service(url, false).await?;
            let count = match &output {
                Some(path) => {
                    let file = File::create(path).map_err(|e| {
                        Error::Storage(format!("cannot create {}: {e}", path.display()))
                    })?;
                    let bar = progress::bar(None, "exporting", json_output);
                    let mut writer = progress::CountingWriter::new(BufWriter::new(file), &bar);
                    let count = service.export(&request, &mut writer).await?;
                    bar.finish_and_clear();
                    count
                }
                None => {
                    let stdout = io::stdout();
                    let mut writer = BufWriter::new(stdout.lock());
                    service.export(&request, &mut writer).await?
                }
            };
            if let Some(path) = &output {
                out.exported(count, path);
            }
        }
        Command::Import { file } => {
            let store = guildconf::open(url, true).await?;
            let open_file = || {
                File::open(&file)
                    .map(BufReader::new)
                    .map_err(|e| invalid("/file", format!("cannot open {}: {e}", file.display())))
            };
            let bar = progress::bar(None, "importing", json_output);
            let result =
                guildconf::import(store.as_ref(), open_file, |n| bar.set_position(n)).await;
            bar.finish_and_clear();
            match result {
                Ok(report) => out.imported(&report),
                Err(guildconf::ImportRefusal::Unverified(report)) => {
                    out.verify(&report);
                    out.error_only_json(
                        "verification_failed",
                        "the file does not verify; nothing was imported",
                    );
                    if !json_output {
                        eprintln!("error: the file does not verify; nothing was imported");
                    }
                    return Ok(exit::VERIFY_FAILED);
                }
                Err(guildconf::ImportRefusal::Failed(e)) => return Err(e),
            }
        }
        Command::Copy { to } => {
            let from = guildconf::open(url, false).await?;
            let dest = guildconf::open(&to, true).await?;
            let bar = progress::bar(None, "copying", json_output);
            let report =
                guildconf::copy(from.as_ref(), dest.as_ref(), |n| bar.set_position(n)).await;
            bar.finish_and_clear();
            let report = report?;
            let check = ConfigService::new(dest).verify(None).await?;
            if !check.ok {
                out.verify(&check);
                return Ok(verify_exit(&check, out));
            }
            out.imported(&report);
        }
    }
    Ok(exit::OK)
}

async fn purge(
    url: &str,
    out: &Output,
    before: &str,
    guild: Option<&str>,
    yes: bool,
    who: &PurgeActorArgs,
) -> Result<u8, Error> {
    let before = parse_time("before", before)?;
    let guild = guild.map(parse_guild).transpose()?;
    let kind = guildconf::ActorKind::parse(&who.actor_kind)
        .map_err(|e| invalid("/actor/kind", format!("--actor-kind {e}")))?;
    let mut meta = WriteMeta::new(guildconf::Actor::new(
        &who.actor,
        kind,
        who.actor_label.as_deref(),
    )?);
    meta.reason.clone_from(&who.reason);
    meta.context = guildconf::RequestContext::new().with("source", "cli");
    let service = service(url, false).await?;
    if !yes {
        let plan = service.purge_plan(before, guild).await?;
        let interactive = io::stdin().is_terminal();
        if !interactive || plan.iter().all(|p| p.entries_removed == 0) {
            out.purge(before, &plan, true);
            return Ok(exit::OK);
        }
        out.purge_plan_before_question(before, &plan);
        if !confirm("Purge? [y/N] ")? {
            out.purge(before, &plan, true);
            return Ok(exit::OK);
        }
    }
    let bar = progress::spinner("purging", out.is_json());
    let done = service.purge(before, guild, &meta).await;
    bar.finish_and_clear();
    let done = done?;
    out.purge(before, &done, false);
    Ok(exit::OK)
}

/// Asks on stderr and reads one answer from stdin: yes only for `y`/`yes`.
fn confirm(question: &str) -> Result<bool, Error> {
    let mut stderr = io::stderr().lock();
    let _ = stderr.write_all(question.as_bytes());
    let _ = stderr.flush();
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Storage(format!("cannot read the answer: {e}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn verify_exit(report: &VerifyReport, out: &Output) -> u8 {
    if report.ok {
        exit::OK
    } else {
        out.error_only_json(
            "verification_failed",
            &format!("{} guild(s) failed verification", report.problems.len()),
        );
        exit::VERIFY_FAILED
    }
}
