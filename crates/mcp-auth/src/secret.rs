//! [`Secret`]: a string that never shows itself.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroize;

/// A secret string (an API key, a client secret, an access or refresh token).
///
/// - `Debug` prints `Secret([redacted])`; there is no `Display`. The value is reachable only
///   through [`expose_secret`](Self::expose_secret), so every use is greppable.
/// - Cloning shares one allocation (a reference count), which keeps the cached-token hot path
///   cheap; the bytes are overwritten with zeros when the last clone is dropped.
/// - Equality runs in time independent of where the values differ.
#[derive(Clone)]
pub struct Secret(Arc<Inner>);

struct Inner(Box<str>);

impl Drop for Inner {
    fn drop(&mut self) {
        // `str` has no safe mutable byte view; `Box<str>` → `Box<[u8]>` is the same allocation.
        let mut bytes: Box<[u8]> = std::mem::take(&mut self.0).into_boxed_bytes();
        bytes.zeroize();
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::new(Inner(value.into().into_boxed_str())))
    }

    /// The secret value. Call this only where the value goes onto the wire.
    pub fn expose_secret(&self) -> &str {
        &self.0.0
    }

    /// True if `self` and `other` are clones of one value (no string comparison).
    pub fn ptr_eq(&self, other: &Secret) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// True if the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (
            self.expose_secret().as_bytes(),
            other.expose_secret().as_bytes(),
        );
        // Length is not secret; the contents are compared without an early exit.
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_nothing_of_the_value() {
        let s = Secret::new("canary-1f9a");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(
            format!("{:#?}", Some(&s)),
            "Some(\n    Secret([redacted]),\n)"
        );
        assert_eq!(s.expose_secret(), "canary-1f9a");
    }

    #[test]
    fn clones_share_and_compare_equal() {
        let a = Secret::new("abc");
        let b = a.clone();
        assert!(a.ptr_eq(&b));
        assert_eq!(a, Secret::new("abc"));
        assert_ne!(a, Secret::new("abd"));
        assert_ne!(a, Secret::new("ab"));
    }
}
