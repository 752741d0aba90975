//! The synchronous SQL behind each store method. Every function here runs on
//! a blocking thread with a connection it has to itself; none of them ever
//! sees an `.await`.

use guildconf_domain::TokenInfo;
use guildconf_domain::{Actor, Entry, EntrySignature, GuildId, Operation, SealedEntry, Timestamp};
use guildconf_ports::codec::{
    request_result_text, stored_actor, stored_entry_body, stored_guild, stored_json,
    stored_operation, stored_signature, stored_timestamp, stored_token, stored_u64,
    to_stored_i64 as to_i64, token_guilds_text, StoredToken, TOKEN_COLUMNS,
};
use guildconf_ports::{
    ChangeSet, GuildSummary, Head, HeadDocument, HistoryQuery, PastHead, PurgeCandidate,
    PurgeFacts, PurgeOutcome, PurgeSet, RequestEntry, RequestRecord, Snapshot, StatsBy, StatsQuery,
    StatsRow, StoreError, StoreResult, StoredEntry, StoredHead, StoredRequest, TokenChange,
    TokenWrite, WriteStep,
};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{named_params, params, params_from_iter, Connection, OptionalExtension, Row};
use rusqlite::{Transaction, TransactionBehavior};

use crate::error::db_err;

/// Reads a non-negative integer column as `u64`.
pub(crate) fn get_u64(row: &Row<'_>, index: usize, what: &str) -> StoreResult<u64> {
    stored_u64(row.get(index).map_err(db_err)?, what)
}

fn get_text(row: &Row<'_>, index: usize) -> StoreResult<String> {
    row.get(index).map_err(db_err)
}

pub(crate) fn get_guild(row: &Row<'_>, index: usize) -> StoreResult<GuildId> {
    stored_guild(row.get(index).map_err(db_err)?)
}

fn get_time(row: &Row<'_>, index: usize, what: &str) -> StoreResult<Timestamp> {
    stored_timestamp(&get_text(row, index)?, what)
}

/// Reads the actor from three consecutive columns: id, kind, label.
fn get_actor(row: &Row<'_>, first: usize, table: &str) -> StoreResult<Actor> {
    stored_actor(
        get_text(row, first)?,
        &get_text(row, first + 1)?,
        get_text(row, first + 2)?,
        table,
    )
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

/// The first row of a query through a fallible row mapper; `None` when the
/// query returns no row.
fn first<T>(
    rows: &mut rusqlite::Rows<'_>,
    map: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    rows.next().map_err(db_err)?.map(map).transpose()
}

pub(crate) fn head(conn: &Connection, guild: GuildId) -> StoreResult<Option<Head>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, seq, last_hash, updated_at, actor_id, actor_kind, actor_label, document
             FROM guild_heads WHERE guild_id = ?1",
        )
        .map_err(db_err)?;
    let mut rows = stmt.query([guild.as_i64()]).map_err(db_err)?;
    first(&mut rows, |row| {
        // Parsed straight from SQLite's buffer: no copy of the text first.
        let document = match row.get_ref(7).map_err(db_err)? {
            ValueRef::Null => None,
            ValueRef::Text(text) => Some(stored_json(text, "guild_heads.document")?),
            _ => {
                return Err(StoreError::Storage(
                    "column 7 holds a value of unexpected type".into(),
                ))
            }
        };
        Ok(Head {
            guild_id: guild,
            version: get_u64(row, 0, "guild_heads.version")?,
            seq: get_u64(row, 1, "guild_heads.seq")?,
            last_hash: get_text(row, 2)?,
            updated_at: get_time(row, 3, "guild_heads.updated_at")?,
            actor: get_actor(row, 4, "guild_heads")?,
            document,
        })
    })
}

pub(crate) fn stored_heads(
    conn: &Connection,
    from: GuildId,
    through: GuildId,
) -> StoreResult<Vec<(GuildId, StoredHead)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT guild_id, seq, version, last_hash, document, updated_at,
                    actor_id, actor_kind, actor_label FROM guild_heads
             WHERE guild_id BETWEEN ?1 AND ?2 ORDER BY guild_id",
        )
        .map_err(db_err)?;
    let mut rows = stmt
        .query([from.as_i64(), through.as_i64()])
        .map_err(db_err)?;
    collect(&mut rows, |row| {
        Ok((
            get_guild(row, 0)?,
            StoredHead {
                seq: get_u64(row, 1, "guild_heads.seq")?,
                version: get_u64(row, 2, "guild_heads.version")?,
                last_hash: get_text(row, 3)?,
                document: row.get(4).map_err(db_err)?,
                updated_at: get_text(row, 5)?,
                actor_id: get_text(row, 6)?,
                actor_kind: get_text(row, 7)?,
                actor_label: get_text(row, 8)?,
            },
        ))
    })
}

