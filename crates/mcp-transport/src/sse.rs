//! An incremental decoder for `text/event-stream` (Server-Sent Events), per the WHATWG HTML
//! "event stream interpretation" rules, with a cap on how much one event may buffer.
//!
//! Feed it bytes as they arrive with [`Decoder::push`] and pull complete events with
//! [`Decoder::next_event`]. Line endings may be LF, CR or CRLF, split anywhere across chunks.
//! The decoder remembers the last event id and the server's `retry` hint, which the
//! Streamable HTTP transport uses to resume a stream with `Last-Event-ID`.
//!
//! ```
//! use mcp_transport::sse::Decoder;
//!
//! let mut decoder = Decoder::new(1 << 20);
//! decoder.push(b"id: 7\nretry: 1500\ndata: {\"a\":\n");
//! assert!(decoder.next_event().unwrap().is_none()); // not dispatched yet
//! decoder.push(b"data: 1}\r\n\r\n");
//! let event = decoder.next_event().unwrap().unwrap();
//! assert_eq!(event.data, "{\"a\":\n1}");
//! assert_eq!(event.id.as_deref(), Some("7"));
//! assert_eq!(decoder.retry(), Some(std::time::Duration::from_millis(1500)));
//! ```

use std::fmt;
use std::time::Duration;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; `None` means the default type, `message`.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id in effect when this event was dispatched, if any.
    pub id: Option<String>,
}

impl Event {
    /// True for events of the default `message` type.
    pub fn is_message(&self) -> bool {
        self.event.as_deref().is_none_or(|e| e == "message")
    }
}

/// The stream broke the decoder's size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// The configured limit in bytes.
    pub limit: usize,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SSE event larger than the {} byte limit", self.limit)
    }
}

impl std::error::Error for TooLarge {}

/// Incremental SSE decoder. See the [module docs](self).
#[derive(Debug)]
pub struct Decoder {
    /// Bytes received but not yet consumed as complete lines.
    buf: Vec<u8>,
    /// Start of the unconsumed part of `buf`.
    start: usize,
    /// The previous chunk ended in CR: a leading LF in the next chunk belongs to it.
    after_cr: bool,
    /// The UTF-8 BOM check at stream start is done.
    bom_checked: bool,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    last_event_id: Option<String>,
    retry: Option<Duration>,
    limit: usize,
}

impl Decoder {
    /// A decoder that refuses events (and lines) larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            after_cr: false,
            bom_checked: false,
            data: Vec::new(),
            has_data: false,
            event: None,
            last_event_id: None,
            retry: None,
            limit,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Carries the last event id and retry hint over from a previous stream (when resuming).
    pub fn seed(&mut self, last_event_id: Option<String>, retry: Option<Duration>) {
        self.last_event_id = last_event_id;
        self.retry = retry;
    }

