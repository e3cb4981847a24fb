//! Project automation, in the style of rust-analyzer's xtask: `cargo xtask <command>`.
//!
//! Commands:
//! - `ci [--keep-going]`: every check CI runs, as named steps, ending with a step table.
//! - `conformance [--client | --server] [--scenario <name>]...`: run the official MCP
//!   conformance suite against our client and against our server (started on loopback), one
//!   scenario at a time, ending with a scenario table.
//! - `interop [<filter>]...`: run our client against real MCP servers nobody in this project
//!   wrote (Python SDK, server-everything, rmcp), one test at a time, ending with a table.
//! - `bench [transport|codec|all] [--quick]`: run the benchmarks (transport: ours vs rmcp vs
//!   raw hyper).
//! - `fuzz [<target>...] [--seconds N]`: run the fuzz targets, each for a bounded time.
//! - `setup`: install what the checks need (cargo-deny and its advisory database, Node and the
//!   conformance suites, the interop peers) into the project cache (`~/.cache/mcp-scheduler`, or
//!   `$MCP_SCHEDULER_CACHE`).

#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

mod bench;
mod ci;
mod conformance;
mod fuzz;
mod interop;
mod tools;

#[cfg(test)]
mod tidy;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci [--keep-going]   run every CI step and print a step table
  conformance [--client | --server] [--scenario <name>]...
                      run the MCP conformance suite against our client and our
                      server (all scenarios, or one side, or the named ones;
                      `server:<name>` picks a server scenario) and print a table
  interop [<filter>]...
                      run our client against real MCP servers (all tests, or
                      those whose names contain a filter) and print a table
  bench [transport|codec|all] [--quick]
                      run benchmarks (transport: ours vs rmcp vs raw hyper)
  fuzz [<target>...] [--seconds N]
                      run fuzz targets for N seconds each (default 60)
  setup               install what the CI steps need into the project cache
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "ci" => ci::command(rest),
        "conformance" => conformance::command(rest),
        "interop" => interop::command(rest),
        "bench" => bench::command(rest),
        "fuzz" => fuzz::command(rest),
        "setup" => tools::setup(),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