pub(crate) fn rows_past_heads(
    conn: &Connection,
    from: GuildId,
    through: GuildId,
) -> StoreResult<Vec<PastHead>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT g.guild_id, g.entry_seq, g.snapshot_version FROM (
               SELECT h.guild_id,
                      (SELECT max(e.seq) FROM audit_entries e
                        WHERE e.guild_id = h.guild_id AND e.seq > h.seq) AS entry_seq,
                      (SELECT max(s.version) FROM guild_snapshots s
                        WHERE s.guild_id = h.guild_id AND s.version > h.version) AS snapshot_version
               FROM guild_heads h WHERE h.guild_id BETWEEN ?1 AND ?2
               UNION ALL
               SELECT s.guild_id, NULL, max(s.version) FROM guild_snapshots s
               WHERE s.guild_id BETWEEN ?1 AND ?2
                 AND NOT EXISTS (SELECT 1 FROM guild_heads h WHERE h.guild_id = s.guild_id)
               GROUP BY s.guild_id
             ) g
             WHERE g.entry_seq IS NOT NULL OR g.snapshot_version IS NOT NULL
             ORDER BY g.guild_id",
        )
        .map_err(db_err)?;
    let mut rows = stmt
        .query([from.as_i64(), through.as_i64()])
        .map_err(db_err)?;
    collect(&mut rows, |row| {
        let optional = |i: usize, what: &str| -> StoreResult<Option<u64>> {
            let v: Option<i64> = row.get(i).map_err(db_err)?;
            v.map(|v| guildconf_ports::codec::stored_u64(v, what))
                .transpose()
        };
        Ok(PastHead {
            guild_id: get_guild(row, 0)?,
            entry_seq: optional(1, "audit_entries.seq")?,
            snapshot_version: optional(2, "guild_snapshots.version")?,
        })
    })
}

pub(crate) fn stored_requests(
    conn: &Connection,
    from: GuildId,
    through: GuildId,
) -> StoreResult<Vec<StoredRequest>> {
    let mut stmt = conn
        .prepare_cached(&guildconf_ports::codec::stored_requests_sql(["?1", "?2"]))
        .map_err(db_err)?;
    let mut rows = stmt
        .query([from.as_i64(), through.as_i64()])
        .map_err(db_err)?;
    collect(&mut rows, |row| {
        let seq: Option<i64> = row.get(3).map_err(db_err)?;
        let entry = match seq {
            None => None,
            Some(seq) => Some(RequestEntry {
                seq: stored_u64(seq, "audit_entries.seq")?,
                entry_hash: row.get(4).map_err(db_err)?,
                config_version: stored_u64(
                    row.get(5).map_err(db_err)?,
                    "audit_entries.config_version",
                )?,
                operation: row.get(6).map_err(db_err)?,
            }),
        };
        Ok(StoredRequest {
            guild_id: get_guild(row, 0)?,
            request_id: row.get(1).map_err(db_err)?,
            result: row.get(2).map_err(db_err)?,
            entry,
        })
    })
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
    first(&mut rows, |row| {
        Ok(RequestRecord {
            request_id: get_text(row, 0)?,
            fingerprint: get_text(row, 1)?,
            result: stored_json(get_text(row, 2)?.as_bytes(), "audit_requests.result")?,
        })
    })
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
    first(&mut rows, |row| {
        Ok(Snapshot {
            version: get_u64(row, 0, "guild_snapshots.version")?,
            document: stored_json(get_text(row, 1)?.as_bytes(), "guild_snapshots.document")?,
            sha256: get_text(row, 2)?,
        })
    })
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
               AND operation IN ('create', 'update', 'revert', 'delete')
             ORDER BY seq DESC LIMIT 1",
        )
        .map_err(db_err)?;
    let mut rows = stmt
        .query(params![guild.as_i64(), at.to_string()])
        .map_err(db_err)?;
    first(&mut rows, |row| {
        Ok((
            get_u64(row, 0, "audit_entries.config_version")?,
            stored_operation(&get_text(row, 1)?)?,
        ))
    })
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
            updated_at: get_time(row, 3, "guild_heads.updated_at")?,
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
    let filter = &query.filter;
    if let Some(family) = &filter.family {
        push(
            &mut sql,
            &format!(" AND {FAMILY} = ?"),
            family.clone().into(),
        );
    }
    if let Some(outcome) = filter.outcome {
        push(
            &mut sql,
            &format!(" AND {OUTCOME} = ?"),
            outcome.as_str().to_owned().into(),
        );
    }
    if let Some(kind) = &filter.target_type {
        push(
            &mut sql,
            &format!(" AND {TARGET_TYPE} = ?"),
            kind.clone().into(),
        );
    }
    if let Some(id) = &filter.target_id {
        push(
            &mut sql,
            &format!(" AND {TARGET_ID} = ?"),
            id.clone().into(),
        );
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

/// An entry's family, as the index `audit_entries_guild_family` (migration
/// 0005) spells it: `config` for the config operations, else the action
/// key's part before the dot.
const FAMILY: &str = "(CASE WHEN instr(operation, '.') > 0
          THEN substr(operation, 1, instr(operation, '.') - 1) ELSE 'config' END)";
