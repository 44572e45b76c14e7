//! The `keel` command line: `serve`, `migrate`, `check`, operator commands and `sign`.

pub mod cli;
mod commands;
mod operator;
mod sign;
mod webhooks;
