//! Secrets from Azure Key Vault: a `SecretStore` seam, a Key Vault store, resolution of
//! `@Microsoft.KeyVault(...)` references in configuration, and an Azure credential chain
//! (managed identity, workload identity, developer tools).
//!
//! # Status
//!
//! Here: [`SecretValue`], the [`SecretStore`] seam with [`EnvStore`], [`FileStore`] and
//! [`ChainStore`], the [`reference`] parser and [`resolve`] for whole configuration trees.
//! The Key Vault store (over `azure_security_keyvault_secrets`) and the credential chain are
//! next.
//!
//! # Architecture invariants
//!
//! - Knows nothing of MCP, scheduling or telemetry backends.
//! - Secret values never reach `Debug`, `Display`, errors, logs, spans or metrics.
//!
//! # Example
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
