//! The client under test for the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`). The suite starts a scenario server and runs this
//! binary with the server URL as the last argument, the scenario name in
//! `MCP_CONFORMANCE_SCENARIO`, optional JSON context in `MCP_CONFORMANCE_CONTEXT` and (suite
//! 0.2) the protocol version in `MCP_CONFORMANCE_PROTOCOL_VERSION`. Exit 0 means the client
//! finished its part; the suite judges the wire traffic.

mod auth;

use std::process::ExitCode;
use std::time::Duration;

use mcp_transport::jsonrpc::RpcError;
use mcp_transport::transport::BoxFuture;
use mcp_transport::types::ClientCapabilities;
use mcp_transport::{
    CallOptions, ClientHandler, HttpTransport, Implementation, McpClient, ProtocolChoice, Tool,
};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// Accepts every elicitation, filling each field from its schema `default`.
struct AcceptWithDefaults;

impl ClientHandler for AcceptWithDefaults {
    fn request<'a>(
        &'a self,
        method: &'a str,
        params: Option<&'a RawValue>,
    ) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            if method != "elicitation/create" {
                return Err(RpcError::new(-32601, format!("unsupported: {method}")));
            }
            let params: Value = params
                .and_then(|p| serde_json::from_str(p.get()).ok())
                .unwrap_or(Value::Null);
            let mut content = Map::new();
            if let Some(Value::Object(props)) = params.pointer("/requestedSchema/properties") {
                for (name, schema) in props {
                    let value = schema
                        .get("default")
                        .cloned()
                        .unwrap_or_else(|| sample(schema));
                    content.insert(name.clone(), value);
                }
            }
            Ok(json!({"action": "accept", "content": content}))
        })
    }
}

/// A value of the schema's type.
fn sample(schema: &Value) -> Value {
    if let Some(Value::Array(options)) = schema.get("enum") {
        return options.first().cloned().unwrap_or(Value::Null);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("number") => json!(1.0),
        Some("integer") => json!(1),
        Some("boolean") => json!(true),
        Some("object") => json!({}),
        Some("array") => json!([]),
        _ => json!("test"),
    }
}

/// Arguments for a tool: every required property gets a sample value.
fn arguments_for(tool: &Tool) -> Value {
    let mut args = Map::new();
    let props = tool.input_schema.get("properties");
    if let Some(Value::Array(required)) = tool.input_schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            let schema = props.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
            args.insert(name.to_owned(), sample(schema));
        }
    }
    Value::Object(args)
}

async fn call_all(client: &McpClient, tools: &[Tool]) -> Result<(), mcp_transport::Error> {
    for tool in tools {
        let result = client
            .call_tool(&tool.name, arguments_for(tool), CallOptions::new())
            .await?;
        eprintln!("{} -> {}", tool.name, result.text());
    }
    Ok(())
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn run(scenario: &str, url: &str, context: Value) -> Result<(), Failure> {
    let version = std::env::var("MCP_CONFORMANCE_PROTOCOL_VERSION")
        .unwrap_or_else(|_| "2025-11-25".to_owned());
    let transport = if scenario.starts_with("auth/") {
        auth::transport(scenario, url, &context)?
    } else {
        HttpTransport::new(url)?
    };
    let client = McpClient::builder()
        .client_info(Implementation::new(
            "mcp-conformance-client",
            env!("CARGO_PKG_VERSION"),
        ))
        .capabilities(ClientCapabilities {
            elicitation: Some(json!({})),
            ..ClientCapabilities::default()
        })
        .protocol(ProtocolChoice::Version(version))
        .handler(AcceptWithDefaults)
        .default_timeout(Duration::from_secs(20))
        .connect(transport)
        .await?;
    let tools = client.list_tools().await?;
    match scenario {
        "initialize" | "json-schema-ref-no-deref" | "request-metadata" => {}
        "tools_call"
        | "http-invalid-tool-headers"
        | "sep-2322-client-request-state"
        | "sse-retry"
        | "elicitation-sep1034-client-defaults" => call_all(&client, &tools).await?,
        "http-custom-headers" => {
            let calls = context
                .get("toolCalls")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for call in calls {
                let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
                let args = call.get("arguments").cloned().unwrap_or(json!({}));
                client.call_tool(name, args, CallOptions::new()).await?;
            }
        }
        "http-standard-headers" => {
            call_all(&client, &tools).await?;
            let resources = client
                .request("resources/list", Map::new(), CallOptions::new())
                .await?;
            let resources: Value = serde_json::from_str(resources.get()).unwrap_or(Value::Null);
            for r in resources["resources"].as_array().into_iter().flatten() {
                let mut params = Map::new();
                params.insert("uri".into(), r["uri"].clone());
                client
                    .request("resources/read", params, CallOptions::new())
                    .await?;
            }
            let prompts = client
                .request("prompts/list", Map::new(), CallOptions::new())
                .await?;
            let prompts: Value = serde_json::from_str(prompts.get()).unwrap_or(Value::Null);
            for p in prompts["prompts"].as_array().into_iter().flatten() {
                let mut params = Map::new();
                params.insert("name".into(), p["name"].clone());
                client
                    .request("prompts/get", params, CallOptions::new())
                    .await?;
            }
        }
        "json-schema-2020-12-preservation" => {
            let schema = tools
                .iter()
                .find(|t| t.name == "json_schema_2020_12_tool")
                .map(|t| Value::Object(t.input_schema.clone()))
                .unwrap_or(Value::Null);
            client
                .call_tool(
                    "json_schema_echo",
                    json!({"schema": schema}),
                    CallOptions::new(),
                )
                .await?;
        }
        // Authorization scenarios judge the auth traffic; calling the tools exercises it
        // (per-operation scopes in auth/scope-step-up, a moved server in the migration one).
        auth if auth.starts_with("auth/") => call_all(&client, &tools).await?,
        other => {
            eprintln!("unknown scenario {other:?}: listing tools and calling each");
            call_all(&client, &tools).await?;
        }
    }
    Ok(client.close().await?)
}

fn main() -> ExitCode {
    let Some(url) = std::env::args().skip(1).last() else {
        eprintln!("usage: mcp-conformance-client <server-url>");
        return ExitCode::from(2);
    };
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let context = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or(Value::Null);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(25), run(&scenario, &url, context)).await
    });
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("scenario {scenario:?} failed: {e} ({e:?})");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("scenario {scenario:?} timed out");
            ExitCode::FAILURE
        }
    }
}
