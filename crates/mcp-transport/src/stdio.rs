//! stdio transport: the server is a child process; messages are newline-delimited JSON on its
//! stdin and stdout; its stderr goes to `tracing`; the child is killed when the transport is
//! dropped.
//!
//! ```no_run
//! use mcp_transport::stdio::{StdioConfig, StdioTransport};
//! use mcp_transport::McpClient;
//!
//! # async fn run() -> Result<(), mcp_transport::Error> {
//! let config = StdioConfig::new("python3").arg("-m").arg("my_mcp_server");
//! let client = McpClient::builder().connect(StdioTransport::spawn(&config)?).await?;
//! client.ping().await?;
//! client.close().await?; // closes stdin, waits for exit, kills after `shutdown_timeout`
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use crate::error::{Error, Kind};
use crate::jsonrpc::{Message, Notification, Request, RequestId, Response};
use crate::transport::{BoxFuture, Inbound, RequestHints, Transport};

/// How to start a stdio MCP server: the `transport` section of a configuration with
/// `"type": "stdio"`.
///
/// ```
/// let config: mcp_transport::stdio::StdioConfig = serde_json::from_str(
///     r#"{"command": "python3", "args": ["server.py"], "env": {"LOG_LEVEL": "debug"}}"#,
/// ).unwrap();
/// assert_eq!(config.args, ["server.py"]);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct StdioConfig {
    /// The program to run (looked up on `PATH`).
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables (the child inherits the rest unless `clear_env`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Start the child with only `env` (plus `PATH`). Default false.
    #[serde(default)]
    pub clear_env: bool,
    /// Working directory. Default: the current one.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Most bytes in one message line. Default 16 MiB.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// How long [`close`](Transport::close) waits for the child to exit after closing its
    /// stdin before killing it. Default 5 s.
    #[serde(default = "default_shutdown_timeout", with = "millis")]
    pub shutdown_timeout: Duration,
}

fn default_max_message_bytes() -> usize {
    16 * 1024 * 1024
}

fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(5)
}

mod millis {
    //! `shutdown_timeout` in configuration files is a number of milliseconds.
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl StdioConfig {
    /// Runs `command` with no arguments and default settings.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            clear_env: false,
            cwd: None,
            max_message_bytes: default_max_message_bytes(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }

    /// Appends an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
}

type Pending = Mutex<HashMap<RequestId, oneshot::Sender<Result<Response, Error>>>>;

struct Shared {
    pending: Pending,
    inbound: OnceLock<Inbound>,
    closed: AtomicBool,
}

/// MCP over a child process's stdin/stdout. See the [module docs](self).
pub struct StdioTransport {
    shared: Arc<Shared>,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    child: tokio::sync::Mutex<Option<Child>>,
    tasks: Vec<tokio::task::AbortHandle>,
    shutdown_timeout: Duration,
    program: String,
}

impl std::fmt::Debug for StdioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioTransport")
            .field("program", &self.program)
            .finish_non_exhaustive()
    }
}

impl StdioTransport {
    /// Starts the child process. Must be called inside a tokio runtime.
    pub fn spawn(config: &StdioConfig) -> Result<Self, Error> {
        let mut cmd = Command::new(&config.command);
        cmd.args(&config.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if config.clear_env {
            cmd.env_clear();
            if let Some(path) = std::env::var_os("PATH") {
                cmd.env("PATH", path);
            }
        }
        cmd.envs(&config.env);
        if let Some(dir) = &config.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|e| {
            Error::new(Kind::Connect)
                .with_context(format!("could not start `{}`", config.command))
                .with_source(e)
        })?;
        let missing = || Error::new(Kind::Io).with_context("child stdio was not captured");
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stderr = child.stderr.take().ok_or_else(missing)?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            inbound: OnceLock::new(),
            closed: AtomicBool::new(false),
        });
        let program = config.command.clone();
        let reader = tokio::spawn(read_stdout(
            shared.clone(),
            BufReader::new(stdout),
            config.max_message_bytes,
        ));
        let logger = tokio::spawn(log_stderr(BufReader::new(stderr), program.clone()));
        Ok(Self {
            shared,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            child: tokio::sync::Mutex::new(Some(child)),
            tasks: vec![reader.abort_handle(), logger.abort_handle()],
            shutdown_timeout: config.shutdown_timeout,
            program,
        })
    }

    /// The child's process id, while it runs.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.as_ref().and_then(Child::id)
    }

    async fn write(&self, message: &Message) -> Result<(), Error> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(Error::closed(
                "stdio server has exited or the transport was closed",
            ));
        }
        let mut line = message.to_vec();
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        let Some(stdin) = stdin.as_mut() else {
            return Err(Error::closed("stdio transport closed"));
        };
        let written = async {
            stdin.write_all(&line).await?;
            stdin.flush().await
        };
        written.await.map_err(|e| {
            Error::new(Kind::Closed)
                .with_context("writing to the server's stdin")
                .with_source(e)
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes a pending request if its caller gave up.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: Option<RequestId>,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            lock(&self.shared.pending).remove(&id);
        }
    }
}

