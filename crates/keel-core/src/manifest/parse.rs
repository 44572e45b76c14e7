//! From TOML text to a validated manifest, collecting every error with its location.
//!
//! Each named entry is deserialized on its own so that one bad plan does not hide errors in another;
//! semantic issues found on the typed model are located afterwards by walking the spanned document.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::de::DeserializeOwned;
use serde_spanned::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::decode::decode;
use super::error::{Issue, Locator, ManifestError, ManifestErrors, Path, Seg, Target};
use super::model::Manifest;
use super::validate::{validate, Draft};
use super::LoadedManifest;

/// The top-level tables a manifest may contain.
const SECTIONS: &str =
    "server, product, plans, meters, features, routes, safety, jobs, rate_limits, store_products";

/// Keys that would hold a secret in clear text; rejected anywhere outside `[server]`.
const SECRET_KEYS: [&str; 6] = [
    "api_key",
    "apikey",
    "secret",
    "secret_key",
    "password",
    "access_token",
];

type Value<'i> = Spanned<DeValue<'i>>;

/// Parses and validates `src`, reporting errors against `file`.
pub(crate) fn parse(src: &str, file: &str) -> Result<LoadedManifest, ManifestErrors> {
    let loc = Locator::new(src);
    let mut reader = Reader {
        loc: &loc,
        file,
        errors: Vec::new(),
        removed: Vec::new(),
    };
    let (doc, syntax_errors) = DeTable::parse_recoverable(src);
    for error in &syntax_errors {
        reader.push(error.span().unwrap_or(0..0), String::new(), error.message());
    }
    let mut doc = doc.into_inner();
    reader.strip_secrets(&mut doc, &Path::default());
    let mut draft = Draft::default();
    let mut server = toml::Table::new();
    for (key, value) in doc.iter() {
        reader.section(key, value, &mut draft, &mut server);
    }
    // A syntax error may have swallowed the header: do not claim the table is missing.
    if !doc.contains_key("product") && syntax_errors.is_empty() {
        reader.push(0..0, "product".into(), "missing [product] table");
    }
    draft.removed = std::mem::take(&mut reader.removed);
    for issue in validate(&draft) {
        if draft.removed.iter().any(|r| issue.path.starts_with(r)) {
            continue;
        }
        let span = locate(&doc, &issue);
        reader.push(span, issue.path.to_string(), &issue.message);
    }
    let mut errors = tidy(reader.errors);
    if draft.product.is_none() && errors.is_empty() {
        // Unreachable in practice (a dropped product always reports why), but never fail silently.
        errors.push(loc.error(file, 0..0, "product".into(), "missing [product] table"));
    }
    match draft.product {
        Some(product) if errors.is_empty() => Ok(LoadedManifest {
            manifest: Manifest {
                product,
                plans: draft.plans,
                meters: draft.meters,
                features: draft.features,
                routes: draft.routes,
                safety: draft.safety,
                jobs: draft.jobs,
                rate_limits: draft.rate_limits.unwrap_or_default(),
                store_products: draft.store_products.unwrap_or_default(),
            },
            server,
            source: file.to_owned(),
        }),
        _ => Err(ManifestErrors(errors)),
    }
}

/// Sorts errors into document order and drops noise.
fn tidy(mut errors: Vec<ManifestError>) -> Vec<ManifestError> {
    // Values on a line with a syntax error were guessed by recovery: their errors are noise.
    let syntax_lines: BTreeSet<usize> = errors
        .iter()
        .filter(|e| e.key.is_empty())
        .map(|e| e.line)
        .collect();
    errors.retain(|e| e.key.is_empty() || !syntax_lines.contains(&e.line));
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    errors
}

struct Reader<'a> {
    loc: &'a Locator<'a>,
    file: &'a str,
    errors: Vec<ManifestError>,
    /// Keys dropped after a deserialization error; semantic issues under them are not reported.
    removed: Vec<Path>,
}

