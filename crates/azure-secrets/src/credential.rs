//! [`CredentialChain`]: the Azure credential chain that `azure_identity` 1.x no longer has
//! (`DefaultAzureCredential` was removed), built explicitly from the environment.
//!
//! The steps, in order, each present only when its environment applies:
//!
//! | step | when | credential |
//! |---|---|---|
//! | `workload_identity` | `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` | `WorkloadIdentityCredential` (AKS) |
//! | `app_service_managed_identity` | `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` | `ManagedIdentityCredential` (App Service, Functions) |
//! | `client_secret` | `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` | `ClientSecretCredential` |
//! | `imds_managed_identity` | always (unless [`imds`](ChainOptions::imds) is off) | `ManagedIdentityCredential` (VMs, IMDS) |
//! | `developer_tools` | [`developer_tools`](ChainOptions::developer_tools) on (default) | `DeveloperToolsCredential` (`az`, `azd`) |
//!
//! With [`managed_identity_only`](ChainOptions::managed_identity_only) (the configuration's
//! `use_managed_identity`) the chain is the managed-identity steps alone, with the
//! user-assigned identity's client id when one is configured. A sovereign cloud is chosen
//! with [`cloud`](ChainOptions::cloud) (or `AZURE_AUTHORITY_HOST`).
//!
//! The first step that gives a token is remembered and used from then on (as the other Azure
//! SDKs' default credentials do). Each step is logged by name when tried, chosen or failed —
//! never a token, secret or assertion. When no step gives a token the error
//! ([`Error::is_credential`]) lists every step tried and why it failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use azure_core::cloud::CloudConfiguration;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use crate::error::{Error, Kind};
use crate::transport::AzureHttpClient;

type EnvFn = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Settings of a [`CredentialChain`]; builder-style.
#[derive(Clone)]
pub struct ChainOptions {
    managed_identity_only: bool,
    user_assigned_client_id: Option<String>,
    cloud: Option<CloudConfiguration>,
    developer_tools: bool,
    imds: bool,
    http: Option<AzureHttpClient>,
    env: Arc<EnvFn>,
}

impl std::fmt::Debug for ChainOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainOptions")
            .field("managed_identity_only", &self.managed_identity_only)
            .field("user_assigned_client_id", &self.user_assigned_client_id)
            .field("cloud", &self.cloud)
            .field("developer_tools", &self.developer_tools)
            .field("imds", &self.imds)
            .finish_non_exhaustive()
    }
}

impl Default for ChainOptions {
    fn default() -> Self {
        Self {
            managed_identity_only: false,
            user_assigned_client_id: None,
            cloud: None,
            developer_tools: true,
            imds: true,
            http: None,
            env: Arc::new(|name| std::env::var(name).ok()),
        }
    }
}

impl ChainOptions {
    /// Only the managed-identity steps (the configuration's `use_managed_identity`).
    #[must_use]
    pub fn managed_identity_only(mut self, only: bool) -> Self {
        self.managed_identity_only = only;
        self
    }

    /// A user-assigned managed identity's client id (default: the system-assigned identity).
    #[must_use]
    pub fn user_assigned_client_id(mut self, client_id: Option<String>) -> Self {
        self.user_assigned_client_id = client_id.filter(|s| !s.is_empty());
        self
    }

    /// The cloud: `AzurePublic` (default), `AzureChina`, `AzureGovernment` or a custom one.
    #[must_use]
    pub fn cloud(mut self, cloud: CloudConfiguration) -> Self {
        self.cloud = Some(cloud);
        self
    }

    /// Whether the developer-tools step (`az`, `azd` logins) ends the chain (default on).
    #[must_use]
    pub fn developer_tools(mut self, on: bool) -> Self {
        self.developer_tools = on;
        self
    }

    /// Whether the IMDS managed-identity step is in the chain (default on). Off outside Azure
    /// to save its probe timeout.
    #[must_use]
    pub fn imds(mut self, on: bool) -> Self {
        self.imds = on;
        self
    }

    /// The HTTP client of every step (default a new [`AzureHttpClient`]).
    #[must_use]
    pub fn http(mut self, http: AzureHttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// Where the chain reads its environment (default the process's; for tests). The
    /// App Service managed-identity credential itself reads `IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER` from the process environment.
    #[must_use]
    pub fn env(mut self, env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Arc::new(env);
        self
    }
}

/// One step: its stable name and its credential.
struct Step {
    name: &'static str,
    credential: Arc<dyn TokenCredential>,
}

/// The credential chain; see the [module docs](self). Implements
/// [`TokenCredential`], so it plugs into any Azure SDK client.
pub struct CredentialChain {
    steps: Vec<Step>,
    /// The step that gave the first token (`usize::MAX` until then).
    chosen: AtomicUsize,
}

impl std::fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialChain")
            .field("steps", &self.step_names())
            .field("chosen", &self.chosen())
            .finish()
    }
}

const NONE: usize = usize::MAX;

