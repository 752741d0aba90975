//! The synchronous SQL behind each store method. Every function here runs on
//! a blocking thread with a connection it has to itself; none of them ever
//! sees an `.await`.

use guildconf_domain::json::canonical;
use guildconf_domain::{Actor, ActorKind, Entry, EntryBody, GuildId, Operation, Timestamp};
use guildconf_ports::{
    ChangeSet, GuildSummary, Head, HistoryQuery, RequestRecord, Snapshot, StoreError, StoreResult,
    StoredEntry, StoredHead, WriteStep,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{named_params, params, params_from_iter, Connection, OptionalExtension, Row};
use rusqlite::{Transaction, TransactionBehavior};
use serde_json::Value;

use crate::error::db_err;

/// Reads a non-negative integer column as `u64`.
pub(crate) fn get_u64(row: &Row<'_>, index: usize, what: &str) -> StoreResult<u64> {
    let raw: i64 = row.get(index).map_err(db_err)?;
    u64::try_from(raw).map_err(|_| StoreError::Corrupt(format!("stored {what} is negative")))
}

fn get_text(row: &Row<'_>, index: usize) -> StoreResult<String> {
    row.get(index).map_err(db_err)
}

pub(crate) fn get_guild(row: &Row<'_>, index: usize) -> StoreResult<GuildId> {
    let raw: i64 = row.get(index).map_err(db_err)?;
    GuildId::from_i64(raw)
        .map_err(|_| StoreError::Corrupt("stored guild_id is not a snowflake".into()))
}

fn parse_time(text: &str, what: &str) -> StoreResult<Timestamp> {
    Timestamp::parse_stored(text)
        .map_err(|_| StoreError::Corrupt(format!("stored {what} is not a guildconf timestamp")))
}

fn parse_json(text: &str, what: &str) -> StoreResult<Value> {
    serde_json::from_str(text)
        .map_err(|_| StoreError::Corrupt(format!("stored {what} is not valid JSON")))
}

fn parse_operation(text: &str) -> StoreResult<Operation> {
    Operation::parse(text)
        .map_err(|_| StoreError::Corrupt("stored audit_entries.operation is unknown".into()))
}

/// Reads the actor from three consecutive columns: id, kind, label.
fn get_actor(row: &Row<'_>, first: usize, table: &str) -> StoreResult<Actor> {
    let id = get_text(row, first)?;
    let kind = get_text(row, first + 1)?;
    let kind = ActorKind::parse(&kind)
        .map_err(|_| StoreError::Corrupt(format!("stored {table}.actor_kind is unknown")))?;
    let label = get_text(row, first + 2)?;
    Ok(Actor { id, kind, label })
}

/// A `u64` from the caller as SQLite's signed integer.
fn to_i64(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::Storage(format!("{what} does not fit in a signed 64-bit integer")))
}

/// Canonical JSON text of a value, without quoting the value on failure.
fn canonical_text(value: &Value, what: &str) -> StoreResult<String> {
    canonical(value).map_err(|_| StoreError::Storage(format!("cannot canonicalise the {what}")))
}

/// Collects the rows of a query through a fallible row mapper.
fn collect<T>(
    rows: &mut rusqlite::Rows<'_>,
    mut map: impl FnMut(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(map(row)?);
    }
    Ok(out)
}

pub(crate) fn head(conn: &Connection, guild: GuildId) -> StoreResult<Option<Head>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, seq, last_hash, updated_at, actor_id, actor_kind, actor_label, document
             FROM guild_heads WHERE guild_id = ?1",
        )
        .map_err(db_err)?;
    let mut rows = stmt.query([guild.as_i64()]).map_err(db_err)?;
    let Some(row) = rows.next().map_err(db_err)? else {
        return Ok(None);
    };
    let document: Option<String> = row.get(7).map_err(db_err)?;
    Ok(Some(Head {
        guild_id: guild,
        version: get_u64(row, 0, "guild_heads.version")?,
        seq: get_u64(row, 1, "guild_heads.seq")?,
        last_hash: get_text(row, 2)?,
        updated_at: parse_time(&get_text(row, 3)?, "guild_heads.updated_at")?,
        actor: get_actor(row, 4, "guild_heads")?,
        document: document
            .map(|text| parse_json(&text, "guild_heads.document"))
            .transpose()?,
    }))
}

pub(crate) fn stored_head(conn: &Connection, guild: GuildId) -> StoreResult<Option<StoredHead>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, version, last_hash, document FROM guild_heads WHERE guild_id = ?1",
        )
        .map_err(db_err)?;
    let mut rows = stmt.query([guild.as_i64()]).map_err(db_err)?;
    let Some(row) = rows.next().map_err(db_err)? else {
        return Ok(None);
    };
    Ok(Some(StoredHead {
        seq: get_u64(row, 0, "guild_heads.seq")?,
        version: get_u64(row, 1, "guild_heads.version")?,
        last_hash: get_text(row, 2)?,
        document: row.get(3).map_err(db_err)?,
    }))
}

