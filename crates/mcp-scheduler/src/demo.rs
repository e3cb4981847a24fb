//! `mcp-scheduler demo`: the whole system on one machine.
//!
//! An embedded Scheduler server on an ephemeral loopback port with a temporary SQLite
//! database; a client registered on it (id + API key); then the full flow through the real
//! client stack (`SchedulerService` → retry/budget → auth with a JWT from the server's token
//! endpoint → breaker → pooled HTTP): health, tools, three conversations (one due in seconds),
//! an idempotent retry, status, reschedule, cancel, the dispatcher running the due one, and
//! the listing. Progress goes to stderr; the summary to stdout (JSON with `--json`).

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use mcp_auth::Secret;
use scheduler::SchedulerService;
use scheduler::config::{
    AuthConfig, AzureConfig, Config, McpConfig, PoolConfig, ResilienceConfig, ServerConfig,
    TransportConfig, TransportKind,
};
use scheduler::domain::{ConversationStatus, ListConversations, ScheduleConversation};
use scheduler_server::config::ServerConfig as SchedulerServerConfig;
use scheduler_server::server::{Parts, start_with};
use serde_json::{Value, json};

use crate::output::{Out, conversation_table, health_json};
use crate::{Failure, chain, exit};

/// The longest the demo waits for the dispatcher to run the due conversation.
const DISPATCH_WAIT: Duration = Duration::from_secs(60);

fn step(n: u32, text: &str) {
    eprintln!("[{n}/9] {text}");
}

fn failed(what: &str) -> impl FnOnce(scheduler::Error) -> Failure + '_ {
    move |e| {
        let mut f = Failure::from(e);
        f.message = format!("demo: {what}: {}", f.message);
        f
    }
}

fn at(offset: SignedDuration) -> String {
    let when = Timestamp::now()
        .checked_add(offset)
        .unwrap_or_else(|_| Timestamp::now());
    // Whole seconds, with an explicit offset, as a person would write it.
    let when = when
        .round(jiff::Unit::Second)
        .unwrap_or(when)
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(1)));
    when.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

