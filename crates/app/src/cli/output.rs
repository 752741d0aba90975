//! What the command line prints: JSON for programs, short tables for people.

use std::io::{self, Write};
use std::path::Path;

use guildconf::{
    json, Change, Error, FieldPath, GuildId, GuildSummary, HistoryPage, IssuedToken, Outcome,
    PurgeResult, Shown, Timestamp, TokenInfo, VerifyReport, WriteResult,
};
use serde_json::{json, Value};

/// Prints to stdout (results) and stderr (errors) in the chosen style.
pub struct Output {
    json: bool,
}

fn print_json(value: &Value) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{value}");
}

/// Pads columns to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let render = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                line.push_str(&cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(&cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        line.trim_end().to_owned()
    };
    let mut out = render(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&render(row.clone()));
    }
    out
}

/// The guilds a token reaches, for people.
fn scope(token: &TokenInfo) -> String {
    if token.guilds.is_empty() {
        "every guild".to_owned()
    } else {
        token
            .guilds
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Replaces control characters so stored text cannot forge lines on a terminal.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn problem_line(p: &guildconf::VerifyProblem) -> String {
    let guild = p.guild_id.map_or_else(|| "?".to_owned(), |g| g.to_string());
    let seq = p.seq.map_or_else(|| "-".to_owned(), |s| s.to_string());
    format!(
        "guild {guild} seq {seq}: {} ({})",
        p.problem,
        clean(&p.message)
    )
}

fn change_line(change: &Change) -> String {
    let path = json::display_path(change.path());
    match change {
        Change::Add { after, .. } => format!("+ {path}: {after}"),
        Change::Remove { before, .. } => format!("- {path}: {before}"),
        Change::Replace { before, after, .. } => format!("~ {path}: {before} → {after}"),
    }
}

/// A purge plan as a short table.
fn plan_text(before: Timestamp, plan: &[PurgeResult]) -> String {
    let rows: Vec<Vec<String>> = plan
        .iter()
        .filter(|r| r.entries_removed > 0)
        .map(|r| {
            vec![
                r.guild_id.to_string(),
                r.entries_removed.to_string(),
                r.snapshots_removed.to_string(),
                r.through_seq.to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return format!("nothing before {before} to purge");
    }
    format!(
        "would purge entries before {before}:\n{}",
        table(&["GUILD", "ENTRIES", "SNAPSHOTS", "THROUGH_SEQ"], &rows)
    )
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether output is for programs (`--json`).
    pub fn is_json(&self) -> bool {
        self.json
    }

    pub fn error(&self, code: &str, message: &str) {
        if self.json {
            eprintln!("{}", json!({"error": code, "message": message}));
        } else {
            eprintln!("error: {message}");
        }
    }

    /// An error object on stderr for programs; people already saw the report.
    pub fn error_only_json(&self, code: &str, message: &str) {
        if self.json {
            eprintln!("{}", json!({"error": code, "message": message}));
        }
    }

    /// A purge's plan (`planned`: nothing written) or outcome.
    pub fn purge(&self, before: Timestamp, results: &[PurgeResult], planned: bool) {
        if self.json {
            let mut value = json!({ "guilds": results });
            if planned {
                value["dry_run"] = json!(true);
            }
            print_json(&value);
            return;
        }
        if planned {
            self.purge_plan_for_people(before, results);
            if results.iter().any(|r| r.entries_removed > 0) {
                println!("nothing purged (run with --yes to purge)");
            }
            return;
        }
        let purged: Vec<&PurgeResult> = results.iter().filter(|r| r.entry_hash.is_some()).collect();
        if purged.is_empty() {
            println!("nothing before {before} to purge");
        }
        for r in purged {
            let hash = r.entry_hash.as_deref().unwrap_or_default();
            println!(
                "purged guild {}: {} entries and {} snapshots through seq {} (entry {})",
                r.guild_id,
                r.entries_removed,
                r.snapshots_removed,
                r.through_seq,
                &hash[..hash.len().min(12)]
            );
        }
    }

    /// The plan shown before asking: on stdout for people, on stderr with
    /// `--json` (stdout then holds only the final object).
    pub fn purge_plan_before_question(&self, before: Timestamp, plan: &[PurgeResult]) {
        if self.json {
            eprintln!("{}", plan_text(before, plan));
        } else {
            println!("{}", plan_text(before, plan));
        }
    }

    fn purge_plan_for_people(&self, before: Timestamp, plan: &[PurgeResult]) {
        println!("{}", plan_text(before, plan));
    }

    pub fn stats(&self, rows: &[guildconf::StatsRow]) {
        if self.json {
            let rows: Vec<Value> = rows
                .iter()
                .map(|r| json!({"key": r.key, "count": r.count}))
                .collect();
            print_json(&json!({ "rows": rows }));
            return;
        }
        if rows.is_empty() {
            println!("no entries");
            return;
        }
        let width = rows
            .iter()
            .map(|r| r.key.chars().count())
            .max()
            .unwrap_or(0);
        for r in rows {
            println!("{:<width$}  {}", r.key, r.count);
        }
    }

    /// A new token, with its secret: the one time it is shown.
    pub fn token_created(&self, issued: &IssuedToken) {
        let info = &issued.info;
        if self.json {
            print_json(&json!({
                "token": issued.secret,
                "id": info.id,
                "role": info.role,
                "guilds": info.guilds,
                "label": info.label,
                "human_id": info.human_id,
                "created_at": info.created_at,
            }));
            return;
        }
        println!(
            "created token {} ({}, {}) for {}",
            info.id,
            info.role,
            scope(info),
            clean(&info.label)
        );
        println!("{}", issued.secret);
        eprintln!("This secret is shown once: guildconf stores only its SHA-256.");
    }

    /// Every token, without secrets.
    pub fn tokens(&self, tokens: &[TokenInfo]) {
        if self.json {
            print_json(&json!({ "tokens": tokens }));
            return;
        }
        if tokens.is_empty() {
            println!("no tokens yet");
            return;
        }
        let rows: Vec<Vec<String>> = tokens
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    t.role.to_string(),
                    scope(t),
                    t.created_at.to_string(),
                    t.revoked_at
                        .map_or_else(|| "-".to_owned(), |at| at.to_string()),
                    clean(&match &t.human_id {
                        Some(human) => format!("{} (human {human})", t.label),
                        None => t.label.clone(),
                    }),
                ]
            })
            .collect();
        println!(
            "{}",
            table(
                &["ID", "ROLE", "GUILDS", "CREATED AT", "REVOKED AT", "LABEL"],
                &rows
            )
        );
    }

    /// A token just revoked.
    pub fn token_revoked(&self, info: &TokenInfo) {
        if self.json {
            print_json(&serde_json::to_value(info).unwrap_or(Value::Null));
            return;
        }
        let at = info.revoked_at.map(|t| t.to_string()).unwrap_or_default();
        println!("revoked token {} ({}) at {at}", info.id, clean(&info.label));
    }

    pub fn write_result(&self, result: &WriteResult) {
        if self.json {
            print_json(&serde_json::to_value(result).unwrap_or(Value::Null));
            return;
        }
        let guild = result.guild_id;
        let v = result.version;
        let hash = result
            .entry_hash
            .as_deref()
            .map(|h| format!(" (entry {})", &h[..h.len().min(12)]))
            .unwrap_or_default();
        let verb = match result.outcome {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Reverted => "reverted",
            Outcome::Deleted => "deleted",
            Outcome::Unchanged => "unchanged",
            Outcome::Recorded => "recorded",
        };
        if result.dry_run {
            println!("dry run, nothing written: guild {guild} would be {verb} at version {v}");
            for change in result.changes.as_deref().unwrap_or_default() {
                println!("  {}", change_line(change));
            }
        } else if result.outcome == Outcome::Recorded {
            let replay = if result.replayed { " [replayed]" } else { "" };
            println!("recorded an event for guild {guild}: config version {v}{hash}{replay}");
        } else if result.outcome == Outcome::Unchanged {
            println!("unchanged: guild {guild} stays at version {v}");
        } else {
            let replay = if result.replayed { " [replayed]" } else { "" };
            println!("{verb} guild {guild}: version {v}{hash}{replay}");
        }
    }

    pub fn show(
        &self,
        shown: &Shown,
        document: Value,
        path: Option<&FieldPath>,
    ) -> Result<(), Error> {
        let (document, pointer) = match path {
            Some(p) => (guildconf::value_at(&document, p)?, Some(p.to_string())),
            None => (document, None),
        };
        if self.json {
            let mut out =
                json!({"guild_id": shown.guild_id, "version": shown.version, "document": document});
            if let (Some(p), Value::Object(map)) = (pointer, &mut out) {
                map.insert("path".into(), Value::String(p));
            }
            print_json(&out);
        } else {
            println!("# guild {} version {}", shown.guild_id, shown.version);
            println!(
                "{}",
                serde_json::to_string_pretty(&document).unwrap_or_default()
            );
        }
        Ok(())
    }

    pub fn list(&self, guilds: &[GuildSummary]) {
        if self.json {
            let rows: Vec<Value> = guilds
                .iter()
                .map(|g| {
                    json!({"guild_id": g.guild_id, "version": g.version, "deleted": g.deleted,
                           "updated_at": g.updated_at, "actor": g.actor})
                })
                .collect();
            print_json(&json!({ "guilds": rows }));
            return;
        }
        if guilds.is_empty() {
            println!("no guilds yet");
            return;
        }
        let rows: Vec<Vec<String>> = guilds
            .iter()
            .map(|g| {
                vec![
                    g.guild_id.to_string(),
                    if g.deleted {
                        format!("{} (deleted)", g.version)
                    } else {
                        g.version.to_string()
                    },
                    g.updated_at.to_string(),
                    clean(&format!("{} ({})", g.actor.label, g.actor.kind)),
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["GUILD", "VERSION", "UPDATED AT", "BY"], &rows)
        );
    }

    pub fn history(&self, page: &HistoryPage) -> Result<(), Error> {
        if self.json {
            let entries = page
                .entries
                .iter()
                .map(|e| e.to_json())
                .collect::<Result<Vec<_>, _>>()
                .map_err(Error::Corrupt)?;
            print_json(&json!({"entries": entries, "next_cursor": page.next_cursor}));
            return Ok(());
        }
        if page.entries.is_empty() {
            println!("no entries");
            return Ok(());
        }
        let rows: Vec<Vec<String>> = page
            .entries
            .iter()
            .map(|e| {
                let b = &e.body;
                let mut summary = clean(&b.summary);
                if let Some(reason) = &b.reason {
                    summary.push_str(&format!(" — {}", clean(reason)));
                }
                vec![
                    b.guild_id.to_string(),
                    b.seq.to_string(),
                    b.config_version.to_string(),
                    b.occurred_at.to_string(),
                    b.operation.to_string(),
                    summary,
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["GUILD", "SEQ", "VERSION", "WHEN", "OP", "SUMMARY"], &rows)
        );
        if let Some(cursor) = &page.next_cursor {
            println!("more: --cursor {cursor}");
        }
        Ok(())
    }

    pub fn diff(&self, guild: GuildId, from: u64, to: u64, changes: &[Change]) {
        if self.json {
            print_json(&json!({"guild_id": guild, "from": from, "to": to, "changes": changes}));
            return;
        }
        println!(
            "guild {guild}: version {from} → {to}, {} change(s)",
            changes.len()
        );
        for change in changes {
            println!("  {}", clean(&change_line(change)));
        }
    }

    pub fn verify(&self, report: &VerifyReport) {
        if self.json {
            print_json(&serde_json::to_value(report).unwrap_or(Value::Null));
            return;
        }
        for n in &report.notices {
            println!("note: {}", problem_line(n));
        }
        if report.ok {
            println!(
                "ok: {} entries in {} guild(s) verified",
                report.entries_checked, report.guilds_checked
            );
            return;
        }
        // Checkpoint problems can name a guild twice (chain and checkpoint).
        let failing: std::collections::BTreeSet<_> =
            report.problems.iter().map(|p| p.guild_id).collect();
        println!(
            "FAILED: {} of {} guild(s) do not verify",
            failing.len(),
            report.guilds_checked.max(failing.len() as u64)
        );
        for p in &report.problems {
            println!("  {}", problem_line(p));
        }
    }

    pub fn imported(&self, report: &guildconf::ImportReport) {
        if self.json {
            print_json(&serde_json::to_value(report).unwrap_or(Value::Null));
        } else {
            println!(
                "imported {} entries of {} guild(s); every chain verifies",
                report.entries, report.guilds
            );
        }
    }

    /// What `keygen` wrote: the fingerprint on stdout (alone, for people;
    /// with both paths, as JSON).
    pub fn keygen(&self, private: &Path, public: &Path, fingerprint: &str) {
        if self.json {
            print_json(&serde_json::json!({
                "private_key": private.display().to_string(),
                "public_key": public.display().to_string(),
                "fingerprint": fingerprint,
            }));
            return;
        }
        eprintln!(
            "wrote the private key to {} (keep it secret) and the public key to {}",
            private.display(),
            public.display()
        );
        println!("{fingerprint}");
    }

    pub fn exported(&self, count: u64, path: &Path) {
        if !self.json {
            eprintln!("exported {count} entries to {}", path.display());
        }
    }
}
