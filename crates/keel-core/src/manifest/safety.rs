//! Safety prechecks: keyword and pattern rules run on user input before any generation.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::one_line;

/// What happens when a safety rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SafetyAction {
    /// Refuse the request and return the rule's `status` and `message`.
    Block,
    /// Let the request through and record a safety event.
    Flag,
}

/// `[safety.<name>]`: a deterministic precheck.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyRule {
    /// Features the rule applies to; empty means all.
    #[serde(default)]
    pub features: Vec<String>,
    /// Phrases matched case-insensitively as substrings.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Regular expressions (Rust `regex` syntax) matched against the input.
    #[serde(default)]
    pub patterns: Vec<Pattern>,
    /// Block or flag.
    pub action: SafetyAction,
    /// Structured status code returned to the client (snake_case); required for `block`.
    pub status: Option<String>,
    /// Human message returned to the client.
    pub message: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

impl SafetyRule {
    /// Whether the rule applies to requests for `feature`.
    pub fn applies_to(&self, feature: &str) -> bool {
        self.features.is_empty() || self.features.iter().any(|f| f == feature)
    }

    /// Whether `text` contains a keyword (case-insensitively) or matches a pattern.
    pub fn matches(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        self.keywords
            .iter()
            .any(|k| lower.contains(&k.to_lowercase()))
            || self.patterns.iter().any(|p| p.0.is_match(text))
    }
}

/// A compiled regular expression that serializes back to its source.
#[derive(Clone, Debug)]
pub struct Pattern(pub Regex);

impl Pattern {
    /// Compiles a pattern; the error is the regex crate's, on one line.
    pub fn new(source: &str) -> Result<Pattern, String> {
        Regex::new(source).map(Pattern).map_err(|e| {
            let text = e.to_string();
            // The regex crate draws a caret diagram; keep its last line, "error: <what>".
            let what = text
                .lines()
                .last()
                .and_then(|l| l.trim().strip_prefix("error: "));
            format!(
                "invalid regex: {}",
                what.map_or_else(|| one_line(&text), str::to_owned)
            )
        })
    }

    /// The pattern's source text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Pattern::new(&source).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rule() -> SafetyRule {
        SafetyRule {
            features: vec!["chat".into()],
            keywords: vec!["Kill Myself".into()],
            patterns: vec![Pattern::new(r"(?i)\bsuicid").unwrap()],
            action: SafetyAction::Block,
            status: Some("crisis_support".into()),
            message: None,
            description: None,
        }
    }

    #[test]
    fn keywords_match_case_insensitively_and_patterns_as_regexes() {
        let rule = rule();
        assert!(rule.matches("I want to KILL myself"));
        assert!(rule.matches("thinking about Suicide"));
        assert!(!rule.matches("kill the process"));
    }

    #[test]
    fn rules_apply_to_listed_features_or_all_when_none_listed() {
        let mut rule = rule();
        assert!(rule.applies_to("chat"));
        assert!(!rule.applies_to("journal"));
        rule.features.clear();
        assert!(rule.applies_to("journal"));
    }

    #[test]
    fn bad_patterns_report_the_regex_error_on_one_line() {
        let err = Pattern::new("(unclosed").unwrap_err();
        assert_eq!(err, "invalid regex: unclosed group");
        assert!(!err.contains('\n'));
    }
}