pub(crate) fn request(
    conn: &Connection,
    guild: GuildId,
    request_id: &str,
) -> StoreResult<Option<RequestRecord>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT request_id, fingerprint, result FROM audit_requests
             WHERE guild_id = ?1 AND request_id = ?2",
        )
        .map_err(db_err)?;
    let mut rows = stmt
        .query(params![guild.as_i64(), request_id])
        .map_err(db_err)?;
    let Some(row) = rows.next().map_err(db_err)? else {
        return Ok(None);
    };
    Ok(Some(RequestRecord {
        request_id: get_text(row, 0)?,
        fingerprint: get_text(row, 1)?,
        result: parse_json(&get_text(row, 2)?, "audit_requests.result")?,
    }))
}

pub(crate) fn snapshot(
    conn: &Connection,
    guild: GuildId,
    version: u64,
) -> StoreResult<Option<Snapshot>> {
    // A version beyond i64 cannot be stored, so it has no snapshot.
    let Ok(version) = i64::try_from(version) else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, document, sha256 FROM guild_snapshots
             WHERE guild_id = ?1 AND version = ?2",
        )
        .map_err(db_err)?;
    let mut rows = stmt
        .query(params![guild.as_i64(), version])
        .map_err(db_err)?;
    let Some(row) = rows.next().map_err(db_err)? else {
        return Ok(None);
    };
    Ok(Some(Snapshot {
        version: get_u64(row, 0, "guild_snapshots.version")?,
        document: parse_json(&get_text(row, 1)?, "guild_snapshots.document")?,
        sha256: get_text(row, 2)?,
    }))
}

pub(crate) fn entry_at(
    conn: &Connection,
    guild: GuildId,
    at: Timestamp,
) -> StoreResult<Option<(u64, Operation)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT config_version, operation FROM audit_entries
             WHERE guild_id = ?1 AND occurred_at <= ?2
             ORDER BY seq DESC LIMIT 1",
        )
        .map_err(db_err)?;
    let mut rows = stmt
        .query(params![guild.as_i64(), at.to_string()])
        .map_err(db_err)?;
    let Some(row) = rows.next().map_err(db_err)? else {
        return Ok(None);
    };
    Ok(Some((
        get_u64(row, 0, "audit_entries.config_version")?,
        parse_operation(&get_text(row, 1)?)?,
    )))
}

pub(crate) fn list_guilds(conn: &Connection) -> StoreResult<Vec<GuildSummary>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT guild_id, version, document IS NULL, updated_at, actor_id, actor_kind, actor_label
             FROM guild_heads ORDER BY guild_id",
        )
        .map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    collect(&mut rows, |row| {
        Ok(GuildSummary {
            guild_id: get_guild(row, 0)?,
            version: get_u64(row, 1, "guild_heads.version")?,
            deleted: row.get(2).map_err(db_err)?,
            updated_at: parse_time(&get_text(row, 3)?, "guild_heads.updated_at")?,
            actor: get_actor(row, 4, "guild_heads")?,
        })
    })
}

/// The SQL and arguments of one page of history, newest first: the one
/// builder behind both [`history`] and [`explain_history`]. With a guild,
/// pages by seq; without one (an actor's trail across guilds), by
/// `(occurred_at, guild_id, seq)`. The port requires an actor when there is
/// no guild; a query with neither is answered across all guilds and actors
/// rather than refused.
fn history_sql(query: &HistoryQuery) -> (String, Vec<SqlValue>) {
    let mut sql = String::from("SELECT body, entry_hash FROM audit_entries WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    let mut push = |sql: &mut String, clause: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(guild) = query.guild_id {
        push(&mut sql, " AND guild_id = ?", guild.as_i64().into());
    }
    if let Some(actor) = &query.actor_id {
        push(&mut sql, " AND actor_id = ?", actor.clone().into());
    }
    if let Some(operation) = query.operation {
        push(
            &mut sql,
            " AND operation = ?",
            operation.as_str().to_owned().into(),
        );
    }
    if let Some(since) = query.since {
        push(&mut sql, " AND occurred_at >= ?", since.to_string().into());
    }
    if let Some(until) = query.until {
        push(&mut sql, " AND occurred_at < ?", until.to_string().into());
    }
    match (&query.guild_id, &query.after) {
        (Some(_), Some(after)) => {
            // Within one guild, seq orders entries exactly as time does.
            // A position beyond i64 is above every stored seq: no filter.
            if let Ok(seq) = i64::try_from(after.seq) {
                push(&mut sql, " AND seq < ?", seq.into());
            }
        }
        (None, Some(after)) => {
            push(
                &mut sql,
                " AND (occurred_at, guild_id, seq) < (?",
                after.occurred_at.to_string().into(),
            );
            push(&mut sql, ", ?", after.guild_id.as_i64().into());
            match i64::try_from(after.seq) {
                Ok(seq) => push(&mut sql, ", ?)", seq.into()),
                Err(_) => push(&mut sql, ", ?)", i64::MAX.into()),
            }
        }
        (_, None) => {}
    }
    if query.guild_id.is_some() {
        sql.push_str(" ORDER BY seq DESC");
    } else {
        sql.push_str(" ORDER BY occurred_at DESC, guild_id DESC, seq DESC");
    }
    push(&mut sql, " LIMIT ?", i64::from(query.limit).into());
    (sql, args)
}

