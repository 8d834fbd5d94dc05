//! The command line: `ticketd` / `ticketd serve` serve the API; `ticketd token` signs a token
//! with the configured secret so a newcomer can try the API at once; `ticketd export` and
//! `import` move a store's history (see `crate::transfer`); `ticketd audit`, `replay` and
//! `verify` are for auditors (see `crate::audit`); `ticketd webhooks` looks after partner
//! webhooks (see `crate::webhooks::command`).

use crate::auth;
use crate::config::Config;
use crate::telemetry;
use clap::{Args, Parser, Subcommand};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use ticketd_events::UserRole;
use tracing::{error, info};

/// Event-sourced support-ticket backend.
#[derive(Debug, Parser)]
#[command(name = "ticketd", version, about)]
pub struct Cli {
    /// What to do; serving is the default.
    #[command(subcommand)]
    pub command: Option<Commands>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Serve the REST API on WEB_SERVER_HOST:WEB_SERVER_PORT (the default).
    Serve,
    /// Print a token signed with the configured JWT secret.
    Token(TokenArgs),
    /// Print a ticket's history as a timeline (from MongoDB when MONGO_URI is set, else from
    /// DATA_DIR; reads only, may run beside the server).
    Audit(AuditArgs),
    /// Drop the read models and rebuild them from the events (MongoDB when MONGO_URI is set,
    /// else DATA_DIR; stop every server first).
    Replay(StoreArgs),
    /// Check every hash chain and that the read models equal a rebuild (MongoDB when MONGO_URI
    /// is set, else DATA_DIR; reads only, may run beside the server). Exits 1 naming the first
    /// damaged event.
    Verify(StoreArgs),
    /// Write every event, with its full envelope, as JSON lines, then the links and checkpoints
    /// (from MongoDB when MONGO_URI is set, else from DATA_DIR; may run beside the server).
    Export(ExportArgs),
    /// Load an export into an EMPTY store (MongoDB when MONGO_URI is set, else DATA_DIR, with
    /// the server stopped), with its links and checkpoints, and rebuild the read models;
    /// refuses a store that has data.
    Import(ImportArgs),
    /// Partner webhooks: show delivery, resume it after a 410, or deliver history again
    /// (MongoDB when MONGO_URI is set, else DATA_DIR; works while servers run).
    Webhooks(WebhooksArgs),
}

/// `ticketd webhooks`.
#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: WebhooksCommand,
}

/// The `ticketd webhooks` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Print the checkpoint, the lag behind the head, whether delivery is paused, and the last
    /// failure.
    Status(StoreArgs),
    /// Lift the pause a 410 Gone left: the refused event is delivered again first.
    Resume(StoreArgs),
    /// Move the checkpoint back so the event at --from, and every one after it, is delivered
    /// again.
    Replay(ReplayArgs),
}

/// `ticketd webhooks replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The first position delivered again (positions start at 1).
    #[arg(long)]
    pub from: u64,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

impl WebhooksArgs {
    /// Runs the subcommand.
    pub fn run(self) -> ExitCode {
        use crate::webhooks::command::{Action, webhooks_command};
        match self.command {
            WebhooksCommand::Status(store) => webhooks_command(&store.target(), Action::Status),
            WebhooksCommand::Resume(store) => webhooks_command(&store.target(), Action::Resume),
            WebhooksCommand::Replay(args) => {
                webhooks_command(&args.store.target(), Action::Replay { from: args.from })
            }
        }
    }
}

/// `ticketd export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write the JSON lines; stdout when left out.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// `ticketd import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// An export written by `ticketd export`.
    #[arg(long)]
    pub input: PathBuf,
}

/// Where the store is, for the auditing commands: MongoDB when `MONGO_URI` is set, as for the
/// server, else the SQLite file under `DATA_DIR`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The data directory holding `ticketd.db`.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// A MongoDB replica set to audit instead of the data directory.
    // Its value stays out of `--help`: a URI may hold a password.
    #[arg(long, env = "MONGO_URI", hide_env_values = true)]
    pub mongo_uri: Option<String>,
    /// The MongoDB database.
    #[arg(long, env = "DB_NAME", default_value = "support_ticket_db")]
    pub db_name: String,
}

impl StoreArgs {
    /// The store these arguments name. A blank `MONGO_URI` counts as unset, as for the server.
    pub fn target(&self) -> crate::audit::Target {
        match self.mongo_uri.as_deref().map(str::trim) {
            Some(uri) if !uri.is_empty() => crate::audit::Target::Mongo {
                uri: uri.to_owned(),
                db: self.db_name.trim().to_owned(),
            },
            _ => crate::audit::Target::Embedded(self.data_dir.clone()),
        }
    }
}

/// `ticketd audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The ticket's id.
    pub ticket_id: String,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `ticketd token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user's id.
    #[arg(long)]
    pub id: String,
    /// The user's display name.
    #[arg(long)]
    pub username: String,
    /// The user's email address.
    #[arg(long)]
    pub email: String,
    /// TEMP_USER, CUSTOMER, AGENT or ADMIN.
    #[arg(long)]
    pub role: String,
    /// Lifetime in seconds; no expiry when left out.
    #[arg(long)]
    pub ttl: Option<u64>,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ticketd: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    crate::serve::files::raise_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let bound = match config.host {
            Some(host) => {
                tokio::net::TcpListener::bind(SocketAddr::from((host, config.port))).await
            }
            None => bind_any(config.port).await,
        };
        let listener = match bound {
            Ok(listener) => listener,
            Err(e) => {
                error!(host = ?config.host, port = config.port, "cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        match crate::run(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Listens on every interface, IPv6 and IPv4 where the system allows, else IPv4 alone: what
/// an unset `WEB_SERVER_HOST` means.
async fn bind_any(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))).await {
        Ok(listener) => Ok(listener),
        Err(_) => tokio::net::TcpListener::bind(("0.0.0.0", port)).await,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    info!("shutdown requested: finishing in-flight requests");
}

/// Prints a signed token on stdout.
pub fn token(args: TokenArgs) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ticketd: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(role) = args.role.parse::<UserRole>() else {
        eprintln!("ticketd: --role must be one of TEMP_USER, CUSTOMER, AGENT, ADMIN");
        return ExitCode::from(2);
    };
    if !auth::is_email(&args.email) {
        eprintln!("ticketd: --email must be a valid address");
        return ExitCode::from(2);
    }
    match auth::mint(
        &config.jwt_secret,
        &args.id,
        &args.username,
        &args.email,
        role,
        args.ttl,
    ) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ticketd: cannot sign the token: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the configuration and runs `work` on a fresh runtime, for the one-shot commands; exits
/// 2 on a configuration error and 1 when `work` fails.
fn one_shot<F, T, E>(what: &str, work: impl FnOnce(Config) -> F) -> ExitCode
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ticketd: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ticketd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work(config)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ticketd {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ticketd export`: JSON lines on stdout or in `--output`; the count on stderr.
pub fn export(args: ExportArgs) -> ExitCode {
    one_shot("export", |config| async move {
        let count = crate::transfer::export_command(&config, args.output.as_deref()).await?;
        eprintln!("ticketd export: {count} events written");
        Ok::<_, crate::transfer::TransferError>(())
    })
}

/// `ticketd import --input FILE`.
pub fn import(args: ImportArgs) -> ExitCode {
    one_shot("import", |config| async move {
        let count = crate::transfer::import_command(&config, &args.input).await?;
        eprintln!("ticketd import: {count} events loaded and projected");
        Ok::<_, crate::transfer::TransferError>(())
    })
}
