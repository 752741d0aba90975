//! TEMPORARY stand-in for the token store of branch `tokens`, with the API
//! the shared plan fixes, kept in memory so the pages and their tests run
//! before that branch is merged. Deleted by the merge of `tokens`.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use guildconf_domain::{GuildId, TokenInfo, TokenRole};
use rand_core::{OsRng, RngCore};

use crate::error::{Error, Result};
use crate::service::{ConfigService, WriteMeta};

/// A token to create.
#[derive(Clone, Debug)]
pub struct NewToken {
    /// Its role.
    pub role: TokenRole,
    /// Its guilds (none: every guild).
    pub guilds: Vec<GuildId>,
    /// Its label.
    pub label: String,
    /// A bound human.
    pub human_id: Option<String>,
}

/// A created token and its secret.
#[derive(Clone)]
pub struct IssuedToken {
    /// The secret, shown once.
    pub secret: String,
    /// The token.
    pub info: TokenInfo,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

static TOKENS: Mutex<Option<HashMap<String, TokenInfo>>> = Mutex::new(None);

impl ConfigService {
    /// Creates a token (stand-in).
    ///
    /// # Errors
    /// Invalid label.
    pub async fn create_token(&self, new: NewToken, _meta: &WriteMeta) -> Result<IssuedToken> {
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let secret = format!("gct_{}", URL_SAFE_NO_PAD.encode(raw));
        let mut id = [0u8; 8];
        OsRng.fill_bytes(&mut id);
        let info = TokenInfo {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            role: new.role,
            guilds: new.guilds,
            label: new.label,
            human_id: new.human_id,
            created_at: guildconf_domain::Timestamp::from_datetime(self.clock.now()),
            revoked_at: None,
        }
        .check()?;
        let mut map = TOKENS
            .lock()
            .map_err(|_| Error::Storage("poisoned".into()))?;
        map.get_or_insert_with(HashMap::new)
            .insert(secret.clone(), info.clone());
        Ok(IssuedToken { secret, info })
    }

    /// Authenticates (stand-in).
    ///
    /// # Errors
    /// Never.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>> {
        let map = TOKENS
            .lock()
            .map_err(|_| Error::Storage("poisoned".into()))?;
        Ok(map
            .as_ref()
            .and_then(|m| m.get(secret))
            .filter(|t| t.revoked_at.is_none())
            .cloned())
    }
}
