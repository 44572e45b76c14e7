//! Opt-in OTLP trace export reaches a collector.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use super::*;

/// A minimal OTLP/HTTP collector: records the request line and content type of each POST.
fn collector() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0;
            // Read the head; the body does not matter.
            while got < buf.len() {
                match stream.read(&mut buf[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
                if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..got]).to_lowercase();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(head);
        }
    });
    (port, rx)
}

#[test]
fn traces_are_exported_over_otlp_when_an_endpoint_is_set() {
    let (collector_port, received) = collector();
    let dir = tempfile::tempdir().unwrap();
    let mut child = keel()
        .current_dir(dir.path())
        .arg("serve")
        .env("KEEL_ADDR", "127.0.0.1:0")
        .env("KEEL_METRICS_ADDR", "127.0.0.1:0")
        .env(
            "KEEL_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{collector_port}/v1/traces"),
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let port = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "server exited");
        if line.contains("keel serving") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["port"].as_u64().unwrap();
        }
    };
    for _ in 0..3 {
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")).unwrap();
    }
    // Shutdown flushes the batch of spans.
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let head = received
        .recv_timeout(Duration::from_secs(10))
        .expect("a trace export");
    assert!(head.starts_with("post /v1/traces"), "{head}");
    assert!(
        head.contains("content-type: application/x-protobuf"),
        "{head}"
    );
}
