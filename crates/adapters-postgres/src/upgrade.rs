//! The Rust half of migration 0005: documents stored as their RFC 8785 text.
//!
//! Until migration 0005, snapshot and head documents were `jsonb`, and verify
//! had to turn the server's jsonb output back into canonical text before
//! hashing it. Migration 0005 adds a nullable `canonical` text column beside
//! each; this module fills it from the jsonb with the domain's canonicaliser
//! (SQL has none), then swaps the columns: `document` becomes the canonical
//! text, and `document_jsonb` a jsonb column the server generates from it.
//! All of it runs in one transaction, so a database is either upgraded or
//! untouched, and running it twice (two shards starting at once, or a
//! retry after a crash) finds nothing left to do.

use guildconf_domain::json::canonical_json;
use guildconf_ports::{StoreError, StoreResult};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};

use crate::error::map_sqlx;

/// The triggers the conversion's UPDATEs would fire.
const TRIGGERS_OFF: [&str; 3] = [
    "ALTER TABLE guild_snapshots DISABLE TRIGGER guild_snapshots_append_only",
    "ALTER TABLE guild_heads DISABLE TRIGGER guild_heads_forward",
    "ALTER TABLE guild_heads DISABLE TRIGGER guild_heads_onto_entry",
];

/// The swap, once the text columns are filled: `document` becomes the
/// canonical text, and `document_jsonb` the jsonb the server derives from it.
const SWAP: [&str; 10] = [
    "ALTER TABLE guild_snapshots DROP COLUMN document",
    "ALTER TABLE guild_snapshots RENAME COLUMN canonical TO document",
    "ALTER TABLE guild_snapshots ALTER COLUMN document SET NOT NULL",
    "ALTER TABLE guild_snapshots ADD COLUMN document_jsonb JSONB \
     GENERATED ALWAYS AS (document::jsonb) STORED",
    "ALTER TABLE guild_snapshots ENABLE ALWAYS TRIGGER guild_snapshots_append_only",
    "ALTER TABLE guild_heads DROP COLUMN document",
    "ALTER TABLE guild_heads RENAME COLUMN canonical TO document",
    "ALTER TABLE guild_heads ADD COLUMN document_jsonb JSONB \
     GENERATED ALWAYS AS (document::jsonb) STORED",
    "ALTER TABLE guild_heads ENABLE ALWAYS TRIGGER guild_heads_forward",
    "ALTER TABLE guild_heads ENABLE ALWAYS TRIGGER guild_heads_onto_entry",
];

/// Rows canonicalised per round trip.
const BATCH: i64 = 5_000;

/// Whether migration 0005's text columns still wait to be filled (the
/// `canonical` column is there until the swap).
pub(crate) async fn documents_pending(conn: &mut PgConnection) -> StoreResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute \
         WHERE attrelid = to_regclass('guild_snapshots') AND attname = 'canonical' \
         AND NOT attisdropped)",
    )
    .fetch_one(conn)
    .await
    .map_err(map_sqlx)
}

