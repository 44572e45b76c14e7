//! Per-request cost of each integrity layer on the embedded default (SQLite, no Redis),
//! with Redis for reference: the full app router driven in process (no sockets), a
//! trivial route, each layer exercised vs. the same request skipping it. Serial (one task)
//! and 32 tasks at a time; interleaved rounds after a warm-up.
//!
//! `cargo run --release -p keel-bench --bin integrity [-- --iterations N] [--rounds R]
//! [--warmup W] [--no-redis] [--redis-url URL] [--only headers,rate,signature,idempotency]`
#![allow(clippy::print_stdout)]

mod harness;
mod sections;
mod setup;

use axum::http::{Method, StatusCode};
use harness::{Plan, Variant};
use sections::{api_limits, body_of, ping, service_bearer, service_signed};

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn number(name: &str, default: usize) -> anyhow::Result<usize> {
    match arg(name) {
        Some(n) => n
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}: expected a whole number, got {n}")),
        None => Ok(default),
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plan = Plan {
        iterations: number("--iterations", 20_000)?,
        rounds: number("--rounds", 10)?,
        warmup: number("--warmup", 2_000)?,
    };
    let redis_url = match std::env::args().any(|a| a == "--no-redis") {
        true => None,
        false => Some(arg("--redis-url").unwrap_or_else(|| {
            std::env::var("KEEL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
        })),
    };
    let only = arg("--only").unwrap_or_else(|| "headers,rate,signature,idempotency".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "integrity layers: {} measured requests per variant and mode ({} rounds, {} warm-up), \
         c=1 and c={}; {cores} cores; load average at start {}",
        plan.iterations,
        plan.rounds,
        plan.warmup,
        harness::CONCURRENCY,
        load()
    );
    let mut table = vec![harness::table_header()];
    for section in only.split(',').map(str::trim) {
        let rows = match section {
            "headers" => headers(plan).await?,
            "rate" => rate_limits(plan, redis_url.as_deref()).await?,
            "signature" => signature(plan, redis_url.as_deref()).await?,
            "idempotency" => idempotency(plan).await?,
            other => anyhow::bail!("--only: unknown section {other}"),
        };
        println!("{rows}");
        table.push(rows);
    }
    println!("\nload average at end {}\n", load());
    println!("{}", table.join("\n"));
    Ok(())
}

/// Runs `variants` and returns their table rows.
async fn measure(section: &str, mut variants: Vec<Variant>, plan: Plan) -> anyhow::Result<String> {
    println!(
        "measuring {section}: {}",
        variants
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    harness::run(&mut variants, plan).await?;
    Ok(harness::rows(section, &variants))
}

/// A Redis node, or `None` (with a note) when Redis is not configured or not reachable.
async fn redis_node(limits: &str, url: Option<&str>) -> Option<setup::Node> {
    let url = url?;
    match setup::node(limits, Some(url)).await {
        Ok(node) => Some(node),
        Err(e) => {
            println!("Redis at {url} not usable ({e}); Redis variants skipped");
            None
        }
    }
}

async fn headers(plan: Plan) -> anyhow::Result<String> {
    let node = setup::node("", None).await?;
    measure("headers + CORS", sections::headers(&node), plan).await
}

/// Rate limits: a request counted against 0 to 4 limits of its class, in process and in
/// Redis. With an access token (verified once, then cached) `ip`, `user` and `tenant`
/// apply; the `key` scope needs an API key, whose authentication reads the user row on
/// every request, so the 4-limit figures get their own section with an API key baseline.
async fn rate_limits(plan: Plan, redis: Option<&str>) -> anyhow::Result<String> {
    let token: [(&[&str], bool); 5] = [
        (&["user"], false),
        (&["user", "tenant"], false),
        (&["ip", "user", "tenant"], false),
        (&["user"], true),
        (&["ip", "user", "tenant"], true),
    ];
    let token_rows = limit_section("rate limit, access token", &token, plan, redis, |n| {
        n.access.clone()
    })
    .await?;
    let all: [(&[&str], bool); 2] = [
        (&["ip", "key", "user", "tenant"], false),
        (&["ip", "key", "user", "tenant"], true),
    ];
    let key_rows = limit_section("rate limit, API key", &all, plan, redis, |n| {
        n.api_key.clone()
    })
    .await?;
    let alone = measure(
        "rate limit, limiter alone",
        sections::limiter_alone()?,
        plan,
    )
    .await?;
    Ok(format!("{token_rows}\n{key_rows}\n{alone}"))
}

/// One section: a node without limits, then a node per `(scopes, in Redis)`, all called
/// with `credential`.
async fn limit_section(
    section: &str,
    sets: &[(&[&str], bool)],
    plan: Plan,
    redis: Option<&str>,
    credential: impl Fn(&setup::Node) -> String,
) -> anyhow::Result<String> {
    let none = setup::node("", None).await?;
    let mut nodes = Vec::new();
    for &(scopes, in_redis) in sets {
        let limits = api_limits(scopes);
        let node = match in_redis {
            false => Some(setup::node(&limits, None).await?),
            true => redis_node(&limits, redis).await,
        };
        if let Some(node) = node {
            nodes.push((scopes, in_redis, node));
        }
    }
    let mut variants = vec![ping(
        "no limit on the class",
        &none,
        &credential(&none),
        None,
    )];
    for (scopes, in_redis, node) in &nodes {
        let name = format!(
            "{} limit{} ({}), {}",
            scopes.len(),
            if scopes.len() == 1 { "" } else { "s" },
            scopes.join(", "),
            if *in_redis { "Redis" } else { "in process" }
        );
        let cred = credential(node);
        variants.push(ping(&name, node, &cred, Some("ratelimit-limit")));
    }
    let rows = measure(section, variants, plan).await?;
    for (scopes, in_redis, node) in &nodes {
        if *in_redis {
            // Counters expire once their limit is fully rested (1 s here): touch them first.
            let req = setup::request(Method::GET, setup::PING, Some(&credential(node)));
            harness::call(node.router.clone(), req, StatusCode::OK, None).await?;
            let counters = redis_counters(node).await?;
            println!(
                "Redis counters of the node with {} limits: {counters} (expected {})",
                scopes.len(),
                scopes.len()
            );
        }
    }
    Ok(rows)
}

/// Counts (and deletes) the rate-limit counters under a node's own Redis prefix: one per
/// limit proves every limit was applied.
async fn redis_counters(node: &setup::Node) -> anyhow::Result<usize> {
    let Some(conn) = node.state.redis() else {
        return Ok(0);
    };
    let mut conn = conn.clone();
    let pattern = format!("{}*", node.state.settings().redis_prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }
    Ok(keys.len())
}

/// Signature: a bearer service call vs. the same call signed with HMAC v2 (nonce in process,
/// or in Redis), with a small and a 16 KiB body.
async fn signature(plan: Plan, redis: Option<&str>) -> anyhow::Result<String> {
    let node = setup::node("", None).await?;
    let remote = redis_node("", redis).await;
    let mut rows = Vec::new();
    for (label, size) in [("100 B body", 100), ("16 KiB body", 16 * 1024)] {
        let body = body_of(size);
        let mut variants = vec![
            service_bearer("bearer service key", &node, body.clone()),
            service_signed("HMAC v2, nonce in process", &node, body.clone()),
        ];
        if let Some(remote) = &remote {
            variants.push(service_signed("HMAC v2, nonce in Redis", remote, body));
        }
        rows.push(measure(&format!("signature, {label}"), variants, plan).await?);
    }
    Ok(rows.join("\n"))
}

async fn idempotency(plan: Plan) -> anyhow::Result<String> {
    let node = setup::node("", None).await?;
    let variants = sections::idempotency(&node).await?;
    measure("idempotency (SQLite)", variants, plan).await
}
