//! Fuzzes the `x-mcp-header` reader on server-provided tool schemas: arbitrary JSON never
//! panics, and every accepted header name is a non-empty HTTP token whose value lookup works.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_transport::http::headers::{lookup, param_headers};

fuzz_target!(|input: &[u8]| {
    let Ok(serde_json::Value::Object(schema)) = serde_json::from_slice(input) else {
        return;
    };
    if let Ok(headers) = param_headers(&schema) {
        for h in &headers {
            assert!(!h.name.is_empty());
            assert!(http::HeaderName::try_from(format!("mcp-param-{}", h.name)).is_ok());
            let _ = lookup(&serde_json::Value::Object(schema.clone()), &h.path);
        }
    }
});
