//! The [`ConfigStore`] implementation.

use async_trait::async_trait;
use guildconf_domain::{
    Actor, Entry, EntrySignature, GuildId, Operation, SealedEntry, Timestamp, TokenInfo,
};
use guildconf_ports::codec::{
    request_result_text, stored_actor, stored_entry_body, stored_guild, stored_json,
    stored_operation, stored_signature, stored_timestamp, stored_token, stored_u64,
    to_stored_i64 as to_i64, token_guilds_text, StoredToken, TOKEN_COLUMNS,
};
use guildconf_ports::{
    ChangeSet, ChangeWatcher, ConfigStore, GuildSummary, Head, HeadDocument, HistoryQuery,
    PastHead, PurgeCandidate, PurgeFacts, PurgeOutcome, PurgeSet, RequestEntry, RequestRecord,
    Snapshot, StatsBy, StatsQuery, StatsRow, StoreError, StoreResult, StoredEntry, StoredHead,
    StoredRequest, TokenChange, TokenWrite, WriteStep,
};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::error::map_sqlx;
use crate::PgStore;

fn get<'r, T>(row: &'r PgRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(map_sqlx)
}

/// A `BIGINT` column as `u64`; `what` is `table.column`.
fn get_u64(row: &PgRow, column: &str, what: &str) -> StoreResult<u64> {
    stored_u64(get(row, column)?, what)
}

fn get_guild(row: &PgRow) -> StoreResult<GuildId> {
    stored_guild(get(row, "guild_id")?)
}

fn get_time(row: &PgRow, column: &str, what: &str) -> StoreResult<Timestamp> {
    stored_timestamp(&get::<String>(row, column)?, what)
}

/// The actor columns (`actor_id`, `actor_kind`, `actor_label`) of a row of
/// `table`.
fn get_actor(row: &PgRow, table: &str) -> StoreResult<Actor> {
    stored_actor(
        get(row, "actor_id")?,
        &get::<String>(row, "actor_kind")?,
        get(row, "actor_label")?,
        table,
    )
}

/// The SQL of one streaming batch, after `prefix` (empty, or `EXPLAIN `):
/// the one builder behind [`ConfigStore::entries_between`] and
/// [`PgStore::explain_entries_between`].
fn entries_between_sql(
    prefix: &str,
    after: (GuildId, u64),
    through: GuildId,
    since: Option<Timestamp>,
    limit: u32,
    with_snapshots: bool,
) -> QueryBuilder<'static, Postgres> {
    // Beyond i64::MAX no stored seq is greater: the guild is done.
    let after_seq = i64::try_from(after.1).unwrap_or(i64::MAX);
    let mut sql: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
        "{prefix}SELECT e.guild_id, e.seq, e.actor_id, e.occurred_at, e.operation, e.body, \
         e.entry_hash, e.config_version, e.request_id, e.prev_hash, e.sig_alg, e.sig_key, \
         e.sig_value, "
    ));
    if with_snapshots {
        // A primary-key lookup per returned row: a join let the planner
        // hash all of the guild's snapshots for every batch.
        sql.push(
            "CASE WHEN e.operation <> 'delete' THEN \
             (SELECT s.document FROM guild_snapshots s \
             WHERE s.guild_id = e.guild_id AND s.version = e.config_version) \
             END AS snapshot, \
             CASE WHEN e.operation <> 'delete' THEN \
             (SELECT s.sha256 FROM guild_snapshots s \
             WHERE s.guild_id = e.guild_id AND s.version = e.config_version) \
             END AS snapshot_sha256 FROM audit_entries e",
        );
    } else {
        sql.push("NULL::text AS snapshot, NULL::text AS snapshot_sha256 FROM audit_entries e");
    }
    sql.push(" WHERE (e.guild_id, e.seq) > (")
        .push_bind(after.0.as_i64())
        .push(", ")
        .push_bind(after_seq)
        // The lower bound again on its own: without it PostgreSQL's
        // generic plan (sqlx prepares statements, and after five runs
        // the server may switch to one) scans `audit_entries_guild_time`
        // from the guild's first entry and filters the row comparison,
        // reading a whole deep guild for every batch.
        .push(") AND e.guild_id >= ")
        .push_bind(after.0.as_i64())
        .push(" AND e.guild_id <= ")
        .push_bind(through.as_i64());
    if let Some(since) = since {
        sql.push(" AND e.occurred_at >= ")
            .push_bind(since.to_string());
    }
    sql.push(" ORDER BY e.guild_id, e.seq LIMIT ")
        .push_bind(i64::from(limit));
    sql
}

/// An entry's family, as the index `audit_entries_guild_family` (migration
/// 0007) spells it: `config` for the config operations, else the action
/// key's part before the dot.
const FAMILY: &str =
    "(CASE WHEN strpos(operation, '.') > 0 THEN split_part(operation, '.', 1) ELSE 'config' END)";
/// An entry's outcome, as `audit_entries_guild_outcome` spells it: an
/// event's `detail.outcome`, `success` for the config operations.
const OUTCOME: &str = "(CASE WHEN strpos(operation, '.') > 0 \
     THEN (body::jsonb) #>> '{detail,outcome}' ELSE 'success' END)";
/// An event's target type and id, as `audit_entries_guild_target` spells them.
const TARGET_TYPE: &str = "((body::jsonb) #>> '{detail,target,type}')";
const TARGET_ID: &str = "((body::jsonb) #>> '{detail,target,id}')";

