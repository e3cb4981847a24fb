//! Request headers of the stateless (2026-07-28) Streamable HTTP transport: `Mcp-Name` and
//! `Mcp-Param-{Name}` values (plain when header-safe, else the `=?base64?…?=` sentinel), and the
//! `x-mcp-header` annotation rules that decide which tools a client may use.

use serde_json::{Map, Value};

const SENTINEL_START: &str = "=?base64?";
const SENTINEL_END: &str = "?=";

/// Encodes a string as a header value: as-is when it is plain-safe (visible ASCII, inner
/// spaces and tabs, no leading or trailing whitespace, not itself sentinel-shaped), else as
/// `=?base64?{Base64(UTF-8)}?=`.
pub fn encode_value(s: &str) -> String {
    let visible = s.bytes().all(|b| matches!(b, 0x21..=0x7E | b' ' | b'\t'));
    let padded = s.starts_with([' ', '\t']) || s.ends_with([' ', '\t']);
    let sentinel_shaped = s.starts_with(SENTINEL_START) && s.ends_with(SENTINEL_END);
    let plain_safe = visible && !padded && !sentinel_shaped;
    if plain_safe {
        s.to_owned()
    } else {
        format!("{SENTINEL_START}{}{SENTINEL_END}", base64(s.as_bytes()))
    }
}

/// The header value for a tool argument, or `None` when the header must be omitted (argument
/// absent or `null`, or not a primitive).
pub fn param_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(encode_value(s)),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Standard Base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One `x-mcp-header` annotation: header suffix and the property path in `arguments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The `{Name}` in `Mcp-Param-{Name}`.
    pub name: String,
    /// Property names from the root of `arguments` to the annotated value.
    pub path: Vec<String>,
}

/// Reads the `x-mcp-header` annotations of a tool's input schema. `Err` says why the tool is
/// invalid (and must be hidden from `tools/list`).
pub fn param_headers(schema: &Map<String, Value>) -> Result<Vec<ParamHeader>, String> {
    let mut out = Vec::new();
    collect(schema, &mut Vec::new(), &mut out)?;
    let mut seen: Vec<String> = Vec::new();
    for h in &out {
        let lower = h.name.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(format!(
                "x-mcp-header `{}` is not unique (case-insensitively)",
                h.name
            ));
        }
        seen.push(lower);
    }
    Ok(out)
}

fn collect(
    schema: &Map<String, Value>,
    path: &mut Vec<String>,
    out: &mut Vec<ParamHeader>,
) -> Result<(), String> {
    let Some(Value::Object(props)) = schema.get("properties") else {
        return Ok(());
    };
    for (key, prop) in props {
        let Value::Object(prop) = prop else { continue };
        path.push(key.clone());
        if let Some(name) = prop.get("x-mcp-header") {
            let Value::String(name) = name else {
                return Err(format!(
                    "x-mcp-header on `{}` is not a string",
                    path.join(".")
                ));
            };
            if name.is_empty() {
                return Err(format!("x-mcp-header on `{}` is empty", path.join(".")));
            }
            if !name.bytes().all(is_tchar) {
                return Err(format!(
                    "x-mcp-header {name:?} on `{}` is not an HTTP token",
                    path.join(".")
                ));
            }
            let primitive = match prop.get("type") {
                Some(Value::String(t)) => matches!(t.as_str(), "string" | "integer" | "boolean"),
                Some(Value::Array(ts)) => {
                    !ts.is_empty()
                        && ts.iter().all(|t| {
                            matches!(t.as_str(), Some("string" | "integer" | "boolean" | "null"))
                        })
                        && ts.iter().any(|t| t.as_str() != Some("null"))
                }
                _ => false,
            };
            if !primitive {
                return Err(format!(
                    "x-mcp-header {name:?} on `{}` is not on a string, integer or boolean",
                    path.join(".")
                ));
            }
            out.push(ParamHeader {
                name: name.clone(),
                path: path.clone(),
            });
        }
        collect(prop, path, out)?;
        path.pop();
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The value at `path` in `arguments`, if present.
pub fn lookup<'a>(arguments: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(arguments, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_follow_the_spec_examples() {
        assert_eq!(encode_value("us-west1"), "us-west1");
        assert_eq!(encode_value("us west 1"), "us west 1");
        assert_eq!(encode_value(""), "");
        assert_eq!(
            encode_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(
            encode_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(encode_value("\tindented"), "=?base64?CWluZGVudGVk?=");
        assert_eq!(param_value(&json!(42)), Some("42".into()));
        assert_eq!(param_value(&json!(false)), Some("false".into()));
        assert_eq!(param_value(&json!(null)), None);
    }

    #[test]
    fn annotations_are_validated() {
        let ok = json!({"properties": {"region": {"type": "string", "x-mcp-header": "Region"},
            "nested": {"type": "object", "properties": {"id": {"type": "integer", "x-mcp-header": "Id"}}}}});
        let headers = param_headers(ok.as_object().unwrap()).unwrap();
        assert_eq!(headers.len(), 2);
        assert!(headers.iter().any(|h| h.path == ["nested", "id"]));
        let bad = [
            json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}),
            json!({"properties": {"a": {"type": "object", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "My Region"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "Région"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "R:P"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "X"}, "b": {"type": "string", "x-mcp-header": "x"}}}),
        ];
        for schema in bad {
            assert!(
                param_headers(schema.as_object().unwrap()).is_err(),
                "{schema}"
            );
        }
    }
}
