//! What a stored row holds, as the port's types, and the two conversions the
//! other way: the one set of decoders both storage adapters use, so a
//! corrupt row reads as the same [`StoreError`] on every backend.
//!
//! Each adapter reads its columns with its own driver (by index or by name)
//! and hands the raw values here. `what` names the column as
//! `table.column` (`guild_heads.seq`); messages never carry the stored
//! value, which may be a secret.

use guildconf_domain::json::canonical_json;
use guildconf_domain::{
    Actor, ActorKind, EntryBody, EntrySignature, GuildId, Operation, Timestamp, TokenInfo,
    TokenRole,
};
use serde_json::Value;

use crate::{StoreError, StoreResult};

/// A stored integer as `u64`; a negative one is corrupt data.
///
/// # Errors
/// [`StoreError::Corrupt`]: "stored {what} is negative".
pub fn stored_u64(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("stored {what} is negative")))
}

/// A stored `guild_id` as a [`GuildId`].
///
/// # Errors
/// [`StoreError::Corrupt`] when it is not a snowflake.
pub fn stored_guild(value: i64) -> StoreResult<GuildId> {
    GuildId::from_i64(value)
        .map_err(|_| StoreError::Corrupt("stored guild_id is not a snowflake".into()))
}

/// A stored timestamp text (as `Timestamp`'s `Display` writes it).
///
/// # Errors
/// [`StoreError::Corrupt`] when it is not a guildconf timestamp.
pub fn stored_timestamp(text: &str, what: &str) -> StoreResult<Timestamp> {
    Timestamp::parse_stored(text)
        .map_err(|_| StoreError::Corrupt(format!("stored {what} is not a guildconf timestamp")))
}

/// A stored `audit_entries.operation`.
///
/// # Errors
/// [`StoreError::Corrupt`] when it names no operation.
pub fn stored_operation(text: &str) -> StoreResult<Operation> {
    Operation::parse(text)
        .map_err(|_| StoreError::Corrupt("stored audit_entries.operation is unknown".into()))
}

/// The signature stored beside an entry, from its `sig_alg`, `sig_key` and
/// `sig_value` columns: `None` when all three are empty. Columns that are
/// only partly empty (which the schema's check refuses) come back with the
/// empty ones as empty text, so verify names the signature as malformed
/// instead of the read failing.
pub fn stored_signature(
    alg: Option<String>,
    key: Option<String>,
    value: Option<String>,
) -> Option<EntrySignature> {
    if alg.is_none() && key.is_none() && value.is_none() {
        return None;
    }
    Some(EntrySignature {
        alg: alg.unwrap_or_default(),
        key: key.unwrap_or_default(),
        value: value.unwrap_or_default(),
    })
}

/// The actor of a row of `table`, from its `actor_id`, `actor_kind` and
/// `actor_label` columns.
///
/// # Errors
/// [`StoreError::Corrupt`] when the kind is unknown.
pub fn stored_actor(id: String, kind: &str, label: String, table: &str) -> StoreResult<Actor> {
    let kind = ActorKind::parse(kind)
        .map_err(|_| StoreError::Corrupt(format!("stored {table}.actor_kind is unknown")))?;
    Ok(Actor { id, kind, label })
}

/// A stored JSON text (as bytes, so a driver's buffer parses without a copy).
///
/// # Errors
/// [`StoreError::Corrupt`] when it is not JSON.
pub fn stored_json(text: &[u8], what: &str) -> StoreResult<Value> {
    serde_json::from_slice(text)
        .map_err(|_| StoreError::Corrupt(format!("stored {what} is not valid JSON")))
}

/// A stored `audit_entries.body` as an [`EntryBody`].
///
/// # Errors
/// [`StoreError::Corrupt`] when it is not a valid entry body.
pub fn stored_entry_body(text: &str) -> StoreResult<EntryBody> {
    serde_json::from_str(text).map_err(|_| {
        StoreError::Corrupt("a stored audit_entries.body is not a valid entry body".into())
    })
}

/// A `u64` from the caller as the databases' signed 64-bit integer.
///
/// # Errors
/// [`StoreError::Storage`] when it is beyond `i64::MAX`: it cannot be stored.
pub fn to_stored_i64(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::Storage(format!("{what} does not fit in a signed 64-bit integer")))
}

/// The canonical JSON text a request record's result is stored as.
///
/// # Errors
/// [`StoreError::Storage`] when it cannot be canonicalised (the value is not
/// quoted in the message).
pub fn request_result_text(result: &Value) -> StoreResult<String> {
    canonical_json(result)
        .map_err(|_| StoreError::Storage("cannot canonicalise the request result".into()))
}

/// The statement both adapters run for
/// [`ConfigStore::stored_requests`](crate::ConfigStore::stored_requests):
/// `$1`/`?1` and `$2`/`?2` are the first and last guild. Each request
/// record with the entry whose `request_id` column names it (a unique index
/// per guild makes this a lookup). Columns: guild_id, request_id, result,
/// seq, entry_hash, config_version, operation.
pub fn stored_requests_sql(placeholders: [&str; 2]) -> String {
    format!(
        "SELECT r.guild_id, r.request_id, r.result, e.seq, e.entry_hash, e.config_version, \
         e.operation FROM audit_requests r LEFT JOIN audit_entries e \
         ON e.guild_id = r.guild_id AND e.request_id = r.request_id \
         WHERE r.guild_id BETWEEN {} AND {} ORDER BY r.guild_id, r.request_id",
        placeholders[0], placeholders[1]
    )
}

