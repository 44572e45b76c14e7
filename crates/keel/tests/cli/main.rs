//! The binary, run as a process: exit codes, messages, signals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn keel() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KEEL_")) {
        cmd.env_remove(k);
    }
    cmd.env("KEEL_LOG_FORMAT", "json");
    cmd
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_with_deadline(mut cmd: Command, deadline: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), started.elapsed());
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!(
                "still running after {deadline:?}: {:?}",
                child.wait_with_output()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = keel().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("keel {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_example_manifest_passes_check() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = keel().arg("check").arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
            assert!(text(&out.stdout).contains("ok"));
            seen += 1;
        }
    }
    assert!(seen >= 6, "demo + five seed manifests, saw {seen}");
}

#[test]
fn check_reports_every_error_with_its_location_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let demo = std::fs::read_to_string(examples().join("demo.toml")).unwrap();
    let bad =
        format!("{demo}\n[meters.broken]\nunit = \"x\"\naggregation = \"avg\"\nbogus_key = 1\n");
    std::fs::write(&path, bad).unwrap();
    let out = keel().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let prefix = format!("{}:", path.display());
    let located: Vec<&str> = err.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert!(!located.is_empty(), "{err}");
    assert!(err.contains("meters.broken"), "{err}");
}

#[test]
fn serve_with_a_bad_setting_exits_2_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = keel();
    cmd.current_dir(dir.path())
        .arg("serve")
        .env("KEEL_ADDR", "localhost:eighty");
    let (out, _) = run_with_deadline(cmd, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("KEEL_ADDR") && err.contains("localhost:eighty") && err.contains("expected")
    );
}

#[test]
fn serve_with_an_invalid_manifest_exits_2_printing_all_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.toml");
    std::fs::write(&path, "[product]\nname = 5\n[nonsense]\nx = 1\n").unwrap();
    let mut cmd = keel();
    cmd.current_dir(dir.path()).arg("serve");
    let (out, _) = run_with_deadline(cmd, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.lines().filter(|l| l.contains("keel.toml:")).count() >= 2,
        "{err}"
    );
}

#[test]
fn an_unreachable_postgres_exits_1_within_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = keel();
    cmd.current_dir(dir.path())
        .arg("serve")
        .env("KEEL_ADDR", "127.0.0.1:0")
        .env("KEEL_METRICS_ADDR", "127.0.0.1:0")
        .env("KEEL_CONNECT_TIMEOUT", "2s")
        .env(
            "KEEL_DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/keel",
        );
    let (out, took) = run_with_deadline(cmd, Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

fn spawn_serve(cwd: &Path) -> (Child, u16, BufReader<std::process::ChildStderr>) {
    spawn_serve_with(cwd, &[])
}

#[allow(clippy::zombie_processes)] // the caller waits for the child
fn spawn_serve_with(
    cwd: &Path,
    env: &[(&str, &str)],
) -> (Child, u16, BufReader<std::process::ChildStderr>) {
    let mut child = keel()
        .current_dir(cwd)
        .arg("serve")
        .env("KEEL_ADDR", "127.0.0.1:0")
        .env("KEEL_METRICS_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited before serving"
        );
        if line.contains("keel serving") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            return (child, v["port"].as_u64().unwrap() as u16, stderr);
        }
    }
}

#[test]
fn sigterm_stops_the_server_cleanly_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, mut stderr) = spawn_serve(dir.path());
    let health = reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")).unwrap();
    assert_eq!(health.status(), 200);
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("\"stopped\""), "{rest}");
}

#[test]
fn migrate_brings_the_embedded_database_to_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = keel()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("schema at version"));
    assert!(dir.path().join("keel-data/keel.db").is_file());
}

mod data_dir;
mod defaults;
mod operator;
mod otlp;
mod sign;
mod webhooks;