/// Finishes migration 0005 if it is pending: fills the canonical text of
/// every snapshot and head, then swaps the columns.
///
/// # Errors
/// [`StoreError::Storage`] when the database fails, or when a stored
/// document cannot be put in canonical form (it is not what guildconf
/// wrote: the upgrade stops and changes nothing).
pub(crate) async fn finish_documents_as_text(pool: &PgPool) -> StoreResult<()> {
    // A catalog read first: an upgraded database (every open after the
    // first) takes no lock at all, so opening never waits behind, or
    // blocks, the writers of a live database.
    let mut conn = pool.acquire().await.map_err(map_sqlx)?;
    let pending = documents_pending(&mut conn).await?;
    drop(conn);
    if !pending {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(map_sqlx)?;
    let converted = convert(&mut tx).await?;
    tx.commit().await.map_err(map_sqlx)?;
    if let Some((snapshots, heads)) = converted {
        tracing::info!(
            snapshots,
            heads,
            "guildconf: stored documents converted to their canonical text"
        );
    }
    Ok(())
}

/// The conversion inside the caller's transaction; `None` when there was
/// nothing to convert, else how many snapshots and heads were filled.
async fn convert(tx: &mut PgConnection) -> StoreResult<Option<(u64, u64)>> {
    // Writers wait for the swap, and a second process upgrading at the same
    // time waits here, then finds nothing pending (checked again under the
    // lock).
    sqlx::query("LOCK TABLE guild_heads, guild_snapshots IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
    if !documents_pending(&mut *tx).await? {
        return Ok(None);
    }
    // The append-only trigger refuses every UPDATE of a snapshot, this one
    // included, and the heads' chain guards (migration 0004) would check
    // rows whose chain position this upgrade does not change (a database
    // whose heads already disagree with their chains must still upgrade, so
    // that verify can report it). They are off only inside this
    // transaction, which holds both tables exclusively.
    for statement in TRIGGERS_OFF {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
    }
    let snapshots = fill(&mut *tx, Table::Snapshots).await?;
    let heads = fill(&mut *tx, Table::Heads).await?;
    for statement in SWAP {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
    }
    Ok(Some((snapshots, heads)))
}

#[derive(Clone, Copy)]
enum Table {
    Snapshots,
    Heads,
}

impl Table {
    /// Reads one batch of `(guild_id, version, jsonb text)` after a key.
    fn select(self) -> &'static str {
        match self {
            Table::Snapshots => {
                "SELECT guild_id, version, document::text AS document FROM guild_snapshots \
                 WHERE (guild_id, version) > ($1, $2) ORDER BY guild_id, version LIMIT $3"
            }
            // A head has one row per guild: `version` only orders the key.
            Table::Heads => {
                "SELECT guild_id, 0::bigint AS version, document::text AS document \
                 FROM guild_heads WHERE (guild_id, 0::bigint) > ($1, $2) \
                 ORDER BY guild_id LIMIT $3"
            }
        }
    }

    fn update(self) -> &'static str {
        match self {
            Table::Snapshots => {
                "UPDATE guild_snapshots s SET canonical = u.c \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS u(g, v, c) \
                 WHERE s.guild_id = u.g AND s.version = u.v"
            }
            Table::Heads => {
                "UPDATE guild_heads h SET canonical = u.c \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS u(g, v, c) \
                 WHERE h.guild_id = u.g"
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Table::Snapshots => "guild_snapshots",
            Table::Heads => "guild_heads",
        }
    }
}

/// Fills `canonical` for every row of `table`, in key order; returns how
/// many rows it filled. A NULL document (a deleted guild's head) stays NULL.
async fn fill(tx: &mut PgConnection, table: Table) -> StoreResult<u64> {
    let mut after = (i64::MIN, i64::MIN);
    let mut filled = 0;
    loop {
        let rows = sqlx::query(table.select())
            .bind(after.0)
            .bind(after.1)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let Some(last) = rows.last() else {
            return Ok(filled);
        };
        after = (
            last.try_get("guild_id").map_err(map_sqlx)?,
            last.try_get("version").map_err(map_sqlx)?,
        );
        let (mut guilds, mut versions, mut texts) = (Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            let Some(jsonb) = row
                .try_get::<Option<String>, _>("document")
                .map_err(map_sqlx)?
            else {
                continue;
            };
            let guild: i64 = row.try_get("guild_id").map_err(map_sqlx)?;
            let version: i64 = row.try_get("version").map_err(map_sqlx)?;
            texts.push(canonical_text(&jsonb, table, guild, version)?);
            guilds.push(guild);
            versions.push(version);
        }
        sqlx::query(table.update())
            .bind(&guilds)
            .bind(&versions)
            .bind(&texts)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        filled += texts.len() as u64;
    }
}

/// The RFC 8785 text of a stored jsonb document. The messages name the row,
/// never its content (a document holds secrets).
fn canonical_text(jsonb: &str, table: Table, guild: i64, version: i64) -> StoreResult<String> {
    let corrupt = || {
        StoreError::Corrupt(format!(
            "{} of guild {guild} (version {version}) cannot be put in canonical form: \
             run guildconf verify",
            table.name()
        ))
    };
    let value: Value = serde_json::from_str(jsonb).map_err(|_| corrupt())?;
    canonical_json(&value).map_err(|_| corrupt())
}
