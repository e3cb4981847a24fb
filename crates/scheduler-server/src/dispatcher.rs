//! The dispatcher: claims due conversations with a lease, runs each through a
//! [`ConversationRunner`], and records the outcome, retrying failures with exponential
//! backoff and jitter up to a maximum number of attempts.
//!
//! Delivery is at least once: a dispatcher that crashes mid-run leaves its claims leased;
//! when the leases expire another claim (by this or another process) runs them again, so
//! nothing accepted is lost. Runners should therefore be idempotent per conversation id (the
//! webhook runner sends it as `Idempotency-Key`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::{Notify, Semaphore};

use crate::clock::Clock;
use crate::store::{BoxFuture, Conversation, RunOutcome, Store};
use crate::tools::details;

/// Runs a conversation when it is due. `Err` carries the reason, recorded as `lastError`.
pub trait ConversationRunner: Send + Sync + 'static {
    /// Runs one attempt.
    fn run<'a>(&'a self, conversation: &'a Conversation) -> BoxFuture<'a, Result<(), String>>;
}

/// The embedded default: a conversation "runs" by being announced in the log and completes.
#[derive(Debug, Clone, Default)]
pub struct BuiltinRunner;

impl ConversationRunner for BuiltinRunner {
    fn run<'a>(&'a self, c: &'a Conversation) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            tracing::info!(
                conversation = %c.id,
                topic = %c.topic,
                participants = c.participants.len(),
                attempt = c.attempts,
                "conversation started"
            );
            Ok(())
        })
    }
}

/// POSTs the conversation as JSON to a URL; a 2xx answer completes it. The request carries
/// `Idempotency-Key: <conversation id>` so the receiver can drop repeats.
pub struct WebhookRunner {
    url: http::Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for WebhookRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRunner")
            .field("host", &self.url.host())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookRunner {
    /// A runner posting to `url` (plain `http`), each attempt bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let url: http::Uri = url
            .parse()
            .map_err(|_| "runner.url is not a valid URL".to_owned())?;
        if url.scheme_str() != Some("http") || url.host().is_none() {
            return Err("runner.url must be an http:// URL with a host".to_owned());
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        Ok(Self {
            url,
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }
}

impl ConversationRunner for WebhookRunner {
    fn run<'a>(&'a self, c: &'a Conversation) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&details(c)).map_err(|e| e.to_string())?;
            let req = http::Request::post(self.url.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .header("idempotency-key", c.id.as_str())
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let resp = tokio::time::timeout(self.timeout, async {
                let resp = self
                    .client
                    .request(req)
                    .await
                    .map_err(|e| format!("webhook: {e}"))?;
                let status = resp.status();
                let _ = resp.into_body().collect().await;
                Ok::<_, String>(status)
            })
            .await
            .map_err(|_| format!("webhook timed out after {:?}", self.timeout))??;
            if resp.is_success() {
                Ok(())
            } else {
                Err(format!("webhook answered {resp}"))
            }
        })
    }
}

/// Dispatcher settings. Every one has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatcherConfig {
    /// How long a claim holds a conversation before another claim may take it, in ms.
    /// Default 60,000.
    pub lease_ms: u64,
    /// Most conversations claimed at once. Default 64.
    pub batch: usize,
    /// Most runs in flight. Default 64.
    pub concurrency: usize,
    /// Attempts before a conversation is `failed`. Default 5.
    pub max_attempts: u32,
    /// First retry delay in ms; doubles per attempt, with full jitter. Default 1,000.
    pub retry_base_ms: u64,
    /// Longest retry delay in ms. Default 300,000.
    pub retry_max_ms: u64,
    /// Longest sleep between checks when nothing is due, in ms. Default 1,000.
    pub idle_poll_ms: u64,
    /// How long shutdown waits for runs in flight, in ms. Default 10,000.
    pub shutdown_grace_ms: u64,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            lease_ms: 60_000,
            batch: 64,
            concurrency: 64,
            max_attempts: 5,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
            idle_poll_ms: 1_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// The retry delay after `attempt` failures: full jitter over an exponential cap,
/// `U(0, min(max, base * 2^(attempt-1)))`, with `unit` in `[0, 1)` as the random draw.
pub fn retry_delay(config: &DispatcherConfig, attempt: u32, unit: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let cap = config
        .retry_base_ms
        .saturating_mul(1u64 << exp)
        .min(config.retry_max_ms);
    Duration::from_millis((cap as f64 * unit.clamp(0.0, 1.0)) as u64)
}

/// A uniform draw in `[0, 1)` from the system's secure random source.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Claims and runs due conversations until shut down.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    runner: Arc<dyn ConversationRunner>,
    config: DispatcherConfig,
    clock: Clock,
    wake: Arc<Notify>,
    owner: String,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("owner", &self.owner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher over `store`; `wake` lets the tools signal that something became due.
    pub fn new(
        store: Arc<dyn Store>,
        runner: Arc<dyn ConversationRunner>,
        config: DispatcherConfig,
        clock: Clock,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            runner,
            config,
            clock,
            wake,
            owner: format!("dispatcher-{}", uuid::Uuid::new_v4()),
        }
    }

