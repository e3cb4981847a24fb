//! Application Insights connection strings:
//!
//! ```text
//! InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westus2-0.in.applicationinsights.azure.com/;LiveEndpoint=https://westus2.livediagnostics.monitor.azure.com/
//! InstrumentationKey=...;EndpointSuffix=applicationinsights.azure.cn;Location=chinaeast2
//! ```
//!
//! Rules (Azure Monitor's): `key=value` pairs separated by `;`, keys matched without regard to
//! case, spaces around keys and values ignored, empty pairs skipped; `InstrumentationKey` is
//! required and must be a GUID; `IngestionEndpoint` and `LiveEndpoint` must be `https` URLs
//! (plain `http` only to loopback, for tests); without them, `EndpointSuffix` (with an
//! optional `Location` prefix) builds `https://[location.]dc.<suffix>` and
//! `https://[location.]live.<suffix>`; without either, the global endpoints
//! `https://dc.services.visualstudio.com` and `https://rt.services.visualstudio.com`.
//! Unknown keys are kept for forward compatibility (`ApplicationId`, `Authorization`, ...).
//! At most 4,096 characters. Errors never quote the string (it authorizes writes); they name
//! the key at fault.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Kind};

/// The ingestion endpoint when the string names none.
pub const DEFAULT_INGESTION_ENDPOINT: &str = "https://dc.services.visualstudio.com";
/// The live-metrics endpoint when the string names none.
pub const DEFAULT_LIVE_ENDPOINT: &str = "https://rt.services.visualstudio.com";
/// The longest connection string accepted.
pub const MAX_LEN: usize = 4096;

/// A parsed connection string. `Debug` shows the endpoints, never the instrumentation key.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    instrumentation_key: String,
    ingestion_endpoint: String,
    live_endpoint: String,
    other: BTreeMap<String, String>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("instrumentation_key", &"[redacted]")
            .field("ingestion_endpoint", &self.ingestion_endpoint)
            .field("live_endpoint", &self.live_endpoint)
            .finish_non_exhaustive()
    }
}

fn invalid(why: impl Into<String>) -> Error {
    Error::new(Kind::InvalidConnectionString).with_context(why)
}

impl ConnectionString {
    /// Parses `text` (see the [module docs](self)).
    ///
    /// ```
    /// use azure_telemetry::ConnectionString;
    ///
    /// let cs = ConnectionString::parse(
    ///     "InstrumentationKey=11111111-2222-3333-4444-555555555555;\
    ///      IngestionEndpoint=https://westus2-0.in.applicationinsights.azure.com/",
    /// )?;
    /// assert_eq!(cs.track_url(), "https://westus2-0.in.applicationinsights.azure.com/v2.1/track");
    /// assert!(!format!("{cs:?}").contains("1111"));
    /// # Ok::<(), azure_telemetry::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() > MAX_LEN {
            return Err(invalid(format!(
                "longer than {MAX_LEN} characters ({})",
                text.len()
            )));
        }
        let mut pairs: BTreeMap<String, String> = BTreeMap::new();
        for part in text.split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(invalid("a part is not `Key=value`"));
            };
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(invalid("a key is empty or not letters and digits"));
            }
            let lower = key.to_ascii_lowercase();
            if pairs.contains_key(&lower) {
                return Err(invalid(format!("`{}` is given twice", clip(key))));
            }
            pairs.insert(lower, value.trim().to_owned());
        }
        let key = pairs
            .remove("instrumentationkey")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| invalid("`InstrumentationKey` is missing"))?;
        if !is_guid(&key) {
            return Err(invalid("`InstrumentationKey` is not a GUID"));
        }
        let suffix = pairs
            .remove("endpointsuffix")
            .map(|s| s.trim_matches('.').to_owned())
            .filter(|s| !s.is_empty());
        let location = pairs
            .remove("location")
            .map(|s| s.trim_matches('.').to_owned())
            .filter(|s| !s.is_empty());
        for (name, value) in [("EndpointSuffix", &suffix), ("Location", &location)] {
            if let Some(v) = value
                && !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                return Err(invalid(format!("`{name}` is not a DNS name")));
            }
        }
        let from_suffix = |service: &str| {
            suffix.as_ref().map(|s| match &location {
                Some(loc) => format!("https://{loc}.{service}.{s}"),
                None => format!("https://{service}.{s}"),
            })
        };
        let ingestion = match pairs.remove("ingestionendpoint").filter(|v| !v.is_empty()) {
            Some(url) => endpoint("IngestionEndpoint", &url)?,
            None => from_suffix("dc").unwrap_or_else(|| DEFAULT_INGESTION_ENDPOINT.to_owned()),
        };
        let live = match pairs.remove("liveendpoint").filter(|v| !v.is_empty()) {
            Some(url) => endpoint("LiveEndpoint", &url)?,
            None => from_suffix("live").unwrap_or_else(|| DEFAULT_LIVE_ENDPOINT.to_owned()),
        };
        Ok(Self {
            instrumentation_key: key.to_ascii_lowercase(),
            ingestion_endpoint: ingestion,
            live_endpoint: live,
            other: pairs,
        })
    }

    /// The instrumentation key (lower case). It authorizes writes: keep it out of logs.
    pub fn instrumentation_key(&self) -> &str {
        &self.instrumentation_key
    }

    /// The ingestion endpoint, without a trailing slash.
    pub fn ingestion_endpoint(&self) -> &str {
        &self.ingestion_endpoint
    }

    /// The live-metrics endpoint, without a trailing slash.
    pub fn live_endpoint(&self) -> &str {
        &self.live_endpoint
    }

    /// Where envelopes are posted: `{ingestion}/v2.1/track`.
    pub fn track_url(&self) -> String {
        format!("{}/v2.1/track", self.ingestion_endpoint)
    }

    /// Another key's value (`ApplicationId`, `Authorization`, ...), by case-insensitive name.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.other
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// `https://host[:port][/path]` (or `http` to loopback), returned without a trailing slash.
fn endpoint(name: &str, url: &str) -> Result<String, Error> {
    let url = url.trim_end_matches('/');
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid(format!("`{name}` is not a URL")))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let hostname = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    if hostname.is_empty() || host.contains('@') {
        return Err(invalid(format!("`{name}` has no usable host")));
    }
    if rest.contains(['?', '#']) || rest.contains(char::is_whitespace) {
        return Err(invalid(format!(
            "`{name}` must not have a query, fragment or spaces"
        )));
    }
    let loopback =
        matches!(hostname, "localhost" | "127.0.0.1" | "[::1]") || hostname.starts_with("127.");
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(format!("https://{rest}")),
        "http" if loopback => Ok(format!("http://{rest}")),
        "http" => Err(invalid(format!(
            "`{name}` must be https (plain http only to loopback)"
        ))),
        _ => Err(invalid(format!("`{name}` must be an https URL"))),
    }
}