impl Reader<'_> {
    fn push(&mut self, span: Range<usize>, key: String, message: &str) {
        let error = self.loc.error(self.file, span, key, message);
        self.errors.push(error);
    }

    fn section(
        &mut self,
        key: &Spanned<DeString<'_>>,
        value: &Value<'_>,
        draft: &mut Draft,
        server: &mut toml::Table,
    ) {
        let name: &str = key.get_ref();
        let path = Path::of(&[name]);
        let names = &mut draft.names;
        match name {
            "server" => *server = self.decode(&path, value).unwrap_or_default(),
            "product" => draft.product = self.decode(&path, value),
            "plans" => self.entries(&path, value, &mut names.plans, &mut draft.plans),
            "meters" => self.entries(&path, value, &mut names.meters, &mut draft.meters),
            "features" => self.entries(&path, value, &mut names.features, &mut draft.features),
            "routes" => self.entries(&path, value, &mut names.routes, &mut draft.routes),
            "safety" => self.entries(&path, value, &mut names.safety, &mut draft.safety),
            "jobs" => self.entries(&path, value, &mut names.jobs, &mut draft.jobs),
            "rate_limits" => draft.rate_limits = self.decode(&path, value),
            "store_products" => draft.store_products = self.decode(&path, value),
            _ => {
                let message = format!("unknown table `{name}`: expected one of {SECTIONS}");
                self.push(key.span(), name.to_owned(), &message);
            }
        }
    }

    /// Deserializes every `<section>.<name>` entry independently.
    fn entries<T: DeserializeOwned>(
        &mut self,
        path: &Path,
        value: &Value<'_>,
        names: &mut BTreeSet<String>,
        out: &mut BTreeMap<String, T>,
    ) {
        let Some(table) = self.table(path, value) else {
            return;
        };
        for (key, entry) in table.iter() {
            let name = key.get_ref().to_string();
            names.insert(name.clone());
            if let Some(parsed) = self.decode(&path.key(&name), entry) {
                out.insert(name, parsed);
            }
        }
    }

    fn table<'v, 'i>(&mut self, path: &Path, value: &'v Value<'i>) -> Option<&'v DeTable<'i>> {
        let table = value.get_ref().as_table();
        if table.is_none() {
            let found = value.get_ref().type_str();
            let message = format!("expected a table, found {found}");
            self.push(value.span(), path.to_string(), &message);
        }
        table
    }

    /// Deserializes one table, reporting every error with its full key path.
    fn decode<T: DeserializeOwned>(&mut self, path: &Path, value: &Value<'_>) -> Option<T> {
        self.table(path, value)?;
        let decoded = decode::<T>(path, value);
        for error in decoded.errors {
            self.push(error.span, error.key.to_string(), &error.message);
        }
        self.removed.extend(decoded.removed);
        decoded.value
    }

    /// Removes clear-text secrets (reporting each) so they are neither kept nor reported twice.
    fn strip_secrets(&mut self, table: &mut DeTable<'_>, path: &Path) {
        let found: Vec<(String, Range<usize>)> = table
            .iter()
            .filter(|(k, _)| SECRET_KEYS.contains(&k.get_ref().as_ref()))
            .map(|(k, _)| (k.get_ref().to_string(), k.span()))
            .collect();
        for (key, span) in found {
            table.remove(key.as_str());
            let message = "secrets must not be written in the manifest: put the key in an \
                 environment variable and name the variable with `api_key_env`";
            self.push(span, path.key(&key).to_string(), message);
        }
        for (key, value) in table.iter_mut() {
            let key: &str = key.get_ref();
            if !(path.0.is_empty() && key == "server") {
                self.strip_value(value.get_mut(), &path.key(key));
            }
        }
    }

    fn strip_value(&mut self, value: &mut DeValue<'_>, path: &Path) {
        match value {
            DeValue::Table(table) => self.strip_secrets(table, path),
            DeValue::Array(array) => {
                for (i, item) in array.iter_mut().enumerate() {
                    self.strip_value(item.get_mut(), &path.index(i));
                }
            }
            _ => {}
        }
    }
}

/// The byte range an issue points at: its key or value, or the deepest existing ancestor.
fn locate(doc: &DeTable<'_>, issue: &Issue) -> Range<usize> {
    let mut current: Option<&Value<'_>> = None;
    let mut key_span = None;
    for seg in &issue.path.0 {
        let next = match (seg, current) {
            (Seg::Key(k), None) => doc
                .get_key_value(k.as_str())
                .map(|(k, v)| (Some(k.span()), v)),
            (Seg::Key(k), Some(v)) => v
                .get_ref()
                .as_table()
                .and_then(|t| t.get_key_value(k.as_str()))
                .map(|(k, v)| (Some(k.span()), v)),
            (Seg::Index(i), Some(v)) => v
                .get_ref()
                .as_array()
                .and_then(|a| a.get(*i))
                .map(|v| (None, v)),
            (Seg::Index(_), None) => None,
        };
        let Some((span, value)) = next else {
            // The path leaves the document (a missing key): point at its closest ancestor.
            return current.map_or(0..0, Spanned::span);
        };
        key_span = span;
        current = Some(value);
    }
    match (issue.target, key_span, current) {
        (Target::Key, Some(span), _) => span,
        (_, _, Some(value)) => value.span(),
        _ => 0..0,
    }
}
