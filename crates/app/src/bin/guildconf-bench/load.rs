//! The bulk loader: many guilds' chains (from the chain builder) written
//! straight into both backends' tables, in batches, for the history and
//! export parts.

use std::path::Path;

use guildconf::sqlite::SqliteOptions;
use guildconf_postgres::PgStore;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

use crate::args::Sizes;
use crate::chain::{build_chain, HeadRow, Row};
use crate::fixture::gid;
use crate::{s, R};

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
        let docs: Vec<String> = rows.iter().map(|r| r.snapshot.clone()).collect();
        s(sqlx::query(
            "INSERT INTO guild_snapshots (guild_id, version, document, sha256) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[])",
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
        let docs: Vec<String> = heads.iter().map(|h| h.document.clone()).collect();
        s(sqlx::query(
            "INSERT INTO guild_heads (guild_id, version, seq, last_hash, updated_at, actor_id, \
             actor_kind, actor_label, document) \
             SELECT g, s, s, h, t, '80351110224678912', 'human', 'bench', d \
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[]) AS x(g, s, h, t, d)",
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
pub async fn bulk_load(sqlite_path: &Path, pg_url: &str, sizes: Sizes) -> R<()> {
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
