//! What the tests of this crate share: the binary and how to run it on a
//! database, and (`retention`) the retention loop's mocks.

#![allow(dead_code)] // each test binary uses its own part

pub mod retention;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// The `guildconf` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_guildconf");

/// A human actor's id.
pub const ALICE: &str = "80351110224678912";

/// Runs `guildconf --database-url URL ARGS…` and waits for it.
pub fn run_url<S: AsRef<OsStr>>(url: &str, args: &[S]) -> Output {
    Command::new(BIN)
        .args(["--database-url", url])
        .args(args)
        .output()
        .expect("the guildconf binary runs")
}

/// Runs `guildconf` on the SQLite file at `db`.
pub fn run_sqlite<S: AsRef<OsStr>>(db: &Path, args: &[S]) -> Output {
    run_url(&format!("sqlite://{}", db.display()), args)
}
