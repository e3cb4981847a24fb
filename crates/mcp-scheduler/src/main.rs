//! `mcp-scheduler`: the command-line tool of the Scheduler workspace.
//!
//! Today: `serve` (the Scheduler MCP service), `clients create|list|disable` (API clients of
//! the service's token endpoint; a new client's API key is printed once and never again), and
//! `backup export|import` (the whole store as one JSON file). The client commands (`demo`,
//! `schedule`, `status`, ...) land with the scheduler + CLI issue.

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool prints its results"
)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use scheduler_server::config::ServerConfig;
use scheduler_server::store::{Backup, Store};

#[derive(Parser, Debug)]
#[command(
    name = "mcp-scheduler",
    version,
    about = "The Scheduler MCP service and its tools"
)]
struct Cli {
    /// Server configuration file (JSON). Environment overrides: SCHEDULER_BIND,
    /// SCHEDULER_PUBLIC_URL, SCHEDULER_DATABASE, SCHEDULER_WEBHOOK_URL.
    #[arg(long, global = true, env = "SCHEDULER_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
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
    /// Run the Scheduler MCP service until Ctrl-C or SIGTERM.
    Serve,
    /// Manage API clients of the token endpoint.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Export or import the whole store (clients with hashed keys, settings, conversations).
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ClientsCommand {
    /// Register a client; prints its id and API key (shown this once only).
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// Scopes it may ask for (repeatable). Default: the server's configured scopes.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List clients (never their keys).
    List,
    /// Stop a client from getting new tokens.
    Disable {
        /// The client id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// Write everything except secret settings to a JSON file.
    Export {
        /// Output file.
        file: PathBuf,
    },
    /// Load a backup into an empty store.
    Import {
        /// Input file.
        file: PathBuf,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rmcp logs several info lines per stateless request; keep them out by default.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for log files and collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

type Failure = Box<dyn std::error::Error>;

async fn open_store(config: &ServerConfig) -> Result<Box<dyn Store>, Failure> {
    if config.database == ":memory:" {
        return Err("`database` is :memory:; these commands need a database file".into());
    }
    Ok(Box::new(scheduler_server::store::SqliteStore::open(
        &config.database,
    )?))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let config = ServerConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            let server = scheduler_server::server::start(config).await?;
            eprintln!(
                "scheduler listening on {} (MCP endpoint {})",
                server.url(),
                server.mcp_url()
            );
            server.until_signal().await?;
        }
        Command::Clients { command } => {
            let store = open_store(&config).await?;
            match command {
                ClientsCommand::Create { name, scopes } => {
                    let scopes = if scopes.is_empty() {
                        config.auth.scopes.clone()
                    } else {
                        scopes
                    };
                    let (client, key) =
                        scheduler_server::auth::register_client(&*store, &name, &scopes).await?;
                    println!("client_id: {}", client.id);
                    println!("api_key:   {}", key.expose());
                    eprintln!(
                        "Store the API key now: it is not shown again (only its hash is kept)."
                    );
                }
                ClientsCommand::List => {
                    for c in store.list_clients().await? {
                        let state = if c.disabled { "disabled" } else { "enabled" };
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            c.id,
                            c.name,
                            c.scopes.join(" "),
                            state,
                            c.created_at
                        );
                    }
                }
                ClientsCommand::Disable { id } => {
                    store.set_client_disabled(&id, true).await?;
                    println!("client {id} disabled");
                }
            }
        }
        Command::Backup { command } => {
            let store = open_store(&config).await?;
            match command {
                BackupCommand::Export { file } => {
                    let backup = store.export(jiff::Timestamp::now()).await?;
                    let json = serde_json::to_vec_pretty(&backup)?;
                    std::fs::write(&file, json)?;
                    println!(
                        "exported {} conversations and {} clients to {}",
                        backup.conversations.len(),
                        backup.clients.len(),
                        file.display()
                    );
                }
                BackupCommand::Import { file } => {
                    let text = std::fs::read(&file)?;
                    let backup: Backup = serde_json::from_slice(&text)
                        .map_err(|e| format!("{}: not a backup file: {e}", file.display()))?;
                    store.import(&backup).await?;
                    println!(
                        "imported {} conversations and {} clients from {}",
                        backup.conversations.len(),
                        backup.clients.len(),
                        file.display()
                    );
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-scheduler: {e}");
            ExitCode::FAILURE
        }
    }
}
