//! The [`SecretStore`] seam and the stores that need no Azure: the process environment, a
//! JSON file (for development), and a chain that asks several in order.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use crate::error::{Error, Kind};
use crate::secret::SecretValue;

/// A boxed, sendable future (what [`SecretStore::get`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which secret: a name and, optionally, a version (`None`: the current one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretId {
    /// The secret's name.
    pub name: String,
    /// A version; `None` means the current one.
    pub version: Option<String>,
}

impl SecretId {
    /// The current version of `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: None,
        }
    }

    /// A given version of `name`.
    pub fn with_version(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: Some(version.into()),
        }
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{} (version {v})", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Where secrets come from. One async method; object-safe (`Arc<dyn SecretStore>`).
///
/// Errors: [`Error::is_not_found`] when the store has no such secret (a [`ChainStore`] then
/// asks the next store), [`Error::is_forbidden`], [`Error::is_credential`],
/// [`Error::is_transport`] otherwise. Errors and `Debug` never contain values.
///
/// ```
/// use azure_secrets::{BoxFuture, Error, SecretId, SecretStore, SecretValue};
///
/// /// A store with one secret, as a test double.
/// #[derive(Debug)]
/// struct One(&'static str, SecretValue);
///
/// impl SecretStore for One {
///     fn get<'a>(&'a self, id: &'a SecretId) -> BoxFuture<'a, Result<SecretValue, Error>> {
///         Box::pin(async move {
///             if id.name == self.0 { Ok(self.1.clone()) } else { Err(Error::not_found(id, "one")) }
///         })
///     }
/// }
/// ```
pub trait SecretStore: fmt::Debug + Send + Sync {
    /// The secret `id`.
    fn get<'a>(&'a self, id: &'a SecretId) -> BoxFuture<'a, Result<SecretValue, Error>>;
}

impl<S: SecretStore + ?Sized> SecretStore for Arc<S> {
    fn get<'a>(&'a self, id: &'a SecretId) -> BoxFuture<'a, Result<SecretValue, Error>> {
        (**self).get(id)
    }
}

fn no_versions(id: &SecretId, store: &str) -> Error {
    Error::new(Kind::NotFound).with_context(format!(
        "{id}: the {store} has no versions; only a Key Vault can give a secret's version"
    ))
}

type EnvFn = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Secrets from environment variables: `name` as it is, else upper-cased with `-` and `.`
/// turned into `_` (`SCHEDULER-API-KEY` → `SCHEDULER_API_KEY`). Empty values count as
/// absent.
#[derive(Clone)]
pub struct EnvStore {
    env: Arc<EnvFn>,
}

impl fmt::Debug for EnvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnvStore")
    }
}

impl Default for EnvStore {
    fn default() -> Self {
        Self::new()
    }
}

impl EnvStore {
    /// The process environment.
    pub fn new() -> Self {
        Self::with(|name| std::env::var(name).ok())
    }

    /// Variables from `env` (for tests).
    pub fn with(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self { env: Arc::new(env) }
    }

    /// The variable names tried for `name`, in order.
    pub fn variables(name: &str) -> Vec<String> {
        let mapped: String = name
            .chars()
            .map(|c| match c {
                '-' | '.' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect();
        if mapped == name {
            vec![mapped]
        } else {
            vec![name.to_owned(), mapped]
        }
    }
}

impl SecretStore for EnvStore {
    fn get<'a>(&'a self, id: &'a SecretId) -> BoxFuture<'a, Result<SecretValue, Error>> {
        Box::pin(async move {
            if id.version.is_some() {
                return Err(no_versions(id, "environment"));
            }
            for var in Self::variables(&id.name) {
                if let Some(value) = (self.env)(&var).filter(|v| !v.is_empty()) {
                    return Ok(SecretValue::new(value));
                }
            }
            Err(Error::not_found(
                id,
                &format!(
                    "environment (tried {})",
                    Self::variables(&id.name).join(", ")
                ),
            ))
        })
    }
}

/// Secrets from a JSON file `{"name": "value", ...}`, read when the store is opened (and on
/// [`reload`](Self::reload)). For development; keep such files out of version control.
pub struct FileStore {
    path: PathBuf,
    values: std::sync::RwLock<BTreeMap<String, SecretValue>>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish()
    }
}

impl FileStore {
    /// Opens `path`. Fails, naming the file, when it cannot be read or is not a JSON object
    /// of strings (the message names the offending key, never a value).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let values = read_file(&path)?;
        Ok(Self {
            path,
            values: std::sync::RwLock::new(values),
        })
    }

    /// Reads the file again; on failure the previous values stay.
    pub fn reload(&self) -> Result<(), Error> {
        let values = read_file(&self.path)?;
        *self
            .values
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = values;
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, SecretValue>, Error> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(Kind::Transport)
            .with_context(format!("cannot read secrets file {shown}"))
            .with_source(e)
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        // serde_json's message has a line and column, not the text.
        Error::new(Kind::InvalidReference).with_context(format!(
            "secrets file {shown} is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err(Error::new(Kind::InvalidReference)
            .with_context(format!("secrets file {shown} must hold a JSON object")));
    };
    let mut values = BTreeMap::new();
    for (key, value) in map {
        match value {
            serde_json::Value::String(s) => {
                values.insert(key, SecretValue::new(s));
            }
            _ => {
                return Err(Error::new(Kind::InvalidReference)
                    .with_context(format!("secrets file {shown}: `{key}` must be a string")));
            }
        }
    }
    Ok(values)
}

impl SecretStore for FileStore {
    fn get<'a>(&'a self, id: &'a SecretId) -> BoxFuture<'a, Result<SecretValue, Error>> {
        Box::pin(async move {
            if id.version.is_some() {
                return Err(no_versions(id, "secrets file"));
            }
            let values = self
                .values
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            values.get(&id.name).cloned().ok_or_else(|| {
                Error::not_found(id, &format!("secrets file {}", self.path.display()))
            })
        })
    }
}

/// Asks several stores in order: the first that has the secret answers; a store that does
/// not have it ([`Error::is_not_found`]) passes to the next; any other error ends the search
/// (a forbidden or unreachable vault is not silently skipped). When none has it, the error
/// lists every store asked.
#[derive(Debug, Clone, Default)]
pub struct ChainStore {
    stores: Vec<Arc<dyn SecretStore>>,
}

impl ChainStore {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `store` (asked after the ones before it).
    #[must_use]
    pub fn then(mut self, store: impl SecretStore + 'static) -> Self {
        self.stores.push(Arc::new(store));
        self
    }
}

impl SecretStore for ChainStore {
    fn get<'a>(&'a self, id: &'a SecretId) -> BoxFuture<'a, Result<SecretValue, Error>> {
        Box::pin(async move {
            let mut misses = Vec::new();
            for store in &self.stores {
                match store.get(id).await {
                    Ok(value) => return Ok(value),
                    Err(e) if e.is_not_found() => misses.push(e.to_string()),
                    Err(e) => return Err(e),
                }
            }
            Err(
                Error::new(Kind::NotFound).with_context(if misses.is_empty() {
                    format!("{id}: the chain has no stores")
                } else {
                    format!("{id}: no store has it ({})", misses.join("; "))
                }),
            )
        })
    }
}
