//! Repository rules as ordinary tests (after rust-analyzer's `tidy.rs`): `cargo test` enforces
//! them, and `cargo xtask ci` runs them with every other test.

use std::path::{Path, PathBuf};

use crate::tools::root;

/// Every Rust source file of the repository, skipping build output and fuzz artifacts.
fn rust_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(
                    name.as_ref(),
                    "target" | ".git" | "node_modules" | "corpus" | "artifacts" | "coverage"
                ) && !name.starts_with('.')
                {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &mut out);
    out.sort();
    assert!(
        out.len() > 10,
        "tidy found too few Rust files under {}",
        root().display()
    );
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let offenders: Vec<String> = rust_files()
        .into_iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| rel(&p))
        .collect();
    assert!(
        offenders.is_empty(),
        "these files must start with a `//!` doc comment saying what they are:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn no_trailing_whitespace_or_tabs_in_rust_files() {
    let mut offenders = Vec::new();
    for path in rust_files() {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if line.ends_with([' ', '\t']) || line.contains('\t') {
                offenders.push(format!("{}:{}", rel(&path), i + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "trailing whitespace or tabs:\n  {}",
        offenders.join("\n  ")
    );
}

/// Parts of a file that count as test code: everything from the first `#[cfg(test)]` on, and
/// whole files under `tests/`, `benches/`, `fuzz/`, `testkit/` or `examples/`.
fn non_test_part(path: &Path, text: &str) -> Option<String> {
    let r = rel(path);
    let test_dirs = [
        "tests/",
        "benches/",
        "fuzz/",
        "crates/testkit/",
        "examples/",
    ];
    if test_dirs
        .iter()
        .any(|d| r.starts_with(d) || r.contains(&format!("/{d}")))
    {
        return None;
    }
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    Some(text[..end].to_owned())
}

/// Returns a description of the first secret-like literal in `text`, if any.
fn secret_like(text: &str) -> Option<String> {
    // A JWT: base64url JSON header `eyJ...` with at least two dot-separated segments.
    let jwt_start = ["ey", "J"].concat();
    for (at, _) in text.match_indices(&jwt_start) {
        let token: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if token.len() >= 30 && token.matches('.').count() >= 2 {
            return Some(format!("a JWT-like literal `{}…`", &token[..8]));
        }
    }
    // A PEM private key with a body: the label followed by a long base64 run (a parser that
    // only names the label, or a doc example with a stub body, is not a key).
    let pem = ["PRIVATE", " KEY-----"].concat();
    for (at, _) in text.match_indices(&pem) {
        let body = text[at + pem.len()..]
            .replace("\\n", "\n")
            .chars()
            .take_while(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '\n' | '\r' | ' ' | '\\')
            })
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/'))
            .count();
        if body >= 64 {
            return Some("a PEM private key".into());
        }
    }
    for marker in ["AccountKey=", "SharedAccessKey=", "client_secret="] {
        for (at, _) in text.match_indices(marker) {
            let value: String = text[at + marker.len()..]
                .chars()
                .take_while(|c| !matches!(c, '"' | ';' | '&' | ' ' | '\n' | '{' | '<'))
                .collect();
            if value.len() >= 16 {
                return Some(format!("a literal `{marker}` value"));
            }
        }
    }
    // `api_key = "…"`, `password: "…"` and friends with a literal of 8+ characters.
    for name in [
        "api_key",
        "apikey",
        "client_secret",
        "password",
        "access_token",
    ] {
        for (at, _) in text.match_indices(name) {
            let rest = text[at + name.len()..].trim_start();
            let Some(rest) = rest.strip_prefix(['=', ':']) else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            let literal: String = rest.chars().take_while(|c| *c != '"').collect();
            if literal.len() >= 8 && !literal.contains(['<', '{', ' ']) {
                return Some(format!("a literal assigned to `{name}`"));
            }
        }
    }
    None
}

#[test]
fn no_secret_like_literals_in_non_test_code() {
    let me = root().join("xtask/src/tidy.rs");
    let mut offenders = Vec::new();
    for path in rust_files() {
        if path == me {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(code) = non_test_part(&path, &text)
            && let Some(what) = secret_like(&code)
        {
            offenders.push(format!("{}: {what}", rel(&path)));
        }
    }
    assert!(
        offenders.is_empty(),
        "secret-like literals belong in tests only (use a placeholder or the environment):\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn secret_detector_catches_what_it_should_and_nothing_else() {
    let jwt = ["ey", "JhbGciOiJIUzI1NiJ9.", "eyJzdWIiOiJ4In0.c2lnbmF0dXJl"].concat();
    assert!(secret_like(&format!("let t = \"{jwt}\";")).is_some());
    assert!(secret_like(&["let api_key", " = \"0123456789abcdef\";"].concat()).is_some());
    assert!(
        secret_like(
            &[
                "\"DefaultEndpointsProtocol=https;Account",
                "Key=",
                "abcdefghijklmnopqrstuvwxyz==\""
            ]
            .concat()
        )
        .is_some()
    );
    let label = ["-----BEGIN PRIVATE", " KEY-----"].concat();
    assert!(
        secret_like(&format!(
            "{label}\n{}\n",
            "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49".repeat(3)
        ))
        .is_some()
    );
    assert!(
        secret_like(&format!(
            "\"{label}\\n{}\\n\"",
            "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49".repeat(3)
        ))
        .is_some()
    );
    assert!(secret_like(&format!("find(\"{label}\")")).is_none());
    assert!(secret_like(&format!("\"{label}\\nAAAA\\n-----END\"")).is_none());
    assert!(secret_like("#[serde(rename = \"api_key\")] api_key: Secret,").is_none());
    assert!(secret_like("let api_key = \"<your-api-key>\";").is_none());
    assert!(secret_like("let api_key = std::env::var(\"SCHEDULER_API_KEY\");").is_none());
}
