//! The `keel` command line: `serve`, `migrate`, `check`.

pub mod cli;
mod commands;
mod operator;
