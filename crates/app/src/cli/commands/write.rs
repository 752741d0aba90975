//! The writes: `create`, `set`, `apply`, `revert`, `delete`.

use guildconf::{Error, FieldEdit, WriteResult};
use serde_json::json;

use super::super::args::{ApplyArgs, CreateArgs, DeleteArgs, RevertArgs, SetArgs};
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
