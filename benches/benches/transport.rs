//! Transport benchmark: `tools/call echo` on loopback against one fast server (rmcp 3.x on
//! axum, a separate process), comparing in the same run, with interleaved rounds:
//!
//! - **floor**: a raw hyper POST of the same JSON-RPC bytes on a pooled hyper-util client (no
//!   MCP client logic; the response body is read, not parsed);
//! - **ours**: `mcp_transport::McpClient` over `HttpTransport` (pool of 100 connections, up to
//!   100 idle, like the floor's and rmcp pooled's);
//! - **rmcp pooled / rmcp default**: the official Rust SDK's client over reqwest, with a pooled
//!   `reqwest::Client` (`with_client`) and with its default (pooling off).
//!
//! Server modes: `stateless-json` (no sessions, plain JSON answers) and `stateful-sse`
//! (sessions, SSE answers). For each client: c=1 (sequential calls: p50/p99 latency and
//! calls/s) and c=64 (64 tasks on one client: calls/s, latency under load, and client CPU per
//! call from `/proc/self/stat`, since at c=64 the 2-core machine is CPU-bound).
//!
//! ```text
//! cargo xtask bench transport            # full run: 5 rounds, 5,000 calls at c=1, 20,000 at c=64
//! cargo bench -p benches --bench transport -- --quick
//! ```
//!
//! The server binary is built on demand (`cargo build --release -p interop --bin
//! rmcp-echo-server`) unless `MCP_BENCH_SERVER` names it. Results are printed and written to
//! `<target>/bench-results/transport.md`.

#![allow(clippy::print_stdout, reason = "a benchmark harness reports on stdout")]
#![allow(clippy::unwrap_used, reason = "a benchmark harness fails loudly")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{
    cpu_time, listening_url, median, percentile, release_binary, target_dir, ticks_per_sec,
};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_transport::http::{HttpClient, HttpConfig};
use mcp_transport::{CallOptions, HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

const SESSION_VERSION: &str = "2025-11-25";

struct Settings {
    calls_c1: usize,
    calls_c64: usize,
    concurrency: usize,
    rounds: usize,
    warmup: usize,
}

fn settings() -> Settings {
    let quick = std::env::args().any(|a| a == "--quick");
    if quick {
        Settings {
            calls_c1: 500,
            calls_c64: 2_000,
            concurrency: 64,
            rounds: 1,
            warmup: 100,
        }
    } else {
        Settings {
            calls_c1: 5_000,
            calls_c64: 20_000,
            concurrency: 64,
            rounds: 5,
            warmup: 500,
        }
    }
}

/// The rmcp server binary: `MCP_BENCH_SERVER`, else built in release mode.
fn server_binary() -> PathBuf {
    release_binary("interop", "rmcp-echo-server", "MCP_BENCH_SERVER")
}

/// The server process; killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(binary: &PathBuf, stateless: bool) -> Server {
        let mut cmd = Command::new(binary);
        if stateless {
            cmd.arg("--stateless");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rmcp-echo-server");
        let stdout = child.stdout.take().unwrap();
        let url = listening_url(stdout, Duration::from_secs(30), "rmcp-echo-server");
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raw hyper: the same bytes an MCP client would POST, without any MCP logic.
struct Floor {
    client: HyperClient<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
    session: Option<HeaderValue>,
}

impl Floor {
    async fn connect(url: &str) -> Floor {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(100)
            .build(connector);
        let mut floor = Floor {
            client,
            uri: url.parse().unwrap(),
            session: None,
        };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": SESSION_VERSION, "capabilities": {},
            "clientInfo": {"name": "floor", "version": "0"}}});
        let resp = floor.post(init.to_string().into(), false).await;
        floor.session = resp.headers().get("mcp-session-id").cloned();
        let _ = resp.into_body().collect().await;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let resp = floor.post(note.to_string().into(), true).await;
        let _ = resp.into_body().collect().await;
        floor
    }

    async fn post(&self, body: Bytes, versioned: bool) -> http::Response<hyper::body::Incoming> {
        let mut req = http::Request::post(self.uri.clone())
            .body(Full::new(body))
            .unwrap();
        let h = req.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if versioned {
            h.insert(
                "mcp-protocol-version",
                HeaderValue::from_static(SESSION_VERSION),
            );
        }
        if let Some(s) = &self.session {
            h.insert("mcp-session-id", s.clone());
        }
        self.client.request(req).await.unwrap()
    }

    async fn call(&self, id: u64) {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hello"}}}}}}"#
        );
        let resp = self.post(body.into(), true).await;
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(!body.is_empty());
    }
}

