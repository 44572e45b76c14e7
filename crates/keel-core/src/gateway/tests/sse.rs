//! The event-stream decoder, with pieces split anywhere.

use super::ANTHROPIC_STREAM;
use crate::gateway::sse::LineTooLong;
use crate::gateway::{SseDecoder, SseEvent};

fn decode_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut decoder = SseDecoder::default();
    let mut events = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        events.extend(decoder.push(&bytes[start..cut]).unwrap());
        start = cut;
    }
    events.extend(decoder.finish());
    events
}

fn data(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}

#[test]
fn the_fixture_decodes_to_its_events() {
    let events = decode_in_pieces(ANTHROPIC_STREAM.as_bytes(), &[]);
    assert_eq!(events.len(), 14);
    assert_eq!(events[0].event.as_deref(), Some("message_start"));
    assert_eq!(events[2].data, r#"{"type": "ping"}"#);
}

#[test]
fn a_split_at_any_byte_or_two_gives_the_same_events() {
    let text = ANTHROPIC_STREAM.replace('\n', "\r\n");
    for bytes in [ANTHROPIC_STREAM.as_bytes(), text.as_bytes()] {
        let whole = decode_in_pieces(bytes, &[]);
        for cut in 0..bytes.len() {
            assert_eq!(decode_in_pieces(bytes, &[cut]), whole, "cut at {cut}");
        }
        for cut in (0..bytes.len()).step_by(7) {
            let second = (cut + 13).min(bytes.len());
            assert_eq!(decode_in_pieces(bytes, &[cut, second]), whole);
        }
        let every: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(decode_in_pieces(bytes, &every), whole);
    }
}

#[test]
fn lf_crlf_and_cr_line_endings_are_all_lines() {
    for text in [
        "data: a\n\ndata: b\n\n",
        "data: a\r\n\r\ndata: b\r\n\r\n",
        "data: a\r\rdata: b\r\r",
    ] {
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(
                data(&decode_in_pieces(bytes, &[cut])),
                ["a", "b"],
                "{text:?} at {cut}"
            );
        }
    }
}

#[test]
fn fields_follow_the_event_stream_format() {
    let text = "\u{feff}: a comment\nevent: add\ndata:first\ndata:  second\nid: 7\nretry: 1500\n\
                unknown: x\n\ndata\n\nevent: empty\n\ndata: after\n\n";
    let events = decode_in_pieces(text.as_bytes(), &[]);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].event.as_deref(), Some("add"));
    // Only one leading space is removed.
    assert_eq!(events[0].data, "first\n second");
    assert_eq!(
        (events[0].id.as_deref(), events[0].retry),
        (Some("7"), Some(1500))
    );
    // `data` with no colon is an empty data line.
    assert_eq!(events[1].data, "");
    // An event with no data is not dispatched, and its type does not leak into the next.
    assert_eq!(
        (events[2].event.as_deref(), events[2].data.as_str()),
        (None, "after")
    );
}

#[test]
fn a_multibyte_character_split_across_pieces_survives() {
    let bytes = "data: été ✓\n\n".as_bytes();
    for cut in 0..bytes.len() {
        assert_eq!(data(&decode_in_pieces(bytes, &[cut])), ["été ✓"]);
    }
}

#[test]
fn at_the_end_complete_lines_dispatch_but_a_half_line_is_dropped() {
    assert_eq!(data(&decode_in_pieces(b"data: [DONE]\n", &[])), ["[DONE]"]);
    assert!(decode_in_pieces(b"data: {\"cut\": tr", &[]).is_empty());
    let mut decoder = SseDecoder::default();
    assert!(decoder.push(b"data: x").unwrap().is_empty());
    assert!(decoder.is_mid_event());
}

#[test]
fn an_endless_line_is_refused() {
    let mut decoder = SseDecoder::new(16);
    assert!(decoder.push(b"data: 0123").unwrap().is_empty());
    assert_eq!(decoder.push(b"456789abcdef"), Err(LineTooLong(16)));
}
