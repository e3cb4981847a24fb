//! `mcp-scheduler`: the command-line tool of the Scheduler workspace.
//!
//! Client commands (`tools`, `schedule`, `status`, `list`, `cancel`, `reschedule`, `health`,
//! `config check`) read the client configuration (the design document's JSON) from `--config`
//! and call the server through the whole client stack (`scheduler::SchedulerService`).
//! Service commands (`serve`, `clients`, `export`, `import`) read the server configuration
//! from `--server-config`. `demo` runs both on one machine.
//!
//! Exit codes: 0 success; 1 other failure; 2 bad command line; 3 `health` found the service
//! unhealthy; 4 the Scheduler refused the request (a tool error, e.g. cancelling a completed
//! conversation); 65 an invalid argument (bad timestamp, ...); 69 the service could not be
//! reached or the call failed; 78 a configuration error.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool prints its results"
)]

mod demo;
mod functions;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use scheduler::domain::{ConversationStatus, ListConversations, ScheduleConversation};
use scheduler::{Config, SchedulerService};
use scheduler_server::config::ServerConfig;
use scheduler_server::store::{Backup, Store};

use crate::output::Out;

#[derive(Parser, Debug)]
#[command(
    name = "mcp-scheduler",
    version,
    about = "The Scheduler MCP service, its client, and a demo of both",
    after_help = "Exit codes: 0 success, 1 other failure, 2 bad command line, 3 unhealthy (health), \
                  4 the Scheduler refused the request, 65 invalid argument, 69 service unavailable, \
                  78 configuration error."
)]
struct Cli {
    /// Client configuration: the design document's JSON (`mcp.mcp_servers[]`, `azure`).
    /// Environment overrides: SCHEDULER_CLIENT_ID, SCHEDULER_API_KEY,
    /// APPLICATIONINSIGHTS_CONNECTION_STRING.
    #[arg(long, global = true, env = "MCP_SCHEDULER_CONFIG")]
    config: Option<PathBuf>,
    /// The configured MCP server to use. Default: `Scheduler`, or the only one configured.
    #[arg(long, global = true)]
    server: Option<String>,
    /// Server configuration file (JSON) for serve, clients, export and import. Environment
    /// overrides: SCHEDULER_BIND, SCHEDULER_PUBLIC_URL, SCHEDULER_DATABASE,
    /// SCHEDULER_WEBHOOK_URL.
    #[arg(long, global = true, env = "SCHEDULER_CONFIG")]
    server_config: Option<PathBuf>,
    /// Print results as JSON (one document on stdout).
    #[arg(long, global = true)]
    json: bool,
    /// Log format (logs go to stderr; RUST_LOG filters them).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole system on this machine: an embedded Scheduler server on a loopback port
    /// with a temporary database, a registered client, and the full flow through the real
    /// client stack.
    Demo {
        /// Seconds until the first demo conversation comes due.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=300))]
        due_in: u64,
    },
    /// Run the Scheduler MCP service until Ctrl-C or SIGTERM.
    Serve,
    /// Manage API clients of the service's token endpoint.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// List the server's tools.
    Tools,
    /// Schedule a conversation.
    Schedule {
        /// What the conversation is about.
        #[arg(long)]
        topic: String,
        /// A participant (repeat for each).
        #[arg(long = "participant", required = true)]
        participants: Vec<String>,
        /// When: RFC 3339 with an offset, e.g. 2026-12-01T09:30:00+01:00.
        #[arg(long)]
        at: String,
        /// IANA time zone of the participants, e.g. Europe/Paris.
        #[arg(long)]
        timezone: Option<String>,
        /// Length in minutes (server default 30).
        #[arg(long)]
        duration_minutes: Option<u32>,
        /// Metadata: a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        /// Idempotency key (default: a new one; pass one to make re-running safe).
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Show a conversation's status.
    Status {
        /// The conversation id.
        id: String,
    },
    /// List conversations by scheduled time.
    List {
        /// Only this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Scheduled at or after (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Scheduled before (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Page size (1..=500; server default 50).
        #[arg(long)]
        limit: Option<u32>,
        /// Fetch every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// Cancel a conversation that has not finished.
    Cancel {
        /// The conversation id.
        id: String,
    },
    /// Move a conversation that has not started.
    Reschedule {
        /// The conversation id.
        id: String,
        /// The new time: RFC 3339 with an offset.
        at: String,
    },
    /// Check the service: tools listed, the Scheduler's tools present, every region's /ping.
    /// Exits 3 when unhealthy.
    Health,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Serve the Azure Functions custom handler (`GET /api/status?conversation_id=...`) on
    /// FUNCTIONS_CUSTOMHANDLER_PORT; see deploy/functions/.
    FunctionsHandler {
        /// Listen on this port instead of FUNCTIONS_CUSTOMHANDLER_PORT.
        #[arg(long)]
        port: Option<u16>,
    },
    /// Export the store (clients with hashed keys, settings, conversations) to a JSON file.
    Export {
        /// Output file.
        file: PathBuf,
    },
    /// Import a backup into an empty store.
    Import {
        /// Input file.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ClientsCommand {
    /// Register a client; prints its id and API key (shown this once only).
    #[command(alias = "create")]
    Add {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// Scopes it may ask for (repeatable). Default: the server's configured scopes.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List clients (never their keys).
    List,
    /// Remove a client: it can no longer get tokens (its record is kept, disabled, for audit).
    #[command(alias = "disable")]
    Remove {
        /// The client id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Load and validate the client configuration and print it resolved, defaults filled in,
    /// every secret redacted.
    Check,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum StatusArg {
    Scheduled,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl From<StatusArg> for ConversationStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Scheduled => Self::Scheduled,
            StatusArg::Running => Self::Running,
            StatusArg::Completed => Self::Completed,
            StatusArg::Failed => Self::Failed,
            StatusArg::Cancelled => Self::Cancelled,
        }
    }
}

/// A failure with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Exit codes (documented in the crate docs and `--help`).
pub(crate) mod exit {
    pub(crate) const FAILURE: u8 = 1;
    pub(crate) const UNHEALTHY: u8 = 3;
    pub(crate) const REFUSED: u8 = 4;
    pub(crate) const INVALID_ARGUMENT: u8 = 65;
    pub(crate) const UNAVAILABLE: u8 = 69;
    pub(crate) const CONFIG: u8 = 78;
}

/// The error with its chain of causes, for people.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl From<scheduler::Error> for Failure {
    fn from(e: scheduler::Error) -> Self {
        let code = if e.is_config() {
            exit::CONFIG
        } else if e.is_invalid_argument() {
            exit::INVALID_ARGUMENT
        } else if e.is_tool() {
            exit::REFUSED
        } else if e.is_transport() || e.is_invalid_response() {
            exit::UNAVAILABLE
        } else {
            exit::FAILURE
        };
        Self::new(code, chain(&e))
    }
}

impl From<scheduler_server::store::StoreError> for Failure {
    fn from(e: scheduler_server::store::StoreError) -> Self {
        Self::new(exit::FAILURE, chain(&e))
    }
}

impl From<scheduler_server::Error> for Failure {
    fn from(e: scheduler_server::Error) -> Self {
        Self::new(exit::FAILURE, chain(&e))
    }
}

/// Logs and telemetry: local lines on stderr (`RUST_LOG`, `--log-format`), exported to
/// Application Insights when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set (or an OTLP
/// collector with `OTEL_EXPORTER_OTLP_ENDPOINT`). The guard flushes at exit.
fn init_telemetry(
    format: LogFormat,
    command: &Command,
) -> Result<azure_telemetry::TelemetryGuard, Failure> {
    // The service logs at info by default; a client command or the demo (whose progress is
    // its own output) only warnings. rmcp logs several info lines per stateless request.
    let (service, local, export) = match command {
        Command::Serve | Command::FunctionsHandler { .. } => {
            ("scheduler-server", "info,rmcp=warn", "info,rmcp=warn")
        }
        _ => ("mcp-scheduler", "warn", "info"),
    };
    let bad = |e: azure_telemetry::Error| Failure::new(exit::CONFIG, chain(&e));
    let mut config = azure_telemetry::TelemetryConfig::from_env(service)
        .map_err(bad)?
        .with_service_version(env!("CARGO_PKG_VERSION"))
        .with_log_filter(local)
        .with_export_filter(export)
        .with_log_format(match format {
            LogFormat::Json => azure_telemetry::LogFormat::Json,
            LogFormat::Text => azure_telemetry::LogFormat::Human,
        });
    // App Service sets REGION_NAME; elsewhere set it yourself.
    if let Ok(region) = std::env::var("REGION_NAME") {
        config = config.with_cloud_region(region);
    }
    if let Ok(key) = std::env::var("SCHEDULER_API_KEY") {
        config = config.redact_value(key);
    }
    azure_telemetry::init(config).map_err(bad)
}

async fn open_store(config: &ServerConfig) -> Result<Box<dyn Store>, Failure> {
    if config.database == ":memory:" {
        return Err(Failure::new(
            exit::CONFIG,
            "`database` is :memory:; these commands need a database file",
        ));
    }
    Ok(Box::new(scheduler_server::store::SqliteStore::open(
        &config.database,
    )?))
}

async fn client_config(cli: &Cli) -> Result<Config, Failure> {
    let Some(path) = &cli.config else {
        return Err(Failure::new(
            exit::CONFIG,
            "no client configuration: pass --config <file.json> or set MCP_SCHEDULER_CONFIG",
        ));
    };
    // Key Vault references are read through the Azure credential chain.
    Ok(Config::load_resolving(path).await?)
}

fn server_name(cli: &Cli, config: &Config) -> String {
    if let Some(name) = &cli.server {
        return name.clone();
    }
    match config.mcp.mcp_servers.as_slice() {
        [only] => only.name.clone(),
        _ => "Scheduler".to_owned(),
    }
}

async fn service(cli: &Cli) -> Result<SchedulerService, Failure> {
    let config = client_config(cli).await?;
    let name = server_name(cli, &config);
    Ok(SchedulerService::connect(&config, &name).await?)
}

fn server_config(cli: &Cli) -> Result<ServerConfig, Failure> {
    ServerConfig::load(cli.server_config.as_deref())
        .map_err(|e| Failure::new(exit::CONFIG, chain(&e)))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let out = Out::new(cli.json);
    match &cli.command {
        Command::Demo { due_in } => demo::run(&out, std::time::Duration::from_secs(*due_in)).await,
        Command::Serve => {
            let server = scheduler_server::server::start(server_config(&cli)?).await?;
            eprintln!(
                "scheduler listening on {} (MCP endpoint {})",
                server.url(),
                server.mcp_url()
            );
            server.until_signal().await?;
            Ok(())
        }
        Command::Clients { command } => clients(&cli, &out, command).await,
        Command::Export { file } => {
            let store = open_store(&server_config(&cli)?).await?;
            let backup = store.export(jiff::Timestamp::now()).await?;
            let json = serde_json::to_vec_pretty(&backup)
                .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
            std::fs::write(file, json).map_err(|e| {
                Failure::new(
                    exit::FAILURE,
                    format!("cannot write {}: {e}", file.display()),
                )
            })?;
            backup_done(&out, "exported", "to", &backup, file);
            Ok(())
        }
        Command::Import { file } => {
            let store = open_store(&server_config(&cli)?).await?;
            let text = std::fs::read(file).map_err(|e| {
                Failure::new(
                    exit::FAILURE,
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
            let backup: Backup = serde_json::from_slice(&text).map_err(|e| {
                Failure::new(
                    exit::INVALID_ARGUMENT,
                    format!("{}: not a backup file: {e}", file.display()),
                )
            })?;
            store.import(&backup).await?;
            backup_done(&out, "imported", "from", &backup, file);
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let config = client_config(&cli).await?;
            let redacted = config.redacted();
            if cli.json {
                out.json(&redacted);
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&redacted).unwrap_or_default()
                );
                eprintln!("configuration is valid (secrets redacted)");
            }
            Ok(())
        }
        Command::Tools => {
            let service = service(&cli).await?;
            let tools = service
                .client()
                .mcp()
                .list_tools()
                .await
                .map_err(|e| Failure::new(exit::UNAVAILABLE, chain(&e)))?;
            out.tools(&tools);
            Ok(())
        }
        Command::Schedule {
            topic,
            participants,
            at,
            timezone,
            duration_minutes,
            metadata,
            idempotency_key,
        } => {
            let metadata = match metadata {
                None => None,
                Some(text) => match serde_json::from_str(text) {
                    Ok(serde_json::Value::Object(map)) => Some(map),
                    _ => {
                        return Err(Failure::new(
                            exit::INVALID_ARGUMENT,
                            "--metadata: expected a JSON object, e.g. '{\"team\":\"billing\"}'",
                        ));
                    }
                },
            };
            let request = ScheduleConversation {
                topic: topic.clone(),
                participants: participants.clone(),
                scheduled_time: at.clone(),
                timezone: timezone.clone(),
                duration_minutes: *duration_minutes,
                metadata,
                idempotency_key: idempotency_key.clone(),
            };
            // Check before connecting: a bad timestamp needs no network.
            request.validate().map_err(|e| {
                Failure::new(
                    exit::INVALID_ARGUMENT,
                    format!("invalid scheduler request: `{}`: {}", e.field, e.message),
                )
            })?;
            let result = service(&cli).await?.schedule_conversation(request).await?;
            out.scheduled(&result);
            Ok(())
        }
        Command::Status { id } => {
            let details = service(&cli).await?.conversation_status(id).await?;
            out.details(&details);
            Ok(())
        }
        Command::Cancel { id } => {
            let details = service(&cli).await?.cancel_conversation(id).await?;
            out.details(&details);
            Ok(())
        }
        Command::Reschedule { id, at } => {
            scheduler::domain::parse_time("scheduledTime", at).map_err(|e| {
                Failure::new(
                    exit::INVALID_ARGUMENT,
                    format!("invalid scheduler request: `{}`: {}", e.field, e.message),
                )
            })?;
            let details = service(&cli).await?.reschedule_conversation(id, at).await?;
            out.details(&details);
            Ok(())
        }
        Command::List {
            status,
            from,
            to,
            limit,
            all,
        } => {
            let filter = ListConversations {
                status: status.map(Into::into),
                from: from.clone(),
                to: to.clone(),
                limit: *limit,
                cursor: None,
            };
            filter.validate().map_err(|e| {
                Failure::new(
                    exit::INVALID_ARGUMENT,
                    format!("invalid scheduler request: `{}`: {}", e.field, e.message),
                )
            })?;
            let service = service(&cli).await?;
            let mut pages = service.pages(filter);
            let mut conversations = Vec::new();
            let mut next_cursor = None;
            while let Some(page) = pages.next().await {
                let page = page?;
                conversations.extend(page.conversations);
                next_cursor = page.next_cursor;
                if !all {
                    break;
                }
            }
            out.conversations(&conversations, next_cursor.as_deref());
            Ok(())
        }
        Command::FunctionsHandler { port } => functions::run(service(&cli).await?, *port).await,
        Command::Health => {
            let service = service(&cli).await.map_err(|f| {
                // Not even connected: unhealthy, with the reason.
                Failure::new(exit::UNHEALTHY, format!("unhealthy: {}", f.message))
            })?;
            let report = service.health_check().await;
            out.health(&report);
            if report.healthy {
                Ok(())
            } else {
                Err(Failure::new(exit::UNHEALTHY, "the service is unhealthy"))
            }
        }
    }
}

/// Reports an export or import: what moved, and where.
fn backup_done(out: &Out, done: &str, preposition: &str, backup: &Backup, file: &std::path::Path) {
    let (conversations, clients) = (backup.conversations.len(), backup.clients.len());
    out.message(
        &format!(
            "{done} {conversations} conversations and {clients} clients {preposition} {}",
            file.display()
        ),
        &serde_json::json!({
            "file": file,
            "conversations": conversations,
            "clients": clients,
        }),
    );
}

async fn clients(cli: &Cli, out: &Out, command: &ClientsCommand) -> Result<(), Failure> {
    let config = server_config(cli)?;
    let store = open_store(&config).await?;
    match command {
        ClientsCommand::Add { name, scopes } => {
            let scopes = if scopes.is_empty() {
                config.auth.scopes.clone()
            } else {
                scopes.clone()
            };
            let (client, key) =
                scheduler_server::auth::register_client(&*store, name, &scopes).await?;
            if out.is_json() {
                out.json(&serde_json::json!({
                    "client_id": client.id,
                    "api_key": key.expose(),
                    "scopes": client.scopes,
                }));
            } else {
                println!("client_id: {}", client.id);
                println!("api_key:   {}", key.expose());
            }
            eprintln!("Store the API key now: it is not shown again (only its hash is kept).");
        }
        ClientsCommand::List => {
            let clients = store.list_clients().await?;
            out.clients(&clients);
        }
        ClientsCommand::Remove { id } => {
            store.set_client_disabled(id, true).await?;
            out.message(
                &format!("client {id} removed (disabled; it can no longer get tokens)"),
                &serde_json::json!({ "client_id": id, "disabled": true }),
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let telemetry = match init_telemetry(cli.log_format, &cli.command) {
        Ok(guard) => guard,
        Err(failure) => {
            eprintln!("mcp-scheduler: {}", failure.message);
            return ExitCode::from(failure.code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-scheduler: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    drop(runtime);
    // Sends what is queued (bounded by the shutdown timeout) before the process exits.
    drop(telemetry);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "error": failure.message, "exit_code": failure.code })
                );
            }
            eprintln!("mcp-scheduler: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
