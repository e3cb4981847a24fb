//! The stores that need no Azure (environment, file, chain) and resolving Key Vault
//! references in a realistic configuration through in-memory vaults (the Key Vault store
//! over the official SDK has its own tests against the loopback fake): both reference forms,
//! the default vault, one fetch per distinct secret, all-or-nothing, errors that name the
//! setting's path and the reference but never a value.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use azure_secrets::{
    BoxFuture, ChainStore, EnvStore, Error, FileStore, ResolveOptions, SecretId, SecretStore,
    SecretValue, resolve,
};
use serde_json::json;

const CANARY: &str = "canary-7f3a9c1e-secret-value";

/// One vault's secrets in memory; counts reads.
#[derive(Debug, Default)]
struct MemoryVault {
    secrets: Mutex<HashMap<(String, Option<String>), String>>,
    reads: AtomicUsize,
    forbidden: bool,
}

impl MemoryVault {
    fn with(pairs: &[(&str, Option<&str>, &str)]) -> Arc<Self> {
        let v = Self::default();
        for (name, version, value) in pairs {
            v.secrets.lock().unwrap().insert(
                ((*name).to_owned(), version.map(str::to_owned)),
                (*value).to_owned(),
            );
        }
        Arc::new(v)
    }
}

impl SecretStore for MemoryVault {
    fn get<'a>(&'a self, id: &'a SecretId) -> BoxFuture<'a, Result<SecretValue, Error>> {
        Box::pin(async move {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.forbidden {
                return Err(Error::other(
                    format!("{id}: forbidden"),
                    std::io::Error::other("403"),
                ));
            }
            self.secrets
                .lock()
                .unwrap()
                .get(&(id.name.clone(), id.version.clone()))
                .map(|v| SecretValue::new(v.clone()))
                .ok_or_else(|| Error::not_found(id, "memory vault"))
        })
    }
}

fn vaults(map: Vec<(&'static str, Arc<MemoryVault>)>) -> impl azure_secrets::Vaults {
    let map: HashMap<&'static str, Arc<MemoryVault>> = map.into_iter().collect();
    move |url: &str| -> Result<Arc<dyn SecretStore>, Error> {
        map.get(url)
            .map(|v| v.clone() as Arc<dyn SecretStore>)
            .ok_or_else(|| Error::other(format!("no vault at {url}"), std::io::Error::other("dns")))
    }
}

fn config() -> serde_json::Value {
    json!({
        "mcp": { "mcp_servers": [ {
            "name": "Scheduler",
            "transport": {
                "type": "http",
                "url": "https://scheduler-eastus.example/mcp",
                "auth": {
                    "client_id": "@Microsoft.KeyVault(VaultName=kv-prod;SecretName=SCHEDULER-CLIENT-ID)",
                    "api_key": "@Microsoft.KeyVault(SecretUri=https://kv-prod.vault.azure.net/secrets/SCHEDULER-API-KEY/)"
                }
            }
        }, {
            "name": "Scheduler-west",
            "transport": {
                "type": "http",
                "url": "https://scheduler-westus.example/mcp",
                "auth": {
                    "client_id": "@Microsoft.KeyVault(SecretName=SCHEDULER-CLIENT-ID)",
                    "api_key": "@Microsoft.KeyVault(VaultName=kv-prod;SecretName=SCHEDULER-API-KEY)"
                }
            }
        } ] },
        "azure": {
            "key_vault_name": "kv-prod",
            "application_insights_connection_string": "@Microsoft.KeyVault(VaultName=kv-ops;SecretName=AI-CONN;SecretVersion=0123abcd)"
        }
    })
}

fn prod() -> Arc<MemoryVault> {
    MemoryVault::with(&[
        ("SCHEDULER-CLIENT-ID", None, "sch_client_1"),
        ("SCHEDULER-API-KEY", None, CANARY),
    ])
}

fn ops() -> Arc<MemoryVault> {
    MemoryVault::with(&[("AI-CONN", Some("0123abcd"), "InstrumentationKey=abc")])
}

fn options() -> ResolveOptions {
    ResolveOptions {
        default_vault: Some("kv-prod".into()),
        ..ResolveOptions::default()
    }
}

#[tokio::test]
async fn every_reference_in_a_realistic_configuration_resolves_each_secret_fetched_once() {
    let (prod, ops) = (prod(), ops());
    let vaults = vaults(vec![
        ("https://kv-prod.vault.azure.net", prod.clone()),
        ("https://kv-ops.vault.azure.net", ops.clone()),
    ]);
    let mut tree = config();
    let done = resolve(&mut tree, &vaults, &options()).await.unwrap();
    assert_eq!(
        done.paths,
        [
            "azure.application_insights_connection_string",
            "mcp.mcp_servers[0].transport.auth.api_key",
            "mcp.mcp_servers[0].transport.auth.client_id",
            "mcp.mcp_servers[1].transport.auth.api_key",
            "mcp.mcp_servers[1].transport.auth.client_id",
        ]
    );
    assert_eq!(done.fetched, 3);
    assert_eq!(prod.reads.load(Ordering::SeqCst), 2, "two distinct secrets");
    assert_eq!(
        tree["mcp"]["mcp_servers"][0]["transport"]["auth"]["api_key"],
        CANARY
    );
    assert_eq!(
        tree["mcp"]["mcp_servers"][1]["transport"]["auth"]["client_id"],
        "sch_client_1"
    );
    assert_eq!(
        tree["azure"]["application_insights_connection_string"],
        "InstrumentationKey=abc"
    );
    assert_eq!(
        tree["mcp"]["mcp_servers"][0]["transport"]["url"],
        "https://scheduler-eastus.example/mcp"
    );
    assert!(!done.to_string().contains(CANARY));
}

#[tokio::test]
async fn one_failure_leaves_the_tree_untouched_and_names_the_path_and_reference() {
    // kv-ops is missing: the connection string cannot resolve.
    let vaults = vaults(vec![("https://kv-prod.vault.azure.net", prod())]);
    let mut tree = config();
    let before = tree.clone();
    let err = resolve(&mut tree, &vaults, &options()).await.unwrap_err();
    assert_eq!(tree, before, "no partial configuration");
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("azure.application_insights_connection_string"),
        "{text}"
    );
    assert!(
        text.contains("VaultName=kv-ops;SecretName=AI-CONN"),
        "{text}"
    );
    assert!(!text.contains(CANARY));

    // A secret the vault does not have.
    let vaults = vaults_without_key();
    let mut tree = config();
    let err = resolve(&mut tree, &vaults, &options()).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        err.to_string()
            .contains("mcp.mcp_servers[0].transport.auth.api_key"),
        "{err}"
    );
}

