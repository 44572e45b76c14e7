//! `keel-sim`: run the upstream simulator as a process.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use keel_sim::{parse_duration, Faults, ModelMode, SimConfig};

/// An OpenAI- and Anthropic-compatible upstream simulator with fault injection.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089", env = "KEEL_SIM_ADDR")]
    addr: SocketAddr,
    /// Delay before every response's headers (e.g. 5ms, 1s).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    latency: Duration,
    /// Extra uniform random delay in [0, JITTER] before the headers.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    jitter: Duration,
    /// Streams: delay before the first event.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    ttft: Duration,
    /// Streams: delay between events (the token rate).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    chunk_delay: Duration,
    /// Fraction of requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Fraction of requests answered 429 with Retry-After: 1.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// Seed of the random generator (jitter, rates).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Reply length in tokens (words) by default.
    #[arg(long, default_value_t = 16)]
    reply_tokens: u32,
    /// Require this API key (Bearer or x-api-key).
    #[arg(long, env = "KEEL_SIM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Faults for one model: MODEL:NAME=VALUE[,NAME=VALUE...] (repeatable), e.g.
    /// `flaky:status=503,retry-after=2`.
    #[arg(long = "model-mode")]
    model_modes: Vec<ModelMode>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    for rate in [args.error_rate, args.rate_limit_rate] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(std::io::Error::other("rates must be between 0 and 1"));
        }
    }
    let config = SimConfig {
        addr: args.addr,
        faults: Faults {
            latency: args.latency,
            jitter: args.jitter,
            ttft: args.ttft,
            chunk_delay: args.chunk_delay,
            ..Faults::default()
        },
        error_rate: args.error_rate,
        rate_limit_rate: args.rate_limit_rate,
        seed: args.seed,
        reply_tokens: args.reply_tokens,
        api_key: args.api_key,
        model_modes: args
            .model_modes
            .into_iter()
            .map(|m| (m.model, m.faults))
            .collect(),
        ..SimConfig::default()
    };
    let handle = keel_sim::spawn(config).await?;
    eprintln!("keel-sim listening on http://{}", handle.addr());
    tokio::select! {
        _ = handle.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
