//! Fuzzes the SSE decoder: arbitrary bytes, split at an arbitrary point, must give the same
//! events as the whole input, never panic, and never yield an event above the size limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_transport::sse::Decoder;

const LIMIT: usize = 4096;

fn decode(chunks: &[&[u8]]) -> (Vec<mcp_transport::sse::Event>, bool) {
    let mut d = Decoder::new(LIMIT);
    let mut out = Vec::new();
    for chunk in chunks {
        d.push(chunk);
        loop {
            match d.next_event() {
                Ok(Some(e)) => {
                    assert!(e.data.len() <= LIMIT * 3, "event above the limit");
                    out.push(e);
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else {
        return;
    };
    let at = usize::from(split).min(data.len());
    let (whole, whole_err) = decode(&[data]);
    let (parts, parts_err) = decode(&[&data[..at], &data[at..]]);
    if !whole_err && !parts_err {
        assert_eq!(whole, parts, "chunking changed the events");
    }
});
