//! Fuzzes the `Retry-After` parser: arbitrary bytes must never panic, and whatever it reads must
//! be consistent (deterministic; delta-seconds read as their value; a valid value stays valid
//! with surrounding spaces; nothing over 64 bytes is accepted).

#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use mcp_resilience::retry_after;

fuzz_target!(|input: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let parsed = retry_after::parse(input, now);
    // Parsing is deterministic.
    assert_eq!(retry_after::parse(input, now), parsed);
    if let Some(wait) = parsed {
        let trimmed = trim(input);
        assert!(!trimmed.is_empty() && trimmed.len() <= 64);
        // Surrounding spaces do not change the value.
        let mut padded = Vec::with_capacity(input.len() + 2);
        padded.push(b' ');
        padded.extend_from_slice(input);
        padded.push(b'\t');
        if padded.len() <= 64 + 2 {
            assert_eq!(retry_after::parse(&padded, now), Some(wait));
        }
        // Small delta-seconds are read exactly.
        if trimmed.len() <= 18 && trimmed.iter().all(u8::is_ascii_digit) {
            let secs: u64 = std::str::from_utf8(trimmed)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_default();
            assert_eq!(wait, Duration::from_secs(secs));
        }
        // The cap bounds every wait.
        let cap = Duration::from_secs(10);
        assert!(retry_after::clamp(wait, cap, None) <= cap);
    }
});

/// Spaces and tabs off both ends, as the parser trims.
fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}
