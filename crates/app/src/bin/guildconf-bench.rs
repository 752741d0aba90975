//! `guildconf-bench`: guildconf beside the baselines a user would otherwise
//! pick, in one process on one machine (see docs/BENCHMARKS.md).
//!
//! ```text
//! cargo run --release --bin guildconf-bench -- [--quick] [--json-out FILE] [--pg-url URL]
//! ```
//!
//! Scratch PostgreSQL databases (`guildconf_bench_*`) are created on the
//! server of `--pg-url` (default `GUILDCONF_BENCH_PG_URL`, else
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards;
//! SQLite files live in a temporary directory.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use guildconf::json::canonical;
use guildconf::{
    open_with, Actor, ActorKind, CacheOptions, ConfigSchema, ConfigService, ExportRequest,
    GuildConfigSchema, GuildId, HistoryRequest, ReadCache, SqliteOptions, Synchronous, WriteMeta,
};
use guildconf_domain::{link, CanonicalDocument, Head, LinkMeta, RequestContext, Step};
use guildconf_postgres::PgStore;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgPool};

type R<T> = Result<T, String>;

fn s<T, E: Display>(r: Result<T, E>) -> R<T> {
    r.map_err(|e| e.to_string())
}

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    writes: usize,
    rounds: usize,
    reads_warm: usize,
    reads_cold: usize,
    guilds: u64,
    entries: u64,
    big: u64,
    history_iters: usize,
}

impl Sizes {
    fn full() -> Self {
        Self {
            writes: 6000,
            rounds: 5,
            reads_warm: 5_000_000,
            reads_cold: 100_000,
            guilds: 10_000,
            entries: 1_000_000,
            big: 100_000,
            history_iters: 300,
        }
    }

    fn quick() -> Self {
        Self {
            writes: 60,
            rounds: 2,
            reads_warm: 200_000,
            reads_cold: 2_000,
            guilds: 20,
            entries: 3_000,
            big: 1_500,
            history_iters: 20,
        }
    }
}

struct Args {
    quick: bool,
    json_out: Option<PathBuf>,
    pg_url: String,
    phase: Option<String>,
    url: Option<String>,
    overrides: Vec<(String, u64)>,
    /// Only these parts (`--only writes-pg,writes-sqlite,reads,history,export`);
    /// empty runs everything.
    only: Vec<String>,
}

/// The parts `--only` can name.
const PARTS: [&str; 5] = ["writes-pg", "writes-sqlite", "reads", "history", "export"];

