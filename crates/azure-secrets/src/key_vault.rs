//! [`KeyVaultStore`]: secrets from one Azure Key Vault, through the official
//! `azure_security_keyvault_secrets` client.
//!
//! - **Cache**: a value is kept for [`cache_ttl`](KeyVaultOptions::cache_ttl) (default 5 min)
//!   and then read again; [`refresh`](KeyVaultStore::refresh) reads it now (after a rotation),
//!   [`invalidate`](KeyVaultStore::invalidate) drops it. Versioned reads are immutable and
//!   kept for the same time.
//! - **Coalescing**: concurrent reads of one uncached secret make one request; the others
//!   wait for it.
//! - **Bounded**: every HTTP request has a timeout (default 10 s, [`AzureHttpClient`]); the
//!   SDK retries throttling (429 with `Retry-After`), 5xx and I/O errors up to
//!   [`max_retries`](KeyVaultOptions::max_retries) times (default 3, from 200 ms), and a whole
//!   read is cut at [`deadline`](KeyVaultOptions::deadline) (default 30 s).
//! - **Errors**: a missing secret is [`Error::is_not_found`], a disabled one or a missing
//!   permission [`Error::is_forbidden`], a token failure [`Error::is_credential`], everything
//!   else [`Error::is_transport`]; messages name the vault and the secret, never a value.
//! - The SDK's authentication: the first request goes without a token, the vault answers 401
//!   with its challenge (tenant and resource), and the client asks the credential for a token
//!   for that resource and retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, StatusCode};
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use tokio::time::Instant;

use crate::error::{Error, Kind};
use crate::secret::SecretValue;
use crate::store::{BoxFuture, SecretId, SecretStore};
use crate::transport::AzureHttpClient;

/// Settings of a [`KeyVaultStore`]; builder-style, defaults in the [module docs](self).
#[derive(Debug, Clone)]
pub struct KeyVaultOptions {
    cache_ttl: Duration,
    max_retries: u32,
    deadline: Duration,
    http: Option<AzureHttpClient>,
    verify_challenge_resource: bool,
}

impl Default for KeyVaultOptions {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(300),
            max_retries: 3,
            deadline: Duration::from_secs(30),
            http: None,
            verify_challenge_resource: true,
        }
    }
}

impl KeyVaultOptions {
    /// How long a value is served from memory before it is read again (default 5 min;
    /// zero turns the cache off).
    #[must_use]
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Retries of throttled (429), failed (5xx) or broken requests (default 3).
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The most time one read may take, retries included (default 30 s).
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The HTTP client (default: a new [`AzureHttpClient`]); pass one with redirects to reach
    /// a fake or a private endpoint.
    #[must_use]
    pub fn http(mut self, http: AzureHttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// Whether the authentication challenge's resource must match the vault's domain
    /// (default true, the SDK's check; turn off only for a test vault on another domain).
    #[must_use]
    pub fn verify_challenge_resource(mut self, verify: bool) -> Self {
        self.verify_challenge_resource = verify;
        self
    }
}

struct Cached {
    value: SecretValue,
    fetched: Instant,
}

/// Secrets from one Key Vault; see the [module docs](self). Cheap to share (`Arc`).
pub struct KeyVaultStore {
    vault_url: String,
    client: SecretClient,
    options: KeyVaultOptions,
    cache: Mutex<HashMap<SecretId, Cached>>,
    /// One lock per secret being read, so concurrent reads make one request.
    reading: Mutex<HashMap<SecretId, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for KeyVaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultStore")
            .field("vault_url", &self.vault_url)
            .field("cache_ttl", &self.options.cache_ttl)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyVaultStore {
    /// The vault at `vault_url` (`https://<name>.vault.azure.net` or a sovereign cloud's),
    /// authenticated by `credential`.
    pub fn new(
        vault_url: &str,
        credential: Arc<dyn TokenCredential>,
        options: KeyVaultOptions,
    ) -> Result<Self, Error> {
        let vault_url = vault_url.trim_end_matches('/').to_owned();
        if !vault_url.starts_with("https://") {
            return Err(Error::new(Kind::InvalidReference).with_context(format!(
                "vault URL `{vault_url}` must be https (use a redirecting AzureHttpClient for a \
                 loopback fake)"
            )));
        }
        let http = match &options.http {
            Some(http) => http.clone(),
            None => AzureHttpClient::new()?,
        };
        let retry = RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(200),
            max_retries: options.max_retries,
            max_total_elapsed: azure_core::time::Duration::try_from(options.deadline)
                .unwrap_or(azure_core::time::Duration::seconds(30)),
            max_delay: azure_core::time::Duration::seconds(10),
        });
        let client_options = ClientOptions {
            transport: Some(http.transport()),
            retry,
            ..ClientOptions::default()
        };
        let client = SecretClient::new(
            &vault_url,
            credential,
            Some(SecretClientOptions {
                client_options,
                verify_challenge_resource: Some(options.verify_challenge_resource),
                ..SecretClientOptions::default()
            }),
        )
        .map_err(|e| {
            Error::new(Kind::InvalidReference)
                .with_context(format!("vault URL `{vault_url}`"))
                .with_source(e)
        })?;
        Ok(Self {
            vault_url,
            client,
            options,
            cache: Mutex::default(),
            reading: Mutex::default(),
        })
    }

    /// The vault's URL.
    pub fn vault_url(&self) -> &str {
        &self.vault_url
    }

