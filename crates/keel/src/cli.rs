//! Argument parsing and dispatch. Exit codes: 0 ok, 1 runtime failure (store unreachable,
//! port taken), 2 bad configuration or manifest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// Keel: the control plane for AI products.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every subcommand; each also reads its `KEEL_*` variable.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// API listen address [env: KEEL_ADDR] [default: 127.0.0.1:8080]
    #[arg(long, global = true)]
    pub addr: Option<String>,
    /// Metrics listen address [env: KEEL_METRICS_ADDR] [default: 127.0.0.1:9090]
    #[arg(long, global = true)]
    pub metrics_addr: Option<String>,
    /// Data directory for the embedded database [env: KEEL_DATA_DIR] [default: ./keel-data]
    #[arg(long, global = true)]
    pub data_dir: Option<String>,
    /// postgres://… to use PostgreSQL [env: KEEL_DATABASE_URL]
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// redis://… for shared limits across nodes [env: KEEL_REDIS_URL]
    #[arg(long, global = true)]
    pub redis_url: Option<String>,
    /// The product manifest [env: KEEL_MANIFEST] [default: ./keel.toml if present, else the built-in demo]
    #[arg(long, global = true)]
    pub manifest: Option<PathBuf>,
    /// Largest request body, e.g. 1MiB [env: KEEL_BODY_LIMIT]
    #[arg(long, global = true)]
    pub body_limit: Option<String>,
    /// Handler timeout, e.g. 30s [env: KEEL_REQUEST_TIMEOUT]
    #[arg(long, global = true)]
    pub request_timeout: Option<String>,
    /// Longest drain on shutdown, e.g. 30s [env: KEEL_SHUTDOWN_GRACE]
    #[arg(long, global = true)]
    pub shutdown_grace: Option<String>,
    /// Bound on reaching the database at start [env: KEEL_CONNECT_TIMEOUT]
    #[arg(long, global = true)]
    pub connect_timeout: Option<String>,
    /// auto, json or pretty [env: KEEL_LOG_FORMAT]
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    /// OTLP/HTTP traces endpoint; export is off when unset [env: KEEL_OTLP_ENDPOINT]
    #[arg(long, global = true)]
    pub otlp_endpoint: Option<String>,
    /// Access token lifetime, e.g. 15m [env: KEEL_ACCESS_TOKEN_TTL]
    #[arg(long, global = true)]
    pub access_token_ttl: Option<String>,
    /// Refresh token and session lifetime, e.g. 30d [env: KEEL_REFRESH_TOKEN_TTL]
    #[arg(long, global = true)]
    pub refresh_token_ttl: Option<String>,
    /// Grace window for concurrent refreshes, e.g. 10s [env: KEEL_REFRESH_GRACE]
    #[arg(long, global = true)]
    pub refresh_grace: Option<String>,
    /// Fewest characters in a password [env: KEEL_PASSWORD_MIN_LENGTH]
    #[arg(long, global = true)]
    pub password_min_length: Option<String>,
    /// signed_or_bearer or signed (refuse bearer service keys) [env: KEEL_SERVICE_AUTH]
    #[arg(long, global = true)]
    pub service_auth: Option<String>,
    /// Accepted clock skew of signed calls, e.g. 120s [env: KEEL_SIGNATURE_TOLERANCE]
    #[arg(long, global = true)]
    pub signature_tolerance: Option<String>,
    /// Proxies whose X-Forwarded-For is believed, IPs or CIDRs [env: KEEL_TRUSTED_PROXIES]
    #[arg(long, global = true)]
    pub trusted_proxies: Option<String>,
    /// Prefix of Keel's Redis keys [env: KEEL_REDIS_PREFIX] [default: keel:]
    #[arg(long, global = true)]
    pub redis_prefix: Option<String>,
    /// open or closed: requests when Redis cannot decide a rate limit [env: KEEL_RATE_LIMIT_FAIL_MODE] [default: open]
    #[arg(long, global = true)]
    pub rate_limit_fail_mode: Option<String>,
    /// Browser origins allowed by CORS, comma-separated [env: KEEL_CORS_ORIGINS]
    #[arg(long, global = true)]
    pub cors_origins: Option<String>,
    /// Strict-Transport-Security value, e.g. max-age=63072000 [env: KEEL_HSTS]
    #[arg(long, global = true)]
    pub hsts: Option<String>,
    /// How often expired reservations and idempotency records are swept, e.g. 5s [env: KEEL_SWEEP_INTERVAL]
    #[arg(long, global = true)]
    pub sweep_interval: Option<String>,
    /// How long Idempotency-Key responses are kept for replay, e.g. 24h [env: KEEL_IDEMPOTENCY_TTL]
    #[arg(long, global = true)]
    pub idempotency_ttl: Option<String>,
}

