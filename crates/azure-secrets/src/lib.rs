//! Secrets from Azure Key Vault: a `SecretStore` seam, a Key Vault store, resolution of
//! `@Microsoft.KeyVault(...)` references in configuration, and an Azure credential chain
//! (`azure_identity` 1.x has no `DefaultAzureCredential`).
//!
//! # What is here
//!
//! - [`SecretValue`]: values that never reach `Debug`, errors or logs, wiped on drop.
//! - [`SecretStore`] (one async method) and its stores: [`KeyVaultStore`] (the official
//!   `azure_security_keyvault_secrets` client; TTL cache, refresh after rotation, coalesced
//!   reads, bounded retries and deadline), [`EnvStore`], [`FileStore`] (development) and
//!   [`ChainStore`].
//! - [`CredentialChain`]: workload identity → App Service managed identity → client secret →
//!   IMDS managed identity → developer tools, chosen from the environment, each step logged
//!   by name; managed identity only with a user-assigned client id; sovereign clouds.
//! - [`reference`](mod@reference): `@Microsoft.KeyVault(SecretUri=...)` and
//!   `@Microsoft.KeyVault(VaultName=...;SecretName=...[;SecretVersion=...])`, and [`resolve()`]:
//!   every reference in a JSON configuration tree, all or nothing, errors naming the
//!   setting's path and the reference.
//! - [`AzureHttpClient`]: the SDK's HTTP client on hyper-util and rustls (ring), with a
//!   timeout per request and origin redirects (loopback fakes, private endpoints).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use azure_secrets::{ChainOptions, CredentialChain, KeyVaultOptions, KeyVaults, ResolveOptions};
//!
//! # async fn run() -> Result<(), azure_secrets::Error> {
//! let mut config: serde_json::Value = serde_json::from_str(r#"{
//!     "auth": { "api_key": "@Microsoft.KeyVault(VaultName=kv-prod;SecretName=SCHEDULER-API-KEY)" }
//! }"#).expect("JSON");
//! let credential = Arc::new(CredentialChain::new(ChainOptions::default())?);
//! let vaults = KeyVaults::new(credential, KeyVaultOptions::default());
//! let done = azure_secrets::resolve(&mut config, &vaults, &ResolveOptions::default()).await?;
//! println!("{done}"); // "1 setting(s) from 1 secret(s)": never the values
//! # Ok(())
//! # }
//! ```
//!
//! # Architecture invariants
//!
//! - Knows nothing of MCP, scheduling or telemetry backends.
//! - Secret values never reach `Debug`, `Display`, errors, logs, spans or metrics.
//! - No packet to 169.254.169.254 from tests: IMDS is reached through a redirecting
//!   [`AzureHttpClient`].
//!
//! ```
//! fn is_operator_error(err: &azure_secrets::Error) -> bool {
//!     err.is_invalid_reference() || err.is_not_found() || err.is_forbidden()
//! }
//! # let _ = is_operator_error;
//! ```

pub mod credential;
mod error;
pub mod key_vault;
pub mod reference;
pub mod resolve;
mod secret;
mod store;
pub mod transport;

pub use credential::{ChainOptions, CredentialChain};
pub use error::Error;
pub use key_vault::{KeyVaultOptions, KeyVaultStore, KeyVaults};
pub use reference::KeyVaultReference;
pub use resolve::{ResolveOptions, Resolved, Vaults, resolve};
pub use secret::SecretValue;
pub use store::{BoxFuture, ChainStore, EnvStore, FileStore, SecretId, SecretStore};
pub use transport::AzureHttpClient;
