//! Behaviour of `scheduler::config`: parsing the design document's JSON shape, defaults, error
//! paths, validation, environment overrides, and that secrets never leak into Debug, errors or
//! the redacted view.

use std::collections::HashMap;

use mcp_auth::Secret;
use scheduler::config::{AuthConfig, Config, ServerConfig, TransportConfig, TransportKind};
use serde_json::json;

const MINIMAL: &str = r#"{
  "mcp": { "mcp_servers": [ {
    "name": "Scheduler",
    "transport": { "type": "http", "url": "https://scheduler-eastus.example/mcp",
                   "auth": { "client_id": "scheduler-client", "api_key": "key-123" } } } ] }
}"#;

fn parse(text: &str) -> Config {
    match Config::from_json(text, "test.json") {
        Ok(c) => c,
        Err(e) => panic!("expected a valid configuration, got: {e}"),
    }
}

fn parse_err(text: &str) -> String {
    match Config::from_json(text, "test.json") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => {
            assert!(e.is_config(), "{e:?}");
            e.to_string()
        }
    }
}

/// A one-server configuration whose transport is `transport` (a JSON object body).
fn with_transport(transport: &str) -> String {
    format!(r#"{{ "mcp": {{ "mcp_servers": [ {{ "name": "S", "transport": {transport} }} ] }} }}"#)
}

/// The minimal configuration with `extra` spliced into the server object.
fn with_server_extra(extra: &str) -> String {
    format!(
        r#"{{ "mcp": {{ "mcp_servers": [ {{ "name": "S",
            "transport": {{ "type": "http", "url": "https://a.example/mcp" }}, {extra} }} ] }} }}"#
    )
}

fn env_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn minimal_config_parses_with_every_default() {
    let config = parse(MINIMAL);
    let s = config.server("Scheduler").unwrap();
    assert_eq!(s.name, "Scheduler");
    assert_eq!(s.timeout_ms, 10_000);

    let t = &s.transport;
    assert_eq!(t.kind, TransportKind::Http);
    assert_eq!(
        t.url.as_deref(),
        Some("https://scheduler-eastus.example/mcp")
    );
    assert!(t.failover_urls.is_empty());
    assert!(!t.allow_insecure_http);
    assert_eq!(t.protocol_version, None);
    assert_eq!(t.command, None);
    assert!(t.args.is_empty());
    assert!(t.env.is_empty());
    let auth = t.auth.as_ref().unwrap();
    assert_eq!(auth.client_id, "scheduler-client");
    assert_eq!(auth.api_key.expose_secret(), "key-123");
    assert!(auth.scopes.is_empty());
    assert_eq!(auth.token_endpoint, None);

    let r = &s.resilience;
    assert_eq!(r.max_retries, 3);
    assert_eq!(r.base_delay_ms, 1_000);
    assert_eq!(r.max_delay_ms, 10_000);
    assert_eq!(r.deadline_ms, 60_000);
    assert!(r.retry_budget);
    assert!(r.circuit_breaker);
    assert_eq!(r.probe_interval_ms, Some(10_000));
    assert_eq!(r.probe_timeout_ms, 2_000);
    assert!(!r.shared_idempotency);
    assert_eq!(r.hedge_delay_ms, None);

    let p = &s.pool;
    assert_eq!(p.max_connections, 100);
    assert_eq!(p.max_keepalive_connections, 20);
    assert_eq!(p.idle_timeout_ms, 90_000);
    assert_eq!(p.connect_timeout_ms, 10_000);

    let a = &config.azure;
    assert!(!a.use_managed_identity);
    assert_eq!(a.managed_identity_client_id, None);
    assert_eq!(a.key_vault_name, None);
    assert!(a.application_insights_connection_string.is_none());
}

#[test]
fn design_document_example_parses() {
    // The design document's example, with the Key Vault references replaced by plain values
    // (references are not resolved yet).
    let config = parse(
        r#"{
  "mcp": { "mcp_servers": [ {
    "name": "Scheduler",
    "transport": { "type": "http", "url": "https://scheduler-eastus.example/mcp",
                   "failover_urls": ["https://scheduler-westus.example/mcp"],
                   "auth": { "client_id": "scheduler-client",
                             "api_key":   "key-123" } },
    "resilience": { "max_retries": 3, "base_delay_ms": 1000, "max_delay_ms": 10000 },
    "pool": { "max_connections": 100, "max_keepalive_connections": 20 },
    "timeout_ms": 10000 } ] },
  "azure": { "use_managed_identity": false, "key_vault_name": null, "application_insights_connection_string": null }
}"#,
    );
    let s = &config.mcp.mcp_servers[0];
    assert_eq!(
        s.transport.failover_urls,
        ["https://scheduler-westus.example/mcp"]
    );
    assert_eq!(s.resilience.max_retries, 3);
    assert_eq!(s.pool.max_keepalive_connections, 20);
    assert_eq!(s.resilience.deadline_ms, 60_000, "unset keys keep defaults");
}

