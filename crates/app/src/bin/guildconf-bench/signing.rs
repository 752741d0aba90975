//! What signing costs (issue 13): W with signing off and on, on both
//! backends, and verify of a signed log with and without its signatures
//! checked.
//!
//! Writes: three contenders on one database, interleaved round by round with
//! the same number of writes each: unsigned; signed, building on its own last
//! write (the usual case: the signing store remembers the hash it signed, so
//! the head check costs nothing); and signed with the head's signature read
//! and verified on every write (two signing services alternating on the same
//! guilds, so each builds on the other's entry: the worst case).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guildconf::sqlite::SqliteOptions;
use guildconf::{ConfigService, OpenOptions, Signing, VerifyOptions};
use guildconf_domain::ed25519_dalek::SigningKey;
use serde_json::json;

use crate::args::Sizes;
use crate::fixture::{gid, meta, welcome_path};
use crate::load::bulk_load_signed;
use crate::stats::median_ratio;
use crate::{s, Figures, R};

/// The bench's signing key (fixed: the figures do not depend on it).
fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

async fn service(url: &str, signing: Option<Signing>) -> R<ConfigService> {
    let options = OpenOptions::new().create_if_missing(true);
    let options = match signing {
        Some(signing) => options.signing(signing),
        None => options,
    };
    Ok(ConfigService::new(
        guildconf::open(url, options)
            .await
            .map_err(|e| e.to_string())?,
    ))
}

/// `n` updates spread over the guilds `first..first + guilds`, each pass
/// over the guilds by the next of the given services (so with two, every
/// write builds on an entry the other one wrote); the time they took.
async fn writes(
    services: &[&ConfigService],
    first: u64,
    guilds: u64,
    n: usize,
    round: usize,
) -> R<Duration> {
    let m = meta()?;
    let start = Instant::now();
    for i in 0..n {
        let g = gid(first + (i as u64 % guilds))?;
        let edit = guildconf::FieldEdit::new().set(welcome_path(), format!("r{round} w{i}"));
        services[(i / guilds as usize) % services.len()]
            .update(g, edit, &m)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed())
}

/// W unsigned, signed and signed-with-a-checked-head on the database at
/// `url`, keys ending in `sfx`.
pub async fn bench_signed_writes(url: &str, sfx: &str, sizes: Sizes, out: &mut Figures) -> R<()> {
    let plain = service(url, None).await?;
    let signed = service(url, Some(Signing::new(key()))).await?;
    let other = service(url, Some(Signing::new(key()))).await?;
    let guilds = 20u64;
    let m = meta()?;
    for (offset, svc) in [(0, &plain), (100, &signed), (200, &signed)] {
        for g in 0..guilds {
            svc.create(gid(offset + g)?, json!({}), &m)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let n = (sizes.writes / 2).max(20);
    let mut rounds: Vec<Vec<Duration>> = Vec::new();
    for round in 0..sizes.rounds.max(3) {
        rounds.push(vec![
            writes(&[&plain], 0, guilds, n, round).await?,
            writes(&[&signed], 100, guilds, n, round).await?,
            writes(&[&signed, &other], 200, guilds, n, round).await?,
        ]);
    }
    let rate = |i: usize| {
        let total: f64 = rounds.iter().map(|r| r[i].as_secs_f64()).sum();
        (n * rounds.len()) as f64 / total
    };
    out.insert(format!("write_per_s_unsigned{sfx}"), rate(0));
    out.insert(format!("write_per_s_signed{sfx}"), rate(1));
    out.insert(format!("write_per_s_signed_checked{sfx}"), rate(2));
    // Signed rate over unsigned, median over rounds: 1.0 means free.
    out.insert(
        format!("signed_vs_unsigned{sfx}"),
        median_ratio(&rounds, 1, 0),
    );
    out.insert(
        format!("signed_checked_vs_unsigned{sfx}"),
        median_ratio(&rounds, 2, 0),
    );
    Ok(())
}

/// Loads a signed log of `sizes.entries` entries into both backends, then
/// verifies each with and without its signatures checked.
pub async fn bench_signed_verify(
    dir: &Path,
    pg_url: &str,
    sizes: Sizes,
    out: &mut Figures,
) -> R<()> {
    let path = dir.join("signed.db");
    let start = Instant::now();
    bulk_load_signed(&path, pg_url, sizes, Some(&key())).await?;
    out.insert("signed_load_s".into(), start.elapsed().as_secs_f64());
    let sqlite_url = format!("sqlite://{}", path.display());
    let trusted = VerifyOptions::new()
        .trusted_keys([key().verifying_key()])
        .require_signed(true);
    for (url, sfx) in [(sqlite_url.as_str(), ""), (pg_url, "_pg")] {
        let service = ConfigService::new(Arc::clone(
            &crate::open_with(url, SqliteOptions::default())
                .await
                .map_err(|e| e.to_string())?,
        ));
        for (options, key) in [
            (VerifyOptions::new(), "verify_per_s_unchecked"),
            (trusted.clone(), "verify_per_s_signed"),
        ] {
            let start = Instant::now();
            let report = service
                .verify_with(None, &options)
                .await
                .map_err(|e| e.to_string())?;
            let secs = start.elapsed().as_secs_f64();
            if !report.ok {
                return Err(format!(
                    "signed verify failed: {:?}",
                    report.problems.first()
                ));
            }
            out.insert(format!("{key}{sfx}"), report.entries_checked as f64 / secs);
            out.insert(
                format!("verify_entries{sfx}"),
                report.entries_checked as f64,
            );
        }
    }
    // The single-core cost of one signature check, alone and in batches,
    // for reading the figures above against the machine's cores.
    let message = "a".repeat(64);
    let sig = guildconf_domain::EntrySignature::sign(&key(), &message);
    let keys = guildconf_domain::TrustedKeys::new([key().verifying_key()]);
    let n = 2000;
    let start = Instant::now();
    for _ in 0..n {
        s(keys.verify(&message, Some(&sig)).map_err(|e| e.to_string()))?;
    }
    out.insert(
        "verify_one_signature_us".into(),
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n),
    );
    let start = Instant::now();
    for _ in 0..n {
        let _ = guildconf_domain::EntrySignature::sign(&key(), "a");
    }
    out.insert(
        "sign_one_us".into(),
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n),
    );
    Ok(())
}

/// Prints this part's figures.
pub fn print(f: &Figures) {
    let g = |k: &str| f.get(k).copied().unwrap_or(f64::NAN);
    println!();
    println!("signing (issue 13)");
    for (name, sfx) in [("SQLite", ""), ("PostgreSQL", "_pg")] {
        println!(
            "  W {name}: unsigned {:.0}/s, signed {:.0}/s ({:.3} of unsigned), signed with the head read and verified {:.0}/s ({:.3})",
            g(&format!("write_per_s_unsigned{sfx}")),
            g(&format!("write_per_s_signed{sfx}")),
            g(&format!("signed_vs_unsigned{sfx}")),
            g(&format!("write_per_s_signed_checked{sfx}")),
            g(&format!("signed_checked_vs_unsigned{sfx}")),
        );
        println!(
            "  V {name} ({:.0} signed entries): {:.0}/s without checking signatures, {:.0}/s checking them (target >= 150000)",
            g(&format!("verify_entries{sfx}")),
            g(&format!("verify_per_s_unchecked{sfx}")),
            g(&format!("verify_per_s_signed{sfx}")),
        );
    }
    println!(
        "  one core: sign {:.1} us, verify one signature {:.1} us",
        g("sign_one_us"),
        g("verify_one_signature_us")
    );
}