/// An entry's outcome, as `audit_entries_guild_outcome` spells it: an
/// event's `detail.outcome`, `success` for the config operations.
const OUTCOME: &str = "(CASE WHEN instr(operation, '.') > 0
          THEN json_extract(body, '$.detail.outcome') ELSE 'success' END)";
/// An event's target type and id, as `audit_entries_guild_target` spells them.
const TARGET_TYPE: &str = "(json_extract(body, '$.detail.target.type'))";
const TARGET_ID: &str = "(json_extract(body, '$.detail.target.id'))";

/// Counts entries by one key (see [`guildconf_ports::ConfigStore::stats`]).
pub(crate) fn stats(conn: &Connection, query: &StatsQuery) -> StoreResult<Vec<StatsRow>> {
    let key = match query.by {
        StatsBy::Operation => "operation",
        StatsBy::Family => FAMILY,
        StatsBy::Actor => "actor_id",
        StatsBy::Outcome => OUTCOME,
        StatsBy::Day => "substr(occurred_at, 1, 10)",
    };
    let mut sql = format!("SELECT {key} AS k, COUNT(*) FROM audit_entries WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(guild) = query.guild_id {
        args.push(guild.as_i64().into());
        sql.push_str(&format!(" AND guild_id = ?{}", args.len()));
    }
    if let Some(since) = query.since {
        args.push(since.to_string().into());
        sql.push_str(&format!(" AND occurred_at >= ?{}", args.len()));
    }
    if let Some(until) = query.until {
        args.push(until.to_string().into());
        sql.push_str(&format!(" AND occurred_at < ?{}", args.len()));
    }
    sql.push_str(" GROUP BY k ORDER BY k");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt.query(params_from_iter(args)).map_err(db_err)?;
    collect(&mut rows, |row| {
        Ok(StatsRow {
            key: row
                .get::<_, Option<String>>(0)
                .map_err(db_err)?
                .unwrap_or_default(),
            count: get_u64(row, 1, "count")?,
        })
    })
}

