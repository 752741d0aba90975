//! Writes on PostgreSQL: guildconf (with its change feed, without it, and
//! without head hints) against the raw-SQL baseline and the trigger peer,
//! interleaved in rounds, at a number of concurrent writers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use guildconf::{CacheOptions, ConfigSchema, ConfigService, GuildConfigSchema, ReadCache};
use guildconf_postgres::PgStore;
use serde_json::json;

use crate::args::Sizes;
use crate::baseline::{peer_pg_create, peer_pg_write, pg_setup, raw_pg_write};
use crate::db::{drop_pg_db, fresh_pg_db};
use crate::fixture::{gid, meta, welcome_path};
use crate::stats::median_ratio;
use crate::{s, Figures, R};

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
pub async fn bench_writes_pg(
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
    pg_setup(&pool).await?;
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
                peer_pg_create(&pool, g.as_i64(), &doc).await?;
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
                            svc.update(g, guildconf::FieldEdit::new().set(welcome_path(), v), &m)
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
