//! Fuzzes the Key Vault reference parser and the configuration walk that uses it: arbitrary
//! text must never panic; a reference that parses prints back (`Display`) to one that parses
//! to the same value; vault URLs built from it are https; and `references` over a JSON tree
//! holding the text agrees with `parse`.

#![no_main]

use azure_secrets::reference::{PUBLIC_VAULT_SUFFIX, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let parsed = parse(text);
    match &parsed {
        Ok(Some(reference)) => {
            let printed = reference.to_string();
            let again = parse(&printed)
                .unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e}"))
                .unwrap_or_else(|| panic!("{printed:?} is not a reference"));
            assert_eq!(&again, reference);
            for default in [None, Some("kv-default"), Some("https://kv.vault.azure.cn")] {
                if let Ok(url) = reference.vault_url(default, PUBLIC_VAULT_SUFFIX) {
                    assert!(url.starts_with("https://"), "{url}");
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            assert!(e.is_invalid_reference());
            // Errors stay short whatever the input.
            assert!(e.to_string().chars().count() < 1_000);
        }
    }
    let tree = serde_json::json!({ "a": [ { "b": text } ] });
    match (azure_secrets::resolve::references(&tree), &parsed) {
        (Ok(found), Ok(Some(r))) => {
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].0, "a[0].b");
            assert_eq!(&found[0].1, r);
        }
        (Ok(found), Ok(None)) => assert!(found.is_empty()),
        (Err(e), Err(_)) => assert!(e.to_string().contains("a[0].b")),
        (found, parsed) => panic!("references {found:?} disagree with parse {parsed:?}"),
    }
});
