//! One writer process for the multi-process concurrency tests.
//!
//! `stress_writer URL WRITER UPDATES GUILD[,GUILD…]` opens the database at
//! `URL` (creating a SQLite file if needed) and performs `UPDATES` updates as
//! writer `WRITER`: update `j` (counting from 0) sets `role_mapping.w<WRITER>`
//! to `j + 1` on guild `GUILDS[(j + WRITER) % GUILDS.len()]`. Every guild must
//! already exist. It prints one JSON line:
//!
//! ```json
//! {"landed": 180, "conflicts": 20, "last_landed": {"GUILD": VALUE, …}}
//! ```
//!
//! `conflicts` counts writes that exhausted their retries; `last_landed`
//! holds, per guild, the value of this writer's last landed update there.
//! Any other error ends the process with status 1 and a message on stderr.

use std::collections::BTreeMap;
use std::process::ExitCode;

use guildconf::{Actor, ActorKind, ConfigService, Error, GuildId, WriteMeta};
use serde_json::json;

struct Args {
    url: String,
    writer: u64,
    updates: u64,
    guilds: Vec<GuildId>,
}

fn parse_args() -> Result<Args, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, writer, updates, guilds] = args.as_slice() else {
        return Err("usage: stress_writer URL WRITER UPDATES GUILD[,GUILD...]".into());
    };
    let guilds = guilds
        .split(',')
        .map(|g| GuildId::parse(g).map_err(|e| format!("bad guild id {g:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if guilds.is_empty() {
        return Err("at least one guild is needed".into());
    }
    Ok(Args {
        url: url.clone(),
        writer: writer
            .parse()
            .map_err(|e| format!("bad writer number: {e}"))?,
        updates: updates
            .parse()
            .map_err(|e| format!("bad update count: {e}"))?,
        guilds,
    })
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let store = guildconf::open(
        &args.url,
        guildconf::OpenOptions::new().create_if_missing(true),
    )
    .await
    .map_err(|e| format!("cannot open the database: {e}"))?;
    let service = ConfigService::new(store);
    let actor = Actor::new(
        &format!("stress-writer-{}", args.writer),
        ActorKind::Integration,
        None,
    )
    .map_err(|e| format!("bad actor: {e}"))?;
    let meta = WriteMeta::new(actor);
    let path = guildconf::json::parse_user_path(&format!("role_mapping.w{}", args.writer))
        .map_err(|e| format!("bad path: {e}"))?;
    let (mut landed, mut conflicts) = (0u64, 0u64);
    let mut last_landed = BTreeMap::new();
    let offset = usize::try_from(args.writer).map_err(|e| e.to_string())?;
    for j in 0..args.updates {
        let index = usize::try_from(j).map_err(|e| e.to_string())?;
        let guild = args.guilds[(index + offset) % args.guilds.len()];
        let value = j + 1;
        match service
            .update(
                guild,
                guildconf_tests::edit(vec![(path.clone(), json!(value))], vec![]),
                &meta,
            )
            .await
        {
            Ok(_) => {
                landed += 1;
                last_landed.insert(guild.to_string(), value);
            }
            Err(Error::Conflict(_)) => conflicts += 1,
            Err(e) => return Err(format!("update {j} on guild {guild} failed: {e}")),
        }
    }
    Ok(json!({"landed": landed, "conflicts": conflicts, "last_landed": last_landed}))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("stress_writer: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stress_writer: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stress_writer: {e}");
            ExitCode::FAILURE
        }
    }
}
