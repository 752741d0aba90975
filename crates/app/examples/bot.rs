//! A small bot embedding guildconf, with the Discord gateway replaced by a
//! script of events.
//!
//! It shows the three things almost every bot does with its configuration:
//!
//! - on every "member joined" event it reads the guild's typed
//!   [`GuildConfig`] (the defaults for a guild that was never configured,
//!   without writing anything) and greets the member or stays silent,
//!   depending on `onboarding.enabled`;
//! - `/config set <path> <value>` changes one field, recording the invoking
//!   member as the [`Actor`] and the slash command as the request context;
//!   invalid values come back as a reply listing every violation by path;
//! - `/config history <path>` shows a moderator who changed one field, when,
//!   and from what to what.
//! - a `/config` command refused for lack of permission is put on record in
//!   the guild's chain as an event: `config.denied` with the path a member
//!   tried to set, `permission.denied` for a refused `/config history`.
//!
//! Run it:
//!
//! ```text
//! cargo run -p guildconf --example bot                       # the built-in script
//! cargo run -p guildconf --example bot -- sqlite:///tmp/b.db # another database
//! cargo run -p guildconf --example bot -- --stdin < events.txt
//! ```
//!
//! The database URL is the first argument, else `GUILDCONF_DATABASE_URL`, else
//! `sqlite://bot-example.db`.
//!
//! With `--metrics 127.0.0.1:PORT` the bot serves guildconf's metrics for
//! Prometheus at `http://127.0.0.1:PORT/metrics` while it runs, and after
//! its events until Ctrl-C. The library emits them only when built with its
//! `metrics` feature:
//!
//! ```text
//! cargo run -p guildconf --features metrics --example bot -- --metrics 127.0.0.1:9184
//! ```
//!
//! With `--stdin`, each line is one event:
//!
//! ```text
//! join | <guild id> | <user id> | <display name>
//! cmd  | <guild id> | <channel id> | <user id> | <display name> | mod|member | <command>
//! ```
//!
//! `mod` stands for Discord's Manage Server permission, which a real bot would
//! read from the interaction. Blank lines and lines starting with `#` are
//! skipped.
//!
//! The built-in script states what each step should do; the process exits 1
//! if any step does something else, or if the database fails. The script
//! leaves the demo guild's onboarding switched off, so running it again
//! against the same database behaves the same way.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use guildconf::json::{display_path, get_at, parse_pointer};
use guildconf::{
    open, value_at, Actor, ActorKind, Change, ConfigService, Entry, Error, Event as AuditEvent,
    EventOutcome, FieldEdit, FieldPath, GuildConfig, GuildId, HistoryRequest, OpenOptions, Outcome,
    RequestContext, Target, WriteMeta,
};
use serde_json::Value;

const DEFAULT_URL: &str = "sqlite://bot-example.db";

/// How many entries `/config history` shows at once.
const HISTORY_PAGE: u32 = 5;

/// Discord's epoch (2015-01-01), in Unix milliseconds; snowflakes count from it.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// What a scripted step is expected to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A command succeeds.
    Done,
    /// A command is refused with a message for the user.
    Refused,
    /// A joining member is greeted.
    Greets,
    /// A joining member is not greeted.
    Silent,
}

