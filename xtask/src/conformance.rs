//! `cargo xtask conformance`: runs the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`, from npm) against our client binary
//! `mcp-conformance-client`, one scenario at a time, and prints a table.
//!
//! Two suite versions are pinned: the stable one for spec 2025-11-25 and an alpha that also
//! covers 2026-07-28. Each is installed with Node 22 (the alpha crashes on Node 20) into
//! `<cache>/conformance/<suite version>/`, once; later runs reuse it. Results, including the
//! suite's own `checks.json` and our captured output, land in
//! `<target dir>/conformance-results/<suite version>/`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{cache_dir, cargo, root, run};

/// The stable suite; it covers spec 2025-11-25.
const STABLE: &str = "0.1.16";

/// The alpha suite; it covers spec 2026-07-28 (and 2025-11-25).
const ALPHA: &str = "0.2.0-alpha.12";

/// Every suite version a scenario below may name.
const SUITES: &[&str] = &[STABLE, ALPHA];

/// The npm package of the suite.
const PACKAGE: &str = "@modelcontextprotocol/conformance";

/// The Node the suite runs on, installed next to it from npm.
const NODE: &str = "node@22";

/// The package and binary of the client under test.
const CLIENT_PACKAGE: &str = "mcp-conformance";
const CLIENT_BIN: &str = "mcp-conformance-client";

/// Per-scenario limit the suite enforces on our client, in milliseconds.
const SCENARIO_TIMEOUT_MS: u64 = 30_000;

/// How long the suite itself may take for one scenario before we kill it.
const RUNNER_TIMEOUT: Duration = Duration::from_secs(SCENARIO_TIMEOUT_MS / 1000 + 90);

/// One scenario run: which suite, at which `--spec-version`, which `--scenario`.
struct Scenario {
    suite: &'static str,
    spec: &'static str,
    name: &'static str,
}

const fn scenario(suite: &'static str, spec: &'static str, name: &'static str) -> Scenario {
    Scenario { suite, spec, name }
}

/// The scenarios we run (authorization scenarios are out of scope).
const SCENARIOS: &[Scenario] = &[
    scenario(STABLE, "2025-11-25", "initialize"),
    scenario(STABLE, "2025-11-25", "tools_call"),
    scenario(STABLE, "2025-11-25", "elicitation-sep1034-client-defaults"),
    scenario(STABLE, "2025-11-25", "sse-retry"),
    scenario(ALPHA, "2025-11-25", "json-schema-2020-12-preservation"),
    scenario(ALPHA, "2026-07-28", "tools_call"),
    scenario(ALPHA, "2026-07-28", "request-metadata"),
    scenario(ALPHA, "2026-07-28", "sep-2322-client-request-state"),
    scenario(ALPHA, "2026-07-28", "http-standard-headers"),
    scenario(ALPHA, "2026-07-28", "http-custom-headers"),
    scenario(ALPHA, "2026-07-28", "http-invalid-tool-headers"),
    scenario(ALPHA, "2026-07-28", "json-schema-ref-no-deref"),
    scenario(ALPHA, "2026-07-28", "json-schema-2020-12-preservation"),
];

const USAGE: &str = "usage: cargo xtask conformance [--scenario <name>]...";

/// `cargo xtask conformance [--scenario <name>]...`.
pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let mut only: Vec<&str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--scenario" => {
                let Some(name) = args.next() else {
                    return Err(format!("`--scenario` needs a name; {USAGE}"));
                };
                only.push(name);
            }
            "-h" | "--help" => {
                println!("{USAGE}\n\nscenarios (suite, spec version, name):");
                for s in SCENARIOS {
                    println!("  {:<16} {:<11} {}", s.suite, s.spec, s.name);
                }
                return Ok(());
            }
            other => return Err(format!("`conformance` does not take `{other}`; {USAGE}")),
        }
    }
    if let Some(unknown) = only
        .iter()
        .find(|n| !SCENARIOS.iter().any(|s| s.name == **n))
    {
        let mut known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        known.sort_unstable();
        known.dedup();
        return Err(format!(
            "unknown scenario `{unknown}`; known: {}",
            known.join(", ")
        ));
    }
    let selected: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
        .collect();
    run_scenarios(&selected)
}

