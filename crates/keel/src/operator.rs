//! Operator commands that must never be reachable over HTTP: the first admin, key rotation.

use std::io::BufRead;
use std::process::ExitCode;

use keel_server::admin::service::BootstrapError;

use crate::cli::GlobalArgs;
use crate::commands::{connect_store, EXIT_CONFIG, EXIT_RUNTIME};

/// `keel admin bootstrap --email E`: creates the first SUPER_ADMIN.
pub fn admin_bootstrap(global: &GlobalArgs, email: &str) -> ExitCode {
    let password = match std::env::var("KEEL_BOOTSTRAP_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).is_err() {
                eprintln!("keel: cannot read the password from stdin");
                return ExitCode::from(EXIT_CONFIG);
            }
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    connect_store(global, |store| async move {
        match keel_server::admin::bootstrap(&store, email, &password).await {
            Ok(admin) => {
                eprintln!("keel: created SUPER_ADMIN {} ({})", admin.email, admin.id);
                ExitCode::SUCCESS
            }
            Err(e @ (BootstrapError::AlreadyBootstrapped | BootstrapError::Invalid(_))) => {
                eprintln!("keel: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(e) => {
                eprintln!("keel: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}

/// `keel keys rotate`: a new signing key; the old ones keep verifying.
pub fn rotate_keys(global: &GlobalArgs) -> ExitCode {
    connect_store(global, |store| async move {
        match keel_server::identity::keys::KeyRing::rotate(&store).await {
            Ok(kid) => {
                eprintln!("keel: new signing key {kid}; older keys now only verify");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keel: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}

/// `keel ledger verify [--repair]`.
#[allow(clippy::print_stdout)] // the report is this command's output
pub fn verify_ledger(global: &GlobalArgs, repair: bool) -> ExitCode {
    connect_store(global, |store| async move {
        match store.verify_counters(repair).await {
            Ok(mismatches) if mismatches.is_empty() => {
                println!("ledger ok: every counter matches the ledger and active reservations");
                ExitCode::SUCCESS
            }
            Ok(mismatches) => {
                for m in &mismatches {
                    println!(
                        "mismatch tenant={} user={} meter={} window={} stored(committed,reserved)={:?} expected={:?}",
                        m.tenant_id, m.user_id.as_deref().unwrap_or("(tenant)"), m.key.meter, m.key.window, m.stored, m.expected
                    );
                }
                println!(
                    "{} mismatch(es){}",
                    mismatches.len(),
                    if repair { ", repaired" } else { "" }
                );
                if repair {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(3)
                }
            }
            Err(e) => {
                eprintln!("keel: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}
