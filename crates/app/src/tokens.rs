//! API tokens: issuing, authenticating, listing and revoking the bearer
//! secrets the HTTP API takes.
//!
//! A secret is `gct_` followed by 43 base64url characters (32 bytes from the
//! operating system's CSPRNG). It is shown once, when issued; the store keeps
//! only its SHA-256, and a presented secret is authenticated by hashing it
//! and looking the hash up, so no secret is ever compared as text.
//!
//! Creating and revoking a token append a `token.created` / `token.revoked`
//! event to the chain of every guild the token names, in the same
//! transaction as the token row ([`guildconf_ports::TokenWrite`]).
//!
//! [`ConfigService::authenticate`] runs on every HTTP request, so it answers
//! from a small in-process cache of tokens it has seen. This process's own
//! revocations take effect at once; another process's within
//! [`TOKEN_RECHECK_AFTER`], after which a cached token is read again.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use guildconf_domain::{
    ActionRegistry, Event, EventOutcome, GuildId, Permission, Step, Target, Timestamp, TokenInfo,
    TokenRole, TOKEN_CREATED, TOKEN_REVOKED,
};
use guildconf_ports::{is_token_id, ChangeSet, StoreError, TokenChange, TokenWrite};
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::service::{backoff, check_meta, ConfigService, WriteMeta};

/// What every secret starts with, so a leaked one is recognisable (secret
/// scanners match prefixes) and a malformed one is refused without a lookup.
pub const TOKEN_PREFIX: &str = "gct_";

/// How long a token this process has authenticated is trusted from memory
/// before it is read from the database again: the longest a revocation made
/// by *another* process (another shard, the command line) takes to reach
/// this one. A revocation made through this process's own service takes
/// effect at once.
pub const TOKEN_RECHECK_AFTER: Duration = Duration::from_secs(5);

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Length of a secret's random part: 32 bytes in unpadded base64url.
const SECRET_CHARS: usize = 43;
/// Random bytes in a public token id (16 hex digits).
const ID_BYTES: usize = 8;
/// Most tokens the authentication cache holds; past it, it starts afresh.
const CACHED_TOKENS: usize = 10_000;

/// Where the random bytes of token secrets and ids come from. Production
/// uses [`OsEntropy`], the operating system's CSPRNG; tests inject a fixed
/// source ([`ConfigService::with_entropy`]) so that the same operations
/// give the same token ids, hence the same entries, on every backend, as
/// they inject a fixed clock. A predictable source makes predictable
/// secrets: never give one to a service that issues real tokens.
pub trait Entropy: Send + Sync + fmt::Debug {
    /// Fills `bytes` with random bytes.
    ///
    /// # Errors
    /// A sentence when no randomness can be had.
    fn fill(&self, bytes: &mut [u8]) -> std::result::Result<(), String>;
}

/// The operating system's CSPRNG (`getrandom`): the default [`Entropy`].
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, bytes: &mut [u8]) -> std::result::Result<(), String> {
        OsRng.try_fill_bytes(bytes).map_err(|e| e.to_string())
    }
}

/// The registry token events are checked against: the shipped one, whatever
/// registry a bot gave its service, since these keys are guildconf's own.
static TOKEN_EVENTS: LazyLock<ActionRegistry> = LazyLock::new(ActionRegistry::shipped);

/// A token to issue: who holds it and what it may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// What the holder may do.
    pub role: TokenRole,
    /// The guilds it may touch; empty for every guild (only such a token
    /// may do cross-guild things, such as an export of everything).
    pub guilds: Vec<GuildId>,
    /// Who or what holds it (1 to 128 characters, no control characters);
    /// its writes are attributed to this label, as an integration, unless
    /// `human_id` is given.
    pub label: String,
    /// A person's user id (a snowflake) its writes are attributed to.
    pub human_id: Option<String>,
}

/// A token just issued: its secret, shown this once, and what is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The bearer secret (`gct_…`). guildconf keeps only its SHA-256, so it
    /// cannot be shown again.
    pub secret: String,
    /// The token as stored and listed.
    pub info: TokenInfo,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret: a logged `{:?}` must not hand out access.
        f.debug_struct("IssuedToken")
            .field("secret", &"[redacted]")
            .field("info", &self.info)
            .finish()
    }
}

