//! Adding your own tower layers to the Scheduler client's HTTP stack.
//!
//! Two layers: one at [`Position::Request`] (outermost: each MCP request once) adds a
//! correlation header, one at [`Position::Attempt`] (around the pooled client: every attempt,
//! after auth and failover) counts attempts and their latency.
//!
//! ```text
//! cargo run -p scheduler --example custom_layer -- scheduler.json
//! ```

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program prints its results"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use scheduler::client::{McpSdkClient, Position};
use scheduler::{Config, SchedulerService};
use tower::util::BoxCloneSyncService;
use tower::{Layer as _, ServiceExt as _};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: custom_layer <config.json>");
        std::process::exit(2);
    };
    let config = Config::load(path.as_ref())?;
    let server = config.server("Scheduler")?;
    let attempts = Arc::new(AtomicU64::new(0));
    let counter = attempts.clone();
    let client = McpSdkClient::builder(server)
        .azure(&config.azure)
        .wrap_http(Position::Request, |inner| {
            BoxCloneSyncService::new(
                tower::util::MapRequestLayer::new(|mut req: http::Request<Bytes>| {
                    req.headers_mut()
                        .insert("x-calling-team", http::HeaderValue::from_static("billing"));
                    req
                })
                .layer(inner),
            )
        })
        .wrap_http(Position::Attempt, move |inner| {
            BoxCloneSyncService::new(tower::service_fn(move |req: http::Request<Bytes>| {
                let (inner, counter) = (inner.clone(), counter.clone());
                async move {
                    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    let started = Instant::now();
                    let result = inner.oneshot(req).await;
                    let outcome = match &result {
                        Ok(resp) => resp.status().to_string(),
                        Err(e) => e.to_string(),
                    };
                    eprintln!("attempt {n}: {outcome} in {:?}", started.elapsed());
                    result
                }
            }))
        })
        .connect()
        .await?;
    let scheduler = SchedulerService::new(client);
    let health = scheduler.health_check().await;
    println!(
        "healthy: {}; HTTP attempts so far: {}",
        health.healthy,
        attempts.load(Ordering::Relaxed)
    );
    Ok(())
}