/// The SQL of one page of history, newest first, after `prefix` (empty, or
/// `EXPLAIN `): the one builder behind both [`ConfigStore::history`] and
/// [`PgStore::explain_history`]. With a guild, pages by seq; without one (an
/// actor's trail across guilds), by `(occurred_at, guild_id, seq)`.
fn history_sql(prefix: &str, query: &HistoryQuery) -> QueryBuilder<'static, Postgres> {
    // `WHERE TRUE` so every filter is an `AND`; the port asks for an actor
    // when there is no guild, but a scan without either is still answered
    // (newest first across guilds), as the SQLite adapter does.
    let mut sql: QueryBuilder<'static, Postgres> = QueryBuilder::new(format!(
        "{prefix}SELECT body, entry_hash FROM audit_entries WHERE TRUE"
    ));
    if let Some(guild) = query.guild_id {
        sql.push(" AND guild_id = ").push_bind(guild.as_i64());
    }
    if let Some(actor_id) = &query.actor_id {
        sql.push(" AND actor_id = ").push_bind(actor_id.clone());
    }
    match (query.guild_id, &query.after) {
        (Some(_), Some(after)) => {
            // Within one guild seq orders entries as time does. Beyond
            // i64::MAX every stored seq is smaller: no filter.
            if let Ok(seq) = i64::try_from(after.seq) {
                sql.push(" AND seq < ").push_bind(seq);
            }
        }
        (None, Some(after)) => {
            let seq = i64::try_from(after.seq).unwrap_or(i64::MAX);
            sql.push(" AND (occurred_at, guild_id, seq) < (")
                .push_bind(after.occurred_at.to_string())
                .push(", ")
                .push_bind(after.guild_id.as_i64())
                .push(", ")
                .push_bind(seq)
                .push(")");
        }
        (_, None) => {}
    }
    if let Some(op) = query.operation {
        sql.push(" AND operation = ")
            .push_bind(op.as_str().to_owned());
    }
    if let Some(since) = query.since {
        sql.push(" AND occurred_at >= ")
            .push_bind(since.to_string());
    }
    if let Some(until) = query.until {
        sql.push(" AND occurred_at < ").push_bind(until.to_string());
    }
    let filter = &query.filter;
    if let Some(family) = &filter.family {
        sql.push(format!(" AND {FAMILY} = "))
            .push_bind(family.clone());
    }
    if let Some(outcome) = filter.outcome {
        sql.push(format!(" AND {OUTCOME} = "))
            .push_bind(outcome.as_str().to_owned());
    }
    if let Some(kind) = &filter.target_type {
        sql.push(format!(" AND {TARGET_TYPE} = "))
            .push_bind(kind.clone());
    }
    if let Some(id) = &filter.target_id {
        sql.push(format!(" AND {TARGET_ID} = "))
            .push_bind(id.clone());
    }
    if query.guild_id.is_some() {
        sql.push(" ORDER BY seq DESC");
    } else {
        sql.push(" ORDER BY occurred_at DESC, guild_id DESC, seq DESC");
    }
    sql.push(" LIMIT ").push_bind(i64::from(query.limit));

    sql
}

