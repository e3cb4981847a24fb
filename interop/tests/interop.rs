//! Interop tests: our `McpClient` against MCP servers nobody in this project wrote, each started
//! on loopback (or inside a private network namespace) by the test itself.
//!
//! Every test is `#[ignore]`d: the peers must be installed first. `cargo xtask interop`
//! installs them, sets the variables below, runs these tests with `--ignored` and prints a
//! table. A test whose variable is missing panics with a message saying so: it never passes
//! without talking to its peer.
//!
//! | variable | what |
//! |---|---|
//! | `MCP_INTEROP_PYTHON` | a Python with the `mcp` package (2.3.x) installed |
//! | `MCP_INTEROP_NODE` | a Node ≥ 18 |
//! | `MCP_INTEROP_EVERYTHING` | `dist/index.js` of `@modelcontextprotocol/server-everything` |
//! | `MCP_INTEROP_RMCP_SERVER` | the `rmcp-echo-server` binary of this package |
//!
//! Peers:
//! - Python `mcp` (`peers/python_server.py`, `MCPServer`): stateful and `stateless_http`, over
//!   Streamable HTTP, with automatic negotiation and with `2025-11-25`; and over stdio.
//! - `server-everything` (the TypeScript SDK): it binds every interface, so it only ever runs
//!   inside a private network namespace. A test not yet inside one re-runs itself under
//!   `unshare -rn` (with `lo` up) and starts the server there, next to itself.
//! - `rmcp-echo-server` (the Rust SDK): stateful and stateless.
//!
//! Each test checks: connect, the negotiated version and mode, `tools/list`, tool results,
//! progress notifications (all delivered before the call returns), `_meta` pass-through,
//! `ping`, 32 concurrent calls answered in kind, concurrent calls with progress routed to the
//! right caller, a per-call timeout that leaves the client usable, and `close`.

#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(clippy::print_stdout, reason = "tests report what they ran")]

use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_transport::stdio::{StdioConfig, StdioTransport};
use mcp_transport::{
    CallOptions, CallToolResult, HttpTransport, McpClient, Progress, ProtocolChoice,
};
use serde_json::{Value, json};

/// How long a peer may take to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a re-run of a test inside a network namespace may take.
const NETNS_RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Concurrent calls in the concurrency check.
const CONCURRENT_CALLS: usize = 32;
/// The newest session protocol version, which every peer speaks.
const V2025_11_25: &str = "2025-11-25";
/// The stateless protocol version.
const V2026_07_28: &str = "2026-07-28";
/// Set (to `1`) in the environment of a test re-run inside a private network namespace.
const IN_NETNS_VAR: &str = "MCP_INTEROP_IN_NETNS";

// ---------------------------------------------------------------------------------------------
// Environment and peer processes.

/// The value of a variable `cargo xtask interop` sets; panics with a clear message if missing.
fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: these tests need real MCP peers. Run `cargo xtask interop`, which \
             installs the peers and sets MCP_INTEROP_PYTHON, MCP_INTEROP_NODE, \
             MCP_INTEROP_EVERYTHING and MCP_INTEROP_RMCP_SERVER"
        ),
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the peer binds it right after).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port on 127.0.0.1")
}

/// A temporary log file for a peer's stdout and stderr.
fn log_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "mcp-interop-{name}-{}-{nanos}.log",
        std::process::id()
    ))
}

/// How to tell that a peer is ready.
enum Ready {
    /// A TCP connect to 127.0.0.1:port succeeds.
    Port(u16),
    /// A line starting `listening on <url>` appears on its stdout; the URL is the endpoint.
    Line,
}

/// A running peer: killed (and reaped) on drop; its output is printed if the test failed.
struct PeerProcess {
    name: String,
    child: Child,
    log: PathBuf,
    /// The MCP endpoint (for HTTP peers).
    url: String,
}

