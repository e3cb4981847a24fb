//! `cargo xtask bench [transport|server|codec|token_cache|resilience|resilience_overhead|all] [--quick]`:
//! runs the benchmarks in `benches/`.
//!
//! - `transport`: our MCP client vs the rmcp 3.x client vs a raw hyper POST (the floor), c=1
//!   and c=64, against an rmcp server in a separate process; the table is printed and written
//!   to `<target>/bench-results/transport.md`. `--quick` runs one short round.
//! - `server`: the Scheduler MCP service (`mcp-scheduler serve`, release, auth on) under 64
//!   concurrent `scheduleConversation` callers, its dispatch lateness with 100,000 pending
//!   conversations, and its peak RSS, against a minimal Python `mcp` server doing the same
//!   inserts (the interop venv's Python); written to `<target>/bench-results/server.md`.
//!   `--quick` runs short (10,000 pending).
//! - `codec`: criterion benchmarks of the JSON-RPC and SSE decoders.
//! - `token_cache`: criterion benchmarks of `mcp-auth`'s warm-cache `token()`, uncontended and
//!   on 1, 2, 4 and 8 threads (ns per call per thread).
//! - `resilience`: retry strategies in simulated time (no sleeping, fixed seeds): the AWS
//!   backoff simulator (clients contending on one optimistic-concurrency row) with none,
//!   exponential, equal, full and decorrelated jitter and ours (full jitter + `RetryBudget`),
//!   and retry amplification against an overloaded server with and without the budget;
//!   written to `<target>/bench-results/resilience.md`. `--quick` runs fewer rounds.
//! - `resilience_overhead`: criterion benchmarks of the happy-path cost of
//!   `RetryPolicy::execute` with budget, breaker, backoff, deadline and attempt timeout.

use crate::tools::{cargo, run};

const BENCHES: &[&str] = &[
    "transport",
    "server",
    "codec",
    "token_cache",
    "resilience",
    "resilience_overhead",
];

pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let mut quick = false;
    let mut names = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            "all" => names.extend(BENCHES.iter().map(|s| s.to_string())),
            name if BENCHES.contains(&name) => names.push(name.to_owned()),
            other => {
                return Err(format!(
                    "unknown benchmark `{other}`; usage: bench [{}|all] [--quick]",
                    BENCHES.join("|")
                ));
            }
        }
    }
    if names.is_empty() {
        names.push("transport".to_owned());
    }
    for name in names {
        let mut cmd = cargo();
        cmd.args(["bench", "--locked", "-p", "benches", "--bench", &name]);
        if quick {
            cmd.args(["--", "--quick"]);
        }
        run(&mut cmd)?;
    }
    Ok(())
}
