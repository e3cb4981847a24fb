//! `cargo xtask interop`: our MCP client against servers nobody in this project wrote.
//!
//! Installs the peers (once; later runs reuse them) under `<cache>/interop/`:
//! - a Python venv with the official SDK `mcp` ([`PYTHON_MCP`]), which runs
//!   `interop/peers/python_server.py`;
//! - the npm package `@modelcontextprotocol/server-everything` ([`EVERYTHING_VERSION`]), on the
//!   `node` from `PATH` when it is Node ≥ 18, else on `node@22` installed next to it;
//!
//! builds `rmcp-echo-server` (package `interop`, on rmcp) and the `interop` test binary, runs
//! each `#[ignore]`d test of `interop/tests/interop.rs` on its own with the peers' locations in
//! `MCP_INTEROP_*` variables, and prints a table. Every peer listens on 127.0.0.1 only, except
//! server-everything, which binds every interface and therefore runs inside a private network
//! namespace (`unshare -rn`) that its test creates. Each test's output lands in
//! `<target dir>/interop-results/<test>.log`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{cache_dir, cargo, root, run};

/// The Python MCP SDK version the Python peer runs on.
pub(crate) const PYTHON_MCP: &str = "2.3.0";

/// The npm package of the TypeScript reference server.
const EVERYTHING_PACKAGE: &str = "@modelcontextprotocol/server-everything";

/// Its pinned version (the latest on npm when pinned; runs offline, on Node ≥ 18).
pub(crate) const EVERYTHING_VERSION: &str = "2026.8.31";

/// The Node installed next to server-everything when `PATH` has none recent enough.
const NODE_PACKAGE: &str = "node@22";

/// Oldest Node major version server-everything (its SDK) runs on.
const MIN_NODE_MAJOR: u32 = 18;

/// How long one test may take before it is killed.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// The package, binary and test target under test.
const PACKAGE: &str = "interop";
const RMCP_SERVER_BIN: &str = "rmcp-echo-server";
const TEST_TARGET: &str = "interop";

const USAGE: &str = "usage: cargo xtask interop [<test name filter>]...";

/// Where the interop peers are installed.
fn interop_dir() -> PathBuf {
    cache_dir().join("interop")
}

/// The cargo target directory: `$CARGO_TARGET_DIR` (relative to the workspace root, where we
/// run cargo) or `<root>/target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| root().join("target"), |d| root().join(d))
}

/// Runs `cmd` and returns its trimmed stdout if it exits successfully.
fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

// ---------------------------------------------------------------------------------------------
// Installing the peers.

/// The Python peer: a venv with `mcp==PYTHON_MCP`. Returns its `python`.
fn install_python() -> Result<PathBuf, String> {
    let venv = interop_dir().join(format!("python-mcp-{PYTHON_MCP}"));
    let python = venv.join("bin").join("python");
    let installed = || {
        output_of(Command::new(&python).args([
            "-c",
            "import importlib.metadata as m, mcp.server.mcpserver; print(m.version('mcp'))",
        ]))
    };
    if installed().as_deref() == Some(PYTHON_MCP) {
        return Ok(python);
    }
    println!(
        "installing Python mcp=={PYTHON_MCP} into {}",
        venv.display()
    );
    let python3 = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    run(Command::new(&python3)
        .args(["-m", "venv", "--clear"])
        .arg(&venv))
    .map_err(|e| format!("{e} (the Python peer needs python3 ≥ 3.10 with the venv module)"))?;
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        &format!("mcp=={PYTHON_MCP}"),
    ]))
    .map_err(|e| format!("{e} (installing the Python peer needs PyPI)"))?;
    match installed() {
        Some(v) if v == PYTHON_MCP => Ok(python),
        other => Err(format!(
            "pip finished, but {} reports mcp {other:?}, not {PYTHON_MCP}",
            python.display()
        )),
    }
}

