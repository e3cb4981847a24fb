//! The Streamable HTTP transport and `McpClient` against a scripted server
//! (`testkit::mcp_http::ScriptedMcpServer`) on loopback: every test here uses a scripted server,
//! to produce what a real peer cannot easily be made to do on cue — an expired session, an SSE
//! stream that breaks before the response, a server request in the middle of a call, a response
//! that never comes, a cursor that repeats. Interop with real servers lives elsewhere.
//!
//! Every test is bounded in time; tests that wait on the client's own timers run with paused
//! time (`start_paused`), so they take no wall-clock time and need no fixed sleeps.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use mcp_transport::http::{HttpClient, HttpConfig};
use mcp_transport::{
    CallOptions, HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice, types,
};
use serde_json::{Value, json};
use testkit::mcp_http::{
    Gate, RecordedRequest, ScriptedMcpServer, ScriptedResponse, SseEvent, SseStep,
    rpc_notification, rpc_request, rpc_result,
};

/// Upper bound of every test (virtual time in paused tests).
const LIMIT: Duration = Duration::from_secs(30);

const SESSION_VERSION: &str = "2025-11-25";

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test did not finish in time")
}

fn transport_with(server: &ScriptedMcpServer, config: HttpTransportConfig) -> HttpTransport {
    let http = HttpClient::new(&HttpConfig::default()).expect("HTTP client");
    HttpTransport::with_service(&server.url(), config, http).expect("transport")
}

async fn connect_with(server: &ScriptedMcpServer, config: HttpTransportConfig) -> McpClient {
    McpClient::builder()
        .protocol(ProtocolChoice::Version(SESSION_VERSION.into()))
        .connect(transport_with(server, config))
        .await
        .expect("connect")
}

async fn connect(server: &ScriptedMcpServer) -> McpClient {
    connect_with(server, HttpTransportConfig::default()).await
}

fn no_get_stream() -> HttpTransportConfig {
    let mut config = HttpTransportConfig::default();
    config.open_get_stream = false;
    config
}

/// A session server whose `tools/call` answers are held until `gate` opens.
async fn holding_calls(gate: &Gate) -> ScriptedMcpServer {
    let gate = gate.clone();
    ScriptedMcpServer::mcp()
        .on("tools/call", move |req, defaults| {
            let held = defaults.respond(&req).after(&gate);
            async move { held }
        })
        .start()
        .await
        .expect("scripted server")
}

fn id_of(req: &RecordedRequest) -> Value {
    req.rpc_id().cloned().expect("request has a JSON-RPC id")
}

fn echo_of(result: &types::CallToolResult) -> Value {
    result
        .structured_content
        .clone()
        .expect("echo returns structuredContent")
}

/// Session id, then protocol version header, of a recorded request.
fn session_headers(req: &RecordedRequest) -> (Option<&str>, Option<&str>) {
    (req.session_id(), req.protocol_version())
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// Scripted server: the session id from `initialize` goes on every later request (POST, GET,
/// DELETE), and `MCP-Protocol-Version` on every request after `initialize` but not on it.
#[tokio::test]
async fn session_id_and_protocol_version_header_follow_initialize() {
    bounded(async {
        let server = ScriptedMcpServer::mcp().start().await.unwrap();
        let client = connect(&server).await;
        server
            .wait_for(|all| all.iter().any(|r| r.method == Method::GET))
            .await;
        client.list_tools().await.unwrap();
        client
            .call_tool("echo", json!({"a": 1}), CallOptions::new())
            .await
            .unwrap();
        client.ping().await.unwrap();
        client.close().await.unwrap();

        let all = server.requests();
        let init = &all[0];
        assert!(init.is_rpc("initialize"));
        assert_eq!(
            session_headers(init),
            (None, None),
            "initialize carries neither"
        );
        assert_eq!(init.header("content-type"), Some("application/json"));
        let accept = init.header("accept").unwrap();
        assert!(accept.contains("application/json") && accept.contains("text/event-stream"));
        assert_eq!(all.len(), 7, "{all:#?}");
        for req in &all[1..] {
            assert_eq!(
                session_headers(req),
                (Some("session-1"), Some(SESSION_VERSION)),
                "{} {:?}",
                req.method,
                req.rpc_method()
            );
        }
        let methods: Vec<_> = all.iter().filter_map(|r| r.rpc_method()).collect();
        assert_eq!(
            methods,
            [
                "initialize",
                "notifications/initialized",
                "tools/list",
                "tools/call",
                "ping"
            ]
        );
        assert_eq!(server.http_requests(&Method::GET).len(), 1);
        assert_eq!(server.http_requests(&Method::DELETE).len(), 1);
    })
    .await;
}

/// Scripted server: a `404` to a request carrying the session id means the session expired;
/// the client runs exactly one new `initialize` + `notifications/initialized` (without the old
/// session id) and replays the request once, on the new session.
#[tokio::test]
async fn expired_session_404_reinitializes_once_and_replays_the_request() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |req, defaults| async move {
                if req.session_id() == Some("session-1") {
                    ScriptedResponse::status(404)
                } else {
                    defaults.respond(&req)
                }
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let result = client
            .call_tool("echo", json!({"x": "replayed"}), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(echo_of(&result), json!({"x": "replayed"}));

        let inits = server.rpc_requests("initialize");
        assert_eq!(inits.len(), 2);
        assert_eq!(
            inits[1].session_id(),
            None,
            "re-initialize must not carry the old id"
        );
        assert_eq!(
            inits[1].body, inits[0].body,
            "the original initialize is replayed"
        );
        let initialized = server.rpc_requests("notifications/initialized");
        assert_eq!(initialized.len(), 2);
        assert_eq!(initialized[1].session_id(), Some("session-2"));
        let calls = server.rpc_requests("tools/call");
        assert_eq!(calls.len(), 2, "one original, one replay");
        assert_eq!(calls[0].session_id(), Some("session-1"));
        assert_eq!(calls[1].session_id(), Some("session-2"));
        assert_eq!(
            calls[1].body, calls[0].body,
            "the replay is the same message"
        );
        assert!(inits[1].seq < initialized[1].seq && initialized[1].seq < calls[1].seq);
    })
    .await;
}

