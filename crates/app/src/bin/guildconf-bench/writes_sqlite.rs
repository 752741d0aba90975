//! Writes on SQLite: guildconf (watched by a cache, unwatched, and with
//! inline commits) against the raw-SQL baseline, on the blocking pool and in
//! one blocking loop, at `synchronous` FULL or NORMAL.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guildconf::sqlite::{SqliteOptions, Synchronous};
use guildconf::{CacheOptions, ConfigSchema, ConfigService, GuildConfigSchema, ReadCache};

use crate::open_with;
use serde_json::json;

use crate::args::Sizes;
use crate::baseline::{raw_sqlite_open, raw_sqlite_write};
use crate::fixture::{gid, meta, welcome_path};
use crate::stats::median_ratio;
use crate::{s, Figures, R};

pub async fn bench_writes_sqlite(
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
                svc.update(g, guildconf::FieldEdit::new().set(welcome_path(), v), &m)
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
                raw_sqlite_write(&mut conn, 1, &doc, i)
            })
            .await)??;
        }
        t_raw += start.elapsed();
        let (conn, doc) = (Arc::clone(&conn), doc.clone());
        let start = Instant::now();
        s(tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| "raw connection poisoned")?;
            (from..from + per_round).try_for_each(|i| raw_sqlite_write(&mut conn, 2, &doc, i))
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
