//! Operator commands: the first admin and key rotation exist only on the command line.
use std::io::Write;

use super::*;

#[test]
fn admin_bootstrap_creates_the_first_super_admin_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = keel()
        .current_dir(dir.path())
        .args(["admin", "bootstrap", "--email", "root@ops.example.com"])
        .env("KEEL_BOOTSTRAP_PASSWORD", "granite-harbor-81")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("created SUPER_ADMIN root@ops.example.com"));
    assert!(!text(&out.stderr).contains("granite-harbor-81"));
    // A second bootstrap is refused, with the password read from stdin this time.
    let mut child = keel()
        .current_dir(dir.path())
        .args(["admin", "bootstrap", "--email", "other@ops.example.com"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"granite-harbor-82\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn admin_bootstrap_refuses_a_weak_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = keel()
        .current_dir(dir.path())
        .args(["admin", "bootstrap", "--email", "root@ops.example.com"])
        .env("KEEL_BOOTSTRAP_PASSWORD", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("at least 12"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn keys_rotate_adds_a_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = keel()
        .current_dir(dir.path())
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = keel()
        .current_dir(dir.path())
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(second.status.success());
    let kid = |o: &Output| {
        text(&o.stderr)
            .split_whitespace()
            .nth(4)
            .unwrap_or("")
            .to_string()
    };
    assert_ne!(kid(&first), kid(&second));
}

#[test]
fn ledger_verify_reports_a_consistent_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let out = keel()
        .current_dir(dir.path())
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ledger ok"));
}

#[test]
fn jobs_retention_reports_each_job_type() {
    let dir = tempfile::tempdir().unwrap();
    let out = keel()
        .current_dir(dir.path())
        .args(["jobs", "retention"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The demo manifest's `task` keeps 7 days; a fresh store has nothing to delete.
    assert!(
        text(&out.stdout).contains("task: deleted 0 event(s)"),
        "{}",
        text(&out.stdout)
    );
}