/// Scripted server: when the replay after re-initializing gets `404` again, the call fails
/// with that status instead of re-initializing in a loop.
#[tokio::test]
async fn second_404_in_a_row_is_an_error_not_a_loop() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |_req, _defaults| async {
                ScriptedResponse::status(404)
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let err = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_status(), "{err:?}");
        assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND));
        assert_eq!(server.rpc_requests("initialize").len(), 2);
        assert_eq!(server.rpc_requests("tools/call").len(), 2);
    })
    .await;
}

/// Scripted server: ten requests in flight on an expired session all get `404` at once; the
/// client re-initializes once and every request is replayed on the new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_404s_cause_one_reinitialize() {
    const N: usize = 10;
    bounded(async {
        let release = Gate::new();
        let gate = release.clone();
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", move |req, defaults| {
                let gate = gate.clone();
                async move {
                    if req.session_id() == Some("session-1") {
                        gate.wait().await; // answer all ten together
                        ScriptedResponse::status(404)
                    } else {
                        defaults.respond(&req)
                    }
                }
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..N {
            let client = client.clone();
            calls.spawn(async move {
                let r = client
                    .call_tool("echo", json!({"n": n}), CallOptions::new())
                    .await;
                (n, r)
            });
        }
        server.wait_for_rpc("tools/call", N).await;
        release.open();
        while let Some(joined) = calls.join_next().await {
            let (n, result) = joined.unwrap();
            assert_eq!(echo_of(&result.unwrap()), json!({"n": n}));
        }
        assert_eq!(
            server.rpc_requests("initialize").len(),
            2,
            "one re-initialize"
        );
        assert_eq!(server.rpc_requests("notifications/initialized").len(), 2);
        let calls = server.rpc_requests("tools/call");
        assert_eq!(calls.len(), 2 * N);
        assert!(
            calls[N..]
                .iter()
                .all(|r| r.session_id() == Some("session-2"))
        );
    })
    .await;
}

/// Scripted server (which, as the spec says servers should, rejects a non-initialize request
/// without a session id with `400`): a request started while the client is re-initializing an
/// expired session waits for the new session instead of going out without any session id.
#[tokio::test]
async fn request_started_during_reinitialization_uses_the_new_session() {
    bounded(async {
        let init_gate = Gate::new();
        let gate = init_gate.clone();
        let server = ScriptedMcpServer::mcp()
            .on("initialize", move |req, defaults| {
                let gate = gate.clone();
                async move {
                    let resp = defaults.respond(&req);
                    if defaults.sessions_started() > 1 {
                        resp.after(&gate) // hold the re-initialize
                    } else {
                        resp
                    }
                }
            })
            .on("tools/call", |req, defaults| async move {
                match req.session_id() {
                    Some("session-1") => ScriptedResponse::status(404),
                    None => ScriptedResponse::status(400).with_body("missing MCP-Session-Id"),
                    Some(_) => defaults.respond(&req),
                }
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let first = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .call_tool("echo", json!({"n": 1}), CallOptions::new())
                    .await
            }
        });
        server.wait_for_rpc("initialize", 2).await; // re-initialization under way, held
        let second = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .call_tool("echo", json!({"n": 2}), CallOptions::new())
                    .await
            }
        });
        // Let the second call run up to its first wait (it builds its request there).
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        init_gate.open();
        assert_eq!(echo_of(&first.await.unwrap().unwrap()), json!({"n": 1}));
        let second = second.await.unwrap();
        let without_session =
            server.requests_where(|r| r.is_rpc("tools/call") && r.session_id().is_none());
        assert!(
            without_session.is_empty(),
            "sent without a session id: {without_session:#?}"
        );
        assert_eq!(echo_of(&second.unwrap()), json!({"n": 2}));
    })
    .await;
}

/// Scripted server: `close()` sends `DELETE` with the session id; later calls fail as closed.
#[tokio::test]
async fn close_deletes_the_session() {
    bounded(async {
        let server = ScriptedMcpServer::mcp().start().await.unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        client.close().await.unwrap();
        let deletes = server.http_requests(&Method::DELETE);
        assert_eq!(deletes.len(), 1);
        assert_eq!(deletes[0].session_id(), Some("session-1"));
        assert_eq!(deletes[0].protocol_version(), Some(SESSION_VERSION));
        let err = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_closed(), "{err:?}");
        client.close().await.unwrap(); // idempotent, and no second DELETE
        assert_eq!(server.http_requests(&Method::DELETE).len(), 1);
    })
    .await;
}

/// Scripted server: a server that does not let clients end sessions answers `DELETE` with
/// `405`; `close()` still succeeds.
#[tokio::test]
async fn close_accepts_405_on_delete() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on_delete(|_req, _defaults| async { ScriptedResponse::status(405) })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        client.close().await.unwrap();
        assert_eq!(server.http_requests(&Method::DELETE).len(), 1);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Response forms and SSE