#[test]
fn stdio_server_parses() {
    let config = parse(&with_transport(
        r#"{ "type": "stdio", "command": "mcp-scheduler", "args": ["serve", "--stdio"],
             "env": { "RUST_LOG": "info" } }"#,
    ));
    let t = &config.mcp.mcp_servers[0].transport;
    assert_eq!(t.kind, TransportKind::Stdio);
    assert_eq!(t.command.as_deref(), Some("mcp-scheduler"));
    assert_eq!(t.args, ["serve", "--stdio"]);
    assert_eq!(t.env.get("RUST_LOG").map(String::as_str), Some("info"));
}

#[test]
fn unknown_key_at_depth_names_full_path_and_origin() {
    let msg = parse_err(
        r#"{ "mcp": { "mcp_servers": [ { "name": "S",
            "transport": { "type": "http", "url": "https://a.example/mcp",
                           "auth": { "client_id": "c", "api_kye": "k" } } } ] } }"#,
    );
    assert!(msg.contains("test.json"), "{msg}");
    assert!(
        msg.contains("mcp.mcp_servers[0].transport.auth.api_kye"),
        "{msg}"
    );
}

#[test]
fn unknown_top_level_and_server_keys_are_rejected() {
    let msg = parse_err(&MINIMAL.replacen('{', r#"{ "mpc": {},"#, 1));
    assert!(msg.contains("mpc"), "{msg}");
    let msg = parse_err(&with_server_extra(r#""timeout": 5"#));
    assert!(msg.contains("mcp.mcp_servers[0].timeout"), "{msg}");
    let msg = parse_err(&with_server_extra(r#""resilience": { "max_retry": 5 }"#));
    assert!(
        msg.contains("mcp.mcp_servers[0].resilience.max_retry"),
        "{msg}"
    );
}

#[test]
fn wrong_type_names_its_path() {
    let msg = parse_err(&with_server_extra(
        r#""pool": { "max_connections": "many" }"#,
    ));
    assert!(
        msg.contains("mcp.mcp_servers[0].pool.max_connections"),
        "{msg}"
    );
    let msg = parse_err(&with_server_extra(r#""timeout_ms": -1"#));
    assert!(msg.contains("mcp.mcp_servers[0].timeout_ms"), "{msg}");
}

#[test]
fn unknown_transport_type_names_its_path() {
    let msg = parse_err(&with_transport(
        r#"{ "type": "htp", "url": "https://a.example" }"#,
    ));
    assert!(msg.contains("mcp.mcp_servers[0].transport.type"), "{msg}");
    assert!(msg.contains("htp"), "{msg}");
}

#[test]
fn syntax_error_names_line_and_column() {
    let msg = parse_err("{\n  \"mcp\": {\n    \"mcp_servers\": [ ,\n  }\n}");
    assert!(msg.contains("test.json"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("column"), "{msg}");
    let msg = parse_err(&format!("{MINIMAL} trailing"));
    assert!(msg.contains("line"), "{msg}");
}

#[test]
fn missing_required_fields_are_reported() {
    let msg = parse_err(r#"{ "mcp": {} }"#);
    assert!(msg.contains("mcp_servers"), "{msg}");
    let msg = parse_err(r#"{ "mcp": { "mcp_servers": [] } }"#);
    assert!(
        msg.contains("mcp.mcp_servers: no servers configured"),
        "{msg}"
    );
}

#[test]
fn http_without_url_is_rejected() {
    let msg = parse_err(&with_transport(r#"{ "type": "http" }"#));
    assert!(msg.contains("mcp.mcp_servers[0].transport.url"), "{msg}");
    assert!(msg.contains("required"), "{msg}");
}

#[test]
fn non_http_scheme_is_rejected() {
    let msg = parse_err(&with_transport(
        r#"{ "type": "http", "url": "ftp://a.example/mcp" }"#,
    ));
    assert!(msg.contains("mcp.mcp_servers[0].transport.url"), "{msg}");
    assert!(msg.contains("scheme"), "{msg}");
    let msg = parse_err(&with_transport(r#"{ "type": "http", "url": "/mcp" }"#));
    assert!(msg.contains("mcp.mcp_servers[0].transport.url"), "{msg}");
    let msg = parse_err(&with_transport(
        r#"{ "type": "http", "url": "https://a.example/mcp", "failover_urls": ["https://b.example", "b.example"] }"#,
    ));
    assert!(
        msg.contains("mcp.mcp_servers[0].transport.failover_urls[1]"),
        "{msg}"
    );
}

#[test]
fn plain_http_only_to_loopback_unless_allowed() {
    parse(&with_transport(
        r#"{ "type": "http", "url": "http://127.0.0.1:8080/mcp" }"#,
    ));
    parse(&with_transport(
        r#"{ "type": "http", "url": "http://localhost:8080/mcp" }"#,
    ));
    let msg = parse_err(&with_transport(
        r#"{ "type": "http", "url": "http://a.example/mcp" }"#,
    ));
    assert!(msg.contains("allow_insecure_http"), "{msg}");
    parse(&with_transport(
        r#"{ "type": "http", "url": "http://a.example/mcp", "allow_insecure_http": true }"#,
    ));
}

#[test]
fn url_with_credentials_is_rejected_without_showing_them() {
    let msg = parse_err(&with_transport(
        r#"{ "type": "http", "url": "https://user:hunter2pass@a.example/mcp" }"#,
    ));
    assert!(msg.contains("mcp.mcp_servers[0].transport.url"), "{msg}");
    assert!(msg.contains("auth"), "{msg}");
    assert!(!msg.contains("hunter2pass"), "{msg}");
    let msg = parse_err(&with_transport(
        r#"{ "type": "http", "url": "https://a.example/mcp", "failover_urls": ["https://u:hunter2pass@b.example"] }"#,
    ));
    assert!(msg.contains("failover_urls[0]"), "{msg}");
    assert!(!msg.contains("hunter2pass"), "{msg}");
}

#[test]
fn duplicate_and_empty_names_are_rejected() {
    let msg = parse_err(
        r#"{ "mcp": { "mcp_servers": [
            { "name": "A", "transport": { "type": "http", "url": "https://a.example" } },
            { "name": "A", "transport": { "type": "http", "url": "https://b.example" } } ] } }"#,
    );
    assert!(msg.contains("mcp.mcp_servers[1].name"), "{msg}");
    assert!(msg.contains("duplicate"), "{msg}");
    let msg = parse_err(
        r#"{ "mcp": { "mcp_servers": [
            { "name": "", "transport": { "type": "http", "url": "https://a.example" } } ] } }"#,
    );
    assert!(msg.contains("mcp.mcp_servers[0].name"), "{msg}");
}

#[test]
fn transport_fields_must_match_the_kind() {
    let msg = parse_err(&with_transport(
        r#"{ "type": "stdio", "command": "x", "url": "https://a.example" }"#,
    ));
    assert!(msg.contains("mcp.mcp_servers[0].transport.url"), "{msg}");
    assert!(msg.contains("stdio"), "{msg}");
    let msg = parse_err(&with_transport(
        r#"{ "type": "stdio", "command": "x", "auth": { "client_id": "c", "api_key": "k" } }"#,
    ));
    assert!(msg.contains("mcp.mcp_servers[0].transport.auth"), "{msg}");
    let msg = parse_err(&with_transport(r#"{ "type": "stdio" }"#));
    assert!(
        msg.contains("mcp.mcp_servers[0].transport.command"),
        "{msg}"
    );
    let msg = parse_err(&with_transport(
        r#"{ "type": "http", "url": "https://a.example", "command": "x" }"#,
    ));
    assert!(
        msg.contains("mcp.mcp_servers[0].transport.command"),
        "{msg}"
    );
    let msg = parse_err(&with_transport(
        r#"{ "type": "http", "url": "https://a.example", "env": { "A": "b" } }"#,
    ));
    assert!(msg.contains("mcp.mcp_servers[0].transport.env"), "{msg}");
}

#[test]
fn numeric_limits_are_checked() {
    for (extra, path) in [
        (r#""timeout_ms": 0"#, "mcp.mcp_servers[0].timeout_ms"),
        (
            r#""resilience": { "deadline_ms": 0 }"#,
            "mcp.mcp_servers[0].resilience.deadline_ms",
        ),
        (
            r#""resilience": { "base_delay_ms": 0 }"#,
            "mcp.mcp_servers[0].resilience.base_delay_ms",
        ),
        (
            r#""resilience": { "probe_timeout_ms": 0 }"#,
            "mcp.mcp_servers[0].resilience.probe_timeout_ms",
        ),
        (
            r#""resilience": { "base_delay_ms": 5000, "max_delay_ms": 100 }"#,
            "mcp.mcp_servers[0].resilience.max_delay_ms",
        ),
        (
            r#""pool": { "max_connections": 0 }"#,
            "mcp.mcp_servers[0].pool.max_connections",
        ),
        (
            r#""pool": { "connect_timeout_ms": 0 }"#,
            "mcp.mcp_servers[0].pool.connect_timeout_ms",
        ),
    ] {
        let msg = parse_err(&with_server_extra(extra));
        assert!(msg.contains(path), "{extra}: {msg}");
    }
}

#[test]
fn empty_credentials_are_rejected() {
    let msg = parse_err(&with_transport(
        r#"{ "type": "http", "url": "https://a.example", "auth": { "client_id": "", "api_key": "k" } }"#,
    ));
    assert!(
        msg.contains("mcp.mcp_servers[0].transport.auth.client_id"),
        "{msg}"
    );
    let msg = parse_err(&with_transport(
        r#"{ "type": "http", "url": "https://a.example", "auth": { "client_id": "c", "api_key": "" } }"#,
    ));
    assert!(
        msg.contains("mcp.mcp_servers[0].transport.auth.api_key"),
        "{msg}"
    );
}

#[test]
fn probe_interval_null_turns_probes_off() {
    let absent = parse(&with_server_extra(r#""resilience": { "max_retries": 1 }"#));
    assert_eq!(
        absent.mcp.mcp_servers[0].resilience.probe_interval_ms,
        Some(10_000)
    );
    let null = parse(&with_server_extra(
        r#""resilience": { "probe_interval_ms": null }"#,
    ));
    assert_eq!(null.mcp.mcp_servers[0].resilience.probe_interval_ms, None);
    let set = parse(&with_server_extra(
        r#""resilience": { "probe_interval_ms": 500, "hedge_delay_ms": 50 }"#,
    ));
    assert_eq!(
        set.mcp.mcp_servers[0].resilience.probe_interval_ms,
        Some(500)
    );
    assert_eq!(set.mcp.mcp_servers[0].resilience.hedge_delay_ms, Some(50));
}

#[test]
fn env_overrides_existing_auth() {
    let mut config = parse(MINIMAL);
    config
        .apply_env(env_from(&[
            ("SCHEDULER_CLIENT_ID", "env-client"),
            ("SCHEDULER_API_KEY", "env-key"),
            (
                "APPLICATIONINSIGHTS_CONNECTION_STRING",
                "InstrumentationKey=abc",
            ),
        ]))
        .unwrap();
    let auth = config.mcp.mcp_servers[0].transport.auth.as_ref().unwrap();
    assert_eq!(auth.client_id, "env-client");
    assert_eq!(auth.api_key.expose_secret(), "env-key");
    assert_eq!(
        config
            .azure
            .application_insights_connection_string
            .as_ref()
            .map(Secret::expose_secret),
        Some("InstrumentationKey=abc")
    );
}

#[test]
fn env_override_of_one_value_keeps_the_other() {
    let mut config = parse(MINIMAL);
    config
        .apply_env(env_from(&[
            ("SCHEDULER_API_KEY", "env-key"),
            ("SCHEDULER_CLIENT_ID", ""),
        ]))
        .unwrap();
    let auth = config.mcp.mcp_servers[0].transport.auth.as_ref().unwrap();
    assert_eq!(
        auth.client_id, "scheduler-client",
        "empty values are ignored"
    );
    assert_eq!(auth.api_key.expose_secret(), "env-key");
}

#[test]
fn env_creates_auth_when_both_are_set() {
    let mut config = parse(&with_transport(
        r#"{ "type": "http", "url": "https://a.example" }"#,
    ));
    config.apply_env(env_from(&[])).unwrap();
    assert!(config.mcp.mcp_servers[0].transport.auth.is_none());
    config
        .apply_env(env_from(&[
            ("SCHEDULER_CLIENT_ID", "env-client"),
            ("SCHEDULER_API_KEY", "env-key"),
        ]))
        .unwrap();
    let auth = config.mcp.mcp_servers[0].transport.auth.as_ref().unwrap();
    assert_eq!(auth.client_id, "env-client");
    assert_eq!(auth.api_key.expose_secret(), "env-key");
    assert!(auth.scopes.is_empty());
}

#[test]
fn env_with_only_one_variable_and_no_auth_is_an_error() {
    let mut config = parse(&with_transport(
        r#"{ "type": "http", "url": "https://a.example" }"#,
    ));
    let err = config
        .apply_env(env_from(&[("SCHEDULER_CLIENT_ID", "env-client")]))
        .unwrap_err();
    assert!(err.is_config());
    let msg = err.to_string();
    assert!(msg.contains("mcp.mcp_servers[0].transport.auth"), "{msg}");
    assert!(msg.contains("SCHEDULER_API_KEY"), "{msg}");
    let err = config
        .apply_env(env_from(&[("SCHEDULER_API_KEY", "only-key-secret")]))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("SCHEDULER_CLIENT_ID"), "{msg}");
    assert!(!msg.contains("only-key-secret"), "{msg}");
}

#[test]
fn env_leaves_stdio_servers_alone() {
    let mut config = parse(&with_transport(r#"{ "type": "stdio", "command": "x" }"#));
    config
        .apply_env(env_from(&[("SCHEDULER_CLIENT_ID", "env-client")]))
        .unwrap();
    assert!(config.mcp.mcp_servers[0].transport.auth.is_none());
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.json");
    std::fs::write(&path, MINIMAL).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.mcp.mcp_servers[0].name, "Scheduler");

    std::fs::write(&path, "{ \"mcp\": 1 }").unwrap();
    let msg = Config::load(&path).unwrap_err().to_string();
    assert!(msg.contains("scheduler.json"), "{msg}");

    let missing = dir.path().join("missing.json");
    let err = Config::load(&missing).unwrap_err();
    assert!(err.is_config());
    assert!(err.to_string().contains("missing.json"), "{err}");
}

#[test]
fn key_vault_references_are_rejected_by_path() {
    let msg = parse_err(
        r#"{ "mcp": { "mcp_servers": [ { "name": "S",
            "transport": { "type": "http", "url": "https://a.example/mcp",
              "auth": { "client_id": "c",
                        "api_key": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/SCHEDULER-API-KEY/)" } } } ] } }"#,
    );
    assert!(
        msg.contains("mcp.mcp_servers[0].transport.auth.api_key"),
        "{msg}"
    );
    assert!(msg.contains("Key Vault reference"), "{msg}");
    assert!(!msg.contains("SCHEDULER-API-KEY"), "{msg}");

    let msg = parse_err(
        r#"{ "mcp": { "mcp_servers": [ { "name": "S",
            "transport": { "type": "http", "url": "https://a.example/mcp",
              "auth": { "client_id": "@Microsoft.KeyVault(VaultName=kv;SecretName=SCHEDULER-CLIENT-ID)",
                        "api_key": "k" } } } ] } }"#,
    );
    assert!(
        msg.contains("mcp.mcp_servers[0].transport.auth.client_id"),
        "{msg}"
    );
    assert!(!msg.contains("SCHEDULER-CLIENT-ID"), "{msg}");

    let msg = parse_err(
        r#"{ "mcp": { "mcp_servers": [ { "name": "S",
            "transport": { "type": "http", "url": "https://a.example/mcp" } } ] },
          "azure": { "application_insights_connection_string": "@Microsoft.KeyVault(SecretUri=https://kv/secrets/AI-CS/)" } }"#,
    );
    assert!(
        msg.contains("azure.application_insights_connection_string"),
        "{msg}"
    );
    assert!(!msg.contains("AI-CS"), "{msg}");

    let msg = parse_err(&with_transport(
        r#"{ "type": "stdio", "command": "x", "env": { "TOKEN": "@Microsoft.KeyVault(VaultName=kv;SecretName=TOK)" } }"#,
    ));
    assert!(
        msg.contains("mcp.mcp_servers[0].transport.env.TOKEN"),
        "{msg}"
    );
    assert!(!msg.contains("SecretName=TOK"), "{msg}");
}

#[test]
fn load_rejects_a_key_vault_reference_left_for_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.json");
    std::fs::write(
        &path,
        MINIMAL.replace("key-123", "@Microsoft.KeyVault(VaultName=kv;SecretName=K)"),
    )
    .unwrap();
    // Unless the environment supplies the key, which replaces the reference before validation.
    if std::env::var("SCHEDULER_API_KEY").map_or(true, |v| v.is_empty()) {
        let msg = Config::load(&path).unwrap_err().to_string();
        assert!(msg.contains("kv.json"), "{msg}");
        assert!(
            msg.contains("mcp.mcp_servers[0].transport.auth.api_key"),
            "{msg}"
        );
        assert!(!msg.contains("SecretName=K"), "{msg}");
    }
}

#[test]
fn server_lookup_lists_configured_names() {
    let config = parse(
        r#"{ "mcp": { "mcp_servers": [
            { "name": "A", "transport": { "type": "http", "url": "https://a.example" } },
            { "name": "B", "transport": { "type": "stdio", "command": "b" } } ] } }"#,
    );
    assert_eq!(
        config.server("B").unwrap().transport.kind,
        TransportKind::Stdio
    );
    let err = config.server("nope").unwrap_err();
    assert!(err.is_config());
    let msg = err.to_string();
    assert!(msg.contains("`nope`"), "{msg}");
    assert!(msg.contains("configured: A, B"), "{msg}");
}

#[test]
fn redacted_hides_secrets_and_shows_defaults() {
    let mut config = parse(
        r#"{ "mcp": { "mcp_servers": [
            { "name": "A", "transport": { "type": "http", "url": "https://a.example",
                "auth": { "client_id": "client-a", "api_key": "api-key-value" } } },
            { "name": "B", "transport": { "type": "stdio", "command": "b",
                "env": { "TOKEN": "env-secret-value" } } } ] },
          "azure": { "application_insights_connection_string": "InstrumentationKey=cs-secret-value" } }"#,
    );
    config.apply_env(env_from(&[])).unwrap();
    let value = config.redacted();
    let text = value.to_string();
    for secret in ["api-key-value", "env-secret-value", "cs-secret-value"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let a = &value["mcp"]["mcp_servers"][0];
    assert_eq!(a["transport"]["auth"]["api_key"], "[redacted]");
    assert_eq!(a["transport"]["auth"]["client_id"], "client-a");
    assert_eq!(a["transport"]["auth"]["token_endpoint"], json!(null));
    assert_eq!(a["transport"]["type"], "http");
    assert_eq!(a["timeout_ms"], 10_000);
    assert_eq!(a["resilience"]["max_retries"], 3);
    assert_eq!(a["resilience"]["probe_interval_ms"], 10_000);
    assert_eq!(a["resilience"]["hedge_delay_ms"], json!(null));
    assert_eq!(a["pool"]["max_connections"], 100);
    let b = &value["mcp"]["mcp_servers"][1];
    assert_eq!(b["transport"]["env"]["TOKEN"], "[redacted]");
    assert_eq!(b["transport"]["auth"], json!(null));
    assert_eq!(
        value["azure"]["application_insights_connection_string"],
        "[redacted]"
    );
    assert_eq!(value["azure"]["use_managed_identity"], false);

    // The redacted view parses back as a configuration of the same shape.
    let back = Config::from_json(&text, "redacted").unwrap();
    assert_eq!(back.mcp.mcp_servers.len(), 2);
}

#[test]
fn debug_shows_no_secret() {
    let config = parse(
        r#"{ "mcp": { "mcp_servers": [
            { "name": "A", "transport": { "type": "http", "url": "https://a.example",
                "auth": { "client_id": "client-a", "api_key": "api-key-value" } } },
            { "name": "B", "transport": { "type": "stdio", "command": "b",
                "env": { "TOKEN": "env-secret-value" } } } ] },
          "azure": { "application_insights_connection_string": "cs-secret-value" } }"#,
    );
    for debug in [format!("{config:?}"), format!("{config:#?}")] {
        for secret in ["api-key-value", "env-secret-value", "cs-secret-value"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("TOKEN"), "env names are shown: {debug}");
    }
}

