//! `keel serve` with no configuration at all: default ports, embedded SQLite, demo manifest.
use super::*;

#[test]
fn serve_with_no_configuration_answers_healthz_on_the_default_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = keel()
        .current_dir(dir.path())
        .arg("serve")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let res = loop {
        match reqwest::blocking::get("http://127.0.0.1:8080/healthz") {
            Ok(r) => break r,
            Err(_) if started.elapsed() < Duration::from_secs(15) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => {
                let _ = child.kill();
                panic!("no answer on :8080: {e}");
            }
        }
    };
    assert_eq!(res.status(), 200);
    let ready = reqwest::blocking::get("http://127.0.0.1:8080/readyz").unwrap();
    let body: serde_json::Value = ready.json().unwrap();
    assert_eq!(body["backend"], "sqlite");
    let metrics = reqwest::blocking::get("http://127.0.0.1:9090/metrics")
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("keel_http_requests_total"));
    assert!(dir.path().join("keel-data/keel.db").is_file());
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
