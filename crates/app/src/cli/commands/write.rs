//! The writes: `create`, `set`, `apply`, `revert`, `delete`, `event`.

use guildconf::{ActionRegistry, Error, Event, EventOutcome, FieldEdit, Target, WriteResult};
use serde_json::{json, Map, Value};

use super::super::args::{ApplyArgs, CreateArgs, DeleteArgs, EventArgs, RevertArgs, SetArgs};
use super::super::input::{
    invalid, parse_assignment, parse_guild, parse_path, parse_u64, read_json_file,
};
use super::super::{exit, Ctx};

/// Prints a write's result: every write ends here.
fn written(ctx: &Ctx<'_>, result: &WriteResult) -> u8 {
    ctx.out.write_result(result);
    exit::OK
}

pub async fn create(ctx: &Ctx<'_>, args: CreateArgs) -> Result<u8, Error> {
    let guild = parse_guild(&args.guild)?;
    let mut input = match &args.file {
        Some(path) => read_json_file(path)?,
        None => json!({}),
    };
    for assignment in &args.set {
        let (path, value) = parse_assignment(assignment)?;
        guildconf::json::set_at(&mut input, path.segments(), value)
            .map_err(|e| invalid("/set", e))?;
    }
    let meta = args.write.meta(None, args.dry_run)?;
    let service = ctx.service(!args.dry_run).await?;
    Ok(written(ctx, &service.create(guild, input, &meta).await?))
}

pub async fn set(ctx: &Ctx<'_>, args: SetArgs) -> Result<u8, Error> {
    let guild = parse_guild(&args.guild)?;
    let sets = args
        .assignments
        .iter()
        .map(|a| parse_assignment(a))
        .collect::<Result<Vec<_>, _>>()?;
    let unsets = args
        .unset
        .iter()
        .map(|p| parse_path(p))
        .collect::<Result<Vec<_>, _>>()?;
    if sets.is_empty() && unsets.is_empty() {
        return Err(invalid(
            "/set",
            "give at least one PATH=VALUE or --unset PATH",
        ));
    }
    let edit = unsets.into_iter().fold(FieldEdit::new(), FieldEdit::unset);
    let edit = sets
        .into_iter()
        .fold(edit, |edit, (path, value)| edit.set(path, value));
    let meta = args.guard.meta()?;
    let service = ctx.service(false).await?;
    Ok(written(ctx, &service.update(guild, edit, &meta).await?))
}

pub async fn apply(ctx: &Ctx<'_>, args: ApplyArgs) -> Result<u8, Error> {
    let guild = parse_guild(&args.guild)?;
    let document = read_json_file(&args.file)?;
    let meta = args.guard.meta()?;
    let service = ctx.service(false).await?;
    Ok(written(
        ctx,
        &service.replace(guild, document, &meta).await?,
    ))
}

pub async fn revert(ctx: &Ctx<'_>, args: RevertArgs) -> Result<u8, Error> {
    let guild = parse_guild(&args.guild)?;
    let to = parse_u64("to", &args.to)?;
    let meta = args.guard.meta()?;
    let service = ctx.service(false).await?;
    Ok(written(ctx, &service.revert(guild, to, &meta).await?))
}

pub async fn delete(ctx: &Ctx<'_>, args: DeleteArgs) -> Result<u8, Error> {
    let guild = parse_guild(&args.guild)?;
    let meta = args.guard.meta()?;
    let service = ctx.service(false).await?;
    Ok(written(ctx, &service.delete(guild, &meta).await?))
}

pub async fn event(ctx: &Ctx<'_>, args: EventArgs) -> Result<u8, Error> {
    let guild = parse_guild(&args.guild)?;
    let outcome = EventOutcome::parse(&args.outcome)
        .map_err(|e| invalid("/outcome", format!("--outcome {e}")))?;
    let mut target = Target::new(args.target_type, args.target_id);
    target.label = args.target_label;
    let mut data = Map::new();
    for item in &args.data {
        let Some((key, value)) = item.split_once('=') else {
            return Err(invalid(
                "/data",
                format!("expected KEY=VALUE, got {item:?}"),
            ));
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        if data.insert(key.to_owned(), value).is_some() {
            return Err(invalid("/data", format!("--data {key} is given twice")));
        }
    }
    let event = Event {
        action: args.action,
        outcome,
        target,
        data,
    };
    let meta = args.write.meta(None, args.dry_run)?;
    // Checked before the database is opened (or created), so bad input
    // leaves no trace at all; the service checks again with the same keys.
    guildconf::check_recordable(&event)?;
    ActionRegistry::shipped().check(&event)?;
    let service = ctx.service(!args.dry_run).await?;
    Ok(written(ctx, &service.record(guild, &event, &meta).await?))
}
