//! `keel sign`: the documented vectors, secrets from the environment or a file, the curl
//! form, and a signed call accepted by a running server.
use super::*;

fn vector(name_starts: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/signing-vectors.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str().unwrap().starts_with(name_starts))
        .unwrap()
        .clone()
}

fn sign_vector(v: &serde_json::Value, target_flag: &str, target: &str) -> Output {
    keel()
        .args(["sign", "--key-id", v["key_id"].as_str().unwrap()])
        .args(["--secret-env", "WORKER_SECRET"])
        .env("WORKER_SECRET", v["secret"].as_str().unwrap())
        .args(["--method", &v["method"].as_str().unwrap().to_lowercase()])
        .args([target_flag, target])
        .args(["--body", v["body"].as_str().unwrap()])
        .args(["--timestamp", v["timestamp"].as_str().unwrap()])
        .args(["--nonce", v["nonce"].as_str().unwrap()])
        .output()
        .unwrap()
}

fn expected_lines(v: &serde_json::Value) -> String {
    format!(
        "x-keel-key-id: {}\nx-keel-timestamp: {}\nx-keel-nonce: {}\nx-keel-signature: {}\n",
        v["key_id"].as_str().unwrap(),
        v["timestamp"].as_str().unwrap(),
        v["nonce"].as_str().unwrap(),
        v["signature"].as_str().unwrap()
    )
}

#[test]
fn sign_prints_the_headers_of_the_documented_vectors() {
    let v = vector("post with a JSON body");
    let out = sign_vector(&v, "--path", v["path"].as_str().unwrap());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected_lines(&v));
    // A full URL with a query and a fragment: only the path and query are signed.
    let v = vector("query with repeated keys");
    let url = format!(
        "http://127.0.0.1:1{}?{}#ignored",
        v["path"].as_str().unwrap(),
        v["query"].as_str().unwrap()
    );
    let out = sign_vector(&v, "--url", &url);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected_lines(&v));
    assert!(!text(&out.stdout).contains(v["secret"].as_str().unwrap()));
}

#[test]
fn sign_reads_the_secret_and_body_from_files_and_prints_a_curl_command() {
    let v = vector("unicode");
    let dir = tempfile::tempdir().unwrap();
    let (secret, body) = (dir.path().join("secret"), dir.path().join("body.json"));
    std::fs::write(&secret, format!("{}\n", v["secret"].as_str().unwrap())).unwrap();
    std::fs::write(&body, v["body"].as_str().unwrap()).unwrap();
    let url = format!(
        "http://127.0.0.1:8080{}?{}",
        v["path"].as_str().unwrap(),
        v["query"].as_str().unwrap()
    );
    let out = keel()
        .args([
            "sign",
            "--key-id",
            "worker@k2",
            "--method",
            "POST",
            "--url",
            &url,
            "--curl",
        ])
        .arg("--secret-file")
        .arg(&secret)
        .arg("--body-file")
        .arg(&body)
        .args(["--timestamp", v["timestamp"].as_str().unwrap()])
        .args(["--nonce", v["nonce"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cmd = text(&out.stdout);
    assert!(
        cmd.starts_with(&format!("curl --path-as-is --globoff -X POST '{url}'")),
        "{cmd}"
    );
    let sig = format!(
        "-H 'x-keel-signature: {}'",
        v["signature"].as_str().unwrap()
    );
    assert!(cmd.contains(&sig), "{cmd}");
    assert!(
        cmd.contains(&format!("--data-binary '@{}'", body.display())),
        "{cmd}"
    );
}

#[test]
fn sign_refuses_a_missing_or_short_secret_and_has_no_plain_secret_flag() {
    let base = ["sign", "--key-id", "worker", "--path", "/v1/service/usage"];
    let out = keel()
        .args(base)
        .args(["--secret-env", "NOT_SET_7c1e"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("NOT_SET_7c1e"),
        "{}",
        text(&out.stderr)
    );
    let out = keel()
        .args(base)
        .args(["--secret-env", "SHORT"])
        .env("SHORT", "too-short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("at least 32 bytes"));
    assert!(!text(&out.stderr).contains("too-short"));
    let out = keel()
        .args(base)
        .args(["--secret", "x".repeat(40).as_str()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown flag");
}

#[test]
fn a_call_signed_by_keel_sign_is_accepted_by_keel_serve() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "cli-end-to-end-secret-0123456789abcdef";
    let keys = format!("worker:{secret}");
    let (mut child, port, _stderr) = spawn_serve_with(dir.path(), &[("KEEL_SERVICE_KEYS", &keys)]);
    let url = format!(
        "http://127.0.0.1:{port}/v1/service/users/usr_00000000000000000000000000000000/entitlements"
    );
    let out = keel()
        .args([
            "sign",
            "--key-id",
            "worker",
            "--secret-env",
            "S",
            "--url",
            &url,
        ])
        .env("S", secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let client = reqwest::blocking::Client::new();
    let mut req = client.get(&url);
    for line in text(&out.stdout).lines() {
        let (name, value) = line.split_once(": ").unwrap();
        req = req.header(name, value);
    }
    let res = req.send().unwrap();
    let status = res.status().as_u16();
    let body: serde_json::Value = res.json().unwrap();
    let unsigned = client.get(&url).send().unwrap().status().as_u16();
    let _ = child.kill();
    let _ = child.wait();
    // Authenticated, then the (made-up) user is not found.
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_user"))
    );
    assert_eq!(unsigned, 401);
}
