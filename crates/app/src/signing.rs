//! Signed entries: key files, key generation, and the store wrapper that
//! signs every write's entry hash and refuses to build on a head it cannot
//! vouch for.
//!
//! Key files are standard PEM, so other tools read them directly: the
//! private key as PKCS#8 (`-----BEGIN PRIVATE KEY-----`, what
//! `openssl genpkey -algorithm ed25519` writes), the public key as
//! SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`). A key's fingerprint
//! is the lowercase hex SHA-256 of its raw 32 public-key bytes.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use guildconf_domain::{fingerprint, EntrySignature, GuildId, SignatureFault, TrustedKeys};
use guildconf_ports::{
    ChangeSet, ConfigStore, PurgeOutcome, PurgeSet, StoreError, StoreResult, TokenWrite,
};

use crate::error::{Error, Result};

/// A public key, as `verify --trusted-key` and [`Signing::trust`] take it.
pub type PublicKey = VerifyingKey;

fn file_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("cannot {what} {}: {e}", path.display()))
}

/// The public key file written beside a private key file: `FILE.pub`.
pub fn public_key_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Generates an Ed25519 key pair from the operating system's CSPRNG and
/// writes the private key to `private` (PKCS#8 PEM, mode 0600) and the
/// public key to `FILE.pub` (SubjectPublicKeyInfo PEM). Neither file may
/// exist yet: an existing key is never overwritten. Returns the public key's
/// fingerprint.
///
/// # Errors
/// [`Error::Invalid`] when either file exists; [`Error::Storage`] when a
/// file cannot be written (nothing is left behind).
pub fn keygen(private: &Path) -> Result<String> {
    let public = public_key_path(private);
    for path in [private, public.as_path()] {
        if path.exists() {
            return Err(Error::invalid(
                "/output",
                format!("{} exists; a key file is never overwritten", path.display()),
            ));
        }
    }
    let key = SigningKey::generate(&mut rand_core::OsRng);
    // PKCS#8 version 1, without the optional public key: the form OpenSSL
    // writes and reads (`openssl genpkey -algorithm ed25519`), and the one
    // Python's `cryptography` reads.
    let private_pem = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .map_err(|e| Error::Storage(format!("cannot encode the private key: {e}")))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::Storage(format!("cannot encode the public key: {e}")))?;
    write_new(private, private_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, public_pem.as_bytes(), 0o644) {
        // Leave nothing half made: a private key without its public file.
        let _ = fs::remove_file(private);
        return Err(e);
    }
    Ok(fingerprint(&key.verifying_key()))
}

/// Writes a file that must not exist yet (`create_new`), with `mode`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| file_error(path, "create", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(path, "write", e))
}

/// Reads a private key file (PKCS#8 PEM). A file that group or others may
/// read is refused, as ssh refuses one: the key is what makes a signature
/// worth anything.
///
/// # Errors
/// [`Error::Invalid`] naming the file when it is not a private Ed25519 key
/// in PKCS#8 PEM or its mode lets others read it; [`Error::Storage`] when it
/// cannot be read.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let meta = fs::metadata(path).map_err(|e| file_error(path, "read", e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::invalid(
            "/signing_key",
            format!(
                "{} may be read by group or others; make it private (chmod 600)",
                path.display()
            ),
        ));
    }
    let text = ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing::new(
        fs::read_to_string(path).map_err(|e| file_error(path, "read", e))?,
    );
    SigningKey::from_pkcs8_pem(&text).map_err(|_| {
        Error::invalid(
            "/signing_key",
            format!(
                "{} is not an Ed25519 private key in PKCS#8 PEM (as `guildconf keygen` writes)",
                path.display()
            ),
        )
    })
}

/// Reads a public key file (SubjectPublicKeyInfo PEM, as `keygen` writes
/// `FILE.pub`).
///
/// # Errors
/// [`Error::Invalid`] naming the file when it is not an Ed25519 public key
/// in PEM; [`Error::Storage`] when it cannot be read.
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = fs::read_to_string(path).map_err(|e| file_error(path, "read", e))?;
    VerifyingKey::from_public_key_pem(&text).map_err(|_| {
        Error::invalid(
            "/trusted_key",
            format!(
                "{} is not an Ed25519 public key in PEM (as `guildconf keygen` writes FILE.pub)",
                path.display()
            ),
        )
    })
}

/// How writes are signed: the key, the other keys whose signatures a head
/// may carry (keys rotated out), and whether an unsigned head may be built
/// on. Given to [`crate::OpenOptions::signing`].
#[derive(Clone)]
pub struct Signing {
    key: SigningKey,
    trusted: TrustedKeys,
    adopt_unsigned: bool,
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("Signing")
            .field("key", &fingerprint(&self.key.verifying_key()))
            .field("trusted", &self.trusted)
            .field("adopt_unsigned", &self.adopt_unsigned)
            .finish()
    }
}

impl PartialEq for Signing {
    fn eq(&self, other: &Self) -> bool {
        self.key.verifying_key() == other.key.verifying_key()
            && self.trusted == other.trusted
            && self.adopt_unsigned == other.adopt_unsigned
    }
}

impl Eq for Signing {}

impl Signing {
    /// Sign with `key`; a head must carry a valid signature by this key (or
    /// one added with [`Signing::trust`]).
    pub fn new(key: SigningKey) -> Self {
        let trusted = TrustedKeys::new([key.verifying_key()]);
        Self {
            key,
            trusted,
            adopt_unsigned: false,
        }
    }

