//! Fuzzes the RFC 9728 protected-resource and RFC 8414 authorization-server metadata parsers:
//! arbitrary bytes must give a document or an error naming what is wrong, never a panic; a
//! parsed document keeps its required members non-empty.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth::oauth::{AuthorizationServerMetadata, ProtectedResourceMetadata};

fuzz_target!(|input: &[u8]| {
    match ProtectedResourceMetadata::from_json(input) {
        Ok(prm) => {
            assert!(!prm.resource().is_empty());
            let _ = format!("{prm:?}");
        }
        Err(e) => assert!(e.is_discovery(), "{e:?}"),
    }
    match AuthorizationServerMetadata::from_json(input) {
        Ok(asm) => {
            assert!(!asm.issuer().is_empty());
            let _ = asm.supports_auth_method("client_secret_basic");
            let _ = format!("{asm:?}");
        }
        Err(e) => assert!(e.is_discovery(), "{e:?}"),
    }
});
