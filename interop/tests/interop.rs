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

/// The peer script, found through the run-time `CARGO_MANIFEST_DIR` (cargo and nextest set
/// it) so a test binary from a target directory shared with another clone still finds it.
fn python_script() -> String {
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    format!("{dir}/peers/python_server.py")
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
