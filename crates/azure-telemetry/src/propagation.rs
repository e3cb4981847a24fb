//! W3C trace context across process boundaries.
//!
//! Carrier-agnostic: [`inject`] writes `traceparent` (and `tracestate` when there is one)
//! through a setter, [`set_parent`] reads them through a getter, so the same functions
//! serve HTTP headers and MCP `_meta` (where the MCP community's convention puts the
//! same two keys). Both work on `tracing` spans; without the OpenTelemetry layer (no
//! [`init`](crate::init)) they do nothing.
//!
//! ```
//! use std::collections::HashMap;
//!
//! // Client side: into a header map (or a request's `_meta`).
//! let span = tracing::info_span!("call");
//! let mut headers = HashMap::new();
//! azure_telemetry::propagation::inject(&span, &mut |k, v| {
//!     headers.insert(k, v);
//! });
//!
//! // Server side: the request's span continues the caller's trace.
//! let server = tracing::info_span!("handle");
//! azure_telemetry::propagation::set_parent(&server, &|k| headers.get(k).cloned());
//! ```

use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C `traceparent` key.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C `tracestate` key.
pub const TRACESTATE: &str = "tracestate";

fn propagator() -> &'static TraceContextPropagator {
    static P: OnceLock<TraceContextPropagator> = OnceLock::new();
    P.get_or_init(TraceContextPropagator::new)
}

struct Setter<'a>(&'a mut dyn FnMut(&'static str, String));

impl Injector for Setter<'_> {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => (self.0)(TRACEPARENT, value),
            TRACESTATE => (self.0)(TRACESTATE, value),
            _ => {}
        }
    }
}

struct Pair {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Extractor for Pair {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// Writes `span`'s trace context as `traceparent`/`tracestate` through `set`.
///
/// Nothing is written when the span has no valid OpenTelemetry context (telemetry not
/// initialised, or the span disabled). The signature matches
/// `mcp_transport::telemetry::set_context_injector`, so it can be passed there directly.
pub fn inject(span: &tracing::Span, set: &mut dyn FnMut(&'static str, String)) {
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    propagator().inject_context(&cx, &mut Setter(set));
}

/// Makes `span` a child of the trace context `get` finds (`traceparent`, `tracestate`).
///
/// Returns whether a valid remote parent was found. Malformed values are ignored (the span
/// starts a new trace), as the W3C specification requires.
pub fn set_parent(span: &tracing::Span, get: &dyn Fn(&str) -> Option<String>) -> bool {
    let pair = Pair {
        traceparent: get(TRACEPARENT),
        tracestate: get(TRACESTATE),
    };
    if pair.traceparent.is_none() {
        return false;
    }
    let cx = propagator().extract(&pair);
    if !cx.span().span_context().is_valid() {
        return false;
    }
    span.set_parent(cx).is_ok()
}

/// The trace id of `span` as 32 lowercase hex digits (Application Insights' operation id),
/// or `None` without a valid context.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
