//! What a run reports: the headline figures, the table on stdout and the
//! JSON file of `--json-out`.

use std::path::Path;

use serde_json::Value;

use crate::args::Sizes;
use crate::{s, Figures, R};

/// The headline keys: the PostgreSQL ratios at one writer.
pub fn add_headlines(f: &mut Figures) {
    f.insert(
        "write_vs_raw_pg".into(),
        f.get("write_vs_raw_pg_1w").copied().unwrap_or(f64::NAN),
    );
    f.insert(
        "write_vs_trigger_pg".into(),
        f.get("write_vs_trigger_pg_1w").copied().unwrap_or(f64::NAN),
    );
}

/// Every figure as one JSON object (a non-finite one as `null`), by key.
pub fn write_json(path: &Path, f: &Figures) -> R<()> {
    let object: serde_json::Map<String, Value> = f
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
            )
        })
        .collect();
    s(std::fs::write(
        path,
        s(serde_json::to_string_pretty(&Value::Object(object)))?,
    ))
}

pub fn print_table(f: &Figures, sizes: Sizes) {
    let g = |k: &str| f.get(k).copied().unwrap_or(f64::NAN);
    println!();
    println!(
        "guildconf-bench ({} writes per contender, {} entries / {} guilds / largest {})",
        sizes.writes, sizes.entries, sizes.guilds, sizes.big
    );
    println!(
        "{:<52} {:>12} {:>12} {:>8} {:>8}",
        "measure", "guildconf", "baseline", "ratio", "target"
    );
    // The ratio column is the median over rounds (see `median_ratio`), so it
    // can differ a little from the quotient of the two total rates.
    let row = |name: &str, a: f64, b: f64, ratio: f64, target: &str| {
        println!("{name:<44} {a:>12.0} {b:>12.0} {ratio:>8.2} {target:>8}");
    };
    for w in [1, 4] {
        let k = format!("pg_{w}w");
        row(
            &format!("W PostgreSQL {w} writer(s) vs raw SQL (/s)"),
            g(&format!("write_per_s_guildconf_{k}")),
            g(&format!("write_per_s_raw_{k}")),
            g(&format!("write_vs_raw_{k}")),
            ">=0.85",
        );
        row(
            &format!("W PostgreSQL {w} writer(s) vs trigger peer (/s)"),
            g(&format!("write_per_s_guildconf_{k}")),
            g(&format!("write_per_s_trigger_{k}")),
            g(&format!("write_vs_trigger_{k}")),
            ">=1.0",
        );
        row(
            &format!("W PostgreSQL {w} writer(s) change feed on vs off (/s)"),
            g(&format!("write_per_s_guildconf_{k}")),
            g(&format!("write_per_s_guildconf_no_feed_{k}")),
            g(&format!("feed_on_vs_off_{k}")),
            "",
        );
        row(
            &format!("W PostgreSQL {w} writer(s) head hints on vs off (/s)"),
            g(&format!("write_per_s_guildconf_{k}")),
            g(&format!("write_per_s_guildconf_no_hints_{k}")),
            g(&format!("head_hints_gain_{k}")),
            "",
        );
        let cpu = |who: &str| g(&format!("client_cpu_us_per_write_{who}_{k}"));
        row(
            &format!("W PostgreSQL {w} writer(s) client CPU/write vs peer (us)"),
            cpu("guildconf"),
            cpu("trigger"),
            cpu("guildconf") / cpu("trigger"),
            "",
        );
    }
    row(
        "W SQLite FULL vs raw SQL (/s)",
        g("write_per_s_guildconf_sqlite_full"),
        g("write_per_s_raw_sqlite_full"),
        g("write_vs_raw_sqlite_full"),
        ">=0.85",
    );
    row(
        "W SQLite FULL vs raw, one blocking loop (/s)",
        g("write_per_s_guildconf_sqlite_full"),
        g("write_per_s_raw_loop_sqlite_full"),
        g("write_vs_raw_loop_sqlite_full"),
        "",
    );
    row(
        "W SQLite FULL, inline_commits vs raw SQL (/s)",
        g("write_per_s_guildconf_inline_sqlite_full"),
        g("write_per_s_raw_sqlite_full"),
        g("write_vs_raw_sqlite_full_inline_commits"),
        "",
    );
    row(
        "W SQLite FULL, change feed watched vs not (/s)",
        g("write_per_s_guildconf_sqlite_full"),
        g("write_per_s_guildconf_unwatched_sqlite_full"),
        g("watched_vs_unwatched_sqlite_full"),
        "",
    );
    row(
        "W SQLite NORMAL vs raw SQL (/s)",
        g("write_per_s_guildconf_sqlite_normal"),
        g("write_per_s_raw_sqlite_normal"),
        g("write_vs_raw_sqlite_normal"),
        "",
    );
    println!(
        "{:<52} {:>12.0} {:>12} {:>8} {:>8}",
        "R warm, read cache (/s)",
        g("read_warm_per_s"),
        "",
        "",
        ">=1e6"
    );
    println!(
        "{:<52} {:>12.0} {:>12} {:>8} {:>8}",
        "R cold SQLite, 4 readers (/s)",
        g("read_cold_sqlite_per_s"),
        "",
        "",
        ">=50000"
    );
    println!(
        "{:<52} {:>12.0} {:>12} {:>8} {:>8}",
        "R cold PostgreSQL, 4 readers (/s)",
        g("read_cold_pg_per_s"),
        "",
        "",
        ""
    );
    for k in ["sqlite", "pg"] {
        println!(
            "{:<52} {:>12.3} {:>12.3} {:>8} {:>8}",
            format!("H first page p50 / p99 ms ({k})"),
            g(&format!("history_first_p50_ms_{k}")),
            g(&format!("history_first_p99_ms_{k}")),
            "",
            "p99<=2"
        );
        println!(
            "{:<52} {:>12.3} {:>12.3} {:>8.2} {:>8}",
            format!(
                "H page {} p50 / p99 ms ({k})",
                g(&format!("history_deep_page_{k}"))
            ),
            g(&format!("history_deep_p50_ms_{k}")),
            g(&format!("history_deep_p99_ms_{k}")),
            g(&format!("history_deep_over_first_{k}")),
            "<=1.5"
        );
    }
    for k in ["sqlite", "pg"] {
        let sfx = if k == "sqlite" {
            String::new()
        } else {
            "_pg".into()
        };
        println!(
            "{:<52} {:>12.0} {:>12} {:>8} {:>8}",
            format!("E export ({k}, entries/s)"),
            g(&format!("export_per_s{sfx}")),
            "",
            "",
            ">=2e5"
        );
        println!(
            "{:<52} {:>12.0} {:>12} {:>8} {:>8}",
            format!("V verify ({k}, entries/s)"),
            g(&format!("verify_per_s{sfx}")),
            "",
            "",
            ">=2e5"
        );
        println!(
            "{:<52} {:>12.1} {:>12} {:>8} {:>8}",
            format!("peak RSS, export+verify ({k}, MiB)"),
            g(&format!("peak_rss_mib{sfx}")),
            "",
            "",
            "<100"
        );
    }
}
