//! The client commands end to end, as a user runs them: `mcp-scheduler serve` in one process
//! (SQLite file, loopback, auth on), `clients add` for an API key, then every client command
//! through the real client stack against it — and the demo. Bad input (config path,
//! timestamp, server name) gives a clear message and the documented exit code.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-scheduler"));
    cmd.env_remove("SCHEDULER_CONFIG")
        .env_remove("MCP_SCHEDULER_CONFIG")
        .env_remove("SCHEDULER_CLIENT_ID")
        .env_remove("SCHEDULER_API_KEY")
        .env_remove("APPLICATIONINSIGHTS_CONNECTION_STRING")
        .env("NO_COLOR", "1");
    cmd
}

/// A `serve` process on an ephemeral port; killed on drop.
struct Server {
    child: Child,
    url: String,
    db: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Server {
    serve_with(dir, &[])
}

fn serve_with(dir: &Path, env: &[(&str, &str)]) -> Server {
    let db = dir.join("scheduler.db");
    let mut child = bin()
        .envs(env.iter().copied())
        .arg("serve")
        .env("SCHEDULER_BIND", "127.0.0.1:0")
        .env("SCHEDULER_DATABASE", &db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("scheduler listening on ") {
                let url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(url);
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve did not report its address within 30 s");
    Server { child, url, db }
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Registers a client and writes a client configuration for it; returns (config, api key).
fn client_config(server: &Server, dir: &Path) -> (PathBuf, String) {
    let added = json_of(&ok(bin()
        .args(["--json", "clients", "add", "--name", "cli test"])
        .env("SCHEDULER_DATABASE", &server.db)
        .output()
        .unwrap()));
    let (id, key) = (
        added["client_id"].as_str().unwrap().to_owned(),
        added["api_key"].as_str().unwrap().to_owned(),
    );
    let config = serde_json::json!({
        "mcp": { "mcp_servers": [ {
            "name": "Scheduler",
            "transport": {
                "type": "http",
                "url": format!("{}/mcp", server.url),
                "auth": { "client_id": id, "api_key": key }
            }
        } ] }
    });
    let path = dir.join("client.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    (path, key)
}

fn with_config(config: &Path) -> Command {
    let mut cmd = bin();
    cmd.arg("--config").arg(config);
    cmd
}

#[test]
fn every_client_command_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let (config, key) = client_config(&server, dir.path());

    // tools
    let tools = json_of(&ok(with_config(&config)
        .args(["--json", "tools"])
        .output()
        .unwrap()));
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"scheduleConversation"), "{names:?}");
    let human =
        String::from_utf8(ok(with_config(&config).arg("tools").output().unwrap()).stdout).unwrap();
    assert!(
        human.starts_with("TOOL") && human.contains("getConversationStatus"),
        "{human}"
    );

    // schedule: twice with one key → one conversation.
    let schedule = |key: &str| {
        json_of(&ok(with_config(&config)
            .args([
                "--json",
                "schedule",
                "--topic",
                "CLI test",
                "--participant",
                "ana@contoso.example",
                "--at",
                "2099-01-02T10:00:00+01:00",
                "--timezone",
                "Europe/Paris",
                "--metadata",
                r#"{"team":"billing"}"#,
                "--idempotency-key",
                key,
            ])
            .output()
            .unwrap()))
    };
    let first = schedule("cli-key-1");
    let again = schedule("cli-key-1");
    let id = first["conversationId"].as_str().unwrap().to_owned();
    assert_eq!(first["created"], true);
    assert_eq!(again["created"], false);
    assert_eq!(again["conversationId"], first["conversationId"]);
    assert_eq!(first["scheduledTime"], "2099-01-02T09:00:00Z");

    // status, reschedule, list, cancel
    let status = json_of(&ok(with_config(&config)
        .args(["--json", "status", &id])
        .output()
        .unwrap()));
    assert_eq!(status["status"], "scheduled");
    assert_eq!(status["topic"], "CLI test");
    let moved = json_of(&ok(with_config(&config)
        .args(["--json", "reschedule", &id, "2099-01-03T10:00:00Z"])
        .output()
        .unwrap()));
    assert_eq!(moved["scheduledTime"], "2099-01-03T10:00:00Z");
    let listed = json_of(&ok(with_config(&config)
        .args(["--json", "list", "--status", "scheduled", "--all"])
        .output()
        .unwrap()));
    assert_eq!(listed["conversations"].as_array().unwrap().len(), 1);
    let table =
        String::from_utf8(ok(with_config(&config).arg("list").output().unwrap()).stdout).unwrap();
    assert!(table.starts_with("ID") && table.contains(&id), "{table}");
    let cancelled = json_of(&ok(with_config(&config)
        .args(["--json", "cancel", &id])
        .output()
        .unwrap()));
    assert_eq!(cancelled["status"], "cancelled");
    // Rescheduling a cancelled conversation: the Scheduler refuses (exit 4), with its reason.
    let refused = with_config(&config)
        .args(["reschedule", &id, "2099-01-04T10:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("cancelled"),
        "{}",
        stderr(&refused)
    );

    // health
    let health = json_of(&ok(with_config(&config)
        .args(["--json", "health"])
        .output()
        .unwrap()));
    assert_eq!(health["healthy"], true);
    assert_eq!(health["endpoints"][0]["healthy"], true);

    // config check: resolved, redacted.
    let checked = ok(with_config(&config)
        .args(["config", "check"])
        .output()
        .unwrap());
    let text = String::from_utf8(checked.stdout).unwrap();
    assert!(!text.contains(&key), "the API key must be redacted: {text}");
    assert!(
        text.contains("[redacted]") && text.contains("max_retries"),
        "{text}"
    );

    // The API key never reaches the output of any command above or below.
    let bad_time = with_config(&config)
        .args([
            "schedule",
            "--topic",
            "x",
            "--participant",
            "a@b.example",
            "--at",
            "tomorrow",
        ])
        .output()
        .unwrap();
    assert_eq!(bad_time.status.code(), Some(65), "{}", stderr(&bad_time));
    assert!(
        stderr(&bad_time).contains("scheduledTime"),
        "{}",
        stderr(&bad_time)
    );
    assert!(!stderr(&bad_time).contains(&key));

    let unknown = with_config(&config)
        .args(["--server", "Nope", "tools"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(78), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("Nope") && stderr(&unknown).contains("Scheduler"));
}

#[test]
fn a_bad_config_path_is_a_configuration_error() {
    let out = bin()
        .args(["--config", "/nonexistent/client.json", "tools"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/nonexistent/client.json"),
        "{}",
        stderr(&out)
    );
    let out = bin().arg("tools").output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("--config"), "{}", stderr(&out));
}

#[test]
fn health_of_a_server_that_is_not_there_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("client.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"mcp":{{"mcp_servers":[{{"name":"Scheduler","transport":{{"type":"http","url":"http://127.0.0.1:{port}/mcp"}},"resilience":{{"max_retries":0}}}}]}}}}"#
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = with_config(&config).arg("health").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("unhealthy"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn the_demo_runs_the_whole_system_and_reports_it() {
    let out = ok(bin()
        .args(["--json", "demo", "--due-in", "1"])
        .output()
        .unwrap());
    let summary = json_of(&out);
    assert_eq!(summary["ok"], true, "{summary:#}");
    assert_eq!(summary["scheduled"].as_array().unwrap().len(), 3);
    assert_eq!(summary["idempotent_retry"]["created"], false);
    assert_eq!(
        summary["idempotent_retry"]["conversation_id"],
        summary["scheduled"][0]["conversationId"]
    );
    assert_eq!(summary["dispatched"]["status"], "completed");
    assert_eq!(summary["cancelled"]["status"], "cancelled");
    assert_eq!(summary["conversations"].as_array().unwrap().len(), 3);
    assert_eq!(summary["health"]["healthy"], true);
    // Progress went to stderr, step by step.
    let progress = stderr(&out);
    assert!(
        progress.contains("[1/9]") && progress.contains("[9/9]"),
        "{progress}"
    );
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
fn get(port: u16, path: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn the_functions_handler_answers_status_checks() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let (config, _key) = client_config(&server, dir.path());
    let scheduled = json_of(&ok(with_config(&config)
        .args([
            "--json",
            "schedule",
            "--topic",
            "functions",
            "--participant",
            "a@contoso.example",
            "--at",
            "2099-05-01T08:00:00Z",
        ])
        .output()
        .unwrap()));
    let id = scheduled["conversationId"].as_str().unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut handler = with_config(&config)
        .arg("functions-handler")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the handler did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (status, body) = get(port, &format!("/api/status?conversation_id={id}"));
    assert_eq!(
        (status, &body),
        (200, &serde_json::json!({"status": "scheduled"}))
    );
    let (status, body) = get(port, "/api/status");
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("conversation_id"),
        "{body}"
    );
    let (status, body) = get(port, "/api/status?conversation_id=");
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(port, "/api/status?conversation_id=no-such-conversation");
    assert_eq!(status, 404, "{body}");
    let _ = handler.kill();
    let _ = handler.wait();
}

/// Telemetry across processes: `schedule` (the CLI) and the `serve` process it calls both
/// export to the fake Application Insights endpoint (testkit, loopback); the CLI's client span
/// and the server's request span share one operation id, the server's span is the child of
/// the client's, and each process reports under its own cloud role.
#[test]
fn the_cli_and_the_server_it_calls_export_one_trace() {
    const IKEY: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
    let fake = testkit::azure::FakeAppInsights::start_detached().unwrap();
    fake.accept_key(IKEY);
    let cs = fake.connection_string(IKEY);
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve_with(
        dir.path(),
        &[("APPLICATIONINSIGHTS_CONNECTION_STRING", cs.as_str())],
    );
    let (config, key) = client_config(&server, dir.path());
    ok(with_config(&config)
        .env("APPLICATIONINSIGHTS_CONNECTION_STRING", &cs)
        .env("REGION_NAME", "westeurope")
        .args([
            "--json",
            "schedule",
            "--topic",
            "Traced",
            "--participant",
            "ana@contoso.example",
            "--at",
            "2099-01-02T10:00:00Z",
        ])
        .output()
        .unwrap());
    // A graceful stop (SIGTERM) flushes the server's telemetry on the way out.
    let pid = server.child.id().to_string();
    ok(Command::new("kill").args(["-TERM", &pid]).output().unwrap());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "serve exited with {status:?}");

    let envelopes = fake.envelopes();
    let named = |base: &str, role: &str| -> Vec<Value> {
        envelopes
            .iter()
            .filter(|e| {
                e["data"]["baseType"] == base
                    && e["data"]["baseData"]["name"] == "tools/call scheduleConversation"
                    && e["tags"]["ai.cloud.role"] == role
            })
            .cloned()
            .collect()
    };
    let dependency = named("RemoteDependencyData", "mcp-scheduler");
    let request = named("RequestData", "scheduler-server");
    assert_eq!((dependency.len(), request.len()), (1, 1), "{envelopes:#?}");
    let operation = dependency[0]["tags"]["ai.operation.id"].as_str().unwrap();
    assert_eq!(request[0]["tags"]["ai.operation.id"], operation);
    assert_eq!(
        request[0]["tags"]["ai.operation.parentId"],
        dependency[0]["data"]["baseData"]["id"]
    );
    assert_eq!(
        dependency[0]["data"]["baseData"]["properties"]["cloud.region"],
        "westeurope"
    );
    let exported = serde_json::to_string(&envelopes).unwrap();
    assert!(!exported.contains(&key), "the api key was exported");
}
