//! Deserializes one manifest entry, recovering past each error to report the next one too.
//!
//! serde stops at the first error, so after each one the offending key is removed from a copy of
//! the entry and deserialization is retried; the entry's other fields then still get checked.

use std::ops::Range;

use serde::de::DeserializeOwned;
use serde_spanned::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::error::{Path, Seg};

/// Retries per entry before giving up (each retry removes one key, so this is never reached in practice).
const MAX_ATTEMPTS: usize = 64;

/// One deserialization problem, with its absolute span and key.
pub(crate) struct DecodeError {
    pub(crate) span: Range<usize>,
    pub(crate) key: Path,
    pub(crate) message: String,
}

/// What decoding an entry produced.
pub(crate) struct Decoded<T> {
    /// The entry, if it could be built (possibly with bad keys left out).
    pub(crate) value: Option<T>,
    /// Every problem found, in the order found.
    pub(crate) errors: Vec<DecodeError>,
    /// Keys left out to get past errors; semantic checks below them would only repeat the error.
    pub(crate) removed: Vec<Path>,
}

/// Deserializes `value` (found at `path`) as a `T`, collecting every error.
pub(crate) fn decode<T: DeserializeOwned>(path: &Path, value: &Spanned<DeValue<'_>>) -> Decoded<T> {
    let mut value = value.clone();
    let mut out = Decoded {
        value: None,
        errors: Vec::new(),
        removed: Vec::new(),
    };
    for _ in 0..MAX_ATTEMPTS {
        let deserializer = ValueDeserializer::from(value.clone());
        let error = match serde_path_to_error::deserialize::<_, T>(deserializer) {
            Ok(parsed) => {
                out.value = Some(parsed);
                return out;
            }
            Err(error) => error,
        };
        let mut at = Path(error.path().iter().filter_map(segment).collect());
        let error = error.into_inner();
        let missing = missing_field(error.message());
        let mut key = at.clone();
        if let Some(field) = missing {
            key = key.key(field);
        }
        let key = join(path, &key);
        // A required key removed earlier is now "missing": already reported, drop its table instead.
        if !out.removed.contains(&key) {
            let span = error.span().unwrap_or_else(|| value.span());
            let span = narrow(&value, &at.0, span);
            let message = error.message().to_owned();
            out.errors.push(DecodeError { span, key, message });
        }
        while matches!(at.0.last(), Some(Seg::Index(_))) {
            // Removing one array element would shift the others' indices: drop the whole array.
            at.0.pop();
        }
        if at.0.is_empty() || !remove(value.get_mut(), &at.0) {
            return out;
        }
        out.removed.push(join(path, &at));
    }
    out
}

/// Some errors (e.g. a bad array element) carry the span of an enclosing value: use the node's own.
fn narrow(root: &Spanned<DeValue<'_>>, segs: &[Seg], span: Range<usize>) -> Range<usize> {
    let mut node = root;
    for seg in segs {
        let next = match (seg, node.get_ref()) {
            (Seg::Key(key), DeValue::Table(table)) => table.get(key.as_str()),
            (Seg::Index(i), DeValue::Array(array)) => array.get(*i),
            _ => None,
        };
        let Some(next) = next else {
            return span;
        };
        node = next;
    }
    let inner = node.span();
    let strictly_inside = span.start <= inner.start && inner.end <= span.end && inner != span;
    if strictly_inside {
        inner
    } else {
        span
    }
}

fn join(prefix: &Path, rest: &Path) -> Path {
    let mut joined = prefix.clone();
    joined.0.extend(rest.0.iter().cloned());
    joined
}

/// Removes the key at `segs` (whose last step is a key), returning whether it was there.
fn remove(value: &mut DeValue<'_>, segs: &[Seg]) -> bool {
    match segs {
        [Seg::Key(key)] => match value {
            DeValue::Table(table) => table.remove(key.as_str()).is_some(),
            _ => false,
        },
        [Seg::Key(key), rest @ ..] => match value {
            DeValue::Table(table) => table
                .get_mut(key.as_str())
                .is_some_and(|child| remove(child.get_mut(), rest)),
            _ => false,
        },
        [Seg::Index(i), rest @ ..] => match value {
            DeValue::Array(array) => array
                .get_mut(*i)
                .is_some_and(|child| remove(child.get_mut(), rest)),
            _ => false,
        },
        [] => false,
    }
}

/// Converts a serde path segment, dropping the markers serde adds for wrapper types.
fn segment(seg: &serde_path_to_error::Segment) -> Option<Seg> {
    use serde_path_to_error::Segment;
    match seg {
        Segment::Seq { index } => Some(Seg::Index(*index)),
        Segment::Map { key } if key.starts_with("$__") => None,
        Segment::Map { key } => Some(Seg::Key(key.clone())),
        Segment::Enum { .. } | Segment::Unknown => None,
    }
}

/// The field named by serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde::Deserialize;
    use toml::de::DeTable;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        name: String,
        size: Option<u32>,
        tags: Option<Vec<String>>,
    }

    fn decode_entry(src: &str) -> Decoded<Entry> {
        let doc = DeTable::parse(src).unwrap().into_inner();
        let (_, value) = doc.get_key_value("e").unwrap();
        decode(&Path::of(&["e"]), value)
    }

    fn keys(decoded: &Decoded<Entry>) -> Vec<String> {
        decoded
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect()
    }

    #[test]
    fn every_bad_key_of_an_entry_is_reported() {
        let decoded = decode_entry("[e]\nname = \"x\"\nsize = \"big\"\ntags = [1]\nextra = 1\n");
        assert_eq!(
            keys(&decoded),
            [
                "e.extra: unknown field `extra`, expected one of `name`, `size`, `tags`",
                "e.size: invalid type: string \"big\", expected u32",
                "e.tags[0]: invalid type: integer `1`, expected a string",
            ]
        );
        let entry = decoded.value.unwrap();
        assert_eq!(
            (entry.name.as_str(), entry.size, entry.tags),
            ("x", None, None)
        );
        let removed: Vec<String> = decoded.removed.iter().map(ToString::to_string).collect();
        assert_eq!(removed, ["e.extra", "e.size", "e.tags"]);
    }

    #[test]
    fn a_bad_required_key_is_reported_once_and_the_entry_dropped() {
        let decoded = decode_entry("[e]\nname = 5\n");
        assert_eq!(
            keys(&decoded),
            ["e.name: invalid type: integer `5`, expected a string"]
        );
        assert!(decoded.value.is_none());
    }

    #[test]
    fn missing_fields_are_keyed_by_the_field_name() {
        let decoded = decode_entry("[e]\nsize = 1\n");
        assert_eq!(keys(&decoded), ["e.name: missing field `name`"]);
        assert_eq!(decoded.errors[0].span, 0..3);
    }

    #[test]
    fn missing_field_messages_name_the_field() {
        assert_eq!(missing_field("missing field `limit`"), Some("limit"));
        assert_eq!(missing_field("unknown field `x`"), None);
    }
}