#[test]
fn configs_can_be_built_in_code() {
    let mut transport = TransportConfig::http("https://a.example/mcp");
    transport.auth = Some(AuthConfig::new("client", Secret::new("k")));
    let config = Config {
        mcp: scheduler::config::McpConfig {
            mcp_servers: vec![
                ServerConfig::new("A", transport),
                ServerConfig::new("B", TransportConfig::stdio("b")),
            ],
        },
        azure: scheduler::config::AzureConfig::default(),
    };
    config.validate().unwrap();
    assert_eq!(config.server("A").unwrap().timeout_ms, 10_000);
}

#[test]
fn canary_api_key_never_appears_in_errors() {
    const CANARY: &str = "canary-7d1e9c3b-api-key";
    let auth = format!(r#""auth": {{ "client_id": "c", "api_key": "{CANARY}" }}"#);
    let server = |transport_extra: &str, server_extra: &str| {
        format!(
            r#"{{ "mcp": {{ "mcp_servers": [ {{ "name": "S",
                "transport": {{ "type": "http", "url": "https://a.example/mcp", {auth} {transport_extra} }}
                {server_extra} }} ] }} }}"#
        )
    };
    let cases = [
        server(r#", "api": 1"#, ""),
        server(r#", "url2": "x""#, ""),
        server(r#", "command": "x""#, ""),
        server(r#", "failover_urls": ["ftp://b"]"#, ""),
        server(r#", "failover_urls": ["https://u:p@b"]"#, ""),
        server(r#", "failover_urls": [1]"#, ""),
        server(r#", "allow_insecure_http": "yes""#, ""),
        server("", r#", "timeout_ms": 0"#),
        server("", r#", "resilience": { "max_delay_ms": 1 }"#),
        server("", r#", "resilience": { "bogus": 1 }"#),
        server("", r#", "pool": { "max_connections": 0 }"#),
        server("", r#", "name": "dup""#),
        server("", r#", "#),
        format!(
            r#"{{ "mcp": {{ "mcp_servers": [ {{ "name": "S",
                "transport": {{ "type": "stdio", "command": "x", {auth} }} }} ] }} }}"#
        ),
        format!(
            r#"{{ "mcp": {{ "mcp_servers": [ {{ "name": "S",
                "transport": {{ "type": "http", "url": "https://a.example/mcp",
                  "auth": {{ "client_id": "", "api_key": "{CANARY}" }} }} }} ] }} }}"#
        ),
        format!(
            r#"{{ "mcp": {{ "mcp_servers": [ {{ "name": "S",
                "transport": {{ "type": "http", "url": "https://a.example/mcp",
                  "auth": {{ "client_id": "c", "api_key": "{CANARY}", "scopes": [""] }} }} }} ] }} }}"#
        ),
        // The secret in the wrong place: serde would quote the mistyped value.
        format!(
            r#"{{ "mcp": {{ "mcp_servers": [ {{ "name": "S",
                "transport": {{ "type": "http", "url": "https://a.example/mcp", "auth": "{CANARY}" }} }} ] }} }}"#
        ),
        format!(
            r#"{{ "mcp": {{ "mcp_servers": [ {{ "name": "S",
                "transport": {{ "type": "http", "url": "https://a.example/mcp", {auth} }},
                "timeout_ms": "{CANARY}" }} ] }} }}"#
        ),
        format!(
            r#"{{ "mcp": {{ "mcp_servers": [ {{ "name": "S",
                "transport": {{ "type": "http", "url": "https://a.example/mcp",
                  "auth": {{ "client_id": "c", "api_key": "@Microsoft.KeyVault({CANARY})" }} }} }} ] }} }}"#
        ),
        format!(
            r#"{{ "mcp": {{ "mcp_servers": [ {{ "name": "S",
                "transport": {{ "type": "http", "url": "https://user:{CANARY}@a.example/mcp" }} }} ] }} }}"#
        ),
    ];
    let mut checked = 0;
    for text in &cases {
        let err = match Config::from_json(text, "canary.json") {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e,
        };
        for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
            assert!(!shown.contains(CANARY), "canary leaked: {shown}");
        }
        checked += 1;
    }
    assert_eq!(checked, cases.len());

    // A valid config with the canary: Debug, redacted, lookups and env errors.
    let mut config = parse(&server("", ""));
    assert!(!format!("{config:?}").contains(CANARY));
    assert!(!config.redacted().to_string().contains(CANARY));
    let err = config.server("missing").unwrap_err();
    assert!(!format!("{err} {err:?}").contains(CANARY));
    config.mcp.mcp_servers[0].transport.auth = None;
    let err = config
        .apply_env(env_from(&[("SCHEDULER_API_KEY", CANARY)]))
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(CANARY));
    let mut config = parse(&server("", ""));
    config.mcp.mcp_servers[0].pool.max_connections = 0;
    let err = config
        .apply_env(env_from(&[("SCHEDULER_API_KEY", CANARY)]))
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(CANARY));
}