/// Scripted server answering one call with plain JSON and the next with an SSE stream: both
/// complete their calls.
#[tokio::test]
async fn json_and_sse_responses_both_complete_calls() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |req, defaults| async move {
                let args = &req.params().unwrap()["arguments"];
                if args["as"] == "sse" {
                    let id = id_of(&req);
                    ScriptedResponse::sse([SseStep::Event(SseEvent::message(&rpc_result(
                        &id,
                        json!({"content": [{"type": "text", "text": "streamed"}]}),
                    )))])
                } else {
                    defaults.respond(&req)
                }
            })
            .start()
            .await
            .unwrap();
        let client = connect(&server).await;
        let plain = client
            .call_tool("echo", json!({"as": "json"}), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(echo_of(&plain), json!({"as": "json"}));
        let streamed = client
            .call_tool("echo", json!({"as": "sse"}), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(streamed.text(), "streamed");
    })
    .await;
}

/// Scripted server whose SSE stream starts with a priming event (an id and empty data), a
/// keep-alive comment and an event of another type: none of them is taken for a message.
#[tokio::test]
async fn sse_priming_event_and_comments_are_ignored() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |req, _defaults| async move {
                let id = id_of(&req);
                ScriptedResponse::sse([
                    SseEvent::priming("p-0")
                        .retry(Duration::from_millis(5000))
                        .into(),
                    SseStep::Comment("keep-alive".into()),
                    SseEvent::data("not json at all").event("other").into(),
                    SseEvent::message(&rpc_result(&id, json!({"content": [], "isError": false})))
                        .id("p-1")
                        .into(),
                ])
            })
            .start()
            .await
            .unwrap();
        let client = connect(&server).await;
        let result = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap();
        assert!(!result.is_error);
        assert_eq!(server.rpc_requests("tools/call").len(), 1);
        assert!(
            server
                .requests_where(|r| r.last_event_id().is_some())
                .is_empty(),
            "a complete stream is never resumed"
        );
    })
    .await;
}

/// Scripted server sending three progress notifications and then the response back to back on
/// one SSE stream: the progress callback sees all three, in order, before the call returns.
#[tokio::test]
async fn progress_on_the_sse_stream_reaches_the_callback_in_order_before_the_result() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |req, _defaults| async move {
                let id = id_of(&req);
                let token = req.params().unwrap()["_meta"]["progressToken"].clone();
                let mut steps: Vec<SseStep> = (1..=3)
                    .map(|i| {
                        SseEvent::message(&rpc_notification(
                            "notifications/progress",
                            json!({"progressToken": token, "progress": i, "total": 3,
                                   "message": format!("step {i}")}),
                        ))
                        .into()
                    })
                    .collect();
                steps.push(SseEvent::message(&rpc_result(&id, json!({"content": []}))).into());
                ScriptedResponse::sse(steps)
            })
            .start()
            .await
            .unwrap();
        let client = connect(&server).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        client
            .call_tool(
                "echo",
                json!({}),
                CallOptions::new().on_progress(move |p| sink.lock().unwrap().push(p)),
            )
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        let steps: Vec<f64> = seen.iter().map(|p| p.progress).collect();
        assert_eq!(steps, [1.0, 2.0, 3.0]);
        assert_eq!(seen[2].message.as_deref(), Some("step 3"));
        assert_eq!(seen[0].total, Some(3.0));
    })
    .await;
}

/// Scripted server that ends the call's SSE stream after a priming event (id + `retry`) and no
/// response: the client waits the `retry` time, resumes with `GET` + `Last-Event-ID` on the
/// same session, and the response arriving on that stream completes the call.
#[tokio::test(start_paused = true)]
async fn sse_stream_closed_before_the_response_resumes_with_last_event_id_after_retry() {
    const RETRY: Duration = Duration::from_millis(3000);
    bounded(async {
        let pending = Arc::new(Mutex::new(None::<Value>));
        let on_call = pending.clone();
        let on_get = pending.clone();
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", move |req, _defaults| {
                *on_call.lock().unwrap() = Some(id_of(&req));
                async { ScriptedResponse::sse([SseEvent::priming("e1").retry(RETRY).into()]) }
            })
            .on_get(move |req, defaults| {
                let id = on_get.lock().unwrap().clone();
                async move {
                    match (req.last_event_id(), id) {
                        (Some("e1"), Some(id)) => ScriptedResponse::sse([
                            SseEvent::priming("e2").into(),
                            SseEvent::message(&rpc_result(
                                &id,
                                json!({"content": [{"type": "text", "text": "resumed"}]}),
                            ))
                            .id("e3")
                            .into(),
                        ]),
                        _ => defaults.respond(&req),
                    }
                }
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let result = client
            .call_tool("slow", json!({}), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(result.text(), "resumed");

        let post = &server.rpc_requests("tools/call")[0];
        let gets = server.http_requests(&Method::GET);
        assert_eq!(gets.len(), 1, "{gets:#?}");
        assert_eq!(gets[0].last_event_id(), Some("e1"));
        assert_eq!(
            session_headers(&gets[0]),
            (Some("session-1"), Some(SESSION_VERSION))
        );
        assert_eq!(gets[0].header("accept"), Some("text/event-stream"));
        let waited = gets[0].received_at - post.received_at;
        assert!(
            waited >= RETRY,
            "resumed after {waited:?}, before retry {RETRY:?}"
        );
        assert!(waited < RETRY * 2, "resumed only after {waited:?}");
    })
    .await;
}

/// Scripted server whose SSE stream breaks before the response every time, on the POST and
/// on every resumption: the call fails after `max_resumptions` resumptions instead of looping.
#[tokio::test(start_paused = true)]
async fn sse_stream_that_keeps_breaking_fails_after_max_resumptions() {
    bounded(async {
        let events = Arc::new(AtomicUsize::new(0));
        let on_call = events.clone();
        let on_get = events.clone();
        let broken = move |n: usize| {
            ScriptedResponse::sse([SseEvent::priming(format!("e{n}"))
                .retry(Duration::from_millis(100))
                .into()])
        };
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", move |_req, _defaults| {
                let n = on_call.fetch_add(1, Ordering::SeqCst);
                async move { broken(n) }
            })
            .on_get(move |_req, _defaults| {
                let n = on_get.fetch_add(1, Ordering::SeqCst);
                async move { broken(n) }
            })
            .start()
            .await
            .unwrap();
        let mut config = no_get_stream();
        config.max_resumptions = 3;
        let client = connect_with(&server, config).await;
        let err = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_closed(), "{err:?}");
        let gets = server.http_requests(&Method::GET);
        assert_eq!(gets.len(), 3, "{gets:#?}");
        let ids: Vec<_> = gets.iter().map(|g| g.last_event_id()).collect();
        assert_eq!(
            ids,
            [Some("e0"), Some("e1"), Some("e2")],
            "each resumes from the last id"
        );
        assert_eq!(
            server.rpc_requests("tools/call").len(),
            1,
            "the POST is never repeated"
        );
    })
    .await;
}