/// The `conformance` step of `cargo xtask ci`: every scenario.
pub(crate) fn ci_step() -> Result<(), String> {
    run_scenarios(&SCENARIOS.iter().collect::<Vec<_>>())
}

/// Where a suite version is installed.
fn suite_dir(version: &str) -> PathBuf {
    cache_dir().join("conformance").join(version)
}

/// The `version` of the suite package installed in `dir`, if any.
fn installed_version(dir: &Path) -> Option<String> {
    let manifest = dir.join("node_modules").join(PACKAGE).join("package.json");
    json_string_field(&std::fs::read_to_string(manifest).ok()?, "version")
}

/// The first `"key": "value"` string field of a JSON text (enough for a package.json).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let quoted = format!("\"{key}\"");
    let mut rest = json;
    while let Some(at) = rest.find(&quoted) {
        rest = &rest[at + quoted.len()..];
        if let Some(value) = rest.trim_start().strip_prefix(':')
            && let Some(value) = value.trim_start().strip_prefix('"')
            && let Some(end) = value.find('"')
        {
            return Some(value[..end].to_owned());
        }
    }
    None
}

/// True when `dir` holds Node, the suite's entry point, and the wanted suite version.
fn is_installed(dir: &Path, version: &str) -> bool {
    dir.join("node_modules/.bin/conformance").exists()
        && dir.join("node_modules/node/bin/node").exists()
        && installed_version(dir).as_deref() == Some(version)
}

/// Installs suite `version` and Node 22 into the cache unless already there; returns the
/// install directory.
fn install(version: &str) -> Result<PathBuf, String> {
    let dir = suite_dir(version);
    if is_installed(&dir, version) {
        return Ok(dir);
    }
    println!(
        "installing {PACKAGE}@{version} and {NODE} into {}",
        dir.display()
    );
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    // Without its own package.json, npm would install into a parent folder that has one.
    if !dir.join("package.json").exists() {
        run(Command::new("npm")
            .current_dir(&dir)
            .args(["init", "-y"])
            .stdout(Stdio::null()))?;
    }
    run(Command::new("npm").current_dir(&dir).args([
        "install",
        "--no-audit",
        "--no-fund",
        "--save-exact",
        NODE,
        &format!("{PACKAGE}@{version}"),
    ]))
    .map_err(|e| format!("{e} (installing the conformance suite needs npm and the registry)"))?;
    if is_installed(&dir, version) {
        Ok(dir)
    } else {
        Err(format!(
            "npm finished, but {} lacks node_modules/node/bin/node, node_modules/.bin/conformance \
             or {PACKAGE} {version}",
            dir.display()
        ))
    }
}

/// Installs every pinned suite version (for `cargo xtask setup`); returns their directories.
pub(crate) fn install_all() -> Result<Vec<PathBuf>, String> {
    SUITES.iter().map(|v| install(v)).collect()
}

/// The cargo target directory: `$CARGO_TARGET_DIR` (relative to the workspace root, where we
/// run cargo) or `<root>/target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| root().join("target"), |d| root().join(d))
}

/// Builds the client under test and returns the absolute path of its binary.
fn build_client() -> Result<PathBuf, String> {
    run(cargo().args([
        "build",
        "--locked",
        "--package",
        CLIENT_PACKAGE,
        "--bin",
        CLIENT_BIN,
    ]))
    .map_err(|e| {
        format!(
            "{e}\ncould not build the client under test (package `{CLIENT_PACKAGE}`, binary \
             `{CLIENT_BIN}`); it must be a workspace member"
        )
    })?;
    let bin = target_dir()
        .join("debug")
        .join(format!("{CLIENT_BIN}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        return Err(format!(
            "built {CLIENT_BIN}, but {} is missing",
            bin.display()
        ));
    }
    // The suite splits `--command` on spaces, so the path must not contain any.
    if bin.to_string_lossy().contains(char::is_whitespace) {
        return Err(format!(
            "the suite cannot run a client whose path has spaces: {}",
            bin.display()
        ));
    }
    Ok(bin)
}

/// The suite's `Passed: P/D, F failed, W warnings` line: `passed` of `total` scored checks
/// (SUCCESS or FAILURE) succeeded, `failed` failed, and `warnings` checks warned (a warning
/// fails the scenario too).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Summary {
    passed: u32,
    total: u32,
    failed: u32,
    warnings: u32,
}