    /// This dispatcher's lease owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims and runs one batch; returns how many were claimed. (The loop in
    /// [`run`](Dispatcher::run) calls this; tests call it directly with a fixed clock.)
    pub async fn tick(&self, slots: &Arc<Semaphore>) -> usize {
        let free = slots.available_permits().min(self.config.batch);
        if free == 0 {
            return 0;
        }
        let now = (self.clock)();
        let lease = Duration::from_millis(self.config.lease_ms);
        let claimed = match self.store.claim_due(&self.owner, now, lease, free).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "claiming due conversations failed");
                return 0;
            }
        };
        let n = claimed.len();
        for conversation in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let store = self.store.clone();
            let runner = self.runner.clone();
            let config = self.config.clone();
            let clock = self.clock.clone();
            let owner = self.owner.clone();
            tokio::spawn(async move {
                let _permit = permit;
                run_one(&*store, &*runner, &config, &clock, &owner, conversation).await;
            });
        }
        n
    }

    /// Runs until `shutdown` resolves, then stops claiming and waits (at most
    /// `shutdown_grace_ms`) for the runs in flight. Unfinished runs keep their lease and are
    /// picked up again after it expires.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        tokio::pin!(shutdown);
        loop {
            let claimed = self.tick(&slots).await;
            if claimed > 0 {
                continue; // there may be more due right away
            }
            let idle = Duration::from_millis(self.config.idle_poll_ms);
            let wait = match self.store.next_due().await {
                Ok(Some(due)) => {
                    let now = (self.clock)();
                    let until = due.duration_since(now);
                    Duration::try_from(until)
                        .unwrap_or(Duration::ZERO)
                        .min(idle)
                }
                Ok(None) => idle,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the next due time failed");
                    idle
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        let all = u32::try_from(self.config.concurrency.max(1)).unwrap_or(u32::MAX);
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        if tokio::time::timeout(grace, slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown: runs still in flight after the grace period; their leases will expire"
            );
        }
    }
}

async fn run_one(
    store: &dyn Store,
    runner: &dyn ConversationRunner,
    config: &DispatcherConfig,
    clock: &Clock,
    owner: &str,
    conversation: Conversation,
) {
    // A run may not outlive its lease, or a second dispatcher could start it concurrently.
    let budget = Duration::from_millis(config.lease_ms.saturating_mul(9) / 10);
    let result = tokio::time::timeout(budget, runner.run(&conversation))
        .await
        .unwrap_or_else(|_| Err(format!("run timed out after {budget:?}")));
    let now: Timestamp = clock();
    let outcome = match result {
        Ok(()) => RunOutcome::Completed,
        Err(error) if conversation.attempts >= config.max_attempts => RunOutcome::Failed { error },
        Err(error) => {
            let delay = retry_delay(config, conversation.attempts, random_unit());
            let retry_at = now
                .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
                .unwrap_or(now);
            RunOutcome::Retry { error, retry_at }
        }
    };
    match store
        .finish_run(&conversation.id, owner, outcome.clone(), now)
        .await
    {
        Ok(true) => tracing::debug!(conversation = %conversation.id, ?outcome, "run finished"),
        Ok(false) => tracing::info!(
            conversation = %conversation.id,
            "run finished after its lease was lost or the conversation was cancelled; result dropped"
        ),
        Err(e) => {
            tracing::error!(conversation = %conversation.id, error = %e, "recording a run failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_is_capped_full_jitter() {
        let c = DispatcherConfig::default();
        assert_eq!(retry_delay(&c, 1, 0.0), Duration::ZERO);
        assert_eq!(retry_delay(&c, 1, 0.5), Duration::from_millis(500));
        assert_eq!(retry_delay(&c, 3, 0.999_999), Duration::from_millis(3_999));
        assert_eq!(
            retry_delay(&c, 40, 1.0),
            Duration::from_millis(c.retry_max_ms)
        );
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }
}
