//! API tokens: `token create`, `token list`, `token revoke`.

use guildconf::{Error, NewToken, TokenRole};

use super::super::args::{TokenCreateArgs, TokenRevokeArgs};
use super::super::input::{invalid, parse_guild};
use super::super::{exit, Ctx};

pub async fn create(ctx: &Ctx<'_>, args: TokenCreateArgs) -> Result<u8, Error> {
    // Every argument is read before the database is opened, so bad input
    // leaves no trace; the service checks the label and human id before it
    // writes anything.
    let role = TokenRole::parse(&args.role).map_err(|e| invalid("/role", format!("--role {e}")))?;
    let guilds = args
        .guilds
        .iter()
        .map(|g| parse_guild(g))
        .collect::<Result<Vec<_>, _>>()?;
    let meta = args.write.meta(None, false)?;
    let new = NewToken {
        role,
        guilds,
        label: args.label,
        human_id: args.human_id,
    };
    let service = ctx.service(false).await?;
    let issued = service.create_token(new, &meta).await?;
    ctx.out.token_created(&issued);
    Ok(exit::OK)
}

pub async fn list(ctx: &Ctx<'_>) -> Result<u8, Error> {
    let service = ctx.service(false).await?;
    ctx.out.tokens(&service.tokens().await?);
    Ok(exit::OK)
}

pub async fn revoke(ctx: &Ctx<'_>, args: TokenRevokeArgs) -> Result<u8, Error> {
    let meta = args.write.meta(None, false)?;
    let service = ctx.service(false).await?;
    let revoked = service.revoke_token(&args.id, &meta).await?;
    ctx.out.token_revoked(&revoked);
    Ok(exit::OK)
}
