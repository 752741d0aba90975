//! Whole-database work: `purge`, `import`, `copy`.

use std::io::{self, BufRead, IsTerminal, Write};

use guildconf::{ConfigService, Error, ImportRefusal};

use super::super::args::{CopyArgs, ImportArgs, KeygenArgs, PurgeArgs};
use super::super::input::{open_file, optional, parse_guild, parse_time};
use super::super::output::Output;
use super::super::{exit, progress, Ctx};
use super::audit::verify_exit;

pub async fn purge(ctx: &Ctx<'_>, args: PurgeArgs) -> Result<u8, Error> {
    let out = ctx.out;
    let before = parse_time("before", &args.before)?;
    let guild = optional(args.guild.as_deref(), parse_guild)?;
    let meta = args.actor.meta()?;
    let service = ctx.service(false).await?;
    if !args.yes {
        let plan = service.purge_plan(before, guild).await?;
        if !io::stdin().is_terminal() {
            // A cron job that forgot --yes must not believe it purged.
            out.purge(before, &plan, true);
            out.error(
                "usage",
                "purge removes history: without a terminal to confirm on, give --yes",
            );
            return Ok(exit::USAGE);
        }
        if plan.iter().all(|p| p.entries_removed == 0) {
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
    out.purge(before, &done?, false);
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

pub async fn import(ctx: &Ctx<'_>, args: ImportArgs) -> Result<u8, Error> {
    let out = ctx.out;
    let store = guildconf::open(ctx.url, ctx.open_options(true)).await?;
    let bar = progress::bar(None, "importing", out.is_json());
    let ticks = bar.clone();
    let result = guildconf::import(
        store.as_ref(),
        || open_file(&args.file),
        move |n| ticks.set_position(n),
    )
    .await;
    bar.finish_and_clear();
    refusal(out, result)
}

/// An import's or a copy's outcome: the report, or why nothing was stored.
fn refusal(
    out: &Output,
    result: Result<guildconf::ImportReport, ImportRefusal>,
) -> Result<u8, Error> {
    match result {
        Ok(report) => out.imported(&report),
        Err(ImportRefusal::Unverified(report)) => {
            out.verify(&report);
            out.error_only_json(
                "verification_failed",
                "the file does not verify; nothing was imported",
            );
            if !out.is_json() {
                eprintln!("error: the file does not verify; nothing was imported");
            }
            return Ok(exit::VERIFY_FAILED);
        }
        Err(ImportRefusal::Rejected(reason)) => {
            out.error(
                "verification_failed",
                &format!("{reason}; nothing was imported"),
            );
            return Ok(exit::VERIFY_FAILED);
        }
        Err(ImportRefusal::Failed(e)) => return Err(e),
    }
    Ok(exit::OK)
}

pub async fn copy(ctx: &Ctx<'_>, args: CopyArgs) -> Result<u8, Error> {
    let from = guildconf::open(ctx.url, ctx.open_options(false)).await?;
    let dest = guildconf::open(&args.to, ctx.open_options(true)).await?;
    let bar = progress::bar(None, "copying", ctx.out.is_json());
    let ticks = bar.clone();
    let report = guildconf::copy(from, dest.as_ref(), move |n| ticks.set_position(n)).await;
    bar.finish_and_clear();
    let code = refusal(ctx.out, report)?;
    if code != exit::OK {
        return Ok(code);
    }
    let check = ConfigService::new(dest).verify(None).await?;
    if !check.ok {
        ctx.out.verify(&check);
        return Ok(verify_exit(&check, ctx.out));
    }
    Ok(exit::OK)
}

/// `migrate`: creates the database if missing and applies the migrations.
pub async fn migrate(ctx: &Ctx<'_>) -> Result<u8, Error> {
    guildconf::open(ctx.url, ctx.open_options(true).migrate(true)).await?;
    if ctx.out.is_json() {
        println!("{}", serde_json::json!({"migrated": true}));
    } else {
        println!("the schema is up to date");
    }
    Ok(exit::OK)
}

pub fn keygen(ctx: &Ctx<'_>, args: KeygenArgs) -> Result<u8, Error> {
    let fingerprint = guildconf::keygen(&args.output)?;
    let public = guildconf::signing::public_key_path(&args.output);
    ctx.out.keygen(&args.output, &public, &fingerprint);
    Ok(exit::OK)
}
