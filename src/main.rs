//! The runbox command line: `serve`, `token`, `image`.

mod cli;
mod embedded;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("runbox: {err:#}");
            ExitCode::FAILURE
        }
    }
}
