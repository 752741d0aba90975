//! The baselines guildconf's writes are measured against: raw SQL writing
//! the same head, snapshot and entry rows by hand (PostgreSQL and SQLite),
//! and the trigger peer (PostgreSQL: a JSONB document per guild and an audit
//! trigger). Their SQL is in `sql/` beside this file.

use std::path::Path;

use chrono::Utc;
use guildconf::sqlite::Synchronous;
use serde_json::{json, Value};
use sqlx::{Executor, PgPool};

use crate::{s, R};

/// The baselines' tables on PostgreSQL (the raw schema copies guildconf's).
const PG_SCHEMA: &str = include_str!("sql/pg_schema.sql");
const PG_RAW_HEAD: &str = include_str!("sql/pg_raw_head.sql");
const PG_RAW_SNAPSHOT: &str = include_str!("sql/pg_raw_snapshot.sql");
const PG_RAW_ENTRY: &str = include_str!("sql/pg_raw_entry.sql");
const PG_PEER_INSERT: &str = include_str!("sql/pg_peer_insert.sql");
const PG_PEER_UPDATE: &str = include_str!("sql/pg_peer_update.sql");
const SQLITE_RAW_HEAD: &str = include_str!("sql/sqlite_raw_head.sql");
const SQLITE_RAW_SNAPSHOT: &str = include_str!("sql/sqlite_raw_snapshot.sql");
const SQLITE_RAW_ENTRY: &str = include_str!("sql/sqlite_raw_entry.sql");

/// Makes the baselines' tables in a database guildconf has migrated.
pub async fn pg_setup(pool: &PgPool) -> R<()> {
    s(pool.execute(PG_SCHEMA).await)?;
    Ok(())
}

/// The raw-SQL baseline's rows for write `i`: the same head, snapshot and
/// entry rows guildconf writes, without diff, canonical JSON or hashing.
fn raw_rows(doc: &Value, i: usize) -> (String, String) {
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
    (doc.to_string(), body)
}

/// One hand-written write transaction on PostgreSQL: the same three rows,
/// no diff or hash.
pub async fn raw_pg_write(pool: &PgPool, guild: i64, doc: &Value, i: usize) -> R<()> {
    let (doc, body) = raw_rows(doc, i);
    let seq = (i + 2) as i64;
    let now = Utc::now().to_rfc3339();
    let hash = "f".repeat(64);
    let mut tx = s(pool.begin().await)?;
    s(sqlx::query(PG_RAW_HEAD)
        .bind(guild)
        .bind(seq)
        .bind(&hash)
        .bind(&now)
        .bind(&doc)
        .execute(&mut *tx)
        .await)?;
    s(sqlx::query(PG_RAW_SNAPSHOT)
        .bind(guild)
        .bind(seq)
        .bind(&doc)
        .bind(&hash)
        .execute(&mut *tx)
        .await)?;
    s(sqlx::query(PG_RAW_ENTRY)
        .bind(guild)
        .bind(seq)
        .bind(&now)
        .bind(&body)
        .bind(&hash)
        .execute(&mut *tx)
        .await)?;
    s(tx.commit().await)
}

/// The trigger peer's first row for `guild`, holding `doc`.
pub async fn peer_pg_create(pool: &PgPool, guild: i64, doc: &Value) -> R<()> {
    s(sqlx::query(PG_PEER_INSERT)
        .bind(guild)
        .bind(doc)
        .execute(pool)
        .await)?;
    Ok(())
}

/// One trigger-peer write: an update of the document, audited by the trigger.
pub async fn peer_pg_write(pool: &PgPool, guild: i64, doc: &Value, i: usize) -> R<()> {
    let mut doc = doc.clone();
    doc["onboarding"]["welcome_message"] = json!(format!("hello {i}"));
    s(sqlx::query(PG_PEER_UPDATE)
        .bind(guild)
        .bind(&doc)
        .bind("80351110224678912")
        .execute(pool)
        .await)?;
    Ok(())
}

/// The raw baseline's SQLite connection, in WAL mode at `sync`.
pub fn raw_sqlite_open(path: &Path, sync: Synchronous) -> R<rusqlite::Connection> {
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
/// Write `i` (from 0) of `guild` is its seq `i + 1`, naming the previous
/// seq's made-up hash, and goes in the order the schema's chain guards ask
/// (entry, snapshot, then the head), as guildconf's own writes do.
pub fn raw_sqlite_write(
    conn: &mut rusqlite::Connection,
    guild: i64,
    doc: &Value,
    i: usize,
) -> R<()> {
    let (doc, body) = raw_rows(doc, i);
    let doc = doc.to_string();
    let seq = (i + 1) as i64;
    let now = Utc::now().to_rfc3339();
    let hash = format!("{seq:064x}");
    let prev = format!("{:064x}", seq - 1);
    let tx = s(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate))?;
    s(tx.prepare_cached(SQLITE_RAW_ENTRY)
        .and_then(|mut st| st.execute(rusqlite::params![seq, now, body, hash, guild, prev])))?;
    s(tx.prepare_cached(SQLITE_RAW_SNAPSHOT)
        .and_then(|mut st| st.execute(rusqlite::params![seq, doc, hash, guild])))?;
    s(tx.prepare_cached(SQLITE_RAW_HEAD)
        .and_then(|mut st| st.execute(rusqlite::params![seq, hash, now, doc, guild])))?;
    s(tx.commit())
}
