//! One-call telemetry setup: `tracing` plus OpenTelemetry, exported to Application Insights
//! or an OTLP collector, with local human or JSON logs, the workspace's
//! [conventions], W3C [propagation] and a [redaction](redact) guard.
//!
//! [`init`] installs a global `tracing` subscriber built from a [`TelemetryConfig`] and
//! returns a [`TelemetryGuard`] that flushes and shuts the exporters down when dropped:
//!
//! - **Spans** go through `tracing-opentelemetry` to the exporter (Application Insights
//!   `RemoteDependency` for client spans, `Request` for server spans), sampled by trace id
//!   with the configured ratio (parent-based: a continued trace follows its caller).
//! - **Events** become log records joined to their span's operation (`Message`) — one
//!   path only, never also span events.
//! - **Metrics** are derived from the conventions' spans and events (durations, retries,
//!   auth failures, breaker state, token refreshes) and exported every minute and at
//!   shutdown.
//! - **Local output**: human or JSON lines on stderr, filtered by `RUST_LOG`.
//! - The exporters send through their own HTTP client on their own thread, with bounded
//!   queues: a slow or absent backend never blocks the application; what cannot be sent
//!   is dropped and counted ([`TelemetryGuard::stats`], and the
//!   `azure_telemetry.items.dropped` metric). The exporters' own HTTP and TLS logs are
//!   never exported, so telemetry does not feed on itself.
//!
//! # Architecture invariants
//!
//! - Knows nothing of MCP or scheduling: other crates emit `tracing` spans and events; this
//!   crate only decides where they go and what metrics they make.
//! - Never exports values marked or looking secret; connection strings are not logged.
//!
//! # Example
//!
//! ```no_run
//! use azure_telemetry::{ConnectionString, LogFormat, TelemetryConfig};
//!
//! # fn main() -> Result<(), azure_telemetry::Error> {
//! let connection_string = ConnectionString::parse(
//!     "InstrumentationKey=00000000-0000-0000-0000-000000000000;\
//!      IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/",
//! )?;
//! let _telemetry = azure_telemetry::init(
//!     TelemetryConfig::new("scheduler-client")
//!         .with_service_version(env!("CARGO_PKG_VERSION"))
//!         .with_cloud_region("westeurope")
//!         .with_application_insights(connection_string)
//!         .with_log_format(LogFormat::Json)
//!         .with_sampling_ratio(0.25)?,
//! )?;
//! tracing::info!(name: "app.started", "ready");
//! // Dropping `_telemetry` at the end of main flushes what is queued (bounded by 5 s).
//! # Ok(()) }
//! ```
//!
//! Without an exporter, the same call gives local logs only:
//!
//! ```
//! let (dispatch, guard) = azure_telemetry::Telemetry::build(
//!     azure_telemetry::TelemetryConfig::new("tool").with_log_format(azure_telemetry::LogFormat::Off),
//! )
//! .unwrap()
//! .into_parts();
//! tracing::dispatcher::with_default(&dispatch, || tracing::info!("only local"));
//! assert_eq!(guard.stats().spans_exported, 0);
//! ```

mod config;
pub mod connection_string;
pub mod conventions;
mod error;
mod http;
mod logs;
mod metrics;
mod pipeline;
pub mod propagation;
pub mod redact;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

pub use config::{Export, LogFormat, TelemetryConfig};
pub use connection_string::ConnectionString;
pub use error::Error;

use pipeline::{BoundedMetricExporter, Counters, LogQueue, QueueConfig, SpanQueue};
use redact::Redactor;

/// Targets whose events and spans are never exported: the exporters' own HTTP, TLS and
/// SDK logs (exporting them would make telemetry about exporting telemetry).
const NEVER_EXPORTED: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_http",
    "opentelemetry_otlp",
    "opentelemetry_application_insights",
    "azure_telemetry",
];

