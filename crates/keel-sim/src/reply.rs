//! Deterministic replies: the content, tool calls and token counts are functions of the
//! request, so tests can assert exact usage and billing.
//!
//! The token rule: **one token per whitespace-separated word**. Prompt tokens are the words
//! of every message's text; completion tokens are the words of the reply's content, or of a
//! tool call's name plus its arguments JSON.

use serde_json::{Map, Value};

use crate::config::ToolCallMode;

/// Counts tokens: whitespace-separated words.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// What the model is asked, reduced to what the reply depends on.
#[derive(Debug, Default)]
pub(crate) struct Input {
    pub prompt_tokens: u64,
    /// Text of the last message when it is a user turn of text (not a tool result).
    pub last_user_text: Option<String>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
    pub max_tokens: Option<u32>,
    pub json: bool,
}

#[derive(Debug)]
pub(crate) struct ToolSpec {
    pub name: String,
    pub schema: Option<Value>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    #[default]
    Auto,
    None,
    Required,
    Named(String),
}

/// The reply.
#[derive(Debug, PartialEq)]
pub(crate) enum Output {
    Text(String),
    Tool { name: String, arguments: String },
}

#[derive(Debug)]
pub(crate) struct Generation {
    pub output: Output,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Cut short by the request's max tokens.
    pub truncated: bool,
}

/// The reply to `input`: `reply_tokens` words long unless capped, or a tool call.
pub(crate) fn generate(
    input: &Input,
    reply_tokens: u32,
    mode: Option<&ToolCallMode>,
) -> Generation {
    if let Some(name) = tool_to_call(input, mode) {
        let schema = input
            .tools
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.schema.as_ref());
        let arguments = arguments_for(schema).to_string();
        let completion_tokens = count_tokens(&name) + count_tokens(&arguments);
        return Generation {
            output: Output::Tool { name, arguments },
            prompt_tokens: input.prompt_tokens,
            completion_tokens,
            truncated: false,
        };
    }
    let cap = input.max_tokens.unwrap_or(u32::MAX);
    let n = reply_tokens.min(cap).max(1) as usize;
    let words = reply_words(input.last_user_text.as_deref().unwrap_or(""), n);
    let text = if input.json {
        // No space after the colon: the JSON is exactly as many words as the reply.
        format!("{{\"reply\":{}}}", Value::String(words.join(" ")))
    } else {
        words.join(" ")
    };
    Generation {
        completion_tokens: count_tokens(&text),
        output: Output::Text(text),
        prompt_tokens: input.prompt_tokens,
        truncated: reply_tokens > cap,
    }
}

/// `sim reply to <first four words of the question> more more ...`, exactly `n` words.
fn reply_words(question: &str, n: usize) -> Vec<&str> {
    ["sim", "reply", "to"]
        .into_iter()
        .chain(question.split_whitespace().take(4))
        .chain(std::iter::repeat("more"))
        .take(n)
        .collect()
}

fn tool_to_call(input: &Input, mode: Option<&ToolCallMode>) -> Option<String> {
    let first = || input.tools.first().map(|t| t.name.clone());
    match mode {
        Some(ToolCallMode::Forbid) => return None,
        Some(ToolCallMode::Force(Some(name))) => return Some(name.clone()),
        Some(ToolCallMode::Force(None)) => {
            if let ToolChoice::Named(name) = &input.tool_choice {
                return Some(name.clone());
            }
            return first();
        }
        None => {}
    }
    if input.tools.is_empty() {
        return None;
    }
    match &input.tool_choice {
        ToolChoice::None => None,
        ToolChoice::Required => first(),
        ToolChoice::Named(name) => Some(name.clone()),
        ToolChoice::Auto => {
            let asks = input
                .last_user_text
                .as_deref()
                .is_some_and(|t| t.to_lowercase().contains("tool"));
            if asks {
                first()
            } else {
                None
            }
        }
    }
}

/// Arguments matching the schema's properties: `"sim"`, `1`, `true`, `[]` or `{}` by type.
fn arguments_for(schema: Option<&Value>) -> Value {
    let mut arguments = Map::new();
    let properties = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    for (name, property) in properties.into_iter().flatten() {
        let value = match property.get("type").and_then(Value::as_str) {
            Some("integer") | Some("number") => Value::from(1),
            Some("boolean") => Value::Bool(true),
            Some("array") => Value::Array(Vec::new()),
            Some("object") => Value::Object(Map::new()),
            _ => Value::from("sim"),
        };
        arguments.insert(name.clone(), value);
    }
    Value::Object(arguments)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use serde_json::json;

    use super::*;

    fn input(question: &str) -> Input {
        Input {
            prompt_tokens: count_tokens(question),
            last_user_text: Some(question.to_owned()),
            ..Input::default()
        }
    }

    #[test]
    fn replies_are_padded_or_cut_to_the_token_count() {
        let g = generate(&input("what is the capital of France"), 10, None);
        let want = "sim reply to what is the capital more more more";
        assert_eq!(g.output, Output::Text(want.to_owned()));
        assert_eq!(
            (g.prompt_tokens, g.completion_tokens, g.truncated),
            (6, 10, false)
        );

        let mut capped = input("hi");
        capped.max_tokens = Some(2);
        let g = generate(&capped, 10, None);
        assert_eq!(g.output, Output::Text("sim reply".to_owned()));
        assert_eq!((g.completion_tokens, g.truncated), (2, true));
    }

    #[test]
    fn json_mode_returns_json_with_the_same_token_count() {
        let mut i = input("say \"hi\" please");
        i.json = true;
        let g = generate(&i, 6, None);
        let Output::Text(text) = &g.output else {
            panic!()
        };
        let parsed: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parsed["reply"], "sim reply to say \"hi\" please");
        assert_eq!(g.completion_tokens, 6);
    }

    #[test]
    fn tools_are_called_when_asked_or_forced() {
        let mut i = input("please use a tool");
        i.tools = vec![ToolSpec {
            name: "get_weather".into(),
            schema: Some(json!({"properties": {"city": {"type": "string"},
                "days": {"type": "integer"}, "metric": {"type": "boolean"}}})),
        }];
        let g = generate(&i, 16, None);
        let Output::Tool { name, arguments } = &g.output else {
            panic!()
        };
        assert_eq!(name, "get_weather");
        let args: Value = serde_json::from_str(arguments).unwrap();
        assert_eq!(args, json!({"city": "sim", "days": 1, "metric": true}));
        assert_eq!(g.completion_tokens, 2);

        i.last_user_text = Some("hello".into());
        assert!(matches!(generate(&i, 4, None).output, Output::Text(_)));
        let forced = ToolCallMode::Force(None);
        assert!(matches!(
            generate(&i, 4, Some(&forced)).output,
            Output::Tool { .. }
        ));
        i.tool_choice = ToolChoice::Required;
        assert!(matches!(generate(&i, 4, None).output, Output::Tool { .. }));
        assert!(matches!(
            generate(&i, 4, Some(&ToolCallMode::Forbid)).output,
            Output::Text(_)
        ));
        i.tool_choice = ToolChoice::None;
        assert!(matches!(generate(&i, 4, None).output, Output::Text(_)));
    }
}
