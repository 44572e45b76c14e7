//! Unusable data dirs are reported plainly. These mount small tmpfs file systems, which
//! needs root (CI runs as root).
use super::*;

struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Mount {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "mounting a tmpfs needs root (these tests run as root in CI)"
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn serve_in(data_dir: &Path) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = keel();
    cmd.current_dir(cwd.path())
        .arg("serve")
        .env("KEEL_ADDR", "127.0.0.1:0")
        .env("KEEL_METRICS_ADDR", "127.0.0.1:0")
        .env("KEEL_DATA_DIR", data_dir);
    run_with_deadline(cmd, Duration::from_secs(10)).0
}

#[test]
fn a_read_only_data_dir_is_reported_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let _m = Mount::tmpfs(dir.path(), "ro,size=1m");
    let out = serve_in(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("is not writable") && err.contains("Read-only file system"),
        "{err}"
    );
}

#[test]
fn a_full_data_dir_is_reported_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let _m = Mount::tmpfs(dir.path(), "size=64k");
    // Fill it up.
    let _ = std::fs::write(dir.path().join("filler"), vec![0u8; 1024 * 1024]);
    let out = serve_in(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("is not writable") && err.contains("No space left"),
        "{err}"
    );
}
