//! Provider API keys: read from the environment or a file, never logged, never returned.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// An API key. `Debug` prints `ApiKey(<redacted>)`; only adapters read it, to send it.
#[derive(Clone)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(Arc::from(key.into()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where a key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The variable named by the manifest's `api_key_env`; when it is unset, the file
    /// named by `<NAME>_FILE` (the usual convention for mounted secrets).
    Env(String),
    /// A file holding the key (surrounding whitespace ignored).
    File(PathBuf),
}

/// Why a key could not be had. Names variables and paths, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Neither the variable nor its `_FILE` companion is set.
    #[error("environment variable {0} is not set (nor {0}_FILE)")]
    Missing(String),
    /// The key file cannot be read.
    #[error("cannot read API key file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The variable or file is empty.
    #[error("the API key from {0} is empty")]
    Empty(String),
}

impl KeySource {
    /// Reads the key; `env` looks variables up (`std::env::var` in production).
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<ApiKey, KeyError> {
        match self {
            KeySource::Env(name) => {
                if let Some(value) = env(name) {
                    return non_empty(value, name);
                }
                let file = format!("{name}_FILE");
                match env(&file) {
                    Some(path) => KeySource::File(PathBuf::from(path)).resolve(env),
                    None => Err(KeyError::Missing(name.clone())),
                }
            }
            KeySource::File(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| KeyError::Unreadable {
                    path: shown.clone(),
                    reason: e.kind().to_string(),
                })?;
                non_empty(text, &shown)
            }
        }
    }
}

fn non_empty(value: String, from: &str) -> Result<ApiKey, KeyError> {
    let key = value.trim();
    if key.is_empty() {
        return Err(KeyError::Empty(from.to_owned()));
    }
    Ok(ApiKey::new(key))
}

/// Looks a variable up in the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::new("sk-very-secret");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert!(!format!("{:?}", Some(key)).contains("secret"));
    }

    #[test]
    fn keys_come_from_the_variable_or_its_file_companion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-from-file\n").unwrap();
        let path_text = path.display().to_string();
        let env = move |name: &str| match name {
            "DIRECT" => Some("sk-direct".to_owned()),
            "VIA_FILE_FILE" => Some(path_text.clone()),
            "BLANK" => Some("  ".to_owned()),
            _ => None,
        };
        let direct = KeySource::Env("DIRECT".into()).resolve(&env).unwrap();
        assert_eq!(direct.expose(), "sk-direct");
        let file = KeySource::Env("VIA_FILE".into()).resolve(&env).unwrap();
        assert_eq!(file.expose(), "sk-from-file");
        assert_eq!(
            KeySource::Env("NOPE".into()).resolve(&env).unwrap_err(),
            KeyError::Missing("NOPE".into())
        );
        assert!(matches!(
            KeySource::Env("BLANK".into()).resolve(&env),
            Err(KeyError::Empty(_))
        ));
        let missing = KeySource::File(dir.path().join("absent")).resolve(&env);
        assert!(matches!(missing, Err(KeyError::Unreadable { .. })));
    }
}