/// The last `Passed: ...` line of the suite's output, if any.
fn parse_summary(output: &str) -> Option<Summary> {
    output.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix("Passed:")?;
        let (counts, rest) = rest.split_once(',')?;
        let (passed, total) = counts.trim().split_once('/')?;
        let (failed, warnings) = rest.split_once(',')?;
        Some(Summary {
            passed: passed.trim().parse().ok()?,
            total: total.trim().parse().ok()?,
            failed: failed.trim().strip_suffix("failed")?.trim().parse().ok()?,
            warnings: warnings
                .trim()
                .strip_suffix("warnings")?
                .trim()
                .parse()
                .ok()?,
        })
    })
}

/// Why a scenario failed, judging by the suite's exit status and summary line; `None` if it
/// passed.
fn verdict(exit_ok: bool, summary: Option<Summary>) -> Option<String> {
    let Some(s) = summary else {
        return Some("the suite printed no `Passed:` line (skipped or crashed)".into());
    };
    if s.warnings > 0 {
        Some(format!(
            "{} failed, {} warnings (a warning fails the scenario)",
            s.failed, s.warnings
        ))
    } else if s.failed > 0 {
        Some(format!("{} of {} checks failed", s.failed, s.total))
    } else if !exit_ok {
        Some("the suite exited with failure (client error or timeout)".into())
    } else if s.total == 0 {
        Some("no checks were scored (did the client send anything?)".into())
    } else {
        None
    }
}

/// What running one scenario gave.
struct Outcome {
    summary: Option<Summary>,
    failure: Option<String>,
    seconds: f64,
}

