//! The whole integration suite as one test binary: each module is one area
//! of the contract, and every database test runs on SQLite and PostgreSQL.
//! One binary links the database drivers once instead of once per file,
//! which keeps the test command's build time down.

mod cache;
mod cli;
mod contract;
mod crash;
mod events;
mod http;
mod import_copy;
mod isolation;
mod plans;
mod privileges;
mod processes;
mod retention;
mod scheduled;
mod signing;
mod tokens;
mod ui;
