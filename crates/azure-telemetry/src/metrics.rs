//! Metrics derived from the workspace's span and event conventions.
//!
//! Crates emit `tracing` spans and named events only; this layer turns the ones listed in
//! [`conventions`](crate::conventions) into OpenTelemetry instruments, so no crate depends
//! on a metrics API and every crate's metrics have one definition.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::conventions as c;

/// Attributes of an operation span that become metric attributes (bounded cardinality).
const OPERATION_ATTRIBUTES: &[&str] = &[
    c::attr::METHOD,
    c::attr::TOOL,
    c::attr::ERROR_TYPE,
    c::attr::SERVER_ADDRESS,
    c::attr::SERVER_PORT,
    c::attr::NETWORK_TRANSPORT,
    c::attr::PROTOCOL_VERSION,
];

struct Operation {
    start: Instant,
    attributes: Vec<KeyValue>,
}

#[derive(Default)]
struct OperationFields(Vec<KeyValue>);

impl OperationFields {
    fn set(&mut self, kv: KeyValue) {
        match self.0.iter_mut().find(|e| e.key == kv.key) {
            Some(slot) => *slot = kv,
            None => self.0.push(kv),
        }
    }
}

impl Visit for OperationFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(key) = OPERATION_ATTRIBUTES.iter().find(|k| **k == field.name()) {
            self.set(KeyValue::new(*key, value.to_owned()));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if OPERATION_ATTRIBUTES.contains(&field.name()) {
            self.record_str(field, &format!("{value:?}"));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Some(key) = OPERATION_ATTRIBUTES.iter().find(|k| **k == field.name()) {
            self.set(KeyValue::new(*key, value));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_i64(field, i64::try_from(value).unwrap_or(i64::MAX));
    }
}

/// Picks named string fields out of an event.
struct Pick<'a> {
    names: &'a [&'a str],
    values: Vec<(&'static str, String)>,
}

impl Visit for Pick<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.names.contains(&field.name()) {
            self.values.push((field.name(), value.to_owned()));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.names.contains(&field.name()) {
            self.values.push((field.name(), format!("{value:?}")));
        }
    }
}

fn pick(event: &Event<'_>, names: &[&str]) -> Vec<(&'static str, String)> {
    let mut p = Pick {
        names,
        values: Vec::new(),
    };
    event.record(&mut p);
    p.values
}

fn get<'a>(values: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    values
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// The instruments.
pub(crate) struct ConventionMetrics {
    client_duration: Histogram<f64>,
    server_duration: Histogram<f64>,
    retries: Counter<u64>,
    budget_exhausted: Counter<u64>,
    auth_failures: Counter<u64>,
    token_refreshes: Counter<u64>,
    breaker_state: Gauge<i64>,
    failovers: Counter<u64>,
}

impl ConventionMetrics {
    pub(crate) fn new(meter: &Meter) -> Arc<Self> {
        let seconds_buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0,
            60.0,
        ];
        Arc::new(Self {
            client_duration: meter
                .f64_histogram(c::metric::CLIENT_OPERATION_DURATION)
                .with_unit("s")
                .with_description("Duration of MCP requests as seen by the client")
                .with_boundaries(seconds_buckets.clone())
                .build(),
            server_duration: meter
                .f64_histogram(c::metric::SERVER_OPERATION_DURATION)
                .with_unit("s")
                .with_description("Duration of MCP requests as seen by the server")
                .with_boundaries(seconds_buckets)
                .build(),
            retries: meter
                .u64_counter(c::metric::RETRIES)
                .with_unit("{retry}")
                .with_description("Retries scheduled after a transient failure")
                .build(),
            budget_exhausted: meter
                .u64_counter(c::metric::RETRY_BUDGET_EXHAUSTED)
                .with_unit("{retry}")
                .with_description("Retries refused because the retry budget was spent")
                .build(),
            auth_failures: meter
                .u64_counter(c::metric::AUTH_FAILURES)
                .with_unit("{failure}")
                .with_description(
                    "Authentication failures: refused tokens and failed token requests",
                )
                .build(),
            token_refreshes: meter
                .u64_counter(c::metric::TOKEN_REFRESHES)
                .with_unit("{refresh}")
                .with_description("Access token refreshes, by outcome")
                .build(),
            breaker_state: meter
                .i64_gauge(c::metric::BREAKER_STATE)
                .with_description(
                    "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open",
                )
                .build(),
            failovers: meter
                .u64_counter(c::metric::FAILOVERS)
                .with_unit("{switch}")
                .with_description("Traffic moved from one endpoint to another")
                .build(),
        })
    }
}