impl CredentialChain {
    /// The chain for this environment (see the [module docs](self)). Fails when a step
    /// whose environment is present is misconfigured (e.g. an invalid tenant id), naming the
    /// step and the variable; when no step applies at all.
    pub fn new(options: ChainOptions) -> Result<Self, Error> {
        let env = |name: &str| (options.env)(name).filter(|v| !v.is_empty());
        let http = match &options.http {
            Some(h) => h.clone(),
            None => AzureHttpClient::new()?,
        };
        let client_options = || ClientOptions {
            transport: Some(http.transport()),
            cloud: options.cloud.clone().map(Arc::new),
            ..ClientOptions::default()
        };
        let failed = |step: &str, e: azure_core::Error| {
            Error::new(Kind::Credential)
                .with_context(format!("credential step `{step}` is misconfigured"))
                .with_source(e)
        };
        let mut steps = Vec::new();
        let tenant = env("AZURE_TENANT_ID");
        let client = options
            .user_assigned_client_id
            .clone()
            .or_else(|| env("AZURE_CLIENT_ID"));

        if !options.managed_identity_only
            && let (Some(file), Some(tenant), Some(client)) =
                (env("AZURE_FEDERATED_TOKEN_FILE"), &tenant, &client)
        {
            let credential =
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: client_options(),
                    },
                    client_id: Some(client.clone()),
                    tenant_id: Some(tenant.clone()),
                    token_file_path: Some(file.into()),
                }))
                .map_err(|e| failed("workload_identity", e))?;
            steps.push(Step {
                name: "workload_identity",
                credential,
            });
        }
        let managed = |name: &'static str| -> Result<Step, Error> {
            let credential =
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: options
                        .user_assigned_client_id
                        .clone()
                        .map(UserAssignedId::ClientId),
                    client_options: client_options(),
                }))
                .map_err(|e| failed(name, e))?;
            Ok(Step { name, credential })
        };
        let app_service = env("IDENTITY_ENDPOINT").is_some() && env("IDENTITY_HEADER").is_some();
        if app_service {
            steps.push(managed("app_service_managed_identity")?);
        }
        if !options.managed_identity_only
            && let (Some(secret), Some(tenant), Some(client)) =
                (env("AZURE_CLIENT_SECRET"), &tenant, &client)
        {
            let credential = ClientSecretCredential::new(
                tenant,
                client.clone(),
                Secret::new(secret),
                Some(ClientSecretCredentialOptions {
                    client_options: client_options(),
                }),
            )
            .map_err(|e| failed("client_secret", e))?;
            steps.push(Step {
                name: "client_secret",
                credential,
            });
        }
        if options.imds && !app_service {
            steps.push(managed("imds_managed_identity")?);
        }
        if options.developer_tools && !options.managed_identity_only {
            let credential =
                DeveloperToolsCredential::new(None).map_err(|e| failed("developer_tools", e))?;
            steps.push(Step {
                name: "developer_tools",
                credential,
            });
        }
        if steps.is_empty() {
            return Err(Error::new(Kind::Credential).with_context(
                "no Azure credential applies: set AZURE_FEDERATED_TOKEN_FILE (workload identity), \
                 run where IDENTITY_ENDPOINT/IDENTITY_HEADER are set (App Service), set \
                 AZURE_CLIENT_SECRET with AZURE_TENANT_ID and AZURE_CLIENT_ID, or allow IMDS or \
                 developer tools",
            ));
        }
        let names: Vec<&str> = steps.iter().map(|s| s.name).collect();
        tracing::info!(
            name: "azure_secrets.credential.chain",
            target: "azure_secrets::credential",
            steps = %names.join(" -> "),
            "azure credential chain built"
        );
        Ok(Self {
            steps,
            chosen: AtomicUsize::new(NONE),
        })
    }

    /// The steps, in order.
    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.name).collect()
    }

    /// The step that gave the first token, once one has.
    pub fn chosen(&self) -> Option<&'static str> {
        self.steps
            .get(self.chosen.load(Ordering::Relaxed))
            .map(|s| s.name)
    }
}

#[async_trait::async_trait]
impl TokenCredential for CredentialChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Some(step) = self.steps.get(self.chosen.load(Ordering::Relaxed)) {
            return step.credential.get_token(scopes, options).await;
        }
        let mut failures = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            tracing::debug!(
                name: "azure_secrets.credential.trying",
                target: "azure_secrets::credential",
                step = step.name,
                "trying credential step"
            );
            match step.credential.get_token(scopes, options.clone()).await {
                Ok(token) => {
                    self.chosen.store(i, Ordering::Relaxed);
                    tracing::info!(
                        name: "azure_secrets.credential.chosen",
                        target: "azure_secrets::credential",
                        step = step.name,
                        "azure credential step gave a token; using it from now on"
                    );
                    return Ok(token);
                }
                Err(e) => {
                    tracing::info!(
                        name: "azure_secrets.credential.failed",
                        target: "azure_secrets::credential",
                        step = step.name,
                        error = %e,
                        "azure credential step failed; trying the next"
                    );
                    failures.push(format!("{}: {e}", step.name));
                }
            }
        }
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!(
                "no credential in the chain gave a token ({})",
                failures.join("; ")
            ),
        ))
    }
}
