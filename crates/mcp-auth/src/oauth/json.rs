//! Strict, bounded reading of the small JSON objects OAuth servers send. Errors name the
//! document and the field, never a value (a value may be a token).

use serde_json::{Map, Value};

use crate::Error;
use crate::error::Kind;

/// The members of one JSON object, taken out field by field.
pub(crate) struct Fields {
    map: Map<String, Value>,
    doc: &'static str,
    kind: Kind,
}

impl Fields {
    /// Parses `bytes` as one JSON object. `doc` names the document in errors.
    pub(crate) fn parse(bytes: &[u8], doc: &'static str, kind: Kind) -> Result<Self, Error> {
        // Parse to a `Value` first: syntax errors carry only a position, while typed
        // deserialization errors would quote the offending value.
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::new(kind).with_context(format!(
                "{doc} is not valid JSON ({} at line {} column {})",
                match e.classify() {
                    serde_json::error::Category::Eof => "truncated",
                    serde_json::error::Category::Syntax => "syntax error",
                    serde_json::error::Category::Data => "invalid data",
                    serde_json::error::Category::Io => "read error",
                },
                e.line(),
                e.column()
            ))
        })?;
        match value {
            Value::Object(map) => Ok(Self { map, doc, kind }),
            other => Err(Error::new(kind).with_context(format!(
                "{doc} is a JSON {} where an object was expected",
                type_name(&other)
            ))),
        }
    }

    fn wrong(&self, name: &str, expected: &str) -> Error {
        Error::new(self.kind).with_context(format!("{}: `{name}` must be {expected}", self.doc))
    }

    /// An error about field `name` (`why` says what is wrong with it).
    pub(crate) fn invalid(&self, name: &str, why: &str) -> Error {
        Error::new(self.kind).with_context(format!("{}: `{name}` {why}", self.doc))
    }

    /// Takes a field; `null` counts as absent.
    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// An optional string.
    pub(crate) fn string(&mut self, name: &str) -> Result<Option<String>, Error> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(name, "a string")),
        }
    }

    /// A required, non-empty string.
    pub(crate) fn required_string(&mut self, name: &str) -> Result<String, Error> {
        match self.string(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(self.invalid(name, "is empty")),
            None => Err(self.invalid(name, "is missing")),
        }
    }

    /// An optional array of strings.
    pub(crate) fn string_list(&mut self, name: &str) -> Result<Option<Vec<String>>, Error> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err(self.wrong(name, "an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.wrong(name, "an array of strings")),
        }
    }

    /// An optional boolean.
    pub(crate) fn boolean(&mut self, name: &str) -> Result<Option<bool>, Error> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(self.wrong(name, "true or false")),
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Text from a server, made safe for an error message: control characters dropped, at most
/// `max` characters.
pub(crate) fn printable(text: &str, max: usize) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(max).collect();
    if text.chars().filter(|c| !c.is_control()).nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let mut f = Fields::parse(
            br#"{"a": "s3cr3t", "b": 5, "c": [1], "d": null}"#,
            "doc",
            Kind::Discovery,
        )
        .expect("object");
        let err = f.string_list("a").expect_err("not a list").to_string();
        assert!(err.contains("`a`") && !err.contains("s3cr3t"), "{err}");
        assert!(f.string("b").is_err());
        assert!(f.string_list("c").is_err());
        assert_eq!(f.string("d").expect("null is absent"), None);
        let err = Fields::parse(br#""s3cr3t""#, "doc", Kind::Discovery)
            .err()
            .expect("not an object")
            .to_string();
        assert!(!err.contains("s3cr3t") && err.contains("string"), "{err}");
        let err = Fields::parse(b"{\"a\": s3cr3t}", "doc", Kind::Discovery)
            .err()
            .expect("syntax")
            .to_string();
        assert!(!err.contains("s3cr3t") && err.contains("column"), "{err}");
    }

    #[test]
    fn printable_strips_controls_and_truncates() {
        assert_eq!(printable("a\nb\u{7}c", 10), "abc");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
