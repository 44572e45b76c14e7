#![allow(clippy::unwrap_used)]
use super::*;
use crate::gateway::openai::{ChunkChoice, Delta};

fn pricing() -> Pricing {
    Pricing {
        input_per_mtok_micros: Micros(1_000_000),
        output_per_mtok_micros: Micros(2_000_000),
        cached_input_per_mtok_micros: Some(Micros(500_000)),
    }
}

fn chunk(content: Option<&str>, usage: Option<Usage>) -> ChatChunk {
    ChatChunk {
        choices: content
            .map(|c| ChunkChoice {
                delta: Delta {
                    content: Some(c.into()),
                    ..Delta::default()
                },
                ..ChunkChoice::default()
            })
            .into_iter()
            .collect(),
        usage,
        ..ChatChunk::default()
    }
}

#[test]
fn the_prompt_bound_is_at_least_one_token_per_byte() {
    let request = ChatRequest {
        messages: vec![
            ChatMessage::text("system", "be brief"),
            ChatMessage::text("user", "héllo there"),
        ],
        ..ChatRequest::default()
    };
    // 8 + 12 bytes, plus 4 per message.
    assert_eq!(prompt_upper_bound(&request), 28);
    // 8 chars -> 2 tokens, 11 chars -> 3 tokens, plus 4 per message.
    assert_eq!(prompt_estimate(&request), 13);
}

#[test]
fn costs_follow_the_price_table() {
    let p = pricing();
    // 1 µ per input token, 2 µ per output token.
    assert_eq!(max_cost(&p, 100, 50), Micros(200));
    let usage = Usage::new(100, 50, 40);
    // 60 uncached × 1 + 40 cached × 0.5 + 50 × 2.
    assert_eq!(usage_cost(&p, &usage), Micros(180));
}

#[test]
fn a_stream_without_usage_is_estimated_from_its_text() {
    let mut tally = StreamTally::default();
    for word in ["Hello", " wonderful", " world", ""] {
        tally.observe(&chunk(Some(word), None));
    }
    // Three chunks carried content; 21 characters are 6 tokens at four per token.
    assert_eq!(tally.deltas, 3);
    assert_eq!(tally.completion_tokens(), 6);
    let billed = tally.billable(10);
    assert_eq!((billed.prompt_tokens, billed.completion_tokens), (10, 6));
    // Short deltas: at least one token each.
    let mut short = StreamTally::default();
    for _ in 0..5 {
        short.observe(&chunk(Some("a"), None));
    }
    assert_eq!(short.completion_tokens(), 5);
}

#[test]
fn reported_usage_wins_even_on_a_chunk_with_choices() {
    let mut tally = StreamTally::default();
    tally.observe(&chunk(Some("word"), None));
    tally.observe(&chunk(Some("last"), Some(Usage::new(7, 2, 0))));
    assert_eq!(tally.completion_tokens(), 2);
    assert_eq!(tally.billable(999).prompt_tokens, 7);
}
