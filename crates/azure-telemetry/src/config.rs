//! What [`init`](crate::init) sets up.

use std::fmt;
use std::time::Duration;

use crate::{ConnectionString, Error};

/// Where telemetry is exported.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Export {
    /// Nothing leaves the process: local log output only.
    #[default]
    None,
    /// Application Insights: traces, metrics and logs, from a connection string.
    ApplicationInsights(ConnectionString),
    /// An OTLP/HTTP (protobuf) collector at `endpoint` (`http://127.0.0.1:4318`); the
    /// signal paths `/v1/traces`, `/v1/metrics`, `/v1/logs` are appended.
    #[cfg(feature = "otlp")]
    Otlp {
        /// The collector's base URL.
        endpoint: String,
        /// Extra request headers (an API key header, say); never logged.
        headers: Vec<(String, String)>,
    },
}

impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::ApplicationInsights(cs) => {
                f.debug_tuple("ApplicationInsights").field(cs).finish()
            }
            #[cfg(feature = "otlp")]
            Self::Otlp { endpoint, headers } => f
                .debug_struct("Otlp")
                .field("endpoint", endpoint)
                .field(
                    "headers",
                    &headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                )
                .finish(),
        }
    }
}

/// How local log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines; coloured on a terminal.
    #[default]
    Human,
    /// One JSON object per line, for collectors.
    Json,
    /// No local output (telemetry is still exported).
    Off,
}

/// Telemetry settings: a service identity, an exporter, log output and limits.
///
/// Start from [`TelemetryConfig::new`] (nothing exported) or
/// [`TelemetryConfig::from_env`] (Application Insights or OTLP when the standard
/// variables are set), then adjust with the `with_*` methods.
#[derive(Clone)]
pub struct TelemetryConfig {
    pub(crate) service_name: String,
    pub(crate) service_version: Option<String>,
    pub(crate) cloud_role: Option<String>,
    pub(crate) cloud_region: Option<String>,
    pub(crate) export: Export,
    pub(crate) log_format: LogFormat,
    pub(crate) log_filter: Option<String>,
    pub(crate) export_filter: String,
    pub(crate) sampling_ratio: f64,
    pub(crate) queue_capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) export_interval: Duration,
    pub(crate) metric_interval: Duration,
    pub(crate) export_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) redact_values: Vec<String>,
}

impl fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field("service_name", &self.service_name)
            .field("service_version", &self.service_version)
            .field("cloud_role", &self.cloud_role)
            .field("cloud_region", &self.cloud_region)
            .field("export", &self.export)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .field("export_filter", &self.export_filter)
            .field("sampling_ratio", &self.sampling_ratio)
            .field("queue_capacity", &self.queue_capacity)
            .field("redact_values", &self.redact_values.len())
            .finish_non_exhaustive()
    }
}

