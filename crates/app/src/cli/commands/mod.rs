//! One function per command, grouped by what the commands do: each parses
//! its arguments, calls the service once and prints the outcome.

pub mod admin;
pub mod audit;
pub mod read;
pub mod serve;
pub mod tokens;
pub mod write;