impl PgStore {
    /// PostgreSQL's `EXPLAIN` of exactly the SQL [`ConfigStore::history`]
    /// runs for `query` (same builder, same bound values): the plan's lines,
    /// such as `Index Scan Backward using audit_entries_pkey on audit_entries`.
    /// For checking that history is served by indexes.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    pub async fn explain_history(&self, query: &HistoryQuery) -> StoreResult<Vec<String>> {
        let mut sql = history_sql("EXPLAIN ", query);
        let rows = sql
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).map_err(map_sqlx))
            .collect()
    }

    /// The plan of one streaming batch (`entries_between`) as PostgreSQL
    /// runs it from a prepared statement's *generic* plan, one line per
    /// row of `EXPLAIN` output (the test of the plan uses it).
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    pub async fn explain_entries_between(
        &self,
        after: (GuildId, u64),
        through: GuildId,
        with_snapshots: bool,
    ) -> StoreResult<Vec<String>> {
        // EXPLAIN of a statement with bound values plans it for those
        // values; a generic plan needs a named prepared statement.
        let sql = entries_between_sql("", after, through, None, 1000, with_snapshots);
        let (guild, seq) = (after.0.as_i64(), i64::try_from(after.1).unwrap_or(i64::MAX));
        // On a connection of its own, taken out of the pool and closed
        // afterwards, so neither the setting nor the prepared statement
        // outlives this call, whatever fails.
        let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?.detach();
        let setup = format!(
            "SET plan_cache_mode = force_generic_plan; \
             PREPARE guildconf_explain_stream AS {}",
            sql.sql()
        );
        let explain = format!(
            "EXPLAIN EXECUTE guildconf_explain_stream({guild}, {seq}, {guild}, {}, 1000)",
            through.as_i64()
        );
        let rows = match sqlx::raw_sql(&setup).execute(&mut conn).await {
            Ok(_) => sqlx::raw_sql(&explain).fetch_all(&mut conn).await,
            Err(e) => Err(e),
        };
        let _ = sqlx::Connection::close(conn).await;
        rows.map_err(|e| self.err(e))?
            .iter()
            .map(|row| row.try_get::<String, _>(0).map_err(map_sqlx))
            .collect()
    }

    /// Moves the head inside `tx` (the purge's head move, which leaves the
    /// document as it is); `Conflict` when it is not at `expected_seq` with
    /// `prev_hash`. (The purge takes its `change_id` at the end of its
    /// transaction.)
    async fn move_head(
        &self,
        tx: &mut sqlx::PgConnection,
        head: &Head,
        expected_seq: u64,
        prev_hash: &str,
        guild: i64,
    ) -> StoreResult<()> {
        self.fault(WriteStep::HeadMove)?;
        let result = sqlx::query(
            "UPDATE guild_heads SET version = $3, seq = $4, last_hash = $5, \
             updated_at = $6, actor_id = $7, actor_kind = $8, actor_label = $9 \
             WHERE guild_id = $1 AND seq = $2 AND last_hash = $10",
        )
        .bind(guild)
        .bind(to_i64(expected_seq, "expected seq")?)
        .bind(to_i64(head.version, "version")?)
        .bind(to_i64(head.seq, "seq")?)
        .bind(&head.last_hash)
        .bind(head.updated_at.to_string())
        .bind(&head.actor.id)
        .bind(head.actor.kind.as_str())
        .bind(&head.actor.label)
        .bind(prev_hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        if result.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "the head of guild {} moved since the change was computed",
                head.guild_id
            )))
        }
    }

    /// Inserts a chained entry inside `tx`, with its signature (when signed)
    /// in the three columns beside it.
    async fn insert_entry(
        &self,
        tx: &mut sqlx::PgConnection,
        entry: &SealedEntry,
        signature: Option<&EntrySignature>,
        guild: i64,
    ) -> StoreResult<()> {
        let body = entry.body();
        sqlx::query(
            "INSERT INTO audit_entries (guild_id, seq, config_version, operation, occurred_at, \
             actor_id, request_id, body, entry_hash, prev_hash, sig_alg, sig_key, sig_value) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(guild)
        .bind(to_i64(body.seq, "seq")?)
        .bind(to_i64(body.config_version, "config version")?)
        .bind(body.operation.as_str())
        .bind(body.occurred_at.to_string())
        .bind(&body.actor.id)
        .bind(&body.request_id)
        .bind(entry.text())
        .bind(entry.entry_hash())
        .bind(&body.prev_hash)
        .bind(signature.map(|s| s.alg.as_str()))
        .bind(signature.map(|s| s.key.as_str()))
        .bind(signature.map(|s| s.value.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;

        Ok(())
    }

    /// Writes a change set as one statement, which PostgreSQL runs as one
    /// transaction: the head moves (a conditional `UPDATE … WHERE seq =
    /// expected`, or an `INSERT … ON CONFLICT DO NOTHING` for a new guild)
    /// and, in data-modifying CTEs that select `FROM head`, the snapshot, the
    /// entry and the request record are inserted only if it did. Any error
    /// (a constraint, a trigger, a lost connection) rolls all of it back.
    /// One round trip instead of six (`BEGIN`, four statements, `COMMIT`);
    /// the head's row lock still serialises writers on one guild, and nothing
    /// is written unless the head was where the change set expects.
    async fn write_change<'e>(
        &self,
        change: &ChangeSet,
        guild: i64,
        exec: impl sqlx::PgExecutor<'e>,
    ) -> StoreResult<()> {
        let head = &change.head;
        let head_document = change.head_document();
        let body = change.entry.body();
        let request_result = change
            .request
            .as_ref()
            .map(|r| request_result_text(&r.result))
            .transpose()?;
        let (version, seq) = (to_i64(head.version, "version")?, to_i64(head.seq, "seq")?);
        let updated_at = head.updated_at.to_string();

        // The test seam: with one statement, every step's fault (`Commit`
        // included) is decided before it is sent.
        self.fault(WriteStep::HeadMove)?;
        let mut sql: QueryBuilder<'_, Postgres> = QueryBuilder::new("WITH head AS (");
        match change.expected_seq {
            Some(expected) => {
                sql.push("UPDATE guild_heads SET version = ")
                    .push_bind(version)
                    .push(", seq = ")
                    .push_bind(seq)
                    .push(", last_hash = ")
                    .push_bind(&head.last_hash)
                    .push(", updated_at = ")
                    .push_bind(&updated_at)
                    .push(", actor_id = ")
                    .push_bind(&head.actor.id)
                    .push(", actor_kind = ")
                    .push_bind(head.actor.kind.as_str())
                    .push(", actor_label = ")
                    .push_bind(&head.actor.label);
                match head_document {
                    HeadDocument::Set(text) => {
                        sql.push(", document = ").push_bind(text);
                    }
                    HeadDocument::Clear => {
                        sql.push(", document = NULL");
                    }
                    HeadDocument::Keep => {}
                }
                // A new guild takes the column default; an update takes the
                // next change id explicitly (the read caches' change feed).
                if self.change_feed {
                    sql.push(", change_id = DEFAULT");
                }
                sql.push(" WHERE guild_id = ")
                    .push_bind(guild)
                    .push(" AND seq = ")
                    .push_bind(to_i64(expected, "expected seq")?)
                    .push(" AND last_hash = ")
                    .push_bind(&body.prev_hash);
            }
            None => {
                sql.push(
                    "INSERT INTO guild_heads (guild_id, version, seq, last_hash, updated_at, \
                     actor_id, actor_kind, actor_label, document) VALUES (",
                );
                let mut values = sql.separated(", ");
                values
                    .push_bind(guild)
                    .push_bind(version)
                    .push_bind(seq)
                    .push_bind(&head.last_hash)
                    .push_bind(&updated_at)
                    .push_bind(&head.actor.id)
                    .push_bind(head.actor.kind.as_str())
                    .push_bind(&head.actor.label)
                    .push_bind(head_document.text());
                sql.push(") ON CONFLICT (guild_id) DO NOTHING");
            }
        }
        sql.push(" RETURNING guild_id)");
        if let Some(snapshot) = &change.snapshot {
            self.fault(WriteStep::SnapshotInsert)?;
            sql.push(
                ", snapshot AS (INSERT INTO guild_snapshots (guild_id, version, document, sha256) \
                 SELECT guild_id, ",
            )
            .push_bind(to_i64(snapshot.version, "version")?)
            .push(", ")
            .push_bind(snapshot.document.text())
            .push(", ")
            .push_bind(snapshot.document.sha256())
            .push(" FROM head)");
        }
        self.fault(WriteStep::EntryInsert)?;
        sql.push(
            ", entry AS (INSERT INTO audit_entries (guild_id, seq, config_version, operation, \
             occurred_at, actor_id, request_id, body, entry_hash, prev_hash, sig_alg, sig_key, \
             sig_value) SELECT guild_id, ",
        );
        let mut values = sql.separated(", ");
        values
            .push_bind(to_i64(body.seq, "seq")?)
            .push_bind(to_i64(body.config_version, "config version")?)
            .push_bind(body.operation.as_str())
            .push_bind(body.occurred_at.to_string())
            .push_bind(&body.actor.id)
            .push_bind(&body.request_id)
            .push_bind(change.entry.text())
            .push_bind(change.entry.entry_hash())
            .push_bind(&body.prev_hash)
            .push_bind(change.signature.as_ref().map(|s| s.alg.clone()))
            .push_bind(change.signature.as_ref().map(|s| s.key.clone()))
            .push_bind(change.signature.as_ref().map(|s| s.value.clone()));
        sql.push(" FROM head)");
        if let (Some(request), Some(result)) = (&change.request, &request_result) {
            self.fault(WriteStep::RequestInsert)?;
            sql.push(
                ", request AS (INSERT INTO audit_requests (guild_id, request_id, fingerprint, \
                 result) SELECT guild_id, ",
            )
            .push_bind(&request.request_id)
            .push(", ")
            .push_bind(&request.fingerprint)
            .push(", ")
            .push_bind(result)
            .push(" FROM head)");
        }
        sql.push(" SELECT count(*) FROM head");
        self.fault(WriteStep::Commit)?;
        let moved: i64 = sql
            .build()
            .fetch_one(exec)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| self.err(e))?;
        if moved == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "the head of guild {} moved since the change was computed",
                head.guild_id
            )))
        }
    }
}

