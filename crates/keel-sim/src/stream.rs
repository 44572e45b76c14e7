//! Response bodies with faults: streamed events with delays, cuts, stalls and bad events.

use std::time::Duration;
use std::{io, sync::Arc};

use axum::body::{Body, Bytes};
use futures::{stream, StreamExt};

use crate::config::Faults;
use crate::stats::{Stats, StreamEnd};

/// The provider-specific extra frames a faulty stream may need.
pub(crate) struct FaultFrames {
    /// A frame that is not valid for the protocol (`malformed-after`).
    pub malformed: Bytes,
    /// An in-stream error event (`stream-error-after`).
    pub error: Bytes,
}

struct State {
    frames: std::vec::IntoIter<Bytes>,
    sent: usize,
    waited_first: bool,
    malformed_sent: bool,
    done: bool,
    faults: Faults,
    extra: FaultFrames,
    guard: Guard,
}

/// Counts how the stream ended when the body is dropped (by hyper, at the end or when the
/// client goes away).
struct Guard {
    stats: Arc<Stats>,
    end: StreamEnd,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stats.stream_ended(self.end);
    }
}

/// A body sending `frames` one by one with the stream faults of `faults`.
pub(crate) fn sse_body(
    frames: Vec<Bytes>,
    faults: &Faults,
    extra: FaultFrames,
    stats: Arc<Stats>,
) -> Body {
    stats.stream_started();
    let state = State {
        frames: frames.into_iter(),
        sent: 0,
        waited_first: false,
        malformed_sent: false,
        done: false,
        faults: faults.clone(),
        extra,
        guard: Guard {
            stats,
            end: StreamEnd::Cancelled,
        },
    };
    Body::from_stream(stream::unfold(state, next_frame))
}

async fn next_frame(mut st: State) -> Option<(Result<Bytes, io::Error>, State)> {
    if st.done {
        return None;
    }
    let delay = if st.waited_first {
        st.faults.chunk_delay
    } else {
        st.waited_first = true;
        st.faults.ttft
    };
    sleep(delay).await;
    let at = Some(st.sent);
    if at == st.faults.disconnect_after {
        // Let hyper flush what was sent (the headers at least) before the cut.
        tokio::task::yield_now().await;
        st.done = true;
        st.guard.end = StreamEnd::Cut;
        let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "sim: disconnect");
        return Some((Err(cut), st));
    }
    if at == st.faults.stall_after {
        std::future::pending::<()>().await;
    }
    if at == st.faults.malformed_after && !st.malformed_sent {
        st.malformed_sent = true;
        let frame = st.extra.malformed.clone();
        return Some((Ok(frame), st));
    }
    if at == st.faults.stream_error_after {
        st.done = true;
        st.guard.end = StreamEnd::Completed;
        let frame = st.extra.error.clone();
        return Some((Ok(frame), st));
    }
    match st.frames.next() {
        Some(frame) => {
            st.sent += 1;
            Some((Ok(frame), st))
        }
        None => {
            st.guard.end = StreamEnd::Completed;
            None
        }
    }
}

/// A complete body whose connection is cut halfway through.
pub(crate) fn cut_body(full: Vec<u8>) -> Body {
    let half = Bytes::from(full[..full.len() / 2].to_vec());
    let cut = stream::once(async {
        // Let hyper flush the headers and the first half before the cut.
        tokio::task::yield_now().await;
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "sim: disconnect",
        ))
    });
    Body::from_stream(stream::iter([Ok(half)]).chain(cut))
}

pub(crate) async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// One `data:` event.
pub(crate) fn data_frame(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

/// One named event.
pub(crate) fn event_frame(event: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}
