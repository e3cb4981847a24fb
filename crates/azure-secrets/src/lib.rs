//! Secrets from Azure Key Vault: a `SecretStore` seam, a Key Vault store, resolution of
//! `@Microsoft.KeyVault(...)` references in configuration, and an Azure credential chain
//! (managed identity, workload identity, developer tools).
//!
//! # Status
//!
//! The store, the reference resolver and the credential chain land with the azure-secrets
//! issue. Today the crate exposes only its [`Error`] type.
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

mod error;

pub use error::Error;