impl PgStore {
    /// The rows of a statement over a range of guilds (`$1` the first
    /// guild, `$2` the last).
    async fn rows_in_range(
        &self,
        sql: &str,
        from: GuildId,
        through: GuildId,
    ) -> StoreResult<Vec<PgRow>> {
        sqlx::query(sql)
            .bind(from.as_i64())
            .bind(through.as_i64())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// A change set's snapshot, entry and request record inside `tx`, with
    /// no head move (the bulk path of `commit_all`).
    async fn insert_rows(
        &self,
        tx: &mut sqlx::PgConnection,
        change: &ChangeSet,
    ) -> StoreResult<()> {
        let guild = change.guild_id.as_i64();
        if let Some(snapshot) = &change.snapshot {
            sqlx::query(
                "INSERT INTO guild_snapshots (guild_id, version, document, sha256) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(guild)
            .bind(to_i64(snapshot.version, "version")?)
            .bind(snapshot.document.text())
            .bind(snapshot.document.sha256())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        self.insert_entry(tx, &change.entry, change.signature.as_ref(), guild)
            .await?;
        if let Some(request) = &change.request {
            sqlx::query(
                "INSERT INTO audit_requests (guild_id, request_id, fingerprint, result) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(guild)
            .bind(&request.request_id)
            .bind(&request.fingerprint)
            .bind(request_result_text(&request.result)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// A guild's head as `change` leaves it, with the document text it
    /// leaves current ([`ChangeSet::new_head_text`], which also knows it when
    /// `change` makes no version), inserted inside `tx`; a guild that has a
    /// head already is a conflict.
    async fn insert_head(
        &self,
        tx: &mut sqlx::PgConnection,
        change: &ChangeSet,
    ) -> StoreResult<()> {
        let document = change.new_head_text()?;
        let head = &change.head;
        let inserted = sqlx::query(
            "INSERT INTO guild_heads (guild_id, version, seq, last_hash, updated_at, actor_id, \
             actor_kind, actor_label, document) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (guild_id) DO NOTHING",
        )
        .bind(change.guild_id.as_i64())
        .bind(to_i64(head.version, "version")?)
        .bind(to_i64(head.seq, "seq")?)
        .bind(&head.last_hash)
        .bind(head.updated_at.to_string())
        .bind(&head.actor.id)
        .bind(head.actor.kind.as_str())
        .bind(&head.actor.label)
        .bind(document.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        if inserted.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "guild {} has a head already",
                change.guild_id
            )))
        }
    }
}

impl PgStore {
    /// A token write inside `tx`: the token row first, then each guild's
    /// event as [`PgStore::write_change`] writes it (its head moves only
    /// from where the change set expects, else a conflict).
    async fn token_write_in(
        &self,
        tx: &mut sqlx::PgConnection,
        write: &TokenWrite,
    ) -> StoreResult<()> {
        match &write.token {
            TokenChange::Insert {
                info,
                secret_sha256,
            } => {
                sqlx::query(
                    "INSERT INTO api_tokens (id, secret_sha256, role, guilds, label, human_id, \
                     created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
                )
                .bind(&info.id)
                .bind(secret_sha256)
                .bind(info.role.as_str())
                .bind(token_guilds_text(&info.guilds)?)
                .bind(&info.label)
                .bind(&info.human_id)
                .bind(info.created_at.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            }
            TokenChange::Revoke { id, revoked_at } => {
                let revoked = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(revoked_at.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                if revoked.rows_affected() != 1 {
                    return Err(StoreError::Conflict(
                        "no unrevoked token has this id".into(),
                    ));
                }
            }
        }
        for change in &write.changes {
            self.write_change(change, change.guild_id.as_i64(), &mut *tx)
                .await?;
        }
        Ok(())
    }

    /// The token rows a query selects ([`TOKEN_COLUMNS`], then `rest`, whose
    /// `$1`, if any, is `arg`).
    async fn select_tokens(&self, rest: &str, arg: Option<&str>) -> StoreResult<Vec<TokenInfo>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens {rest}");
        let mut query = sqlx::query(&sql);
        if let Some(arg) = arg {
            query = query.bind(arg);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(|e| self.err(e))?;
        rows.iter()
            .map(|row| {
                stored_token(StoredToken {
                    id: get(row, "id")?,
                    role: get(row, "role")?,
                    guilds: get(row, "guilds")?,
                    label: get(row, "label")?,
                    human_id: get(row, "human_id")?,
                    created_at: get(row, "created_at")?,
                    revoked_at: get(row, "revoked_at")?,
                })
            })
            .collect()
    }
}

/// Rows a purge deletes per statement.
const PURGE_BATCH: i64 = 1000;

impl PgStore {
    /// The purge inside `tx`: head first (its row lock serialises this with
    /// every writer of the guild), then the gate, the batched deletes, the
    /// gate closed again, and the purge entry.
    async fn purge_in(
        &self,
        tx: &mut sqlx::PgConnection,
        set: &PurgeSet,
        guild: i64,
    ) -> StoreResult<PurgeOutcome> {
        self.move_head(
            tx,
            &set.head,
            set.expected_seq,
            &set.entry.body().prev_hash,
            guild,
        )
        .await?;
        let through_seq = to_i64(set.through_seq, "through seq")?;
        let stored =
            sqlx::query("SELECT entry_hash FROM audit_entries WHERE guild_id = $1 AND seq = $2")
                .bind(guild)
                .bind(through_seq)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err(e))?
                .map(|row| get::<String>(&row, "entry_hash"))
                .transpose()?;
        if stored.as_deref() != Some(set.through_hash.as_str()) {
            return Err(StoreError::Conflict(
                "the entries to purge are not the ones planned".into(),
            ));
        }
        // Transaction-local: gone at commit or rollback.
        sqlx::query("SELECT set_config('guildconf.purge', 'on', true)")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let mut outcome = PurgeOutcome::default();
        loop {
            let n = sqlx::query(
                "DELETE FROM audit_entries WHERE guild_id = $1 AND seq IN ( \
                 SELECT seq FROM audit_entries WHERE guild_id = $1 AND seq <= $2 \
                 ORDER BY seq LIMIT $3)",
            )
            .bind(guild)
            .bind(through_seq)
            .bind(PURGE_BATCH)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?
            .rows_affected();
            outcome.entries_removed += n;
            if n < PURGE_BATCH.unsigned_abs() {
                break;
            }
        }
        loop {
            let n = sqlx::query(
                "DELETE FROM guild_snapshots WHERE guild_id = $1 AND version IN ( \
                 SELECT version FROM guild_snapshots WHERE guild_id = $1 AND version < $2 \
                 AND version <> $3 ORDER BY version LIMIT $4)",
            )
            .bind(guild)
            .bind(to_i64(set.keep_from_version, "version")?)
            .bind(to_i64(set.head.version, "version")?)
            .bind(PURGE_BATCH)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?
            .rows_affected();
            outcome.snapshots_removed += n;
            if n < PURGE_BATCH.unsigned_abs() {
                break;
            }
        }
        sqlx::query("SELECT set_config('guildconf.purge', 'off', true)")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        self.insert_entry(tx, &set.entry, set.signature.as_ref(), guild)
            .await?;
        // The change feed's id is taken last, right before commit: a purge
        // may run for a while, and read caches only look back two seconds
        // for a change_id that committed late.
        sqlx::query("UPDATE guild_heads SET change_id = DEFAULT WHERE guild_id = $1")
            .bind(guild)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        Ok(outcome)
    }
}

#[async_trait]
impl ConfigStore for PgStore {
    async fn head(&self, guild: GuildId) -> StoreResult<Option<Head>> {
        let row = sqlx::query(
            "SELECT version, seq, last_hash, updated_at, actor_id, actor_kind, actor_label, \
             document FROM guild_heads WHERE guild_id = $1",
        )
        .bind(guild.as_i64())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Head {
            guild_id: guild,
            version: get_u64(&row, "version", "guild_heads.version")?,
            seq: get_u64(&row, "seq", "guild_heads.seq")?,
            last_hash: get(&row, "last_hash")?,
            updated_at: get_time(&row, "updated_at", "guild_heads.updated_at")?,
            actor: get_actor(&row, "guild_heads")?,
            document: get::<Option<String>>(&row, "document")?
                .map(|text| stored_json(text.as_bytes(), "guild_heads.document"))
                .transpose()?,
        }))
    }

    async fn commit(&self, change: ChangeSet) -> StoreResult<()> {
        change.check()?;
        self.write_change(&change, change.guild_id.as_i64(), &self.pool)
            .await
    }

    async fn commit_all(
        &self,
        changes: Box<dyn Iterator<Item = StoreResult<ChangeSet>> + Send>,
    ) -> StoreResult<u64> {
        // One transaction: a failure, or a process killed midway, leaves
        // nothing of it behind. Each guild's head is written once, after its
        // last change: updating one row tens of thousands of times in one
        // transaction makes PostgreSQL walk an ever longer chain of that
        // row's versions (measured: 50,000 entries of one guild took nine
        // minutes). The chain guards still check every entry, and the head
        // (deferred) at commit.
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        // Each statement of a bulk write is short, but its commit runs the
        // deferred head check of every guild at once: with very many guilds
        // it may take longer than the statement timeout, which would throw
        // the whole import away at its last step. The lock timeout stays.
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let mut written = 0;
        let mut pending: Option<ChangeSet> = None;
        for change in changes {
            let change = change?;
            change.check()?;
            match &pending {
                Some(prev)
                    if prev.guild_id == change.guild_id
                        && change.expected_seq != Some(prev.head.seq) =>
                {
                    return Err(StoreError::Conflict(
                        "the change sets of a guild do not follow each other".into(),
                    ));
                }
                Some(prev) if prev.guild_id == change.guild_id => {}
                Some(prev) => self.insert_head(&mut tx, prev).await?,
                None => {}
            }
            let first_of_guild = pending
                .as_ref()
                .is_none_or(|p| p.guild_id != change.guild_id);
            if first_of_guild && change.expected_seq.is_some() {
                return Err(StoreError::Conflict(
                    "a bulk write starts each guild from no head".into(),
                ));
            }
            self.insert_rows(&mut tx, &change).await?;
            pending = Some(change);
            written += 1;
        }
        if let Some(last) = &pending {
            self.insert_head(&mut tx, last).await?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(written)
    }

    async fn entry_signature(
        &self,
        guild: GuildId,
        seq: u64,
    ) -> StoreResult<Option<(String, Option<EntrySignature>)>> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT entry_hash, sig_alg, sig_key, sig_value FROM audit_entries \
             WHERE guild_id = $1 AND seq = $2",
        )
        .bind(guild.as_i64())
        .bind(seq)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(|row| {
            Ok((
                get(&row, "entry_hash")?,
                stored_signature(
                    get(&row, "sig_alg")?,
                    get(&row, "sig_key")?,
                    get(&row, "sig_value")?,
                ),
            ))
        })
        .transpose()
    }

    async fn request(
        &self,
        guild: GuildId,
        request_id: &str,
    ) -> StoreResult<Option<RequestRecord>> {
        let row = sqlx::query(
            "SELECT fingerprint, result FROM audit_requests \
             WHERE guild_id = $1 AND request_id = $2",
        )
        .bind(guild.as_i64())
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let result: String = get(&row, "result")?;
        Ok(Some(RequestRecord {
            request_id: request_id.to_owned(),
            fingerprint: get(&row, "fingerprint")?,
            result: stored_json(result.as_bytes(), "audit_requests.result")?,
        }))
    }

    async fn snapshot(&self, guild: GuildId, version: u64) -> StoreResult<Option<Snapshot>> {
        let Ok(stored_version) = i64::try_from(version) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT document, sha256 FROM guild_snapshots WHERE guild_id = $1 AND version = $2",
        )
        .bind(guild.as_i64())
        .bind(stored_version)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|row| {
            Ok(Snapshot {
                version,
                document: stored_json(
                    get::<String>(&row, "document")?.as_bytes(),
                    "guild_snapshots.document",
                )?,
                sha256: get(&row, "sha256")?,
            })
        })
        .transpose()
    }

