//! The MCP messages the client speaks, as typed structs. Unknown fields are tolerated
//! everywhere; tool schemas are kept as raw JSON objects, exactly as the server sent them.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Protocol versions this client speaks, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] =
    &["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"];

/// The newest protocol version that uses `initialize` and sessions.
pub const LATEST_SESSION_VERSION: &str = "2025-11-25";

/// The stateless protocol version (no `initialize`; `_meta` on every request).
pub const STATELESS_VERSION: &str = "2026-07-28";

/// `_meta` key carrying the protocol version on every 2026-07-28 request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key carrying the client capabilities on every 2026-07-28 request.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key carrying the client name and version on every 2026-07-28 request.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key carrying the server name and version in 2026-07-28 results.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// Error code: the `MCP-Protocol-Version` header (or another mirrored header) does not match
/// the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// Error code: the server needs a client capability the request did not declare.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// Error code: the server does not support the requested protocol version; `data.supported`
/// lists what it does support.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// Name and version of a client or server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Implementation {
    /// Programmatic name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Human-readable name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl Implementation {
    /// An implementation with a name and version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            title: None,
        }
    }
}

/// What the client can do for the server. Each present member declares a capability.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientCapabilities {
    /// The client answers `roots/list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roots: Option<Value>,
    /// The client answers `sampling/createMessage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Value>,
    /// The client answers `elicitation/create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elicitation: Option<Value>,
    /// Experimental capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental: Option<Value>,
}

/// `initialize` parameters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams<'a> {
    /// The version the client asks for.
    pub protocol_version: &'a str,
    /// The client's capabilities.
    pub capabilities: &'a ClientCapabilities,
    /// The client's name and version.
    pub client_info: &'a Implementation,
}

/// `initialize` result.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// The version the server chose.
    pub protocol_version: String,
    /// The server's capabilities, as sent.
    #[serde(default)]
    pub capabilities: Value,
    /// The server's name and version.
    pub server_info: Option<Implementation>,
    /// Usage hints for the model, if any.
    #[serde(default)]
    pub instructions: Option<String>,
}

/// `server/discover` result (2026-07-28).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverResult {
    /// Protocol versions the server supports.
    #[serde(default)]
    pub supported_versions: Vec<String>,
    /// The server's capabilities, as sent.
    #[serde(default)]
    pub capabilities: Value,
    /// Usage hints for the model, if any.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Server name and version when sent in the body (some servers do).
    #[serde(default)]
    pub server_info: Option<Implementation>,
    /// Result metadata; the spec puts the server info here.
    #[serde(default, rename = "_meta")]
    pub meta: Option<Map<String, Value>>,
}

/// A tool the server offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// The tool's name, used in `tools/call`.
    pub name: String,
    /// Human-readable name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the tool does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments, exactly as the server sent it.
    #[serde(default)]
    pub input_schema: Map<String, Value>,
    /// JSON Schema of `structuredContent`, if declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Map<String, Value>>,
    /// Behaviour hints (read-only, destructive, idempotent, ...), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    /// Tool metadata, as sent.
    #[serde(default, rename = "_meta", skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// `tools/list` result page.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListToolsResult {
    /// Tools on this page.
    #[serde(default)]
    pub tools: Vec<Tool>,
    /// Cursor of the next page, if any.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `tools/call` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// Unstructured content blocks.
    #[serde(default)]
    pub content: Vec<Content>,
    /// Structured result, if the tool returns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// True if the tool reports an error (a tool-level failure, not a protocol error).
    #[serde(default)]
    pub is_error: bool,
    /// Result metadata, as sent.
    #[serde(default, rename = "_meta", skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// `resultType` (2026-07-28): absent or `complete` for a final result. The client
    /// resolves `input_required` results itself before returning.
    #[serde(
        default,
        rename = "resultType",
        skip_serializing_if = "Option::is_none"
    )]
    pub result_type: Option<String>,
}

impl CallToolResult {
    /// The text of all text content blocks, joined with newlines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|c| match c {
                Content::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n")
    }
}