impl GlobalArgs {
    /// The flags that were given, keyed by their `[server]` name.
    pub fn flags(&self) -> BTreeMap<&'static str, String> {
        let pairs = [
            ("addr", &self.addr),
            ("metrics_addr", &self.metrics_addr),
            ("data_dir", &self.data_dir),
            ("database_url", &self.database_url),
            ("redis_url", &self.redis_url),
            ("body_limit", &self.body_limit),
            ("request_timeout", &self.request_timeout),
            ("shutdown_grace", &self.shutdown_grace),
            ("connect_timeout", &self.connect_timeout),
            ("log_format", &self.log_format),
            ("otlp_endpoint", &self.otlp_endpoint),
            ("access_token_ttl", &self.access_token_ttl),
            ("refresh_token_ttl", &self.refresh_token_ttl),
            ("refresh_grace", &self.refresh_grace),
            ("password_min_length", &self.password_min_length),
            ("service_auth", &self.service_auth),
            ("signature_tolerance", &self.signature_tolerance),
            ("trusted_proxies", &self.trusted_proxies),
            ("redis_prefix", &self.redis_prefix),
            ("rate_limit_fail_mode", &self.rate_limit_fail_mode),
            ("cors_origins", &self.cors_origins),
            ("hsts", &self.hsts),
            ("sweep_interval", &self.sweep_interval),
            ("idempotency_ttl", &self.idempotency_ttl),
        ];
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
            .collect()
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Apply pending migrations and report the schema version.
    Migrate,
    /// Validate a manifest and print a summary, or every error with its location.
    Check {
        /// The manifest file.
        manifest: PathBuf,
    },
    /// Operator accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Access-token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The usage ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// The inbound webhook inbox.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Sign a service call: print its x-keel-* headers, or a curl command with --curl.
    Sign(Box<crate::sign::SignArgs>),
}

/// `keel ledger …`
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute every quota counter from the ledger and active reservations; report
    /// mismatches (exit 3 when there are any), and rewrite them with `--repair`.
    Verify {
        /// Overwrite mismatched counters with the recomputed values.
        #[arg(long)]
        repair: bool,
    },
}

/// `keel webhooks …`
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List inbox events, newest first.
    List {
        /// Only events of this status: pending, applied, failed or dead.
        #[arg(long)]
        status: Option<String>,
        /// Only events of this provider: stripe, appstore, googleplay or lemonsqueezy.
        #[arg(long)]
        provider: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Make an event due again now, its attempts reset (a dead letter after its cause is fixed).
    Replay {
        /// The event id (`whk_…`).
        id: String,
    },
}

/// `keel jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Delete the events of jobs finished longer ago than their type's retention, keeping
    /// daily statistics; refuses (exit 3) to delete over half of a type's events unless forced.
    Retention {
        /// Delete even when more than half of a type's events would go.
        #[arg(long)]
        force: bool,
    },
}

/// `keel admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the first SUPER_ADMIN (refused once any admin exists). The password is read
    /// from `KEEL_BOOTSTRAP_PASSWORD`, or from the first line of stdin.
    Bootstrap {
        /// The admin's email.
        #[arg(long)]
        email: String,
    },
}

/// `keel keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key; older keys stop signing but keep verifying.
    Rotate,
}

/// Parses arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { manifest } => commands::check(&manifest),
        Command::Serve => commands::serve(&cli.global),
        Command::Migrate => commands::migrate(&cli.global),
        Command::Admin(AdminCommand::Bootstrap { email }) => {
            crate::operator::admin_bootstrap(&cli.global, &email)
        }
        Command::Keys(KeysCommand::Rotate) => crate::operator::rotate_keys(&cli.global),
        Command::Ledger(LedgerCommand::Verify { repair }) => {
            crate::operator::verify_ledger(&cli.global, repair)
        }
        Command::Webhooks(WebhooksCommand::List {
            status,
            provider,
            limit,
        }) => crate::webhooks::list(&cli.global, status.as_deref(), provider.as_deref(), limit),
        Command::Webhooks(WebhooksCommand::Replay { id }) => {
            crate::webhooks::replay(&cli.global, &id)
        }
        Command::Jobs(JobsCommand::Retention { force }) => {
            crate::jobs_cmd::retention(&cli.global, force)
        }
        Command::Sign(args) => crate::sign::sign(&args),
    }
}
