//! Token caps: clamping a request's `max_tokens` / `max_completion_tokens` to a route's cap.

use super::openai::ChatRequest;

/// Which field to set when the client set neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_tokens`: understood by every OpenAI-compatible server.
    MaxTokens,
    /// `max_completion_tokens`: OpenAI's current name (required by its reasoning models).
    MaxCompletionTokens,
}

/// The cap on generated tokens for `request`: what the client asked for (or `default`),
/// lowered to `cap` when there is one. The request is rewritten to carry it: every cap field
/// the client set is clamped, and `absent` is set when it set none.
pub fn clamp_max_tokens(
    request: &mut ChatRequest,
    cap: Option<u32>,
    default: u32,
    absent: MaxTokensField,
) -> u32 {
    let asked = request.requested_max_tokens().unwrap_or(default);
    let effective = cap.map_or(asked, |cap| asked.min(cap));
    let mut set_any = false;
    if request.max_completion_tokens.is_some() {
        request.max_completion_tokens = Some(effective);
        set_any = true;
    }
    if request.max_tokens.is_some() {
        request.max_tokens = Some(effective);
        set_any = true;
    }
    if !set_any {
        match absent {
            MaxTokensField::MaxTokens => request.max_tokens = Some(effective),
            MaxTokensField::MaxCompletionTokens => request.max_completion_tokens = Some(effective),
        }
    }
    effective
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(max_tokens: Option<u32>, max_completion_tokens: Option<u32>) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            max_tokens,
            max_completion_tokens,
            ..ChatRequest::default()
        }
    }

    #[test]
    fn a_request_above_the_cap_is_lowered_to_it() {
        let mut r = request(Some(50_000), None);
        assert_eq!(
            clamp_max_tokens(&mut r, Some(30_000), 1024, MaxTokensField::MaxTokens),
            30_000
        );
        assert_eq!(r.max_tokens, Some(30_000));
        assert_eq!(r.max_completion_tokens, None);
    }

    #[test]
    fn a_request_below_the_cap_is_kept() {
        let mut r = request(None, Some(100));
        assert_eq!(
            clamp_max_tokens(&mut r, Some(5_000), 1024, MaxTokensField::MaxTokens),
            100
        );
        assert_eq!(r.max_completion_tokens, Some(100));
        assert_eq!(r.max_tokens, None);
    }

    #[test]
    fn both_fields_are_clamped_and_the_newer_one_decides() {
        let mut r = request(Some(10), Some(9_000));
        assert_eq!(
            clamp_max_tokens(&mut r, Some(5_000), 1024, MaxTokensField::MaxTokens),
            5_000
        );
        assert_eq!(
            (r.max_tokens, r.max_completion_tokens),
            (Some(5_000), Some(5_000))
        );
    }

    #[test]
    fn an_absent_cap_gets_the_default_lowered_to_the_cap_in_the_chosen_field() {
        let mut r = request(None, None);
        let field = MaxTokensField::MaxCompletionTokens;
        assert_eq!(clamp_max_tokens(&mut r, Some(500), 1024, field), 500);
        assert_eq!((r.max_tokens, r.max_completion_tokens), (None, Some(500)));

        let mut r = request(None, None);
        assert_eq!(
            clamp_max_tokens(&mut r, None, 1024, MaxTokensField::MaxTokens),
            1024
        );
        assert_eq!((r.max_tokens, r.max_completion_tokens), (Some(1024), None));
    }

    #[test]
    fn without_a_cap_the_client_value_stands() {
        let mut r = request(Some(70_000), None);
        assert_eq!(
            clamp_max_tokens(&mut r, None, 1024, MaxTokensField::MaxTokens),
            70_000
        );
        assert_eq!(r.max_tokens, Some(70_000));
    }
}