fn exportable(target: &str) -> bool {
    !NEVER_EXPORTED.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Installs telemetry as the global `tracing` subscriber; keep the guard alive for the
/// life of the program.
///
/// # Errors
///
/// An invalid filter ([`Error::is_invalid_config`]), an exporter that cannot be built
/// ([`Error::is_exporter`]), or a global subscriber already installed
/// ([`Error::is_already_initialized`]).
pub fn init(config: TelemetryConfig) -> Result<TelemetryGuard, Error> {
    Telemetry::build(config)?.install_global()
}

/// Telemetry built but not installed: a `tracing` [`Dispatch`](tracing::Dispatch) and its
/// guard. Use [`install_global`](Self::install_global), or
/// [`into_parts`](Self::into_parts) to scope it (`tracing::dispatcher::set_default`), as
/// tests and embedding hosts do.
pub struct Telemetry {
    dispatch: tracing::Dispatch,
    guard: TelemetryGuard,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Builds the pipeline `config` describes.
    ///
    /// # Errors
    ///
    /// As [`init`], except for the global subscriber.
    pub fn build(config: TelemetryConfig) -> Result<Self, Error> {
        build(config)
    }

    /// Installs the dispatch as the global default and the W3C propagator as
    /// OpenTelemetry's global one.
    ///
    /// # Errors
    ///
    /// [`Error::is_already_initialized`] when a global subscriber exists.
    pub fn install_global(self) -> Result<TelemetryGuard, Error> {
        tracing::dispatcher::set_global_default(self.dispatch).map_err(|e| {
            Error::new(error::Kind::AlreadyInitialized)
                .with_context("a global tracing subscriber is already installed")
                .with_source(e)
        })?;
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        Ok(self.guard)
    }

    /// The dispatch and the guard.
    pub fn into_parts(self) -> (tracing::Dispatch, TelemetryGuard) {
        (self.dispatch, self.guard)
    }
}

/// Counts of what the export queues did (since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetryStats {
    /// Spans delivered to the exporter's backend.
    pub spans_exported: u64,
    /// Spans dropped because the queue was full (or still queued at shutdown).
    pub spans_dropped: u64,
    /// Spans in exports that failed (backend down, timed out, refused).
    pub spans_failed: u64,
    /// Log records delivered.
    pub logs_exported: u64,
    /// Log records dropped because the queue was full (or still queued at shutdown).
    pub logs_dropped: u64,
    /// Log records in exports that failed.
    pub logs_failed: u64,
}

/// Keeps telemetry running; flushes and shuts the exporters down when dropped (bounded by
/// the shutdown timeout, default 5 s).
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    logger: Option<SdkLoggerProvider>,
    meter: Option<SdkMeterProvider>,
    spans: Arc<Counters>,
    logs: Arc<Counters>,
    shutdown_timeout: std::time::Duration,
    _client: Option<http::ExportClient>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("exporting", &self.tracer.is_some())
            .field("stats", &self.stats())
            .finish()
    }
}

impl TelemetryGuard {
    /// What the export queues did so far.
    pub fn stats(&self) -> TelemetryStats {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        TelemetryStats {
            spans_exported: get(&self.spans.exported),
            spans_dropped: get(&self.spans.dropped_full),
            spans_failed: get(&self.spans.failed),
            logs_exported: get(&self.logs.exported),
            logs_dropped: get(&self.logs.dropped_full),
            logs_failed: get(&self.logs.failed),
        }
    }