/// A key as quoted in an error: at most 40 characters (keys are ASCII letters and digits).
fn clip(key: &str) -> String {
    match key.get(..40) {
        Some(head) if key.len() > 40 => format!("{head}…"),
        _ => key.to_owned(),
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "11111111-2222-3333-4444-555555555555";

    #[test]
    fn explicit_endpoints_suffix_location_and_defaults() {
        let cs = ConnectionString::parse(&format!(
            "InstrumentationKey={KEY};IngestionEndpoint=https://westus2-0.in.applicationinsights.azure.com/;\
             LiveEndpoint=https://westus2.livediagnostics.monitor.azure.com/;ApplicationId=abc"
        ))
        .unwrap();
        assert_eq!(
            cs.ingestion_endpoint(),
            "https://westus2-0.in.applicationinsights.azure.com"
        );
        assert_eq!(
            cs.live_endpoint(),
            "https://westus2.livediagnostics.monitor.azure.com"
        );
        assert_eq!(cs.get("applicationid"), Some("abc"));
        let cs = ConnectionString::parse(&format!(
            " instrumentationkey = {KEY} ; endpointsuffix=applicationinsights.azure.cn;Location=chinaeast2;"
        ))
        .unwrap();
        assert_eq!(
            cs.ingestion_endpoint(),
            "https://chinaeast2.dc.applicationinsights.azure.cn"
        );
        assert_eq!(
            cs.live_endpoint(),
            "https://chinaeast2.live.applicationinsights.azure.cn"
        );
        let cs = ConnectionString::parse(&format!("InstrumentationKey={KEY}")).unwrap();
        assert_eq!(
            cs.track_url(),
            "https://dc.services.visualstudio.com/v2.1/track"
        );
        let cs = ConnectionString::parse(&format!(
            "InstrumentationKey={KEY};IngestionEndpoint=http://127.0.0.1:4318"
        ))
        .unwrap();
        assert_eq!(cs.track_url(), "http://127.0.0.1:4318/v2.1/track");
    }

    #[test]
    fn errors_name_the_key_never_the_value() {
        for (text, expect) in [
            ("", "InstrumentationKey` is missing"),
            ("InstrumentationKey=not-a-guid", "not a GUID"),
            ("InstrumentationKey", "Key=value"),
            (
                &format!("InstrumentationKey={KEY};InstrumentationKey={KEY}") as &str,
                "twice",
            ),
            (
                &format!("InstrumentationKey={KEY};IngestionEndpoint=http://evil.example"),
                "https",
            ),
            (
                &format!("InstrumentationKey={KEY};IngestionEndpoint=ftp://x"),
                "https",
            ),
            (
                &format!("InstrumentationKey={KEY};EndpointSuffix=a/b"),
                "DNS name",
            ),
        ] {
            let e = ConnectionString::parse(text).unwrap_err();
            assert!(e.is_invalid_connection_string());
            let shown = e.to_string();
            assert!(shown.contains(expect), "{text:?}: {shown}");
            assert!(!shown.contains("1111"), "{shown}");
        }
        assert!(ConnectionString::parse(&"x".repeat(MAX_LEN + 1)).is_err());
        // A long key given twice (found by the fuzzer): the message stays short.
        let long = "k".repeat(2_000);
        let e = ConnectionString::parse(&format!("{long}=1;{long}=2")).unwrap_err();
        assert!(e.to_string().len() < 300, "{}", e.to_string().len());
    }
}