/// One page of history, newest first (see [`history_sql`]).
pub(crate) fn history(conn: &Connection, query: &HistoryQuery) -> StoreResult<Vec<Entry>> {
    let (sql, args) = history_sql(query);
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt.query(params_from_iter(args)).map_err(db_err)?;
    collect(&mut rows, |row| {
        Ok(Entry {
            body: stored_entry_body(&get_text(row, 0)?)?,
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

pub(crate) fn entry_signature(
    conn: &Connection,
    guild: GuildId,
    seq: u64,
) -> StoreResult<Option<(String, Option<EntrySignature>)>> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT entry_hash, sig_alg, sig_key, sig_value FROM audit_entries
             WHERE guild_id = ?1 AND seq = ?2",
        )
        .map_err(db_err)?;
    let mut rows = stmt.query(params![guild.as_i64(), seq]).map_err(db_err)?;
    first(&mut rows, |row| {
        Ok((
            get_text(row, 0)?,
            stored_signature(
                row.get(1).map_err(db_err)?,
                row.get(2).map_err(db_err)?,
                row.get(3).map_err(db_err)?,
            ),
        ))
    })
}

pub(crate) fn entries_between(
    conn: &Connection,
    after: (GuildId, u64),
    through: GuildId,
    since: Option<Timestamp>,
    limit: u32,
    with_snapshots: bool,
) -> StoreResult<Vec<StoredEntry>> {
    // No stored seq is above i64::MAX: past such a position the guild is
    // done, and the next one starts at its first entry.
    let (guild, after_seq) = match i64::try_from(after.1) {
        Ok(seq) => (after.0.as_i64(), seq),
        Err(_) => (after.0.as_i64(), i64::MAX),
    };
    let snapshot_join = if with_snapshots {
        "s.document, s.sha256 FROM audit_entries e
         LEFT JOIN guild_snapshots s
           ON e.operation <> 'delete'
          AND s.guild_id = e.guild_id AND s.version = e.config_version"
    } else {
        "NULL, NULL FROM audit_entries e"
    };
    let sql = format!(
        "SELECT e.guild_id, e.seq, e.actor_id, e.occurred_at, e.operation, e.body, e.entry_hash,
                e.config_version, e.request_id, e.prev_hash, e.sig_alg, e.sig_key, e.sig_value,
                {snapshot_join}
         WHERE (e.guild_id, e.seq) > (:guild, :after) AND e.guild_id <= :through
           AND (:since IS NULL OR e.occurred_at >= :since)
         ORDER BY e.guild_id, e.seq LIMIT :limit"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt
        .query(named_params! {
            ":guild": guild,
            ":after": after_seq,
            ":through": through.as_i64(),
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
            request_id: row.get(8).map_err(db_err)?,
            prev_hash: get_text(row, 9)?,
            signature: stored_signature(
                row.get(10).map_err(db_err)?,
                row.get(11).map_err(db_err)?,
                row.get(12).map_err(db_err)?,
            ),
            snapshot: row.get(13).map_err(db_err)?,
            snapshot_sha256: row.get(14).map_err(db_err)?,
        })
    })
}

/// Writes a change set in one `BEGIN IMMEDIATE` transaction. The transaction
/// is rolled back (by being dropped) on every early return. `fault` is called
/// right before each step that runs (the test seam; a no-op in production).
pub(crate) fn commit(
    conn: &Connection,
    change: &ChangeSet,
    fault: impl Fn(WriteStep) -> StoreResult<()>,
) -> StoreResult<()> {
    // Everything that can fail without the database is computed before the
    // write lock is taken, so the lock is held only for the SQL itself.
    let rows = Rows::of(change)?;
    let tx = WriteTx::begin(conn)?;
    rows.write(&tx, &fault)?;
    fault(WriteStep::Commit)?;
    tx.commit()
}

/// Writes a token change and its guilds' event entries in one `BEGIN
/// IMMEDIATE` transaction: the token row first, then each change set as
/// [`commit`] writes it (head check, inserts, head move), so a failure
/// anywhere leaves no token behind. `fault` is called as in [`commit`].
pub(crate) fn commit_token(
    conn: &Connection,
    write: &TokenWrite,
    fault: impl Fn(WriteStep) -> StoreResult<()>,
) -> StoreResult<()> {
    write.check()?;
    let rows = write
        .changes
        .iter()
        .map(Rows::of)
        .collect::<StoreResult<Vec<_>>>()?;
    let guilds = match &write.token {
        TokenChange::Insert { info, .. } => Some(token_guilds_text(&info.guilds)?),
        TokenChange::Revoke { .. } => None,
    };
    let tx = WriteTx::begin(conn)?;
    match &write.token {
        TokenChange::Insert {
            info,
            secret_sha256,
        } => {
            tx.prepare_cached(
                "INSERT INTO api_tokens (id, secret_sha256, role, guilds, label, human_id,
                                         created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    info.id,
                    secret_sha256,
                    info.role.as_str(),
                    guilds,
                    info.label,
                    info.human_id,
                    info.created_at.to_string(),
                ])
            })
            .map_err(db_err)?;
        }
        TokenChange::Revoke { id, revoked_at } => {
            let n = tx
                .prepare_cached(
                    "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![id, revoked_at.to_string()]))
                .map_err(db_err)?;
            if n != 1 {
                return Err(StoreError::Conflict(
                    "no unrevoked token has this id".into(),
                ));
            }
        }
    }
    for row in &rows {
        row.write(&tx, &fault)?;
    }
    fault(WriteStep::Commit)?;
    tx.commit()
}