    /// The last event id seen (`id:` field), to send as `Last-Event-ID` when resuming.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The server's reconnection hint (`retry:` field), if it sent one.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Returns the next complete event, `Ok(None)` if more bytes are needed, or an error if an
    /// event or line exceeds the limit (the decoder should then be dropped).
    pub fn next_event(&mut self) -> Result<Option<Event>, TooLarge> {
        loop {
            if !self.bom_checked {
                let pending = &self.buf[self.start..];
                if pending.len() < 3 && b"\xEF\xBB\xBF".starts_with(pending) {
                    return Ok(None);
                }
                if pending.starts_with(b"\xEF\xBB\xBF") {
                    self.start += 3;
                }
                self.bom_checked = true;
            }
            if self.after_cr && self.start < self.buf.len() {
                if self.buf[self.start] == b'\n' {
                    self.start += 1;
                }
                self.after_cr = false;
            }
            let pending = &self.buf[self.start..];
            let Some(end) = pending.iter().position(|b| *b == b'\n' || *b == b'\r') else {
                if pending.len() > self.limit {
                    return Err(TooLarge { limit: self.limit });
                }
                self.compact();
                return Ok(None);
            };
            let terminator = pending[end];
            let line_start = self.start;
            let line_end = self.start + end;
            self.start = line_end + 1;
            if terminator == b'\r' {
                if self.start < self.buf.len() {
                    if self.buf[self.start] == b'\n' {
                        self.start += 1;
                    }
                } else {
                    self.after_cr = true;
                }
            }
            if line_start == line_end {
                if let Some(event) = self.dispatch() {
                    return Ok(Some(event));
                }
                continue;
            }
            self.field(line_start, line_end)?;
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    fn field(&mut self, from: usize, to: usize) -> Result<(), TooLarge> {
        let line = &self.buf[from..to];
        if line[0] == b':' {
            return Ok(()); // comment
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(TooLarge { limit: self.limit });
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                self.last_event_id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Saturate absurd values instead of overflowing.
                let millis = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(u64::MAX);
                self.retry = Some(Duration::from_millis(millis));
            }
            _ => {} // unknown fields are ignored
        }
        Ok(())
    }

    fn dispatch(&mut self) -> Option<Event> {
        let event = self.event.take();
        if !self.has_data {
            self.data.clear();
            return None;
        }
        self.has_data = false;
        let data = std::mem::take(&mut self.data);
        let data = match String::from_utf8(data) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let event = event.filter(|e| !e.is_empty());
        Some(Event {
            event,
            data,
            id: self.last_event_id.clone().filter(|id| !id.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[&[u8]]) -> Vec<Event> {
        let mut d = Decoder::new(1024);
        let mut out = Vec::new();
        for chunk in input {
            d.push(chunk);
            while let Some(e) = d.next_event().unwrap() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn spec_examples() {
        let events = all(&[b"data: YHOO\ndata: +2\ndata: 10\n\n"]);
        assert_eq!(events[0].data, "YHOO\n+2\n10");
        let events = all(&[b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"]);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].id.as_deref(), Some("1"));
        assert_eq!(events[1].data, "second event");
        assert_eq!(events[1].id, None, "an empty id resets the last event id");
        assert_eq!(events[2].data, " third event");
        let events = all(&[b"data\n\ndata\ndata\n\ndata:"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, "");
        assert_eq!(events[1].data, "\n");
    }

    #[test]
    fn line_endings_split_across_chunks() {
        let events = all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\r"]);
        assert_eq!(
            events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let input = b"\xEF\xBB\xBFevent: x\nid: 42\r\nretry: 10\rdata: {\"jsonrpc\":\"2.0\"}\n\n: c\n\ndata: 2\n\n";
        let whole = all(&[input]);
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(all(&pieces), whole);
        assert_eq!(whole[0].event.as_deref(), Some("x"));
        assert_eq!(whole.len(), 2);
    }

    #[test]
    fn priming_event_sets_id_without_dispatch() {
        let mut d = Decoder::new(64);
        d.push(b"id: prime-1\nretry: 2000\ndata:\n\n");
        // `data:` with an empty value still dispatches an (empty) event per the spec.
        let e = d.next_event().unwrap().unwrap();
        assert_eq!(e.data, "");
        d.push(b"id: prime-2\n\n");
        assert!(d.next_event().unwrap().is_none());
        assert_eq!(d.last_event_id(), Some("prime-2"));
        assert_eq!(d.retry(), Some(Duration::from_millis(2000)));
    }

    #[test]
    fn invalid_retry_is_ignored_and_huge_retry_saturates() {
        let mut d = Decoder::new(64);
        d.push(b"retry: 12a\nretry: 99999999999999999999999\n\n");
        assert!(d.next_event().unwrap().is_none());
        assert_eq!(d.retry(), Some(Duration::from_millis(u64::MAX)));
    }

    #[test]
    fn oversized_event_and_line_are_refused() {
        let mut d = Decoder::new(16);
        d.push(b"data: 0123456789\ndata: 0123456789\n");
        assert_eq!(d.next_event(), Err(TooLarge { limit: 16 }));
        let mut d = Decoder::new(16);
        d.push(&[b'x'; 64]);
        assert_eq!(d.next_event(), Err(TooLarge { limit: 16 }));
    }
}
