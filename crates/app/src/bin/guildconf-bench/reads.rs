//! Reads: cold (every read goes to the database) and warm (the read cache).

use std::time::Instant;

use guildconf::sqlite::SqliteOptions;
use guildconf::{CacheOptions, ConfigService, GuildId, ReadCache};

use crate::open_with;
use serde_json::json;

use crate::args::Sizes;
use crate::fixture::{gid, meta};
use crate::{s, Figures, R};

pub async fn bench_reads(
    url: &str,
    key: &str,
    sizes: Sizes,
    out: &mut Figures,
    warm: bool,
) -> R<()> {
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
