//! One SSE subscriber: a streaming GET that parses `data:` lines, measures each event's
//! latency from the `sent_us` its data carries, and counts deliveries and duplicates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

/// Microseconds since the epoch (sender and subscribers share the machine's clock).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What all subscribers saw.
pub struct Tally {
    connected: AtomicU64,
    failed: AtomicU64,
    duplicates: AtomicU64,
    received: Vec<AtomicU64>,
    latencies: Mutex<Vec<Duration>>,
}

impl Tally {
    pub fn new(subscribers: usize) -> Self {
        Self {
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            received: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            latencies: Mutex::new(Vec::new()),
        }
    }
    pub fn connected(&self) -> u64 {
        self.connected.load(Ordering::Relaxed)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
    pub fn received(&self, sub: usize) -> u64 {
        self.received
            .get(sub)
            .map_or(0, |r| r.load(Ordering::Relaxed))
    }
    pub fn latencies(&self) -> Vec<Duration> {
        self.latencies.lock().map(|l| l.clone()).unwrap_or_default()
    }
    fn record(&self, latency: Duration) {
        if let Ok(mut l) = self.latencies.lock() {
            l.push(latency);
        }
    }
}

/// Subscribes from the start of the job's log (the `state_change` to the initial state is
/// not counted: only events carrying `sent_us`).
pub fn spawn(
    client: reqwest::Client,
    url: String,
    token: String,
    sub: usize,
    tally: std::sync::Arc<Tally>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let res = client
            .get(&url)
            .bearer_auth(&token)
            .header("accept", "text/event-stream")
            .send()
            .await;
        let res = match res {
            Ok(r) if r.status().is_success() => r,
            _ => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        tally.connected.fetch_add(1, Ordering::Relaxed);
        let mut body = res.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut last_seq = 0i64;
        let mut seq = 0i64;
        while let Some(Ok(chunk)) = body.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line);
                if let Some(id) = line.strip_prefix("id:") {
                    seq = id.trim().parse().unwrap_or(0);
                } else if let Some(data) = line.strip_prefix("data:") {
                    let Some(at) = data.find("\"sent_us\":") else {
                        continue;
                    };
                    let digits: String = data[at + 10..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    let Ok(sent) = digits.parse::<u64>() else {
                        continue;
                    };
                    tally.record(Duration::from_micros(now_us().saturating_sub(sent)));
                    if seq <= last_seq {
                        tally.duplicates.fetch_add(1, Ordering::Relaxed);
                    } else if let Some(r) = tally.received.get(sub) {
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                    last_seq = seq;
                }
            }
        }
    })
}
