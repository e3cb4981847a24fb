//! A liveness check for the Scheduler, as a platform team would run it: list the tools,
//! check the Scheduler's are there, and `GET /ping` every region; `--watch` keeps a
//! background monitor and prints its latest snapshot every interval.
//!
//! ```text
//! cargo run -p scheduler --example health_check -- scheduler.json [--watch 30]
//! ```
//!
//! Exit code 0 when healthy, 3 when not (the `mcp-scheduler health` convention).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program prints its results"
)]

use std::time::Duration;

use scheduler::{Config, HealthReport, SchedulerService};

fn print(report: &HealthReport) {
    println!(
        "{}",
        if report.healthy {
            "healthy"
        } else {
            "UNHEALTHY"
        }
    );
    if let Some(e) = &report.tools_error {
        println!("  tools: cannot list: {e}");
    } else if !report.missing_tools.is_empty() {
        println!("  tools: missing {}", report.missing_tools.join(", "));
    }
    for e in &report.endpoints {
        let state = e.error.as_deref().unwrap_or("ok");
        println!("  {} {} ms: {state}", e.ping_url, e.latency.as_millis());
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(config) = args.first() else {
        eprintln!("usage: health_check <config.json> [--watch <seconds>]");
        std::process::exit(2);
    };
    let config = Config::load(config.as_ref())?;
    let scheduler = SchedulerService::connect(&config, "Scheduler").await?;
    match args.iter().position(|a| a == "--watch") {
        None => {
            let report = scheduler.health_check().await;
            print(&report);
            if !report.healthy {
                std::process::exit(3);
            }
        }
        Some(i) => {
            let every = args
                .get(i + 1)
                .and_then(|s| s.parse().ok())
                .map_or(Duration::from_secs(30), Duration::from_secs);
            // The monitor checks in the background until it is dropped.
            let monitor = scheduler.monitor(every);
            loop {
                tokio::time::sleep(every).await;
                if let Some(report) = monitor.latest() {
                    print(&report);
                }
            }
        }
    }
    Ok(())
}