/// Scripted server whose SSE stream is torn down (no clean end of the body) after an event
/// with an id: the client resumes just as for a clean end, and the resumed stream completes
/// the call.
#[tokio::test(start_paused = true)]
async fn sse_stream_broken_mid_call_resumes_too() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |_req, _defaults| async move {
                ScriptedResponse::sse([
                    SseEvent::priming("b1")
                        .retry(Duration::from_millis(200))
                        .into(),
                    SseStep::Delay(Duration::from_millis(50)), // let the event go out first
                    SseStep::Abort,
                ])
            })
            .on_get(|req, defaults| async move {
                if req.last_event_id() != Some("b1") {
                    return defaults.respond(&req);
                }
                ScriptedResponse::sse([SseEvent::message(&rpc_result(
                    &json!(1),
                    json!({"content": [{"type": "text", "text": "after break"}]}),
                ))
                .id("b2")
                .into()])
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        // Request ids count from 0 (initialize) so the first call is id 1.
        let result = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(id_of(&server.rpc_requests("tools/call")[0]), json!(1));
        assert_eq!(result.text(), "after break");
        assert_eq!(server.http_requests(&Method::GET).len(), 1);
    })
    .await;
}

/// Scripted server whose SSE stream ends before the response without ever sending an event
/// id: there is nothing to resume from, so the call fails as closed without a `GET`.
#[tokio::test(start_paused = true)]
async fn sse_stream_ended_without_event_id_fails_without_resuming() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |_req, _defaults| async {
                ScriptedResponse::sse([SseStep::Comment("bye".into())])
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let err = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_closed(), "{err:?}");
        assert!(server.http_requests(&Method::GET).is_empty());
    })
    .await;
}

/// Scripted server asking for an absurd reconnection delay (`retry: 600000`): the client waits
/// no longer than its `max_retry` before resuming.
#[tokio::test(start_paused = true)]
async fn server_retry_hint_is_capped_by_max_retry() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |_req, _defaults| async {
                ScriptedResponse::sse([SseEvent::priming("r1")
                    .retry(Duration::from_secs(600))
                    .into()])
            })
            .on_get(|req, defaults| async move {
                if req.last_event_id() != Some("r1") {
                    return defaults.respond(&req);
                }
                ScriptedResponse::sse([SseEvent::message(&rpc_result(
                    &json!(1),
                    json!({"content": []}),
                ))
                .into()])
            })
            .start()
            .await
            .unwrap();
        let mut config = no_get_stream();
        config.max_retry = Duration::from_secs(2);
        let client = connect_with(&server, config).await;
        client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap();
        let post = &server.rpc_requests("tools/call")[0];
        let get = &server.http_requests(&Method::GET)[0];
        let waited = get.received_at - post.received_at;
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
            "resumed after {waited:?}"
        );
    })
    .await;
}

