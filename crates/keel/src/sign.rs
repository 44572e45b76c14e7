//! `keel sign`: the four signature headers of a service call (docs/signing.md), or a curl
//! command that sends it. The secret is read from an environment variable or a file, never
//! from a flag, so it stays out of shell history and process listings.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args};
use keel_core::integrity::keys::valid_key_id;
use keel_core::integrity::signing::{check_nonce, parse_timestamp};
use keel_core::integrity::{
    new_nonce, sign_v2, split_target, CanonicalRequest, KEY_ID_HEADER, NONCE_HEADER,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

use crate::commands::EXIT_CONFIG;

/// `keel sign …`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("secret").required(true).args(["secret_env", "secret_file"])))]
#[command(group(ArgGroup::new("target").required(true).args(["url", "path"])))]
pub struct SignArgs {
    /// The key id: a service (`worker`) or one of its keys (`worker@k2`).
    #[arg(long)]
    pub key_id: String,
    /// Read the secret from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub secret_env: Option<String>,
    /// Read the secret from this file (one trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// The HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// The full URL, e.g. http://127.0.0.1:8080/v1/service/usage?x=1 (needed for --curl).
    #[arg(long)]
    pub url: Option<String>,
    /// The path and query as sent, e.g. /v1/service/users/usr_…/usage?group_by=day.
    #[arg(long)]
    pub path: Option<String>,
    /// The body, as text.
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the body from this file, byte for byte.
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,
    /// Unix seconds (default: now), for reproducible output.
    #[arg(long)]
    pub timestamp: Option<String>,
    /// The nonce (default: 32 random characters), for reproducible output.
    #[arg(long)]
    pub nonce: Option<String>,
    /// Print a ready curl command instead of the headers.
    #[arg(long)]
    pub curl: bool,
}

/// Runs `keel sign`: exit 0 with the output on stdout, or 2 with one line on stderr.
#[allow(clippy::print_stdout)] // the headers or the curl command are this command's output
pub fn sign(args: &SignArgs) -> ExitCode {
    match render(args) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("keel sign: {why}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn render(args: &SignArgs) -> Result<String, String> {
    if !valid_key_id(&args.key_id) {
        return Err("--key-id: a service id, or service@key, of a-z, 0-9, _ or -".into());
    }
    let secret = read_secret(args)?;
    let body = match (&args.body, &args.body_file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => {
            std::fs::read(path).map_err(|e| format!("--body-file {}: {e}", path.display()))?
        }
        (None, None) => Vec::new(),
    };
    let timestamp = match &args.timestamp {
        Some(t) => parse_timestamp(t)
            .map(|_| t.clone())
            .map_err(|e| format!("--timestamp: {e}"))?,
        None => unix_now().to_string(),
    };
    let nonce = match &args.nonce {
        Some(n) => check_nonce(n)
            .map(|()| n.clone())
            .map_err(|e| format!("--nonce: {e}"))?,
        None => new_nonce(),
    };
    let target = args.url.as_deref().or(args.path.as_deref()).unwrap_or("/");
    let (path, query) = split_target(target);
    let method = args.method.to_ascii_uppercase();
    let signature = sign_v2(
        &secret,
        &CanonicalRequest {
            method: &method,
            path,
            query,
            body: &body,
            nonce: &nonce,
            timestamp: &timestamp,
        },
    );
    let headers = [
        (KEY_ID_HEADER, args.key_id.as_str()),
        (TIMESTAMP_HEADER, timestamp.as_str()),
        (NONCE_HEADER, nonce.as_str()),
        (SIGNATURE_HEADER, signature.as_str()),
    ];
    if !args.curl {
        let lines: Vec<String> = headers.iter().map(|(h, v)| format!("{h}: {v}")).collect();
        return Ok(lines.join("\n"));
    }
    let url = args.url.as_deref().ok_or("--curl needs --url")?;
    // --path-as-is and --globoff make curl send the path exactly as it was signed.
    let mut cmd = format!("curl --path-as-is --globoff -X {method} {}", quote(url));
    for (h, v) in headers {
        cmd.push_str(&format!(" -H {}", quote(&format!("{h}: {v}"))));
    }
    match (&args.body, &args.body_file) {
        (Some(text), _) => cmd.push_str(&format!(
            " -H 'content-type: application/json' --data-binary {}",
            quote(text)
        )),
        (None, Some(path)) => cmd.push_str(&format!(
            " -H 'content-type: application/json' --data-binary {}",
            quote(&format!("@{}", path.display()))
        )),
        (None, None) => {}
    }
    Ok(cmd)
}

fn read_secret(args: &SignArgs) -> Result<Vec<u8>, String> {
    let secret = match (&args.secret_env, &args.secret_file) {
        (Some(var), _) => std::env::var(var)
            .map_err(|_| format!("--secret-env: the environment variable {var} is not set"))?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--secret-file {}: {e}", path.display()))?;
            let line = text.strip_suffix('\n').unwrap_or(&text);
            line.strip_suffix('\r').unwrap_or(line).to_string()
        }
        (None, None) => return Err("--secret-env VAR or --secret-file PATH is required".into()),
    };
    if secret.len() < 32 {
        return Err("the secret must be at least 32 bytes".into());
    }
    Ok(secret.into_bytes())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Single-quotes for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
