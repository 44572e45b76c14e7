//! The safety precheck: which `[safety.*]` rules of a feature match a request's input.
//!
//! The input checked is what the caller says now: every system and developer message
//! (instructions the product sends) and the last user message (the new turn). Earlier user
//! turns were checked when they were new, so one past crisis message does not block every
//! later turn of the conversation.

use sha2::{Digest, Sha256};

use super::openai::ChatRequest;
use crate::manifest::{Manifest, SafetyAction, SafetyRule};

/// The text the precheck runs over, messages separated by newlines.
pub fn checked_text(request: &ChatRequest) -> String {
    let mut parts: Vec<String> = request
        .messages
        .iter()
        .filter(|m| m.role == "system" || m.role == "developer")
        .map(|m| m.text_content())
        .collect();
    if let Some(last_user) = request.messages.iter().rev().find(|m| m.role == "user") {
        parts.push(last_user.text_content());
    }
    parts.join("\n")
}

/// A rule that matched.
#[derive(Clone, Copy, Debug)]
pub struct Hit<'a> {
    /// The rule's name (`[safety.<name>]`).
    pub name: &'a str,
    /// The rule.
    pub rule: &'a SafetyRule,
}

impl Hit<'_> {
    /// Whether the rule blocks the request.
    pub fn blocks(&self) -> bool {
        self.rule.action == SafetyAction::Block
    }

    /// `block` or `flag`.
    pub fn action(&self) -> &'static str {
        match self.rule.action {
            SafetyAction::Block => "block",
            SafetyAction::Flag => "flag",
        }
    }
}

/// Every rule for `feature` that matches `text`, in manifest order.
pub fn hits<'a>(manifest: &'a Manifest, feature: &str, text: &str) -> Vec<Hit<'a>> {
    manifest
        .safety
        .iter()
        .filter(|(_, rule)| rule.applies_to(feature) && rule.matches(text))
        .map(|(name, rule)| Hit { name, rule })
        .collect()
}

/// A short, stable fingerprint of checked text for safety events: the first 16 hex digits
/// of its SHA-256 (correlates repeats without storing what was said).
pub fn text_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::gateway::openai::ChatMessage;
    use crate::manifest::parse_str;

    const MANIFEST: &str = r#"
[product]
name = "t"
default_plan = "free"
[features.chat]
[features.journal]
[plans.free]
features = ["chat"]
[safety.crisis]
features = ["chat"]
keywords = ["end my life"]
action = "block"
status = "crisis_support"
[safety.medical]
keywords = ["dose"]
action = "flag"
"#;

    fn request(messages: &[(&str, &str)]) -> ChatRequest {
        ChatRequest {
            messages: messages
                .iter()
                .map(|(role, text)| ChatMessage::text(role, *text))
                .collect(),
            ..ChatRequest::default()
        }
    }

    #[test]
    fn system_messages_and_the_last_user_turn_are_checked() {
        let r = request(&[
            ("system", "be kind"),
            ("user", "old turn"),
            ("assistant", "reply"),
            ("user", "new turn"),
        ]);
        assert_eq!(checked_text(&r), "be kind\nnew turn");
    }

    #[test]
    fn rules_match_by_feature_and_report_their_action() {
        let m = parse_str(MANIFEST, "t.toml").unwrap().manifest;
        let found = hits(&m, "chat", "What DOSE would end my life");
        let names: Vec<(&str, &str)> = found.iter().map(|h| (h.name, h.action())).collect();
        assert_eq!(names, [("crisis", "block"), ("medical", "flag")]);
        assert!(found[0].blocks() && !found[1].blocks());
        // The crisis rule is for chat only; the medical rule for every feature.
        let journal: Vec<&str> = hits(&m, "journal", "dose; end my life")
            .iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(journal, ["medical"]);
        assert!(hits(&m, "chat", "hello").is_empty());
    }

    #[test]
    fn the_text_hash_is_short_stable_and_not_the_text() {
        let h = text_hash("end my life");
        assert_eq!(h.len(), 16);
        assert_eq!(h, text_hash("end my life"));
        assert_ne!(h, text_hash("end my life."));
    }
}
