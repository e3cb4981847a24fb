//! The Key Vault store and every credential path, end to end through the official Azure SDK
//! (`azure_security_keyvault_secrets`, `azure_identity`) against testkit's loopback fakes of
//! Key Vault, the managed-identity endpoints (App Service and IMDS) and Microsoft Entra. The
//! SDK's traffic reaches the fakes through `AzureHttpClient`'s redirects: the vault stays
//! `https://kv-test.vault.azure.net` to the SDK (its challenge checks pass), IMDS stays
//! `http://169.254.169.254` — and no packet goes to either.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_secrets::{
    AzureHttpClient, ChainOptions, CredentialChain, KeyVaultOptions, KeyVaultStore, KeyVaults,
    ResolveOptions, SecretId, SecretStore, resolve,
};
use testkit::azure::{FakeEntra, FakeKeyVault, FakeManagedIdentity};

const VAULT: &str = "https://kv-test.vault.azure.net";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CANARY: &str = "canary-3d1c0b7e-vault-value";

struct Azure {
    vault: FakeKeyVault,
    imds: FakeManagedIdentity,
    entra: FakeEntra,
}

impl Azure {
    async fn start() -> Self {
        Self {
            vault: FakeKeyVault::start().await.unwrap(),
            imds: FakeManagedIdentity::imds().await.unwrap(),
            entra: FakeEntra::start().await.unwrap(),
        }
    }

    fn http(&self) -> AzureHttpClient {
        AzureHttpClient::new()
            .unwrap()
            .timeout(Duration::from_secs(5))
            .redirect(VAULT, &self.vault.base_url())
            .redirect(
                "http://169.254.169.254",
                &format!("http://{}", self.imds.addr()),
            )
            .redirect("https://login.microsoftonline.com", &self.entra.authority())
    }

    /// Like [`http`](Self::http), but the vault is a loopback port nothing listens on.
    fn http_to_a_dead_vault(&self) -> AzureHttpClient {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        AzureHttpClient::new()
            .unwrap()
            .redirect(VAULT, &format!("http://{closed}"))
            .redirect(
                "http://169.254.169.254",
                &format!("http://{}", self.imds.addr()),
            )
    }

