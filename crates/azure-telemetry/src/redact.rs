//! The redaction guard: nothing secret leaves the process in exported telemetry.
//!
//! Applied to every exported span (attributes, event attributes, status message) and
//! every exported log record (body and attributes), three rules:
//!
//! 1. **Secret-looking field names**: a field whose name, with `.`, `_` and `-` removed
//!    and lower-cased, contains `password`, `passwd`, `secret`, `token`, `apikey`,
//!    `authorization`, `cookie`, `credential`, `connectionstring`, `privatekey`,
//!    `assertion` or `signature` has its value replaced by `[redacted]`.
//! 2. **Secret-looking values**: JSON Web Tokens (`eyJ…` with three dot-separated
//!    parts), `Bearer …`/`Basic …` credentials and `InstrumentationKey=…` connection strings inside
//!    any string value are replaced by `[redacted]`.
//! 3. **Known secret values**: values registered with
//!    [`TelemetryConfig::redact_value`](crate::TelemetryConfig::redact_value) (an API key
//!    read at start-up, say) are replaced wherever they appear.
//!
//! Secret-typed values in the workspace (`mcp_auth::Secret`, `azure_secrets::SecretValue`)
//! already print as `[redacted]`; this guard is the second line for what slips past.

use std::borrow::Cow;
use std::fmt;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

const SECRET_NAME_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "connectionstring",
    "privatekey",
    "assertion",
    "signature",
];

/// The redaction rules of one telemetry pipeline.
#[derive(Default)]
pub(crate) struct Redactor {
    known: Vec<Box<str>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("known_values", &self.known.len())
            .finish()
    }
}

/// True when a field of this name carries a secret by its name alone.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let normalized: String = name
        .chars()
        .filter(|c| !matches!(c, '.' | '_' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_NAME_PARTS.iter().any(|p| normalized.contains(p))
}

impl Redactor {
    pub(crate) fn new(known: impl IntoIterator<Item = String>) -> Self {
        let mut known: Vec<Box<str>> = known
            .into_iter()
            // Very short values would redact ordinary words; they are not secrets anyway.
            .filter(|v| v.len() >= 8)
            .map(String::into_boxed_str)
            .collect();
        known.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Self { known }
    }

    /// The value to export for field `name`.
    pub(crate) fn text<'a>(&self, name: &str, value: &'a str) -> Cow<'a, str> {
        if is_secret_name(name) {
            return Cow::Borrowed(REDACTED);
        }
        self.scrub(value)
    }

    /// `value` with secret-looking and known secret parts replaced.
    pub(crate) fn scrub<'a>(&self, value: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(value);
        for known in &self.known {
            if out.contains(&**known) {
                out = Cow::Owned(out.replace(&**known, REDACTED));
            }
        }
        if out.contains("eyJ") {
            let replaced = replace_jwts(&out);
            if replaced != *out {
                out = Cow::Owned(replaced);
            }
        }
        for scheme in ["Bearer ", "bearer ", "Basic ", "basic "] {
            if out.contains(scheme) {
                let replaced = replace_after(&out, scheme);
                if replaced != *out {
                    out = Cow::Owned(replaced);
                }
            }
        }
        if let Some(at) = find_ignore_case(&out, "instrumentationkey=") {
            let mut s = out[..at].to_owned();
            s.push_str(REDACTED);
            out = Cow::Owned(s);
        }
        out
    }

    fn attribute(&self, kv: &mut KeyValue) {
        // Numbers and booleans cannot carry a credential; strings and arrays can.
        let replacement = match &kv.value {
            Value::Bool(_) | Value::I64(_) | Value::F64(_) => None,
            _ if is_secret_name(kv.key.as_str()) => Some(REDACTED.to_owned()),
            Value::String(s) => match self.scrub(s.as_str()) {
                Cow::Borrowed(_) => None,
                Cow::Owned(s) => Some(s),
            },
            _ => None,
        };
        if let Some(r) = replacement {
            kv.value = Value::String(r.into());
        }
    }

    pub(crate) fn redact_span(&self, span: &mut SpanData) {
        for kv in &mut span.attributes {
            self.attribute(kv);
        }
        for event in &mut span.events.events {
            for kv in &mut event.attributes {
                self.attribute(kv);
            }
        }
        if let opentelemetry::trace::Status::Error { description } = &mut span.status
            && let Cow::Owned(s) = self.scrub(description)
        {
            *description = s.into();
        }
    }
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
}

/// Replaces each `eyJ…` run made of two or more `.`-separated base64url parts.
fn replace_jwts(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("eyJ") {
        let (before, candidate) = rest.split_at(at);
        out.push_str(before);
        let end = candidate
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(candidate.len());
        let token = &candidate[..end];
        if token.split('.').filter(|p| !p.is_empty()).count() >= 2 {
            out.push_str(REDACTED);
        } else {
            out.push_str(token);
        }
        rest = &candidate[end..];
        if end == 0 {
            // Not reachable ("eyJ" is alphanumeric), but never loop without progress.
            out.push_str(rest);
            return out;
        }
    }
    out.push_str(rest);
    out
}

/// Replaces the credential after each `scheme` (`Bearer `): the run of token characters.
fn replace_after(s: &str, scheme: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(scheme) {
        let (before, after) = rest.split_at(at + scheme.len());
        out.push_str(before);
        let end = after
            .find(|c: char| !is_token_char(c))
            .unwrap_or(after.len());
        if end > 0 {
            out.push_str(REDACTED);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_recognised_however_spelled() {
        for name in [
            "api_key",
            "apiKey",
            "x-api-key",
            "client_secret",
            "access.token",
            "Authorization",
            "http.request.header.authorization",
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "client_assertion",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "gen_ai.tool.name",
            "mcp.session.id",
            "server.address",
            "attempt",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn secret_looking_values_are_replaced_inside_text() {
        let r = Redactor::new(["s3cr3t-api-key-value".to_owned()]);
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let text =
            format!("sent Authorization: Bearer abc.DEF-123 and {jwt}; key s3cr3t-api-key-value.");
        let scrubbed = r.scrub(&text);
        assert_eq!(
            scrubbed,
            "sent Authorization: Bearer [redacted] and [redacted]; key [redacted]."
        );
        assert_eq!(
            r.scrub("InstrumentationKey=0000;IngestionEndpoint=x"),
            "[redacted]"
        );
        assert!(matches!(
            r.scrub("nothing to see: eyJ alone"),
            Cow::Borrowed(_)
        ));
        assert_eq!(r.text("password", "hunter2"), REDACTED);
    }

    #[test]
    fn short_known_values_are_ignored() {
        let r = Redactor::new(["abc".to_owned()]);
        assert_eq!(r.scrub("abcdef"), "abcdef");
    }
}