/// The token rows a query selects ([`TOKEN_COLUMNS`], then `rest`).
fn select_tokens(
    conn: &Connection,
    rest: &str,
    args: impl rusqlite::Params,
) -> StoreResult<Vec<TokenInfo>> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens {rest}"))
        .map_err(db_err)?;
    let mut rows = stmt.query(args).map_err(db_err)?;
    collect(&mut rows, |row| {
        stored_token(StoredToken {
            id: get_text(row, 0)?,
            role: get_text(row, 1)?,
            guilds: get_text(row, 2)?,
            label: get_text(row, 3)?,
            human_id: row.get(4).map_err(db_err)?,
            created_at: get_text(row, 5)?,
            revoked_at: row.get(6).map_err(db_err)?,
        })
    })
}

pub(crate) fn token_by_hash(conn: &Connection, sha256: &str) -> StoreResult<Option<TokenInfo>> {
    Ok(select_tokens(conn, "WHERE secret_sha256 = ?1", [sha256])?
        .into_iter()
        .next())
}

pub(crate) fn token(conn: &Connection, id: &str) -> StoreResult<Option<TokenInfo>> {
    Ok(select_tokens(conn, "WHERE id = ?1", [id])?
        .into_iter()
        .next())
}

pub(crate) fn tokens(conn: &Connection) -> StoreResult<Vec<TokenInfo>> {
    select_tokens(conn, "ORDER BY created_at, id", [])
}

/// Writes many change sets, in order, in one `BEGIN IMMEDIATE` transaction:
/// all of them, or (on any error, or a crash) none. Import and copy use it,
/// so a killed import leaves the database as it was.
///
/// Each guild's head is checked against the store before its first change
/// set and written once, after its last one. In between nothing but this
/// transaction can write (it holds SQLite's write lock), so each later change
/// set is checked against the head the one before it left, in memory: the
/// same check as [`commit`]'s, without a read and a rewrite of the head row
/// per entry. The chain guards still check every entry as it is inserted,
/// and the head when it is written.
pub(crate) fn commit_all(
    conn: &Connection,
    changes: &mut dyn Iterator<Item = StoreResult<ChangeSet>>,
) -> StoreResult<u64> {
    // A cache large enough that the pages the inserts keep touching (the
    // right-hand edges of each table and index) stay in memory instead of
    // being spilled to the WAL again and again during one long transaction;
    // the connection's own size comes back afterwards.
    let cache: i64 = conn
        .query_row("PRAGMA cache_size", [], |row| row.get(0))
        .map_err(db_err)?;
    conn.pragma_update(None, "cache_size", BULK_CACHE_KIB)
        .map_err(db_err)?;
    let written = commit_all_in(conn, changes);
    let restored = conn
        .pragma_update(None, "cache_size", cache)
        .map_err(db_err);
    let written = written?;
    restored?;
    Ok(written)
}

/// The page cache of a bulk write, in KiB (SQLite reads a negative
/// `cache_size` as KiB): 256 MiB.
const BULK_CACHE_KIB: i64 = -256 * 1024;

fn commit_all_in(
    conn: &Connection,
    changes: &mut dyn Iterator<Item = StoreResult<ChangeSet>>,
) -> StoreResult<u64> {
    let tx = WriteTx::begin(conn)?;
    let mut written = 0;
    // The last change set of the guild being written: its head is the one
    // the next change set must follow, and is written after the guild's last.
    let mut pending: Option<ChangeSet> = None;
    for change in changes {
        let change = change?;
        let rows = Rows::of(&change)?;
        let body = change.entry.body();
        match &pending {
            Some(prev) if prev.guild_id == change.guild_id => {
                if change.expected_seq != Some(prev.head.seq)
                    || body.prev_hash != prev.head.last_hash
                {
                    return Err(StoreError::Conflict(
                        "the change sets of a guild do not follow each other".into(),
                    ));
                }
            }
            _ => {
                if let Some(prev) = pending.take() {
                    write_pending_head(&tx, &prev)?;
                }
                check_head(&tx, rows.guild, change.expected_seq, &body.prev_hash)?;
            }
        }
        rows.insert(&tx, &|_| Ok(()))?;
        drop(rows);
        pending = Some(change);
        written += 1;
    }
    if let Some(last) = pending {
        write_pending_head(&tx, &last)?;
    }
    tx.commit()?;
    Ok(written)
}