    /// Sends everything queued now: spans, logs and the current metric values.
    ///
    /// # Errors
    ///
    /// [`Error::is_exporter`] when a signal could not be flushed in time.
    pub fn flush(&self) -> Result<(), Error> {
        let mut failed = Vec::new();
        if let Some(t) = &self.tracer
            && let Err(e) = t.force_flush()
        {
            failed.push(format!("spans: {e}"));
        }
        if let Some(l) = &self.logger
            && let Err(e) = l.force_flush()
        {
            failed.push(format!("logs: {e}"));
        }
        if let Some(m) = &self.meter
            && let Err(e) = m.force_flush()
        {
            failed.push(format!("metrics: {e}"));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::exporter(format!(
                "flush failed ({})",
                failed.join("; ")
            )))
        }
    }

    fn shutdown_all(&mut self) -> Result<(), Error> {
        let timeout = self.shutdown_timeout;
        let mut failed = Vec::new();
        // Metrics last: the span and log queues' drop counts are part of the final export.
        if let Some(t) = self.tracer.take()
            && let Err(e) = t.shutdown_with_timeout(timeout)
        {
            failed.push(format!("spans: {e}"));
        }
        if let Some(l) = self.logger.take()
            && let Err(e) = l.shutdown_with_timeout(timeout)
        {
            failed.push(format!("logs: {e}"));
        }
        if let Some(m) = self.meter.take()
            && let Err(e) = m.shutdown_with_timeout(timeout)
        {
            failed.push(format!("metrics: {e}"));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::exporter(format!(
                "shutdown incomplete ({})",
                failed.join("; ")
            )))
        }
    }

    /// Flushes and stops the exporters, reporting what could not be sent.
    ///
    /// # Errors
    ///
    /// [`Error::is_exporter`] when a signal could not be flushed within the shutdown timeout.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.shutdown_all()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.shutdown_all();
    }
}

fn resource(config: &TelemetryConfig) -> Resource {
    let mut attributes = Vec::new();
    if let Some(v) = &config.service_version {
        attributes.push(KeyValue::new("service.version", v.clone()));
    }
    if let Some(region) = &config.cloud_region {
        attributes.push(KeyValue::new("cloud.region", region.clone()));
        attributes.push(KeyValue::new("cloud.provider", "azure"));
    }
    // Application Insights reads `ai.*` resource attributes as its context tags.
    let role = config
        .cloud_role
        .clone()
        .unwrap_or_else(|| config.service_name.clone());
    attributes.push(KeyValue::new("ai.cloud.role", role));
    Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attributes(attributes)
        .build()
}

fn env_filter(text: &str, what: &str) -> Result<EnvFilter, Error> {
    EnvFilter::builder()
        .parse(text)
        .map_err(|e| Error::invalid_config(format!("{what} {text:?}: {e}")))
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

struct Exporters {
    tracer: SdkTracerProvider,
    logger: SdkLoggerProvider,
    meter: SdkMeterProvider,
    client: http::ExportClient,
}

fn build(config: TelemetryConfig) -> Result<Telemetry, Error> {
    let spans = Arc::new(Counters::default());
    let logs = Arc::new(Counters::default());
    let redactor = Arc::new(Redactor::new(config.redact_values.iter().cloned()));
    let mut layers: Vec<BoxedLayer> = Vec::new();

    let local_filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => env_filter(&v, "RUST_LOG")?,
        _ => env_filter(config.log_filter.as_deref().unwrap_or("info"), "log filter")?,
    };
    match config.log_format {
        LogFormat::Human => layers.push(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter(local_filter)
                .boxed(),
        ),
        LogFormat::Json => layers.push(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .with_filter(local_filter)
                .boxed(),
        ),
        LogFormat::Off => {}
    }

    let exporters = exporters(&config, &spans, &logs, &redactor)?;
    if let Some(x) = &exporters {
        let export_filter = env_filter(&config.export_filter, "export filter")?;
        let tracer = x.tracer.tracer("azure-telemetry");
        // Spans only: events take the logs path.
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_filter(
                    filter_fn(|m| m.is_span() && exportable(m.target()))
                        .and(env_filter(&config.export_filter, "export filter")?),
                )
                .boxed(),
        );
        use opentelemetry::logs::LoggerProvider as _;
        layers.push(
            logs::LogBridge::new(x.logger.logger("azure-telemetry"), Arc::clone(&redactor))
                .with_filter(
                    filter_fn(|m| m.is_event() && exportable(m.target())).and(export_filter),
                )
                .boxed(),
        );
        use opentelemetry::metrics::MeterProvider as _;
        let meter = x.meter.meter("azure-telemetry");
        layers.push(metrics::MetricsLayer::new(metrics::ConventionMetrics::new(&meter)).boxed());
        dropped_counter(&meter, &spans, &logs);
    }

    let subscriber = Registry::default().with(layers);
    let dispatch = tracing::Dispatch::new(subscriber);
    let (tracer, logger, meter, client) = match exporters {
        Some(x) => (
            Some(x.tracer),
            Some(x.logger),
            Some(x.meter),
            Some(x.client),
        ),
        None => (None, None, None, None),
    };
    Ok(Telemetry {
        dispatch,
        guard: TelemetryGuard {
            tracer,
            logger,
            meter,
            spans,
            logs,
            shutdown_timeout: config.shutdown_timeout,
            _client: client,
        },
    })
}

