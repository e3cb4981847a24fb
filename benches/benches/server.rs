//! Server benchmark: the Scheduler MCP service (`mcp-scheduler serve`, release build, a separate
//! process on loopback, SQLite file, auth on) measured in three ways, and compared in the same
//! run with a minimal Python server on the official `mcp` SDK doing the same inserts:
//!
//! 1. **schedules/s**: 64 tasks on one `McpClient` call `scheduleConversation` (unique topics
//!    and idempotency keys, a time a month ahead so the dispatcher stays idle), with a bearer
//!    token from the server's `/oauth/token`, in protocol 2025-11-25 (session, SSE answers) and
//!    2026-07-28 (stateless, JSON answers); calls/s, p50/p99 latency and server CPU per call,
//!    median of interleaved rounds. The Python baseline (`benches/peers/python_scheduler.py`,
//!    no auth, no per-call log line) gets the same load with the same client.
//! 2. **dispatch lateness**: conversations inserted (server stopped, directly through
//!    `SqliteStore` on its file) due over the next seconds; the server then dispatches them to
//!    a webhook runner pointing at a hyper server in this process, which records, per POST,
//!    `now - scheduledTime`. Then a burst (all due at once) for the dispatch capacity.
//! 3. **peak RSS** (`VmHWM`) of each server process at the end of its run.
//!
//! ```text
//! cargo xtask bench server            # 3 rounds of 20,000 calls; 100,000 pending over 20 s
//! cargo bench -p benches --bench server -- --quick
//! # parts, e.g. to profile one: --only schedule|dispatch, --protocol <version>, --no-python;
//! # --no-auth serves without bearer tokens (diagnosis only: the targets are with auth on)
//! cargo bench -p benches --bench server -- --only schedule --protocol 2026-07-28 --no-python
//! ```
//!
//! `MCP_BENCH_SCHEDULER` names a prebuilt `mcp-scheduler` (else it is built with `cargo build
//! --release -p mcp-scheduler`); `MCP_BENCH_PYTHON` a Python with `mcp` 2.3.x (else the venv
//! `cargo xtask interop` installs; without one the baseline is skipped and said so). Targets
//! are reported, never asserted. Results are printed and written to
//! `<target>/bench-results/server.md`.

#![allow(clippy::print_stdout, reason = "a benchmark harness reports on stdout")]
#![allow(clippy::unwrap_used, reason = "a benchmark harness fails loudly")]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use benches::{
    cpu_time, listening_url, median, percentile, release_binary, target_dir, ticks_per_sec,
    workspace_root,
};
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jiff::{SignedDuration, Timestamp};
use mcp_transport::http::{HttpClient, HttpConfig, HttpRequest};
use mcp_transport::{CallOptions, HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice};
use scheduler::domain::ScheduleConversation;
use scheduler_server::store::{SqliteStore, Store};
use serde_json::{Value, json};
use tower::ServiceBuilder;

const CONCURRENCY: usize = 64;
const SESSION_VERSION: &str = "2025-11-25";
const STATELESS_VERSION: &str = "2026-07-28";
const PYTHON_MCP: &str = "2.3.0";

const TARGET_RATE: f64 = 5_000.0;
const TARGET_P99_MS: f64 = 25.0;
const TARGET_RATIO: f64 = 10.0;

struct Settings {
    quick: bool,
    /// Run the schedule load (`--only dispatch` skips it).
    schedule: bool,
    /// Run the dispatch runs (`--only schedule` skips them).
    dispatch: bool,
    /// Protocol versions of the schedule load (`--protocol <v>` keeps one).
    versions: Vec<&'static str>,
    /// Include the Python baseline (`--no-python` leaves it out).
    python: bool,
    /// Our server requires bearer tokens (`--no-auth`, for diagnosis only, turns that off).
    auth: bool,
    /// Calls per round per client of our server.
    calls: usize,
    /// Calls per round per client of the Python server (slower; the rate is what counts).
    python_calls: usize,
    rounds: usize,
    warmup: usize,
    /// Conversations pending for the lateness run, due evenly over `spread`.
    pending: usize,
    spread: Duration,
    /// Conversations due at once for the capacity run.
    burst: usize,
}

