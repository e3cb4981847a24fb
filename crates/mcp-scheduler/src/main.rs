//! `mcp-scheduler`: the command-line tool of the Scheduler workspace.
//!
//! Its subcommands (`demo`, `serve`, `schedule`, `status`, `list`, `cancel`, `tools`, `health`,
//! `config`, `functions-handler`) land with the scheduler + CLI issues. Until then the binary
//! says so and exits with a usage error instead of pretending to work.

use std::process::ExitCode;

fn main() -> ExitCode {
    let version = env!("CARGO_PKG_VERSION");
    let command = std::env::args().nth(1);
    match command.as_deref() {
        Some("--version" | "-V") => {
            eprintln!("mcp-scheduler {version}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "mcp-scheduler {version}: `{other}` is not available yet; the CLI lands with the \
                 scheduler + CLI issues (see README.md for what runs today)"
            );
            ExitCode::from(2)
        }
        None => {
            eprintln!(
                "mcp-scheduler {version}: no subcommands are available yet; see README.md for \
                 what runs today"
            );
            ExitCode::from(2)
        }
    }
}
