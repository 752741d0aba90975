//! Ed25519 signatures over entry hashes: what is signed, how a signature is
//! written down, the key fingerprint, and checking signatures against a set
//! of trusted keys (one at a time, or in batches while a chain streams past).
//!
//! Pure: signing with a key is deterministic (RFC 8032), and batch
//! verification draws its randomness from a transcript of what it checks, so
//! nothing here reads an outside source of randomness. Key *generation* and
//! key files live in the application.
//!
//! The signed message is the entry hash as written: the 64 ASCII bytes of the
//! lowercase hex `entry_hash`. A signature is stored and exported beside the
//! entry, never in its body, so the body, its hash and the chain do not
//! change when an entry is signed.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::json::sha256_hex;

/// The one signature algorithm of format version 1.
pub const SIG_ALG: &str = "ed25519";

/// A signature of one entry, as stored beside it and exported under `sig`:
/// `{"alg": "ed25519", "key": "<fingerprint>", "value": "<base64>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntrySignature {
    /// The algorithm, always [`SIG_ALG`].
    pub alg: String,
    /// The signing key's [`fingerprint`].
    pub key: String,
    /// The 64-byte Ed25519 signature in standard base64 with padding (88
    /// characters).
    pub value: String,
}

impl EntrySignature {
    /// Signs `entry_hash` (its 64 ASCII bytes) with `key`.
    pub fn sign(key: &SigningKey, entry_hash: &str) -> Self {
        let signature = key.sign(entry_hash.as_bytes());
        Self {
            alg: SIG_ALG.to_owned(),
            key: fingerprint(&key.verifying_key()),
            value: STANDARD.encode(signature.to_bytes()),
        }
    }

    /// Checks what can be checked without the key: the algorithm is known,
    /// the fingerprint is 64 lowercase hex digits, the value is standard
    /// base64 of 64 bytes.
    ///
    /// # Errors
    /// A sentence naming what is malformed.
    pub fn check_shape(&self) -> Result<(), &'static str> {
        self.parse().map(|_| ())
    }

    /// The signature bytes, once the shape is right.
    fn parse(&self) -> Result<Signature, &'static str> {
        if self.alg != SIG_ALG {
            return Err("the signature's alg is not ed25519");
        }
        if !is_fingerprint(&self.key) {
            return Err("the signature's key is not a fingerprint (64 lowercase hex digits)");
        }
        let bytes = STANDARD
            .decode(&self.value)
            .map_err(|_| "the signature's value is not standard base64")?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| "the signature's value is not 64 bytes")?;
        // Re-encoding must give the same text: one signature has one form.
        if STANDARD.encode(bytes) != self.value {
            return Err("the signature's value is not in canonical base64");
        }
        Ok(Signature::from_bytes(&bytes))
    }
}

/// Whether `text` has the form of a [`fingerprint`].
pub fn is_fingerprint(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A public key's fingerprint: the lowercase hex SHA-256 of its raw 32 bytes.
pub fn fingerprint(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes())
}

/// Why an entry's signature was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureFault {
    /// The entry carries no signature.
    Missing,
    /// The signature is malformed (the sentence says how).
    Malformed(&'static str),
    /// The signing key is not one of the trusted keys.
    UntrustedKey,
    /// The signature does not verify over the entry hash with its key.
    Invalid,
}

impl fmt::Display for SignatureFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureFault::Missing => f.write_str("the entry is not signed"),
            SignatureFault::Malformed(why) => f.write_str(why),
            SignatureFault::UntrustedKey => f.write_str("the entry is signed by an untrusted key"),
            SignatureFault::Invalid => {
                f.write_str("the signature does not verify over the entry hash")
            }
        }
    }
}

/// The public keys whose signatures are accepted, by fingerprint.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(fp, _)| fp))
            .finish()
    }
}

impl TrustedKeys {
    /// The given keys (duplicates are kept once).
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        let mut out = Self::default();
        for key in keys {
            out.add(key);
        }
        out
    }

    /// Adds a key.
    pub fn add(&mut self, key: VerifyingKey) {
        let fp = fingerprint(&key);
        if self.find(&fp).is_none() {
            self.keys.push((fp, key));
        }
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The fingerprints, in the order the keys were given.
    pub fn fingerprints(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(fp, _)| fp.as_str())
    }

    fn find(&self, fingerprint: &str) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .find_map(|(fp, key)| (fp == fingerprint).then_some(key))
    }

    /// The parsed signature and its trusted key, or why there is none.
    fn resolve(
        &self,
        signature: Option<&EntrySignature>,
    ) -> Result<(Signature, VerifyingKey), SignatureFault> {
        let signature = signature.ok_or(SignatureFault::Missing)?;
        let parsed = signature.parse().map_err(SignatureFault::Malformed)?;
        let key = self
            .find(&signature.key)
            .ok_or(SignatureFault::UntrustedKey)?;
        Ok((parsed, *key))
    }

    /// Checks one entry's signature over its `entry_hash`.
    ///
    /// # Errors
    /// The [`SignatureFault`]: none, malformed, untrusted key, or invalid.
    pub fn verify(
        &self,
        entry_hash: &str,
        signature: Option<&EntrySignature>,
    ) -> Result<(), SignatureFault> {
        let (parsed, key) = self.resolve(signature)?;
        key.verify_strict(entry_hash.as_bytes(), &parsed)
            .map_err(|_| SignatureFault::Invalid)
    }
}

