//! The `ticketd` command: serve, or mint a token. All the work is in the library.

use clap::Parser;
use std::process::ExitCode;
use ticketd::cli::{Cli, Commands};

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Commands::Serve) {
        Commands::Serve => ticketd::cli::serve(),
        Commands::Token(args) => ticketd::cli::token(args),
    }
}
