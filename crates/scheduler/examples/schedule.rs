//! Another team's service scheduling a conversation through the Scheduler.
//!
//! ```text
//! cargo run -p scheduler --example schedule -- scheduler.json "Quarterly planning" 2026-12-01T09:30:00+01:00
//! ```
//!
//! `scheduler.json` is the design document's configuration (`mcp.mcp_servers[]`); the
//! credentials can stay out of it: `SCHEDULER_CLIENT_ID` and `SCHEDULER_API_KEY` override
//! `transport.auth`. Running the call twice with the same key (`IDEMPOTENCY_KEY`) schedules
//! the conversation once. With `azure.use_managed_identity: true` the token comes from the
//! managed identity instead of the API key (that path needs azure-secrets' credential chain;
//! until it is wired in, connecting says so).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program prints its results"
)]

use scheduler::domain::ScheduleConversation;
use scheduler::{Config, SchedulerService};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(topic), Some(when)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: schedule <config.json> <topic> <RFC 3339 time>");
        std::process::exit(2);
    };
    let config = Config::load(config.as_ref())?;
    let scheduler = SchedulerService::connect(&config, "Scheduler").await?;
    let request = ScheduleConversation {
        topic,
        participants: vec!["ana@contoso.example".into(), "bo@contoso.example".into()],
        scheduled_time: when,
        timezone: None,
        duration_minutes: Some(30),
        metadata: None,
        // None generates one key for this call, reused by every retry and failover.
        idempotency_key: std::env::var("IDEMPOTENCY_KEY").ok(),
    };
    let result = scheduler.schedule_conversation(request).await?;
    let status = scheduler
        .conversation_status(&result.conversation_id)
        .await?;
    println!(
        "{} {} for {} ({})",
        result.conversation_id,
        if result.created {
            "scheduled"
        } else {
            "was already scheduled"
        },
        status.scheduled_time,
        status.status.as_str()
    );
    scheduler.client().close().await?;
    Ok(())
}