fn dropped_counter(
    meter: &opentelemetry::metrics::Meter,
    spans: &Arc<Counters>,
    logs: &Arc<Counters>,
) {
    let (spans, logs) = (Arc::clone(spans), Arc::clone(logs));
    let _counter = meter
        .u64_observable_counter(conventions::metric::TELEMETRY_DROPPED)
        .with_unit("{item}")
        .with_description("Telemetry items this process could not export")
        .with_callback(move |observer| {
            for (signal, counters) in [("spans", &spans), ("logs", &logs)] {
                for (reason, value) in [
                    ("queue_full", counters.dropped_full.load(Ordering::Relaxed)),
                    ("export_failed", counters.failed.load(Ordering::Relaxed)),
                ] {
                    observer.observe(
                        value,
                        &[
                            KeyValue::new("signal", signal),
                            KeyValue::new("reason", reason),
                        ],
                    );
                }
            }
        })
        .build();
}

fn thread_error(e: std::io::Error) -> Error {
    Error::exporter("could not start the export threads").with_source(e)
}

/// What the three providers are built from, whatever the exporter.
struct Pipeline<'a> {
    config: &'a TelemetryConfig,
    queue: QueueConfig,
    resource: Resource,
    sampler: Sampler,
    spans: &'a Arc<Counters>,
    logs: &'a Arc<Counters>,
    redactor: &'a Arc<Redactor>,
}

impl Pipeline<'_> {
    fn build(
        self,
        client: http::ExportClient,
        spans: impl opentelemetry_sdk::trace::SpanExporter + 'static,
        logs: impl opentelemetry_sdk::logs::LogExporter + 'static,
        metrics: impl opentelemetry_sdk::metrics::exporter::PushMetricExporter,
    ) -> Result<Exporters, Error> {
        let handle = client.handle();
        let span_queue = SpanQueue::start(
            spans,
            handle.clone(),
            self.queue,
            Arc::clone(self.spans),
            Arc::clone(self.redactor),
        )
        .map_err(thread_error)?;
        let log_queue = LogQueue::start(logs, handle.clone(), self.queue, Arc::clone(self.logs))
            .map_err(thread_error)?;
        let metrics = BoundedMetricExporter {
            inner: metrics,
            handle,
            timeout: self.config.export_timeout,
        };
        Ok(Exporters {
            tracer: SdkTracerProvider::builder()
                .with_resource(self.resource.clone())
                .with_sampler(self.sampler)
                .with_span_processor(span_queue)
                .build(),
            logger: SdkLoggerProvider::builder()
                .with_resource(self.resource.clone())
                .with_log_processor(log_queue)
                .build(),
            meter: SdkMeterProvider::builder()
                .with_resource(self.resource)
                .with_reader(
                    PeriodicReader::builder(metrics)
                        .with_interval(self.config.metric_interval)
                        .build(),
                )
                .build(),
            client,
        })
    }
}