mod key_vault_references {
    //! References resolved through `from_json_with_vaults` with in-memory vaults (the Key
    //! Vault store over the SDK is tested in azure-secrets against the fakes).

    use std::sync::Arc;

    use azure_secrets::{EnvStore, Error as SecretsError, SecretStore};
    use scheduler::config::Config;

    const KEY: &str = "canary-5b2e-api-key-from-vault";

    fn vault(url: &str) -> Result<Arc<dyn SecretStore>, SecretsError> {
        assert_eq!(url, "https://kv-prod.vault.azure.net");
        Ok(Arc::new(EnvStore::with(|name| match name {
            "SCHEDULER-CLIENT-ID" => Some("sch_from_vault".to_owned()),
            "SCHEDULER-API-KEY" => Some(KEY.to_owned()),
            _ => None,
        })))
    }

    const TEXT: &str = r#"{
        "mcp": {"mcp_servers": [{"name": "Scheduler", "transport": {"type": "http",
            "url": "https://scheduler.example/mcp",
            "auth": {
                "client_id": "@Microsoft.KeyVault(VaultName=kv-prod;SecretName=SCHEDULER-CLIENT-ID)",
                "api_key": "@Microsoft.KeyVault(SecretName=SCHEDULER-API-KEY)"
            }}}]},
        "azure": {"key_vault_name": "kv-prod"}
    }"#;

    #[tokio::test]
    async fn references_resolve_then_the_environment_and_validation_apply() {
        let config = Config::from_json_with_vaults(TEXT, "scheduler.json", &vault, |_| None)
            .await
            .unwrap();
        let auth = config.mcp.mcp_servers[0].transport.auth.as_ref().unwrap();
        assert_eq!(auth.client_id, "sch_from_vault");
        assert_eq!(auth.api_key.expose_secret(), KEY);
        assert!(!format!("{config:?}").contains(KEY));
        // The environment still wins.
        let config = Config::from_json_with_vaults(TEXT, "scheduler.json", &vault, |k| {
            (k == "SCHEDULER_API_KEY").then(|| "from-env".to_owned())
        })
        .await
        .unwrap();
        let auth = config.mcp.mcp_servers[0].transport.auth.as_ref().unwrap();
        assert_eq!(auth.api_key.expose_secret(), "from-env");
    }

    #[tokio::test]
    async fn a_missing_secret_names_the_file_path_and_reference_never_a_value() {
        let text = TEXT.replace("SCHEDULER-CLIENT-ID)", "NO-SUCH-SECRET)");
        let err = Config::from_json_with_vaults(&text, "scheduler.json", &vault, |_| None)
            .await
            .unwrap_err();
        assert!(err.is_config());
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("scheduler.json"), "{shown}");
        assert!(
            shown.contains("mcp.mcp_servers[0].transport.auth.client_id"),
            "{shown}"
        );
        assert!(shown.contains("NO-SUCH-SECRET"), "{shown}");
        assert!(!shown.contains(KEY), "{shown}");
    }
}