impl Transport for StdioTransport {
    fn request<'a>(
        &'a self,
        request: Request,
        _hints: &'a RequestHints,
    ) -> BoxFuture<'a, Result<Response, Error>> {
        Box::pin(async move {
            crate::telemetry::record_endpoint(None, None, "pipe");
            let (tx, rx) = oneshot::channel();
            let id = request.id.clone();
            lock(&self.shared.pending).insert(id.clone(), tx);
            let mut guard = PendingGuard {
                shared: &self.shared,
                id: Some(id),
            };
            self.write(&Message::Request(request)).await?;
            let outcome = rx
                .await
                .unwrap_or_else(|_| Err(Error::closed("stdio server exited")));
            guard.id = None;
            outcome
        })
    }

    fn notify<'a>(
        &'a self,
        notification: Notification,
        _hints: &'a RequestHints,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.write(&Message::Notification(notification)).await })
    }

    fn respond(&self, message: Message) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move { self.write(&message).await })
    }

    fn set_inbound(&self, inbound: Inbound) {
        let _ = self.shared.inbound.set(inbound);
    }

    fn close(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            // Closing stdin asks the server to exit; kill it if it does not in time.
            drop(self.stdin.lock().await.take());
            self.shared.closed.store(true, Ordering::Relaxed);
            let Some(mut child) = self.child.lock().await.take() else {
                return Ok(());
            };
            match tokio::time::timeout(self.shutdown_timeout, child.wait()).await {
                Ok(Ok(status)) => {
                    tracing::debug!(program = %self.program, %status, "stdio server exited");
                }
                _ => {
                    tracing::debug!(program = %self.program, "stdio server did not exit in time; killing it");
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
            fail_pending(&self.shared, "stdio transport closed");
            Ok(())
        })
    }
}

impl Drop for StdioTransport {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // `kill_on_drop` kills the child when `Child` drops with us.
    }
}

fn fail_pending(shared: &Shared, why: &str) {
    shared.closed.store(true, Ordering::Relaxed);
    for (_, tx) in lock(&shared.pending).drain() {
        let _ = tx.send(Err(Error::closed(why.to_owned())));
    }
}

/// Reads one line of at most `cap` bytes (without the newline). `Ok(None)` at end of stream.
/// A longer line is consumed and reported as an error, so the stream stays in sync.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> Result<Option<bool>, std::io::Error> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() && !too_long {
                None
            } else {
                Some(!too_long)
            });
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if buf.len() + chunk.len() > cap {
            too_long = true;
            buf.clear();
        } else if !too_long {
            buf.extend_from_slice(chunk);
        }
        let used = done.unwrap_or(available.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Some(!too_long));
        }
    }
}

async fn read_stdout<R: AsyncBufRead + Unpin>(shared: Arc<Shared>, mut reader: R, cap: usize) {
    let mut line = Vec::new();
    loop {
        match read_line(&mut reader, &mut line, cap).await {
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "reading the stdio server's stdout failed");
                break;
            }
            Ok(Some(false)) => {
                tracing::warn!(
                    cap,
                    "stdio server sent a message over the size cap; dropped"
                );
            }
            Ok(Some(true)) => {
                let text = line.strip_suffix(b"\r").unwrap_or(&line);
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match Message::from_slice_batch(text) {
                    Ok(messages) => messages.into_iter().for_each(|m| route(&shared, m)),
                    Err(e) => {
                        tracing::warn!(error = %e, "stdio server sent a line that is not JSON-RPC")
                    }
                }
            }
        }
    }
    fail_pending(&shared, "stdio server closed its stdout (exited?)");
}

fn route(shared: &Shared, message: Message) {
    let (id, outcome) = match message {
        Message::Response(r) => (r.id.clone(), Ok(r)),
        Message::Error(e) => match e.id {
            Some(id) => (id, Err(Error::rpc(e.error))),
            None => {
                tracing::warn!(error = %e.error, "stdio server sent an error without an id");
                return;
            }
        },
        other => {
            match shared.inbound.get() {
                Some(deliver) => deliver(other),
                None => tracing::debug!("dropping a server message: no inbound handler set"),
            }
            return;
        }
    };
    match lock(&shared.pending).remove(&id) {
        Some(tx) => {
            let _ = tx.send(outcome);
        }
        None => tracing::debug!(%id, "response to a request nobody waits for"),
    }
}

async fn log_stderr<R: AsyncBufRead + Unpin>(reader: R, program: String) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "mcp_transport::stdio::stderr", program = %program, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_capped_and_stay_in_sync() {
        let input: &[u8] = b"short\nthis line is far too long\nok\r\nlast";
        let mut reader = BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.unwrap(),
            Some(true)
        );
        assert_eq!(buf, b"short");
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.unwrap(),
            Some(false)
        );
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.unwrap(),
            Some(true)
        );
        assert_eq!(buf, b"ok\r");
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.unwrap(),
            Some(true)
        );
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut reader, &mut buf, 10).await.unwrap(), None);
    }

    #[test]
    fn config_defaults() {
        let c: StdioConfig =
            serde_json::from_str(r#"{"command":"x","shutdown_timeout":250}"#).unwrap();
        assert_eq!(c.shutdown_timeout, Duration::from_millis(250));
        assert_eq!(c.max_message_bytes, 16 * 1024 * 1024);
        assert!(!c.clear_env);
    }
}