fn settings() -> Settings {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let only = value("--only");
    let versions = match value("--protocol") {
        Some(SESSION_VERSION) => vec![SESSION_VERSION],
        Some(STATELESS_VERSION) => vec![STATELESS_VERSION],
        Some(other) => {
            panic!("--protocol {other}: expected {SESSION_VERSION} or {STATELESS_VERSION}")
        }
        None => vec![SESSION_VERSION, STATELESS_VERSION],
    };
    let full = Settings {
        quick: false,
        schedule: only != Some("dispatch"),
        dispatch: only != Some("schedule"),
        versions,
        python: !args.iter().any(|a| a == "--no-python"),
        auth: !args.iter().any(|a| a == "--no-auth"),
        calls: 20_000,
        python_calls: 6_400,
        rounds: 3,
        warmup: 1_280,
        pending: 100_000,
        spread: Duration::from_secs(20),
        burst: 20_000,
    };
    if args.iter().any(|a| a == "--quick") {
        Settings {
            quick: true,
            calls: 2_000,
            python_calls: 640,
            rounds: 1,
            warmup: 256,
            pending: 10_000,
            spread: Duration::from_secs(5),
            burst: 2_000,
            ..full
        }
    } else {
        full
    }
}

// ---------------------------------------------------------------------------------------------
// Locations and processes.

/// The `mcp-scheduler` binary: `MCP_BENCH_SCHEDULER`, else built in release mode.
fn scheduler_binary() -> PathBuf {
    release_binary("mcp-scheduler", "mcp-scheduler", "MCP_BENCH_SCHEDULER")
}

/// A Python with `mcp` installed: `MCP_BENCH_PYTHON`, else the interop venv, if present.
fn python_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("MCP_BENCH_PYTHON") {
        return Ok(PathBuf::from(path));
    }
    let cache = std::env::var_os("MCP_SCHEDULER_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mcp-scheduler")))
        .ok_or("neither MCP_SCHEDULER_CACHE nor HOME is set")?;
    let python = cache.join(format!("interop/python-mcp-{PYTHON_MCP}/bin/python"));
    if python.exists() {
        Ok(python)
    } else {
        Err(format!(
            "no Python venv with mcp {PYTHON_MCP} at {} (`cargo xtask interop` installs it)",
            python.display()
        ))
    }
}