fn exporters(
    config: &TelemetryConfig,
    spans: &Arc<Counters>,
    logs: &Arc<Counters>,
    redactor: &Arc<Redactor>,
) -> Result<Option<Exporters>, Error> {
    let queue = QueueConfig {
        capacity: config.queue_capacity,
        batch_size: config.batch_size.min(config.queue_capacity).max(1),
        interval: config.export_interval,
        export_timeout: config.export_timeout,
    };
    let resource = resource(config);
    let sampler = if config.sampling_ratio >= 1.0 {
        Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
    } else {
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sampling_ratio)))
    };
    match &config.export {
        Export::None => Ok(None),
        Export::ApplicationInsights(cs) => {
            let endpoint: ::http::Uri = cs.ingestion_endpoint().parse().map_err(|e| {
                Error::invalid_config("the connection string's IngestionEndpoint is not a URL")
                    .with_source(e)
            })?;
            let client = http::ExportClient::new(config.request_timeout, &[endpoint])
                .map_err(thread_error)?;
            let text = format!(
                "InstrumentationKey={};IngestionEndpoint={}",
                cs.instrumentation_key(),
                cs.ingestion_endpoint()
            );
            let exporter =
                opentelemetry_application_insights::Exporter::new_from_connection_string(
                    text,
                    client.clone(),
                )
                .map_err(|e| Error::exporter("Application Insights exporter").with_source(e))?
                .with_sample_rate(config.sampling_ratio);
            let mut span_exporter = exporter.clone();
            opentelemetry_sdk::trace::SpanExporter::set_resource(&mut span_exporter, &resource);
            let mut log_exporter = exporter.clone();
            opentelemetry_sdk::logs::LogExporter::set_resource(&mut log_exporter, &resource);
            let pipeline = Pipeline {
                config,
                queue,
                resource,
                sampler,
                spans,
                logs,
                redactor,
            };
            pipeline
                .build(client, span_exporter, log_exporter, exporter)
                .map(Some)
        }
        #[cfg(feature = "otlp")]
        Export::Otlp { endpoint, headers } => {
            use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
            let base: ::http::Uri = endpoint.parse().map_err(|e| {
                Error::invalid_config(format!("OTLP endpoint {endpoint:?} is not a URL"))
                    .with_source(e)
            })?;
            let base_text = endpoint.trim_end_matches('/').to_owned();
            let client =
                http::ExportClient::new(config.request_timeout, &[base]).map_err(thread_error)?;
            let headers: std::collections::HashMap<String, String> =
                headers.iter().cloned().collect();
            let otlp = |e: opentelemetry_otlp::ExporterBuildError| {
                Error::exporter("OTLP exporter").with_source(e)
            };
            let span_exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client.clone())
                .with_endpoint(format!("{base_text}/v1/traces"))
                .with_headers(headers.clone())
                .build()
                .map_err(otlp)?;
            let log_exporter = opentelemetry_otlp::LogExporter::builder()
                .with_http()
                .with_http_client(client.clone())
                .with_endpoint(format!("{base_text}/v1/logs"))
                .with_headers(headers.clone())
                .build()
                .map_err(otlp)?;
            let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_http_client(client.clone())
                .with_endpoint(format!("{base_text}/v1/metrics"))
                .with_headers(headers)
                .build()
                .map_err(otlp)?;
            let pipeline = Pipeline {
                config,
                queue,
                resource,
                sampler,
                spans,
                logs,
                redactor,
            };
            pipeline
                .build(client, span_exporter, log_exporter, metric_exporter)
                .map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exporters_own_targets_are_never_exported() {
        for t in [
            "hyper",
            "hyper_util::client::legacy",
            "h2::codec",
            "rustls::conn",
            "opentelemetry_sdk",
            "azure_telemetry::pipeline",
        ] {
            assert!(!exportable(t), "{t}");
        }
        for t in [
            "mcp_transport::client",
            "hyperion",
            "scheduler_server",
            "rustlsish",
        ] {
            assert!(exportable(t), "{t}");
        }
    }
}
