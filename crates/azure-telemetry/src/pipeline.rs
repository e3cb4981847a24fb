//! Bounded export queues for spans and logs.
//!
//! The OpenTelemetry SDK's batch processors drop items when their queue is full but do not
//! say how many; these do the same job and count. The application thread only ever takes a
//! lock for a push (never waits for the exporter): when the queue holds `capacity` items the
//! new one is dropped and counted. One worker thread per signal exports batches, each export
//! bounded by a deadline, and counts what was exported and what failed. Memory is bounded by
//! `capacity` items plus the batch in flight.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};

use crate::redact::Redactor;

/// Sizes and deadlines of one export queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueConfig {
    pub(crate) capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) interval: Duration,
    pub(crate) export_timeout: Duration,
}

/// What one queue did, counted since start.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) exported: AtomicU64,
    pub(crate) dropped_full: AtomicU64,
    pub(crate) failed: AtomicU64,
}

struct State<T> {
    items: VecDeque<T>,
    flush_requested: u64,
    flushed: u64,
    shutdown: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
    done: Condvar,
    config: QueueConfig,
    counters: Arc<Counters>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bounded queue with one export thread.
pub(crate) struct Queue<T> {
    shared: Arc<Shared<T>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Queue<T> {
    /// Starts the worker; `export` sends one batch and says whether it was delivered.
    pub(crate) fn start(
        name: &str,
        config: QueueConfig,
        counters: Arc<Counters>,
        mut export: impl FnMut(Vec<T>) -> bool + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                items: VecDeque::new(),
                flush_requested: 0,
                flushed: 0,
                shutdown: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            config,
            counters,
        });
        let worker_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name(format!("azure-telemetry-{name}"))
            .spawn(move || run(&worker_shared, &mut export))?;
        Ok(Self {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Queues an item, or drops and counts it when the queue is full or shut down.
    pub(crate) fn push(&self, item: T) {
        let mut state = self.shared.lock();
        if state.shutdown || state.items.len() >= self.shared.config.capacity {
            drop(state);
            self.shared
                .counters
                .dropped_full
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.items.push_back(item);
        let full_batch = state.items.len() >= self.shared.config.batch_size;
        drop(state);
        if full_batch {
            self.shared.wake.notify_one();
        }
    }

    /// Exports everything queued so far; waits at most `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        if state.shutdown {
            return Ok(());
        }
        state.flush_requested += 1;
        let wanted = state.flush_requested;
        self.shared.wake.notify_one();
        while state.flushed < wanted {
            let now = Instant::now();
            if now >= deadline {
                return Err(OTelSdkError::Timeout(timeout));
            }
            state = self
                .shared
                .done
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    /// Flushes (bounded by `timeout`), stops the worker, and counts what is left as dropped.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        let flushed = self.flush(timeout);
        let mut state = self.shared.lock();
        state.shutdown = true;
        let left = state.items.len() as u64;
        state.items.clear();
        drop(state);
        self.shared
            .counters
            .dropped_full
            .fetch_add(left, Ordering::Relaxed);
        self.shared.wake.notify_all();
        // The worker exits after its current export (itself bounded); don't wait for a hung one.
        if let Some(worker) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take()
            && worker.is_finished()
        {
            let _ = worker.join();
        }
        flushed
    }
}

fn run<T>(shared: &Shared<T>, export: &mut dyn FnMut(Vec<T>) -> bool) {
    let config = shared.config;
    loop {
        let mut state = shared.lock();
        let deadline = Instant::now() + config.interval;
        while state.items.len() < config.batch_size
            && state.flush_requested == state.flushed
            && !state.shutdown
        {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = shared
                .wake
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if state.shutdown && state.items.is_empty() {
            state.flushed = state.flush_requested;
            shared.done.notify_all();
            return;
        }
        let take = state.items.len().min(config.batch_size);
        let batch: Vec<T> = state.items.drain(..take).collect();
        let flush_target = state.flush_requested;
        let more = !state.items.is_empty();
        drop(state);

        if !batch.is_empty() {
            let n = batch.len() as u64;
            let counter = if export(batch) {
                &shared.counters.exported
            } else {
                &shared.counters.failed
            };
            counter.fetch_add(n, Ordering::Relaxed);
        }
        if !more {
            let mut state = shared.lock();
            if state.items.is_empty() && state.flushed < flush_target {
                state.flushed = flush_target;
                shared.done.notify_all();
            }
        }
    }
}

/// Runs an exporter's future on the export runtime, bounded by the export timeout.
fn block_on_bounded<F: std::future::Future<Output = OTelSdkResult>>(
    handle: &tokio::runtime::Handle,
    timeout: Duration,
    future: F,
) -> bool {
    // The timer must be made inside the runtime's context.
    matches!(
        handle.block_on(async move { tokio::time::timeout(timeout, future).await }),
        Ok(Ok(()))
    )
}

/// The span processor: redacts, queues, exports in batches.
pub(crate) struct SpanQueue {
    queue: Queue<SpanData>,
    redactor: Arc<Redactor>,
}

impl fmt::Debug for SpanQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanQueue")
            .field("queue", &self.queue)
            .finish()
    }
}

impl SpanQueue {
    pub(crate) fn start<E: SpanExporter + 'static>(
        exporter: E,
        handle: tokio::runtime::Handle,
        config: QueueConfig,
        counters: Arc<Counters>,
        redactor: Arc<Redactor>,
    ) -> std::io::Result<Self> {
        let timeout = config.export_timeout;
        let queue = Queue::start("spans", config, counters, move |batch| {
            block_on_bounded(&handle, timeout, exporter.export(batch))
        })?;
        Ok(Self { queue, redactor })
    }
}

impl SpanProcessor for SpanQueue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, mut span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        self.redactor.redact_span(&mut span);
        self.queue.push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush(self.queue.shared.config.export_timeout)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }

    fn set_resource(&mut self, _resource: &opentelemetry_sdk::Resource) {}
}