/// Scripted server that refuses the resumption `GET` with `405`: the call fails with that
/// status (no retry storm).
#[tokio::test(start_paused = true)]
async fn resumption_refused_fails_the_call_with_the_status() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |_req, _defaults| async {
                ScriptedResponse::sse([SseEvent::priming("e1")
                    .retry(Duration::from_millis(50))
                    .into()])
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let err = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(
            err.status(),
            Some(http::StatusCode::METHOD_NOT_ALLOWED),
            "{err:?}"
        );
        assert_eq!(server.http_requests(&Method::GET).len(), 1);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Server-to-client requests and the standalone GET stream

/// Scripted server that, in the middle of a call, sends `ping` and an unknown method on the
/// call's SSE stream and holds the response until both are answered: the client POSTs a result
/// for the `ping` and a `-32601` error for the unknown method, on the session.
#[tokio::test]
async fn server_requests_on_the_sse_stream_are_answered_never_dropped() {
    bounded(async {
        let answered = Gate::new();
        let count = Arc::new(AtomicUsize::new(0));
        let gate = answered.clone();
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", move |req, _defaults| {
                let gate = gate.clone();
                async move {
                    let id = id_of(&req);
                    ScriptedResponse::sse([
                        SseEvent::priming("c0").into(),
                        SseEvent::message(&rpc_request(&json!("srv-ping"), "ping", json!({})))
                            .id("c1")
                            .into(),
                        SseEvent::message(&rpc_request(&json!(77), "x-unknown/thing", json!({})))
                            .id("c2")
                            .into(),
                        SseStep::WaitFor(gate),
                        SseEvent::message(&rpc_result(&id, json!({"content": []})))
                            .id("c3")
                            .into(),
                    ])
                }
            })
            .on_client_response({
                let gate = answered.clone();
                move |_req, _defaults| {
                    if count.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                        gate.open();
                    }
                    async { ScriptedResponse::accepted() }
                }
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap();
        let answers = server.requests_where(RecordedRequest::is_client_response);
        assert_eq!(answers.len(), 2, "{answers:#?}");
        let ping = answers
            .iter()
            .find(|r| r.rpc_id() == Some(&json!("srv-ping")))
            .expect("ping answered");
        assert_eq!(ping.json().unwrap()["result"], json!({}));
        let unknown = answers
            .iter()
            .find(|r| r.rpc_id() == Some(&json!(77)))
            .expect("unknown method answered");
        assert_eq!(unknown.json().unwrap()["error"]["code"], json!(-32601));
        for answer in &answers {
            assert_eq!(
                session_headers(answer),
                (Some("session-1"), Some(SESSION_VERSION))
            );
        }
    })
    .await;
}

/// Scripted server without a standalone stream (`GET` → `405`): the client tries once and never
/// again, however much time passes.
#[tokio::test(start_paused = true)]
async fn standalone_get_405_is_not_retried() {
    bounded(async {
        let server = ScriptedMcpServer::mcp().start().await.unwrap();
        let client = connect(&server).await;
        server
            .wait_for(|all| all.iter().any(|r| r.method == Method::GET))
            .await;
        tokio::time::sleep(Duration::from_secs(20)).await; // virtual: lets any retry timer fire
        client.ping().await.unwrap();
        let gets = server.http_requests(&Method::GET);
        assert_eq!(gets.len(), 1, "{gets:#?}");
        assert_eq!(
            session_headers(&gets[0]),
            (Some("session-1"), Some(SESSION_VERSION))
        );
    })
    .await;
}

/// Scripted server whose first session expires: the standalone GET stream gets `404`, the
/// next call re-initializes, and the GET stream comes back on the new session instead of
/// staying closed.
#[tokio::test]
async fn standalone_get_stream_reopens_after_the_session_is_renewed() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |req, defaults| async move {
                if req.session_id() == Some("session-1") {
                    ScriptedResponse::status(404)
                } else {
                    defaults.respond(&req)
                }
            })
            .on_get(|req, _defaults| async move {
                if req.session_id() == Some("session-1") {
                    ScriptedResponse::status(404)
                } else {
                    ScriptedResponse::sse([SseEvent::priming("g0").into(), SseStep::Hang])
                }
            })
            .start()
            .await
            .unwrap();
        let client = connect(&server).await;
        server
            .wait_for(|all| all.iter().any(|r| r.method == Method::GET))
            .await;
        client
            .call_tool("echo", json!({"x": 1}), CallOptions::new())
            .await
            .unwrap();
        let gets = server
            .wait_for(|all| {
                all.iter()
                    .any(|r| r.method == Method::GET && r.session_id() == Some("session-2"))
            })
            .await;
        let gets: Vec<_> = gets.iter().filter(|r| r.method == Method::GET).collect();
        assert_eq!(gets[0].session_id(), Some("session-1"));
        assert_eq!(gets.last().unwrap().session_id(), Some("session-2"));
    })
    .await;
}

/// Scripted server that answers a call on the standalone GET stream instead of the call's own
/// SSE stream (the conformance suite's sse-retry mock can do this when the GET arrives after
/// the call): the client routes the response to the waiting call instead of dropping it.
#[tokio::test]
async fn a_response_on_the_standalone_stream_completes_the_waiting_call() {
    bounded(async {
        let call_arrived = Gate::new();
        let opener = call_arrived.clone();
        let waiter = call_arrived.clone();
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", move |_req, _defaults| {
                opener.open();
                async { ScriptedResponse::sse([SseEvent::priming("p0").into(), SseStep::Hang]) }
            })
            .on_get(move |_req, _defaults| {
                let waiter = waiter.clone();
                async move {
                    let result = json!({"content": [{"type": "text", "text": "via GET"}]});
                    let response = json!({"jsonrpc": "2.0", "id": 1, "result": result});
                    ScriptedResponse::sse([
                        SseEvent::priming("g0").into(),
                        SseStep::WaitFor(waiter),
                        SseEvent::message(&response).id("g1").into(),
                        SseStep::Hang,
                    ])
                }
            })
            .start()
            .await
            .unwrap();
        let client = connect(&server).await;
        server
            .wait_for(|all| all.iter().any(|r| r.method == Method::GET))
            .await;
        let result = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(result.text(), "via GET");
    })
    .await;
}

