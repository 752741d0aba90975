//! The reads: `show`, `list`, `history`, `diff`, `stats`.

use guildconf::{
    At, EntryFilter, Error, EventOutcome, HistoryRequest, Operation, StatsBy, StatsQuery,
};

use super::super::args::{DiffArgs, HistoryArgs, ShowArgs, StatsArgs};
use super::super::input::{invalid, optional, parse_guild, parse_path, parse_time, parse_u64};
use super::super::{exit, Ctx};

pub async fn show(ctx: &Ctx<'_>, args: ShowArgs) -> Result<u8, Error> {
    let guild = parse_guild(&args.guild)?;
    let at = match (args.version, args.at) {
        (Some(v), None) => At::Version(parse_u64("version", &v)?),
        (None, Some(t)) => At::Time(parse_time("at", &t)?),
        (None, None) => At::Now,
        (Some(_), Some(_)) => return Err(invalid("/version", "give --version or --at, not both")),
    };
    let path = optional(args.path.as_deref(), parse_path)?;
    let service = ctx.service(false).await?;
    let shown = service.get(guild, at).await?;
    let document = if args.reveal_secrets {
        shown.document.clone()
    } else {
        service.redact(&shown.document)
    };
    ctx.out.show(&shown, document, path.as_ref())?;
    Ok(exit::OK)
}

pub async fn list(ctx: &Ctx<'_>) -> Result<u8, Error> {
    let guilds = ctx.service(false).await?.list().await?;
    ctx.out.list(&guilds);
    Ok(exit::OK)
}

fn parse_operation(text: &str) -> Result<Operation, Error> {
    Operation::parse(text).map_err(|e| invalid("/operation", format!("--operation {e}")))
}

/// A family: `config`, or the first part of an action key.
fn parse_family(text: &str) -> Result<String, Error> {
    let ok = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(invalid("/family", "--family must be a-z, 0-9 and _"))
    }
}

fn parse_limit(text: &str) -> Result<u32, Error> {
    parse_u64("limit", text)
        .and_then(|n| u32::try_from(n).map_err(|_| invalid("/limit", "--limit is too large")))
}

pub async fn history(ctx: &Ctx<'_>, args: HistoryArgs) -> Result<u8, Error> {
    let request = HistoryRequest {
        guild_id: optional(args.guild.as_deref(), parse_guild)?,
        actor_id: args.actor,
        operation: optional(args.operation.as_deref(), parse_operation)?,
        filter: EntryFilter {
            family: optional(args.family.as_deref(), parse_family)?,
            outcome: optional(args.outcome.as_deref(), |o| {
                EventOutcome::parse(o).map_err(|e| invalid("/outcome", format!("--outcome {e}")))
            })?,
            target_type: args.target_type,
            target_id: args.target_id,
        },
        path: optional(args.path.as_deref(), parse_path)?,
        since: optional(args.since.as_deref(), |t| parse_time("since", t))?,
        until: optional(args.until.as_deref(), |t| parse_time("until", t))?,
        limit: optional(args.limit.as_deref(), parse_limit)?,
        cursor: args.cursor,
    };
    let page = ctx.service(false).await?.history(&request).await?;
    ctx.out.history(&page)?;
    Ok(exit::OK)
}

pub async fn diff(ctx: &Ctx<'_>, args: DiffArgs) -> Result<u8, Error> {
    let guild = parse_guild(&args.guild)?;
    let (from, to) = (parse_u64("from", &args.from)?, parse_u64("to", &args.to)?);
    let changes = ctx.service(false).await?.diff(guild, from, to).await?;
    ctx.out.diff(guild, from, to, &changes);
    Ok(exit::OK)
}

pub async fn stats(ctx: &Ctx<'_>, args: StatsArgs) -> Result<u8, Error> {
    let by = StatsBy::parse(&args.by).map_err(|e| invalid("/by", format!("--by {e}")))?;
    let query = StatsQuery {
        guild_id: optional(args.guild.as_deref(), parse_guild)?,
        since: optional(args.since.as_deref(), |t| parse_time("since", t))?,
        until: optional(args.until.as_deref(), |t| parse_time("until", t))?,
        by,
    };
    let rows = ctx.service(false).await?.stats(&query).await?;
    ctx.out.stats(&rows);
    Ok(exit::OK)
}
