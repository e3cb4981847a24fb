//! `cargo xtask fuzz [<target>...] [--seconds N]`: runs the cargo-fuzz targets in `fuzz/`
//! (libFuzzer), each for a bounded time; installs cargo-fuzz into the project cache if needed.
//! cargo-fuzz needs nightly-only compiler flags, which `RUSTC_BOOTSTRAP=1` allows on the
//! stable toolchain. `cargo xtask ci` runs every target briefly.

use std::path::PathBuf;
use std::process::Command;

use crate::tools::{cache_dir, cargo, probe, root, run};

/// cargo-fuzz version the project is vetted with.
const CARGO_FUZZ_VERSION: &str = "0.13.1";

/// Every fuzz target (the `[[bin]]`s of `fuzz/Cargo.toml`).
pub(crate) const TARGETS: &[&str] = &[
    "sse_decoder",
    "jsonrpc_decode",
    "tool_schema_headers",
    "tool_arguments",
    "www_authenticate",
    "oauth_metadata",
    "token_response",
    "retry_after",
    "keyvault_reference",
    "connection_string",
];

/// Seconds per target in `cargo xtask ci`.
const CI_SECONDS: u32 = 20;

fn cargo_fuzz() -> Result<PathBuf, String> {
    let cached = cache_dir().join("tools/bin/cargo-fuzz");
    if probe(Command::new(&cached).arg("--version")) {
        return Ok(cached);
    }
    run(cargo()
        .args([
            "install",
            "--locked",
            &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"),
            "--root",
        ])
        .arg(cache_dir().join("tools")))?;
    Ok(cached)
}

/// Installs cargo-fuzz (for `cargo xtask setup`).
pub(crate) fn install() -> Result<PathBuf, String> {
    cargo_fuzz()
}

fn fuzz(targets: &[&str], seconds: u32) -> Result<(), String> {
    let bin = cargo_fuzz()?;
    let mut failed = Vec::new();
    for target in targets {
        let corpus = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .map_err(|e| format!("create {}: {e}", corpus.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.current_dir(root())
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--fuzz-dir", "fuzz", target])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1");
        if let Err(e) = run(&mut cmd) {
            failed.push(format!("{target}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzz targets failed (crash inputs are under fuzz/artifacts/):\n  {}",
            failed.join("\n  ")
        ))
    }
}

pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let mut seconds = 60;
    let mut targets: Vec<&str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().ok_or("`--seconds` needs a value")?;
                seconds = value
                    .parse()
                    .map_err(|_| format!("`--seconds {value}` is not a number"))?;
            }
            name => match TARGETS.iter().find(|t| **t == name) {
                Some(t) => targets.push(t),
                None => {
                    return Err(format!(
                        "unknown fuzz target `{name}`; targets: {}",
                        TARGETS.join(", ")
                    ));
                }
            },
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    fuzz(&targets, seconds)
}

/// The `fuzz` step of `cargo xtask ci`: every target for a short, fixed time.
pub(crate) fn ci_step() -> Result<(), String> {
    fuzz(TARGETS, CI_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::TARGETS;

    #[test]
    fn every_fuzz_target_is_listed() {
        let manifest = std::fs::read_to_string(crate::tools::root().join("fuzz/Cargo.toml"))
            .expect("fuzz/Cargo.toml");
        let bins = manifest.matches("[[bin]]").count();
        assert_eq!(bins, TARGETS.len(), "fuzz/Cargo.toml and TARGETS disagree");
        for t in TARGETS {
            assert!(manifest.contains(&format!("name = \"{t}\"")), "{t} missing");
        }
    }
}