enum Client {
    Floor(Box<Floor>),
    Ours(McpClient),
    Rmcp(RunningService<RoleClient, ()>),
}

impl Client {
    async fn call(&self, id: u64) {
        match self {
            Client::Floor(f) => f.call(id).await,
            Client::Ours(c) => {
                let r = c
                    .call_tool("echo", json!({"text": "hello"}), CallOptions::new())
                    .await
                    .unwrap();
                assert!(!r.is_error);
            }
            Client::Rmcp(c) => {
                let args = json!({"text": "hello"}).as_object().cloned().unwrap();
                let r = c
                    .call_tool(CallToolRequestParams::new("echo").with_arguments(args))
                    .await
                    .unwrap();
                assert_ne!(r.is_error, Some(true));
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Floor,
    Ours,
    OursStateless,
    RmcpPooled,
    RmcpDefault,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Floor => "floor (raw hyper)",
            Kind::Ours => "ours (2025-11-25)",
            Kind::OursStateless => "ours (2026-07-28)",
            Kind::RmcpPooled => "rmcp pooled",
            Kind::RmcpDefault => "rmcp default",
        }
    }
}

async fn connect(kind: Kind, url: &str) -> (Client, Option<HttpClient>) {
    match kind {
        Kind::Floor => (Client::Floor(Box::new(Floor::connect(url).await)), None),
        Kind::Ours | Kind::OursStateless => {
            // Same pool shape as the floor and rmcp pooled: keep up to 100 idle connections
            // (the default keeps 20, which churns connections at c=64; see HttpConfig).
            let mut config = HttpConfig::default();
            config.max_idle_per_host = 100;
            let pool = HttpClient::new(&config).unwrap();
            let transport =
                HttpTransport::with_service(url, HttpTransportConfig::default(), pool.clone())
                    .unwrap();
            let version = if kind == Kind::Ours {
                SESSION_VERSION
            } else {
                "2026-07-28"
            };
            let client = McpClient::builder()
                .protocol(ProtocolChoice::Version(version.into()))
                .connect(transport)
                .await
                .unwrap();
            (Client::Ours(client), Some(pool))
        }
        Kind::RmcpPooled => {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(100)
                .tcp_nodelay(true)
                .build()
                .unwrap();
            let transport = StreamableHttpClientTransport::with_client(
                http,
                StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
            );
            (Client::Rmcp(().serve(transport).await.unwrap()), None)
        }
        Kind::RmcpDefault => {
            let transport = StreamableHttpClientTransport::from_uri(url.to_owned());
            (Client::Rmcp(().serve(transport).await.unwrap()), None)
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Sample {
    c1_p50: f64,
    c1_p99: f64,
    c1_rate: f64,
    cn_rate: f64,
    cn_p50: f64,
    cn_p99: f64,
    cpu_per_call: f64,
}

async fn measure(client: &Arc<Client>, s: &Settings, tps: f64, next_id: &mut u64) -> Sample {
    // c = 1
    let mut lat = Vec::with_capacity(s.calls_c1);
    let started = Instant::now();
    for _ in 0..s.calls_c1 {
        *next_id += 1;
        let t = Instant::now();
        client.call(*next_id).await;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let c1_elapsed = started.elapsed();
    lat.sort_unstable();
    let (c1_p50, c1_p99) = (
        percentile(&lat, 0.5) / 1_000.0,
        percentile(&lat, 0.99) / 1_000.0,
    );
    // c = 64
    let per_task = s.calls_c64 / s.concurrency;
    let cpu0 = cpu_time("self", tps);
    let started = Instant::now();
    let tasks: Vec<_> = (0..s.concurrency)
        .map(|t| {
            let client = client.clone();
            let base = *next_id + (t * per_task) as u64;
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                for i in 0..per_task {
                    let t0 = Instant::now();
                    client.call(base + i as u64 + 1).await;
                    lat.push(t0.elapsed().as_nanos() as u64);
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(s.calls_c64);
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let cn_elapsed = started.elapsed();
    let cpu = cpu_time("self", tps).saturating_sub(cpu0);
    *next_id += (s.concurrency * per_task) as u64;
    lat.sort_unstable();
    let calls = (s.concurrency * per_task) as f64;
    Sample {
        c1_p50,
        c1_p99,
        c1_rate: s.calls_c1 as f64 / c1_elapsed.as_secs_f64(),
        cn_rate: calls / cn_elapsed.as_secs_f64(),
        cn_p50: percentile(&lat, 0.5) / 1_000.0,
        cn_p99: percentile(&lat, 0.99) / 1_000.0,
        cpu_per_call: cpu.as_secs_f64() * 1e6 / calls,
    }
}

struct Row {
    kind: Kind,
    sample: Sample,
    connections: Option<u64>,
}

async fn run_mode(binary: &PathBuf, stateless: bool, kinds: &[Kind], s: &Settings) -> Vec<Row> {
    let server = Server::start(binary, stateless);
    let tps = ticks_per_sec();
    let mut clients = Vec::new();
    for &kind in kinds {
        let (client, pool) = connect(kind, &server.url).await;
        let client = Arc::new(client);
        for i in 0..s.warmup {
            client.call(1_000_000 + i as u64).await;
        }
        clients.push((kind, client, pool, Vec::new()));
    }
    let mut next_id = 10_000_000;
    for round in 0..s.rounds {
        for (kind, client, _, samples) in &mut clients {
            let sample = measure(client, s, tps, &mut next_id).await;
            eprintln!(
                "  round {} {:<20} c1 p50 {:>7.1} µs  c64 {:>8.0} calls/s",
                round + 1,
                kind.label(),
                sample.c1_p50,
                sample.cn_rate
            );
            samples.push(sample);
        }
    }
    let rows = clients
        .into_iter()
        .map(|(kind, client, pool, samples)| {
            let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
            let sample = Sample {
                c1_p50: m(|s| s.c1_p50),
                c1_p99: m(|s| s.c1_p99),
                c1_rate: m(|s| s.c1_rate),
                cn_rate: m(|s| s.cn_rate),
                cn_p50: m(|s| s.cn_p50),
                cn_p99: m(|s| s.cn_p99),
                cpu_per_call: m(|s| s.cpu_per_call),
            };
            drop(client);
            Row {
                kind,
                sample,
                connections: pool.map(|p| p.connections_opened()),
            }
        })
        .collect();
    drop(server);
    rows
}

fn report(mode: &str, rows: &[Row], out: &mut String) {
    use std::fmt::Write;
    let floor = rows
        .iter()
        .find(|r| r.kind == Kind::Floor)
        .map(|r| r.sample);
    let rmcp = rows
        .iter()
        .find(|r| r.kind == Kind::RmcpPooled)
        .map(|r| r.sample);
    let _ = writeln!(out, "\n### server mode: {mode}\n");
    let _ = writeln!(
        out,
        "| client | c1 p50 µs | c1 p99 µs | c1 calls/s | c64 calls/s | c64 p50 µs | c64 p99 µs | client CPU µs/call (c64) | p50 / floor | c64 / floor | c64 / rmcp pooled | connections opened |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let s = r.sample;
        let vs_floor_p50 = floor.map_or(0.0, |f| s.c1_p50 / f.c1_p50);
        let vs_floor_rate = floor.map_or(0.0, |f| s.cn_rate / f.cn_rate);
        let vs_rmcp = rmcp.map_or(0.0, |f| s.cn_rate / f.cn_rate);
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.2}× | {:.2}× | {:.2}× | {} |",
            r.kind.label(),
            s.c1_p50,
            s.c1_p99,
            s.c1_rate,
            s.cn_rate,
            s.cn_p50,
            s.cn_p99,
            s.cpu_per_call,
            vs_floor_p50,
            vs_floor_rate,
            vs_rmcp,
            r.connections.map_or("-".to_owned(), |c| c.to_string()),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we act on.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let s = settings();
    let binary = server_binary();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = format!(
        "## transport benchmark\n\n{} calls at c=1, {} at c={}, median of {} interleaved round(s); \
         server: rmcp 3.x echo tool on axum (separate process), client and server share the machine.\n",
        s.calls_c1, s.calls_c64, s.concurrency, s.rounds
    );
    let kinds = [
        Kind::Floor,
        Kind::Ours,
        Kind::OursStateless,
        Kind::RmcpPooled,
        Kind::RmcpDefault,
    ];
    for (mode, stateless) in [("stateless-json", true), ("stateful-sse", false)] {
        eprintln!("server mode {mode}");
        let rows = runtime.block_on(run_mode(&binary, stateless, &kinds, &s));
        report(mode, &rows, &mut out);
    }
    println!("{out}");
    let dir = target_dir().join("bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("transport.md"), &out);
}
