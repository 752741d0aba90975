//! Export and verify, timed in a child process of their own (`--phase
//! export-verify`) so that its peak memory is theirs alone.

use std::io::Write;
use std::time::Instant;

use guildconf::sqlite::SqliteOptions;
use guildconf::{ConfigService, ExportRequest};

use crate::open_with;
use serde_json::{json, Value};

use crate::{s, Figures, R};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Counts bytes, keeps nothing.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The child's side: exports and verifies every entry of `url`, and prints
/// the rates and its peak memory as one JSON line.
pub async fn phase_export_verify(url: &str) -> R<()> {
    let service = ConfigService::new(
        open_with(url, SqliteOptions::default())
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut sink = std::io::BufWriter::with_capacity(1 << 16, Counter(0));
    let start = Instant::now();
    let exported = service
        .export(&ExportRequest::default(), &mut sink)
        .await
        .map_err(|e| e.to_string())?;
    let export_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let report = service.verify(None).await.map_err(|e| e.to_string())?;
    let verify_s = start.elapsed().as_secs_f64();
    if !report.ok {
        return Err(format!(
            "verify found problems: {:?}",
            report.problems.first()
        ));
    }
    println!(
        "{}",
        json!({
            "entries": exported,
            "export_per_s": exported as f64 / export_s,
            "verify_per_s": report.entries_checked as f64 / verify_s,
            "peak_rss_mib": peak_rss_mib(),
        })
    );
    Ok(())
}

/// Runs the export-verify phase on `url` in a child process and keeps its
/// figures, each key ending in `sfx`.
pub fn child_export_verify(url: &str, sfx: &str, out: &mut Figures) -> R<()> {
    let exe = s(std::env::current_exe())?;
    let output = s(std::process::Command::new(exe)
        .args(["--phase", "export-verify", "--url", url])
        .output())?;
    if !output.status.success() {
        return Err(format!(
            "export/verify phase failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let ev: Value = s(serde_json::from_slice(&output.stdout))?;
    for k in ["export_per_s", "verify_per_s", "peak_rss_mib", "entries"] {
        let v = ev.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        out.insert(format!("{k}{sfx}"), v);
    }
    Ok(())
}
