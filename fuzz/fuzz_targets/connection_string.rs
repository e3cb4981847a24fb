//! Fuzzes the Application Insights connection-string parser: arbitrary text never panics;
//! whatever parses has a GUID key kept out of `Debug`, https endpoints (http only to
//! loopback) without a trailing slash, and parses to the same value from its own parts.

#![no_main]

use azure_telemetry::ConnectionString;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match ConnectionString::parse(text) {
        Ok(cs) => {
            let key = cs.instrumentation_key();
            assert_eq!(key.len(), 36);
            assert!(!format!("{cs:?}").contains(key));
            for url in [cs.ingestion_endpoint(), cs.live_endpoint()] {
                assert!(url.starts_with("https://") || url.starts_with("http://"), "{url}");
                assert!(!url.ends_with('/'), "{url}");
            }
            let again = ConnectionString::parse(&format!(
                "InstrumentationKey={key};IngestionEndpoint={};LiveEndpoint={}",
                cs.ingestion_endpoint(),
                cs.live_endpoint()
            ))
            .expect("its own parts parse");
            assert_eq!(again.track_url(), cs.track_url());
        }
        Err(e) => {
            assert!(e.is_invalid_connection_string());
            assert!(e.to_string().len() < 300);
        }
    }
});
