//! The command line: flags, and the sizes of a run they pick.

use std::path::PathBuf;

use crate::R;

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub writes: usize,
    pub rounds: usize,
    pub reads_warm: usize,
    pub reads_cold: usize,
    pub guilds: u64,
    pub entries: u64,
    pub big: u64,
    pub history_iters: usize,
}

impl Sizes {
    fn full() -> Self {
        Self {
            writes: 6000,
            rounds: 5,
            reads_warm: 5_000_000,
            reads_cold: 100_000,
            guilds: 10_000,
            entries: 1_000_000,
            big: 100_000,
            history_iters: 300,
        }
    }

    fn quick() -> Self {
        Self {
            writes: 60,
            rounds: 2,
            reads_warm: 200_000,
            reads_cold: 2_000,
            guilds: 20,
            entries: 3_000,
            big: 1_500,
            history_iters: 20,
        }
    }
}

pub struct Args {
    pub quick: bool,
    pub json_out: Option<PathBuf>,
    pub pg_url: String,
    pub phase: Option<String>,
    pub url: Option<String>,
    overrides: Vec<(String, u64)>,
    /// Only these parts (`--only writes-pg,writes-sqlite,reads,history,export,signing`);
    /// empty runs everything.
    only: Vec<String>,
}

/// The parts `--only` can name.
const PARTS: [&str; 6] = [
    "writes-pg",
    "writes-sqlite",
    "reads",
    "history",
    "export",
    "signing",
];

pub fn parse_args() -> R<Args> {
    let mut args = Args {
        quick: false,
        json_out: None,
        pg_url: std::env::var("GUILDCONF_BENCH_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        phase: None,
        url: None,
        overrides: Vec::new(),
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => args.quick = true,
            "--json-out" => args.json_out = Some(PathBuf::from(value("--json-out")?)),
            "--pg-url" => args.pg_url = value("--pg-url")?,
            "--phase" => args.phase = Some(value("--phase")?),
            "--url" => args.url = Some(value("--url")?),
            "--only" => {
                for part in value("--only")?.split(',') {
                    if !PARTS.contains(&part) {
                        return Err(format!("--only: unknown part {part}"));
                    }
                    args.only.push(part.to_owned());
                }
            }
            "--writes" | "--reads-cold" | "--entries" | "--guilds" | "--big"
            | "--history-iters" => {
                let n = value(&a)?
                    .parse()
                    .map_err(|_| format!("{a} needs a number"))?;
                args.overrides.push((a.clone(), n));
            }
            "-h" | "--help" => {
                println!(
                    "guildconf-bench [--quick] [--json-out FILE] [--pg-url URL] \
                     [--writes N] [--reads-cold N] [--entries N] [--guilds N] [--big N] [--history-iters N] \
                     [--only writes-pg,writes-sqlite,reads,history,export,signing]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

impl Args {
    /// The sizes of this run: `--quick` or full, then each size flag.
    pub fn sizes(&self) -> Sizes {
        let mut sizes = if self.quick {
            Sizes::quick()
        } else {
            Sizes::full()
        };
        for (name, n) in &self.overrides {
            match name.as_str() {
                "--writes" => sizes.writes = *n as usize,
                "--reads-cold" => sizes.reads_cold = *n as usize,
                "--entries" => sizes.entries = *n,
                "--guilds" => sizes.guilds = (*n).max(1),
                "--big" => sizes.big = *n,
                _ => sizes.history_iters = (*n as usize).max(1),
            }
        }
        sizes.big = sizes.big.clamp(100, sizes.entries.max(100));
        sizes
    }

    /// Whether `--only` leaves `part` in (no `--only` runs every part).
    pub fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}