/// One page of history, newest first (see [`history_sql`]).
pub(crate) fn history(conn: &Connection, query: &HistoryQuery) -> StoreResult<Vec<Entry>> {
    let (sql, args) = history_sql(query);
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt.query(params_from_iter(args)).map_err(db_err)?;
    collect(&mut rows, |row| {
        let body_text = get_text(row, 0)?;
        let body: EntryBody = serde_json::from_str(&body_text).map_err(|_| {
            StoreError::Corrupt("a stored audit_entries.body is not a valid entry body".into())
        })?;
        Ok(Entry {
            body,
            entry_hash: get_text(row, 1)?,
        })
    })
}

/// SQLite's `EXPLAIN QUERY PLAN` of exactly the SQL [`history`] runs for
/// `query`: one line per plan node, its `detail` text.
pub(crate) fn explain_history(conn: &Connection, query: &HistoryQuery) -> StoreResult<Vec<String>> {
    let (sql, args) = history_sql(query);
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .map_err(db_err)?;
    let mut rows = stmt.query(params_from_iter(args)).map_err(db_err)?;
    collect(&mut rows, |row| get_text(row, 3))
}

pub(crate) fn guild_ids(
    conn: &Connection,
    after: Option<GuildId>,
    limit: u32,
) -> StoreResult<Vec<GuildId>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT guild_id FROM guild_heads WHERE guild_id > ?1
             UNION
             SELECT DISTINCT guild_id FROM audit_entries WHERE guild_id > ?1
             ORDER BY guild_id LIMIT ?2",
        )
        .map_err(db_err)?;
    let after = after.map_or(0, GuildId::as_i64);
    let mut rows = stmt
        .query(params![after, i64::from(limit)])
        .map_err(db_err)?;
    collect(&mut rows, |row| get_guild(row, 0))
}

