//! A scripted HTTP service for the layer, failover and hedging tests: every request is
//! logged (with its arrival time on tokio's clock) and answered by a test-supplied script
//! (a status with headers, an I/O error, possibly after a delay).

#![allow(dead_code, reason = "each test file uses part of it")]
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use mcp_resilience::BoxError;
use tokio::time::Instant;

/// One request as the scripted service saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: http::Method,
    pub(crate) uri: http::Uri,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) at: Instant,
}

impl Seen {
    pub(crate) fn authority(&self) -> &str {
        self.uri.authority().map_or("", |a| a.as_str())
    }
}

/// What the script answers.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Status(u16),
    StatusWith(u16, &'static str, &'static str),
    Fail(std::io::ErrorKind),
    After(Duration, Box<Step>),
}

pub(crate) use Step::{Fail, Status};

pub(crate) fn after(delay: Duration, step: Step) -> Step {
    Step::After(delay, Box::new(step))
}

type Script = dyn Fn(&Seen, usize) -> Step + Send + Sync;

/// The scripted service; clones share the script and the log.
#[derive(Clone)]
pub(crate) struct Scripted {
    script: Arc<Script>,
    log: Arc<Mutex<Vec<Seen>>>,
    finished: Arc<AtomicUsize>,
}

impl Scripted {
    /// Answers the `n`th request (from 0) with `script(&request, n)`.
    pub(crate) fn new(script: impl Fn(&Seen, usize) -> Step + Send + Sync + 'static) -> Self {
        Self {
            script: Arc::new(script),
            log: Arc::default(),
            finished: Arc::default(),
        }
    }

    /// Answers request `n` with `steps[n]`, the last step repeating.
    pub(crate) fn steps(steps: Vec<Step>) -> Self {
        Self::new(move |_, n| steps[n.min(steps.len() - 1)].clone())
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// Requests whose answer was produced (not cancelled while waiting).
    pub(crate) fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    pub(crate) fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Arrival times relative to the first request.
    pub(crate) fn offsets(&self) -> Vec<Duration> {
        let log = self.log.lock().unwrap();
        log.iter().map(|s| s.at - log[0].at).collect()
    }
}

async fn play(step: Step) -> Result<http::Response<String>, BoxError> {
    let mut step = step;
    loop {
        match step {
            Step::After(delay, next) => {
                tokio::time::sleep(delay).await;
                step = *next;
            }
            Step::Status(s) => {
                return Ok(http::Response::builder()
                    .status(s)
                    .body(String::new())
                    .unwrap());
            }
            Step::StatusWith(s, name, value) => {
                return Ok(http::Response::builder()
                    .status(s)
                    .header(name, value)
                    .body(String::new())
                    .unwrap());
            }
            Step::Fail(kind) => return Err(Box::new(std::io::Error::from(kind))),
        }
    }
}

impl tower::Service<http::Request<Bytes>> for Scripted {
    type Response = http::Response<String>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Bytes>) -> Self::Future {
        let seen = Seen {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
            body: req.body().clone(),
            at: Instant::now(),
        };
        let step = {
            let mut log = self.log.lock().unwrap();
            let n = log.len();
            log.push(seen.clone());
            (self.script)(&seen, n)
        };
        let finished = self.finished.clone();
        Box::pin(async move {
            let result = play(step).await;
            finished.fetch_add(1, Ordering::SeqCst);
            result
        })
    }
}

/// A POST of a JSON-RPC body to `url`.
pub(crate) fn post(url: &str, body: &str) -> http::Request<Bytes> {
    http::Request::post(url)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_owned()))
        .unwrap()
}

pub(crate) const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
pub(crate) const CREATE: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"scheduleConversation","arguments":{"title":"x"}}}"#;
pub(crate) const KEYED_CREATE: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"scheduleConversation","arguments":{"title":"x","idempotencyKey":"key-7"}}}"#;
