//! JSON-RPC 2.0 messages as MCP uses them: requests, notifications, responses and error
//! responses, decoded from untrusted bytes with clear errors and unknown fields tolerated.
//!
//! Parameters and results stay as raw JSON ([`RawValue`]) until the layer that knows their
//! type decodes them, so a message is parsed once.
//!
//! ```
//! use mcp_transport::jsonrpc::{Message, RequestId};
//!
//! let msg = Message::from_slice(br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[]},"extra":1}"#)?;
//! let Message::Response(resp) = msg else { panic!("not a response") };
//! assert_eq!(resp.id, RequestId::Number(7));
//! assert_eq!(resp.result.get(), r#"{"tools":[]}"#);
//! # Ok::<(), mcp_transport::jsonrpc::DecodeError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

/// The JSON-RPC version string every message carries.
pub const VERSION: &str = "2.0";

/// Standard JSON-RPC error codes.
pub mod code {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// A request id: a number or a string (never null in a request).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    /// A numeric id.
    Number(i64),
    /// A string id.
    String(Arc<str>),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RequestId::Number(n) => s.serialize_i64(*n),
            RequestId::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = RequestId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC id (integer or string)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RequestId, E> {
                Ok(RequestId::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RequestId, E> {
                i64::try_from(v)
                    .map(RequestId::Number)
                    .map_err(|_| E::custom("request id out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RequestId, E> {
                Ok(RequestId::String(v.into()))
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// A request: a method call that expects a response.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// Always [`VERSION`].
    pub jsonrpc: JsonRpcVersion,
    /// The id the response will carry.
    pub id: RequestId,
    /// The method name, e.g. `tools/call`.
    pub method: String,
    /// The parameters, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Box<RawValue>>,
}

/// A notification: a method call without an id, never answered.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// Always [`VERSION`].
    pub jsonrpc: JsonRpcVersion,
    /// The method name, e.g. `notifications/progress`.
    pub method: String,
    /// The parameters, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Box<RawValue>>,
}

/// A successful response.
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    /// Always [`VERSION`].
    pub jsonrpc: JsonRpcVersion,
    /// The id of the request this answers.
    pub id: RequestId,
    /// The result, as raw JSON.
    pub result: Box<RawValue>,
}

/// An error response.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorResponse {
    /// Always [`VERSION`].
    pub jsonrpc: JsonRpcVersion,
    /// The id of the request this answers; `None` (JSON `null`) if it could not be determined.
    pub id: Option<RequestId>,
    /// The error.
    pub error: RpcError,
}

/// The `error` member of an error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Additional information, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl RpcError {
    /// An error with a code and message and no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)
    }
}

/// Zero-sized marker that serializes as `"2.0"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonRpcVersion;

impl Serialize for JsonRpcVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(VERSION)
    }
}

/// Any JSON-RPC message.
#[derive(Debug, Clone)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A successful response.
    Response(Response),
    /// An error response.
    Error(ErrorResponse),
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Message::Request(m) => m.serialize(s),
            Message::Notification(m) => m.serialize(s),
            Message::Response(m) => m.serialize(s),
            Message::Error(m) => m.serialize(s),
        }
    }
}

/// Why bytes could not be decoded as a JSON-RPC message.
#[derive(Debug)]
pub struct DecodeError {
    what: String,
}

impl DecodeError {
    fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON-RPC message: {}", self.what)
    }
}

impl std::error::Error for DecodeError {}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    jsonrpc: Option<String>,
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    // `"result": null` is a valid result, distinct from an absent member.
    #[serde(default, deserialize_with = "present")]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<RpcError>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