fn vaults_without_key() -> impl azure_secrets::Vaults {
    vaults(vec![
        (
            "https://kv-prod.vault.azure.net",
            MemoryVault::with(&[("SCHEDULER-CLIENT-ID", None, "id")]),
        ),
        ("https://kv-ops.vault.azure.net", ops()),
    ])
}

#[tokio::test]
async fn a_malformed_reference_or_a_missing_default_vault_is_reported_before_any_fetch() {
    let prod = prod();
    let v = vaults(vec![("https://kv-prod.vault.azure.net", prod.clone())]);
    let mut tree = json!({"a": {"b": ["x", "@Microsoft.KeyVault(SecretName=bad name)"]}});
    let err = resolve(&mut tree, &v, &options()).await.unwrap_err();
    assert!(err.is_invalid_reference());
    assert!(err.to_string().contains("a.b[1]"), "{err}");
    assert_eq!(prod.reads.load(Ordering::SeqCst), 0);

    let mut tree = json!({"k": "@Microsoft.KeyVault(SecretName=n)"});
    let err = resolve(&mut tree, &v, &ResolveOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_invalid_reference());
    assert!(err.to_string().contains("key_vault_name"), "{err}");
}

#[tokio::test]
async fn env_store_maps_key_vault_names_to_variable_names() {
    let env = EnvStore::with(|k| match k {
        "SCHEDULER_API_KEY" => Some(CANARY.to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    });
    let v = env.get(&SecretId::new("SCHEDULER-API-KEY")).await.unwrap();
    assert_eq!(v.expose(), CANARY);
    assert!(
        env.get(&SecretId::new("EMPTY"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    let err = env.get(&SecretId::new("missing-one")).await.unwrap_err();
    assert!(
        err.is_not_found() && err.to_string().contains("MISSING_ONE"),
        "{err}"
    );
    assert!(
        env.get(&SecretId::with_version("SCHEDULER-API-KEY", "v1"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(format!("{v:?}"), "SecretValue([redacted])");
}

#[tokio::test]
async fn file_store_reads_a_json_object_and_reloads() {
    let dir = tempfile_dir();
    let path = dir.join("secrets.json");
    std::fs::write(&path, format!(r#"{{"api-key": "{CANARY}"}}"#)).unwrap();
    let store = FileStore::open(&path).unwrap();
    assert_eq!(
        store.get(&SecretId::new("api-key")).await.unwrap().expose(),
        CANARY
    );
    std::fs::write(&path, r#"{"api-key": "rotated"}"#).unwrap();
    store.reload().unwrap();
    assert_eq!(
        store.get(&SecretId::new("api-key")).await.unwrap().expose(),
        "rotated"
    );
    // A broken file names the file and the key, never a value; the old values stay.
    std::fs::write(&path, format!(r#"{{"api-key": "{CANARY}", "n": 1}}"#)).unwrap();
    let err = store.reload().unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("`n` must be a string") && !text.contains(CANARY),
        "{text}"
    );
    assert_eq!(
        store.get(&SecretId::new("api-key")).await.unwrap().expose(),
        "rotated"
    );
    std::fs::write(&path, format!("{{\"api-key\": \"{CANARY}\"")).unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(!format!("{err} {err:?}").contains(CANARY));
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "azure-secrets-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_chain_passes_misses_on_and_stops_at_other_errors() {
    let first = MemoryVault::with(&[("a", None, "from-first")]);
    let second = MemoryVault::with(&[("a", None, "shadowed"), ("b", None, "from-second")]);
    let chain = ChainStore::new().then(first.clone()).then(second.clone());
    assert_eq!(
        chain.get(&SecretId::new("a")).await.unwrap().expose(),
        "from-first"
    );
    assert_eq!(
        chain.get(&SecretId::new("b")).await.unwrap().expose(),
        "from-second"
    );
    let err = chain.get(&SecretId::new("c")).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.to_string().matches("memory vault").count(), 2, "{err}");

    let forbidden = Arc::new(MemoryVault {
        forbidden: true,
        ..MemoryVault::default()
    });
    let chain = ChainStore::new().then(forbidden).then(second.clone());
    let before = second.reads.load(Ordering::SeqCst);
    let err = chain.get(&SecretId::new("b")).await.unwrap_err();
    assert!(!err.is_not_found(), "{err:?}");
    assert_eq!(
        second.reads.load(Ordering::SeqCst),
        before,
        "not skipped past"
    );
}