/// Scripted server whose standalone stream opens and ends at once, every time: the client
/// reopens it a bounded number of times, waiting between tries.
#[tokio::test(start_paused = true)]
async fn standalone_get_stream_that_keeps_ending_is_reopened_a_bounded_number_of_times() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on_get(|_req, _defaults| async { ScriptedResponse::sse([]) })
            .start()
            .await
            .unwrap();
        let mut config = HttpTransportConfig::default();
        config.max_resumptions = 2;
        config.default_retry = Duration::from_secs(1);
        let client = connect_with(&server, config).await;
        tokio::time::sleep(Duration::from_secs(20)).await; // virtual
        client.ping().await.unwrap();
        let gets = server.http_requests(&Method::GET);
        assert!(
            (1..=3).contains(&gets.len()),
            "at most max_resumptions + 1 tries, got {}",
            gets.len()
        );
        for pair in gets.windows(2) {
            assert!(pair[1].received_at - pair[0].received_at >= Duration::from_secs(1));
        }
    })
    .await;
}

/// Scripted server that sends `ping` on the standalone `GET` stream: the client answers it
/// with a POST on the session.
#[tokio::test]
async fn server_ping_on_the_standalone_stream_is_answered() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on_get(|_req, _defaults| async {
                ScriptedResponse::sse([
                    SseEvent::priming("g0").into(),
                    SseEvent::message(&rpc_request(&json!("g-ping"), "ping", json!({})))
                        .id("g1")
                        .into(),
                    SseStep::Hang,
                ])
            })
            .start()
            .await
            .unwrap();
        let _client = connect(&server).await;
        let answers = server
            .wait_for(|all| all.iter().any(RecordedRequest::is_client_response))
            .await;
        let answer = answers.iter().find(|r| r.is_client_response()).unwrap();
        assert_eq!(answer.rpc_id(), Some(&json!("g-ping")));
        assert_eq!(answer.json().unwrap()["result"], json!({}));
        assert_eq!(answer.session_id(), Some("session-1"));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Timeouts and cancellation

/// Scripted server that holds the response head of a call: the pool's `response_timeout`
/// fails the call with `is_timeout()` even when the per-call timeout is longer.
#[tokio::test(start_paused = true)]
async fn response_head_timeout_fails_the_call() {
    bounded(async {
        let never = Gate::new();
        let server = holding_calls(&never).await;
        let mut http = HttpConfig::default();
        http.response_timeout = Duration::from_secs(2);
        let pool = HttpClient::new(&http).unwrap();
        let transport = HttpTransport::with_service(&server.url(), no_get_stream(), pool).unwrap();
        let client = McpClient::builder()
            .protocol(ProtocolChoice::Version(SESSION_VERSION.into()))
            .connect(transport)
            .await
            .unwrap();
        let err = client
            .call_tool(
                "echo",
                json!({}),
                CallOptions::new().timeout(Duration::from_secs(30)),
            )
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(err.to_string().contains("response head"), "{err}");
        drop(never);
    })
    .await;
}

/// Scripted server that never answers a call (session protocol): the per-call timeout fails it
/// with `is_timeout()`, and the client tells the server with `notifications/cancelled` carrying
/// the request id.
#[tokio::test(start_paused = true)]
async fn per_call_timeout_fails_and_posts_cancelled() {
    bounded(async {
        let never = Gate::new();
        let server = holding_calls(&never).await;
        let client = connect_with(&server, no_get_stream()).await;
        let err = client
            .call_tool(
                "echo",
                json!({}),
                CallOptions::new().timeout(Duration::from_secs(5)),
            )
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        let call = server.rpc_requests("tools/call").remove(0);
        let cancelled = server.wait_for_rpc("notifications/cancelled", 1).await;
        assert_eq!(cancelled.len(), 1);
        let params = cancelled[0].params().unwrap();
        assert_eq!(params["requestId"], id_of(&call));
        assert_eq!(
            session_headers(&cancelled[0]),
            (Some("session-1"), Some(SESSION_VERSION))
        );
        let waited = cancelled[0].received_at - call.received_at;
        assert!(
            waited >= Duration::from_secs(5),
            "cancelled after {waited:?}"
        );
        drop(never);
    })
    .await;
}

/// Scripted server holding a call's response: dropping the call's future (the caller gave
/// up) sends `notifications/cancelled` with the request id on the session.
#[tokio::test]
async fn dropping_a_call_posts_cancelled() {
    bounded(async {
        let never = Gate::new();
        let server = holding_calls(&never).await;
        let client = connect_with(&server, no_get_stream()).await;
        let call = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .call_tool("echo", json!({}), CallOptions::new())
                    .await
            }
        });
        let sent = server.wait_for_rpc("tools/call", 1).await.remove(0);
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        let cancelled = server.wait_for_rpc("notifications/cancelled", 1).await;
        assert_eq!(cancelled[0].params().unwrap()["requestId"], id_of(&sent));
        assert_eq!(cancelled[0].session_id(), Some("session-1"));
        drop(never);
    })
    .await;
}