    /// Also accept a head signed by `key` (a key rotated out: the first
    /// write with the new key builds on the last entry the old one signed).
    #[must_use]
    pub fn trust(mut self, key: PublicKey) -> Self {
        self.trusted.add(key);
        self
    }

    /// Build on an unsigned head (default `false`): the one-time step when
    /// signing is turned on for guilds written without it. A head whose
    /// signature is bad, or by a key not trusted, is refused all the same.
    #[must_use]
    pub fn adopt_unsigned(mut self, adopt: bool) -> Self {
        self.adopt_unsigned = adopt;
        self
    }

    /// The signing key's fingerprint.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key.verifying_key())
    }
}

/// How many guilds' last signed hashes a [`SigningStore`] remembers, so a
/// write on top of its own last write needs no read of the head's signature.
const REMEMBERED: usize = 10_000;

/// A store that signs each written entry (config writes, purges, token
/// events and every other operation that goes through `commit`, `purge` or
/// `commit_token`) and, before
/// writing, checks the head it builds on: its entry must carry a valid
/// signature by a trusted key, or be unsigned with
/// [`Signing::adopt_unsigned`]. Otherwise the write stops as
/// [`StoreError::Corrupt`] (exit 6), nothing written.
///
/// `commit_all` (import and copy) passes change sets through as they are:
/// they carry the signatures of the file they came from, byte for byte.
#[derive(Debug)]
pub(crate) struct SigningStore {
    inner: Arc<dyn ConfigStore>,
    signing: Signing,
    /// Per guild, the hash of the last entry this store signed and wrote.
    signed: Mutex<HashMap<GuildId, String>>,
}

impl SigningStore {
    pub(crate) fn new(inner: Arc<dyn ConfigStore>, signing: Signing) -> Self {
        Self {
            inner,
            signing,
            signed: Mutex::new(HashMap::new()),
        }
    }

    fn remembered(&self, guild: GuildId, hash: &str) -> bool {
        self.signed
            .lock()
            .map(|m| m.get(&guild).is_some_and(|h| h == hash))
            .unwrap_or(false)
    }

    fn remember(&self, guild: GuildId, hash: &str) {
        if let Ok(mut m) = self.signed.lock() {
            if m.len() >= REMEMBERED && !m.contains_key(&guild) {
                m.clear();
            }
            m.insert(guild, hash.to_owned());
        }
    }

    /// Checks the head a write expects (`seq`, with `prev_hash` as its
    /// hash). A head the store holds elsewhere is left to the commit's own
    /// head check (a conflict to retry).
    async fn check_base(
        &self,
        guild: GuildId,
        seq: Option<u64>,
        prev_hash: &str,
    ) -> StoreResult<()> {
        let Some(seq) = seq else {
            return Ok(());
        };
        if self.remembered(guild, prev_hash) {
            return Ok(());
        }
        let Some((hash, signature)) = self.inner.entry_signature(guild, seq).await? else {
            return Ok(());
        };
        if hash != prev_hash {
            return Ok(());
        }
        match self.signing.trusted.verify(&hash, signature.as_ref()) {
            Ok(()) => Ok(()),
            Err(SignatureFault::Missing) if self.signing.adopt_unsigned => Ok(()),
            Err(SignatureFault::Missing) => Err(StoreError::Corrupt(format!(
                "guild {guild}'s head entry (seq {seq}) is not signed, so a signed write will not \
                 vouch for it: run guildconf verify; when signing is first turned on for existing \
                 guilds, write once with --adopt-unsigned"
            ))),
            Err(fault) => Err(StoreError::Corrupt(format!(
                "guild {guild}'s head entry (seq {seq}): {fault}: run guildconf verify"
            ))),
        }
    }

    /// Checks the head `change` builds on and signs its entry; the guild and
    /// the signed hash, to remember once the write commits.
    async fn sign(&self, change: &mut ChangeSet) -> StoreResult<(GuildId, String)> {
        let guild = change.guild_id;
        self.check_base(guild, change.expected_seq, &change.entry.body().prev_hash)
            .await?;
        let hash = change.entry.entry_hash().to_owned();
        change.signature = Some(EntrySignature::sign(&self.signing.key, &hash));
        Ok((guild, hash))
    }
}

impl crate::wrapper::Wraps for SigningStore {
    fn wrapped(&self) -> &dyn ConfigStore {
        self.inner.as_ref()
    }
}

crate::wrapper::wrapping_store!(SigningStore {
    async fn commit(&self, mut change: ChangeSet) -> StoreResult<()> {
        let (guild, hash) = self.sign(&mut change).await?;
        self.inner.commit(change).await?;
        self.remember(guild, &hash);
        Ok(())
    }

    /// A token write's events are signed like any other entry: each guild's
    /// head is checked and each entry signed before the one transaction.
    async fn commit_token(&self, mut write: TokenWrite) -> StoreResult<()> {
        let mut signed = Vec::with_capacity(write.changes.len());
        for change in &mut write.changes {
            signed.push(self.sign(change).await?);
        }
        self.inner.commit_token(write).await?;
        for (guild, hash) in signed {
            self.remember(guild, &hash);
        }
        Ok(())
    }

    async fn purge(&self, mut purge: PurgeSet) -> StoreResult<PurgeOutcome> {
        let guild = purge.guild_id;
        self.check_base(
            guild,
            Some(purge.expected_seq),
            &purge.entry.body().prev_hash,
        )
        .await?;
        let hash = purge.entry.entry_hash().to_owned();
        purge.signature = Some(EntrySignature::sign(&self.signing.key, &hash));
        let outcome = self.inner.purge(purge).await?;
        self.remember(guild, &hash);
        Ok(outcome)
    }
});