/// The built-in script. Guild 418203119447113728 is configured during the
/// script; guild 418203119447113999 never is, and must stay unwritten.
const SCRIPT: &[(Expect, &str)] = &[
    // A brand-new guild: the defaults apply, onboarding is off.
    (Expect::Silent, "join | 418203119447113728 | 80351110224678914 | Carol"),
    (Expect::Silent, "join | 418203119447113999 | 80351110224678915 | Dave"),
    // Members without Manage Server cannot change anything.
    (Expect::Refused, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678913 | Bob | member | /config set onboarding.enabled true"),
    // Validation: onboarding needs a welcome channel first.
    (Expect::Refused, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set onboarding.enabled true"),
    // Validation: a channel is an id, not a name; unknown fields are typos.
    (Expect::Refused, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set onboarding.welcome_channel general"),
    (Expect::Refused, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set onboarding.welcom_message hi"),
    // Every violation of one value is listed, each with its path.
    (Expect::Refused, r#"cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set yearly_reset {"enabled": true, "month": 2, "day": 30, "timezone": "Mars/Olympus_Mons"}"#),
    // The first successful write creates the guild's config.
    (Expect::Done, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set onboarding.welcome_channel 418203119451308033"),
    (Expect::Done, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set onboarding.welcome_message Welcome to the server, {user}! Read #rules first."),
    (Expect::Done, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set onboarding.enabled true"),
    (Expect::Greets, "join | 418203119447113728 | 80351110224678916 | Erin"),
    // Verification by captcha needs a role to grant.
    (Expect::Refused, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set onboarding.verification.mode captcha"),
    // A secret: stored, but never shown back, not even in history.
    (Expect::Done, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set announcements.webhook_url https://discord.com/api/webhooks/1/not-a-real-token"),
    // "[redacted]" means "keep the stored secret": nothing changes.
    (Expect::Done, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set announcements.webhook_url [redacted]"),
    (Expect::Done, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config history onboarding.enabled"),
    (Expect::Done, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config history announcements.webhook_url"),
    (Expect::Refused, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678913 | Bob | member | /config history onboarding.enabled"),
    (Expect::Refused, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config reset everything"),
    // Alice switches onboarding off again (which also makes the script
    // repeatable on the same database).
    (Expect::Done, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set onboarding.enabled false"),
    (Expect::Done, "cmd | 418203119447113728 | 418203119451308032 | 80351110224678912 | Alice | mod | /config set onboarding.welcome_channel null"),
    (Expect::Silent, "join | 418203119447113728 | 80351110224678917 | Frank"),
    (Expect::Silent, "join | 418203119447113999 | 80351110224678918 | Grace"),
];

/// The guild the script configures.
const DEMO_GUILD: &str = "418203119447113728";

/// The guild the script never configures: reading its config must not write.
const UNCONFIGURED_GUILD: &str = "418203119447113999";

/// The member behind an interaction.
#[derive(Debug)]
struct Member {
    user_id: String,
    display_name: String,
    /// Stands in for Discord's Manage Server permission.
    can_manage: bool,
}

/// One gateway event, as far as this bot cares.
#[derive(Debug)]
enum Event {
    MemberJoined {
        guild: GuildId,
        user_id: String,
        display_name: String,
    },
    SlashCommand {
        guild: GuildId,
        channel_id: String,
        member: Member,
        interaction_id: String,
        text: String,
    },
}

/// What the bot answers.
#[derive(Debug)]
enum Reply {
    /// A command did what was asked.
    Done(String),
    /// A command was refused; the text tells the member why.
    Refused(String),
    /// A message posted in the welcome channel.
    Greet { channel: String, text: String },
    /// Nothing is posted for a joining member.
    Silent(String),
}

impl Reply {
    fn matches(&self, expect: Expect) -> bool {
        matches!(
            (self, expect),
            (Reply::Done(_), Expect::Done)
                | (Reply::Refused(_), Expect::Refused)
                | (Reply::Greet { .. }, Expect::Greets)
                | (Reply::Silent(_), Expect::Silent)
        )
    }

    fn print(&self) {
        match self {
            Reply::Done(text) => println!("  bot → {}", indent(text)),
            Reply::Refused(text) => println!("  bot → ✗ {}", indent(text)),
            Reply::Greet { channel, text } => println!("  bot → [in #{channel}] {text}"),
            Reply::Silent(why) => println!("  bot   (no greeting: {why})"),
        }
    }
}

fn indent(text: &str) -> String {
    text.replace('\n', "\n        ")
}

/// A failure the member cannot fix: the database is down or its data is not
/// what guildconf wrote. The member gets an apology; the operator gets this.
#[derive(Debug)]
struct Internal(Error);

/// The bot: one `ConfigService`, shared by every event handler.
#[derive(Debug)]
struct Bot {
    config: ConfigService,
    next_interaction: u64,
}

impl Bot {
    async fn handle(&mut self, event: Event) -> Result<Reply, Internal> {
        match event {
            Event::MemberJoined {
                guild,
                user_id,
                display_name,
            } => self.member_joined(guild, &user_id, &display_name).await,
            Event::SlashCommand {
                guild,
                channel_id,
                member,
                interaction_id,
                text,
            } => {
                self.slash_command(guild, &channel_id, &member, &interaction_id, &text)
                    .await
            }
        }
    }

    /// Reads the typed config on every join. For a guild nobody configured
    /// this returns the defaults and writes nothing.
    async fn member_joined(
        &self,
        guild: GuildId,
        user_id: &str,
        display_name: &str,
    ) -> Result<Reply, Internal> {
        let config: GuildConfig = self.config.guild_config(guild).await.map_err(Internal)?;
        let onboarding = &config.onboarding;
        if !onboarding.enabled {
            return Ok(Reply::Silent("onboarding is off in this guild".into()));
        }
        // Validation guarantees a welcome channel whenever onboarding is on;
        // staying silent is still better than panicking on a hand-edited row.
        let Some(channel) = onboarding.welcome_channel else {
            return Ok(Reply::Silent("onboarding has no welcome channel".into()));
        };
        let mention = format!("<@{user_id}> ({display_name})");
        let text = match &onboarding.welcome_message {
            Some(message) => message.replace("{user}", &mention),
            None => format!("Welcome, {mention}!"),
        };
        Ok(Reply::Greet {
            channel: channel.to_string(),
            text,
        })
    }

    async fn slash_command(
        &mut self,
        guild: GuildId,
        channel_id: &str,
        member: &Member,
        interaction_id: &str,
        text: &str,
    ) -> Result<Reply, Internal> {
        let Some(args) = text.strip_prefix("/config ") else {
            return Ok(Reply::Refused(USAGE.into()));
        };
        let (sub, rest) = args.trim().split_once(' ').unwrap_or((args.trim(), ""));
        let rest = rest.trim();
        match sub {
            "set" | "history" if !member.can_manage => {
                self.record_refusal(guild, member, sub, rest, interaction_id)
                    .await?;
                Ok(Reply::Refused(
                    "You need the Manage Server permission to use /config.".into(),
                ))
            }
            "set" => {
                let Some((path, value)) = rest.split_once(' ') else {
                    return Ok(Reply::Refused("Usage: /config set <path> <value>".into()));
                };
                let actor = match Actor::new(
                    &member.user_id,
                    ActorKind::Human,
                    Some(&member.display_name),
                ) {
                    Ok(actor) => actor,
                    Err(violations) => return user_error(Error::Invalid(violations)),
                };
                let mut meta = WriteMeta::new(actor);
                meta.context = RequestContext::new()
                    .with("source", "slash-command")
                    .with("command", text)
                    .with("channel_id", channel_id)
                    .with("session_id", interaction_id);
                meta.request_id = Some(format!("interaction-{interaction_id}"));
                self.set(guild, path, value.trim(), &meta).await
            }
            "history" if rest.is_empty() => {
                Ok(Reply::Refused("Usage: /config history <path>".into()))
            }
            "history" => self.history(guild, rest).await,
            _ => Ok(Reply::Refused(USAGE.into())),
        }
    }

    /// Puts a refused command on record in the guild's chain, by the member
    /// who tried it: a refused `/config set` as `config.denied` with the
    /// path it tried to write, a refused `/config history` as
    /// `permission.denied`. The interaction id is the request id, so a
    /// redelivered interaction is recorded once.
    async fn record_refusal(
        &self,
        guild: GuildId,
        member: &Member,
        sub: &str,
        rest: &str,
        interaction_id: &str,
    ) -> Result<(), Internal> {
        let target = Target::new("member", &member.user_id).with_label(&member.display_name);
        let event = if sub == "set" {
            // The attempted path as a JSON Pointer; a path that does not
            // parse is recorded as the attempt with no paths.
            let paths: Vec<String> = rest
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<FieldPath>().ok())
                .map(|p| p.to_string())
                .into_iter()
                .collect();
            AuditEvent::new("config.denied", EventOutcome::Blocked, target).with("paths", paths)
        } else {
            AuditEvent::new("permission.denied", EventOutcome::Blocked, target)
                .with("permission", "manage_guild")
        };
        let Ok(actor) = Actor::new(
            &member.user_id,
            ActorKind::Human,
            Some(&member.display_name),
        ) else {
            // A member id the actor rules refuse cannot be recorded as one.
            return Ok(());
        };
        let mut meta = WriteMeta::new(actor);
        meta.context = RequestContext::new().with("source", "slash-command");
        meta.request_id = Some(format!("interaction-{interaction_id}"));
        match self.config.record(guild, &event, &meta).await {
            Ok(_) => Ok(()),
            Err(e @ (Error::Storage(_) | Error::Corrupt(_))) => Err(Internal(e)),
            // Input the registry refuses is a bug in this bot, not the member's.
            Err(e) => {
                eprintln!("could not record the refusal: {e}");
                Ok(())
            }
        }
    }

    /// `/config set <path> <value>`: the value is JSON if it parses (so
    /// `true`, `null`, `42` and objects work), otherwise a plain string.
    async fn set(
        &self,
        guild: GuildId,
        path: &str,
        value: &str,
        meta: &WriteMeta,
    ) -> Result<Reply, Internal> {
        let path: FieldPath = match path.parse() {
            Ok(path) => path,
            Err(e) => return user_error(Error::Invalid(e)),
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        // One upsert covers a guild's first set (create) and every later one
        // (update), so the interaction id can serve as the request id: a
        // redelivered interaction replays instead of writing twice.
        let edit = FieldEdit::new().set(path.clone(), value);
        let written = match self.config.upsert(guild, edit, meta).await {
            Ok(written) => written,
            Err(e) => return user_error(e),
        };
        let shown = display_path(&path.to_string());
        if written.outcome == Outcome::Unchanged {
            return Ok(Reply::Done(format!(
                "Nothing to change: {shown} already has that value."
            )));
        }
        // Read back what is stored (normalised, secrets redacted), which is
        // what the member should see.
        let stored = self.config.get_or_default(guild).await.map_err(Internal)?;
        let now = value_at(&self.config.redact(&stored.document), &path)
            .map_or_else(|_| "(not set)".to_owned(), |v| short(&v));
        let created = if written.outcome == Outcome::Created {
            " This guild's config was created from the defaults."
        } else {
            ""
        };
        Ok(Reply::Done(format!(
            "Saved: {shown} is now {now} (config version {}).{created}",
            written.version
        )))
    }

    /// `/config history <path>`: the newest changes of one field.
    async fn history(&self, guild: GuildId, path: &str) -> Result<Reply, Internal> {
        let path: FieldPath = match path.parse() {
            Ok(path) => path,
            Err(e) => return user_error(Error::Invalid(e)),
        };
        let request = HistoryRequest {
            guild_id: Some(guild),
            path: Some(path.clone()),
            limit: Some(HISTORY_PAGE),
            ..HistoryRequest::default()
        };
        let page = match self.config.history(&request).await {
            Ok(page) => page,
            Err(e) => return user_error(e),
        };
        let shown = display_path(&path.to_string());
        if page.entries.is_empty() {
            return Ok(Reply::Done(format!("No changes to {shown} are recorded.")));
        }
        let mut out = format!("History of {shown}, newest first:");
        for entry in &page.entries {
            out.push('\n');
            out.push_str(&history_line(entry, path.segments()));
        }
        if page.next_cursor.is_some() {
            out.push_str("\n… and older changes.");
        }
        Ok(Reply::Done(out))
    }

    /// A plausible interaction id: a snowflake from the current time and a
    /// counter, so ids stay unique across runs on the same database.
    fn interaction_id(&mut self) -> String {
        self.next_interaction += 1;
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        let since_epoch = ms.saturating_sub(DISCORD_EPOCH_MS);
        ((since_epoch << 22) | (self.next_interaction & 0xfff)).to_string()
    }
}

const USAGE: &str = "Commands: /config set <path> <value> · /config history <path>";

/// Turns a service error into a reply for the member, or an internal failure
/// for the operator.
fn user_error(error: Error) -> Result<Reply, Internal> {
    match error {
        Error::Invalid(violations) => {
            let mut out = String::from("That change was refused:");
            for v in &violations.0 {
                let path = if v.path.is_empty() {
                    "(whole config)".to_owned()
                } else {
                    display_path(&v.path)
                };
                out.push_str(&format!("\n• {path}: {}", v.message));
            }
            Ok(Reply::Refused(out))
        }
        Error::NotFound(message) => Ok(Reply::Refused(format!("Not found: {message}."))),
        Error::Conflict(message) => Ok(Reply::Refused(format!(
            "Someone else changed the config at the same time ({message}); please try again."
        ))),
        e @ (Error::Storage(_) | Error::Corrupt(_)) => Err(Internal(e)),
    }
}

/// One history entry, narrowed to the asked-for field.
fn history_line(entry: &Entry, wanted: &[String]) -> String {
    let body = &entry.body;
    let what: Vec<String> = body
        .changes
        .iter()
        .filter_map(|change| describe(change, wanted))
        .collect();
    let what = if what.is_empty() {
        body.summary.clone()
    } else {
        what.join("; ")
    };
    let via = body
        .context
        .get("source")
        .and_then(Value::as_str)
        .map_or_else(String::new, |s| format!(" via {s}"));
    format!(
        "• v{} {} by {}{via}: {what}",
        body.config_version, body.occurred_at, body.actor.label
    )
}

/// Describes a change as it affects `wanted`: a change at or above it is
/// narrowed to the field's own before and after; one below it is shown as is.
fn describe(change: &Change, wanted: &[String]) -> Option<String> {
    let at = parse_pointer(change.path()).ok()?;
    let (before, after) = match change {
        Change::Add { after, .. } => (None, Some(after)),
        Change::Remove { before, .. } => (Some(before), None),
        Change::Replace { before, after, .. } => (Some(before), Some(after)),
    };
    if wanted.starts_with(&at) {
        let rest = &wanted[at.len()..];
        let before = before.and_then(|v| get_at(v, rest));
        let after = after.and_then(|v| get_at(v, rest));
        if before == after {
            return None;
        }
        Some(transition(before, after))
    } else if at.starts_with(wanted) {
        Some(format!(
            "{}: {}",
            display_path(change.path()),
            transition(before, after)
        ))
    } else {
        None
    }
}

fn transition(before: Option<&Value>, after: Option<&Value>) -> String {
    match (before, after) {
        (Some(before), Some(after)) => format!("{} → {}", short(before), short(after)),
        (None, Some(after)) => format!("set to {}", short(after)),
        (Some(before), None) => format!("removed (was {})", short(before)),
        (None, None) => "no value".to_owned(),
    }
}

/// A value as one short line of JSON.
fn short(value: &Value) -> String {
    const MAX: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// Parses one script line into an event.
fn parse_event(line: &str, bot: &mut Bot) -> Result<Event, String> {
    let fields: Vec<&str> = line.splitn(7, '|').map(str::trim).collect();
    let guild = |text: &str| GuildId::parse(text).map_err(|e| format!("guild id {e}"));
    match fields.as_slice() {
        ["join", g, user_id, name] => Ok(Event::MemberJoined {
            guild: guild(g)?,
            user_id: (*user_id).to_owned(),
            display_name: (*name).to_owned(),
        }),
        ["cmd", g, channel_id, user_id, name, role, text] => {
            let can_manage = match *role {
                "mod" => true,
                "member" => false,
                other => return Err(format!("expected mod or member, got {other:?}")),
            };
            Ok(Event::SlashCommand {
                guild: guild(g)?,
                channel_id: (*channel_id).to_owned(),
                member: Member {
                    user_id: (*user_id).to_owned(),
                    display_name: (*name).to_owned(),
                    can_manage,
                },
                interaction_id: bot.interaction_id(),
                text: (*text).to_owned(),
            })
        }
        _ => Err("expected `join | guild | user | name` or \
             `cmd | guild | channel | user | name | mod|member | /command`"
            .into()),
    }
}

fn echo(event: &Event) {
    match event {
        Event::MemberJoined {
            guild,
            display_name,
            ..
        } => println!("[guild {guild}] {display_name} joined"),
        Event::SlashCommand {
            guild,
            member,
            text,
            ..
        } => println!("[guild {guild}] {}: {text}", member.display_name),
    }
}

/// Runs one line; returns whether it went as expected.
async fn step(bot: &mut Bot, line: &str, expect: Option<Expect>) -> bool {
    let event = match parse_event(line, bot) {
        Ok(event) => event,
        Err(e) => {
            eprintln!("bad script line {line:?}: {e}");
            return false;
        }
    };
    echo(&event);
    match bot.handle(event).await {
        Ok(reply) => {
            reply.print();
            match expect {
                Some(expect) if !reply.matches(expect) => {
                    eprintln!("  unexpected: this step should have been {expect:?}");
                    false
                }
                _ => true,
            }
        }
        Err(Internal(e)) => {
            println!("  bot → ✗ Something went wrong on our side; please try again later.");
            eprintln!("  internal error ({}): {e}", e.code());
            false
        }
    }
}

const USAGE_LINE: &str = "usage: bot [DATABASE_URL] [--stdin] [--metrics 127.0.0.1:PORT]";

/// Exit statuses: as the `guildconf` command line's.
const EXIT_OK: u8 = 0;
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn usage() -> u8 {
    eprintln!("{USAGE_LINE}");
    EXIT_USAGE
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (status, metrics) = run(&args).await;
    if let (EXIT_OK, Some(addr)) = (status, metrics) {
        // The events are over, but a scraper may not have come by yet.
        println!("bot: serving http://{addr}/metrics until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    ExitCode::from(status)
}

/// Runs the bot with the command-line arguments `args`: the exit status,
/// and the address metrics are served on (served from this runtime, for as
/// long as it runs).
async fn run(args: &[String]) -> (u8, Option<SocketAddr>) {
    let mut url = None;
    let mut from_stdin = false;
    let mut metrics = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stdin" => from_stdin = true,
            "--metrics" => match args.next().map(|a| a.parse::<SocketAddr>()) {
                Some(Ok(addr)) => metrics = Some(addr),
                Some(Err(e)) => {
                    eprintln!("--metrics takes an address such as 127.0.0.1:9184: {e}");
                    return (EXIT_USAGE, None);
                }
                None => return (usage(), None),
            },
            "-h" | "--help" => {
                println!("{USAGE_LINE}");
                return (EXIT_OK, None);
            }
            flag if flag.starts_with('-') => return (usage(), None),
            _ if url.is_some() => return (usage(), None),
            _ => url = Some(arg.clone()),
        }
    }
    if let Some(addr) = metrics {
        if let Err((status, message)) = serve_metrics(addr) {
            eprintln!("{message}");
            return (status, None);
        }
        println!("bot: metrics at http://{addr}/metrics");
    }
    let status = run_bot(url, from_stdin).await;
    (status, metrics)
}

/// The buckets of the write latency histogram, in seconds: from half a
/// millisecond (an SQLite write) to a few seconds (a write stuck behind
/// locks).
#[cfg(feature = "metrics")]
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Installs a Prometheus recorder with an HTTP listener on `addr`, on the
/// current runtime: what a bot adds to have guildconf's metrics scraped.
#[cfg(feature = "metrics")]
fn serve_metrics(addr: SocketAddr) -> Result<(), (u8, String)> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full("guildconf_write_duration_seconds".into()),
            LATENCY_BUCKETS,
        )
        .and_then(PrometheusBuilder::install)
        .map_err(|e| (EXIT_FAILURE, format!("cannot serve metrics on {addr}: {e}")))
}

/// Without the library's `metrics` feature there is nothing to serve.
#[cfg(not(feature = "metrics"))]
fn serve_metrics(_addr: SocketAddr) -> Result<(), (u8, String)> {
    Err((
        EXIT_USAGE,
        "this bot was built without guildconf's `metrics` feature: \
         run it with `cargo run -p guildconf --features metrics --example bot -- --metrics ADDR`"
            .into(),
    ))
}

/// Opens the store and runs the script (or stdin's events): the exit status.
async fn run_bot(url: Option<String>, from_stdin: bool) -> u8 {
    let url = url
        .or_else(|| std::env::var("GUILDCONF_DATABASE_URL").ok())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());

    let store = match open(&url, OpenOptions::new().create_if_missing(true)).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot open {url}: {e}");
            return EXIT_FAILURE;
        }
    };
    let mut bot = Bot {
        config: ConfigService::new(store),
        next_interaction: 0,
    };
    println!("bot: configuration store {url}\n");

    let mut ok = true;
    if from_stdin {
        for line in std::io::stdin().lock().lines() {
            let line = match line {
                Ok(line) => line,
                Err(e) => {
                    eprintln!("cannot read stdin: {e}");
                    return EXIT_FAILURE;
                }
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            ok &= step(&mut bot, line, None).await;
        }
    } else {
        for (expect, line) in SCRIPT {
            ok &= step(&mut bot, line, Some(*expect)).await;
        }
        ok &= check_unwritten(&bot).await;
        ok &= check_refusals_recorded(&bot).await;
    }

    if ok {
        EXIT_OK
    } else {
        eprintln!("\nsome steps did not go as expected");
        EXIT_FAILURE
    }
}

/// Reading a guild's config never writes: the guild the script only reads
/// still has no stored config afterwards.
async fn check_unwritten(bot: &Bot) -> bool {
    let Ok(guild) = GuildId::parse(UNCONFIGURED_GUILD) else {
        eprintln!("the script's unconfigured guild id does not parse");
        return false;
    };
    match bot.config.store().head(guild).await {
        Ok(None) => {
            println!("\nguild {guild} was only read: nothing was stored for it.");
            true
        }
        Ok(Some(head)) => {
            eprintln!(
                "guild {guild} was only read, yet it has a stored head at version {}",
                head.version
            );
            false
        }
        Err(e) => {
            eprintln!("cannot read guild {guild}'s head: {e}");
            false
        }
    }
}

/// Every refused `/config set` of the script is on record as a
/// `config.denied` event in the demo guild's chain.
async fn check_refusals_recorded(bot: &Bot) -> bool {
    let (Ok(guild), Ok(operation)) = (
        GuildId::parse(DEMO_GUILD),
        guildconf::Operation::parse("config.denied"),
    ) else {
        eprintln!("the script's guild id or the action key does not parse");
        return false;
    };
    let request = HistoryRequest {
        guild_id: Some(guild),
        operation: Some(operation),
        limit: Some(1),
        ..HistoryRequest::default()
    };
    match bot.config.history(&request).await {
        Ok(page) if !page.entries.is_empty() => {
            println!(
                "the refused /config set is on record: {}",
                page.entries[0].body.summary
            );
            true
        }
        Ok(_) => {
            eprintln!("the refused /config set was not recorded as config.denied");
            false
        }
        Err(e) => {
            eprintln!("cannot read guild {guild}'s history: {e}");
            false
        }
    }
}

/// The bot's metrics, scraped: the example runs its built-in script with
/// `--metrics` on a free port, as `main` does, and reads the Prometheus page
/// over HTTP.
#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    /// A port nobody listens on right now.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("the system hands out a free port")
    }

    /// `GET /metrics` over plain HTTP/1.1: the whole response.
    async fn scrape(addr: SocketAddr) -> String {
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(addr).expect("the listener accepts");
            let request =
                format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .expect("the request is sent");
            let mut response = String::new();
            stream
                .read_to_string(&mut response)
                .expect("the response is read");
            response
        })
        .await
        .expect("the scrape runs")
    }

    /// The value of one series (`name{labels}`), if the page has it.
    fn value(page: &str, series: &str) -> Option<f64> {
        page.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    #[tokio::test]
    async fn the_script_s_writes_and_events_are_scraped_without_guild_ids() {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let url = format!("sqlite://{}", dir.path().join("bot.db").display());
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let args = [url, "--metrics".to_owned(), addr.to_string()];
        let (status, served) = run(&args).await;
        assert_eq!((status, served), (EXIT_OK, Some(addr)));

        let response = scrape(addr).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let page = response;
        let expected = [
            // Alice's /config set calls, one upsert each: the first creates
            // the config, "[redacted]" keeps the secret (unchanged).
            (
                r#"guildconf_writes_total{operation="upsert",outcome="created"}"#,
                1.0,
            ),
            (
                r#"guildconf_writes_total{operation="upsert",outcome="updated"}"#,
                5.0,
            ),
            (
                r#"guildconf_writes_total{operation="upsert",outcome="unchanged"}"#,
                1.0,
            ),
            // Bob's refused commands, recorded as events by action key, with
            // the event's outcome.
            (
                r#"guildconf_writes_total{operation="config.denied",outcome="blocked"}"#,
                1.0,
            ),
            (
                r#"guildconf_writes_total{operation="permission.denied",outcome="blocked"}"#,
                1.0,
            ),
            // Values the schema refuses: invalid input, nothing stored.
            (
                r#"guildconf_write_errors_total{operation="upsert",error="invalid_input"}"#,
                5.0,
            ),
            // Every write call is timed, refused ones included.
            (
                r#"guildconf_write_duration_seconds_count{operation="upsert"}"#,
                12.0,
            ),
            (
                r#"guildconf_write_duration_seconds_count{operation="config.denied"}"#,
                1.0,
            ),
            (
                r#"guildconf_write_duration_seconds_bucket{operation="upsert",le="+Inf"}"#,
                12.0,
            ),
        ];
        for (series, want) in expected {
            assert_eq!(value(&page, series), Some(want), "{series} in:\n{page}");
        }
        assert!(
            page.contains("# TYPE guildconf_write_duration_seconds histogram"),
            "{page}"
        );
        assert!(
            value(
                &page,
                r#"guildconf_write_duration_seconds_sum{operation="upsert"}"#
            )
            .is_some_and(|s| s > 0.0),
            "{page}"
        );
        // No race was lost and no commit failed in a one-bot script.
        for absent in [
            "guildconf_write_conflicts_total",
            "guildconf_write_retries_total",
            "guildconf_audit_write_failures_total",
        ] {
            assert!(!page.contains(absent), "{absent} in:\n{page}");
        }
        // No label carries a guild id (nor a member's).
        for id in [
            DEMO_GUILD,
            UNCONFIGURED_GUILD,
            "80351110224678912",
            "80351110224678913",
        ] {
            assert!(!page.contains(id), "{id} in:\n{page}");
        }
    }
}