impl PeerProcess {
    /// Starts `cmd` with stdout and stderr going to a log file and waits, at most
    /// [`READY_TIMEOUT`], until it is ready. `path` is the MCP endpoint path for
    /// [`Ready::Port`].
    fn start(name: &str, mut cmd: Command, ready: Ready, path: &str) -> Self {
        let log = log_path(name);
        let out = File::create(&log).expect("creating the peer log file");
        let err = out.try_clone().expect("cloning the peer log file handle");
        let shown = format!("{cmd:?}");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start peer {name} ({shown}): {e}"));
        let mut peer = PeerProcess {
            name: name.to_owned(),
            child,
            log,
            url: String::new(),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = peer.child.try_wait().expect("polling the peer") {
                panic!(
                    "peer {name} exited with {status} before it was ready ({shown})\n{}",
                    peer.output()
                );
            }
            match &ready {
                Ready::Port(port) => {
                    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
                    if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                        peer.url = format!("http://127.0.0.1:{port}{path}");
                        break;
                    }
                }
                Ready::Line => {
                    if let Some(url) = peer
                        .output()
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("listening on "))
                    {
                        peer.url = url.trim().to_owned();
                        break;
                    }
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "peer {name} was not ready within {READY_TIMEOUT:?} ({shown})\n{}",
                    peer.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!(
            "peer {name} ready at {} after {:?}",
            peer.url,
            started.elapsed()
        );
        peer
    }

    /// What the peer printed so far.
    fn output(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let out = self.output();
            let tail: Vec<&str> = out.lines().rev().take(200).collect();
            eprintln!("--- last output of peer {} ---", self.name);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs an async test body on a multi-threaded runtime.
fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a tokio runtime")
        .block_on(f);
}

// ---------------------------------------------------------------------------------------------
// What each peer should do.

/// A tool call and the text its result must contain.
struct Call {
    tool: &'static str,
    arguments: Value,
    text: &'static str,
}

/// What to expect of one peer in one configuration.
struct Expect {
    /// The version `protocol_version()` must report.
    version: &'static str,
    /// What `is_stateless()` must report.
    stateless: bool,
    /// `Some(true)`: the transport must hold a session id; `Some(false)`: must not.
    session: Option<bool>,
    /// A substring of the server's reported name.
    server_name: &'static str,
    /// `echo`-like tool: name, argument name, and the prefix the answer puts before the text.
    echo: (&'static str, &'static str, &'static str),
    /// An `add`-like call.
    add: Call,
    /// A tool sending progress: name and arguments for `steps` steps.
    progress: fn(steps: u32) -> (&'static str, Value),
}

fn echo_call(e: &Expect, text: &str) -> (&'static str, Value, String) {
    let (tool, arg, prefix) = e.echo;
    let mut args = serde_json::Map::new();
    args.insert(arg.to_owned(), text.into());
    (tool, Value::Object(args), format!("{prefix}{text}"))
}

fn text_of(result: &CallToolResult) -> String {
    assert!(!result.is_error, "tool reported an error: {result:?}");
    result.text()
}

/// Exercises a connected client against what `e` says the peer does, then closes it.
async fn exercise(client: McpClient, session: Option<Arc<HttpTransport>>, e: &Expect) {
    // Negotiation.
    assert_eq!(
        client.protocol_version(),
        e.version,
        "negotiated protocol version"
    );
    assert_eq!(client.is_stateless(), e.stateless, "stateless mode");
    if let (Some(transport), Some(want)) = (&session, e.session) {
        assert_eq!(
            transport.session_id().is_some(),
            want,
            "session id present (got {:?})",
            transport.session_id()
        );
    }
    let implementation = client
        .server_info()
        .implementation
        .clone()
        .expect("the server reports its name and version");
    assert!(
        implementation.name.contains(e.server_name),
        "server name {:?} should contain {:?}",
        implementation.name,
        e.server_name
    );
    println!(
        "connected: version {} stateless {} server {:?}",
        client.protocol_version(),
        client.is_stateless(),
        implementation
    );

    // tools/list.
    let tools = client.list_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    let (progress_tool, _) = (e.progress)(1);
    for want in [e.echo.0, e.add.tool, progress_tool] {
        assert!(names.contains(&want), "tool {want} missing from {names:?}");
    }
    let echo_tool = tools.iter().find(|t| t.name == e.echo.0).unwrap();
    assert!(
        echo_tool.input_schema["properties"][e.echo.1].is_object(),
        "schema of {} should describe `{}`: {:?}",
        e.echo.0,
        e.echo.1,
        echo_tool.input_schema
    );

    // Plain calls, one with `_meta` entries the server does not know.
    let (tool, args, want) = echo_call(e, "héllo, interop ✓");
    let result = client
        .call_tool(
            tool,
            args,
            CallOptions::new()
                .timeout(Duration::from_secs(20))
                .meta("io.example.interop/trace", json!({"run": 1})),
        )
        .await
        .expect("echo");
    assert_eq!(text_of(&result), want);
    let result = client
        .call_tool(e.add.tool, e.add.arguments.clone(), CallOptions::new())
        .await
        .expect("add");
    let text = text_of(&result);
    assert!(
        text.contains(e.add.text),
        "{} answered {text:?}; expected it to contain {:?}",
        e.add.tool,
        e.add.text
    );

    // Progress: every notification arrives, in order, before the call returns.
    let steps = 3;
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = seen.clone();
    let (tool, args) = (e.progress)(steps);
    let result = client
        .call_tool(
            tool,
            args,
            CallOptions::new().on_progress(move |p| sink.lock().unwrap().push(p)),
        )
        .await
        .expect("call with progress");
    text_of(&result);
    let seen = seen.lock().unwrap().clone();
    let values: Vec<f64> = seen.iter().map(|p| p.progress).collect();
    assert_eq!(
        values,
        (1..=steps).map(f64::from).collect::<Vec<_>>(),
        "progress values delivered before the call returned: {seen:?}"
    );
    assert!(
        seen.iter().all(|p| p.total == Some(f64::from(steps))),
        "progress totals: {seen:?}"
    );

    // Ping. A failure here is recorded and reported at the end, so the checks after it still
    // run.
    let mut failures: Vec<String> = Vec::new();
    if let Err(err) = client.ping().await {
        failures.push(format!(
            "ping on protocol {} failed: {err} ({err:?})",
            client.protocol_version()
        ));
    }

    // Concurrent calls: each answer belongs to its own request.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT_CALLS {
        let client = client.clone();
        let (tool, args, want) = echo_call(e, &format!("call #{i}"));
        set.spawn(async move {
            let result = client
                .call_tool(
                    tool,
                    args,
                    CallOptions::new().timeout(Duration::from_secs(30)),
                )
                .await;
            (i, want, result)
        });
    }
    let mut answered = 0;
    while let Some(joined) = set.join_next().await {
        let (i, want, result) = joined.expect("a concurrent call task");
        let result = result.unwrap_or_else(|err| panic!("concurrent call #{i} failed: {err}"));
        assert_eq!(text_of(&result), want, "answer of concurrent call #{i}");
        answered += 1;
    }
    assert_eq!(answered, CONCURRENT_CALLS);

    // Concurrent calls with progress: each caller gets its own notifications.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..4u32 {
        let client = client.clone();
        let steps = 2 + i;
        let (tool, args) = (e.progress)(steps);
        set.spawn(async move {
            let seen: Arc<Mutex<Vec<f64>>> = Arc::default();
            let sink = seen.clone();
            let result = client
                .call_tool(
                    tool,
                    args,
                    CallOptions::new()
                        .timeout(Duration::from_secs(30))
                        .on_progress(move |p| sink.lock().unwrap().push(p.progress)),
                )
                .await;
            let seen = seen.lock().unwrap().clone();
            (steps, result, seen)
        });
    }
    while let Some(joined) = set.join_next().await {
        let (steps, result, seen) = joined.expect("a concurrent progress task");
        text_of(&result.unwrap_or_else(|err| panic!("progress call of {steps} steps: {err}")));
        assert_eq!(
            seen,
            (1..=steps).map(f64::from).collect::<Vec<_>>(),
            "progress of the {steps}-step call"
        );
    }

    // A per-call timeout fails that call only; the client stays usable.
    let (tool, args) = (e.progress)(40);
    let started = Instant::now();
    let err = client
        .call_tool(
            tool,
            args,
            CallOptions::new().timeout(Duration::from_millis(300)),
        )
        .await
        .expect_err("a call over its timeout fails");
    assert!(err.is_timeout(), "expected a timeout, got {err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout took {:?}",
        started.elapsed()
    );
    let (tool, args, want) = echo_call(e, "after a timeout");
    let result = client
        .call_tool(tool, args, CallOptions::new())
        .await
        .expect("a call after a timed-out one");
    assert_eq!(text_of(&result), want);

    // Close: later calls fail as closed.
    client.close().await.expect("close");
    let (tool, args, _) = echo_call(e, "after close");
    let err = client
        .call_tool(tool, args, CallOptions::new())
        .await
        .expect_err("a call after close fails");
    assert!(err.is_closed(), "expected a closed error, got {err}");

    assert!(
        failures.is_empty(),
        "failed checks:\n{}",
        failures.join("\n")
    );
}

/// Connects to an HTTP peer and runs [`exercise`].
async fn exercise_http(url: &str, protocol: ProtocolChoice, e: &Expect) {
    let transport = Arc::new(HttpTransport::new(url).expect("a transport to the peer"));
    let client = McpClient::builder()
        .protocol(protocol)
        .default_timeout(Duration::from_secs(30))
        .connect(transport.clone())
        .await
        .unwrap_or_else(|err| panic!("connecting to {url}: {err}"));
    exercise(client, Some(transport), e).await;
}

/// Connects to a stdio peer and runs [`exercise`].
async fn exercise_stdio(config: StdioConfig, protocol: ProtocolChoice, e: &Expect) {
    let transport = StdioTransport::spawn(&config).expect("starting the stdio peer");
    let client = McpClient::builder()
        .protocol(protocol)
        .default_timeout(Duration::from_secs(30))
        .connect(transport)
        .await
        .unwrap_or_else(|err| panic!("connecting over stdio: {err}"));
    exercise(client, None, e).await;
}

// ---------------------------------------------------------------------------------------------
// Python `mcp` 2.3.x (`MCPServer`).

/// A file of this package, found through the run-time `CARGO_MANIFEST_DIR` when it names
/// this package (cargo and nextest set it; a binary from a target directory shared with
/// another clone has a stale compiled-in path), else the compiled-in directory.
fn package_file(relative: &str) -> String {
    let runtime = std::env::var("CARGO_MANIFEST_DIR")
        .ok()
        .map(|dir| format!("{dir}/{relative}"))
        .filter(|path| std::path::Path::new(path).exists());
    runtime.unwrap_or_else(|| format!("{}/{relative}", env!("CARGO_MANIFEST_DIR")))
}

fn python_script() -> String {
    package_file("peers/python_server.py")
}

fn python_progress(steps: u32) -> (&'static str, Value) {
    ("slow", json!({"steps": steps, "delay_ms": 10}))
}

fn python_expect(version: &'static str, stateless: bool, session: Option<bool>) -> Expect {
    Expect {
        version,
        stateless,
        session,
        server_name: "python-interop-server",
        echo: ("echo", "text", ""),
        add: Call {
            tool: "add",
            arguments: json!({"a": 40, "b": 2}),
            text: "42",
        },
        progress: python_progress,
    }
}

fn python_http(name: &str, stateless_http: bool) -> PeerProcess {
    let python = required_env("MCP_INTEROP_PYTHON");
    let port = free_port();
    let mut cmd = Command::new(python);
    cmd.arg(python_script())
        .arg("streamable-http")
        .args(["--port", &port.to_string()]);
    if stateless_http {
        cmd.arg("--stateless");
    }
    PeerProcess::start(name, cmd, Ready::Port(port), "/mcp")
}

// The Python SDK routes any request whose `MCP-Protocol-Version` header is not a handshake
// version to its 2026-07-28 handler, whatever `stateless_http` says: automatic negotiation
// lands on the stateless protocol in both modes.

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn python_stateful_auto() {
    let peer = python_http("python-stateful", false);
    block_on(exercise_http(
        &peer.url,
        ProtocolChoice::Auto,
        &python_expect(V2026_07_28, true, Some(false)),
    ));
}

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn python_stateful_2025_11_25() {
    let peer = python_http("python-stateful", false);
    block_on(exercise_http(
        &peer.url,
        ProtocolChoice::Version(V2025_11_25.into()),
        &python_expect(V2025_11_25, false, Some(true)),
    ));
}

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn python_stateless_auto() {
    let peer = python_http("python-stateless", true);
    block_on(exercise_http(
        &peer.url,
        ProtocolChoice::Auto,
        &python_expect(V2026_07_28, true, Some(false)),
    ));
}

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn python_stateless_2025_11_25() {
    let peer = python_http("python-stateless", true);
    block_on(exercise_http(
        &peer.url,
        ProtocolChoice::Version(V2025_11_25.into()),
        &python_expect(V2025_11_25, false, Some(false)),
    ));
}

fn python_stdio_config() -> StdioConfig {
    StdioConfig::new(required_env("MCP_INTEROP_PYTHON"))
        .arg(python_script())
        .arg("stdio")
}

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn python_stdio_auto() {
    block_on(exercise_stdio(
        python_stdio_config(),
        ProtocolChoice::Auto,
        &python_expect(V2026_07_28, true, None),
    ));
}

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn python_stdio_2025_11_25() {
    block_on(exercise_stdio(
        python_stdio_config(),
        ProtocolChoice::Version(V2025_11_25.into()),
        &python_expect(V2025_11_25, false, None),
    ));
}

// ---------------------------------------------------------------------------------------------
// `@modelcontextprotocol/server-everything` (TypeScript SDK 1.x), in a private network namespace.

fn everything_progress(steps: u32) -> (&'static str, Value) {
    // `duration` is in seconds for all steps together.
    (
        "trigger-long-running-operation",
        json!({"duration": f64::from(steps) * 0.02, "steps": steps}),
    )
}

fn everything_expect(version: &'static str) -> Expect {
    Expect {
        version,
        stateless: false,
        session: Some(true),
        server_name: "everything",
        echo: ("echo", "message", "Echo: "),
        add: Call {
            tool: "get-sum",
            arguments: json!({"a": 40, "b": 2}),
            text: "is 42",
        },
        progress: everything_progress,
    }
}

/// True when this process's network namespace has no interface but `lo`, so binding every
/// interface exposes nothing beyond it.
fn in_private_netns() -> bool {
    let Ok(dev) = std::fs::read_to_string("/proc/net/dev") else {
        return false;
    };
    let names: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    !names.is_empty() && names.iter().all(|n| *n == "lo")
}

/// Re-runs test `name` of this binary inside a new user + network namespace with `lo` up,
/// and fails if it fails there (or does not run).
fn rerun_in_netns(name: &str) {
    let exe = std::env::current_exe().expect("the path of this test binary");
    let mut cmd = Command::new("unshare");
    cmd.args(["-rn", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(IN_NETNS_VAR, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("could not start {shown}: {e} (server-everything must run in a private network namespace; this needs `unshare` and user namespaces)")
    });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("polling the namespaced test") {
            break Some(status);
        }
        if started.elapsed() > NETNS_RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    println!("--- {name} inside a private network namespace ---\n{stdout}\n{stderr}");
    let Some(status) = status else {
        panic!("{shown} ran over {NETNS_RUN_TIMEOUT:?} and was killed");
    };
    assert!(status.success(), "{shown} failed with {status}");
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{shown} did not run exactly one passing test"
    );
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `body` with server-everything listening inside a private network namespace: in this
/// process if it already is in one, else in a re-run of test `name` under `unshare -rn`.
fn with_everything(name: &str, body: impl FnOnce(&PeerProcess)) {
    let node = required_env("MCP_INTEROP_NODE");
    let index = required_env("MCP_INTEROP_EVERYTHING");
    if !in_private_netns() {
        assert!(
            std::env::var_os(IN_NETNS_VAR).is_none(),
            "re-run under `unshare -rn`, but interfaces other than `lo` are visible: refusing to \
             start server-everything, which binds every interface"
        );
        rerun_in_netns(name);
        return;
    }
    let port = free_port();
    let mut cmd = Command::new(node);
    cmd.arg(&index)
        .arg("streamableHttp")
        .env("PORT", port.to_string());
    if let Some(dir) = Path::new(&index).parent() {
        cmd.current_dir(dir);
    }
    let peer = PeerProcess::start("server-everything", cmd, Ready::Port(port), "/mcp");
    body(&peer);
}

// The TypeScript SDK 1.x has no 2026-07-28: automatic negotiation falls back to `initialize`.

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn everything_auto() {
    with_everything("everything_auto", |peer| {
        block_on(exercise_http(
            &peer.url,
            ProtocolChoice::Auto,
            &everything_expect(V2025_11_25),
        ));
    });
}

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn everything_2025_11_25() {
    with_everything("everything_2025_11_25", |peer| {
        block_on(exercise_http(
            &peer.url,
            ProtocolChoice::Version(V2025_11_25.into()),
            &everything_expect(V2025_11_25),
        ));
    });
}

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn everything_2025_06_18() {
    with_everything("everything_2025_06_18", |peer| {
        block_on(exercise_http(
            &peer.url,
            ProtocolChoice::Version("2025-06-18".into()),
            &everything_expect("2025-06-18"),
        ));
    });
}

// ---------------------------------------------------------------------------------------------
// rmcp 3.x (`rmcp-echo-server`).

fn rmcp_progress(steps: u32) -> (&'static str, Value) {
    ("slow", json!({"steps": steps, "delay_ms": 10}))
}

fn rmcp_expect(version: &'static str, stateless: bool, session: Option<bool>) -> Expect {
    Expect {
        version,
        stateless,
        session,
        server_name: "rmcp-echo-server",
        echo: ("echo", "text", ""),
        add: Call {
            tool: "add",
            arguments: json!({"a": 40, "b": 2}),
            text: "42",
        },
        progress: rmcp_progress,
    }
}

fn rmcp_server(stateless: bool) -> PeerProcess {
    let mut cmd = Command::new(required_env("MCP_INTEROP_RMCP_SERVER"));
    cmd.args(["--port", "0"]);
    if stateless {
        cmd.arg("--stateless");
    }
    let name = if stateless {
        "rmcp-stateless"
    } else {
        "rmcp-stateful"
    };
    PeerProcess::start(name, cmd, Ready::Line, "")
}

// rmcp serves 2026-07-28 statelessly whatever its session mode.

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn rmcp_stateful_auto() {
    let peer = rmcp_server(false);
    block_on(exercise_http(
        &peer.url,
        ProtocolChoice::Auto,
        &rmcp_expect(V2026_07_28, true, Some(false)),
    ));
}

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn rmcp_stateful_2025_11_25() {
    let peer = rmcp_server(false);
    block_on(exercise_http(
        &peer.url,
        ProtocolChoice::Version(V2025_11_25.into()),
        &rmcp_expect(V2025_11_25, false, Some(true)),
    ));
}

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn rmcp_stateless_auto() {
    let peer = rmcp_server(true);
    block_on(exercise_http(
        &peer.url,
        ProtocolChoice::Auto,
        &rmcp_expect(V2026_07_28, true, Some(false)),
    ));
}

#[test]
#[ignore = "needs real peers: run with cargo xtask interop"]
fn rmcp_stateless_2025_11_25() {
    let peer = rmcp_server(true);
    block_on(exercise_http(
        &peer.url,
        ProtocolChoice::Version(V2025_11_25.into()),
        &rmcp_expect(V2025_11_25, false, Some(false)),
    ));
}

// ---------------------------------------------------------------------------------------------
// The Scheduler tool contract: one `SchedulerService` flow against our server
// (`crates/scheduler-server`, in-process, auth on) and against a second implementation of the
// contract on the Python `mcp` package (`peers/python_scheduler_server.py`). Where the two
// legitimately differ (error wording, id format) the flow asserts on meaning, not wording.

/// The second implementation's script (see [`python_script`] for why the run-time
/// `CARGO_MANIFEST_DIR`).
fn python_scheduler_script() -> String {
    package_file("peers/python_scheduler_server.py")
}

/// The Python Scheduler on an ephemeral 127.0.0.1 port (it prints `listening on <url>`).
fn python_scheduler(name: &str, stateless: bool) -> PeerProcess {
    let python = required_env("MCP_INTEROP_PYTHON");
    let mut cmd = Command::new(python);
    cmd.arg(python_scheduler_script());
    if stateless {
        cmd.arg("--stateless");
    }
    PeerProcess::start(name, cmd, Ready::Line, "/mcp")
}

/// A client configuration with one server, `Scheduler`, at `url`; `auth` is
/// `(client_id, api_key)`. Short backoff: the flow expects no transport failures.
fn scheduler_config(url: &str, auth: Option<(&str, &str)>) -> scheduler::Config {
    let mut transport = json!({"type": "http", "url": url});
    if let Some((client_id, api_key)) = auth {
        transport["auth"] = json!({"client_id": client_id, "api_key": api_key});
    }
    let config = json!({"mcp": {"mcp_servers": [{
        "name": "Scheduler",
        "transport": transport,
        "resilience": {"max_retries": 1, "base_delay_ms": 50, "max_delay_ms": 100},
        "timeout_ms": 10_000
    }]}});
    scheduler::Config::from_json(&config.to_string(), "interop scheduler contract")
        .expect("a valid client configuration")
}

/// A `scheduleConversation` request in the flow's shape.
fn contract_request(
    topic: &str,
    scheduled_time: &str,
    idempotency_key: Option<&str>,
) -> scheduler::domain::ScheduleConversation {
    scheduler::domain::ScheduleConversation {
        topic: topic.to_owned(),
        participants: vec![
            "ana@contoso.example".to_owned(),
            "bo@contoso.example".to_owned(),
        ],
        scheduled_time: scheduled_time.to_owned(),
        timezone: Some("Europe/Paris".to_owned()),
        duration_minutes: None,
        metadata: json!({"source": "interop"}).as_object().cloned(),
        idempotency_key: idempotency_key.map(str::to_owned),
    }
}

/// `scheduled_time` as the contract returns it: UTC, truncated to the millisecond.
fn contract_utc(scheduled_time: &str) -> String {
    scheduler::domain::parse_time("scheduledTime", scheduled_time)
        .expect("a valid time")
        .to_string()
}

/// The flow, against any implementation of the contract. Every time is in 2031, so no
/// dispatcher runs a conversation while the flow looks at it; the listing reads one day
/// nothing else is scheduled on.
async fn scheduler_contract_flow(service: &scheduler::SchedulerService, label: &str) {
    use scheduler::domain::{ConversationStatus, ListConversations};

    // Health: tools listed, every Scheduler tool present, `/ping` answered.
    let health = service.health_check().await;
    assert!(health.healthy, "{label}: health check: {health:?}");
    assert!(health.missing_tools.is_empty(), "{label}: {health:?}");
    for tool in scheduler::service::SCHEDULER_TOOLS {
        assert!(
            health.tools.iter().any(|t| t == tool),
            "{label}: tool {tool} listed"
        );
    }
    assert!(
        !health.endpoints.is_empty() && health.endpoints.iter().all(|e| e.healthy),
        "{label}: /ping: {:?}",
        health.endpoints
    );

    // Without a key: the service generates one; created.
    let fine = "2031-01-15T09:30:00.123456+01:00";
    let first = service
        .schedule_conversation(contract_request("Contract: no key", fine, None))
        .await
        .unwrap_or_else(|e| panic!("{label}: schedule without a key: {e}"));
    assert!(first.created, "{label}: {first:?}");
    assert_eq!(first.status, ConversationStatus::Scheduled, "{label}");
    assert_eq!(first.scheduled_time, "2031-01-15T08:30:00.123Z", "{label}");
    assert_eq!(first.scheduled_time, contract_utc(fine), "{label}");

    // Its status, field by field.
    let status = service
        .conversation_status(&first.conversation_id)
        .await
        .unwrap_or_else(|e| panic!("{label}: status: {e}"));
    assert_eq!(status.conversation_id, first.conversation_id, "{label}");
    assert_eq!(status.topic, "Contract: no key", "{label}");
    assert_eq!(
        status.participants,
        ["ana@contoso.example", "bo@contoso.example"],
        "{label}"
    );
    assert_eq!(status.scheduled_time, "2031-01-15T08:30:00.123Z", "{label}");
    assert_eq!(status.status, ConversationStatus::Scheduled, "{label}");
    assert_eq!(status.attempts, 0, "{label}");
    assert_eq!(status.duration_minutes, 30, "{label}: default duration");
    assert_eq!(status.timezone.as_deref(), Some("Europe/Paris"), "{label}");
    assert_eq!(
        status.metadata.get("source"),
        Some(&json!("interop")),
        "{label}"
    );
    assert!(
        status.started_at.is_none() && status.completed_at.is_none(),
        "{label}: {status:?}"
    );

    // An explicit key, twice (and a third time with the returned, truncated UTC time): one
    // conversation, the retries answered `created: false`.
    let key = format!(
        "interop-contract-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let when = "2031-01-20T10:00:00+02:00";
    let keyed = service
        .schedule_conversation(contract_request("Contract: keyed", when, Some(&key)))
        .await
        .unwrap_or_else(|e| panic!("{label}: keyed schedule: {e}"));
    assert!(keyed.created, "{label}: {keyed:?}");
    assert_eq!(keyed.scheduled_time, "2031-01-20T08:00:00Z", "{label}");
    let again = service
        .schedule_conversation(contract_request("Contract: keyed", when, Some(&key)))
        .await
        .unwrap_or_else(|e| panic!("{label}: keyed retry: {e}"));
    assert_eq!(again.conversation_id, keyed.conversation_id, "{label}");
    assert!(
        !again.created,
        "{label}: the retry must not create: {again:?}"
    );
    assert_eq!(again.scheduled_time, keyed.scheduled_time, "{label}");
    let utc_retry = service
        .schedule_conversation(contract_request(
            "Contract: keyed",
            &keyed.scheduled_time,
            Some(&key),
        ))
        .await
        .unwrap_or_else(|e| panic!("{label}: keyed retry in UTC: {e}"));
    assert_eq!(utc_retry.conversation_id, keyed.conversation_id, "{label}");
    assert!(!utc_retry.created, "{label}");

    // The same key with another payload: a tool error about the key.
    let err = service
        .schedule_conversation(contract_request("Contract: other topic", when, Some(&key)))
        .await
        .expect_err("reusing a key with another payload must fail");
    assert!(err.is_tool(), "{label}: {err:?}");
    let message = err.to_string().to_lowercase();
    assert!(
        message.contains("idempotency"),
        "{label}: the error must be about the idempotency key: {err}"
    );
    assert_ne!(
        message.trim(),
        "scheduler tool reported an error",
        "{label}: no message"
    );

    // Invalid timestamps fail before any call, naming the field.
    let err = service
        .schedule_conversation(contract_request("Contract: bad", "tomorrow at nine", None))
        .await
        .expect_err("a bad timestamp must fail");
    assert!(err.is_invalid_argument(), "{label}: {err:?}");
    assert!(err.to_string().contains("scheduledTime"), "{label}: {err}");
    let err = service
        .schedule_conversation(contract_request(
            "Contract: no offset",
            "2031-01-15T09:30:00",
            None,
        ))
        .await
        .expect_err("a timestamp without an offset must fail");
    assert!(err.is_invalid_argument(), "{label}: {err:?}");
    let err = service
        .reschedule_conversation(&first.conversation_id, "2031-13-01T00:00:00Z")
        .await
        .expect_err("a bad reschedule time must fail");
    assert!(err.is_invalid_argument(), "{label}: {err:?}");

    // Unknown ids: tool errors.
    let unknown = "00000000-0000-7000-8000-000000000000";
    for result in [
        service.conversation_status(unknown).await,
        service.cancel_conversation(unknown).await,
        service
            .reschedule_conversation(unknown, "2031-01-01T00:00:00Z")
            .await,
    ] {
        let err = result.expect_err("an unknown id must fail");
        assert!(err.is_tool(), "{label}: {err:?}");
    }

    // Five conversations on one day, scheduled out of order, listed two at a time.
    let day = ListConversations {
        from: Some("2031-03-01T00:00:00Z".to_owned()),
        to: Some("2031-03-02T00:00:00Z".to_owned()),
        limit: Some(2),
        ..ListConversations::default()
    };
    let times = [
        "2031-03-01T14:00:00Z",
        "2031-03-01T10:00:00+01:00", // 09:00Z, the earliest
        "2031-03-01T17:45:00.5Z",
        "2031-03-01T11:00:00-00:30", // 11:30Z
        "2031-03-01T09:30:00Z",
    ];
    let mut expected: Vec<(String, String)> = Vec::new();
    for (i, at) in times.iter().enumerate() {
        let created = service
            .schedule_conversation(contract_request(&format!("Contract: list {i}"), at, None))
            .await
            .unwrap_or_else(|e| panic!("{label}: schedule {at}: {e}"));
        assert!(created.created, "{label}");
        assert_eq!(created.scheduled_time, contract_utc(at), "{label}");
        expected.push((contract_utc(at), created.conversation_id));
    }
    expected.sort_by_key(|(at, _)| scheduler::domain::parse_time("t", at).expect("a valid time"));
    let mut pages = service.pages(day.clone());
    let mut sizes = Vec::new();
    let mut listed: Vec<(String, String)> = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("{label}: list: {e}"));
        sizes.push(page.conversations.len());
        assert!(sizes.len() <= 3, "{label}: more than 3 pages");
        if sizes.len() < 3 {
            assert!(page.next_cursor.is_some(), "{label}: page {}", sizes.len());
        } else {
            assert!(
                page.next_cursor.is_none(),
                "{label}: the last page has no cursor"
            );
        }
        for c in page.conversations {
            assert_eq!(c.status, ConversationStatus::Scheduled, "{label}");
            listed.push((c.scheduled_time, c.conversation_id));
        }
    }
    assert_eq!(sizes, [2, 2, 1], "{label}: page sizes");
    assert_eq!(
        listed, expected,
        "{label}: every conversation once, in scheduled-time order"
    );

    // Reschedule the earliest to the end of the day: a new time, still scheduled, and the
    // listing follows it.
    let moved = expected[0].1.clone();
    let rescheduled = service
        .reschedule_conversation(&moved, "2031-03-01T20:00:00-01:00")
        .await
        .unwrap_or_else(|e| panic!("{label}: reschedule: {e}"));
    assert_eq!(rescheduled.conversation_id, moved, "{label}");
    assert_eq!(
        rescheduled.scheduled_time, "2031-03-01T21:00:00Z",
        "{label}"
    );
    assert_eq!(rescheduled.status, ConversationStatus::Scheduled, "{label}");
    let status = service
        .conversation_status(&moved)
        .await
        .unwrap_or_else(|e| panic!("{label}: status after reschedule: {e}"));
    assert_eq!(status.scheduled_time, "2031-03-01T21:00:00Z", "{label}");
    let one_page = service
        .list_conversations(&ListConversations {
            limit: None,
            ..day.clone()
        })
        .await
        .unwrap_or_else(|e| panic!("{label}: list after reschedule: {e}"));
    assert_eq!(one_page.conversations.len(), 5, "{label}: default limit");
    assert!(one_page.next_cursor.is_none(), "{label}");
    assert_eq!(
        one_page
            .conversations
            .last()
            .map(|c| c.conversation_id.as_str()),
        Some(moved.as_str()),
        "{label}: the moved conversation is now last"
    );

    // Cancel it: cancelled, with a completion time.
    let cancelled = service
        .cancel_conversation(&moved)
        .await
        .unwrap_or_else(|e| panic!("{label}: cancel: {e}"));
    assert_eq!(cancelled.status, ConversationStatus::Cancelled, "{label}");
    assert!(cancelled.completed_at.is_some(), "{label}: {cancelled:?}");
    let status = service
        .conversation_status(&moved)
        .await
        .unwrap_or_else(|e| panic!("{label}: status after cancel: {e}"));
    assert_eq!(status.status, ConversationStatus::Cancelled, "{label}");

    // A cancelled conversation can be neither cancelled again nor rescheduled; both errors
    // say why (its status).
    let err = service
        .cancel_conversation(&moved)
        .await
        .expect_err("cancelling twice must fail");
    assert!(err.is_tool(), "{label}: {err:?}");
    assert!(err.to_string().contains("cancelled"), "{label}: {err}");
    let err = service
        .reschedule_conversation(&moved, "2031-03-01T22:00:00Z")
        .await
        .expect_err("rescheduling a cancelled conversation must fail");
    assert!(err.is_tool(), "{label}: {err:?}");
    assert!(err.to_string().contains("cancelled"), "{label}: {err}");

    // The status filter.
    let only_cancelled = service
        .list_conversations(&ListConversations {
            status: Some(ConversationStatus::Cancelled),
            limit: None,
            ..day.clone()
        })
        .await
        .unwrap_or_else(|e| panic!("{label}: list cancelled: {e}"));
    let ids: Vec<&str> = only_cancelled
        .conversations
        .iter()
        .map(|c| c.conversation_id.as_str())
        .collect();
    assert_eq!(ids, [moved.as_str()], "{label}: status filter");
    println!("{label}: scheduler contract flow passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_contract_against_our_server() {
    use scheduler_server::config::ServerConfig;
    use scheduler_server::server::{Parts, start_with};

    let mut config = ServerConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        database: ":memory:".to_owned(),
        ..ServerConfig::default()
    };
    config.auth.required = true;
    let scopes = config.auth.scopes.clone();
    let parts = Parts::from_config(&config).expect("server parts");
    let store = parts.store.clone();
    let server = start_with(config, parts)
        .await
        .expect("starting our server");
    let (client, key) =
        scheduler_server::auth::register_client(&*store, "interop contract", &scopes)
            .await
            .expect("registering a client");
    let config = scheduler_config(&server.mcp_url(), Some((&client.id, key.expose())));
    let service = scheduler::SchedulerService::connect(&config, "Scheduler")
        .await
        .expect("connecting to our server");
    scheduler_contract_flow(&service, "scheduler-server").await;
    drop(service);
    server.shutdown().await.expect("stopping our server");
}

/// Runs the flow against the Python implementation.
async fn python_scheduler_contract(stateless: bool) {
    let name = if stateless {
        "python-scheduler-stateless"
    } else {
        "python-scheduler-stateful"
    };
    let peer = python_scheduler(name, stateless);
    let config = scheduler_config(&peer.url, None);
    let service = scheduler::SchedulerService::connect(&config, "Scheduler")
        .await
        .unwrap_or_else(|e| panic!("connecting to {name}: {e}\n{}", peer.output()));
    scheduler_contract_flow(&service, name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real peers: run with cargo xtask interop"]
async fn python_scheduler_contract_stateful() {
    python_scheduler_contract(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real peers: run with cargo xtask interop"]
async fn python_scheduler_contract_stateless() {
    python_scheduler_contract(true).await;
}
