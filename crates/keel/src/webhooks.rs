//! `keel webhooks list|replay`: inspect the inbound webhook inbox and re-run an event
//! (after linking its user or fixing the manifest, for a dead letter).

use std::process::ExitCode;

use keel_core::ids::InboxEventId;
use keel_store::{InboxEvent, InboxStatus, StoreError};

use crate::cli::GlobalArgs;
use crate::commands::{connect_store, EXIT_CONFIG, EXIT_RUNTIME};

fn line(e: &InboxEvent) -> String {
    format!(
        "{} {} {} attempts={} type={} provider_event_id={} received_at={} user={} outcome={} error={}",
        e.id,
        e.provider,
        e.status.as_str(),
        e.attempts,
        e.event_type,
        e.provider_event_id,
        e.received_at.to_rfc3339(),
        e.user_id.map_or_else(|| "-".to_string(), |u| u.to_string()),
        e.outcome.as_deref().unwrap_or("-"),
        e.last_error.as_deref().unwrap_or("-"),
    )
}

/// `keel webhooks list [--status S] [--provider P] [--limit N]`, newest first.
#[allow(clippy::print_stdout)] // the listing is this command's output
pub fn list(
    global: &GlobalArgs,
    status: Option<&str>,
    provider: Option<&str>,
    limit: i64,
) -> ExitCode {
    let status = match status.map(|s| (s, InboxStatus::parse(s))) {
        None => None,
        Some((_, Some(s))) => Some(s),
        Some((s, None)) => {
            eprintln!("keel: unknown status {s:?}: expected pending, applied, failed or dead");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if provider.is_some_and(|p| !keel_core::webhooks::PROVIDERS.contains(&p)) {
        eprintln!("keel: unknown provider: expected stripe, appstore, googleplay or lemonsqueezy");
        return ExitCode::from(EXIT_CONFIG);
    }
    connect_store(global, |store| async move {
        match store
            .list_inbox_events(status, provider, limit.clamp(1, 1000))
            .await
        {
            Ok(events) => {
                for e in &events {
                    println!("{}", line(e));
                }
                eprintln!("keel: {} event(s)", events.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keel: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}

/// `keel webhooks replay <id>`: makes the event due again with its attempts reset; a
/// running server's worker applies it (an applied event whose subscription has moved on
/// changes nothing).
#[allow(clippy::print_stdout)]
pub fn replay(global: &GlobalArgs, id: &str) -> ExitCode {
    let Ok(id) = id.parse::<InboxEventId>() else {
        eprintln!("keel: invalid webhook event id {id:?}: expected whk_ followed by 32 hex digits");
        return ExitCode::from(EXIT_CONFIG);
    };
    connect_store(global, |store| async move {
        match store.replay_inbox_event(id, chrono::Utc::now()).await {
            Ok(e) => {
                println!("{}", line(&e));
                eprintln!("keel: {id} is due again; a running server applies it");
                ExitCode::SUCCESS
            }
            Err(StoreError::NotFound) => {
                eprintln!("keel: no webhook event {id}");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(e) => {
                eprintln!("keel: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}
