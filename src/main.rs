//! The `ticketd` command: serve, mint a token, move or audit the store. All the work is in the
//! library.

use clap::Parser;
use std::process::ExitCode;
use ticketd::cli::{Cli, Commands};

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Commands::Serve) {
        Commands::Serve => ticketd::cli::serve(),
        Commands::Token(args) => ticketd::cli::token(args),
        Commands::Audit(args) => {
            ticketd::audit::audit_command(&args.store.target(), &args.ticket_id)
        }
        Commands::Replay(args) => ticketd::audit::replay_command(&args.target()),
        Commands::Verify(args) => ticketd::audit::verify_command(&args.target()),
        Commands::Export(args) => ticketd::cli::export(args),
        Commands::Import(args) => ticketd::cli::import(args),
        Commands::Webhooks(args) => args.run(),
    }
}
