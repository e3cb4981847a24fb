//! Fuzzes the `WWW-Authenticate` Bearer challenge parser: arbitrary text must never panic, and
//! whatever it reads must be consistent (scopes are non-empty tokens of the `scope` value).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth::Challenge;

fuzz_target!(|input: &[u8]| {
    let Ok(header) = std::str::from_utf8(input) else {
        return;
    };
    if let Some(challenge) = Challenge::parse(header) {
        for scope in challenge.scopes() {
            assert!(!scope.is_empty());
            assert!(!scope.contains(' '));
        }
        assert_eq!(challenge.has_scope(), challenge.scopes().next().is_some());
        let _ = format!("{challenge:?}");
        // Parsing is deterministic.
        assert_eq!(Challenge::parse(header), Some(challenge));
    }
});