/// Writes a guild's head from the last change set of its run in
/// [`commit_all`], with the document that change set leaves current.
fn write_pending_head(tx: &Connection, last: &ChangeSet) -> StoreResult<()> {
    let text = last.new_head_text()?;
    let document = match text.as_deref() {
        Some(text) => HeadDocument::Set(text),
        None => HeadDocument::Clear,
    };
    upsert_head(tx, last.guild_id.as_i64(), &last.head, document)
}

/// A checked change set with its values ready for binding.
struct Rows<'a> {
    change: &'a ChangeSet,
    guild: i64,
    snapshot: Option<(i64, &'a str, &'a str)>,
    request: Option<(&'a str, &'a str, String)>,
    head_document: HeadDocument<'a>,
}

impl<'a> Rows<'a> {
    fn of(change: &'a ChangeSet) -> StoreResult<Self> {
        change.check()?;
        let body = change.entry.body();
        let snapshot = change
            .snapshot
            .as_ref()
            .map(|s| {
                Ok::<_, StoreError>((
                    to_i64(s.version, "snapshot version")?,
                    s.document.text(),
                    s.document.sha256(),
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
                    request_result_text(&r.result)?,
                ))
            })
            .transpose()?;
        let head = &change.head;
        let head_document = change.head_document();
        // Checked here, so the helpers below cannot fail on them.
        to_i64(body.seq, "entry seq")?;
        to_i64(body.config_version, "entry config_version")?;
        to_i64(head.version, "head version")?;
        to_i64(head.seq, "head seq")?;
        Ok(Self {
            change,
            guild: change.guild_id.as_i64(),
            snapshot,
            request,
            head_document,
        })
    }

    /// The head check, the inserts and the head move, inside `tx`.
    fn write(
        &self,
        tx: &Connection,
        fault: &dyn Fn(WriteStep) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let change = self.change;
        check_head(
            tx,
            self.guild,
            change.expected_seq,
            &change.entry.body().prev_hash,
        )?;
        self.insert(tx, fault)?;
        fault(WriteStep::HeadMove)?;
        upsert_head(tx, self.guild, &change.head, self.head_document)
    }

