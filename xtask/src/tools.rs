//! Locating the workspace, running commands, and installing the tools the CI steps need into
//! the project cache so that a fresh machine sets itself up and a warm one does not repeat it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// cargo-deny version the project is vetted with.
const CARGO_DENY_VERSION: &str = "0.20.2";

/// Folder name cargo-deny uses for its default advisory database URL.
const ADVISORY_DB_DIR: &str = "advisory-db-3157b0e258782691";

/// The workspace root (the parent of `xtask/`).
///
/// `cargo run` sets `CARGO_MANIFEST_DIR` when it starts the binary; that value wins over the
/// one compiled in, because a target directory shared between clones at different paths
/// (CI's cache) can hand back a binary built in another clone.
pub(crate) fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        // Only xtask's own: a process started by another package's tooling has theirs.
        .filter(|dir| dir.ends_with("xtask") && dir.is_dir())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The project cache: `$MCP_SCHEDULER_CACHE`, else `~/.cache/mcp-scheduler`.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MCP_SCHEDULER_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| root().join("target"), PathBuf::from);
    home.join(".cache").join("mcp-scheduler")
}

/// The cargo that invoked us (so `cargo xtask` and `cargo +x xtask` agree).
pub(crate) fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root());
    cmd
}

/// Runs a command to completion, inheriting stdio; an error names the command.
pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    println!("$ {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

/// True if `cmd` starts and exits successfully (output discarded).
pub(crate) fn probe(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Path of the cargo-deny binary, installing it into the cache if neither the cache nor
/// `PATH` has it.
pub(crate) fn cargo_deny() -> Result<PathBuf, String> {
    let cached = cache_dir().join("tools/bin/cargo-deny");
    if probe(Command::new(&cached).arg("--version")) {
        return Ok(cached);
    }
    if probe(Command::new("cargo-deny").arg("--version")) {
        return Ok(PathBuf::from("cargo-deny"));
    }
    run(cargo()
        .args([
            "install",
            "--locked",
            &format!("cargo-deny@{CARGO_DENY_VERSION}"),
            "--root",
        ])
        .arg(cache_dir().join("tools")))?;
    Ok(cached)
}

/// Makes sure cargo-deny has an advisory database. These machines cannot fetch it, so it is
/// seeded from the RustSec snapshot bundle (`../shared/advisory-db`, or the copy vendored in
/// `.ci/`). Returns true when the database is available offline.
pub(crate) fn advisory_db() -> Result<bool, String> {
    let cargo_home = std::env::var_os("CARGO_HOME").map_or_else(
        || {
            std::env::var_os("HOME").map_or_else(
                || PathBuf::from(".cargo"),
                |h| PathBuf::from(h).join(".cargo"),
            )
        },
        PathBuf::from,
    );
    let db = cargo_home.join("advisory-dbs").join(ADVISORY_DB_DIR);
    if db.join(".git").exists() {
        return Ok(true);
    }
    let candidates = [
        root().join("../shared/advisory-db/advisory-db.bundle"),
        root().join(".ci/advisory-db.bundle"),
    ];
    let Some(bundle) = candidates.iter().find(|p| p.exists()) else {
        return Ok(false);
    };
    if let Some(parent) = db.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    run(Command::new("git")
        .args(["-c", "init.defaultBranch=main", "clone", "--quiet"])
        .arg(bundle)
        .arg(&db))?;
    Ok(true)
}

/// `cargo xtask setup`: install everything the CI steps need (cargo-deny, its advisory
/// database, Node with the conformance suites, and the interop peers).
pub(crate) fn setup() -> Result<(), String> {
    let deny = cargo_deny()?;
    println!("cargo-deny: {}", deny.display());
    if advisory_db()? {
        println!("advisory database: ready");
    } else {
        println!("advisory database: none local; cargo-deny will fetch it");
    }
    println!("cargo-fuzz: {}", crate::fuzz::install()?.display());
    for dir in crate::conformance::install_all()? {
        println!("conformance suite: {}", dir.display());
    }
    for (what, path) in crate::interop::install_all()? {
        println!("interop peer {what}: {}", path.display());
    }
    Ok(())
}

/// Creates `dir` as an npm project folder (its own `package.json`), so `npm install` there
/// does not install into a parent folder that has one.
pub(crate) fn npm_folder(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if !dir.join("package.json").exists() {
        run(Command::new("npm")
            .current_dir(dir)
            .args(["init", "-y"])
            .stdout(std::process::Stdio::null()))?;
    }
    Ok(())
}