/// Scripted stateless (2026-07-28) server that never answers a call: the timeout fails it, no
/// `notifications/cancelled` is sent (closing the stream is the cancellation), and every
/// request carries the protocol `_meta` (version, client capabilities, client info) and the
/// `Mcp-Method` / `Mcp-Name` headers, without any session.
#[tokio::test(start_paused = true)]
async fn stateless_timeout_sends_no_cancelled_and_requests_carry_meta_and_headers() {
    bounded(async {
        let never = Gate::new();
        let gate = never.clone();
        let server = ScriptedMcpServer::mcp()
            .stateless(true)
            .on("tools/call", move |req, defaults| {
                let held = defaults.respond(&req).after(&gate);
                async move { held }
            })
            .start()
            .await
            .unwrap();
        let client = McpClient::builder()
            .protocol(ProtocolChoice::Version("2026-07-28".into()))
            .connect(transport_with(&server, HttpTransportConfig::default()))
            .await
            .unwrap();
        assert!(client.is_stateless());
        let err = client
            .call_tool(
                "echo",
                json!({"q": 1}),
                CallOptions::new().timeout(Duration::from_secs(5)),
            )
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        client.list_tools().await.unwrap(); // a later round trip on the same client
        tokio::time::sleep(Duration::from_secs(10)).await; // virtual: anything spawned has run

        assert!(server.rpc_requests("notifications/cancelled").is_empty());
        assert!(server.rpc_requests("initialize").is_empty());
        assert!(
            server.http_requests(&Method::GET).is_empty(),
            "no standalone stream"
        );
        let call = server.rpc_requests("tools/call").remove(0);
        assert_eq!(call.header("mcp-method"), Some("tools/call"));
        assert_eq!(call.header("mcp-name"), Some("echo"));
        for req in server.requests() {
            assert_eq!(
                session_headers(&req),
                (None, Some("2026-07-28")),
                "{req:#?}"
            );
            let meta = &req.params().unwrap()["_meta"];
            assert_eq!(
                meta["io.modelcontextprotocol/protocolVersion"],
                "2026-07-28"
            );
            assert!(meta["io.modelcontextprotocol/clientCapabilities"].is_object());
            assert!(meta["io.modelcontextprotocol/clientInfo"]["name"].is_string());
            assert_eq!(req.header("mcp-method"), req.rpc_method());
        }
        drop(never);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Pagination, limits and errors

/// Scripted server with three pages of tools: `list_tools` follows `nextCursor` to the end.
#[tokio::test]
async fn tools_list_follows_cursors_across_three_pages() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/list", |req, _defaults| async move {
                let cursor = req.params().and_then(|p| p.get("cursor")).cloned();
                let (name, next) = match cursor.as_ref().and_then(Value::as_str) {
                    None => ("a", Some("page-2")),
                    Some("page-2") => ("b", Some("page-3")),
                    Some("page-3") => ("c", None),
                    Some(other) => {
                        return ScriptedResponse::rpc_error(&id_of(&req), -32602, other);
                    }
                };
                let mut page =
                    json!({"tools": [{"name": name, "inputSchema": {"type": "object"}}]});
                if let Some(next) = next {
                    page["nextCursor"] = next.into();
                }
                ScriptedResponse::result(&id_of(&req), page)
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let tools = client.list_tools().await.unwrap();
        let names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let cursors: Vec<_> = server
            .rpc_requests("tools/list")
            .iter()
            .map(|r| r.params().and_then(|p| p.get("cursor")).cloned())
            .collect();
        assert_eq!(
            cursors,
            [None, Some(json!("page-2")), Some(json!("page-3"))]
        );
    })
    .await;
}

/// Scripted server whose cursor repeats: `list_tools` fails instead of looping.
#[tokio::test]
async fn tools_list_repeating_cursor_is_an_error_not_a_loop() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/list", |req, _defaults| async move {
                ScriptedResponse::result(
                    &id_of(&req),
                    json!({"tools": [{"name": "t", "inputSchema": {}}], "nextCursor": "same"}),
                )
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let err = client.list_tools().await.unwrap_err();
        assert!(err.is_protocol(), "{err:?}");
        assert_eq!(server.rpc_requests("tools/list").len(), 2);
    })
    .await;
}

/// Scripted server answering with a JSON body over `max_response_bytes`: `is_too_large()`.
#[tokio::test]
async fn json_response_over_max_response_bytes_is_too_large() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |req, _defaults| async move {
                let text = "x".repeat(64 * 1024);
                ScriptedResponse::result(
                    &id_of(&req),
                    json!({"content": [{"type": "text", "text": text}]}),
                )
            })
            .start()
            .await
            .unwrap();
        let mut config = no_get_stream();
        config.max_response_bytes = 4096;
        let client = connect_with(&server, config).await;
        let err = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_too_large(), "{err:?}");
    })
    .await;
}

/// Scripted server answering with one SSE event over `max_response_bytes`: `is_too_large()`.
#[tokio::test]
async fn sse_event_over_max_response_bytes_is_too_large() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |req, _defaults| async move {
                let text = "x".repeat(64 * 1024);
                ScriptedResponse::sse([SseEvent::message(&rpc_result(
                    &id_of(&req),
                    json!({"content": [{"type": "text", "text": text}]}),
                ))
                .into()])
            })
            .start()
            .await
            .unwrap();
        let mut config = no_get_stream();
        config.max_response_bytes = 4096;
        let client = connect_with(&server, config).await;
        let err = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_too_large(), "{err:?}");
    })
    .await;
}

/// Scripted server answering HTTP 500 with a JSON-RPC error body: `is_rpc()` with the server's
/// code.
#[tokio::test]
async fn http_500_with_jsonrpc_error_body_is_rpc_error_with_code() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |req, _defaults| async move {
                ScriptedResponse::rpc_error(&id_of(&req), -32603, "tool exploded").with_status(500)
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let err = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_rpc(), "{err:?}");
        let rpc = err.rpc_error().unwrap();
        assert_eq!(rpc.code, -32603);
        assert_eq!(rpc.message, "tool exploded");
    })
    .await;
}