    async fn entry_at(
        &self,
        guild: GuildId,
        at: Timestamp,
    ) -> StoreResult<Option<(u64, Operation)>> {
        let row = sqlx::query(
            "SELECT config_version, operation FROM audit_entries \
             WHERE guild_id = $1 AND occurred_at <= $2 \
               AND operation IN ('create', 'update', 'revert', 'delete') \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(guild.as_i64())
        .bind(at.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|row| {
            Ok((
                get_u64(&row, "config_version", "audit_entries.config_version")?,
                stored_operation(&get::<String>(&row, "operation")?)?,
            ))
        })
        .transpose()
    }

    async fn list_guilds(&self) -> StoreResult<Vec<GuildSummary>> {
        let rows = sqlx::query(
            "SELECT guild_id, version, document IS NULL AS deleted, updated_at, \
             actor_id, actor_kind, actor_label FROM guild_heads ORDER BY guild_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|row| {
                Ok(GuildSummary {
                    guild_id: get_guild(row)?,
                    version: get_u64(row, "version", "guild_heads.version")?,
                    deleted: get(row, "deleted")?,
                    updated_at: get_time(row, "updated_at", "guild_heads.updated_at")?,
                    actor: get_actor(row, "guild_heads")?,
                })
            })
            .collect()
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<Entry>> {
        let mut sql = history_sql("", query);
        let rows = sql
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|row| {
                Ok(Entry {
                    body: stored_entry_body(&get::<String>(row, "body")?)?,
                    entry_hash: get(row, "entry_hash")?,
                })
            })
            .collect()
    }