pub(crate) async fn run(out: &Out, due_in: Duration) -> Result<(), Failure> {
    let started = Instant::now();
    let dir = tempfile::tempdir()
        .map_err(|e| Failure::new(exit::FAILURE, format!("demo: temporary directory: {e}")))?;
    let db = dir.path().join("scheduler.db");

    step(
        1,
        "starting the embedded Scheduler server (SQLite, loopback, auth on)",
    );
    let mut server_config = SchedulerServerConfig {
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database: db.display().to_string(),
        ..SchedulerServerConfig::default()
    };
    server_config.auth.required = true;
    let scopes = server_config.auth.scopes.clone();
    let parts = Parts::from_config(&server_config)?;
    let store = parts.store.clone();
    let server = start_with(server_config, parts).await?;
    eprintln!(
        "      listening on {} (database {})",
        server.url(),
        db.display()
    );

    step(2, "registering an API client (client_id + api_key)");
    let (client, key) =
        scheduler_server::auth::register_client(&*store, "mcp-scheduler demo", &scopes).await?;
    eprintln!(
        "      client_id {} (the API key is kept in memory only)",
        client.id
    );

    let config = Config {
        mcp: McpConfig {
            mcp_servers: vec![ServerConfig {
                name: "Scheduler".to_owned(),
                transport: TransportConfig {
                    kind: TransportKind::Http,
                    url: Some(server.mcp_url()),
                    auth: Some(AuthConfig {
                        client_id: client.id.clone(),
                        api_key: Secret::new(key.expose().to_owned()),
                        scopes: Vec::new(),
                        token_endpoint: None,
                    }),
                    failover_urls: Vec::new(),
                    allow_insecure_http: false,
                    protocol_version: None,
                    command: None,
                    args: Vec::new(),
                    env: std::collections::BTreeMap::new(),
                },
                resilience: ResilienceConfig::default(),
                pool: PoolConfig::default(),
                timeout_ms: 10_000,
            }],
        },
        azure: AzureConfig::default(),
    };
    config.validate().map_err(failed("configuration"))?;

    step(
        3,
        "connecting through the client stack (token from /oauth/token, MCP session)",
    );
    let service = SchedulerService::connect(&config, "Scheduler")
        .await
        .map_err(failed("connect"))?;
    let protocol = service.client().mcp().protocol_version().to_owned();
    eprintln!("      protocol {protocol}");

    step(
        4,
        "health check: tools listed, the Scheduler's tools present, /ping",
    );
    let health = service.health_check().await;
    if !health.healthy {
        return Err(Failure::new(
            exit::UNHEALTHY,
            format!(
                "demo: the embedded server is unhealthy: {}",
                health_json(&health)
            ),
        ));
    }
    eprintln!(
        "      {} tools: {}",
        health.tools.len(),
        health.tools.join(", ")
    );

    step(5, "scheduling three conversations (one due in seconds)");
    let due_in_signed = SignedDuration::try_from(due_in).unwrap_or(SignedDuration::from_secs(3));
    let soon = ScheduleConversation {
        topic: "Demo: quarterly planning sync".to_owned(),
        participants: vec![
            "ana@contoso.example".to_owned(),
            "bo@contoso.example".to_owned(),
        ],
        scheduled_time: at(due_in_signed),
        timezone: Some("Europe/Paris".to_owned()),
        duration_minutes: Some(30),
        metadata: Some(
            json!({"source": "mcp-scheduler demo"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ),
        idempotency_key: Some(format!("demo-{}", client.id)),
    };
    let later = ScheduleConversation {
        topic: "Demo: design review".to_owned(),
        participants: vec!["chen@contoso.example".to_owned()],
        scheduled_time: at(SignedDuration::from_hours(1)),
        timezone: None,
        duration_minutes: Some(45),
        metadata: None,
        idempotency_key: None,
    };
    let tomorrow = ScheduleConversation {
        topic: "Demo: retrospective".to_owned(),
        participants: vec!["dee@contoso.example".to_owned()],
        scheduled_time: at(SignedDuration::from_hours(24)),
        timezone: None,
        duration_minutes: None,
        metadata: None,
        idempotency_key: None,
    };
    let first = service
        .schedule_conversation(soon.clone())
        .await
        .map_err(failed("schedule"))?;
    let second = service
        .schedule_conversation(later)
        .await
        .map_err(failed("schedule"))?;
    let third = service
        .schedule_conversation(tomorrow)
        .await
        .map_err(failed("schedule"))?;
    for r in [&first, &second, &third] {
        eprintln!(
            "      {} at {} (created: {})",
            r.conversation_id, r.scheduled_time, r.created
        );
    }

    step(6, "retrying the first with the same idempotency key");
    let retry = service
        .schedule_conversation(soon)
        .await
        .map_err(failed("idempotent retry"))?;
    let idempotent = !retry.created && retry.conversation_id == first.conversation_id;
    eprintln!(
        "      {} (created: {}) — {}",
        retry.conversation_id,
        retry.created,
        if idempotent {
            "the original, not a duplicate"
        } else {
            "UNEXPECTED"
        }
    );
    if !idempotent {
        return Err(Failure::new(
            exit::FAILURE,
            "demo: the idempotent retry created a second conversation",
        ));
    }

    step(7, "status, reschedule and cancel");
    let status = service
        .conversation_status(&second.conversation_id)
        .await
        .map_err(failed("status"))?;
    let moved = service
        .reschedule_conversation(&second.conversation_id, &at(SignedDuration::from_hours(2)))
        .await
        .map_err(failed("reschedule"))?;
    let cancelled = service
        .cancel_conversation(&third.conversation_id)
        .await
        .map_err(failed("cancel"))?;
    eprintln!(
        "      {}: {} → rescheduled to {}",
        status.conversation_id,
        status.status.as_str(),
        moved.scheduled_time
    );
    eprintln!(
        "      {}: {}",
        cancelled.conversation_id,
        cancelled.status.as_str()
    );
    let refused = service.cancel_conversation(&third.conversation_id).await;
    let refused_message = match refused {
        Err(e) if e.is_tool() => chain(&e),
        Err(e) => return Err(failed("second cancel")(e)),
        Ok(_) => "accepted (a repeated cancel is idempotent)".to_owned(),
    };
    eprintln!("      cancelling it again: {refused_message}");

    step(8, "waiting for the dispatcher to run the due conversation");
    let wait_started = Instant::now();
    // One line redrawn on a terminal; one line and the outcome in a log.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut announced = false;
    let dispatched = loop {
        let details = service
            .conversation_status(&first.conversation_id)
            .await
            .map_err(failed("status"))?;
        if details.status.is_final() {
            break details;
        }
        if wait_started.elapsed() > DISPATCH_WAIT {
            return Err(Failure::new(
                exit::FAILURE,
                format!(
                    "demo: {} still {} after {} s",
                    details.conversation_id,
                    details.status.as_str(),
                    DISPATCH_WAIT.as_secs()
                ),
            ));
        }
        if tty {
            eprint!(
                "\r      {} is {} ({:.1} s)   ",
                details.conversation_id,
                details.status.as_str(),
                wait_started.elapsed().as_secs_f64()
            );
        } else if !announced {
            eprintln!(
                "      {} is {}; due at {}",
                details.conversation_id,
                details.status.as_str(),
                details.scheduled_time
            );
            announced = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "{}      {} is {} after {:.1} s (attempts: {})",
        if tty { "\r" } else { "" },
        dispatched.conversation_id,
        dispatched.status.as_str(),
        wait_started.elapsed().as_secs_f64(),
        dispatched.attempts
    );

    step(9, "listing every conversation, then a final health check");
    let mut pages = service.pages(ListConversations::default());
    let mut all = Vec::new();
    while let Some(page) = pages.next().await {
        all.extend(page.map_err(failed("list"))?.conversations);
    }
    let final_health = service.health_check().await;
    let _ = service.client().close().await;
    server.shutdown().await?;

    let completed = dispatched.status == ConversationStatus::Completed;
    let ok = completed && final_health.healthy && idempotent;
    let summary: Value = json!({
        "ok": ok,
        "server": { "mcp_url": config.mcp.mcp_servers[0].transport.url, "protocol": protocol },
        "client_id": client.id,
        "scheduled": [first, second, third],
        "idempotent_retry": { "conversation_id": retry.conversation_id, "created": retry.created },
        "rescheduled": { "conversation_id": moved.conversation_id, "scheduled_time": moved.scheduled_time },
        "cancelled": { "conversation_id": cancelled.conversation_id, "status": cancelled.status },
        "second_cancel": refused_message,
        "dispatched": dispatched,
        "conversations": all,
        "health": health_json(&final_health),
        "elapsed_ms": started.elapsed().as_millis(),
    });
    if out.is_json() {
        out.json(&summary);
    } else {
        println!("Scheduler demo — everything ran on this machine\n");
        println!(
            "server      {} (embedded, SQLite, auth on, protocol {protocol})",
            server_url(&config)
        );
        println!(
            "client      {} (JWT from the server's /oauth/token)",
            client.id
        );
        println!(
            "idempotent  retry of {} returned the original (created: false)",
            first.conversation_id
        );
        println!(
            "dispatched  {} → {} after {} attempt(s)",
            dispatched.conversation_id,
            dispatched.status.as_str(),
            dispatched.attempts
        );
        println!(
            "health      {}",
            if final_health.healthy {
                "healthy"
            } else {
                "UNHEALTHY"
            }
        );
        println!("\n{}", conversation_table(&all));
        println!(
            "{} in {:.1} s",
            if ok { "demo ok" } else { "demo FAILED" },
            started.elapsed().as_secs_f64()
        );
    }
    if ok {
        Ok(())
    } else {
        Err(Failure::new(
            exit::FAILURE,
            format!(
                "demo: the due conversation ended {} (expected completed)",
                dispatched.status.as_str()
            ),
        ))
    }
}

fn server_url(config: &Config) -> String {
    config.mcp.mcp_servers[0]
        .transport
        .url
        .clone()
        .unwrap_or_default()
}
