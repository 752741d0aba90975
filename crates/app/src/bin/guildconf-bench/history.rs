//! History pages: the first page and a deep one of the largest guild, on a
//! bulk-loaded database.

use std::time::Instant;

use guildconf::sqlite::SqliteOptions;
use guildconf::{ConfigService, HistoryRequest};

use crate::open_with;

use crate::args::Sizes;
use crate::fixture::gid;
use crate::stats::percentile;
use crate::{Figures, R};

pub async fn bench_history(url: &str, key: &str, sizes: Sizes, out: &mut Figures) -> R<()> {
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
