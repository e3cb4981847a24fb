//! [`SecretValue`]: a secret's value, kept out of `Debug`, `Display`, logs and errors.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

/// A secret's value. `Debug` prints `SecretValue([redacted])`; there is no `Display`; the
/// bytes are wiped when the last clone is dropped. Read it with [`expose`](Self::expose) at
/// the point of use only.
///
/// ```
/// use azure_secrets::SecretValue;
///
/// let key = SecretValue::new("s3cr3t".to_owned());
/// assert_eq!(format!("{key:?}"), "SecretValue([redacted])");
/// assert_eq!(key.expose(), "s3cr3t");
/// ```
#[derive(Clone)]
pub struct SecretValue(Arc<Zeroizing<String>>);

impl SecretValue {
    /// Wraps `value`.
    pub fn new(value: String) -> Self {
        Self(Arc::new(Zeroizing::new(value)))
    }

    /// The value. Do not log it, put it in an error, or keep copies longer than needed.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

impl PartialEq for SecretValue {
    /// Compares in time independent of where the values first differ.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for SecretValue {}
