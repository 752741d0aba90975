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
//!
//! This file runs the parts in order; each module holds one job:
//! `args` (flags and sizes), `db` (scratch databases), `fixture` (the guilds
//! and actor written with), `baseline` (the raw-SQL and trigger-peer
//! baselines, their SQL in `sql/`), `writes_pg` and `writes_sqlite`, `reads`,
//! `chain` (the chain builder) and `load` (the bulk loader), `history`,
//! `export_verify` (the child-process phase), `stats` and `report`.

mod args;
mod baseline;
mod chain;
mod db;
mod export_verify;
mod fixture;
mod history;
mod load;
mod reads;
mod report;
mod signing;
mod stats;
mod writes_pg;
mod writes_sqlite;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;
use std::time::Instant;

use guildconf::sqlite::Synchronous;

use crate::args::{parse_args, Args};
use crate::db::{drop_pg_db, fresh_pg_db, tempfile_dir};

type R<T> = Result<T, String>;

fn s<T, E: Display>(r: Result<T, E>) -> R<T> {
    r.map_err(|e| e.to_string())
}

/// Every figure, by key.
type Figures = BTreeMap<String, f64>;

async fn run(args: Args) -> R<()> {
    if args.phase.as_deref() == Some("export-verify") {
        let url = args.url.as_deref().ok_or("--url is required")?;
        return export_verify::phase_export_verify(url).await;
    }
    let sizes = args.sizes();
    if args.phase.as_deref() == Some("load") {
        // Keeps a bulk-loaded pair of databases for profiling export/verify:
        // `--phase load --url FILE.db --pg-url URL` (an empty database).
        let path = PathBuf::from(args.url.as_deref().ok_or("--url is required")?);
        return load::bulk_load(&path, &args.pg_url, sizes).await;
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

    if args.runs("writes-pg") {
        step("W: PostgreSQL, 1 and 4 writers");
        writes_pg::bench_writes_pg(&args.pg_url, &tag, sizes, 1, &mut f).await?;
        writes_pg::bench_writes_pg(&args.pg_url, &tag, sizes, 4, &mut f).await?;
    }
    if args.runs("writes-sqlite") {
        step("W: SQLite FULL and NORMAL");
        writes_sqlite::bench_writes_sqlite(&dir, sizes, Synchronous::Full, &mut f).await?;
        writes_sqlite::bench_writes_sqlite(&dir, sizes, Synchronous::Normal, &mut f).await?;
    }

    if args.runs("reads") {
        step("R: cold and warm");
        let r_sqlite = format!("sqlite://{}", dir.join("reads.db").display());
        reads::bench_reads(&r_sqlite, "sqlite", sizes, &mut f, true).await?;
        let r_db = format!("{tag}_r");
        let r_pg = fresh_pg_db(&args.pg_url, &r_db).await?;
        reads::bench_reads(&r_pg, "pg", sizes, &mut f, false).await?;
        drop_pg_db(&args.pg_url, &r_db).await?;
    }

    if args.runs("history") || args.runs("export") {
        step("bulk load (both backends)");
        let h_db = format!("{tag}_h");
        let h_pg = fresh_pg_db(&args.pg_url, &h_db).await?;
        let h_path = dir.join("history.db");
        let start = Instant::now();
        load::bulk_load(&h_path, &h_pg, sizes).await?;
        f.insert("bulk_load_s".into(), start.elapsed().as_secs_f64());
        let h_sqlite = format!("sqlite://{}", h_path.display());

        if args.runs("history") {
            step("H: history pages");
            history::bench_history(&h_sqlite, "sqlite", sizes, &mut f).await?;
            history::bench_history(&h_pg, "pg", sizes, &mut f).await?;
        }

        if args.runs("export") {
            step("E, V: export and verify (child processes)");
            for (url, sfx) in [(&h_sqlite, ""), (&h_pg, "_pg")] {
                export_verify::child_export_verify(url, sfx, &mut f)?;
            }
        }
        drop_pg_db(&args.pg_url, &h_db).await?;
    }
    if args.runs("signing") {
        step("signing: W signed and unsigned, V of a signed log");
        let w_sqlite = format!("sqlite://{}", dir.join("signed_writes.db").display());
        signing::bench_signed_writes(&w_sqlite, "", sizes, &mut f).await?;
        let w_db = format!("{tag}_sw");
        let w_pg = fresh_pg_db(&args.pg_url, &w_db).await?;
        signing::bench_signed_writes(&w_pg, "_pg", sizes, &mut f).await?;
        drop_pg_db(&args.pg_url, &w_db).await?;
        let v_db = format!("{tag}_sv");
        let v_pg = fresh_pg_db(&args.pg_url, &v_db).await?;
        signing::bench_signed_verify(&dir, &v_pg, sizes, &mut f).await?;
        drop_pg_db(&args.pg_url, &v_db).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);

    report::add_headlines(&mut f);
    report::print_table(&f, sizes);
    if args.runs("signing") {
        signing::print(&f);
    }
    step("done");
    if let Some(path) = &args.json_out {
        report::write_json(path, &f)?;
    }
    Ok(())
}

thread_local! {
    static START: Instant = Instant::now();
}

/// Opens a store with SQLite's options spelled out (PostgreSQL ignores
/// them), as the bench's contenders need.
pub async fn open_with(
    url: &str,
    sqlite: guildconf::sqlite::SqliteOptions,
) -> guildconf::Result<std::sync::Arc<dyn guildconf::ConfigStore>> {
    let options = guildconf::OpenOptions::new()
        .create_if_missing(sqlite.create_if_missing)
        .backend(guildconf::BackendOptions {
            sqlite,
            ..Default::default()
        });
    guildconf::open(url, options).await
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