/// Runs one scenario through the suite installed in `suite_dir`, keeping the suite's output
/// in `results`.
fn run_one(
    scenario: &Scenario,
    suite_dir: &Path,
    client: &Path,
    results: &Path,
) -> Result<Outcome, String> {
    let mut cmd = Command::new(suite_dir.join("node_modules/node/bin/node"));
    cmd.current_dir(suite_dir)
        .arg("node_modules/.bin/conformance")
        .arg("client")
        .arg("--command")
        .arg(client)
        .args(["--scenario", scenario.name])
        .args(["--spec-version", scenario.spec])
        .args(["--timeout", &SCENARIO_TIMEOUT_MS.to_string()])
        .arg("-o")
        .arg(results)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("waiting for {shown}: {e}"))?
        {
            break status;
        }
        if started.elapsed() > RUNNER_TIMEOUT {
            timed_out = true;
            let _ = child.kill();
            break child
                .wait()
                .map_err(|e| format!("waiting for {shown}: {e}"))?;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let seconds = started.elapsed().as_secs_f64();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();

    let summary = parse_summary(&stderr).or_else(|| parse_summary(&stdout));
    let failure = if timed_out {
        Some(format!(
            "the suite ran over {}s and was killed",
            RUNNER_TIMEOUT.as_secs()
        ))
    } else {
        verdict(status.success(), summary)
    };
    let log = format!("$ {shown}\n{status}\n\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    let log_path = results.join(log_name(scenario));
    std::fs::write(&log_path, &log).map_err(|e| format!("write {}: {e}", log_path.display()))?;
    if let Some(why) = &failure {
        println!("{log}");
        println!(
            "scenario {} (suite {}, spec {}) failed: {why}; output kept in {}",
            scenario.name,
            scenario.suite,
            scenario.spec,
            log_path.display()
        );
    }
    Ok(Outcome {
        summary,
        failure,
        seconds,
    })
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

/// File name of the captured output of one scenario run.
fn log_name(scenario: &Scenario) -> String {
    format!("{}@{}.log", scenario.name, scenario.spec)
}

/// Removes earlier results of `scenarios` from `results` (the suite names its folders
/// `<scenario>-<timestamp>`), so the folder shows the latest run only.
fn clear_old_results(results: &Path, scenarios: &[&Scenario]) {
    let Ok(entries) = std::fs::read_dir(results) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let stale = scenarios.iter().any(|s| {
            name == log_name(s)
                || name
                    .strip_prefix(s.name)
                    .and_then(|r| r.strip_prefix('-'))
                    .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        });
        if stale {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Installs what `scenarios` need, builds the client, runs each scenario and prints a table.
fn run_scenarios(scenarios: &[&Scenario]) -> Result<(), String> {
    let client = build_client()?;
    let results_root = target_dir().join("conformance-results");
    let mut suites: Vec<(&str, PathBuf)> = Vec::new();
    for version in SUITES {
        let mine: Vec<&Scenario> = scenarios
            .iter()
            .copied()
            .filter(|s| s.suite == *version)
            .collect();
        if mine.is_empty() {
            continue;
        }
        suites.push((version, install(version)?));
        let results = results_root.join(version);
        std::fs::create_dir_all(&results)
            .map_err(|e| format!("create {}: {e}", results.display()))?;
        clear_old_results(&results, &mine);
    }

    let mut rows: Vec<(&Scenario, Outcome)> = Vec::new();
    for scenario in scenarios {
        let Some((_, dir)) = suites.iter().find(|(v, _)| *v == scenario.suite) else {
            continue;
        };
        println!(
            "conformance {} (suite {}, spec {}) ...",
            scenario.name, scenario.suite, scenario.spec
        );
        let outcome = run_one(scenario, dir, &client, &results_root.join(scenario.suite))?;
        rows.push((scenario, outcome));
    }

    println!(
        "\n{:<16} {:<11} {:<36} {:>7} {:<7} {:>8}",
        "suite", "spec", "scenario", "checks", "result", "seconds"
    );
    for (s, o) in &rows {
        let checks = o
            .summary
            .map_or_else(|| "-".to_owned(), |c| format!("{}/{}", c.passed, c.total));
        let result = if o.failure.is_some() { "failed" } else { "ok" };
        println!(
            "{:<16} {:<11} {:<36} {checks:>7} {result:<7} {:>8.1}",
            s.suite, s.spec, s.name, o.seconds
        );
    }
    let passed = rows.iter().filter(|(_, o)| o.failure.is_none()).count();
    println!("passed {passed}/{} scenarios", rows.len());
    println!("results: {}", results_root.display());
    if passed == rows.len() {
        Ok(())
    } else {
        Err(format!(
            "{} conformance scenario(s) failed (see the table above)",
            rows.len() - passed
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_passed_line() {
        let stderr = "Starting scenario: tools_call\nChecks:\n  [tool-add-numbers] SUCCESS\n\n\
                      Test Results:\nPassed: 3/4, 1 failed, 0 warnings\n\n❌ OVERALL: FAILED\n";
        assert_eq!(
            parse_summary(stderr),
            Some(Summary {
                passed: 3,
                total: 4,
                failed: 1,
                warnings: 0
            })
        );
        assert_eq!(
            parse_summary("Passed: 0/0, 0 failed, 2 warnings"),
            Some(Summary {
                passed: 0,
                total: 0,
                failed: 0,
                warnings: 2
            })
        );
        assert_eq!(
            parse_summary("SKIPPED: scenario 'initialize' is not applicable"),
            None
        );
        assert_eq!(parse_summary("Passed: three/4, 1 failed, 0 warnings"), None);
    }

    #[test]
    fn judges_scenarios_like_the_suite_and_rejects_empty_passes() {
        let s = |passed, total, failed, warnings| {
            Some(Summary {
                passed,
                total,
                failed,
                warnings,
            })
        };
        assert_eq!(verdict(true, s(4, 4, 0, 0)), None);
        assert!(verdict(false, s(3, 4, 1, 0)).is_some());
        assert!(verdict(true, s(4, 4, 0, 1)).is_some());
        assert!(verdict(false, s(4, 4, 0, 0)).is_some());
        assert!(verdict(true, s(0, 0, 0, 0)).is_some());
        assert!(verdict(true, None).is_some());
    }

    #[test]
    fn reads_the_version_of_a_package_json() {
        let json = "{\n  \"name\": \"@modelcontextprotocol/conformance\",\n  \"version\" : \
                    \"0.2.0-alpha.12\",\n  \"engines\": {\"node\": \">=22\"}\n}";
        assert_eq!(
            json_string_field(json, "version").as_deref(),
            Some("0.2.0-alpha.12")
        );
        assert_eq!(json_string_field(json, "missing"), None);
    }

    #[test]
    fn scenario_table_only_names_pinned_suites() {
        assert!(SCENARIOS.iter().all(|s| SUITES.contains(&s.suite)));
    }
}