/// How a chain verifier treats signatures: which keys are trusted, and
/// whether a guild's last entry must be signed by one of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignaturePolicy {
    /// The trusted keys.
    pub trusted: TrustedKeys,
    /// Whether every guild's last entry must carry a valid signature by a
    /// trusted key (`verify --require-signed`).
    pub require_signed: bool,
}

/// How many signatures a [`SignatureBatch`] collects before it checks them
/// at once. Batch verification costs about half as much per signature as
/// one-by-one verification once a batch holds a few dozen.
const BATCH: usize = 64;

/// One signature waiting for its batch.
#[derive(Debug)]
struct Pending {
    seq: u64,
    hash: [u8; 64],
    signature: Signature,
    key: VerifyingKey,
}

/// Signatures of one chain collected for batch verification. Faults that
/// need no arithmetic (missing, malformed, untrusted) are reported at once;
/// the arithmetic is done a batch at a time, and when a batch fails its
/// signatures are checked one by one to name the first bad one.
#[derive(Debug, Default)]
pub(crate) struct SignatureBatch {
    pending: Vec<Pending>,
}

impl SignatureBatch {
    /// Adds entry `seq`'s signature; a fault found without arithmetic is
    /// returned at once.
    pub(crate) fn push(
        &mut self,
        trusted: &TrustedKeys,
        seq: u64,
        entry_hash: &str,
        signature: Option<&EntrySignature>,
    ) -> Result<(), SignatureFault> {
        let (signature, key) = trusted.resolve(signature)?;
        // A stored hash that is not 64 bytes cannot be what was signed; the
        // chain check has already refused it, so this only guards the copy.
        let hash: [u8; 64] = entry_hash
            .as_bytes()
            .try_into()
            .map_err(|_| SignatureFault::Invalid)?;
        self.pending.push(Pending {
            seq,
            hash,
            signature,
            key,
        });
        Ok(())
    }

    /// Whether the batch is full and should be checked.
    pub(crate) fn full(&self) -> bool {
        self.pending.len() >= BATCH
    }

    /// Checks every signature collected; the first invalid one's seq.
    pub(crate) fn flush(&mut self) -> Option<u64> {
        if self.pending.is_empty() {
            return None;
        }
        let messages: Vec<&[u8]> = self.pending.iter().map(|p| &p.hash[..]).collect();
        let signatures: Vec<Signature> = self.pending.iter().map(|p| p.signature).collect();
        let keys: Vec<VerifyingKey> = self.pending.iter().map(|p| p.key).collect();
        let batch_ok = ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
        let bad = if batch_ok {
            None
        } else {
            self.pending
                .iter()
                .find(|p| p.key.verify_strict(&p.hash, &p.signature).is_err())
                .map(|p| p.seq)
        };
        self.pending.clear();
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    const HASH: &str = "5d0d89e2ea6465ab835468ac903225b112b67be571e38eaf633f49748934e8d6";

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let sig = EntrySignature::sign(&key(1), HASH);
        assert_eq!(sig.alg, "ed25519");
        assert_eq!(sig.value.len(), 88);
        assert_eq!(sig.key, fingerprint(&key(1).verifying_key()));
        let trusted = TrustedKeys::new([key(1).verifying_key()]);
        assert_eq!(trusted.verify(HASH, Some(&sig)), Ok(()));
        let other = TrustedKeys::new([key(2).verifying_key()]);
        assert_eq!(
            other.verify(HASH, Some(&sig)),
            Err(SignatureFault::UntrustedKey)
        );
        let other_hash = HASH.replace('5', "6");
        assert_eq!(
            trusted.verify(&other_hash, Some(&sig)),
            Err(SignatureFault::Invalid)
        );
        assert_eq!(trusted.verify(HASH, None), Err(SignatureFault::Missing));
    }

    #[test]
    fn malformed_signatures_are_named() {
        let good = EntrySignature::sign(&key(1), HASH);
        let cases = [
            EntrySignature {
                alg: "rsa".into(),
                ..good.clone()
            },
            EntrySignature {
                key: good.key.to_uppercase(),
                ..good.clone()
            },
            EntrySignature {
                value: "not base64!".into(),
                ..good.clone()
            },
            EntrySignature {
                value: STANDARD.encode([0u8; 63]),
                ..good.clone()
            },
        ];
        for case in cases {
            assert!(case.check_shape().is_err(), "{case:?}");
        }
        assert_eq!(good.check_shape(), Ok(()));
    }

    #[test]
    fn a_batch_names_its_first_bad_signature() {
        let trusted = TrustedKeys::new([key(1).verifying_key()]);
        let mut batch = SignatureBatch::default();
        for seq in 1..=10u64 {
            let hash = format!("{seq:064x}");
            let signed = if seq == 7 {
                "f".repeat(64)
            } else {
                hash.clone()
            };
            let sig = EntrySignature::sign(&key(1), &signed);
            batch
                .push(&trusted, seq, &hash, Some(&sig))
                .expect("trusted and well formed");
        }
        assert_eq!(batch.flush(), Some(7));
        assert_eq!(batch.flush(), None, "a flushed batch is empty");
    }
}