/// A content block in a tool result. Block types this client does not know are kept as
/// [`Content::Other`] with their JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A base64 image.
    Image {
        /// Base64 data.
        data: String,
        /// MIME type.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// Base64 audio.
    Audio {
        /// Base64 data.
        data: String,
        /// MIME type.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// A link to a resource.
    ResourceLink {
        /// The resource URI.
        uri: String,
        /// The resource name.
        name: String,
    },
    /// An embedded resource.
    Resource {
        /// The resource contents, as sent.
        resource: Value,
    },
    /// Any other block, as sent.
    #[serde(untagged)]
    Other(Value),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ContentVisitor)
    }
}

/// One pass over a content block: the members known block types use are read as strings;
/// anything else is kept, so an unknown block type round-trips as [`Content::Other`].
struct ContentVisitor;

impl<'de> serde::de::Visitor<'de> for ContentVisitor {
    type Value = Content;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a content block object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Content, A::Error> {
        let mut strings: [Option<String>; 6] = Default::default();
        const NAMES: [&str; 6] = ["type", "text", "data", "mimeType", "uri", "name"];
        let mut resource: Option<Value> = None;
        let mut rest = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match NAMES.iter().position(|n| *n == key) {
                Some(i) => match map.next_value::<Value>()? {
                    Value::String(v) => strings[i] = Some(v),
                    other => {
                        rest.insert(key.into_owned(), other);
                    }
                },
                None if key == "resource" => resource = Some(map.next_value()?),
                None => {
                    rest.insert(key.into_owned(), map.next_value()?);
                }
            }
        }
        let [kind, text, data, mime_type, uri, name] = strings;
        let known = match kind.as_deref() {
            Some("text") if text.is_some() => text.clone().map(|text| Content::Text { text }),
            Some("image") => (data.clone())
                .zip(mime_type.clone())
                .map(|(data, mime_type)| Content::Image { data, mime_type }),
            Some("audio") => (data.clone())
                .zip(mime_type.clone())
                .map(|(data, mime_type)| Content::Audio { data, mime_type }),
            Some("resource_link") => (uri.clone())
                .zip(name.clone())
                .map(|(uri, name)| Content::ResourceLink { uri, name }),
            Some("resource") => resource
                .clone()
                .map(|resource| Content::Resource { resource }),
            _ => None,
        };
        if let Some(known) = known {
            return Ok(known);
        }
        for (key, value) in NAMES.iter().zip([kind, text, data, mime_type, uri, name]) {
            if let Some(v) = value {
                rest.insert((*key).to_owned(), Value::String(v));
            }
        }
        if let Some(r) = resource {
            rest.insert("resource".into(), r);
        }
        Ok(Content::Other(Value::Object(rest)))
    }
}

/// `notifications/progress` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The token the request carried in `_meta.progressToken`.
    pub progress_token: Value,
    /// Progress so far (increases with every notification).
    pub progress: f64,
    /// Total, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// Human-readable message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `notifications/message` (logging) parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogMessage {
    /// Severity (`debug` ... `emergency`).
    pub level: String,
    /// Logger name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// The logged data.
    #[serde(default)]
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_blocks_known_and_unknown() {
        let r: CallToolResult = serde_json::from_value(serde_json::json!({
            "content": [
                {"type": "text", "text": "hi", "annotations": {"audience": ["user"]}},
                {"type": "image", "data": "AA==", "mimeType": "image/png"},
                {"type": "hologram", "depth": 3}
            ],
            "structuredContent": {"id": 1},
            "unknownField": true
        }))
        .unwrap();
        assert_eq!(r.text(), "hi");
        assert!(matches!(r.content[1], Content::Image { .. }));
        assert!(matches!(&r.content[2], Content::Other(v) if v["depth"] == 3));
        assert!(!r.is_error);
        let round = serde_json::to_value(&r.content[2]).unwrap();
        assert_eq!(round["type"], "hologram");
    }

    #[test]
    fn tool_schema_is_kept_verbatim() {
        let schema = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {"a": {"$anchor": "x"}},
            "additionalProperties": false
        });
        let t: Tool =
            serde_json::from_value(serde_json::json!({"name": "t", "inputSchema": schema}))
                .unwrap();
        assert_eq!(Value::Object(t.input_schema), schema);
    }
}