impl Message {
    /// Decodes one message. Unknown members are ignored; a wrong `jsonrpc` version, a message
    /// that is neither request, notification nor response, or malformed JSON is an error that
    /// says which.
    pub fn from_slice(bytes: &[u8]) -> Result<Message, DecodeError> {
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::new(e.to_string()))?;
        Self::from_wire(wire)
    }

    /// Decodes a message or a batch (a JSON array of messages, which servers of spec
    /// 2025-03-26 may send) into a list.
    pub fn from_slice_batch(bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            let wires: Vec<Wire> =
                serde_json::from_slice(bytes).map_err(|e| DecodeError::new(e.to_string()))?;
            if wires.is_empty() {
                return Err(DecodeError::new("empty batch"));
            }
            wires.into_iter().map(Self::from_wire).collect()
        } else {
            Self::from_slice(bytes).map(|m| vec![m])
        }
    }

    fn from_wire(wire: Wire) -> Result<Message, DecodeError> {
        match wire.jsonrpc.as_deref() {
            Some(VERSION) => {}
            Some(other) => {
                return Err(DecodeError::new(format!(
                    "`jsonrpc` must be \"2.0\", got {other:?}"
                )));
            }
            None => return Err(DecodeError::new("missing `jsonrpc` member")),
        }
        let jsonrpc = JsonRpcVersion;
        match (wire.method, wire.id, wire.result, wire.error) {
            (Some(method), Some(id), None, None) => Ok(Message::Request(Request {
                jsonrpc,
                id,
                method,
                params: wire.params,
            })),
            (Some(method), None, None, None) => Ok(Message::Notification(Notification {
                jsonrpc,
                method,
                params: wire.params,
            })),
            (None, Some(id), Some(result), None) => Ok(Message::Response(Response {
                jsonrpc,
                id,
                result,
            })),
            (None, id, None, Some(error)) => {
                Ok(Message::Error(ErrorResponse { jsonrpc, id, error }))
            }
            (None, None, Some(_), None) => Err(DecodeError::new("response without an `id`")),
            (None, _, Some(_), Some(_)) => {
                Err(DecodeError::new("response has both `result` and `error`"))
            }
            (Some(_), _, _, _) => Err(DecodeError::new(
                "message has both `method` and `result`/`error`",
            )),
            (None, _, None, None) => Err(DecodeError::new(
                "message has neither `method` nor `result` nor `error`",
            )),
        }
    }

    /// Encodes the message as compact JSON.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing these types cannot fail: keys are strings and raw values are valid JSON.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Serializes `value` as a raw JSON value (for `params`).
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Result<Box<RawValue>, serde_json::Error> {
    serde_json::value::to_raw_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_kind() {
        let m = Message::from_slice(br#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#).unwrap();
        assert!(
            matches!(m, Message::Request(r) if r.id == RequestId::String("a".into()) && r.params.is_none())
        );
        let m = Message::from_slice(
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#,
        )
        .unwrap();
        assert!(matches!(m, Message::Notification(n) if n.params.is_some()));
        let m = Message::from_slice(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
        )
        .unwrap();
        assert!(
            matches!(m, Message::Error(e) if e.id.is_none() && e.error.code == code::PARSE_ERROR)
        );
        let m = Message::from_slice(
            br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"nope","data":{"x":1}}}"#,
        )
        .unwrap();
        assert!(
            matches!(m, Message::Error(e) if e.id == Some(RequestId::Number(3)) && e.error.data.is_some())
        );
    }

    #[test]
    fn rejects_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (
                br#"{"jsonrpc":"1.0","id":1,"result":{}}"#,
                "must be \"2.0\"",
            ),
            (br#"{"id":1,"result":{}}"#, "missing `jsonrpc`"),
            (br#"{"jsonrpc":"2.0","result":{}}"#, "without an `id`"),
            (br#"{"jsonrpc":"2.0","id":1}"#, "neither"),
            (
                br#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":""}}"#,
                "both",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
                "integer or string",
            ),
            (
                br#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"x"}"#,
                "out of range",
            ),
            (b"[]", "empty batch"),
            (b"{", "EOF"),
        ];
        for (input, want) in cases {
            let err = Message::from_slice_batch(input).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn batch_and_round_trip() {
        let msgs = Message::from_slice_batch(
            br#" [{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","id":2,"result":null}]"#,
        )
        .unwrap();
        assert_eq!(msgs.len(), 2);
        let req = Message::Request(Request {
            jsonrpc: JsonRpcVersion,
            id: RequestId::Number(1),
            method: "tools/call".into(),
            params: Some(to_raw(&serde_json::json!({"name": "echo"})).unwrap()),
        });
        assert_eq!(
            String::from_utf8(req.to_vec()).unwrap(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#
        );
    }
}
