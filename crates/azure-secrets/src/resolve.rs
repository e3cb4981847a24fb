//! Resolving every Key Vault reference in a JSON configuration tree.
//!
//! Each string value that is a [reference](mod@crate::reference) is fetched from its vault and
//! replaced by the secret's value. All or nothing: the tree is changed only when every
//! reference resolved, so a configuration is never used half-resolved. Errors name the
//! setting's path (`mcp.mcp_servers[0].transport.auth.api_key`) and the reference, never a
//! value. A reference that appears several times is fetched once.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Kind};
use crate::reference::{self, KeyVaultReference, PUBLIC_VAULT_SUFFIX};
use crate::secret::SecretValue;
use crate::store::{SecretId, SecretStore};

/// The store of each vault: given a vault URL (`https://<host>`), the store that reads it
/// (a Key Vault store in production, a fake's in tests).
pub trait Vaults: Send + Sync {
    /// The store for `vault_url`.
    fn vault(&self, vault_url: &str) -> Result<Arc<dyn SecretStore>, Error>;
}

impl<F> Vaults for F
where
    F: Fn(&str) -> Result<Arc<dyn SecretStore>, Error> + Send + Sync,
{
    fn vault(&self, vault_url: &str) -> Result<Arc<dyn SecretStore>, Error> {
        self(vault_url)
    }
}

/// How references resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOptions {
    /// The vault of references that name none (the configuration's `key_vault_name`): a
    /// vault name or an `https://` vault URL.
    pub default_vault: Option<String>,
    /// The cloud's vault DNS suffix (default [`PUBLIC_VAULT_SUFFIX`]).
    pub vault_suffix: String,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        Self {
            default_vault: None,
            vault_suffix: PUBLIC_VAULT_SUFFIX.to_owned(),
        }
    }
}

/// What [`resolve`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resolved {
    /// The paths whose values came from a vault, in tree order.
    pub paths: Vec<String>,
    /// Distinct secrets fetched.
    pub fetched: usize,
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} setting(s) from {} secret(s)",
            self.paths.len(),
            self.fetched
        )
    }
}

/// Every reference in `tree`, with its path.
pub fn references(tree: &Value) -> Result<Vec<(String, KeyVaultReference)>, Error> {
    let mut found = Vec::new();
    let mut errors = None;
    walk(
        tree,
        String::new(),
        &mut |path, text| match reference::parse(text) {
            Ok(Some(r)) => found.push((path.to_owned(), r)),
            Ok(None) => {}
            Err(e) => {
                if errors.is_none() {
                    errors = Some(
                        Error::new(Kind::InvalidReference)
                            .with_context(format!("{}: {e}", shown(path))),
                    );
                }
            }
        },
    );
    match errors {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// Resolves every reference in `tree` through `vaults` (see the [module docs](self)).
pub async fn resolve(
    tree: &mut Value,
    vaults: &dyn Vaults,
    options: &ResolveOptions,
) -> Result<Resolved, Error> {
    let refs = references(tree)?;
    let mut fetched: HashMap<(String, SecretId), SecretValue> = HashMap::new();
    let mut plan = Vec::with_capacity(refs.len());
    for (path, r) in refs {
        let label = format!("{} (`{r}`)", shown(&path));
        let at = |e: Error| Error::new(e.kind()).with_context(format!("{label}: {e}"));
        let url = r
            .vault_url(options.default_vault.as_deref(), &options.vault_suffix)
            .map_err(at)?;
        let id = SecretId {
            name: r.name.clone(),
            version: r.version.clone(),
        };
        let key = (url, id);
        if !fetched.contains_key(&key) {
            let store = vaults.vault(&key.0).map_err(at)?;
            let value = store.get(&key.1).await.map_err(at)?;
            fetched.insert(key.clone(), value);
        }
        plan.push((path, key));
    }
    // Every reference resolved: now change the tree.
    let mut done = Resolved {
        fetched: fetched.len(),
        ..Resolved::default()
    };
    for (path, key) in plan {
        if let (Some(slot), Some(value)) = (pointer_mut(tree, &path), fetched.get(&key)) {
            *slot = Value::String(value.expose().to_owned());
            done.paths.push(shown(&path));
        }
    }
    Ok(done)
}

fn shown(path: &str) -> String {
    if path.is_empty() {
        "(the root)".to_owned()
    } else {
        path.to_owned()
    }
}

/// Calls `f(path, text)` for every string in `value`; paths look like `a.b[0].c`.
fn walk(value: &Value, path: String, f: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(s) => f(&path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{path}[{i}]"), f);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(v, child, f);
            }
        }
        _ => {}
    }
}

/// The value at a path made by [`walk`]. Keys containing `.` or `[` are found by trying the
/// object keys in order (paths are only ever ones `walk` produced from this tree).
fn pointer_mut<'a>(mut value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut rest = path;
    while !rest.is_empty() {
        match value {
            Value::Array(items) => {
                let inner = rest.strip_prefix('[')?;
                let (index, after) = inner.split_once(']')?;
                let i: usize = index.parse().ok()?;
                value = items.get_mut(i)?;
                rest = after.strip_prefix('.').unwrap_or(after);
                if rest.starts_with('[') {
                    continue;
                }
            }
            Value::Object(map) => {
                // The longest key that the path continues with, followed by an end, `.` or `[`.
                let key = map
                    .keys()
                    .filter(|k| {
                        rest.starts_with(k.as_str())
                            && matches!(rest.as_bytes().get(k.len()), None | Some(b'.' | b'['))
                    })
                    .max_by_key(|k| k.len())?
                    .clone();
                rest = &rest[key.len()..];
                if let Some(after) = rest.strip_prefix('.') {
                    rest = after;
                }
                value = map.get_mut(&key)?;
            }
            _ => return None,
        }
    }
    Some(value)
}