/// The major version of the Node at `node`, if it runs.
fn node_major(node: &Path) -> Option<u32> {
    let version = output_of(Command::new(node).arg("--version"))?;
    version
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The `version` field of the package.json at `path`, if any.
fn package_version(path: &Path) -> Option<String> {
    let json = std::fs::read_to_string(path).ok()?;
    let at = json.find("\"version\"")?;
    let rest = json[at + "\"version\"".len()..]
        .trim_start()
        .strip_prefix(':')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// The TypeScript peer: returns (node, `dist/index.js` of server-everything).
fn install_everything() -> Result<(PathBuf, PathBuf), String> {
    let dir = interop_dir().join(format!("server-everything-{EVERYTHING_VERSION}"));
    let package = dir.join("node_modules").join(EVERYTHING_PACKAGE);
    let index = package.join("dist").join("index.js");
    let local_node = dir.join("node_modules/node/bin/node");
    let path_node = PathBuf::from("node");
    let path_node_ok = node_major(&path_node).is_some_and(|m| m >= MIN_NODE_MAJOR);
    let ready = |need_local_node: bool| {
        index.exists()
            && package_version(&package.join("package.json")).as_deref() == Some(EVERYTHING_VERSION)
            && (!need_local_node || node_major(&local_node).is_some_and(|m| m >= MIN_NODE_MAJOR))
    };
    if !ready(!path_node_ok) {
        println!(
            "installing {EVERYTHING_PACKAGE}@{EVERYTHING_VERSION}{} into {}",
            if path_node_ok {
                String::new()
            } else {
                format!(" and {NODE_PACKAGE}")
            },
            dir.display()
        );
        crate::tools::npm_folder(&dir)?;
        let mut npm = Command::new("npm");
        npm.current_dir(&dir).args([
            "install",
            "--no-audit",
            "--no-fund",
            "--save-exact",
            &format!("{EVERYTHING_PACKAGE}@{EVERYTHING_VERSION}"),
        ]);
        if !path_node_ok {
            npm.arg(NODE_PACKAGE);
        }
        run(&mut npm).map_err(|e| {
            format!("{e} (installing server-everything needs npm and the registry)")
        })?;
        if !ready(!path_node_ok) {
            return Err(format!(
                "npm finished, but {} lacks {EVERYTHING_PACKAGE} {EVERYTHING_VERSION}{}",
                dir.display(),
                if path_node_ok {
                    ""
                } else {
                    " or a working Node"
                }
            ));
        }
    }
    let node = if path_node_ok {
        // Resolve it, so the tests (and the namespace they re-run in) use this exact Node.
        output_of(Command::new("sh").args(["-c", "command -v node"]))
            .map_or(path_node, PathBuf::from)
    } else {
        local_node
    };
    Ok((node, index))
}

/// Installs every interop peer (for `cargo xtask setup`); returns what was installed where.
pub(crate) fn install_all() -> Result<Vec<(&'static str, PathBuf)>, String> {
    let python = install_python()?;
    let (node, everything) = install_everything()?;
    Ok(vec![
        ("python (mcp)", python),
        ("node", node),
        ("server-everything", everything),
    ])
}

// ---------------------------------------------------------------------------------------------
// Building and running.

/// Builds `rmcp-echo-server` and the test binary; returns (server, test binary).
fn build() -> Result<(PathBuf, PathBuf), String> {
    run(cargo().args(["build", "--locked", "--package", PACKAGE, "--bins"]))?;
    let server = target_dir()
        .join("debug")
        .join(format!("{RMCP_SERVER_BIN}{}", std::env::consts::EXE_SUFFIX));
    if !server.exists() {
        return Err(format!(
            "built {RMCP_SERVER_BIN}, but {} is missing",
            server.display()
        ));
    }
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--locked",
        "--package",
        PACKAGE,
        "--test",
        TEST_TARGET,
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    println!("$ {cmd:?}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo test --no-run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the interop tests failed with {}",
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tests = stdout
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .filter(|l| l.contains(&format!("\"name\":\"{TEST_TARGET}\"")))
        .filter(|l| l.contains("\"kind\":[\"test\"]"))
        .find_map(|l| json_string(l, "executable"))
        .map(PathBuf::from)
        .ok_or("cargo did not report the interop test executable")?;
    Ok((server, tests))
}

/// The string value of `"key":"..."` in one line of cargo's JSON output (handles `\"` and `\\`).
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut value = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// The ignored tests of the test binary (`--list --ignored` prints `name: test`).
fn list_tests(binary: &Path) -> Result<Vec<String>, String> {
    let listing = output_of(Command::new(binary).args(["--list", "--ignored"]))
        .ok_or_else(|| format!("{} --list --ignored failed", binary.display()))?;
    Ok(listing
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect())
}

/// The peer a test talks to, from its name (`python_stateful_auto` → `python`).
fn peer_of(test: &str) -> &str {
    test.split('_').next().unwrap_or(test)
}

/// What running one test gave.
struct Outcome {
    failure: Option<String>,
    seconds: f64,
}

/// Runs one test on its own, keeping its output in `results`.
fn run_test(binary: &Path, test: &str, env: &[(&str, PathBuf)], results: &Path) -> Outcome {
    let mut cmd = Command::new(binary);
    cmd.args([
        "--ignored",
        "--exact",
        test,
        "--nocapture",
        "--test-threads=1",
    ])
    .current_dir(root().join(PACKAGE))
    // What cargo would set for the package's tests (this process has xtask's).
    .env("CARGO_MANIFEST_DIR", root().join(PACKAGE))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let shown = format!("{binary:?} --ignored --exact {test}");
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome {
                failure: Some(format!("could not start {shown}: {e}")),
                seconds: 0.0,
            };
        }
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if started.elapsed() > TEST_TIMEOUT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let seconds = started.elapsed().as_secs_f64();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let ran = stdout.contains("test result: ok. 1 passed");
    let failure = if timed_out {
        Some(format!(
            "ran over {}s and was killed",
            TEST_TIMEOUT.as_secs()
        ))
    } else if !status.is_some_and(|s| s.success()) {
        Some(format!(
            "failed ({})",
            status.map_or("?".into(), |s| s.to_string())
        ))
    } else if !ran {
        Some("exited successfully but did not report one passed test".into())
    } else {
        None
    };
    let log = format!("$ {shown}\n\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    let log_path = results.join(format!("{test}.log"));
    if let Err(e) = std::fs::write(&log_path, &log) {
        eprintln!("could not write {}: {e}", log_path.display());
    }
    if let Some(why) = &failure {
        println!("{log}");
        println!(
            "interop test {test} {why}; output kept in {}",
            log_path.display()
        );
    }
    Outcome { failure, seconds }
}

/// Reads a child's pipe to the end on a thread (so neither pipe can fill up and stall it).
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Installs the peers, builds, runs the tests whose names contain one of `filters` (all when
/// empty) and prints a table.
fn run_interop(filters: &[&str]) -> Result<(), String> {
    let started = Instant::now();
    let python = install_python()?;
    println!(
        "python peer (mcp {PYTHON_MCP}): {} [{:.1}s]",
        python.display(),
        started.elapsed().as_secs_f64()
    );
    let step = Instant::now();
    let (node, everything) = install_everything()?;
    println!(
        "server-everything {EVERYTHING_VERSION}: {} on {} [{:.1}s]",
        everything.display(),
        node.display(),
        step.elapsed().as_secs_f64()
    );
    let step = Instant::now();
    let (server, binary) = build()?;
    println!(
        "built {} and {} [{:.1}s]",
        server.display(),
        binary.display(),
        step.elapsed().as_secs_f64()
    );
    let env = [
        ("MCP_INTEROP_PYTHON", python),
        ("MCP_INTEROP_NODE", node),
        ("MCP_INTEROP_EVERYTHING", everything),
        ("MCP_INTEROP_RMCP_SERVER", server),
    ];

    let tests: Vec<String> = list_tests(&binary)?
        .into_iter()
        .filter(|t| filters.is_empty() || filters.iter().any(|f| t.contains(f)))
        .collect();
    if tests.is_empty() {
        return Err(format!("no interop test matches {filters:?}"));
    }
    let results = target_dir().join("interop-results");
    std::fs::create_dir_all(&results).map_err(|e| format!("create {}: {e}", results.display()))?;

    let mut rows: Vec<(&str, Outcome)> = Vec::new();
    for test in &tests {
        println!("interop {test} ...");
        let outcome = run_test(&binary, test, &env, &results);
        rows.push((test, outcome));
    }

    println!(
        "\n{:<12} {:<30} {:<7} {:>8}",
        "peer", "test", "result", "seconds"
    );
    for (test, o) in &rows {
        let result = if o.failure.is_some() { "failed" } else { "ok" };
        println!(
            "{:<12} {test:<30} {result:<7} {:>8.1}",
            peer_of(test),
            o.seconds
        );
    }
    let passed = rows.iter().filter(|(_, o)| o.failure.is_none()).count();
    println!(
        "passed {passed}/{} interop tests in {:.1}s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    println!("results: {}", results.display());
    if passed == rows.len() {
        Ok(())
    } else {
        Err(format!(
            "{} interop test(s) failed (see the table above)",
            rows.len() - passed
        ))
    }
}

/// `cargo xtask interop [<filter>]...`.
pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let mut filters: Vec<&str> = Vec::new();
    for arg in args {
        match arg.as_str() {
            "-h" | "--help" => {
                println!(
                    "{USAGE}\n\nRuns the interop tests (all, or those whose names contain a \
                     filter) against the Python SDK, server-everything and rmcp."
                );
                return Ok(());
            }
            flag if flag.starts_with('-') => {
                return Err(format!("`interop` does not take `{flag}`; {USAGE}"));
            }
            filter => filters.push(filter),
        }
    }
    run_interop(&filters)
}

/// The `interop` step of `cargo xtask ci`: every test.
pub(crate) fn ci_step() -> Result<(), String> {
    run_interop(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_test_executable_in_cargo_json() {
        let line = r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"interop"},"executable":"/w/target/debug/deps/interop-0a1b","fresh":true}"#;
        assert_eq!(
            json_string(line, "executable").as_deref(),
            Some("/w/target/debug/deps/interop-0a1b")
        );
        assert_eq!(
            json_string(r#"{"executable":"C:\\t\\a \"b\""}"#, "executable").as_deref(),
            Some("C:\\t\\a \"b\"")
        );
        assert_eq!(json_string(r#"{"executable":null}"#, "executable"), None);
    }

    #[test]
    fn names_the_peer_of_a_test() {
        assert_eq!(peer_of("python_stateful_auto"), "python");
        assert_eq!(peer_of("everything_2025_11_25"), "everything");
        assert_eq!(peer_of("rmcp"), "rmcp");
    }

    #[test]
    fn reads_a_package_version() {
        let dir = std::env::temp_dir().join(format!("xtask-interop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("package.json");
        std::fs::write(&path, "{\"name\": \"x\", \"version\" : \"2026.8.31\"}").unwrap();
        assert_eq!(package_version(&path).as_deref(), Some("2026.8.31"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