    /// A chain from `env` only (no developer tools), over the redirecting client.
    fn chain(&self, env: &[(&str, &str)]) -> Arc<CredentialChain> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Arc::new(
            CredentialChain::new(
                ChainOptions::default()
                    .developer_tools(false)
                    .http(self.http())
                    .env(move |k| env.get(k).cloned()),
            )
            .unwrap(),
        )
    }

    fn store(&self, credential: Arc<CredentialChain>, options: KeyVaultOptions) -> KeyVaultStore {
        KeyVaultStore::new(VAULT, credential, options.http(self.http())).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_read_through_the_challenge_with_an_imds_token() {
    let azure = Azure::start().await;
    azure.vault.set_secret("SCHEDULER-API-KEY", CANARY);
    let chain = azure.chain(&[]);
    assert_eq!(chain.step_names(), ["imds_managed_identity"]);
    let store = azure.store(chain.clone(), KeyVaultOptions::default());
    let value = store
        .get(&SecretId::new("SCHEDULER-API-KEY"))
        .await
        .unwrap();
    assert_eq!(value.expose(), CANARY);
    assert_eq!(chain.chosen(), Some("imds_managed_identity"));
    // The SDK asked IMDS for the vault's resource, with the Metadata header.
    let issued = azure.imds.issued();
    assert_eq!(issued.len(), 1);
    assert!(
        issued[0].resource.starts_with("https://vault.azure.net"),
        "{issued:?}"
    );
    assert!(azure.imds.requests().iter().all(|r| r.metadata_header));
    // First without a token (the challenge), then with it.
    let requests = azure.vault.requests();
    assert!(!requests[0].had_bearer && requests.last().unwrap().had_bearer);
    // No value in Debug output.
    assert!(!format!("{value:?} {store:?} {chain:?}").contains(CANARY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_rotation_refresh_and_the_cache() {
    let azure = Azure::start().await;
    let v1 = azure.vault.set_secret("api-key", "first");
    let store = azure.store(azure.chain(&[]), KeyVaultOptions::default());
    let id = SecretId::new("api-key");
    assert_eq!(store.get(&id).await.unwrap().expose(), "first");
    azure.vault.set_secret("api-key", "second");
    // Cached until refreshed.
    assert_eq!(store.get(&id).await.unwrap().expose(), "first");
    assert_eq!(azure.vault.secret_reads("api-key"), 1);
    assert_eq!(store.refresh(&id).await.unwrap().expose(), "second");
    assert_eq!(store.get(&id).await.unwrap().expose(), "second");
    // A version is still readable by its id.
    let old = store
        .get(&SecretId::with_version("api-key", v1))
        .await
        .unwrap();
    assert_eq!(old.expose(), "first");
    // Without a cache every read goes to the vault.
    let uncached = azure.store(
        azure.chain(&[]),
        KeyVaultOptions::default().cache_ttl(Duration::ZERO),
    );
    let before = azure.vault.secret_reads("api-key");
    uncached.get(&id).await.unwrap();
    uncached.get(&id).await.unwrap();
    assert_eq!(azure.vault.secret_reads("api-key"), before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_of_one_secret_make_one_request() {
    let azure = Azure::start().await;
    azure.vault.set_secret("shared", "v");
    let store = Arc::new(azure.store(azure.chain(&[]), KeyVaultOptions::default()));
    let reads: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get(&SecretId::new("shared")).await.unwrap() })
        })
        .collect();
    for r in reads {
        assert_eq!(r.await.unwrap().expose(), "v");
    }
    assert_eq!(azure.vault.secret_reads("shared"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_disabled_throttled_and_unreachable() {
    let azure = Azure::start().await;
    azure.vault.set_secret("gone-soon", CANARY);
    let store = azure.store(
        azure.chain(&[]),
        KeyVaultOptions::default().cache_ttl(Duration::ZERO),
    );
    let err = store.get(&SecretId::new("nope")).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        err.to_string().contains("kv-test.vault.azure.net") && err.to_string().contains("nope")
    );

    azure.vault.disable("gone-soon");
    let err = store.get(&SecretId::new("gone-soon")).await.unwrap_err();
    assert!(err.is_forbidden(), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(CANARY));

    // Throttled once: the SDK waits Retry-After and retries.
    azure.vault.set_secret("busy", "ok");
    azure.vault.throttle_next(1, 1);
    assert_eq!(
        store.get(&SecretId::new("busy")).await.unwrap().expose(),
        "ok"
    );

    // A vault that does not answer: a transport error, bounded by the retries and deadline.
    let dead = KeyVaultStore::new(
        VAULT,
        azure.chain(&[]),
        KeyVaultOptions::default()
            .max_retries(1)
            .deadline(Duration::from_secs(20))
            .http(azure.http_to_a_dead_vault()),
    )
    .unwrap();
    let err = dead.get(&SecretId::new("x")).await.unwrap_err();
    assert!(err.is_transport(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_and_workload_identity_go_to_entra_in_chain_order() {
    let azure = Azure::start().await;
    azure.vault.set_secret("s", "v");
    azure
        .entra
        .register_secret(TENANT, "app-1", "client-secret-value");
    let dir = std::env::temp_dir().join(format!("azure-secrets-wi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "federated-assertion").unwrap();
    azure
        .entra
        .register_assertion(TENANT, "app-1", "federated-assertion");
    let file = token_file.to_str().unwrap();

    // Client secret alone (IMDS after it).
    let chain = azure.chain(&[
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", "app-1"),
        ("AZURE_CLIENT_SECRET", "client-secret-value"),
    ]);
    assert_eq!(
        chain.step_names(),
        ["client_secret", "imds_managed_identity"]
    );
    let store = azure.store(chain.clone(), KeyVaultOptions::default());
    assert_eq!(store.get(&SecretId::new("s")).await.unwrap().expose(), "v");
    assert_eq!(chain.chosen(), Some("client_secret"));
    let seen = azure.entra.requests();
    assert!(
        seen.iter()
            .any(|r| format!("{:?}", r.credential) == "Secret"),
        "{seen:?}"
    );

    // Workload identity comes first when its file is there.
    let chain = azure.chain(&[
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", "app-1"),
        ("AZURE_CLIENT_SECRET", "client-secret-value"),
        ("AZURE_FEDERATED_TOKEN_FILE", file),
    ]);
    assert_eq!(
        chain.step_names(),
        [
            "workload_identity",
            "client_secret",
            "imds_managed_identity"
        ]
    );
    let store = azure.store(chain.clone(), KeyVaultOptions::default());
    assert_eq!(store.get(&SecretId::new("s")).await.unwrap().expose(), "v");
    assert_eq!(chain.chosen(), Some("workload_identity"));
    assert!(
        azure
            .entra
            .requests()
            .iter()
            .any(|r| format!("{:?}", r.credential) == "Assertion")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_step_fails_the_error_names_each_and_no_credential_applies_is_clear() {
    let azure = Azure::start().await;
    azure.vault.set_secret("s", "v");
    azure.imds.fail_next(100, 400);
    azure.entra.register_secret(TENANT, "app-1", "right");
    let chain = azure.chain(&[
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", "app-1"),
        ("AZURE_CLIENT_SECRET", "wrong"),
    ]);
    let err = chain
        .get_token(&["https://vault.azure.net/.default"], None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("client_secret") && text.contains("imds_managed_identity"),
        "{text}"
    );
    assert!(!text.contains("wrong") || !text.contains("AZURE_CLIENT_SECRET=wrong"));
    let store = azure.store(chain, KeyVaultOptions::default().max_retries(0));
    let err = store.get(&SecretId::new("s")).await.unwrap_err();
    assert!(err.is_credential(), "{err:?}");

    let none = CredentialChain::new(
        ChainOptions::default()
            .developer_tools(false)
            .imds(false)
            .env(|_| None),
    )
    .unwrap_err();
    assert!(none.is_credential());
    assert!(
        none.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"),
        "{none}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_in_a_configuration_resolve_through_the_vault() {
    let azure = Azure::start().await;
    azure.vault.set_secret("SCHEDULER-API-KEY", CANARY);
    azure.vault.set_secret("SCHEDULER-CLIENT-ID", "sch_123");
    let vaults = KeyVaults::new(
        azure.chain(&[]),
        KeyVaultOptions::default().http(azure.http()),
    );
    let mut config = serde_json::json!({
        "mcp": {"mcp_servers": [{"name": "Scheduler", "transport": {"type": "http",
            "url": "https://scheduler.example/mcp",
            "auth": {
                "client_id": "@Microsoft.KeyVault(SecretName=SCHEDULER-CLIENT-ID)",
                "api_key": "@Microsoft.KeyVault(SecretUri=https://kv-test.vault.azure.net/secrets/SCHEDULER-API-KEY/)"
            }}}]},
        "azure": {"key_vault_name": "kv-test"}
    });
    let done = resolve(
        &mut config,
        &vaults,
        &ResolveOptions {
            default_vault: Some("kv-test".into()),
            ..ResolveOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(done.fetched, 2);
    assert_eq!(
        config["mcp"]["mcp_servers"][0]["transport"]["auth"]["api_key"],
        CANARY
    );
    assert_eq!(
        config["mcp"]["mcp_servers"][0]["transport"]["auth"]["client_id"],
        "sch_123"
    );

    // The vault unreachable at start-up: a clear error, the configuration untouched.
    let dead = KeyVaults::new(
        azure.chain(&[]),
        KeyVaultOptions::default()
            .max_retries(0)
            .http(azure.http_to_a_dead_vault()),
    );
    let mut config =
        serde_json::json!({"k": "@Microsoft.KeyVault(VaultName=kv-test;SecretName=a)"});
    let before = config.clone();
    let err = resolve(&mut config, &dead, &ResolveOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_transport(), "{err:?}");
    assert!(
        err.to_string().contains("`k`") || err.to_string().contains("k (`"),
        "{err}"
    );
    assert_eq!(config, before);
}

/// `azure_identity`'s App Service credential reads `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`
/// from the process environment, so this test runs the check in a child process (this test
/// binary, running [`app_service_child`]) that has them, with the fakes in this process.
#[test]
fn app_service_managed_identity_end_to_end() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (vault, identity) = rt.block_on(async {
        let vault = FakeKeyVault::start().await.unwrap();
        vault.set_secret("from-app-service", CANARY);
        (
            vault,
            FakeManagedIdentity::app_service("identity-header-1")
                .await
                .unwrap(),
        )
    });
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "app_service_child", "--ignored", "--nocapture"])
        .env("IDENTITY_ENDPOINT", identity.endpoint())
        .env("IDENTITY_HEADER", "identity-header-1")
        .env("FAKE_VAULT_URL", vault.base_url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    let issued = identity.issued();
    assert_eq!(issued.len(), 1, "one token from the App Service endpoint");
    assert!(identity.requests().iter().all(|r| r.identity_header));
    assert_eq!(vault.secret_reads("from-app-service"), 1);
    drop(rt);
}

#[test]
#[ignore = "run by app_service_managed_identity_end_to_end in a child process with IDENTITY_ENDPOINT set"]
fn app_service_child() {
    let (Ok(endpoint), Ok(vault_url)) = (
        std::env::var("IDENTITY_ENDPOINT"),
        std::env::var("FAKE_VAULT_URL"),
    ) else {
        panic!("run by app_service_managed_identity_end_to_end, which sets the environment");
    };
    assert!(endpoint.starts_with("http://127.0.0.1:"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = AzureHttpClient::new().unwrap().redirect(VAULT, &vault_url);
        let chain = Arc::new(
            CredentialChain::new(
                ChainOptions::default()
                    .developer_tools(false)
                    .http(http.clone()),
            )
            .unwrap(),
        );
        assert_eq!(chain.step_names(), ["app_service_managed_identity"]);
        let store = KeyVaultStore::new(VAULT, chain.clone(), KeyVaultOptions::default().http(http))
            .unwrap();
        let value = store.get(&SecretId::new("from-app-service")).await.unwrap();
        assert_eq!(value.expose(), CANARY);
        assert_eq!(chain.chosen(), Some("app_service_managed_identity"));
    });
}

/// A writer collecting everything logged, for the canary.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The canary: a secret value, a client secret and the tokens never reach the logs (every
/// level, every crate: the SDK's and ours), errors or Debug output.
#[test]
fn canary_secret_values_never_reach_logs_errors_or_debug() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // This test owns its process under nextest; under `cargo test` another test may have
    // set it first, and then the assertions below still hold for what is captured.
    let _ = tracing::subscriber::set_global_default(subscriber);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (shown, tokens) = rt.block_on(async {
        let azure = Azure::start().await;
        azure.vault.set_secret("canary", CANARY);
        azure
            .entra
            .register_secret(TENANT, "app-1", "entra-client-secret-canary");
        let chain = azure.chain(&[
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", "app-1"),
            ("AZURE_CLIENT_SECRET", "entra-client-secret-canary"),
        ]);
        let store = azure.store(chain.clone(), KeyVaultOptions::default());
        let value = store.get(&SecretId::new("canary")).await.unwrap();
        assert_eq!(value.expose(), CANARY);
        let missing = store.get(&SecretId::new("missing")).await.unwrap_err();
        let shown = format!("{value:?} {store:?} {chain:?} {missing} {missing:?}");
        let tokens: Vec<String> = azure
            .entra
            .issued()
            .into_iter()
            .map(|t| t.access_token)
            .collect();
        (shown, tokens)
    });
    assert!(!tokens.is_empty());
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "the subscriber captured the run");
    for needle in [CANARY, "entra-client-secret-canary"]
        .into_iter()
        .chain(tokens.iter().map(String::as_str))
    {
        assert!(!logs.contains(needle), "a secret or token reached the logs");
        assert!(
            !shown.contains(needle),
            "a secret or token reached Debug or an error"
        );
    }
}

/// The developer-tools step runs `az account get-access-token` through `/bin/sh`; the child
/// process here has a fake `az` first on its `PATH` (a script printing the CLI's JSON).
#[test]
#[cfg(unix)]
fn developer_tools_step_uses_the_azure_cli_end_to_end() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("azure-secrets-az-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let az = dir.join("az");
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    std::fs::write(
        &az,
        format!(
            "#!/bin/sh\necho \"$@\" > \"{}/args\"\nprintf '%s' '{{\"accessToken\":\"dev-tools-token\",\"expiresOn\":\"2030-01-02 03:04:05.000000\",\"expires_on\":{expires},\"subscription\":\"s\",\"tenant\":\"t\",\"tokenType\":\"Bearer\"}}'\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", dir.display());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "developer_tools_child",
            "--ignored",
            "--nocapture",
        ])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let args = std::fs::read_to_string(dir.join("args")).unwrap();
    assert!(args.contains("account get-access-token"), "{args}");
    assert!(args.contains("https://vault.azure.net/.default"), "{args}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "run by developer_tools_step_uses_the_azure_cli_end_to_end with a fake `az` on PATH"]
fn developer_tools_child() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let chain =
            CredentialChain::new(ChainOptions::default().imds(false).env(|_| None)).unwrap();
        assert_eq!(chain.step_names(), ["developer_tools"]);
        let token = chain
            .get_token(&["https://vault.azure.net/.default"], None)
            .await
            .unwrap();
        assert_eq!(token.token.secret(), "dev-tools-token");
        assert_eq!(chain.chosen(), Some("developer_tools"));
    });
}
