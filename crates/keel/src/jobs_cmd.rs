//! `keel jobs retention [--force]`.

use std::process::ExitCode;

use keel_store::jobs::PruneOutcome;

use crate::cli::GlobalArgs;
use crate::commands::{connect_with_manifest, EXIT_RUNTIME};

/// Runs event retention for every job type that declares it; exit 3 when a type was refused.
#[allow(clippy::print_stdout)] // the report is this command's output
pub fn retention(global: &GlobalArgs, force: bool) -> ExitCode {
    connect_with_manifest(global, |store, manifest| async move {
        match keel_server::jobs::retention::run(&store, &manifest, force).await {
            Ok(outcomes) => {
                let mut refused = false;
                for (job_type, outcome) in &outcomes {
                    match outcome {
                        PruneOutcome::Pruned { deleted } => {
                            println!("{job_type}: deleted {deleted} event(s)");
                        }
                        PruneOutcome::Refused { eligible, total } => {
                            refused = true;
                            println!(
                                "{job_type}: refused: {eligible} of {total} events are due, more \
                                 than half; run with --force to delete them"
                            );
                        }
                    }
                }
                if outcomes.is_empty() {
                    println!("no job type declares retention");
                }
                if refused {
                    ExitCode::from(3)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("keel: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}