mod sovereign_clouds {
    //! `azure.cloud`: the vault suffix of named vaults, and a clear error for an unknown cloud.

    use std::sync::Arc;

    use azure_secrets::{EnvStore, Error as SecretsError, SecretStore};
    use scheduler::config::Config;

    fn text(cloud: &str) -> String {
        format!(
            r#"{{"mcp": {{"mcp_servers": [{{"name": "S", "transport": {{"type": "http",
                "url": "https://scheduler.example/mcp",
                "auth": {{"client_id": "id", "api_key": "@Microsoft.KeyVault(VaultName=kv-cn;SecretName=K)"}}}}}}]}},
                "azure": {{"cloud": "{cloud}"}}}}"#
        )
    }

    #[tokio::test]
    async fn a_named_vault_in_azure_china_uses_its_suffix() {
        let vault = |url: &str| -> Result<Arc<dyn SecretStore>, SecretsError> {
            assert_eq!(url, "https://kv-cn.vault.azure.cn");
            Ok(Arc::new(EnvStore::with(|_| Some("v".to_owned()))))
        };
        let config = Config::from_json_with_vaults(&text("AzureChina"), "c.json", &vault, |_| None)
            .await
            .unwrap();
        assert_eq!(config.redacted()["azure"]["cloud"], "AzureChina");
    }

    #[test]
    fn an_unknown_cloud_is_named() {
        let text = r#"{"mcp": {"mcp_servers": [{"name": "S", "transport": {"type": "http",
            "url": "https://scheduler.example/mcp"}}]}, "azure": {"cloud": "Mars"}}"#;
        let err = Config::from_json(text, "c.json").unwrap_err();
        assert!(
            err.to_string().contains("azure.cloud") && err.to_string().contains("Mars"),
            "{err}"
        );
    }
}