/// The authentication cache: SHA-256 of a secret to the unrevoked token it
/// belongs to and when that was read from the database. Shared by every
/// clone of a service.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: RwLock<HashMap<[u8; 32], (TokenInfo, Instant)>>,
    /// Bumped by every revocation in this process. A lookup that read the
    /// store before a revocation and finishes after it must not put the
    /// token it read (unrevoked then) back into the cache.
    revocations: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    fn fresh(&self, hash: &[u8; 32]) -> Option<TokenInfo> {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        tokens
            .get(hash)
            .filter(|(_, read)| read.elapsed() < TOKEN_RECHECK_AFTER)
            .map(|(info, _)| info.clone())
    }

    /// The revocation count, read before a lookup goes to the store.
    fn generation(&self) -> u64 {
        self.revocations.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Caches `info`, unless a revocation happened in this process since
    /// `generation` was read (the row may be stale by then).
    fn put(&self, hash: [u8; 32], info: TokenInfo, generation: u64) {
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation() != generation {
            return;
        }
        if tokens.len() >= CACHED_TOKENS && !tokens.contains_key(&hash) {
            tokens.clear();
        }
        tokens.insert(hash, (info, Instant::now()));
    }

    fn forget(&self, hash: &[u8; 32]) {
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(hash);
    }

    fn forget_id(&self, id: &str) {
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        // Under the write lock, so a `put` either sees the new count or
        // inserted before this removal.
        self.revocations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokens.retain(|_, (info, _)| info.id != id);
    }
}

