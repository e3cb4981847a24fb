//! HTTPS on the pooled client: rustls (ring) against a loopback TLS server with a self-signed
//! certificate, HTTP/2 chosen by ALPN when the server offers it and HTTP/1.1 otherwise, and
//! untrusted certificates refused. The server is a minimal MCP responder written here (it only
//! needs to answer `initialize`, notifications and `ping`).

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcp_transport::http::{HttpClient, HttpConfig, TlsRoots};
use mcp_transport::{HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

struct TlsServer {
    url: String,
    ca: CertificateDer<'static>,
    versions: Arc<Mutex<Vec<Version>>>,
}

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != hyper::Method::POST {
        let mut r = Response::new(Full::default());
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return Ok(r);
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let msg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(id) = msg.get("id") else {
        let mut r = Response::new(Full::default());
        *r.status_mut() = StatusCode::ACCEPTED;
        return Ok(r);
    };
    let result = if msg["method"] == "initialize" {
        serde_json::json!({"protocolVersion": "2025-11-25", "capabilities": {},
                           "serverInfo": {"name": "tls-test", "version": "1"}})
    } else {
        serde_json::json!({})
    };
    let out = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result});
    let mut r = Response::new(Full::new(Bytes::from(out.to_string())));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(r)
}

async fn start(alpn: &[&[u8]]) -> TlsServer {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("self-signed certificate");
    let cert = CertificateDer::from(key.cert.der().to_vec());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], private)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let versions = Arc::new(Mutex::new(Vec::new()));
    let seen = versions.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: Request<_>| {
                    seen.lock().unwrap().push(req.version());
                    answer(req)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TlsServer {
        url: format!("https://localhost:{port}/mcp"),
        ca: cert,
        versions,
    }
}

fn trusting(ca: &CertificateDer<'static>) -> HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut config = HttpConfig::default();
    config.tls_roots = TlsRoots::Custom(Arc::new(tls));
    HttpClient::new(&config).unwrap()
}

async fn ping_over(server: &TlsServer, pool: HttpClient) -> Result<(), mcp_transport::Error> {
    let transport = HttpTransport::with_service(&server.url, HttpTransportConfig::default(), pool)?;
    let client = McpClient::builder()
        .protocol(ProtocolChoice::Version("2025-11-25".into()))
        .default_timeout(Duration::from_secs(10))
        .connect(transport)
        .await?;
    client.ping().await?;
    client.close().await
}

#[tokio::test]
async fn https_negotiates_http2_by_alpn() {
    let server = start(&[b"h2", b"http/1.1"]).await;
    ping_over(&server, trusting(&server.ca)).await.unwrap();
    let versions = server.versions.lock().unwrap().clone();
    assert!(!versions.is_empty());
    assert!(
        versions.iter().all(|v| *v == Version::HTTP_2),
        "{versions:?}"
    );
}

#[tokio::test]
async fn https_falls_back_to_http1_when_the_server_only_speaks_it() {
    let server = start(&[b"http/1.1"]).await;
    let pool = trusting(&server.ca);
    ping_over(&server, pool.clone()).await.unwrap();
    let versions = server.versions.lock().unwrap().clone();
    assert!(
        versions.iter().all(|v| *v == Version::HTTP_11),
        "{versions:?}"
    );
    // initialize, initialized, GET stream (405), ping, ... share pooled connections.
    assert!(
        pool.connections_opened() <= 2,
        "opened {}",
        pool.connections_opened()
    );
}

#[tokio::test]
async fn untrusted_certificate_is_a_connect_error() {
    let server = start(&[b"h2", b"http/1.1"]).await;
    let pool = HttpClient::new(&HttpConfig::default()).unwrap(); // webpki roots only
    let err = ping_over(&server, pool).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}

#[test]
fn native_roots_load_from_the_system_store() {
    let mut config = HttpConfig::default();
    config.tls_roots = TlsRoots::Native;
    HttpClient::new(&config).expect("the system CA store (ca-certificates) loads");
}