/// A server process; killed on drop.
struct Proc {
    child: Child,
    /// Base URL (`http://127.0.0.1:<port>`).
    url: String,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set (`VmHWM`) in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// User + system CPU time of the process so far.
    fn cpu_time(&self, ticks_per_sec: f64) -> Duration {
        cpu_time(&self.pid().to_string(), ticks_per_sec)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes an `mcp-scheduler` config: loopback on a free port, the database, auth required
/// (the default) unless `auth` is false, and the runner given (builtin when `None`).
fn write_config(dir: &Path, name: &str, webhook: Option<&str>, auth: bool) -> PathBuf {
    let mut config = json!({
        "bind": "127.0.0.1:0",
        "database": dir.join(format!("{name}.db")),
    });
    if !auth {
        config["auth"] = json!({"required": false});
    }
    if let Some(url) = webhook {
        config["runner"] = json!({"type": "webhook", "url": url});
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// `mcp-scheduler clients create --name bench`: returns (client id, API key).
fn register_client(binary: &Path, config: &Path) -> (String, String) {
    let out = Command::new(binary)
        .arg("--server-config")
        .arg(config)
        .args(["clients", "create", "--name", "bench"])
        .stderr(Stdio::null())
        .output()
        .expect("run mcp-scheduler clients create");
    assert!(out.status.success(), "mcp-scheduler clients create failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no `{name}` line in: {text}"))
    };
    (field("client_id:"), field("api_key:"))
}

/// Starts `mcp-scheduler serve` (logs at its default level, `info`, into a file next to the
/// config) and waits for its "listening" line.
fn start_ours(binary: &Path, config: &Path) -> Proc {
    let log = config.with_extension("log");
    // Owned by a `Proc` at once, so a failed start below kills it.
    let mut proc = Proc {
        child: Command::new(binary)
            .arg("--server-config")
            .arg(config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start mcp-scheduler serve"),
        url: String::new(),
    };
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(url) = text.lines().find_map(|l| {
            let rest = l.strip_prefix("scheduler listening on ")?;
            Some(rest.split_whitespace().next()?.to_owned())
        }) {
            proc.url = url;
            return proc;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "mcp-scheduler did not start within 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the Python baseline and waits for its "listening on <url>/mcp" line.
fn start_python(python: &Path, dir: &Path) -> Proc {
    let script = workspace_root().join("benches/peers/python_scheduler.py");
    let mut proc = Proc {
        child: Command::new(python)
            .arg(script)
            .arg("--db")
            .arg(dir.join("python.db"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("python.log")).unwrap())
            .spawn()
            .expect("start the Python baseline"),
        url: String::new(),
    };
    let stdout = proc.child.stdout.take().unwrap();
    let url = listening_url(stdout, Duration::from_secs(60), "the Python baseline");
    proc.url = url
        .strip_suffix("/mcp")
        .unwrap_or_else(|| panic!("the Python baseline's URL does not end in /mcp: {url:?}"))
        .to_owned();
    proc
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// A token from `POST /oauth/token` (client_credentials, client_secret_post).
async fn token(base: &str, id: &str, key: &str) -> String {
    let http: HyperClient<_, Full<Bytes>> = HyperClient::builder(TokioExecutor::new()).build_http();
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={key}");
    let req = http::Request::post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = http.request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        status,
        200,
        "token endpoint: {}",
        String::from_utf8_lossy(&body)
    );
    let json: Value = serde_json::from_slice(&body).unwrap();
    json["access_token"].as_str().unwrap().to_owned()
}

/// Our client on its own pool (up to 100 idle connections, like the transport bench), adding
/// `Authorization: Bearer <token>` when given.
async fn connect(base: &str, token: Option<&str>, version: &str) -> (Arc<McpClient>, HttpClient) {
    let mut config = HttpConfig::default();
    config.max_idle_per_host = 100;
    let pool = HttpClient::new(&config).unwrap();
    let bearer = token.map(|t| HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
    let stack = ServiceBuilder::new()
        .map_request(move |mut req: HttpRequest| {
            if let Some(b) = &bearer {
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, b.clone());
            }
            req
        })
        .service(pool.clone());
    let transport = HttpTransport::with_service(
        &format!("{base}/mcp"),
        HttpTransportConfig::default(),
        stack,
    )
    .unwrap();
    let client = McpClient::builder()
        .protocol(ProtocolChoice::Version(version.into()))
        .default_timeout(Duration::from_secs(60))
        .connect(transport)
        .await
        .unwrap();
    (Arc::new(client), pool)
}

// ---------------------------------------------------------------------------------------------
// 1. Schedule load.

#[derive(Default, Clone, Copy)]
struct Sample {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu_us: f64,
    client_cpu_us: f64,
    errors: usize,
}

/// `calls` schedule calls from 64 tasks; `tag` makes topics and idempotency keys unique.
async fn load(client: &Arc<McpClient>, server: &Proc, calls: usize, tag: &str) -> Sample {
    let tps = ticks_per_sec();
    let when = Timestamp::now()
        .checked_add(SignedDuration::from_hours(24 * 30))
        .unwrap()
        .round(jiff::Unit::Millisecond)
        .unwrap()
        .to_string();
    let per_task = calls.div_ceil(CONCURRENCY);
    let cpu0 = server.cpu_time(tps);
    let client0 = cpu_time("self", tps);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let client = client.clone();
            let (tag, when) = (tag.to_owned(), when.clone());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                let mut errors = 0;
                for i in 0..per_task {
                    let args = json!({
                        "topic": format!("bench {tag} {t}-{i}"),
                        "participants": ["ana@contoso.example", "bo@contoso.example"],
                        "scheduledTime": when,
                        "timezone": "Europe/Paris",
                        "idempotencyKey": format!("{tag}-{t}-{i}"),
                    });
                    let t0 = Instant::now();
                    let ok = match client
                        .call_tool("scheduleConversation", args, CallOptions::new())
                        .await
                    {
                        Ok(r) => {
                            !r.is_error
                                && r.structured_content
                                    .as_ref()
                                    .is_some_and(|s| s["created"] == true)
                        }
                        Err(e) => {
                            if errors == 0 {
                                eprintln!("    call failed: {e}");
                            }
                            false
                        }
                    };
                    lat.push(t0.elapsed().as_micros() as u64);
                    errors += usize::from(!ok);
                }
                (lat, errors)
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(per_task * CONCURRENCY);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    let cpu = server.cpu_time(tps).saturating_sub(cpu0);
    let client_cpu = cpu_time("self", tps).saturating_sub(client0);
    lat.sort_unstable();
    let n = lat.len() as f64;
    Sample {
        rate: n / elapsed.as_secs_f64(),
        p50_ms: percentile(&lat, 0.5) / 1_000.0,
        p99_ms: percentile(&lat, 0.99) / 1_000.0,
        server_cpu_us: cpu.as_secs_f64() * 1e6 / n,
        client_cpu_us: client_cpu.as_secs_f64() * 1e6 / n,
        errors,
    }
}

struct LoadRow {
    server: &'static str,
    version: &'static str,
    auth: &'static str,
    sample: Sample,
    connections: u64,
}

struct Runner {
    server: &'static str,
    version: &'static str,
    auth: &'static str,
    python: bool,
    client: Arc<McpClient>,
    pool: HttpClient,
    samples: Vec<Sample>,
}

struct LoadResult {
    rows: Vec<LoadRow>,
    ours_rss_kib: Option<u64>,
    python_rss_kib: Option<u64>,
    python_note: Option<String>,
}

async fn schedule_load(binary: &Path, dir: &Path, s: &Settings) -> LoadResult {
    let config = write_config(dir, "load", None, s.auth);
    let (id, key) = register_client(binary, &config);
    let ours = start_ours(binary, &config);
    let token = if s.auth {
        Some(token(&ours.url, &id, &key).await)
    } else {
        None
    };
    let python = if s.python {
        python_binary().map(|p| start_python(&p, dir))
    } else {
        Err("left out (--no-python)".to_owned())
    };
    let mut runners = Vec::new();
    for &version in &s.versions {
        let (client, pool) = connect(&ours.url, token.as_deref(), version).await;
        runners.push(Runner {
            server: "ours (mcp-scheduler)",
            version,
            auth: if s.auth {
                "bearer JWT"
            } else {
                "none (--no-auth)"
            },
            python: false,
            client,
            pool,
            samples: Vec::new(),
        });
    }
    if let Ok(py) = &python {
        for &version in &s.versions {
            let (client, pool) = connect(&py.url, None, version).await;
            runners.push(Runner {
                server: "Python mcp 2.3.0 (MCPServer)",
                version,
                auth: "none",
                python: true,
                client,
                pool,
                samples: Vec::new(),
            });
        }
    }
    for r in &runners {
        let proc = if r.python {
            python.as_ref().unwrap()
        } else {
            &ours
        };
        let warmup = if r.python { s.warmup / 4 } else { s.warmup };
        let w = load(&r.client, proc, warmup, &format!("warmup-{}", r.version)).await;
        eprintln!(
            "  warm-up {:<30} {:<10} {:>7.0} calls/s  ({} errors)",
            r.server, r.version, w.rate, w.errors
        );
    }
    for round in 0..s.rounds {
        for r in &mut runners {
            let (proc, calls) = if r.python {
                (python.as_ref().unwrap(), s.python_calls)
            } else {
                (&ours, s.calls)
            };
            let sample = load(&r.client, proc, calls, &format!("r{round}-{}", r.version)).await;
            eprintln!(
                "  round {} {:<30} {:<10} {:>7.0} calls/s  p50 {:>6.2} ms  p99 {:>6.2} ms  \
                 CPU µs/call: server {:>4.0} client {:>4.0}  errors {}",
                round + 1,
                r.server,
                r.version,
                sample.rate,
                sample.p50_ms,
                sample.p99_ms,
                sample.server_cpu_us,
                sample.client_cpu_us,
                sample.errors
            );
            r.samples.push(sample);
        }
    }
    let rows = runners
        .into_iter()
        .map(|r| {
            let m = |f: fn(&Sample) -> f64| median(r.samples.iter().map(f).collect());
            let sample = Sample {
                rate: m(|s| s.rate),
                p50_ms: m(|s| s.p50_ms),
                p99_ms: m(|s| s.p99_ms),
                server_cpu_us: m(|s| s.server_cpu_us),
                client_cpu_us: m(|s| s.client_cpu_us),
                errors: r.samples.iter().map(|s| s.errors).sum(),
            };
            LoadRow {
                server: r.server,
                version: r.version,
                auth: r.auth,
                sample,
                connections: r.pool.connections_opened(),
            }
        })
        .collect();
    let (python_rss_kib, python_note) = match &python {
        Ok(p) => (p.peak_rss_kib(), None),
        Err(e) => (None, Some(e.clone())),
    };
    LoadResult {
        rows,
        ours_rss_kib: ours.peak_rss_kib(),
        python_rss_kib,
        python_note,
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Dispatch.

#[derive(Default)]
struct Received {
    lateness_us: Vec<i64>,
    ids: HashSet<String>,
    duplicates: usize,
    last: Option<Timestamp>,
    bad: usize,
}

impl Received {
    fn record(&mut self, body: &[u8], now: Timestamp) {
        let parsed: Option<(String, Timestamp)> =
            serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                let id = v["conversationId"].as_str()?.to_owned();
                let when = v["scheduledTime"].as_str()?.parse().ok()?;
                Some((id, when))
            });
        let Some((id, when)) = parsed else {
            self.bad += 1;
            return;
        };
        let late = now.duration_since(when).as_micros();
        self.lateness_us
            .push(i64::try_from(late).unwrap_or(i64::MAX));
        if !self.ids.insert(id) {
            self.duplicates += 1;
        }
        self.last = Some(now);
    }
}

/// The webhook receiver: a hyper server on loopback answering 200 to every POST and recording
/// its lateness. Returns its URL and what it records.
async fn start_receiver() -> (String, Arc<Mutex<Received>>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Received::default()));
    let shared = received.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let received = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<_>| {
                    let received = received.clone();
                    async move {
                        let body: hyper::body::Incoming = req.into_body();
                        let body = body.collect().await.map(|b| b.to_bytes());
                        let now = Timestamp::now();
                        if let Ok(body) = body {
                            received.lock().unwrap().record(&body, now);
                        }
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/hook"), received, task)
}

struct Dispatch {
    label: String,
    n: usize,
    spread: Duration,
    insert_secs: f64,
    /// Seconds from the server being ready to the first conversation being due (negative: the
    /// setup overran and the first ones were already late when the server started).
    margin_secs: f64,
    delivered: usize,
    duplicates: usize,
    bad: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Delivered per second, from the first due time to the last delivery.
    rate: f64,
    server_cpu_secs: f64,
    rss_kib: Option<u64>,
    timed_out: bool,
}

/// Inserts `n` conversations due evenly over `spread` from a moment a few seconds ahead (the
/// server stopped, through `SqliteStore` on its file), starts the server with the webhook
/// runner, and records the deliveries (bounded: gives up 60 s after the last is due).
async fn dispatch(binary: &Path, dir: &Path, label: &str, n: usize, spread: Duration) -> Dispatch {
    let (hook, received, receiver) = start_receiver().await;
    let name = format!("dispatch-{n}-{}", spread.as_millis());
    let config = write_config(dir, &name, Some(&hook), true);
    // Lead time: the inserts (tens of µs each with group commit) and the server start.
    let lead_ms = 3_000 + i64::try_from(n / 10).unwrap_or(0);
    let base_ms = Timestamp::now().as_millisecond() + lead_ms;
    let spread_ms = i64::try_from(spread.as_millis()).unwrap();
    let n_i64 = i64::try_from(n).unwrap();
    let started = Instant::now();
    {
        let store = Arc::new(SqliteStore::open(dir.join(format!("{name}.db"))).unwrap());
        let now = Timestamp::now();
        let mut next = 0usize;
        while next < n {
            let end = (next + 4_096).min(n);
            let mut batch = tokio::task::JoinSet::new();
            for i in next..end {
                let i_i64 = i64::try_from(i).unwrap();
                let due = Timestamp::from_millisecond(base_ms + i_i64 * spread_ms / n_i64).unwrap();
                let store = store.clone();
                batch.spawn(async move {
                    let valid = ScheduleConversation {
                        topic: format!("dispatch bench {i}"),
                        participants: vec!["ana@contoso.example".to_owned()],
                        scheduled_time: due.to_string(),
                        timezone: None,
                        duration_minutes: None,
                        metadata: None,
                        idempotency_key: None,
                    }
                    .validate()
                    .unwrap();
                    let id = format!("dispatch-bench-{i:07}");
                    store.schedule(id, &valid, None, now).await.unwrap();
                });
            }
            while let Some(r) = batch.join_next().await {
                r.unwrap();
            }
            next = end;
        }
        // Dropping the store waits for its writer thread: the file is closed before the server
        // opens it.
        drop(Arc::into_inner(store).unwrap());
    }
    let insert_secs = started.elapsed().as_secs_f64();
    let tps = ticks_per_sec();
    let server = start_ours(binary, &config);
    let margin_secs = (base_ms - Timestamp::now().as_millisecond()) as f64 / 1_000.0;
    let cpu0 = server.cpu_time(tps);
    let deadline = Instant::now()
        + Duration::from_millis(
            u64::try_from((base_ms - Timestamp::now().as_millisecond()).max(0)).unwrap(),
        )
        + spread
        + Duration::from_secs(60);
    let timed_out = loop {
        let done = received.lock().unwrap().ids.len() >= n;
        if done {
            break false;
        }
        if Instant::now() >= deadline {
            break true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let server_cpu_secs = server.cpu_time(tps).saturating_sub(cpu0).as_secs_f64();
    let rss_kib = server.peak_rss_kib();
    drop(server);
    receiver.abort();
    let r = std::mem::take(&mut *received.lock().unwrap());
    let mut late = r.lateness_us.clone();
    late.sort_unstable();
    let pct = |p: f64| {
        if late.is_empty() {
            return 0.0;
        }
        late[((late.len() as f64 - 1.0) * p).round() as usize] as f64 / 1_000.0
    };
    let rate = r.last.map_or(0.0, |last| {
        let secs = (last.as_millisecond() - base_ms) as f64 / 1_000.0;
        r.ids.len() as f64 / secs.max(1e-3)
    });
    Dispatch {
        label: label.to_owned(),
        n,
        spread,
        insert_secs,
        margin_secs,
        delivered: r.ids.len(),
        duplicates: r.duplicates,
        bad: r.bad,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: late.last().map_or(0.0, |&m| m as f64 / 1_000.0),
        rate,
        server_cpu_secs,
        rss_kib,
        timed_out,
    }
}

// ---------------------------------------------------------------------------------------------
// Report.

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("-".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// The first three fields of `/proc/loadavg`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn report(
    s: &Settings,
    load_before: &str,
    load_after: &str,
    load: Option<&LoadResult>,
    dispatches: &[Dispatch],
) -> String {
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        out,
        "## server benchmark{}\n\n\
         Server and client share the machine ({cores} cores; load average before the run \
         {load_before}, after {load_after}). Our server: `mcp-scheduler serve`, release build, \
         SQLite file (WAL), {}, info-level logs to a file (its default). Python baseline: \
         `benches/peers/python_scheduler.py` on `mcp` {PYTHON_MCP} (`MCPServer`, uvicorn), the \
         same insert into SQLite (WAL), **no auth**, no access log. Client: this workspace's \
         `McpClient`, {CONCURRENCY} concurrent tasks. Schedule load: {} calls per round on ours, \
         {} on Python, median of {} interleaved round(s).",
        if s.quick { " (--quick)" } else { "" },
        if s.auth {
            "auth required (a bearer JWT from its `/oauth/token` on every call)"
        } else {
            "**auth off** for the schedule load (--no-auth; diagnosis only)"
        },
        s.calls,
        s.python_calls,
        s.rounds
    );
    let find = |python: bool, version: &str| {
        load.and_then(|l| {
            l.rows
                .iter()
                .find(|r| r.server.starts_with("Python") == python && r.version == version)
                .map(|r| r.sample)
        })
    };
    let _ = writeln!(out, "\n### Targets\n");
    let _ = writeln!(out, "| measure | result | target | met |");
    let _ = writeln!(out, "|---|---|---|---|");
    for &version in &s.versions {
        if let Some(o) = find(false, version) {
            let _ = writeln!(
                out,
                "| schedules/s through MCP, c={CONCURRENCY}, auth {} ({version}) | {:.0} | ≥ {TARGET_RATE:.0} | {} |",
                if s.auth { "on" } else { "**off** (--no-auth)" },
                o.rate,
                if s.auth {
                    met(o.rate >= TARGET_RATE && o.errors == 0)
                } else {
                    "- (target is with auth on)"
                }
            );
        }
    }
    if let Some(load) = load {
        for &version in &s.versions {
            match (find(false, version), find(true, version)) {
                (Some(o), Some(p)) if p.rate > 0.0 => {
                    let ratio = o.rate / p.rate;
                    let _ = writeln!(
                        out,
                        "| ours / Python schedules/s ({version}) | {ratio:.1}× | ≥ {TARGET_RATIO:.0}× | {} |",
                        met(ratio >= TARGET_RATIO)
                    );
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "| ours / Python schedules/s ({version}) | not measured: {} | ≥ {TARGET_RATIO:.0}× | - |",
                        load.python_note.as_deref().unwrap_or("no Python figure")
                    );
                }
            }
        }
    }
    if let Some(d) = dispatches.first() {
        let valid = d.margin_secs > 0.0 && !d.timed_out;
        let _ = writeln!(
            out,
            "| dispatch lateness p99, {} pending due over {} s | {:.1} ms | ≤ {TARGET_P99_MS:.0} ms | {} |",
            d.n,
            d.spread.as_secs(),
            d.p99_ms,
            if valid {
                met(d.p99_ms <= TARGET_P99_MS)
            } else {
                "invalid run (see below)"
            }
        );
    }

    if let Some(load) = load {
        let _ = writeln!(out, "\n### Schedule load (c={CONCURRENCY})\n");
        let _ = writeln!(
            out,
            "| server | protocol | auth | calls/s | p50 ms | p99 ms | server CPU µs/call | client CPU µs/call | failed calls | connections opened |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for r in &load.rows {
            let s = r.sample;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {} | {} |",
                r.server,
                r.version,
                r.auth,
                s.rate,
                s.p50_ms,
                s.p99_ms,
                s.server_cpu_us,
                s.client_cpu_us,
                s.errors,
                r.connections
            );
        }
        if let Some(note) = &load.python_note {
            let _ = writeln!(out, "\nPython baseline skipped: {note}.");
        }
    }

    if !dispatches.is_empty() {
        let _ = writeln!(
            out,
            "\n### Dispatch (webhook runner → hyper receiver in the bench)\n"
        );
        let _ = writeln!(
            out,
            "| run | conversations | due over | inserted in (server stopped) | server ready before first due | delivered | duplicates | lateness p50 ms | p99 ms | max ms | dispatched/s | server CPU s |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    }
    for d in dispatches {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} s | {:.1} s | {:.1} s | {}{} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} |",
            d.label,
            d.n,
            d.spread.as_secs_f64(),
            d.insert_secs,
            d.margin_secs,
            d.delivered,
            if d.timed_out { " (timed out)" } else { "" },
            d.duplicates,
            d.p50_ms,
            d.p99_ms,
            d.max_ms,
            d.rate,
            d.server_cpu_secs
        );
    }
    for d in dispatches.iter().filter(|d| d.bad > 0) {
        let _ = writeln!(
            out,
            "\n{}: {} webhook bodies could not be read.",
            d.label, d.bad
        );
    }
    if !dispatches.is_empty() {
        let _ = writeln!(
            out,
            "\nLateness = arrival at the receiver − `scheduledTime` (same clock). Dispatched/s = \
             delivered ÷ (last delivery − first due time): for the spread run it is bounded by \
             the offered rate, for the burst run it is the dispatch capacity."
        );
    }

    let _ = writeln!(out, "\n### Peak RSS (`VmHWM` at the end of each run)\n");
    let _ = writeln!(out, "| process | peak RSS MiB |");
    let _ = writeln!(out, "|---|---|");
    if let Some(load) = load {
        let _ = writeln!(
            out,
            "| ours, after the schedule load | {} |",
            mib(load.ours_rss_kib)
        );
    }
    for d in dispatches {
        let _ = writeln!(
            out,
            "| ours, after dispatching {} ({}) | {} |",
            d.n,
            d.label,
            mib(d.rss_kib)
        );
    }
    if let Some(load) = load {
        let _ = writeln!(
            out,
            "| Python baseline, after the schedule load | {} |",
            mib(load.python_rss_kib)
        );
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we act on.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let s = settings();
    let load_before = load_average();
    let binary = scheduler_binary();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let load = s.schedule.then(|| {
        eprintln!("schedule load (c={CONCURRENCY})");
        runtime.block_on(schedule_load(&binary, dir.path(), &s))
    });
    let mut dispatches = Vec::new();
    if s.dispatch {
        eprintln!("dispatch: {} pending over {:?}", s.pending, s.spread);
        dispatches.push(runtime.block_on(dispatch(
            &binary,
            dir.path(),
            "spread",
            s.pending,
            s.spread,
        )));
        eprintln!("dispatch: burst of {}", s.burst);
        dispatches.push(runtime.block_on(dispatch(
            &binary,
            dir.path(),
            "burst (all due at once)",
            s.burst,
            Duration::ZERO,
        )));
    }
    let out = report(
        &s,
        &load_before,
        &load_average(),
        load.as_ref(),
        &dispatches,
    );
    println!("{out}");
    let results = target_dir().join("bench-results");
    let _ = std::fs::create_dir_all(&results);
    let _ = std::fs::write(results.join("server.md"), &out);
}
