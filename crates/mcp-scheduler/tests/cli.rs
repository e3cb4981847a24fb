//! The `mcp-scheduler` binary as an operator uses it: register a client (its API key is
//! printed once and never again), list clients (no keys), back up and restore the store.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::Path;
use std::process::{Command, Output};

fn run(db: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-scheduler"))
        .args(args)
        .env("SCHEDULER_DATABASE", db)
        .env_remove("SCHEDULER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn clients_are_created_listed_without_keys_and_survive_backup_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let created = stdout(&run(&db, &["clients", "create", "--name", "billing team"]));
    let field = |name: &str| {
        created
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap()
    };
    let (id, key) = (field("client_id:"), field("api_key:"));
    assert!(id.starts_with("sch_") && key.len() >= 40, "{created}");

    let listed = stdout(&run(&db, &["clients", "list"]));
    assert!(listed.contains(&id) && listed.contains("billing team"));
    assert!(!listed.contains(&key), "the key must never be listed");

    let backup = dir.path().join("backup.json");
    run(&db, &["export", backup.to_str().unwrap()]);
    let text = std::fs::read_to_string(&backup).unwrap();
    assert!(
        text.contains(&id) && !text.contains(&key),
        "backups hold key hashes only"
    );

    let restored = dir.path().join("b.db");
    let out = stdout(&run(&restored, &["import", backup.to_str().unwrap()]));
    assert!(out.contains("1 clients"), "{out}");
    assert!(stdout(&run(&restored, &["clients", "list"])).contains(&id));

    run(&db, &["clients", "disable", &id]);
    assert!(stdout(&run(&db, &["clients", "list"])).contains("disabled"));
}

#[test]
fn importing_into_a_store_that_is_not_empty_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    run(&db, &["clients", "create", "--name", "x"]);
    let backup = dir.path().join("backup.json");
    run(&db, &["export", backup.to_str().unwrap()]);
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-scheduler"))
        .args(["import", backup.to_str().unwrap()])
        .env("SCHEDULER_DATABASE", &db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}
