//! The `keel` command line: `serve`, `migrate`, `check`, operator commands and `sign`.

pub mod cli;
mod commands;
mod jobs_cmd;
mod operator;
mod sign;
mod webhooks;