/// The columns of `api_tokens` both adapters select, in the order
/// [`StoredToken`] names them. The secret's hash is not among them: it is
/// only ever a lookup key.
pub const TOKEN_COLUMNS: &str = "id, role, guilds, label, human_id, created_at, revoked_at";

/// A token's guilds as the `api_tokens.guilds` column stores them: a JSON
/// array of decimal strings, in the order given (ascending, as
/// [`TokenInfo::check`] leaves them).
///
/// # Errors
/// [`StoreError::Storage`] when the list cannot be written as JSON (a list
/// of guild ids always can).
pub fn token_guilds_text(guilds: &[GuildId]) -> StoreResult<String> {
    serde_json::to_string(guilds)
        .map_err(|_| StoreError::Storage("cannot write a token's guilds as JSON".into()))
}

/// One `api_tokens` row as read, in [`TOKEN_COLUMNS`] order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    /// `id`.
    pub id: String,
    /// `role`.
    pub role: String,
    /// `guilds`, JSON text.
    pub guilds: String,
    /// `label`.
    pub label: String,
    /// `human_id`.
    pub human_id: Option<String>,
    /// `created_at`.
    pub created_at: String,
    /// `revoked_at`.
    pub revoked_at: Option<String>,
}

/// A stored token row as a [`TokenInfo`].
///
/// # Errors
/// [`StoreError::Corrupt`] naming the column that does not hold what
/// guildconf writes.
pub fn stored_token(row: StoredToken) -> StoreResult<TokenInfo> {
    let role = TokenRole::parse(&row.role)
        .map_err(|_| StoreError::Corrupt("stored api_tokens.role is unknown".into()))?;
    let guilds: Vec<GuildId> = serde_json::from_str(&row.guilds).map_err(|_| {
        StoreError::Corrupt("stored api_tokens.guilds is not a list of guild ids".into())
    })?;
    Ok(TokenInfo {
        id: row.id,
        role,
        guilds,
        label: row.label,
        human_id: row.human_id,
        created_at: stored_timestamp(&row.created_at, "api_tokens.created_at")?,
        revoked_at: row
            .revoked_at
            .map(|t| stored_timestamp(&t, "api_tokens.revoked_at"))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corrupt(message: &str) -> StoreError {
        StoreError::Corrupt(message.into())
    }

    #[test]
    fn each_decoder_names_the_column_and_never_the_value() {
        assert_eq!(
            stored_u64(-1, "guild_heads.seq"),
            Err(corrupt("stored guild_heads.seq is negative"))
        );
        assert_eq!(stored_u64(7, "guild_heads.seq"), Ok(7));
        assert_eq!(
            stored_guild(-5),
            Err(corrupt("stored guild_id is not a snowflake"))
        );
        assert_eq!(
            stored_timestamp("yesterday", "guild_heads.updated_at"),
            Err(corrupt(
                "stored guild_heads.updated_at is not a guildconf timestamp"
            ))
        );
        assert_eq!(
            stored_operation("drop"),
            Err(corrupt("stored audit_entries.operation is unknown"))
        );
        assert_eq!(
            stored_actor("1".into(), "robot", "x".into(), "guild_heads"),
            Err(corrupt("stored guild_heads.actor_kind is unknown"))
        );
        assert_eq!(
            stored_json(b"{\"secret\":", "audit_requests.result"),
            Err(corrupt("stored audit_requests.result is not valid JSON"))
        );
        let err = stored_entry_body("{\"secret\":\"hunter2\"}").expect_err("not an entry body");
        assert_eq!(
            err,
            corrupt("a stored audit_entries.body is not a valid entry body")
        );
        assert!(matches!(
            to_stored_i64(u64::MAX, "entry seq"),
            Err(StoreError::Storage(_))
        ));
        let token = |role: &str, guilds: &str| StoredToken {
            id: "00112233aabbccdd".into(),
            role: role.into(),
            guilds: guilds.into(),
            label: "hunter2".into(),
            human_id: None,
            created_at: "2026-06-01T00:00:09.000000Z".into(),
            revoked_at: None,
        };
        assert_eq!(
            stored_token(token("root", "[]")),
            Err(corrupt("stored api_tokens.role is unknown"))
        );
        assert_eq!(
            stored_token(token("viewer", "[\"hunter2\"]")),
            Err(corrupt(
                "stored api_tokens.guilds is not a list of guild ids"
            ))
        );
    }

    #[test]
    fn a_token_row_reads_back_as_written() {
        let guilds = vec![
            GuildId::parse("123456789012345678").expect("valid"),
            GuildId::parse("223456789012345678").expect("valid"),
        ];
        let text = token_guilds_text(&guilds).expect("writable");
        assert_eq!(text, r#"["123456789012345678","223456789012345678"]"#);
        let info = stored_token(StoredToken {
            id: "00112233aabbccdd".into(),
            role: "auditor".into(),
            guilds: text,
            label: "dashboard".into(),
            human_id: Some("80351110224678912".into()),
            created_at: "2026-06-01T00:00:09.000000Z".into(),
            revoked_at: Some("2026-06-02T00:00:00.000000Z".into()),
        })
        .expect("valid");
        assert_eq!((info.role, info.guilds), (TokenRole::Auditor, guilds));
        assert!(info.revoked_at.is_some());
    }
}