/// The SHA-256 of a secret's bytes.
fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Lowercase hex, as the store keeps hashes and ids.
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Whether `secret` has the shape of a secret guildconf issues.
fn well_formed(secret: &str) -> bool {
    secret.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == SECRET_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A new secret and a new public id, drawn from `entropy`.
fn generate(entropy: &dyn Entropy) -> Result<(String, String)> {
    let mut secret = [0u8; SECRET_BYTES];
    let mut id = [0u8; ID_BYTES];
    entropy
        .fill(&mut secret)
        .and_then(|()| entropy.fill(&mut id))
        .map_err(|e| Error::Storage(format!("no randomness for a token: {e}")))?;
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    Ok((secret, lower_hex(&id)))
}

/// Refuses what a token write cannot honour: a request id (a replay could
/// not show the secret again, which is not stored), an expected version (a
/// token names no one guild) and a dry run.
fn check_token_meta(meta: &WriteMeta) -> Result<()> {
    check_meta(meta)?;
    let problem = if meta.request_id.is_some() {
        Some((
            "/request_id",
            "a token write cannot be replayed by request id",
        ))
    } else if meta.expect_version.is_some() {
        Some((
            "/expect_version",
            "a token write names no one guild's version",
        ))
    } else if meta.dry_run {
        Some(("/dry_run", "a token write has no dry run"))
    } else {
        None
    };
    match problem {
        Some((path, message)) => Err(Error::invalid(path, message)),
        None => Ok(()),
    }
}

impl ConfigService {
    /// Records that `token` was refused `permission` on `guild`: a
    /// `permission.denied` event, outcome `blocked`, target the token, data
    /// `{"permission": …}`, in that guild's chain, written by `meta`'s actor
    /// (normally [`TokenInfo::actor`]). The HTTP API and the audit pages
    /// call it before answering 403, so every refusal is in the chain.
    ///
    /// # Errors
    /// As [`ConfigService::record`].
    pub async fn record_denial(
        &self,
        guild: GuildId,
        token: &TokenInfo,
        permission: Permission,
        meta: &WriteMeta,
    ) -> Result<crate::WriteResult> {
        let event = Event::new(
            "permission.denied",
            EventOutcome::Blocked,
            Target::new("token", token.id.clone()),
        )
        .with("permission", permission.as_str());
        // Checked against the shipped registry, as token events are: a bot
        // that registers its own keys (or none) still gets every refusal
        // recorded in the fixed shape.
        let checked = ActionRegistry::shipped().check(&event)?;
        self.write(guild, crate::Edit::Event(checked), meta).await
    }

    /// Replaces where token secrets and ids are drawn from (by default
    /// [`OsEntropy`]). For tests only, as [`ConfigService::with_clock`] is:
    /// see [`Entropy`].
    #[must_use]
    pub fn with_entropy(mut self, entropy: Arc<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// Issues a token: checks it, draws its secret and id, and stores it
    /// with a `token.created` event in the chain of every guild it names,
    /// in one transaction. The secret is in the result and nowhere else.
    /// Retries when a named guild's head moves meanwhile, as any write does.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad label, human id or guild list, or when
    /// `meta` asks for a request id, an expected version or a dry run
    /// (nothing stored); [`Error::Conflict`] when the guilds kept changing;
    /// [`Error::Storage`] when the write fails (nothing stored).
    pub async fn create_token(&self, new: NewToken, meta: &WriteMeta) -> Result<IssuedToken> {
        check_token_meta(meta)?;
        let (secret, id) = generate(self.entropy.as_ref())?;
        let secret_sha256 = lower_hex(&digest(&secret));
        let mut attempt = 0;
        loop {
            let now = self.clock.now();
            let info = TokenInfo {
                id: id.clone(),
                role: new.role,
                guilds: new.guilds.clone(),
                label: new.label.clone(),
                human_id: new.human_id.clone(),
                created_at: Timestamp::from_datetime(now),
                revoked_at: None,
            }
            .check()?;
            let changes = self.token_events(&info, TOKEN_CREATED, meta).await?;
            let write = TokenWrite {
                token: TokenChange::Insert {
                    info: info.clone(),
                    secret_sha256: secret_sha256.clone(),
                },
                changes,
            };
            if self.commit_token_write(write, &mut attempt).await? {
                tracing::info!(token = %info.id, role = %info.role, "API token created");
                return Ok(IssuedToken { secret, info });
            }
        }
    }

    /// The token a bearer secret stands for, `None` when the secret is
    /// malformed, unknown or revoked. The secret is hashed and the hash
    /// looked up (in memory, else in the store), so it is never compared as
    /// text. A token is read from the store again after
    /// [`TOKEN_RECHECK_AFTER`], so another process's revocation is seen
    /// within that time; this process's own, at once.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`] when the store must be read
    /// and cannot be.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>> {
        if !well_formed(secret) {
            return Ok(None);
        }
        let hash = digest(secret);
        if let Some(info) = self.token_cache.fresh(&hash) {
            return Ok(Some(info));
        }
        let generation = self.token_cache.generation();
        match self.store.token_by_hash(&lower_hex(&hash)).await? {
            Some(info) if info.revoked_at.is_none() => {
                self.token_cache.put(hash, info.clone(), generation);
                Ok(Some(info))
            }
            _ => {
                self.token_cache.forget(&hash);
                Ok(None)
            }
        }
    }

    /// Every token, revoked ones too, oldest first. Never a secret: the
    /// store holds none.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`] when the store cannot be
    /// read.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        Ok(self.store.tokens().await?)
    }

    /// Revokes a token, for good: it authenticates nothing from then on
    /// (in this process at once, elsewhere within [`TOKEN_RECHECK_AFTER`]),
    /// and a `token.revoked` event goes into the chain of every guild it
    /// names, in the same transaction. Returns the token as revoked.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `id` is not a token id (16 lowercase hex
    /// digits) or `meta` asks for a request id, an expected version or a dry
    /// run; [`Error::NotFound`] when no token has this id;
    /// [`Error::Conflict`] when it is already revoked; [`Error::Storage`]
    /// when the write fails (nothing stored).
    pub async fn revoke_token(&self, id: &str, meta: &WriteMeta) -> Result<TokenInfo> {
        check_token_meta(meta)?;
        if !is_token_id(id) {
            return Err(Error::invalid(
                "/id",
                "must be a token id: 16 lowercase hex digits, as `token list` shows",
            ));
        }
        let mut attempt = 0;
        loop {
            let Some(mut info) = self.store.token(id).await? else {
                return Err(Error::NotFound(format!("no token has the id {id}")));
            };
            if info.revoked_at.is_some() {
                return Err(Error::Conflict(format!("token {id} is already revoked")));
            }
            let revoked_at = Timestamp::from_datetime(self.clock.now());
            info.revoked_at = Some(revoked_at);
            let changes = self.token_events(&info, TOKEN_REVOKED, meta).await?;
            let write = TokenWrite {
                token: TokenChange::Revoke {
                    id: id.to_owned(),
                    revoked_at,
                },
                changes,
            };
            if self.commit_token_write(write, &mut attempt).await? {
                self.token_cache.forget_id(id);
                tracing::info!(token = %id, "API token revoked");
                return Ok(info);
            }
        }
    }

    /// The `action` event of `info`, as a change set on the current head of
    /// each guild it names, in ascending guild order.
    async fn token_events(
        &self,
        info: &TokenInfo,
        action: &str,
        meta: &WriteMeta,
    ) -> Result<Vec<ChangeSet>> {
        let event = Event::new(
            action,
            EventOutcome::Success,
            Target::new("token", &info.id).with_label(&info.label),
        )
        .with("role", info.role.as_str())
        .with(
            "guilds",
            info.guilds
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        );
        let checked = TOKEN_EVENTS.check(&event)?;
        let mut changes = Vec::with_capacity(info.guilds.len());
        for &guild in &info.guilds {
            let head = self.store.head(guild).await?;
            let step = Step::Event(checked.clone());
            let (change, _) = self.change_set(guild, head.as_ref(), step, meta, None)?;
            changes.push(change);
        }
        Ok(changes)
    }

    /// Commits a token write. `true` when it committed; `false` when a
    /// guild's head moved and the write should be recomputed (after a
    /// backoff, counted in `attempt`).
    ///
    /// # Errors
    /// [`Error::Conflict`] once the retries are spent (or for a conflict
    /// that is not a moved head, such as a revoke that lost to another);
    /// any other store error as it is.
    async fn commit_token_write(&self, write: TokenWrite, attempt: &mut u32) -> Result<bool> {
        let guilds: Vec<GuildId> = write.changes.iter().map(|c| c.guild_id).collect();
        let result = self.store.commit_token(write).await;
        // Each named guild's head moved (or may have): what this service
        // remembers of them is old either way.
        for guild in &guilds {
            self.hints.forget(*guild);
        }
        match result {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(reason)) if *attempt < self.max_retries => {
                *attempt += 1;
                tracing::debug!(attempt = *attempt, %reason, "token write lost a race; recomputing");
                tokio::time::sleep(backoff(*attempt)).await;
                Ok(false)
            }
            Err(StoreError::Conflict(reason)) => Err(Error::Conflict(format!(
                "the token write kept losing races ({} attempts; last: {reason})",
                *attempt + 1
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_documented_shape_and_ids_are_hex() {
        let (secret, id) = generate(&OsEntropy).expect("randomness");
        assert!(well_formed(&secret), "{}", secret.len());
        assert_eq!(secret.len(), TOKEN_PREFIX.len() + SECRET_CHARS);
        assert!(is_token_id(&id));
        let (other, other_id) = generate(&OsEntropy).expect("randomness");
        assert_ne!((secret, id), (other, other_id));
    }

    #[test]
    fn malformed_secrets_are_refused_without_a_lookup() {
        let good = format!("{TOKEN_PREFIX}{}", "A".repeat(SECRET_CHARS));
        assert!(well_formed(&good));
        for bad in [
            String::new(),
            "gct_".into(),
            format!("gct_{}", "A".repeat(SECRET_CHARS - 1)),
            format!("gct_{}", "A".repeat(SECRET_CHARS + 1)),
            format!("xyz_{}", "A".repeat(SECRET_CHARS)),
            format!("gct_{}=", "A".repeat(SECRET_CHARS - 1)),
            format!("gct_{}é", "A".repeat(SECRET_CHARS - 2)),
        ] {
            assert!(!well_formed(&bad), "{bad:?}");
        }
    }

    #[test]
    fn an_issued_token_never_debug_prints_its_secret() {
        let (secret, id) = generate(&OsEntropy).expect("randomness");
        let issued = IssuedToken {
            secret: secret.clone(),
            info: TokenInfo {
                id,
                role: TokenRole::Viewer,
                guilds: vec![],
                label: "dashboard".into(),
                human_id: None,
                created_at: Timestamp::parse_rfc3339("2026-12-07T00:00:00Z").expect("valid"),
                revoked_at: None,
            },
        };
        let shown = format!("{issued:?} {issued:#?}");
        assert!(!shown.contains(&secret[TOKEN_PREFIX.len()..]), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn a_lookup_that_straddles_a_revocation_does_not_cache_the_token() {
        let cache = TokenCache::default();
        let info = TokenInfo {
            id: "00112233aabbccdd".into(),
            role: TokenRole::Viewer,
            guilds: vec![],
            label: "dashboard".into(),
            human_id: None,
            created_at: Timestamp::parse_rfc3339("2026-12-07T00:00:00Z").expect("valid"),
            revoked_at: None,
        };
        let hash = digest("a secret");
        // The lookup reads the count, then the store (the row still
        // unrevoked); the revocation commits and forgets the id; then the
        // lookup finishes and would cache what it read.
        let before = cache.generation();
        cache.forget_id(&info.id);
        cache.put(hash, info.clone(), before);
        assert_eq!(cache.fresh(&hash), None, "a stale row must not be cached");
        // A lookup that starts after the revocation caches as usual.
        cache.put(hash, info.clone(), cache.generation());
        assert_eq!(cache.fresh(&hash), Some(info));
    }

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            lower_hex(&digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
