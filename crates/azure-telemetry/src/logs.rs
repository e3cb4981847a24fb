//! `tracing` events → OpenTelemetry log records (Application Insights `Message`s).
//!
//! Events travel one path only: to the logs pipeline (with the trace and span ids of the
//! span they happened in, so they join their operation), never also as span events. The
//! record's body is the event's message, or its name when it has none (named events
//! such as `mcp_auth.token.refreshed`); the other fields become attributes, redacted by
//! the [guard](crate::redact) before they are recorded.

use std::sync::Arc;

use opentelemetry::logs::{AnyValue, LogRecord, Logger, Severity};
use opentelemetry_sdk::logs::SdkLogger;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::redact::Redactor;

/// The layer that turns events into log records.
pub(crate) struct LogBridge {
    logger: SdkLogger,
    redactor: Arc<Redactor>,
}

impl LogBridge {
    pub(crate) fn new(logger: SdkLogger, redactor: Arc<Redactor>) -> Self {
        Self { logger, redactor }
    }
}

fn severity(level: &Level) -> (Severity, &'static str) {
    match *level {
        Level::ERROR => (Severity::Error, "ERROR"),
        Level::WARN => (Severity::Warn, "WARN"),
        Level::INFO => (Severity::Info, "INFO"),
        Level::DEBUG => (Severity::Debug, "DEBUG"),
        _ => (Severity::Trace, "TRACE"),
    }
}

/// True for tracing's generated event names (`event src/lib.rs:12`).
fn is_generated_name(name: &str) -> bool {
    name.starts_with("event ") && name.contains(':')
}

struct Fields<'a, R> {
    record: &'a mut R,
    redactor: &'a Redactor,
    message: Option<String>,
}

impl<R: LogRecord> Fields<'_, R> {
    fn text(&mut self, field: &Field, value: &str) {
        let value = self.redactor.text(field.name(), value).into_owned();
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.record.add_attribute(field.name(), value);
        }
    }
}

impl<R: LogRecord> Visit for Fields<'_, R> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text(field, &format!("{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, &value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record.add_attribute(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.record.add_attribute(field.name(), v),
            Err(_) => self.record.add_attribute(field.name(), value.to_string()),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record.add_attribute(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record.add_attribute(field.name(), value);
    }
}

impl<S: Subscriber> Layer<S> for LogBridge {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut record = self.logger.create_log_record();
        let (number, text) = severity(meta.level());
        record.set_severity_number(number);
        record.set_severity_text(text);
        record.set_timestamp(std::time::SystemTime::now());
        record.set_target(meta.target().to_owned());
        let name = (!is_generated_name(meta.name())).then(|| meta.name());
        if let Some(name) = name {
            record.set_event_name(name);
            record.add_attribute("event.name", name);
        }
        let mut fields = Fields {
            record: &mut record,
            redactor: &self.redactor,
            message: None,
        };
        event.record(&mut fields);
        let body = fields
            .message
            .take()
            .or_else(|| name.map(str::to_owned))
            .unwrap_or_default();
        record.set_body(AnyValue::from(body));
        // The logger attaches the current OpenTelemetry context: the span the event is in.
        self.logger.emit(record);
    }
}