pub(crate) fn entries(
    conn: &Connection,
    guild: GuildId,
    after_seq: u64,
    since: Option<Timestamp>,
    limit: u32,
    with_snapshots: bool,
) -> StoreResult<Vec<StoredEntry>> {
    // No stored seq is above i64::MAX, so nothing comes after such a position.
    let Ok(after_seq) = i64::try_from(after_seq) else {
        return Ok(Vec::new());
    };
    let snapshot_join = if with_snapshots {
        "s.document FROM audit_entries e
         LEFT JOIN guild_snapshots s
           ON e.operation NOT IN ('delete', 'purge')
          AND s.guild_id = e.guild_id AND s.version = e.config_version"
    } else {
        "NULL FROM audit_entries e"
    };
    let sql = format!(
        "SELECT e.guild_id, e.seq, e.actor_id, e.occurred_at, e.operation, e.body, e.entry_hash,
                e.config_version, {snapshot_join}
         WHERE e.guild_id = :guild AND e.seq > :after
           AND (:since IS NULL OR e.occurred_at >= :since)
         ORDER BY e.seq LIMIT :limit"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt
        .query(named_params! {
            ":guild": guild.as_i64(),
            ":after": after_seq,
            ":since": since.map(|t| t.to_string()),
            ":limit": i64::from(limit),
        })
        .map_err(db_err)?;
    collect(&mut rows, |row| {
        Ok(StoredEntry {
            guild_id: get_guild(row, 0)?,
            seq: get_u64(row, 1, "audit_entries.seq")?,
            actor_id: get_text(row, 2)?,
            occurred_at: get_text(row, 3)?,
            operation: get_text(row, 4)?,
            body: get_text(row, 5)?,
            entry_hash: get_text(row, 6)?,
            config_version: get_u64(row, 7, "audit_entries.config_version")?,
            snapshot: row.get(8).map_err(db_err)?,
        })
    })
}

/// Writes a change set in one `BEGIN IMMEDIATE` transaction. The transaction
/// is rolled back (by being dropped) on every early return. `fault` is called
/// right before each step that runs (the test seam; a no-op in production).
pub(crate) fn commit(
    conn: &mut Connection,
    change: &ChangeSet,
    fault: impl Fn(WriteStep) -> StoreResult<()>,
) -> StoreResult<()> {
    let body = &change.entry.body;
    if change.head.guild_id != change.guild_id || body.guild_id != change.guild_id {
        return Err(StoreError::Storage(
            "the change set names more than one guild".into(),
        ));
    }
    // Everything that can fail without the database is computed before the
    // write lock is taken, so the lock is held only for the SQL itself.
    let guild = change.guild_id.as_i64();
    let body_text = body
        .canonical()
        .map_err(|_| StoreError::Storage("cannot canonicalise the audit entry body".into()))?;
    let snapshot = change
        .snapshot
        .as_ref()
        .map(|s| {
            Ok::<_, StoreError>((
                to_i64(s.version, "snapshot version")?,
                canonical_text(&s.document, "snapshot document")?,
                s.sha256.as_str(),
            ))
        })
        .transpose()?;
    let request = change
        .request
        .as_ref()
        .map(|r| {
            Ok::<_, StoreError>((
                r.request_id.as_str(),
                r.fingerprint.as_str(),
                canonical_text(&r.result, "request result")?,
            ))
        })
        .transpose()?;
    let head = &change.head;
    let head_document = head
        .document
        .as_ref()
        .map(|d| canonical_text(d, "head document"))
        .transpose()?;
    let expected_seq = change.expected_seq;
    let entry_seq = to_i64(body.seq, "entry seq")?;
    let entry_version = to_i64(body.config_version, "entry config_version")?;
    let head_version = to_i64(head.version, "head version")?;
    let head_seq = to_i64(head.seq, "head seq")?;

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    check_head(&tx, guild, expected_seq)?;
    if let Some((version, document, sha256)) = &snapshot {
        fault(WriteStep::SnapshotInsert)?;
        tx.prepare_cached(
            "INSERT INTO guild_snapshots (guild_id, version, document, sha256)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![guild, version, document, sha256]))
        .map_err(db_err)?;
    }
    fault(WriteStep::EntryInsert)?;
    tx.prepare_cached(
        "INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at,
                                    actor_id, request_id, body, entry_hash, prev_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            guild,
            entry_seq,
            entry_version,
            body.operation.as_str(),
            body.occurred_at.to_string(),
            body.actor.id,
            body.request_id,
            body_text,
            change.entry.entry_hash,
            body.prev_hash,
        ])
    })
    .map_err(db_err)?;
    if let Some((request_id, fingerprint, result)) = &request {
        fault(WriteStep::RequestInsert)?;
        tx.prepare_cached(
            "INSERT INTO audit_requests (guild_id, request_id, fingerprint, result)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![guild, request_id, fingerprint, result]))
        .map_err(db_err)?;
    }
    fault(WriteStep::HeadMove)?;
    tx.prepare_cached(
        "INSERT INTO guild_heads (guild_id, version, seq, last_hash, updated_at,
                                  actor_id, actor_kind, actor_label, document)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (guild_id) DO UPDATE SET
             version = excluded.version,
             seq = excluded.seq,
             last_hash = excluded.last_hash,
             updated_at = excluded.updated_at,
             actor_id = excluded.actor_id,
             actor_kind = excluded.actor_kind,
             actor_label = excluded.actor_label,
             document = excluded.document",
    )
    .and_then(|mut s| {
        s.execute(params![
            guild,
            head_version,
            head_seq,
            head.last_hash,
            head.updated_at.to_string(),
            head.actor.id,
            head.actor.kind.as_str(),
            head.actor.label,
            head_document,
        ])
    })
    .map_err(db_err)?;
    fault(WriteStep::Commit)?;
    tx.commit().map_err(db_err)
}

/// Fails with [`StoreError::Conflict`] unless the guild's head is at
/// `expected` (`None`: the guild has no head).
fn check_head(tx: &Transaction<'_>, guild: i64, expected: Option<u64>) -> StoreResult<()> {
    let current: Option<i64> = tx
        .prepare_cached("SELECT seq FROM guild_heads WHERE guild_id = ?1")
        .and_then(|mut s| s.query_row([guild], |row| row.get(0)).optional())
        .map_err(db_err)?;
    let current = current
        .map(|seq| {
            u64::try_from(seq)
                .map_err(|_| StoreError::Corrupt("stored guild_heads.seq is negative".into()))
        })
        .transpose()?;
    if current == expected {
        Ok(())
    } else {
        Err(StoreError::Conflict(
            "the guild's head moved since the change was computed".into(),
        ))
    }
}