fn parse_args() -> R<Args> {
    let mut args = Args {
        quick: false,
        json_out: None,
        pg_url: std::env::var("GUILDCONF_BENCH_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        phase: None,
        url: None,
        overrides: Vec::new(),
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => args.quick = true,
            "--json-out" => args.json_out = Some(PathBuf::from(value("--json-out")?)),
            "--pg-url" => args.pg_url = value("--pg-url")?,
            "--phase" => args.phase = Some(value("--phase")?),
            "--url" => args.url = Some(value("--url")?),
            "--only" => {
                for part in value("--only")?.split(',') {
                    if !PARTS.contains(&part) {
                        return Err(format!("--only: unknown part {part}"));
                    }
                    args.only.push(part.to_owned());
                }
            }
            "--writes" | "--reads-cold" | "--entries" | "--guilds" | "--big"
            | "--history-iters" => {
                let n = value(&a)?
                    .parse()
                    .map_err(|_| format!("{a} needs a number"))?;
                args.overrides.push((a.clone(), n));
            }
            "-h" | "--help" => {
                println!(
                    "guildconf-bench [--quick] [--json-out FILE] [--pg-url URL] \
                     [--writes N] [--reads-cold N] [--entries N] [--guilds N] [--big N] [--history-iters N] \
                     [--only writes-pg,writes-sqlite,reads,history,export]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// Every figure, by key.
type Figures = BTreeMap<String, f64>;

fn gid(n: u64) -> R<GuildId> {
    GuildId::from_u64(1_000_000_000 + n)
}

fn meta() -> R<WriteMeta> {
    Ok(WriteMeta::new(
        Actor::new("80351110224678912", ActorKind::Human, Some("bench"))
            .map_err(|e| e.to_string())?,
    ))
}

fn welcome_path() -> Vec<String> {
    vec!["onboarding".into(), "welcome_message".into()]
}

fn pg_url_for(admin: &str, db: &str) -> String {
    let base = admin.split('?').next().unwrap_or(admin);
    match base.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{db}", &base[..i]),
        _ => format!("{base}/{db}"),
    }
}

async fn fresh_pg_db(admin: &str, db: &str) -> R<String> {
    let mut conn = s(sqlx::PgConnection::connect(admin).await)?;
    s(conn
        .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
        .await)?;
    s(conn.execute(format!("CREATE DATABASE {db}").as_str()).await)?;
    Ok(pg_url_for(admin, db))
}

async fn drop_pg_db(admin: &str, db: &str) -> R<()> {
    let mut conn = s(sqlx::PgConnection::connect(admin).await)?;
    s(conn
        .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
        .await)?;
    Ok(())
}

/// Operations per second of `writers` tasks doing `per_writer` operations
/// each, every writer on its own guild.
async fn run_writers<F, Fut>(writers: usize, per_writer: usize, op: F) -> R<Duration>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = R<()>> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                op(w, i).await?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        s(t.await)??;
    }
    Ok(start.elapsed())
}

// ---------------------------------------------------------------- writes, PostgreSQL

const PEER_SQL: &str = r#"
CREATE TABLE peer_configs (guild_id BIGINT PRIMARY KEY, document JSONB NOT NULL,
    version BIGINT NOT NULL, updated_by TEXT NOT NULL);
CREATE TABLE peer_audit (id BIGSERIAL PRIMARY KEY, guild_id BIGINT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now(), actor TEXT NOT NULL,
    before JSONB, after JSONB, diff JSONB NOT NULL);
CREATE INDEX peer_audit_guild ON peer_audit (guild_id, id);
CREATE FUNCTION peer_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE d JSONB;
BEGIN
    SELECT COALESCE(jsonb_object_agg(k, jsonb_build_object('before', OLD.document -> k,
                                                           'after', NEW.document -> k)), '{}')
      INTO d
      FROM jsonb_object_keys(OLD.document || NEW.document) AS k
     WHERE OLD.document -> k IS DISTINCT FROM NEW.document -> k;
    INSERT INTO peer_audit (guild_id, actor, before, after, diff)
    VALUES (NEW.guild_id, NEW.updated_by, OLD.document, NEW.document, d);
    RETURN NEW;
END $$;
CREATE TRIGGER peer_audit_trg AFTER UPDATE ON peer_configs
    FOR EACH ROW EXECUTE FUNCTION peer_audit_fn();
CREATE SCHEMA raw;
CREATE TABLE raw.guild_heads (LIKE public.guild_heads INCLUDING ALL);
CREATE TABLE raw.guild_snapshots (LIKE public.guild_snapshots INCLUDING ALL);
CREATE TABLE raw.audit_entries (LIKE public.audit_entries INCLUDING ALL);
"#;

/// The raw-SQL baseline's rows for write `i`: the same head, snapshot and
/// entry rows guildconf writes, without diff, canonical JSON or hashing.
fn raw_rows(doc: &Value, i: usize) -> (Value, String) {
    let mut doc = doc.clone();
    doc["onboarding"]["welcome_message"] = json!(format!("hello {i}"));
    let body = json!({
        "v": 1, "seq": i + 2, "operation": "update",
        "changes": [{"op": "replace", "path": "/onboarding/welcome_message",
                     "before": format!("hello {}", i.wrapping_sub(1)), "after": format!("hello {i}")}],
        "summary": "bench (human) updated onboarding.welcome_message",
        "actor": {"id": "80351110224678912", "kind": "human", "label": "bench"},
        "context": {}, "detail": {}, "reason": null, "request_id": null,
        "prev_hash": "0".repeat(64), "snapshot_sha256": "0".repeat(64),
    })
    .to_string();
    (doc, body)
}

async fn raw_pg_write(pool: &PgPool, guild: i64, doc: &Value, i: usize) -> R<()> {
    let (doc, body) = raw_rows(doc, i);
    let seq = (i + 2) as i64;
    let now = Utc::now().to_rfc3339();
    let hash = "f".repeat(64);
    let mut tx = s(pool.begin().await)?;
    s(sqlx::query(
        "INSERT INTO raw.guild_heads (guild_id, version, seq, last_hash, updated_at, actor_id, \
         actor_kind, actor_label, document) VALUES ($1, $2, $2, $3, $4, 'a', 'human', 'bench', $5) \
         ON CONFLICT (guild_id) DO UPDATE SET version = excluded.version, seq = excluded.seq, \
         last_hash = excluded.last_hash, updated_at = excluded.updated_at, document = excluded.document",
    )
    .bind(guild)
    .bind(seq)
    .bind(&hash)
    .bind(&now)
    .bind(&doc)
    .execute(&mut *tx)
    .await)?;
    s(sqlx::query(
        "INSERT INTO raw.guild_snapshots (guild_id, version, document, sha256) VALUES ($1, $2, $3, $4)",
    )
    .bind(guild)
    .bind(seq)
    .bind(&doc)
    .bind(&hash)
    .execute(&mut *tx)
    .await)?;
    s(sqlx::query(
        "INSERT INTO raw.audit_entries (guild_id, seq, config_version, operation, occurred_at, \
         actor_id, request_id, body, entry_hash, prev_hash) \
         VALUES ($1, $2, $2, 'update', $3, 'a', NULL, $4, $5, $5)",
    )
    .bind(guild)
    .bind(seq)
    .bind(&now)
    .bind(&body)
    .bind(&hash)
    .execute(&mut *tx)
    .await)?;
    s(tx.commit().await)
}

async fn peer_pg_write(pool: &PgPool, guild: i64, doc: &Value, i: usize) -> R<()> {
    let mut doc = doc.clone();
    doc["onboarding"]["welcome_message"] = json!(format!("hello {i}"));
    s(sqlx::query(
        "UPDATE peer_configs SET document = $2, version = version + 1, updated_by = $3 \
         WHERE guild_id = $1",
    )
    .bind(guild)
    .bind(&doc)
    .bind("80351110224678912")
    .execute(pool)
    .await)?;
    Ok(())
}

/// CPU time this process's live threads have used so far, in seconds: the
/// sum of each thread's nanosecond run time in `/proc/self/task/*/schedstat`
/// (the PostgreSQL write phases start no short-lived threads), else user +
/// system time from `/proc/self/stat` in 10 ms ticks; NaN where neither can
/// be read.
fn process_cpu_s() -> f64 {
    let threads = std::fs::read_dir("/proc/self/task").ok().map(|tasks| {
        tasks
            .filter_map(|task| {
                let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
                text.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum::<u64>()
    });
    if let Some(ns) = threads.filter(|ns| *ns > 0) {
        return ns as f64 / 1e9;
    }
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // The fields after the command name, which is in parentheses.
            let rest = stat.get(stat.rfind(')')? + 2..)?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// guildconf, guildconf without its change feed, raw SQL, the trigger peer and
/// guildconf without head hints (every write reads its head first) on
/// PostgreSQL, interleaved in rounds; writes per second of each.
async fn bench_writes_pg(
    admin: &str,
    tag: &str,
    sizes: Sizes,
    writers: usize,
    out: &mut Figures,
) -> R<()> {
    let db = format!("{tag}_w{writers}");
    let url = fresh_pg_db(admin, &db).await?;
    let store = PgStore::connect(&url).await.map_err(|e| e.to_string())?;
    let quiet = store.clone().with_change_feed(false);
    let service = ConfigService::new(Arc::new(store));
    let service_quiet = ConfigService::new(Arc::new(quiet));
    // The same store and feed, but every write reads its head first.
    let service_unhinted = service.clone().with_head_hints(0);
    // A cache is watching, as it would be in production (the feed is on).
    let _cache = ReadCache::start(&service, CacheOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    // The baselines' pool has guildconf's pool policy (no ping on every
    // acquire), so the comparison is of the writes, not of pool settings.
    let pool = s(guildconf_postgres::pool_options().connect(&url).await)?;
    s(pool.execute(PEER_SQL).await)?;
    let doc = GuildConfigSchema.defaults();
    let m = meta()?;
    for w in 0..writers as u64 {
        for base in [0, 100, 200, 300, 400] {
            let g = gid(base + w)?;
            if base < 200 || base == 400 {
                let svc = match base {
                    0 => &service,
                    100 => &service_quiet,
                    _ => &service_unhinted,
                };
                svc.create(g, json!({}), &m)
                    .await
                    .map_err(|e| e.to_string())?;
            } else if base == 200 {
                raw_pg_write(&pool, g.as_i64(), &doc, 0).await?;
            } else {
                s(sqlx::query(
                    "INSERT INTO peer_configs (guild_id, document, version, updated_by) VALUES ($1, $2, 1, 'x')",
                )
                .bind(g.as_i64())
                .bind(&doc)
                .execute(&pool)
                .await)?;
            }
        }
    }
    let per_round = (sizes.writes / sizes.rounds / writers).max(1);
    let mut time = [Duration::ZERO; 5];
    let mut cpu = [0.0f64; 5];
    let mut rounds = Vec::with_capacity(sizes.rounds);
    for round in 0..sizes.rounds {
        let offset = round * per_round + 1;
        let mut this_round = vec![Duration::ZERO; 5];
        for (k, t) in time.iter_mut().enumerate() {
            let cpu_before = process_cpu_s();
            let elapsed = match k {
                0 | 1 | 4 => {
                    let (svc, base) = match k {
                        0 => (service.clone(), 0),
                        1 => (service_quiet.clone(), 100),
                        _ => (service_unhinted.clone(), 400),
                    };
                    let m = m.clone();
                    run_writers(writers, per_round, move |w, i| {
                        let (svc, m) = (svc.clone(), m.clone());
                        async move {
                            let g = gid(base + w as u64)?;
                            let v = json!(format!("hello {}", offset + i));
                            svc.update(g, vec![(welcome_path(), v)], vec![], &m)
                                .await
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        }
                    })
                    .await?
                }
                2 => {
                    let (pool, doc) = (pool.clone(), doc.clone());
                    run_writers(writers, per_round, move |w, i| {
                        let (pool, doc) = (pool.clone(), doc.clone());
                        async move {
                            raw_pg_write(&pool, gid(200 + w as u64)?.as_i64(), &doc, offset + i)
                                .await
                        }
                    })
                    .await?
                }
                _ => {
                    let (pool, doc) = (pool.clone(), doc.clone());
                    run_writers(writers, per_round, move |w, i| {
                        let (pool, doc) = (pool.clone(), doc.clone());
                        async move {
                            peer_pg_write(&pool, gid(300 + w as u64)?.as_i64(), &doc, offset + i)
                                .await
                        }
                    })
                    .await?
                }
            };
            cpu[k] += process_cpu_s() - cpu_before;
            *t += elapsed;
            this_round[k] = elapsed;
        }
        rounds.push(this_round);
    }
    let ops = (per_round * writers * sizes.rounds) as f64;
    let rate = |d: Duration| ops / d.as_secs_f64().max(1e-9);
    let sfx = format!("pg_{writers}w");
    for (k, name) in [
        "guildconf",
        "guildconf_no_feed",
        "raw",
        "trigger",
        "guildconf_no_hints",
    ]
    .iter()
    .enumerate()
    {
        out.insert(
            format!("client_cpu_us_per_write_{name}_{sfx}"),
            cpu[k] * 1e6 / ops,
        );
    }
    out.insert(format!("write_per_s_guildconf_{sfx}"), rate(time[0]));
    out.insert(
        format!("write_per_s_guildconf_no_feed_{sfx}"),
        rate(time[1]),
    );
    out.insert(
        format!("write_per_s_guildconf_no_hints_{sfx}"),
        rate(time[4]),
    );
    out.insert(
        format!("head_hints_gain_{sfx}"),
        median_ratio(&rounds, 0, 4),
    );
    out.insert(format!("write_per_s_raw_{sfx}"), rate(time[2]));
    out.insert(format!("write_per_s_trigger_{sfx}"), rate(time[3]));
    out.insert(format!("write_vs_raw_{sfx}"), median_ratio(&rounds, 0, 2));
    out.insert(
        format!("write_vs_trigger_{sfx}"),
        median_ratio(&rounds, 0, 3),
    );
    let feed = median_ratio(&rounds, 0, 1);
    out.insert(format!("feed_on_vs_off_{sfx}"), feed);
    out.insert(format!("change_feed_cost_{sfx}"), 1.0 - feed);
    pool.close().await;
    drop(service);
    drop(service_quiet);
    drop(service_unhinted);
    drop(_cache);
    drop_pg_db(admin, &db).await
}

/// guildconf's rate over a baseline's, as the median over rounds of the
/// baseline's time ÷ ours (each round runs every contender once, the same
/// number of writes, interleaved), so one noisy round cannot swing it.
fn median_ratio(rounds: &[Vec<Duration>], ours: usize, base: usize) -> f64 {
    let mut ratios: Vec<f64> = rounds
        .iter()
        .filter_map(|t| Some(t.get(base)?.as_secs_f64() / t.get(ours)?.as_secs_f64().max(1e-9)))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => ratios[n / 2],
        _ => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
    }
}

// ---------------------------------------------------------------- writes, SQLite

fn raw_sqlite_open(path: &Path, sync: Synchronous) -> R<rusqlite::Connection> {
    let conn = s(rusqlite::Connection::open(path))?;
    s(conn.pragma_update(None, "journal_mode", "WAL"))?;
    let sync = if sync == Synchronous::Full {
        "FULL"
    } else {
        "NORMAL"
    };
    s(conn.pragma_update(None, "synchronous", sync))?;
    Ok(conn)
}

/// One hand-written write transaction: the same three rows, no diff or hash.
fn raw_sqlite_write(conn: &mut rusqlite::Connection, doc: &Value, i: usize) -> R<()> {
    let (doc, body) = raw_rows(doc, i);
    let doc = doc.to_string();
    let seq = (i + 2) as i64;
    let now = Utc::now().to_rfc3339();
    let hash = "f".repeat(64);
    let tx = s(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate))?;
    s(tx.prepare_cached(
        "INSERT INTO guild_heads (guild_id, version, seq, last_hash, updated_at, actor_id, \
         actor_kind, actor_label, document) VALUES (1, ?1, ?1, ?2, ?3, 'a', 'human', 'bench', ?4) \
         ON CONFLICT (guild_id) DO UPDATE SET version = excluded.version, seq = excluded.seq, \
         last_hash = excluded.last_hash, updated_at = excluded.updated_at, document = excluded.document",
    )
    .and_then(|mut st| st.execute(rusqlite::params![seq, hash, now, doc])))?;
    s(tx.prepare_cached(
        "INSERT INTO guild_snapshots (guild_id, version, document, sha256) VALUES (1, ?1, ?2, ?3)",
    )
    .and_then(|mut st| st.execute(rusqlite::params![seq, doc, hash])))?;
    s(tx.prepare_cached(
        "INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at, \
         actor_id, request_id, body, entry_hash, prev_hash) \
         VALUES (1, ?1, ?1, 'update', ?2, 'a', NULL, ?3, ?4, ?4)",
    )
    .and_then(|mut st| st.execute(rusqlite::params![seq, now, body, hash])))?;
    s(tx.commit())
}

async fn bench_writes_sqlite(
    dir: &Path,
    sizes: Sizes,
    sync: Synchronous,
    out: &mut Figures,
) -> R<()> {
    let name = if sync == Synchronous::Full {
        "full"
    } else {
        "normal"
    };
    let options = SqliteOptions {
        create_if_missing: true,
        synchronous: sync,
        ..SqliteOptions::default()
    };
    let gc_url = format!("sqlite://{}", dir.join(format!("w_{name}.db")).display());
    let service = ConfigService::new(
        open_with(&gc_url, options.clone())
            .await
            .map_err(|e| e.to_string())?,
    );
    let _cache = ReadCache::start(&service, CacheOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    // The same writes on a file no cache watches: what the change feed
    // (PRAGMA data_version polls, reading new entries) costs.
    let unwatched_url = format!(
        "sqlite://{}",
        dir.join(format!("w_{name}_unwatched.db")).display()
    );
    let unwatched = ConfigService::new(
        open_with(&unwatched_url, options.clone())
            .await
            .map_err(|e| e.to_string())?,
    );
    // The same writes with commits run on the calling worker thread
    // (SqliteOptions::inline_commits, off by default), watched by a cache.
    let inline_url = format!(
        "sqlite://{}",
        dir.join(format!("w_{name}_inline.db")).display()
    );
    let inline = ConfigService::new(
        open_with(
            &inline_url,
            SqliteOptions {
                inline_commits: true,
                ..options.clone()
            },
        )
        .await
        .map_err(|e| e.to_string())?,
    );
    let _inline_cache = ReadCache::start(&inline, CacheOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let raw_path = dir.join(format!("raw_{name}.db"));
    // The same schema, made by guildconf itself, then written by hand.
    drop(guildconf_sqlite::SqliteStore::open(&raw_path, options).map_err(|e| e.to_string())?);
    let m = meta()?;
    let g = gid(1)?;
    for svc in [&service, &unwatched, &inline] {
        svc.create(g, json!({}), &m)
            .await
            .map_err(|e| e.to_string())?;
    }
    let doc = GuildConfigSchema.defaults();
    let per_round = (sizes.writes / sizes.rounds).max(1);
    // The raw baseline as an async bot writes with rusqlite: one connection,
    // each write transaction handed to the blocking pool (rusqlite must not
    // block the runtime). The same writes run once more in one blocking
    // loop with no hop at all, the strictest possible baseline.
    let conn = Arc::new(std::sync::Mutex::new(raw_sqlite_open(&raw_path, sync)?));
    let (mut t_gc, mut t_raw, mut t_loop) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut t_unwatched, mut t_inline) = (Duration::ZERO, Duration::ZERO);
    // Per round: guildconf, unwatched, inline_commits, raw, raw loop.
    let mut rounds = Vec::with_capacity(sizes.rounds);
    for round in 0..sizes.rounds {
        let from = round * per_round + 1;
        let before = [t_gc, t_unwatched, t_inline, t_raw, t_loop];
        for (svc, t) in [
            (&service, &mut t_gc),
            (&unwatched, &mut t_unwatched),
            (&inline, &mut t_inline),
        ] {
            let start = Instant::now();
            for i in from..from + per_round {
                let v = json!(format!("hello {i}"));
                svc.update(g, vec![(welcome_path(), v)], vec![], &m)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            *t += start.elapsed();
        }
        let start = Instant::now();
        for i in from..from + per_round {
            let (conn, doc) = (Arc::clone(&conn), doc.clone());
            s(tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().map_err(|_| "raw connection poisoned")?;
                raw_sqlite_write(&mut conn, &doc, 2 * i)
            })
            .await)??;
        }
        t_raw += start.elapsed();
        let (conn, doc) = (Arc::clone(&conn), doc.clone());
        let start = Instant::now();
        s(tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| "raw connection poisoned")?;
            (from..from + per_round).try_for_each(|i| raw_sqlite_write(&mut conn, &doc, 2 * i + 1))
        })
        .await)??;
        t_loop += start.elapsed();
        let after = [t_gc, t_unwatched, t_inline, t_raw, t_loop];
        rounds.push(after.iter().zip(before).map(|(a, b)| *a - b).collect());
    }
    let ops = (per_round * sizes.rounds) as f64;
    let per_s = |t: Duration| ops / t.as_secs_f64();
    let (gc, raw, raw_loop) = (per_s(t_gc), per_s(t_raw), per_s(t_loop));
    out.insert(format!("write_per_s_guildconf_sqlite_{name}"), gc);
    out.insert(format!("write_per_s_raw_sqlite_{name}"), raw);
    out.insert(
        format!("write_vs_raw_sqlite_{name}"),
        median_ratio(&rounds, 0, 3),
    );
    out.insert(format!("write_per_s_raw_loop_sqlite_{name}"), raw_loop);
    out.insert(
        format!("write_vs_raw_loop_sqlite_{name}"),
        median_ratio(&rounds, 0, 4),
    );
    out.insert(
        format!("watched_vs_unwatched_sqlite_{name}"),
        median_ratio(&rounds, 0, 1),
    );
    out.insert(
        format!("write_per_s_guildconf_unwatched_sqlite_{name}"),
        per_s(t_unwatched),
    );
    out.insert(
        format!("write_per_s_guildconf_inline_sqlite_{name}"),
        per_s(t_inline),
    );
    out.insert(
        format!("write_vs_raw_sqlite_{name}_inline_commits"),
        median_ratio(&rounds, 2, 3),
    );
    Ok(())
}

// ---------------------------------------------------------------- reads

async fn bench_reads(url: &str, key: &str, sizes: Sizes, out: &mut Figures, warm: bool) -> R<()> {
    let service = ConfigService::new(
        open_with(
            url,
            SqliteOptions {
                create_if_missing: true,
                ..SqliteOptions::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?,
    );
    let m = meta()?;
    let guilds: Vec<GuildId> = (0..100).map(|n| gid(5000 + n)).collect::<R<_>>()?;
    for g in &guilds {
        if service.get(*g, guildconf::At::Now).await.is_err() {
            service
                .create(*g, json!({}), &m)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    // Cold: every read goes to the database; 4 concurrent readers.
    let readers = 4;
    let per = (sizes.reads_cold / readers).max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for r in 0..readers {
        let (svc, guilds) = (service.clone(), guilds.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                svc.get_or_default(guilds[(i + r) % guilds.len()])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        s(t.await)??;
    }
    out.insert(
        format!("read_cold_{key}_per_s"),
        (per * readers) as f64 / start.elapsed().as_secs_f64(),
    );
    if warm {
        let cache = ReadCache::start(&service, CacheOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        for g in &guilds {
            cache.get(*g).await.map_err(|e| e.to_string())?;
        }
        let start = Instant::now();
        let mut versions = 0u64;
        for i in 0..sizes.reads_warm {
            versions += cache
                .get(guilds[i % guilds.len()])
                .await
                .map_err(|e| e.to_string())?
                .version;
        }
        let rate = sizes.reads_warm as f64 / start.elapsed().as_secs_f64();
        std::hint::black_box(versions);
        out.insert("read_warm_per_s".into(), rate);
    }
    Ok(())
}

// ---------------------------------------------------------------- bulk load

/// Rows of one entry as both adapters store them.
struct Row {
    guild: i64,
    seq: i64,
    version: i64,
    operation: &'static str,
    occurred_at: String,
    body: String,
    entry_hash: String,
    prev_hash: String,
    snapshot: String,
    snapshot_value: Value,
    sha256: String,
}

struct HeadRow {
    guild: i64,
    seq: i64,
    last_hash: String,
    updated_at: String,
    document: String,
    value: Value,
}

/// Builds one guild's valid chain of `n` entries (a create, then updates of
/// the welcome message) through the domain code, handing rows out in
/// batches.
fn build_chain(guild: GuildId, n: u64, sink: &mut dyn FnMut(Row) -> R<()>) -> R<HeadRow> {
    let schema = GuildConfigSchema;
    let secrets = schema.secret_paths();
    let actor = Actor::new("80351110224678912", ActorKind::Human, Some("bench"))
        .map_err(|e| e.to_string())?;
    let context = RequestContext::new();
    let meta = LinkMeta {
        actor: &actor,
        reason: None,
        request_id: None,
        context: &context,
    };
    let base: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let mut doc = schema.defaults();
    let mut head: Option<Head> = None;
    for seq in 1..=n {
        if seq > 1 {
            doc["onboarding"]["welcome_message"] = json!(format!("message {seq}"));
        }
        let document = CanonicalDocument::new(doc.clone())?;
        let step = if seq == 1 {
            Step::Create(document)
        } else {
            Step::Update(document)
        };
        let now = base + chrono::Duration::milliseconds(seq as i64);
        let next =
            link(guild, head.as_ref(), step, meta, &secrets, now).map_err(|e| e.to_string())?;
        let body = next.entry.body();
        let snapshot = next.snapshot.as_ref().ok_or("an update makes a version")?;
        sink(Row {
            guild: guild.as_i64(),
            seq: seq as i64,
            version: body.config_version as i64,
            operation: body.operation.as_str(),
            occurred_at: body.occurred_at.to_string(),
            body: next.entry.text().to_owned(),
            entry_hash: next.entry.entry_hash().to_owned(),
            prev_hash: body.prev_hash.clone(),
            snapshot: snapshot.document.text().to_owned(),
            snapshot_value: snapshot.document.value().clone(),
            sha256: snapshot.document.sha256().to_owned(),
        })?;
        head = Some(next.head);
    }
    let head = head.ok_or("a chain has at least one entry")?;
    Ok(HeadRow {
        guild: guild.as_i64(),
        seq: head.seq as i64,
        last_hash: head.last_hash,
        updated_at: head.updated_at.to_string(),
        document: canonical(&doc)?,
        value: doc,
    })
}

fn sqlite_insert(conn: &mut rusqlite::Connection, rows: &[Row], heads: &[HeadRow]) -> R<()> {
    let tx = s(conn.transaction())?;
    {
        let mut snap = s(tx.prepare_cached(
            "INSERT INTO guild_snapshots (guild_id, version, document, sha256) VALUES (?1, ?2, ?3, ?4)",
        ))?;
        let mut entry = s(tx.prepare_cached(
            "INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at, \
             actor_id, request_id, body, entry_hash, prev_hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, '80351110224678912', NULL, ?6, ?7, ?8)",
        ))?;
        for r in rows {
            s(snap.execute(rusqlite::params![r.guild, r.version, r.snapshot, r.sha256]))?;
            s(entry.execute(rusqlite::params![
                r.guild,
                r.seq,
                r.version,
                r.operation,
                r.occurred_at,
                r.body,
                r.entry_hash,
                r.prev_hash
            ]))?;
        }
        let mut head = s(tx.prepare_cached(
            "INSERT INTO guild_heads (guild_id, version, seq, last_hash, updated_at, actor_id, \
             actor_kind, actor_label, document) VALUES (?1, ?2, ?2, ?3, ?4, '80351110224678912', \
             'human', 'bench', ?5)",
        ))?;
        for h in heads {
            s(head.execute(rusqlite::params![
                h.guild,
                h.seq,
                h.last_hash,
                h.updated_at,
                h.document
            ]))?;
        }
    }
    s(tx.commit())
}

async fn pg_insert(pool: &PgPool, rows: &[Row], heads: &[HeadRow]) -> R<()> {
    if !rows.is_empty() {
        let col = |f: &dyn Fn(&Row) -> String| rows.iter().map(f).collect::<Vec<String>>();
        let guilds: Vec<i64> = rows.iter().map(|r| r.guild).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let docs: Vec<Value> = rows.iter().map(|r| r.snapshot_value.clone()).collect();
        s(sqlx::query(
            "INSERT INTO guild_snapshots (guild_id, version, document, sha256) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::jsonb[], $4::text[])",
        )
        .bind(&guilds)
        .bind(&seqs)
        .bind(&docs)
        .bind(col(&|r| r.sha256.clone()))
        .execute(pool)
        .await)?;
        s(sqlx::query(
            "INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at, \
             actor_id, request_id, body, entry_hash, prev_hash) \
             SELECT g, s, s, o, t, '80351110224678912', NULL, b, h, p \
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) \
             AS x(g, s, o, t, b, h, p)",
        )
        .bind(&guilds)
        .bind(&seqs)
        .bind(col(&|r| r.operation.to_owned()))
        .bind(col(&|r| r.occurred_at.clone()))
        .bind(col(&|r| r.body.clone()))
        .bind(col(&|r| r.entry_hash.clone()))
        .bind(col(&|r| r.prev_hash.clone()))
        .execute(pool)
        .await)?;
    }
    if !heads.is_empty() {
        let guilds: Vec<i64> = heads.iter().map(|h| h.guild).collect();
        let seqs: Vec<i64> = heads.iter().map(|h| h.seq).collect();
        let hashes: Vec<String> = heads.iter().map(|h| h.last_hash.clone()).collect();
        let times: Vec<String> = heads.iter().map(|h| h.updated_at.clone()).collect();
        let docs: Vec<Value> = heads.iter().map(|h| h.value.clone()).collect();
        s(sqlx::query(
            "INSERT INTO guild_heads (guild_id, version, seq, last_hash, updated_at, actor_id, \
             actor_kind, actor_label, document) \
             SELECT g, s, s, h, t, '80351110224678912', 'human', 'bench', d \
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::jsonb[]) AS x(g, s, h, t, d)",
        )
        .bind(&guilds)
        .bind(&seqs)
        .bind(&hashes)
        .bind(&times)
        .bind(&docs)
        .execute(pool)
        .await)?;
    }
    Ok(())
}

/// Loads `sizes.entries` entries over `sizes.guilds` guilds (the first one
/// holding `sizes.big`) into both databases, in batches.
async fn bulk_load(sqlite_path: &Path, pg_url: &str, sizes: Sizes) -> R<()> {
    drop(
        guildconf_sqlite::SqliteStore::open(
            sqlite_path,
            SqliteOptions {
                create_if_missing: true,
                ..SqliteOptions::default()
            },
        )
        .map_err(|e| e.to_string())?,
    );
    drop(PgStore::connect(pg_url).await.map_err(|e| e.to_string())?);
    let mut conn = s(rusqlite::Connection::open(sqlite_path))?;
    s(conn.pragma_update(None, "synchronous", "OFF"))?;
    let pool = s(PgPoolOptions::new()
        .max_connections(2)
        .connect(pg_url)
        .await)?;
    let rest = sizes.entries.saturating_sub(sizes.big);
    let others = sizes.guilds.saturating_sub(1).max(1);
    let (per, extra) = (rest / others, rest % others);
    const BATCH: usize = 5000;
    let mut rows: Vec<Row> = Vec::with_capacity(BATCH);
    let mut heads: Vec<HeadRow> = Vec::new();
    let mut pending: Option<tokio::task::JoinHandle<R<()>>> = None;
    let flush = |rows: Vec<Row>,
                 heads: Vec<HeadRow>,
                 pending: &mut Option<tokio::task::JoinHandle<R<()>>>,
                 conn: &mut rusqlite::Connection|
     -> R<Option<tokio::task::JoinHandle<R<()>>>> {
        sqlite_insert(conn, &rows, &heads)?;
        let pool = pool.clone();
        let _ = pending;
        Ok(Some(tokio::spawn(async move {
            pg_insert(&pool, &rows, &heads).await
        })))
    };
    for g in 0..sizes.guilds {
        let n = if g == 0 {
            sizes.big
        } else {
            per + u64::from(g <= extra)
        };
        if n == 0 {
            continue;
        }
        let mut full: Vec<Vec<Row>> = Vec::new();
        let head = build_chain(gid(g)?, n, &mut |row| {
            rows.push(row);
            if rows.len() >= BATCH {
                full.push(std::mem::replace(&mut rows, Vec::with_capacity(BATCH)));
            }
            Ok(())
        })?;
        heads.push(head);
        for batch in full {
            if let Some(p) = pending.take() {
                s(p.await)??;
            }
            pending = flush(batch, Vec::new(), &mut pending, &mut conn)?;
        }
        if heads.len() >= 1000 {
            if let Some(p) = pending.take() {
                s(p.await)??;
            }
            pending = flush(
                Vec::new(),
                std::mem::take(&mut heads),
                &mut pending,
                &mut conn,
            )?;
        }
    }
    if let Some(p) = pending.take() {
        s(p.await)??;
    }
    if let Some(p) = flush(
        std::mem::take(&mut rows),
        std::mem::take(&mut heads),
        &mut None,
        &mut conn,
    )? {
        s(p.await)??;
    }
    s(pool.execute("VACUUM ANALYZE").await)?;
    // Flush the load's dirty pages now, so the checkpointer writing them
    // out does not compete with the history and export timings that follow.
    s(pool.execute("CHECKPOINT").await)?;
    s(conn.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);"))?;
    pool.close().await;
    Ok(())
}

// ---------------------------------------------------------------- history

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(i).copied().unwrap_or(f64::NAN)
}

async fn bench_history(url: &str, key: &str, sizes: Sizes, out: &mut Figures) -> R<()> {
    let service = ConfigService::new(
        open_with(url, SqliteOptions::default())
            .await
            .map_err(|e| e.to_string())?,
    );
    let big = gid(0)?;
    let request = |cursor: Option<String>| HistoryRequest {
        guild_id: Some(big),
        limit: Some(50),
        cursor,
        ..HistoryRequest::default()
    };
    // The cursor of page 1,000 (or the last full page of a smaller guild).
    let deep_page = (sizes.big / 50).clamp(2, 1000) - 1;
    let mut cursor = None;
    for _ in 1..deep_page {
        let page = service
            .history(&request(cursor))
            .await
            .map_err(|e| e.to_string())?;
        cursor = page.next_cursor;
    }
    // Warm-up, not timed: the first use of each query on each pooled
    // connection prepares its statement (several milliseconds on
    // PostgreSQL), a one-off that would otherwise be two or three of the
    // slowest samples, which is all a p99 over 300 of them looks at.
    for _ in 0..20 {
        service
            .history(&request(None))
            .await
            .map_err(|e| e.to_string())?;
        service
            .history(&request(cursor.clone()))
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut first = Vec::new();
    let mut deep = Vec::new();
    for _ in 0..sizes.history_iters {
        let start = Instant::now();
        let page = service
            .history(&request(None))
            .await
            .map_err(|e| e.to_string())?;
        first.push(start.elapsed().as_secs_f64() * 1000.0);
        let start = Instant::now();
        let page2 = service
            .history(&request(cursor.clone()))
            .await
            .map_err(|e| e.to_string())?;
        deep.push(start.elapsed().as_secs_f64() * 1000.0);
        if page.entries.len() != 50 || page2.entries.len() != 50 {
            return Err("history pages are not full".into());
        }
    }
    let (f50, f99) = (percentile(&mut first, 0.5), percentile(&mut first, 0.99));
    let (d50, d99) = (percentile(&mut deep, 0.5), percentile(&mut deep, 0.99));
    out.insert(format!("history_first_p50_ms_{key}"), f50);
    out.insert(format!("history_first_p99_ms_{key}"), f99);
    out.insert(format!("history_deep_p50_ms_{key}"), d50);
    out.insert(format!("history_deep_p99_ms_{key}"), d99);
    out.insert(format!("history_deep_page_{key}"), (deep_page + 1) as f64);
    out.insert(format!("history_deep_over_first_{key}"), d50 / f50);
    Ok(())
}

// ---------------------------------------------------------------- export and verify (child process)

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Counts bytes, keeps nothing.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn phase_export_verify(url: &str) -> R<()> {
    let service = ConfigService::new(
        open_with(url, SqliteOptions::default())
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut sink = std::io::BufWriter::with_capacity(1 << 16, Counter(0));
    let start = Instant::now();
    let exported = service
        .export(&ExportRequest::default(), &mut sink)
        .await
        .map_err(|e| e.to_string())?;
    let export_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let report = service.verify(None).await.map_err(|e| e.to_string())?;
    let verify_s = start.elapsed().as_secs_f64();
    if !report.ok {
        return Err(format!(
            "verify found problems: {:?}",
            report.problems.first()
        ));
    }
    println!(
        "{}",
        json!({
            "entries": exported,
            "export_per_s": exported as f64 / export_s,
            "verify_per_s": report.entries_checked as f64 / verify_s,
            "peak_rss_mib": peak_rss_mib(),
        })
    );
    Ok(())
}

fn child_export_verify(url: &str) -> R<Value> {
    let exe = s(std::env::current_exe())?;
    let output = s(std::process::Command::new(exe)
        .args(["--phase", "export-verify", "--url", url])
        .output())?;
    if !output.status.success() {
        return Err(format!(
            "export/verify phase failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    s(serde_json::from_slice(&output.stdout))
}

// ---------------------------------------------------------------- main

fn print_table(f: &Figures, sizes: Sizes) {
    let g = |k: &str| f.get(k).copied().unwrap_or(f64::NAN);
    println!();
    println!(
        "guildconf-bench ({} writes per contender, {} entries / {} guilds / largest {})",
        sizes.writes, sizes.entries, sizes.guilds, sizes.big
    );
    println!(
        "{:<52} {:>12} {:>12} {:>8} {:>8}",
        "measure", "guildconf", "baseline", "ratio", "target"
    );
    // The ratio column is the median over rounds (see `median_ratio`), so it
    // can differ a little from the quotient of the two total rates.
    let row = |name: &str, a: f64, b: f64, ratio: f64, target: &str| {
        println!("{name:<44} {a:>12.0} {b:>12.0} {ratio:>8.2} {target:>8}");
    };
    for w in [1, 4] {
        let k = format!("pg_{w}w");
        row(
            &format!("W PostgreSQL {w} writer(s) vs raw SQL (/s)"),
            g(&format!("write_per_s_guildconf_{k}")),
            g(&format!("write_per_s_raw_{k}")),
            g(&format!("write_vs_raw_{k}")),
            ">=0.85",
        );
        row(
            &format!("W PostgreSQL {w} writer(s) vs trigger peer (/s)"),
            g(&format!("write_per_s_guildconf_{k}")),
            g(&format!("write_per_s_trigger_{k}")),
            g(&format!("write_vs_trigger_{k}")),
            ">=1.0",
        );
        row(
            &format!("W PostgreSQL {w} writer(s) change feed on vs off (/s)"),
            g(&format!("write_per_s_guildconf_{k}")),
            g(&format!("write_per_s_guildconf_no_feed_{k}")),
            g(&format!("feed_on_vs_off_{k}")),
            "",
        );
        row(
            &format!("W PostgreSQL {w} writer(s) head hints on vs off (/s)"),
            g(&format!("write_per_s_guildconf_{k}")),
            g(&format!("write_per_s_guildconf_no_hints_{k}")),
            g(&format!("head_hints_gain_{k}")),
            "",
        );
        let cpu = |who: &str| g(&format!("client_cpu_us_per_write_{who}_{k}"));
        row(
            &format!("W PostgreSQL {w} writer(s) client CPU/write vs peer (us)"),
            cpu("guildconf"),
            cpu("trigger"),
            cpu("guildconf") / cpu("trigger"),
            "",
        );
    }
    row(
        "W SQLite FULL vs raw SQL (/s)",
        g("write_per_s_guildconf_sqlite_full"),
        g("write_per_s_raw_sqlite_full"),
        g("write_vs_raw_sqlite_full"),
        ">=0.85",
    );
    row(
        "W SQLite FULL vs raw, one blocking loop (/s)",
        g("write_per_s_guildconf_sqlite_full"),
        g("write_per_s_raw_loop_sqlite_full"),
        g("write_vs_raw_loop_sqlite_full"),
        "",
    );
    row(
        "W SQLite FULL, inline_commits vs raw SQL (/s)",
        g("write_per_s_guildconf_inline_sqlite_full"),
        g("write_per_s_raw_sqlite_full"),
        g("write_vs_raw_sqlite_full_inline_commits"),
        "",
    );
    row(
        "W SQLite FULL, change feed watched vs not (/s)",
        g("write_per_s_guildconf_sqlite_full"),
        g("write_per_s_guildconf_unwatched_sqlite_full"),
        g("watched_vs_unwatched_sqlite_full"),
        "",
    );
    row(
        "W SQLite NORMAL vs raw SQL (/s)",
        g("write_per_s_guildconf_sqlite_normal"),
        g("write_per_s_raw_sqlite_normal"),
        g("write_vs_raw_sqlite_normal"),
        "",
    );
    println!(
        "{:<52} {:>12.0} {:>12} {:>8} {:>8}",
        "R warm, read cache (/s)",
        g("read_warm_per_s"),
        "",
        "",
        ">=1e6"
    );
    println!(
        "{:<52} {:>12.0} {:>12} {:>8} {:>8}",
        "R cold SQLite, 4 readers (/s)",
        g("read_cold_sqlite_per_s"),
        "",
        "",
        ">=50000"
    );
    println!(
        "{:<52} {:>12.0} {:>12} {:>8} {:>8}",
        "R cold PostgreSQL, 4 readers (/s)",
        g("read_cold_pg_per_s"),
        "",
        "",
        ""
    );
    for k in ["sqlite", "pg"] {
        println!(
            "{:<52} {:>12.3} {:>12.3} {:>8} {:>8}",
            format!("H first page p50 / p99 ms ({k})"),
            g(&format!("history_first_p50_ms_{k}")),
            g(&format!("history_first_p99_ms_{k}")),
            "",
            "p99<=2"
        );
        println!(
            "{:<52} {:>12.3} {:>12.3} {:>8.2} {:>8}",
            format!(
                "H page {} p50 / p99 ms ({k})",
                g(&format!("history_deep_page_{k}"))
            ),
            g(&format!("history_deep_p50_ms_{k}")),
            g(&format!("history_deep_p99_ms_{k}")),
            g(&format!("history_deep_over_first_{k}")),
            "<=1.5"
        );
    }
    for k in ["sqlite", "pg"] {
        let sfx = if k == "sqlite" {
            String::new()
        } else {
            "_pg".into()
        };
        println!(
            "{:<52} {:>12.0} {:>12} {:>8} {:>8}",
            format!("E export ({k}, entries/s)"),
            g(&format!("export_per_s{sfx}")),
            "",
            "",
            ">=2e5"
        );
        println!(
            "{:<52} {:>12.0} {:>12} {:>8} {:>8}",
            format!("V verify ({k}, entries/s)"),
            g(&format!("verify_per_s{sfx}")),
            "",
            "",
            ">=2e5"
        );
        println!(
            "{:<52} {:>12.1} {:>12} {:>8} {:>8}",
            format!("peak RSS, export+verify ({k}, MiB)"),
            g(&format!("peak_rss_mib{sfx}")),
            "",
            "",
            "<100"
        );
    }
}

async fn run(args: Args) -> R<()> {
    if args.phase.as_deref() == Some("export-verify") {
        return phase_export_verify(args.url.as_deref().ok_or("--url is required")?).await;
    }
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    for (name, n) in &args.overrides {
        match name.as_str() {
            "--writes" => sizes.writes = *n as usize,
            "--reads-cold" => sizes.reads_cold = *n as usize,
            "--entries" => sizes.entries = *n,
            "--guilds" => sizes.guilds = (*n).max(1),
            "--big" => sizes.big = *n,
            _ => sizes.history_iters = (*n as usize).max(1),
        }
    }
    sizes.big = sizes.big.clamp(100, sizes.entries.max(100));
    if args.phase.as_deref() == Some("load") {
        // Keeps a bulk-loaded pair of databases for profiling export/verify:
        // `--phase load --url FILE.db --pg-url URL` (an empty database).
        let path = PathBuf::from(args.url.as_deref().ok_or("--url is required")?);
        return bulk_load(&path, &args.pg_url, sizes).await;
    }
    // Scratch databases carry the process id: runs never collide.
    let tag = format!("guildconf_bench_{}", std::process::id());
    let dir = s(tempfile_dir())?;
    let mut f = Figures::new();
    let step = |what: &str| {
        eprintln!(
            "[{:>7.1}s] {what}",
            START.with(|s| s.elapsed().as_secs_f64())
        )
    };

    let runs = |part: &str| args.only.is_empty() || args.only.iter().any(|p| p == part);

    if runs("writes-pg") {
        step("W: PostgreSQL, 1 and 4 writers");
        bench_writes_pg(&args.pg_url, &tag, sizes, 1, &mut f).await?;
        bench_writes_pg(&args.pg_url, &tag, sizes, 4, &mut f).await?;
    }
    if runs("writes-sqlite") {
        step("W: SQLite FULL and NORMAL");
        bench_writes_sqlite(&dir, sizes, Synchronous::Full, &mut f).await?;
        bench_writes_sqlite(&dir, sizes, Synchronous::Normal, &mut f).await?;
    }

    if runs("reads") {
        step("R: cold and warm");
        let r_sqlite = format!("sqlite://{}", dir.join("reads.db").display());
        bench_reads(&r_sqlite, "sqlite", sizes, &mut f, true).await?;
        let r_db = format!("{tag}_r");
        let r_pg = fresh_pg_db(&args.pg_url, &r_db).await?;
        bench_reads(&r_pg, "pg", sizes, &mut f, false).await?;
        drop_pg_db(&args.pg_url, &r_db).await?;
    }

    if runs("history") || runs("export") {
        step("bulk load (both backends)");
        let h_db = format!("{tag}_h");
        let h_pg = fresh_pg_db(&args.pg_url, &h_db).await?;
        let h_path = dir.join("history.db");
        let start = Instant::now();
        bulk_load(&h_path, &h_pg, sizes).await?;
        f.insert("bulk_load_s".into(), start.elapsed().as_secs_f64());
        let h_sqlite = format!("sqlite://{}", h_path.display());

        if runs("history") {
            step("H: history pages");
            bench_history(&h_sqlite, "sqlite", sizes, &mut f).await?;
            bench_history(&h_pg, "pg", sizes, &mut f).await?;
        }

        if runs("export") {
            step("E, V: export and verify (child processes)");
            for (url, sfx) in [(&h_sqlite, ""), (&h_pg, "_pg")] {
                let ev = child_export_verify(url)?;
                for k in ["export_per_s", "verify_per_s", "peak_rss_mib", "entries"] {
                    let v = ev.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
                    f.insert(format!("{k}{sfx}"), v);
                }
            }
        }
        drop_pg_db(&args.pg_url, &h_db).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);

    f.insert(
        "write_vs_raw_pg".into(),
        f.get("write_vs_raw_pg_1w").copied().unwrap_or(f64::NAN),
    );
    f.insert(
        "write_vs_trigger_pg".into(),
        f.get("write_vs_trigger_pg_1w").copied().unwrap_or(f64::NAN),
    );
    print_table(&f, sizes);
    step("done");
    if let Some(path) = args.json_out {
        let object: serde_json::Map<String, Value> = f
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
                )
            })
            .collect();
        s(std::fs::write(
            &path,
            s(serde_json::to_string_pretty(&Value::Object(object)))?,
        ))?;
    }
    Ok(())
}

thread_local! {
    static START: Instant = Instant::now();
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("guildconf-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn main() {
    START.with(|_| ());
    let result = parse_args().and_then(|args| {
        let rt = s(tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build())?;
        rt.block_on(run(args))
    });
    if let Err(e) = result {
        eprintln!("guildconf-bench: {e}");
        std::process::exit(1);
    }
}
