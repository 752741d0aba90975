//! The audit trail as evidence: `verify`, `checkpoint`, `export`.

use std::fs::File;
use std::io::{self, BufWriter};

use guildconf::{Error, ExportFormat, ExportRequest, Timestamp, VerifyOptions, VerifyReport};

use super::super::args::{CheckpointArgs, ExportArgs, VerifyArgs};
use super::super::input::{invalid, open_file, optional, parse_guild, parse_time, read_text};
use super::super::output::Output;
use super::super::{exit, progress, Ctx};

pub async fn verify(ctx: &Ctx<'_>, args: VerifyArgs) -> Result<u8, Error> {
    if args.require_signed && ctx.trusted.is_empty() {
        return Err(invalid(
            "/require_signed",
            "--require-signed needs the keys to trust: give --trusted-key FILE.pub",
        ));
    }
    let options = if ctx.trusted.is_empty() {
        VerifyOptions::new()
    } else {
        VerifyOptions::new()
            .trusted_keys(ctx.trusted.iter().copied())
            .require_signed(args.require_signed)
    };
    let report = match (args.file, args.checkpoint) {
        (_, Some(path)) => {
            let checkpoint = guildconf::Checkpoint::parse(&read_text("/checkpoint", &path)?)?;
            let service = ctx.service(false).await?;
            service
                .verify_checkpoint_with(&checkpoint, &options)
                .await?
        }
        (Some(path), None) => guildconf::verify_export_with(open_file(&path)?, &options)?,
        (None, None) => {
            let guild = optional(args.guild.as_deref(), parse_guild)?;
            let bar = progress::spinner("verifying", ctx.out.is_json());
            let report = ctx.service(false).await?.verify_with(guild, &options).await;
            bar.finish_and_clear();
            report?
        }
    };
    ctx.out.verify(&report);
    Ok(verify_exit(&report, ctx.out))
}

/// The exit code of a verification: 6, with an error object for programs,
/// when anything failed.
pub fn verify_exit(report: &VerifyReport, out: &Output) -> u8 {
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

pub async fn checkpoint(ctx: &Ctx<'_>, args: CheckpointArgs) -> Result<u8, Error> {
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let checkpoint = ctx.service(false).await?.checkpoint(now).await?;
    let text = serde_json::to_string(&checkpoint).map_err(|e| Error::Storage(e.to_string()))?;
    match &args.output {
        Some(path) => std::fs::write(path, format!("{text}\n"))
            .map_err(|e| Error::Storage(format!("cannot write {}: {e}", path.display())))?,
        None => println!("{text}"),
    }
    if !ctx.out.is_json() {
        eprintln!(
            "checkpoint of {} guild(s), digest {}: keep it (or the file) outside the database",
            checkpoint.heads.len(),
            checkpoint.digest
        );
    }
    Ok(exit::OK)
}

fn parse_format(text: &str) -> Result<ExportFormat, Error> {
    match text {
        "jsonl" => Ok(ExportFormat::Jsonl),
        "csv" => Ok(ExportFormat::Csv),
        _ => Err(invalid("/format", "--format must be jsonl or csv")),
    }
}

pub async fn export(ctx: &Ctx<'_>, args: ExportArgs) -> Result<u8, Error> {
    let request = ExportRequest {
        guild_id: optional(args.guild.as_deref(), parse_guild)?,
        since: optional(args.since.as_deref(), |t| parse_time("since", t))?,
        format: parse_format(&args.format)?,
        with_snapshots: args.with_snapshots,
    };
    let service = ctx.service(false).await?;
    let Some(path) = &args.output else {
        let mut writer = BufWriter::new(io::stdout().lock());
        service.export(&request, &mut writer).await?;
        return Ok(exit::OK);
    };
    let file = File::create(path)
        .map_err(|e| Error::Storage(format!("cannot create {}: {e}", path.display())))?;
    let bar = progress::bar(None, "exporting", ctx.out.is_json());
    let count = {
        let mut writer = progress::CountingWriter::new(BufWriter::new(file), &bar);
        service.export(&request, &mut writer).await?
    };
    bar.finish_and_clear();
    ctx.out.exported(count, path);
    Ok(exit::OK)
}
