//! Manifest errors: every problem carries its file, 1-based line and column, dotted key and message.

use std::fmt;
use std::ops::Range;

/// One problem found in a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The manifest's file name (or `<built-in demo>`).
    pub file: String,
    /// 1-based line; 0 when the file could not be read at all.
    pub line: usize,
    /// 1-based column in characters; 0 when the file could not be read at all.
    pub column: usize,
    /// Dotted path of the offending key, e.g. `plans.free.limits.tokens`; empty for syntax errors.
    pub key: String,
    /// What is wrong, on one line.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ManifestError {}

/// Every problem found in a manifest, in document order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

impl ManifestErrors {
    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no problem (never the case for a returned error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ManifestError> {
        self.0.iter()
    }
}

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path into the manifest document, e.g. `routes.chat.deployments[0].weight`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(pub(crate) Vec<Seg>);

impl Path {
    /// A path made of table keys only.
    pub(crate) fn of(keys: &[&str]) -> Path {
        Path(keys.iter().map(|k| Seg::Key((*k).to_owned())).collect())
    }

    /// This path extended by a table key.
    pub(crate) fn key(&self, key: &str) -> Path {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Path(segs)
    }

    /// Whether `prefix` is this path or one of its ancestors.
    pub(crate) fn starts_with(&self, prefix: &Path) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// This path extended by an array index.
    pub(crate) fn index(&self, index: usize) -> Path {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Path(segs)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Which part of a `key = value` pair a semantic problem points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The key itself (e.g. a limit keyed by an undefined meter).
    Key,
    /// The value (e.g. a reference to an undefined plan).
    Value,
}

/// A semantic problem found by validation, located later through the document's spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Issue {
    pub(crate) path: Path,
    pub(crate) target: Target,
    pub(crate) message: String,
}

impl Issue {
    /// A problem with the value at `path`.
    pub(crate) fn value(path: Path, message: impl Into<String>) -> Issue {
        Issue {
            path,
            target: Target::Value,
            message: message.into(),
        }
    }

    /// A problem with the key at `path`.
    pub(crate) fn key(path: Path, message: impl Into<String>) -> Issue {
        Issue {
            path,
            target: Target::Key,
            message: message.into(),
        }
    }
}

/// Turns byte offsets into 1-based line and column numbers.
pub(crate) struct Locator<'a> {
    src: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    /// Indexes the line starts of `src`.
    pub(crate) fn new(src: &'a str) -> Locator<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Locator { src, line_starts }
    }

    /// 1-based (line, column in characters) of a byte offset, clamped to the source.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self.src[start..offset].chars().count() + 1;
        (line, column)
    }

    /// Builds an error located at the start of `span`.
    pub(crate) fn error(
        &self,
        file: &str,
        span: Range<usize>,
        key: String,
        message: &str,
    ) -> ManifestError {
        let (line, column) = self.position(span.start);
        ManifestError {
            file: file.to_owned(),
            line,
            column,
            key,
            message: one_line(message),
        }
    }
}

/// Collapses a multi-line message (regex and TOML errors have several) into one line.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let loc = Locator::new("a = 1\né = \"x\"\n");
        assert_eq!(loc.position(0), (1, 1));
        assert_eq!(loc.position(4), (1, 5));
        assert_eq!(loc.position(6), (2, 1));
        // `é` is two bytes but one column.
        assert_eq!(loc.position(9), (2, 3));
        assert_eq!(loc.position(999), (3, 1));
    }

    #[test]
    fn paths_display_as_dotted_keys_with_indices() {
        let path = Path::of(&["routes", "chat"])
            .key("deployments")
            .index(2)
            .key("weight");
        assert_eq!(path.to_string(), "routes.chat.deployments[2].weight");
    }

    #[test]
    fn errors_display_file_line_column_key_message() {
        let error = ManifestError {
            file: "keel.toml".into(),
            line: 3,
            column: 7,
            key: "plans.free".into(),
            message: "bad".into(),
        };
        assert_eq!(error.to_string(), "keel.toml:3:7: plans.free: bad");
        let errors = ManifestErrors(vec![error.clone(), error]);
        assert_eq!(
            errors.to_string(),
            "keel.toml:3:7: plans.free: bad\nkeel.toml:3:7: plans.free: bad"
        );
    }
}
