//! History queries with filters and opaque keyset cursors.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use guildconf_domain::json::{canonical_sha256, parse_pointer};
use guildconf_domain::{Entry, EventOutcome, FieldPath, GuildId, Operation, Timestamp};
use guildconf_ports::{EntryFilter, HistoryPosition, HistoryQuery, StatsQuery, StatsRow};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::service::ConfigService;

/// Entries per page unless the caller says otherwise.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most entries one page may hold.
pub const MAX_LIMIT: u32 = 1000;
/// How many rows are read per round trip while filtering by path.
const SCAN_BATCH: u32 = 200;

/// A history request, newest first. Filters combine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryRequest {
    /// Only this guild. Without one, `actor` is required.
    pub guild_id: Option<GuildId>,
    /// Only this actor.
    pub actor_id: Option<String>,
    /// Only this operation.
    pub operation: Option<Operation>,
    /// Only entries of this family, outcome and target (each combinable
    /// with the other filters).
    pub filter: EntryFilter,
    /// Only entries that changed this path, something below it, or an
    /// ancestor of it (segments, unescaped).
    pub path: Option<FieldPath>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
    /// Entries before this time.
    pub until: Option<Timestamp>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<u32>,
    /// The cursor of the previous page.
    pub cursor: Option<String>,
}

/// One page of history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryPage {
    /// The entries, newest first.
    pub entries: Vec<Entry>,
    /// The cursor of the next page, `None` on the last page.
    pub next_cursor: Option<String>,
}

impl HistoryRequest {
    /// Identifies the query a cursor belongs to (everything but limit and
    /// cursor), so a cursor is only valid for the same query.
    fn query_key(&self) -> Result<String> {
        let key = json!({
            "g": self.guild_id,
            "a": self.actor_id,
            "o": self.operation,
            "p": self.path.as_ref().map(ToString::to_string),
            "f": [
                self.filter.family,
                self.filter.outcome.map(EventOutcome::as_str),
                self.filter.target_type,
                self.filter.target_id,
            ],
            "s": self.since,
            "u": self.until,
        });
        let sha = canonical_sha256(&key).map_err(|e| Error::invalid("/cursor", e))?;
        Ok(sha[..16].to_owned())
    }
}

fn encode_cursor(query_key: &str, position: &HistoryPosition) -> String {
    let raw = json!({
        "q": query_key,
        "t": position.occurred_at,
        "g": position.guild_id,
        "s": position.seq,
    });
    URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn decode_cursor(cursor: &str, query_key: &str) -> Result<HistoryPosition> {
    let bad = || Error::invalid("/cursor", "is not a cursor returned by this history query");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if value.get("q").and_then(Value::as_str) != Some(query_key) {
        return Err(bad());
    }
    let occurred_at = value
        .get("t")
        .and_then(Value::as_str)
        .and_then(|t| Timestamp::parse_stored(t).ok())
        .ok_or_else(bad)?;
    let guild_id = value
        .get("g")
        .and_then(Value::as_str)
        .and_then(|g| GuildId::parse(g).ok())
        .ok_or_else(bad)?;
    let seq = value
        .get("s")
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
        .ok_or_else(bad)?;
    Ok(HistoryPosition {
        occurred_at,
        guild_id,
        seq,
    })
}

/// Whether an entry changed `path`, something below it, or an ancestor of
/// it (so a create, which adds whole sections, matches).
pub(crate) fn touches(entry: &Entry, path: &[String]) -> bool {
    entry.body.changes.iter().any(|change| {
        let Ok(changed) = parse_pointer(change.path()) else {
            return false;
        };
        let n = changed.len().min(path.len());
        changed[..n] == path[..n]
    })
}

fn position_of(entry: &Entry) -> HistoryPosition {
    HistoryPosition {
        occurred_at: entry.body.occurred_at,
        guild_id: entry.body.guild_id,
        seq: entry.body.seq,
    }
}

impl ConfigService {
    /// One page of history, newest first, keyset-paginated: pages never skip
    /// or repeat entries while writes go on.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a limit outside 1..=1000, a cursor from another
    /// query, or neither guild nor actor; [`Error::Storage`] when the
    /// database fails.
    pub async fn history(&self, request: &HistoryRequest) -> Result<HistoryPage> {
        if request.guild_id.is_none() && request.actor_id.is_none() {
            return Err(Error::invalid(
                "/guild_id",
                "history needs a guild, or an actor to search across guilds",
            ));
        }
        let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid(
                "/limit",
                format!("must be from 1 to {MAX_LIMIT}"),
            ));
        }
        if let (Some(since), Some(until)) = (request.since, request.until) {
            if since >= until {
                return Err(Error::invalid("/until", "must be after --since"));
            }
        }
        let query_key = request.query_key()?;
        let after = request
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, &query_key))
            .transpose()?;
        let mut query = HistoryQuery {
            guild_id: request.guild_id,
            actor_id: request.actor_id.clone(),
            operation: request.operation,
            since: request.since,
            until: request.until,
            after,
            limit: limit + 1,
            filter: request.filter.clone(),
        };
        let mut entries = Vec::new();
        let mut more = false;
        match &request.path {
            None => {
                entries = self.store.history(&query).await?;
                if entries.len() > limit as usize {
                    entries.truncate(limit as usize);
                    more = true;
                }
            }
            Some(path) => {
                query.limit = SCAN_BATCH;
                'scan: loop {
                    let batch = self.store.history(&query).await?;
                    let Some(last) = batch.last() else { break };
                    query.after = Some(position_of(last));
                    let exhausted = batch.len() < SCAN_BATCH as usize;
                    for entry in batch {
                        if touches(&entry, path.segments()) {
                            if entries.len() == limit as usize {
                                more = true;
                                break 'scan;
                            }
                            entries.push(entry);
                        }
                    }
                    if exhausted {
                        break;
                    }
                }
            }
        }
        let next_cursor = match entries.last() {
            Some(last) if more => Some(encode_cursor(&query_key, &position_of(last))),
            _ => None,
        };
        Ok(HistoryPage {
            entries,
            next_cursor,
        })
    }
}

impl ConfigService {
    /// Counts entries by operation, family, actor, outcome or UTC day
    /// (`YYYY-MM-DD`), in ascending key order; the database computes the
    /// counts. Config entries count as family `config` and outcome
    /// `success`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `until` is not after `since`;
    /// [`Error::Storage`] when the database fails.
    pub async fn stats(&self, query: &StatsQuery) -> Result<Vec<StatsRow>> {
        if let (Some(since), Some(until)) = (query.since, query.until) {
            if since >= until {
                return Err(Error::invalid("/until", "must be after --since"));
            }
        }
        Ok(self.store.stats(query).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_query() {
        let pos = HistoryPosition {
            occurred_at: Timestamp::parse_stored("2026-11-22T04:45:44.123000Z").expect("valid"),
            guild_id: GuildId::parse("42").expect("valid"),
            seq: 7,
        };
        let a = HistoryRequest {
            guild_id: Some(pos.guild_id),
            ..Default::default()
        };
        let b = HistoryRequest {
            guild_id: Some(pos.guild_id),
            actor_id: Some("1".into()),
            ..Default::default()
        };
        let ka = a.query_key().expect("key");
        let cursor = encode_cursor(&ka, &pos);
        assert_eq!(decode_cursor(&cursor, &ka).expect("decodes"), pos);
        assert!(decode_cursor(&cursor, &b.query_key().expect("key")).is_err());
        assert!(decode_cursor("not a cursor!", &ka).is_err());
    }
}