    async fn stats(&self, query: &StatsQuery) -> StoreResult<Vec<StatsRow>> {
        let key = match query.by {
            StatsBy::Operation => "operation",
            StatsBy::Family => FAMILY,
            StatsBy::Actor => "actor_id",
            StatsBy::Outcome => OUTCOME,
            StatsBy::Day => "substr(occurred_at, 1, 10)",
        };
        let mut sql: QueryBuilder<'static, Postgres> = QueryBuilder::new(format!(
            "SELECT {key} AS k, COUNT(*) AS n FROM audit_entries WHERE TRUE"
        ));
        if let Some(guild) = query.guild_id {
            sql.push(" AND guild_id = ").push_bind(guild.as_i64());
        }
        if let Some(since) = query.since {
            sql.push(" AND occurred_at >= ")
                .push_bind(since.to_string());
        }
        if let Some(until) = query.until {
            sql.push(" AND occurred_at < ").push_bind(until.to_string());
        }
        // Byte order, as SQLite's default collation sorts.
        sql.push(format!(" GROUP BY 1 ORDER BY ({key}) COLLATE \"C\""));
        let rows = sql.build().fetch_all(&self.pool).await.map_err(map_sqlx)?;
        rows.iter()
            .map(|row| {
                Ok(StatsRow {
                    key: get::<Option<String>>(row, "k")?.unwrap_or_default(),
                    count: get_u64(row, "n", "count")?,
                })
            })
            .collect()
    }

    async fn guild_ids(&self, after: Option<GuildId>, limit: u32) -> StoreResult<Vec<GuildId>> {
        let after = after.map_or(0, GuildId::as_i64);
        let rows = sqlx::query(
            "SELECT guild_id FROM guild_heads WHERE guild_id > $1 \
             UNION \
             SELECT DISTINCT guild_id FROM audit_entries WHERE guild_id > $1 \
             ORDER BY guild_id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter().map(get_guild).collect()
    }

    async fn entries_between(
        &self,
        after: (GuildId, u64),
        through: GuildId,
        since: Option<Timestamp>,
        limit: u32,
        with_snapshots: bool,
    ) -> StoreResult<Vec<StoredEntry>> {
        let mut sql = entries_between_sql("", after, through, since, limit, with_snapshots);
        let rows = sql
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|row| {
                Ok(StoredEntry {
                    guild_id: get_guild(row)?,
                    seq: get_u64(row, "seq", "audit_entries.seq")?,
                    actor_id: get(row, "actor_id")?,
                    occurred_at: get(row, "occurred_at")?,
                    operation: get(row, "operation")?,
                    body: get(row, "body")?,
                    entry_hash: get(row, "entry_hash")?,
                    config_version: get_u64(row, "config_version", "audit_entries.config_version")?,
                    request_id: get(row, "request_id")?,
                    prev_hash: get(row, "prev_hash")?,
                    signature: stored_signature(
                        get(row, "sig_alg")?,
                        get(row, "sig_key")?,
                        get(row, "sig_value")?,
                    ),
                    snapshot: get(row, "snapshot")?,
                    snapshot_sha256: get(row, "snapshot_sha256")?,
                })
            })
            .collect()
    }

    async fn stored_heads(
        &self,
        from: GuildId,
        through: GuildId,
    ) -> StoreResult<Vec<(GuildId, StoredHead)>> {
        let rows = self
            .rows_in_range(
                "SELECT guild_id, seq, version, last_hash, document, updated_at, \
                 actor_id, actor_kind, actor_label \
                 FROM guild_heads WHERE guild_id BETWEEN $1 AND $2 ORDER BY guild_id",
                from,
                through,
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    get_guild(row)?,
                    StoredHead {
                        seq: get_u64(row, "seq", "guild_heads.seq")?,
                        version: get_u64(row, "version", "guild_heads.version")?,
                        last_hash: get(row, "last_hash")?,
                        document: get(row, "document")?,
                        updated_at: get(row, "updated_at")?,
                        actor_id: get(row, "actor_id")?,
                        actor_kind: get(row, "actor_kind")?,
                        actor_label: get(row, "actor_label")?,
                    },
                ))
            })
            .collect()
    }

    async fn stored_requests(
        &self,
        from: GuildId,
        through: GuildId,
    ) -> StoreResult<Vec<StoredRequest>> {
        let sql = guildconf_ports::codec::stored_requests_sql(["$1", "$2"]);
        let rows = self.rows_in_range(&sql, from, through).await?;
        rows.iter()
            .map(|row| {
                let entry = match get::<Option<i64>>(row, "seq")? {
                    None => None,
                    Some(seq) => Some(RequestEntry {
                        seq: stored_u64(seq, "audit_entries.seq")?,
                        entry_hash: get(row, "entry_hash")?,
                        config_version: get_u64(
                            row,
                            "config_version",
                            "audit_entries.config_version",
                        )?,
                        operation: get(row, "operation")?,
                    }),
                };
                Ok(StoredRequest {
                    guild_id: get_guild(row)?,
                    request_id: get(row, "request_id")?,
                    result: get(row, "result")?,
                    entry,
                })
            })
            .collect()
    }

    async fn rows_past_heads(&self, from: GuildId, through: GuildId) -> StoreResult<Vec<PastHead>> {
        let rows = sqlx::query(
            "SELECT g.guild_id, g.entry_seq, g.snapshot_version FROM ( \
               SELECT h.guild_id, \
                      (SELECT max(e.seq) FROM audit_entries e \
                        WHERE e.guild_id = h.guild_id AND e.seq > h.seq) AS entry_seq, \
                      (SELECT max(s.version) FROM guild_snapshots s \
                        WHERE s.guild_id = h.guild_id AND s.version > h.version) AS snapshot_version \
               FROM guild_heads h WHERE h.guild_id BETWEEN $1 AND $2 \
               UNION ALL \
               SELECT s.guild_id, NULL::bigint, max(s.version) FROM guild_snapshots s \
               WHERE s.guild_id BETWEEN $1 AND $2 \
                 AND NOT EXISTS (SELECT 1 FROM guild_heads h WHERE h.guild_id = s.guild_id) \
               GROUP BY s.guild_id \
             ) g WHERE g.entry_seq IS NOT NULL OR g.snapshot_version IS NOT NULL \
             ORDER BY g.guild_id",
        )
        .bind(from.as_i64())
        .bind(through.as_i64())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|row| {
                let optional = |column: &str, what: &str| -> StoreResult<Option<u64>> {
                    get::<Option<i64>>(row, column)?
                        .map(|v| guildconf_ports::codec::stored_u64(v, what))
                        .transpose()
                };
                Ok(PastHead {
                    guild_id: get_guild(row)?,
                    entry_seq: optional("entry_seq", "audit_entries.seq")?,
                    snapshot_version: optional("snapshot_version", "guild_snapshots.version")?,
                })
            })
            .collect()
    }

    async fn watch(&self) -> StoreResult<Box<dyn ChangeWatcher>> {
        let watcher =
            crate::watch::PgWatcher::new(self.connect_options.clone(), self.watch_interval);
        Ok(Box::new(watcher))
    }

    async fn purge_candidate(
        &self,
        guild: GuildId,
        before: Timestamp,
    ) -> StoreResult<Option<PurgeCandidate>> {
        let Some(head) = self.head(guild).await? else {
            return Ok(None);
        };
        // The `PurgeFacts` in one statement: each CTE and column is the field
        // of that name.
        let row = sqlx::query(
            "WITH cap AS ( \
                 SELECT seq FROM audit_entries WHERE guild_id = $1 AND seq <= $4 \
                 AND operation IN ('create', 'update', 'revert') ORDER BY seq DESC LIMIT 1), \
             through AS ( \
                 SELECT seq, entry_hash FROM audit_entries \
                 WHERE guild_id = $1 AND occurred_at < $2 AND seq < (SELECT seq FROM cap) \
                 ORDER BY occurred_at DESC LIMIT 1), \
             next AS ( \
                 SELECT config_version FROM audit_entries \
                 WHERE guild_id = $1 AND seq > (SELECT seq FROM through) \
                 AND operation NOT IN ('delete', 'purge') ORDER BY seq LIMIT 1) \
             SELECT (SELECT seq FROM cap) AS cap_seq, \
                    (SELECT seq FROM through) AS through_seq, \
                    (SELECT entry_hash FROM through) AS through_hash, \
                    (SELECT COUNT(*) FROM audit_entries \
                     WHERE guild_id = $1 AND seq <= (SELECT seq FROM through)) AS entries, \
                    (SELECT config_version FROM next) AS next_version, \
                    (SELECT COUNT(*) FROM guild_snapshots WHERE guild_id = $1 \
                     AND version < (SELECT config_version FROM next) AND version <> $3) \
                     AS snapshots_below_next, \
                    (SELECT COUNT(*) FROM guild_snapshots WHERE guild_id = $1 \
                     AND version < $3 AND EXISTS (SELECT 1 FROM through)) \
                     AS snapshots_below_head",
        )
        .bind(guild.as_i64())
        .bind(before.to_string())
        .bind(to_i64(head.version, "version")?)
        .bind(to_i64(head.seq, "seq")?)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let through_seq: Option<i64> = get(&row, "through_seq")?;
        let through_hash: Option<String> = get(&row, "through_hash")?;
        let facts = PurgeFacts {
            cap_seq: get(&row, "cap_seq")?,
            through: through_seq.zip(through_hash),
            entries: get(&row, "entries")?,
            next_version: get(&row, "next_version")?,
            snapshots_below_next: get(&row, "snapshots_below_next")?,
            snapshots_below_head: get(&row, "snapshots_below_head")?,
        };
        PurgeCandidate::from_facts(head, facts)
    }

    async fn purge(&self, purge: PurgeSet) -> StoreResult<PurgeOutcome> {
        purge.check()?;
        let guild = purge.guild_id.as_i64();
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        match self.purge_in(&mut tx, &purge, guild).await {
            Ok(outcome) => {
                tx.commit().await.map_err(|e| self.err(e))?;
                Ok(outcome)
            }
            Err(e) => {
                if tx.rollback().await.is_err() {
                    tracing::warn!("rollback after a failed purge did not complete");
                }
                Err(e)
            }
        }
    }

    async fn commit_token(&self, write: TokenWrite) -> StoreResult<()> {
        write.check()?;
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        match self.token_write_in(&mut tx, &write).await {
            Ok(()) => tx.commit().await.map_err(|e| self.err(e)),
            Err(e) => {
                if tx.rollback().await.is_err() {
                    tracing::warn!("rollback after a failed token write did not complete");
                }
                Err(e)
            }
        }
    }

    async fn token_by_hash(&self, secret_sha256: &str) -> StoreResult<Option<TokenInfo>> {
        Ok(self
            .select_tokens("WHERE secret_sha256 = $1", Some(secret_sha256))
            .await?
            .into_iter()
            .next())
    }

    async fn token(&self, id: &str) -> StoreResult<Option<TokenInfo>> {
        Ok(self
            .select_tokens("WHERE id = $1", Some(id))
            .await?
            .into_iter()
            .next())
    }

    async fn tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        self.select_tokens("ORDER BY created_at, id", None).await
    }
}