/// The log processor: queues, exports in batches (records are redacted when made).
pub(crate) struct LogQueue {
    queue: Queue<(SdkLogRecord, InstrumentationScope)>,
}

impl fmt::Debug for LogQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogQueue")
            .field("queue", &self.queue)
            .finish()
    }
}

impl LogQueue {
    pub(crate) fn start<E: LogExporter + 'static>(
        exporter: E,
        handle: tokio::runtime::Handle,
        config: QueueConfig,
        counters: Arc<Counters>,
    ) -> std::io::Result<Self> {
        let timeout = config.export_timeout;
        let queue = Queue::start(
            "logs",
            config,
            counters,
            move |batch: Vec<(SdkLogRecord, InstrumentationScope)>| {
                let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
                    batch.iter().map(|(r, s)| (r, s)).collect();
                block_on_bounded(&handle, timeout, exporter.export(LogBatch::new(&refs)))
            },
        )?;
        Ok(Self { queue })
    }
}

impl LogProcessor for LogQueue {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.queue.push((record.clone(), scope.clone()));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush(self.queue.shared.config.export_timeout)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }
}

/// A metric exporter whose every export is bounded by a deadline (the Application Insights
/// exporter retries for up to 35 s; the periodic reader would wait that long at shutdown).
#[derive(Debug)]
pub(crate) struct BoundedMetricExporter<E> {
    pub(crate) inner: E,
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) timeout: Duration,
}

impl<E: opentelemetry_sdk::metrics::exporter::PushMetricExporter>
    opentelemetry_sdk::metrics::exporter::PushMetricExporter for BoundedMetricExporter<E>
{
    async fn export(
        &self,
        metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> OTelSdkResult {
        // The timer belongs to the export runtime (running on its own thread), so this
        // future can be polled by any executor, as the periodic reader does.
        let bounded = {
            let _context = self.handle.enter();
            tokio::time::timeout(self.timeout, self.inner.export(metrics))
        };
        bounded
            .await
            .unwrap_or(Err(OTelSdkError::Timeout(self.timeout)))
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn config(capacity: usize) -> QueueConfig {
        QueueConfig {
            capacity,
            batch_size: 4,
            interval: Duration::from_secs(3600),
            export_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting_for_the_exporter() {
        let counters = Arc::new(Counters::default());
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<usize>();
        let queue = Queue::start(
            "test",
            config(8),
            Arc::clone(&counters),
            move |batch: Vec<u32>| {
                let _ = started_tx.send(batch.len());
                // A hung exporter: holds the worker until the test lets go.
                let _ = release_rx.recv();
                true
            },
        )
        .unwrap();
        for i in 0..4 {
            queue.push(i);
        }
        // The worker took the first batch and is stuck in export.
        assert_eq!(started_rx.recv_timeout(Duration::from_secs(10)).unwrap(), 4);
        for i in 0..100 {
            queue.push(i);
        }
        assert_eq!(counters.dropped_full.load(Ordering::Relaxed), 92);
        drop(release_tx);
        queue.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(counters.exported.load(Ordering::Relaxed), 12);
        queue.shutdown(Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn flush_exports_a_partial_batch_and_failures_are_counted() {
        let counters = Arc::new(Counters::default());
        let queue = Queue::start(
            "test",
            config(100),
            Arc::clone(&counters),
            |batch: Vec<u32>| {
                batch.iter().all(|i| i % 2 == 0) // a batch with an odd item fails
            },
        )
        .unwrap();
        queue.push(2);
        queue.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(counters.exported.load(Ordering::Relaxed), 1);
        queue.push(1);
        queue.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(counters.failed.load(Ordering::Relaxed), 1);
        queue.shutdown(Duration::from_secs(1)).unwrap();
        queue.push(4);
        assert_eq!(
            counters.dropped_full.load(Ordering::Relaxed),
            1,
            "after shutdown"
        );
    }

    #[test]
    fn flush_gives_up_at_its_deadline_when_the_exporter_hangs() {
        let counters = Arc::new(Counters::default());
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let queue = Queue::start(
            "test",
            config(100),
            Arc::clone(&counters),
            move |_: Vec<u32>| {
                let _ = release_rx.recv();
                false
            },
        )
        .unwrap();
        queue.push(1);
        assert!(queue.flush(Duration::from_millis(50)).is_err());
        queue.push(2);
        assert!(queue.shutdown(Duration::from_millis(50)).is_err());
        // What was still queued at shutdown is counted as dropped.
        assert_eq!(counters.dropped_full.load(Ordering::Relaxed), 1);
        drop(release_tx);
    }
}
