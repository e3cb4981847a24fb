//! `cargo xtask ci`: the checks CI runs, as a list of named steps, ending with a table.

use std::process::Command;
use std::time::Instant;

use crate::tools::{self, cargo, probe, run};

struct Step {
    name: &'static str,
    run: fn() -> Result<(), String>,
}

const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        run: fmt,
    },
    Step {
        name: "clippy",
        run: clippy,
    },
    Step {
        name: "test",
        run: test,
    },
    Step {
        name: "conformance",
        run: crate::conformance::ci_step,
    },
    Step {
        name: "interop",
        run: crate::interop::ci_step,
    },
    Step {
        name: "doc",
        run: doc,
    },
    Step {
        name: "deny",
        run: deny,
    },
    Step {
        name: "fuzz-check",
        run: fuzz_check,
    },
    Step {
        name: "fuzz",
        run: crate::fuzz::ci_step,
    },
    Step {
        name: "bench-build",
        run: bench_build,
    },
];

pub(crate) fn run_ci(keep_going: bool) -> Result<(), String> {
    // (step, outcome — `None` when skipped after an earlier failure, seconds)
    type Row = (&'static str, Option<Result<(), String>>, f64);
    let mut results: Vec<Row> = Vec::new();
    let mut failed = false;
    for step in STEPS {
        if failed && !keep_going {
            results.push((step.name, None, 0.0));
            continue;
        }
        println!("\n=== {} ===", step.name);
        let started = Instant::now();
        let outcome = (step.run)();
        if let Err(message) = &outcome {
            eprintln!("step `{}` failed: {message}", step.name);
            failed = true;
        }
        results.push((step.name, Some(outcome), started.elapsed().as_secs_f64()));
    }
    println!("\n{:<14} {:<8} {:>9}", "step", "result", "seconds");
    for (name, outcome, secs) in &results {
        let result = match outcome {
            Some(Ok(())) => "ok",
            Some(Err(_)) => "failed",
            None => "skipped",
        };
        println!("{name:<14} {result:<8} {secs:>9.1}");
    }
    let total: f64 = results.iter().map(|r| r.2).sum();
    println!(
        "{:<14} {:<8} {total:>9.1}",
        "total",
        if failed { "failed" } else { "ok" }
    );
    if failed {
        Err("some CI steps failed (see the table above)".into())
    } else {
        Ok(())
    }
}

pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let mut keep_going = false;
    for arg in args {
        match arg.as_str() {
            "--keep-going" | "-k" => keep_going = true,
            other => {
                return Err(format!(
                    "`ci` does not take `{other}`; usage: ci [--keep-going]"
                ));
            }
        }
    }
    run_ci(keep_going)
}

fn fmt() -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))
}

fn clippy() -> Result<(), String> {
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))
}

fn test() -> Result<(), String> {
    if probe(cargo().args(["nextest", "--version"])) {
        run(cargo().args([
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--locked",
            "--no-fail-fast",
        ]))?;
        // nextest does not run doctests.
        run(cargo().args(["test", "--workspace", "--all-features", "--locked", "--doc"]))
    } else {
        run(cargo().args([
            "test",
            "--workspace",
            "--all-features",
            "--locked",
            "--no-fail-fast",
        ]))
    }
}

fn doc() -> Result<(), String> {
    run(cargo()
        .args([
            "doc",
            "--workspace",
            "--all-features",
            "--no-deps",
            "--locked",
        ])
        .env("RUSTDOCFLAGS", "-D warnings"))
}

fn deny() -> Result<(), String> {
    let deny = tools::cargo_deny()?;
    let offline = tools::advisory_db()?;
    let mut cmd = Command::new(deny);
    if offline {
        // `--offline` also stops cargo-deny's `cargo metadata` from downloading crates of
        // other platforms, so fetch them (from the registry, which is reachable) first.
        run(cargo().args(["fetch", "--locked"]))?;
    }
    cmd.current_dir(tools::root()).arg("deny");
    if offline {
        cmd.arg("--offline");
    }
    // Every optional dependency (mcp-auth's azure_core, ...) is checked too.
    run(cmd.args(["--all-features", "check"]))
}

fn fuzz_check() -> Result<(), String> {
    run(cargo().args([
        "check",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--locked",
        "--bins",
    ]))
}

fn bench_build() -> Result<(), String> {
    run(cargo().args(["bench", "--workspace", "--locked", "--no-run"]))
}