    /// The snapshot, entry and request inserts, inside `tx`.
    fn insert(
        &self,
        tx: &Connection,
        fault: &dyn Fn(WriteStep) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let (change, guild) = (self.change, self.guild);
        if let Some((version, document, sha256)) = &self.snapshot {
            fault(WriteStep::SnapshotInsert)?;
            tx.prepare_cached(
                "INSERT INTO guild_snapshots (guild_id, version, document, sha256)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![guild, version, document, sha256]))
            .map_err(db_err)?;
        }
        fault(WriteStep::EntryInsert)?;
        insert_entry(tx, guild, &change.entry, change.signature.as_ref())?;
        if let Some((request_id, fingerprint, result)) = &self.request {
            fault(WriteStep::RequestInsert)?;
            tx.prepare_cached(
                "INSERT INTO audit_requests (guild_id, request_id, fingerprint, result)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![guild, request_id, fingerprint, result]))
            .map_err(db_err)?;
        }
        Ok(())
    }
}

/// A `BEGIN IMMEDIATE` transaction run through cached statements: rusqlite's
/// `Transaction` prepares `BEGIN` and `COMMIT` afresh every time, a few
/// microseconds of parsing on every write while the write lock is held.
/// Rolled back when dropped without a successful commit, like `Transaction`.
struct WriteTx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> WriteTx<'c> {
    fn begin(conn: &'c Connection) -> StoreResult<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(db_err)?;
        Ok(Self { conn, open: true })
    }

    fn commit(mut self) -> StoreResult<()> {
        self.conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map_err(db_err)?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        // A failed rollback leaves the transaction open; `lock` rolls it back
        // before the connection is used again.
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Fails with [`StoreError::Conflict`] unless the guild's head is at
/// `expected` (`None`: the guild has no head) with `prev_hash` as its hash.
fn check_head(
    tx: &Connection,
    guild: i64,
    expected: Option<u64>,
    prev_hash: &str,
) -> StoreResult<()> {
    let current: Option<(i64, String)> = tx
        .prepare_cached("SELECT seq, last_hash FROM guild_heads WHERE guild_id = ?1")
        .and_then(|mut s| {
            s.query_row([guild], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(db_err)?;
    let current = current
        .map(|(seq, hash)| Ok::<_, StoreError>((stored_u64(seq, "guild_heads.seq")?, hash)))
        .transpose()?;
    let at_expected = match (&current, expected) {
        (None, None) => true,
        (Some((seq, hash)), Some(expected)) => *seq == expected && hash == prev_hash,
        _ => false,
    };
    if at_expected {
        Ok(())
    } else {
        Err(StoreError::Conflict(
            "the guild's head moved since the change was computed".into(),
        ))
    }
}

/// Inserts a chained entry, its body as the text that was hashed, and its
/// signature (when signed) in the three columns beside it.
fn insert_entry(
    tx: &Connection,
    guild: i64,
    entry: &SealedEntry,
    signature: Option<&EntrySignature>,
) -> StoreResult<()> {
    let body = entry.body();
    let seq = to_i64(body.seq, "entry seq")?;
    let version = to_i64(body.config_version, "entry config_version")?;
    tx.prepare_cached(
        "INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at,
                                    actor_id, request_id, body, entry_hash, prev_hash,
                                    sig_alg, sig_key, sig_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .and_then(|mut s| {
        s.execute(params![
            guild,
            seq,
            version,
            body.operation.as_str(),
            body.occurred_at.to_string(),
            body.actor.id,
            body.request_id,
            entry.text(),
            entry.entry_hash(),
            body.prev_hash,
            signature.map(|s| s.alg.as_str()),
            signature.map(|s| s.key.as_str()),
            signature.map(|s| s.value.as_str()),
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

/// Writes the guild's head row.
fn upsert_head(
    tx: &Connection,
    guild: i64,
    head: &Head,
    document: HeadDocument<'_>,
) -> StoreResult<()> {
    let version = to_i64(head.version, "head version")?;
    let seq = to_i64(head.seq, "head seq")?;
    let (document, keep) = match document {
        HeadDocument::Set(text) => (Some(text), false),
        HeadDocument::Clear => (None, false),
        HeadDocument::Keep => (None, true),
    };
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
             document = CASE WHEN ?10 THEN guild_heads.document ELSE excluded.document END",
    )
    .and_then(|mut s| {
        s.execute(params![
            guild,
            version,
            seq,
            head.last_hash,
            head.updated_at.to_string(),
            head.actor.id,
            head.actor.kind.as_str(),
            head.actor.label,
            document,
            keep,
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

/// Rows a purge deletes per statement.
const PURGE_BATCH: i64 = 1000;

/// The operations that make a version (and so need its snapshot).
const VERSION_OPS: &str = "('create', 'update', 'revert')";
/// The operations whose entry names no kept version's document: every other
/// entry (a config write or an event) needs its version's snapshot to stay.
const NO_DOCUMENT_OPS: &str = "('delete', 'purge')";

/// What a purge of entries before `before` would remove: the head, then the
/// [`PurgeFacts`] in one statement (each CTE and column is the field of that
/// name), judged by [`PurgeCandidate::from_facts`].
pub(crate) fn purge_candidate(
    conn: &Connection,
    guild: GuildId,
    before: Timestamp,
) -> StoreResult<Option<PurgeCandidate>> {
    let Some(head) = head(conn, guild)? else {
        return Ok(None);
    };
    let (version, seq) = (to_i64(head.version, "version")?, to_i64(head.seq, "seq")?);
    let facts = conn
        .prepare_cached(&format!(
            "WITH cap AS (
                 SELECT seq FROM audit_entries WHERE guild_id = ?1 AND seq <= ?4
                   AND operation IN {VERSION_OPS}
                 ORDER BY seq DESC LIMIT 1),
             through AS (
                 SELECT seq, entry_hash FROM audit_entries
                 WHERE guild_id = ?1 AND occurred_at < ?2 AND seq < (SELECT seq FROM cap)
                 ORDER BY occurred_at DESC LIMIT 1),
             next AS (
                 SELECT config_version FROM audit_entries
                 WHERE guild_id = ?1 AND seq > (SELECT seq FROM through)
                   AND operation NOT IN {NO_DOCUMENT_OPS}
                 ORDER BY seq LIMIT 1)
             SELECT (SELECT seq FROM cap),
                    (SELECT seq FROM through),
                    (SELECT entry_hash FROM through),
                    (SELECT COUNT(*) FROM audit_entries
                     WHERE guild_id = ?1 AND seq <= (SELECT seq FROM through)),
                    (SELECT config_version FROM next),
                    (SELECT COUNT(*) FROM guild_snapshots WHERE guild_id = ?1
                     AND version < (SELECT config_version FROM next) AND version <> ?3),
                    (SELECT COUNT(*) FROM guild_snapshots WHERE guild_id = ?1
                     AND version < ?3 AND EXISTS (SELECT 1 FROM through))"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![guild.as_i64(), before.to_string(), version, seq],
                |row| {
                    let through_seq: Option<i64> = row.get(1)?;
                    let through_hash: Option<String> = row.get(2)?;
                    Ok(PurgeFacts {
                        cap_seq: row.get(0)?,
                        through: through_seq.zip(through_hash),
                        entries: row.get(3)?,
                        next_version: row.get(4)?,
                        snapshots_below_next: row.get(5)?,
                        snapshots_below_head: row.get(6)?,
                    })
                },
            )
        })
        .map_err(db_err)?;
    PurgeCandidate::from_facts(head, facts)
}

/// Deletes in batches of [`PURGE_BATCH`] until a statement removes fewer;
/// returns the rows removed.
fn delete_batched(tx: &Transaction<'_>, sql: &str, args: &[i64]) -> StoreResult<u64> {
    let mut removed = 0u64;
    let mut stmt = tx.prepare_cached(sql).map_err(db_err)?;
    loop {
        let n = stmt
            .execute(params_from_iter(args.iter().copied().chain([PURGE_BATCH])))
            .map_err(db_err)?;
        removed += n as u64;
        if i64::try_from(n).unwrap_or(i64::MAX) < PURGE_BATCH {
            return Ok(removed);
        }
    }
}

/// One guild's purge in one `BEGIN IMMEDIATE` transaction: head check, the
/// gate row, batched deletes, the gate row removed, the purge entry, the head.
pub(crate) fn purge(conn: &mut Connection, set: &PurgeSet) -> StoreResult<PurgeOutcome> {
    set.check()?;
    let body = set.entry.body();
    let guild = set.guild_id.as_i64();
    let through_seq = to_i64(set.through_seq, "through seq")?;
    let keep_from = to_i64(set.keep_from_version, "version")?;
    let current_version = to_i64(set.head.version, "head version")?;

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    check_head(&tx, guild, Some(set.expected_seq), &body.prev_hash)?;
    let stored: Option<String> = tx
        .prepare_cached("SELECT entry_hash FROM audit_entries WHERE guild_id = ?1 AND seq = ?2")
        .and_then(|mut s| {
            s.query_row(params![guild, through_seq], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?;
    if stored.as_deref() != Some(set.through_hash.as_str()) {
        return Err(StoreError::Conflict(
            "the entries to purge are not the ones planned".into(),
        ));
    }
    tx.prepare_cached("INSERT INTO purge_gate (guild_id) VALUES (?1)")
        .and_then(|mut s| s.execute([guild]))
        .map_err(db_err)?;
    let entries_removed = delete_batched(
        &tx,
        "DELETE FROM audit_entries WHERE guild_id = ?1 AND seq IN (
             SELECT seq FROM audit_entries WHERE guild_id = ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3)",
        &[guild, through_seq],
    )?;
    let snapshots_removed = delete_batched(
        &tx,
        "DELETE FROM guild_snapshots WHERE guild_id = ?1 AND version IN (
             SELECT version FROM guild_snapshots
             WHERE guild_id = ?1 AND version < ?2 AND version <> ?3 ORDER BY version LIMIT ?4)",
        &[guild, keep_from, current_version],
    )?;
    tx.prepare_cached("DELETE FROM purge_gate WHERE guild_id = ?1")
        .and_then(|mut s| s.execute([guild]))
        .map_err(db_err)?;
    insert_entry(&tx, guild, &set.entry, set.signature.as_ref())?;
    upsert_head(&tx, guild, &set.head, HeadDocument::Keep)?;
    tx.commit().map_err(db_err)?;
    Ok(PurgeOutcome {
        entries_removed,
        snapshots_removed,
    })
}
