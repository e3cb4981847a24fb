//! Support shared by the benchmark harnesses in `benches/` (the benchmarks themselves live
//! there):
//!
//! - `codec`: the JSON-RPC and SSE decoders (criterion).
//! - `transport`: our MCP client vs rmcp's vs a raw hyper POST.
//! - `server`: the Scheduler service vs a Python `mcp` baseline.

#![allow(clippy::unwrap_used, reason = "benchmark support fails loudly")]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    // `cargo bench` sets it at run time; prefer that to the compiled-in path, which is stale
    // when the target directory is shared with a clone at another path (CI's cache).
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.ends_with("benches") && dir.is_dir())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, relative to the root if relative).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_relative() {
                workspace_root().join(p)
            } else {
                p
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// A release binary of this workspace: the path in `$override_var` if set, else built with
/// `cargo build --release -p <package> --bin <bin>`.
pub fn release_binary(package: &str, bin: &str, override_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "--quiet", "-p", package, "--bin", bin])
        .status()
        .unwrap_or_else(|e| panic!("run cargo to build {bin}: {e}"));
    assert!(status.success(), "building {bin} failed");
    target_dir().join("release").join(bin)
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
pub fn ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU time of process `pid` (or `self`) so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: &str, ticks_per_sec: f64) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`; utime and stime are fields 14 and 15 of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / ticks_per_sec)
}

/// The `p`-quantile (0..=1) of sorted samples, in their unit; 0 when empty.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64
}

/// The median; 0 when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Waits (at most `timeout`) for a child's first stdout line `listening on <url>` and
/// returns `<url>`; panics naming `who` otherwise.
pub fn listening_url(stdout: impl Read + Send + 'static, timeout: Duration, who: &str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("{who} printed no address within {timeout:?}"));
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from {who}: {line:?}"))
        .to_owned()
}

/// Polls a future once and returns its output: for benchmarks of paths that must finish on
/// the first poll (a warm cache, a happy-path policy). Panics if the future is pending,
/// naming `what`.
pub fn ready<F: std::future::Future>(future: F, what: &str) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("{what} did not finish on the first poll"),
    }
}