impl TelemetryConfig {
    /// Settings for `service_name`: nothing exported, human logs filtered by `RUST_LOG`
    /// (default `info`), every trace sampled.
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            service_version: None,
            cloud_role: None,
            cloud_region: None,
            export: Export::None,
            log_format: LogFormat::Human,
            log_filter: None,
            export_filter: "info".to_owned(),
            sampling_ratio: 1.0,
            queue_capacity: 2048,
            batch_size: 512,
            export_interval: Duration::from_secs(5),
            metric_interval: Duration::from_secs(60),
            export_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            redact_values: Vec::new(),
        }
    }

    /// Settings from the standard environment variables:
    /// `APPLICATIONINSIGHTS_CONNECTION_STRING` (Application Insights), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP, with the `otlp` feature), else nothing exported;
    /// `OTEL_SERVICE_NAME` overrides `service_name`; `OTEL_TRACES_SAMPLER_ARG` sets the
    /// sampling ratio.
    ///
    /// # Errors
    ///
    /// A malformed connection string or sampling ratio, naming the variable.
    pub fn from_env(service_name: impl Into<String>) -> Result<Self, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut config = Self::new(var("OTEL_SERVICE_NAME").unwrap_or_else(|| service_name.into()));
        if let Some(cs) = var("APPLICATIONINSIGHTS_CONNECTION_STRING") {
            let cs = ConnectionString::parse(&cs)
                .map_err(|e| e.with_context("in APPLICATIONINSIGHTS_CONNECTION_STRING"))?;
            config.export = Export::ApplicationInsights(cs);
        } else if let Some(_endpoint) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            #[cfg(feature = "otlp")]
            {
                config.export = Export::Otlp {
                    endpoint: _endpoint,
                    headers: Vec::new(),
                };
            }
        }
        if let Some(ratio) = var("OTEL_TRACES_SAMPLER_ARG") {
            let ratio: f64 = ratio.trim().parse().map_err(|_| {
                Error::invalid_config(format!(
                    "OTEL_TRACES_SAMPLER_ARG is {ratio:?}, not a number between 0 and 1"
                ))
            })?;
            config = config.with_sampling_ratio(ratio)?;
        }
        Ok(config)
    }

    /// Where telemetry goes.
    pub fn with_export(mut self, export: Export) -> Self {
        self.export = export;
        self
    }

    /// Exports to Application Insights.
    pub fn with_application_insights(self, connection_string: ConnectionString) -> Self {
        self.with_export(Export::ApplicationInsights(connection_string))
    }

    /// `service.version` (Application Insights' application version).
    pub fn with_service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// The cloud role (Application Insights' `cloud_RoleName`; default: the service name).
    pub fn with_cloud_role(mut self, role: impl Into<String>) -> Self {
        self.cloud_role = Some(role.into());
        self
    }

    /// `cloud.region`: the Azure region this instance runs in.
    pub fn with_cloud_region(mut self, region: impl Into<String>) -> Self {
        self.cloud_region = Some(region.into());
        self
    }

    /// The local log format.
    pub fn with_log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    /// The local log filter, in `RUST_LOG` syntax; `RUST_LOG` itself wins when set.
    pub fn with_log_filter(mut self, filter: impl Into<String>) -> Self {
        self.log_filter = Some(filter.into());
        self
    }

    /// What is exported, in `RUST_LOG` syntax (default `info`): spans and events below it
    /// stay local.
    pub fn with_export_filter(mut self, filter: impl Into<String>) -> Self {
        self.export_filter = filter.into();
        self
    }

    /// The share of traces kept, 0 to 1 (the design document's `ProbabilitySampler`).
    /// A trace continued from a caller follows the caller's decision.
    ///
    /// # Errors
    ///
    /// A ratio outside 0..=1.
    pub fn with_sampling_ratio(mut self, ratio: f64) -> Result<Self, Error> {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Error::invalid_config(format!(
                "sampling ratio {ratio} is outside 0..=1"
            )));
        }
        self.sampling_ratio = ratio;
        Ok(self)
    }

    /// The most spans (and, separately, log records) held for export; more are dropped and
    /// counted (default 2048).
    pub fn with_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self.batch_size = self.batch_size.min(self.queue_capacity);
        self
    }

    /// How often queued spans and logs are sent (default 5 s) and metrics (default 60 s).
    pub fn with_export_intervals(mut self, spans_and_logs: Duration, metrics: Duration) -> Self {
        self.export_interval = spans_and_logs;
        self.metric_interval = metrics;
        self
    }

    /// Deadlines: one HTTP request (default 10 s), one export with the exporter's retries
    /// (30 s), and flushing at shutdown (5 s).
    pub fn with_timeouts(
        mut self,
        request: Duration,
        export: Duration,
        shutdown: Duration,
    ) -> Self {
        self.request_timeout = request;
        self.export_timeout = export;
        self.shutdown_timeout = shutdown;
        self
    }

    /// A secret value (an API key, a client secret) to replace with `[redacted]` wherever it
    /// would appear in exported telemetry. Values shorter than 8 bytes are ignored.
    pub fn redact_value(mut self, value: impl Into<String>) -> Self {
        self.redact_values.push(value.into());
        self
    }
}