    /// Reads `id` from the vault now (bypassing and then updating the cache): after a
    /// rotation, the new current version.
    pub async fn refresh(&self, id: &SecretId) -> Result<SecretValue, Error> {
        let value = self.fetch(id).await?;
        self.remember(id, &value);
        Ok(value)
    }

    /// Drops every cached version of secret `name`.
    pub fn invalidate(&self, name: &str) {
        lock(&self.cache).retain(|id, _| id.name != name);
    }

    fn cached(&self, id: &SecretId) -> Option<SecretValue> {
        let cache = lock(&self.cache);
        let hit = cache.get(id)?;
        (hit.fetched.elapsed() < self.options.cache_ttl).then(|| hit.value.clone())
    }

    fn remember(&self, id: &SecretId, value: &SecretValue) {
        if self.options.cache_ttl > Duration::ZERO {
            lock(&self.cache).insert(
                id.clone(),
                Cached {
                    value: value.clone(),
                    fetched: Instant::now(),
                },
            );
        }
    }

    async fn read(&self, id: &SecretId) -> Result<SecretValue, Error> {
        if let Some(value) = self.cached(id) {
            return Ok(value);
        }
        let gate = lock(&self.reading).entry(id.clone()).or_default().clone();
        let _reading = gate.lock().await;
        // Another caller may have read it while this one waited.
        if let Some(value) = self.cached(id) {
            return Ok(value);
        }
        let result = self.fetch(id).await;
        if let Ok(value) = &result {
            self.remember(id, value);
        }
        {
            let mut reading = lock(&self.reading);
            // Only this caller and the map hold the gate: nobody waits on it.
            if Arc::strong_count(&gate) <= 2 {
                reading.remove(id);
            }
        }
        result
    }

    async fn fetch(&self, id: &SecretId) -> Result<SecretValue, Error> {
        let options = SecretClientGetSecretOptions {
            secret_version: id.version.clone(),
            ..SecretClientGetSecretOptions::default()
        };
        let call = async {
            let response = self
                .client
                .get_secret(&id.name, Some(options))
                .await
                .map_err(|e| self.error(id, e))?;
            let secret = response.into_model().map_err(|e| self.error(id, e))?;
            secret.value.map(SecretValue::new).ok_or_else(|| {
                Error::new(Kind::Transport).with_context(format!(
                    "{}: {id}: the vault's answer has no value",
                    self.vault_url
                ))
            })
        };
        match tokio::time::timeout(self.options.deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(Kind::Transport).with_context(format!(
                "{}: {id}: no answer within {} s",
                self.vault_url,
                self.options.deadline.as_secs()
            ))),
        }
    }

    fn error(&self, id: &SecretId, e: azure_core::Error) -> Error {
        use azure_core::error::ErrorKind as K;
        let at = format!("{}: {id}", self.vault_url);
        let kind = match e.kind() {
            K::HttpResponse { status, .. } => match *status {
                StatusCode::NotFound => Kind::NotFound,
                StatusCode::Forbidden => Kind::Forbidden,
                StatusCode::Unauthorized => Kind::Credential,
                _ => Kind::Transport,
            },
            K::Credential => Kind::Credential,
            _ => Kind::Transport,
        };
        let what = match kind {
            Kind::NotFound => "no such secret (or version) in the vault",
            Kind::Forbidden => "the vault refused (a disabled secret, or no `get` permission)",
            Kind::Credential => "no token the vault accepts",
            _ => "the vault could not be read",
        };
        Error::new(kind)
            .with_context(format!("{at}: {what}"))
            .with_source(e)
    }
}

impl SecretStore for KeyVaultStore {
    fn get<'a>(&'a self, id: &'a SecretId) -> BoxFuture<'a, Result<SecretValue, Error>> {
        Box::pin(self.read(id))
    }
}

/// A [`KeyVaultStore`] per vault, made on first use with one credential and one set of
/// options: the [`Vaults`](crate::Vaults) that [`resolve`](crate::resolve()) needs to read
/// references to any number of vaults.
pub struct KeyVaults {
    credential: Arc<dyn TokenCredential>,
    options: KeyVaultOptions,
    stores: Mutex<HashMap<String, Arc<KeyVaultStore>>>,
}

impl std::fmt::Debug for KeyVaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaults")
            .field("vaults", &lock(&self.stores).keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyVaults {
    /// Vault stores authenticated by `credential` (e.g. a [`CredentialChain`](crate::CredentialChain)).
    pub fn new(credential: Arc<dyn TokenCredential>, options: KeyVaultOptions) -> Self {
        Self {
            credential,
            options,
            stores: Mutex::default(),
        }
    }

    /// The store of `vault_url`, made on first use.
    pub fn store(&self, vault_url: &str) -> Result<Arc<KeyVaultStore>, Error> {
        let key = vault_url.trim_end_matches('/').to_owned();
        let mut stores = lock(&self.stores);
        if let Some(store) = stores.get(&key) {
            return Ok(store.clone());
        }
        let store = Arc::new(KeyVaultStore::new(
            &key,
            self.credential.clone(),
            self.options.clone(),
        )?);
        stores.insert(key, store.clone());
        Ok(store)
    }
}

impl crate::Vaults for KeyVaults {
    fn vault(&self, vault_url: &str) -> Result<Arc<dyn SecretStore>, Error> {
        Ok(self.store(vault_url)? as Arc<dyn SecretStore>)
    }
}
