//! Reading a chat request: OpenAI-shaped 400s that name the field (`param`) for malformed
//! JSON, a missing model, empty messages and bad token limits.

use keel_core::gateway::ChatRequest;
use serde_json::Value;

use super::errors::invalid;
use crate::ApiError;

/// Parses and checks a `/v1/chat/completions` body.
pub fn parse(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        invalid(
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
            "body",
        )
    })?;
    let Value::Object(fields) = &value else {
        return Err(invalid(
            "invalid_request",
            "the request body must be a JSON object",
            "body",
        ));
    };
    match fields.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => {}
        _ => {
            return Err(invalid(
                "invalid_model",
                "`model` is required: a model name or model class",
                "model",
            ))
        }
    }
    for field in ["max_tokens", "max_completion_tokens"] {
        match fields.get(field) {
            None | Some(Value::Null) => {}
            Some(v)
                if v.as_u64()
                    .is_some_and(|n| (1..=u64::from(u32::MAX)).contains(&n)) => {}
            Some(_) => {
                return Err(invalid(
                    "invalid_max_tokens",
                    format!("`{field}` must be a positive whole number"),
                    field,
                ))
            }
        }
    }
    match fields.get("messages") {
        Some(Value::Array(list)) if !list.is_empty() => {}
        Some(Value::Array(_)) => {
            return Err(invalid(
                "empty_messages",
                "`messages` must hold at least one message",
                "messages",
            ))
        }
        _ => {
            return Err(invalid(
                "invalid_messages",
                "`messages` is required: a list of messages",
                "messages",
            ))
        }
    }
    let request: ChatRequest = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = format!("invalid value for `{path}`: {}", e.inner());
        invalid("invalid_request", message, &path)
    })?;
    if request.n.is_some_and(|n| n != 1) {
        return Err(invalid(
            "unsupported_n",
            "only one choice per request (`n` = 1) is supported",
            "n",
        ));
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn code_and_param(body: &str) -> (&'static str, String) {
        let err = parse(body.as_bytes()).unwrap_err();
        let param = err.details().unwrap()["field"].as_str().unwrap().to_owned();
        (err.code(), param)
    }

    #[test]
    fn bad_bodies_name_the_field_at_fault() {
        let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
        assert_eq!(code_and_param("{not json").0, "invalid_json");
        assert_eq!(code_and_param("[]").0, "invalid_request");
        assert_eq!(code_and_param(&format!("{{{msgs}}}")).1, "model");
        assert_eq!(
            code_and_param(r#"{"model":"m","messages":[]}"#),
            ("empty_messages", "messages".into())
        );
        assert_eq!(
            code_and_param(&format!(r#"{{"model":"m",{msgs},"max_tokens":-5}}"#)),
            ("invalid_max_tokens", "max_tokens".into())
        );
        assert_eq!(
            code_and_param(&format!(
                r#"{{"model":"m",{msgs},"max_completion_tokens":0}}"#
            )),
            ("invalid_max_tokens", "max_completion_tokens".into())
        );
        assert_eq!(
            code_and_param(&format!(r#"{{"model":"m",{msgs},"temperature":"hot"}}"#)),
            ("invalid_request", "temperature".into())
        );
        assert_eq!(
            code_and_param(&format!(r#"{{"model":"m",{msgs},"n":2}}"#)).0,
            "unsupported_n"
        );
    }

    #[test]
    fn a_good_body_parses_with_everything_kept() {
        let r = parse(
            br#"{"model":"L1","messages":[{"role":"user","content":"hi"}],"max_tokens":10,
                "user":"u1","response_format":{"type":"json_object"},"seed":7}"#,
        )
        .unwrap();
        assert_eq!(r.model, "L1");
        assert_eq!(r.max_tokens, Some(10));
        assert_eq!(r.extra["seed"], 7);
    }
}
