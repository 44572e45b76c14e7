//! An incremental server-sent events decoder (the WHATWG event-stream format): bytes in, in
//! pieces split anywhere (inside a line, a CRLF or a UTF-8 character), events out.

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (`message` by default, per the format).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `retry:` field, if any.
    pub retry: Option<u64>,
}

/// A line longer than the decoder accepts (an upstream sending garbage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event-stream line longer than {0} bytes")]
pub struct LineTooLong(pub usize);

/// The decoder's state between pieces.
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    max_line: usize,
    /// The previous piece ended with `\r`: a `\n` starting this one is part of that CRLF.
    skip_lf: bool,
    at_start: bool,
    current: SseEvent,
    has_data: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(1 << 20)
    }
}

impl SseDecoder {
    /// A decoder refusing lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            line: Vec::new(),
            max_line,
            skip_lf: false,
            at_start: true,
            current: SseEvent::default(),
            has_data: false,
        }
    }

    /// Feeds a piece of the stream; returns the events it completes.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        let mut events = Vec::new();
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            bytes = bytes.strip_prefix(b"\n").unwrap_or(bytes);
        }
        while let Some(end) = bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.extend_line(&bytes[..end])?;
            let crlf = bytes[end] == b'\r';
            bytes = &bytes[end + 1..];
            if crlf {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.skip_lf = true,
                    Some(_) => {}
                }
            }
            let line = std::mem::take(&mut self.line);
            if let Some(event) = self.process_line(&line) {
                events.push(event);
            }
        }
        self.extend_line(bytes)?;
        Ok(events)
    }

    /// Ends the stream. An event whose lines were all complete but that lacks the closing
    /// blank line is dispatched (lenient: many servers end that way); a half-received line
    /// is a cut stream and is dropped, as the format requires.
    pub fn finish(mut self) -> Option<SseEvent> {
        if !self.line.is_empty() || !self.has_data {
            return None;
        }
        self.dispatch()
    }

    /// Whether part of a line or an event is still waiting for the rest.
    pub fn is_mid_event(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), LineTooLong> {
        if self.line.len() + bytes.len() > self.max_line {
            return Err(LineTooLong(self.max_line));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, raw: &[u8]) -> Option<SseEvent> {
        let text = String::from_utf8_lossy(raw);
        let mut line: &str = &text;
        if self.at_start {
            self.at_start = false;
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.current.id = Some(value.to_owned()),
            "retry" => {
                if let Ok(ms) = value.parse() {
                    self.current.retry = Some(ms);
                }
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.current);
        // An event with no data line is not dispatched; its fields are discarded.
        std::mem::take(&mut self.has_data).then_some(event)
    }
}