/// Scripted server answering a request with `202 Accepted` and no body: a protocol error,
/// not a hang and not a success.
#[tokio::test]
async fn http_202_to_a_request_is_a_protocol_error() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |_req, _defaults| async {
                ScriptedResponse::accepted()
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let err = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_protocol(), "{err:?}");
    })
    .await;
}

/// Scripted server answering `404` to a request that carried no session id (here the
/// `initialize` itself): an ordinary status error, no re-initialization.
#[tokio::test]
async fn http_404_without_a_session_is_a_status_error() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("initialize", |_req, _defaults| async {
                ScriptedResponse::status(404)
            })
            .start()
            .await
            .unwrap();
        let err = McpClient::builder()
            .protocol(ProtocolChoice::Version(SESSION_VERSION.into()))
            .connect(transport_with(&server, no_get_stream()))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND), "{err:?}");
        assert_eq!(server.requests().len(), 1);
    })
    .await;
}

/// Scripted server answering HTTP 503 with a plain-text body: `is_status()` with the status.
#[tokio::test]
async fn http_503_plain_is_status_error() {
    bounded(async {
        let server = ScriptedMcpServer::mcp()
            .on("tools/call", |_req, _defaults| async {
                ScriptedResponse::status(503)
                    .with_header("content-type", "text/plain")
                    .with_body("overloaded, try later")
            })
            .start()
            .await
            .unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        let err = client
            .call_tool("echo", json!({}), CallOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_status(), "{err:?}");
        assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    })
    .await;
}

/// Scripted server: `call_tool` with arguments that are not a JSON object fails with
/// `is_config()` and sends nothing.
#[tokio::test]
async fn call_tool_with_non_object_arguments_is_config_error() {
    bounded(async {
        let server = ScriptedMcpServer::mcp().start().await.unwrap();
        let client = connect_with(&server, no_get_stream()).await;
        for bad in [json!([1, 2]), json!("text"), json!(3), json!(true)] {
            let err = client
                .call_tool("echo", bad.clone(), CallOptions::new())
                .await
                .unwrap_err();
            assert!(err.is_config(), "{bad}: {err:?}");
        }
        assert!(server.rpc_requests("tools/call").is_empty());
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency and pooling

const CALLS: usize = 200;
const POOL: usize = 8;

/// Runs `CALLS` concurrent calls over one client whose pool allows `POOL` connections, against
/// a scripted server that answers in a scrambled order, half as JSON and half as SSE. Checks
/// that every call got its own response, and returns the server and the HTTP client.
async fn run_concurrent_calls() -> (ScriptedMcpServer, HttpClient) {
    let server = ScriptedMcpServer::mcp()
        .on("tools/call", |req, defaults| async move {
            let n = req.params().expect("params")["arguments"]["n"]
                .as_u64()
                .expect("argument n");
            let delay = Duration::from_millis(n * 7 % 5);
            if n % 2 == 0 {
                defaults.respond(&req).delayed(delay)
            } else {
                let id = id_of(&req);
                ScriptedResponse::sse([
                    SseStep::Delay(delay),
                    SseEvent::message(&rpc_result(
                        &id,
                        json!({"content": [], "structuredContent": {"n": n}}),
                    ))
                    .into(),
                ])
            }
        })
        .start()
        .await
        .expect("scripted server");
    let mut http_config = HttpConfig::default();
    http_config.max_connections = POOL;
    let http = HttpClient::new(&http_config).expect("HTTP client");
    let transport = HttpTransport::with_service(&server.url(), no_get_stream(), http.clone())
        .expect("transport");
    let client = McpClient::builder()
        .protocol(ProtocolChoice::Version(SESSION_VERSION.into()))
        .connect(transport)
        .await
        .expect("connect");
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..CALLS {
        let client = client.clone();
        calls.spawn(async move {
            let r = client
                .call_tool("echo", json!({"n": n}), CallOptions::new())
                .await;
            (n, r)
        });
    }
    let mut done = 0;
    while let Some(joined) = calls.join_next().await {
        let (n, result) = joined.expect("call task");
        assert_eq!(echo_of(&result.expect("call")), json!({"n": n}));
        done += 1;
    }
    assert_eq!(done, CALLS);
    (server, http)
}

/// Scripted server answering 200 concurrent calls over one client in a scrambled order, half
/// as JSON and half as SSE: every call gets its own response (ids matched, no id reused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_get_their_own_responses() {
    bounded(async {
        let (server, _http) = run_concurrent_calls().await;
        let recorded = server.rpc_requests("tools/call");
        assert_eq!(recorded.len(), CALLS);
        let mut ids: Vec<String> = recorded.iter().map(|r| id_of(r).to_string()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), CALLS, "every request has its own id");
    })
    .await;
}

/// Scripted server answering 200 concurrent calls over one client whose pool allows 8
/// connections (`HttpConfig::max_connections`, documented as "for HTTP/1.1, most open
/// connections"): the client opens no more than 8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_open_no_more_connections_than_the_pool_limit() {
    bounded(async {
        let (server, http) = run_concurrent_calls().await;
        let opened = http.connections_opened();
        let open = server.open_connections();
        assert!(
            opened <= POOL as u64 && server.connections() <= POOL,
            "limit {POOL}: client opened {opened} connections, server accepted {}, {open} still open",
            server.connections()
        );
    })
    .await;
}