/// The layer feeding [`ConventionMetrics`].
pub(crate) struct MetricsLayer {
    metrics: Arc<ConventionMetrics>,
}

impl MetricsLayer {
    pub(crate) fn new(metrics: Arc<ConventionMetrics>) -> Self {
        Self { metrics }
    }
}

fn breaker_state_value(state: &str) -> Option<i64> {
    match state
        .to_ascii_lowercase()
        .replace(['-', '_', ' '], "")
        .as_str()
    {
        "closed" => Some(0),
        "halfopen" => Some(1),
        "open" => Some(2),
        _ => None,
    }
}

impl<S> Layer<S> for MetricsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let name = attrs.metadata().name();
        if name != c::span::CLIENT_REQUEST && name != c::span::SERVER_REQUEST {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = OperationFields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(Operation {
            start: Instant::now(),
            attributes: fields.0,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(op) = extensions.get_mut::<Operation>() {
            let mut fields = OperationFields(std::mem::take(&mut op.attributes));
            values.record(&mut fields);
            op.attributes = fields.0;
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(op) = span.extensions_mut().remove::<Operation>() else {
            return;
        };
        let seconds = op.start.elapsed().as_secs_f64();
        let histogram = if span.name() == c::span::SERVER_REQUEST {
            &self.metrics.server_duration
        } else {
            &self.metrics.client_duration
        };
        histogram.record(seconds, &op.attributes);
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let m = &self.metrics;
        match event.metadata().name() {
            c::event::RETRY_SCHEDULED => {
                let v = pick(event, &["kind"]);
                let attrs: Vec<KeyValue> = get(&v, "kind")
                    .map(|k| KeyValue::new("failure.kind", k.to_owned()))
                    .into_iter()
                    .collect();
                m.retries.add(1, &attrs);
            }
            c::event::RETRY_BUDGET_EXHAUSTED => m.budget_exhausted.add(1, &[]),
            c::event::AUTH_REQUEST_REJECTED => m
                .auth_failures
                .add(1, &[KeyValue::new("reason", "token_rejected")]),
            c::event::AUTH_REQUEST_TOKEN_FAILED => m
                .auth_failures
                .add(1, &[KeyValue::new("reason", "token_unavailable")]),
            c::event::AUTH_INSUFFICIENT_SCOPE => m
                .auth_failures
                .add(1, &[KeyValue::new("reason", "insufficient_scope")]),
            c::event::TOKEN_REFRESHED => m
                .token_refreshes
                .add(1, &[KeyValue::new("outcome", "success")]),
            c::event::TOKEN_REFRESH_FAILED => {
                m.token_refreshes
                    .add(1, &[KeyValue::new("outcome", "failure")]);
                m.auth_failures
                    .add(1, &[KeyValue::new("reason", "token_refresh_failed")]);
            }
            c::event::BREAKER_STATE_CHANGE => {
                let v = pick(event, &["endpoint", "to"]);
                if let (Some(endpoint), Some(state)) = (
                    get(&v, "endpoint"),
                    get(&v, "to").and_then(breaker_state_value),
                ) {
                    m.breaker_state
                        .record(state, &[KeyValue::new("endpoint", endpoint.to_owned())]);
                }
            }
            c::event::FAILOVER_SWITCHED => {
                let v = pick(event, &["from", "to"]);
                let attrs: Vec<KeyValue> = v
                    .into_iter()
                    .map(|(k, v)| KeyValue::new(if k == "from" { "from" } else { "to" }, v))
                    .collect();
                m.failovers.add(1, &attrs);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_states_map_to_gauge_values() {
        assert_eq!(breaker_state_value("closed"), Some(0));
        assert_eq!(breaker_state_value("half-open"), Some(1));
        assert_eq!(breaker_state_value("HalfOpen"), Some(1));
        assert_eq!(breaker_state_value("open"), Some(2));
        assert_eq!(breaker_state_value("?"), None);
    }
}
