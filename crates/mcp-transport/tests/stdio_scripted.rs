//! The stdio transport against a scripted peer: a small Python (standard library only) MCP
//! server written for these tests, so they can produce exact sequences (progress before the
//! response, a server-initiated request, stderr noise, a crash mid-call) that real servers
//! produce only by chance. Interop with real stdio servers lives in `interop/`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_transport::stdio::{StdioConfig, StdioTransport};
use mcp_transport::{CallOptions, McpClient, ProtocolChoice};
use serde_json::json;

const SERVER: &str = r#"
import json, sys
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
sys.stderr.write("scripted server starting\n"); sys.stderr.flush()
for line in sys.stdin:
    if not line.strip():
        continue
    m = json.loads(line)
    method, mid = m.get("method"), m.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": m["params"]["protocolVersion"],
              "capabilities": {"tools": {}}, "serverInfo": {"name": "scripted", "version": "1"}, "extra": True}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}})
    elif method == "tools/call":
        args = m["params"].get("arguments", {})
        if args.get("crash"):
            sys.exit(3)
        if args.get("plain"):
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": args["text"]}]}})
            continue
        token = m["params"].get("_meta", {}).get("progressToken")
        if token is not None:
            for i in (1, 2):
                send({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": i, "total": 2}})
        # ask the client something it cannot answer, and a ping; wait for both answers
        send({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage", "params": {}})
        send({"jsonrpc": "2.0", "id": "s2", "method": "ping"})
        answers = {}
        while len(answers) < 2:
            a = json.loads(sys.stdin.readline())
            if "id" in a and a["id"] in ("s1", "s2") and "method" not in a:
                answers[a["id"]] = a
        note = "s1:%s s2:%s" % (answers["s1"].get("error", {}).get("code"), "ok" if "result" in answers["s2"] else "bad")
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": args.get("text", "") + " | " + note}]}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "nope"}})
"#;

fn config() -> StdioConfig {
    StdioConfig::new("python3").arg("-c").arg(SERVER)
}

async fn connect() -> (McpClient, Arc<StdioTransport>) {
    let transport = Arc::new(StdioTransport::spawn(&config()).expect("spawn python3"));
    let client = McpClient::builder()
        .protocol(ProtocolChoice::Version("2025-11-25".into()))
        .connect(transport.clone())
        .await
        .expect("connect");
    (client, transport)
}

#[tokio::test]
async fn call_with_progress_and_server_requests_round_trips() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (client, _transport) = connect().await;
        assert_eq!(client.protocol_version(), "2025-11-25");
        assert_eq!(
            client.server_info().implementation.as_ref().unwrap().name,
            "scripted"
        );
        let tools = client.list_tools().await.unwrap();
        assert_eq!(tools[0].name, "echo");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let result = client
            .call_tool(
                "echo",
                json!({"text": "hi"}),
                CallOptions::new().on_progress(move |p| sink.lock().unwrap().push(p.progress)),
            )
            .await
            .unwrap();
        // The unsupported server request got -32601; the server's ping got a result.
        assert_eq!(result.text(), "hi | s1:-32601 s2:ok");
        assert_eq!(*seen.lock().unwrap(), [1.0, 2.0]);
        client.ping().await.unwrap();
        client.close().await.unwrap();
        assert!(client.ping().await.unwrap_err().is_closed());
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn concurrent_calls_are_matched_by_id() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (client, _transport) = connect().await;
        let calls: Vec<_> = (0..16)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    let r = client
                        .call_tool(
                            "echo",
                            json!({"text": format!("n{i}"), "plain": true}),
                            CallOptions::new(),
                        )
                        .await
                        .unwrap();
                    assert_eq!(r.text(), format!("n{i}"));
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn server_crash_fails_the_pending_call_instead_of_hanging() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (client, _transport) = connect().await;
        let err = client
            .call_tool("echo", json!({"crash": true}), CallOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_closed(), "{err:?}");
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn dropping_the_transport_kills_the_child() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (client, transport) = connect().await;
        let pid = transport.pid().await.expect("running");
        drop(client);
        drop(transport);
        let proc_path = format!("/proc/{pid}/stat");
        for _ in 0..200 {
            // A killed child is reaped by tokio; until then it is a zombie ('Z').
            match std::fs::read_to_string(&proc_path) {
                Err(_) => return,
                Ok(stat) if stat.split_whitespace().nth(2) == Some("Z") => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        panic!("child {pid} still running after the transport was dropped");
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn missing_program_is_a_connect_error_naming_it() {
    let err = StdioTransport::spawn(&StdioConfig::new("definitely-not-a-program-xyz")).unwrap_err();
    assert!(err.is_connect());
    assert!(err.to_string().contains("definitely-not-a-program-xyz"));
}
