//! Subcommands and the options they share.

mod bench;
mod config;
mod doctor;
mod doctor_cluster;
mod engines;
mod image;
mod logging;
mod mcp;
mod run;
mod serve;
mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "runbox",
    version,
    about = "Runs untrusted Python and bash in Docker sandboxes behind an HTTP API"
)]
pub struct Cli {
    /// The configuration file (default: $RUNBOX_CONFIG, else ./config.yaml when present,
    /// else built-in defaults).
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Starts the server (builds the sandbox image first when it is missing).
    Serve(serve::ServeArgs),
    /// Creates or revokes JWTs.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Builds the sandbox image.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Runs a file on a runbox server and prints what it printed; saves its images.
    Run(run::RunArgs),
    /// Serves a runbox server's MCP tools over stdio (for MCP clients that start their
    /// servers as subprocesses).
    Mcp(mcp::McpArgs),
    /// Checks Docker, the sandbox image, the database, the port range and the config.
    Doctor,
    /// Measures latency, throughput and idle memory against the engine's own costs.
    // Boxed: its options outweigh every other command's.
    Bench(Box<bench::BenchArgs>),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = || config::load(cli.config.as_deref());
    match cli.command {
        Command::Serve(args) => serve::run(config()?, args).await,
        Command::Token(command) => token::run(config()?, command).await,
        Command::Image(command) => image::run(config()?, command).await,
        // A client of a server: the local configuration does not matter.
        Command::Run(args) => run::run(args).await,
        Command::Mcp(args) => mcp::run(args).await,
        Command::Doctor => doctor::run(config()?).await,
        Command::Bench(args) => bench::run(config()?, *args).await,
    }
}
