//! `jupang`: the command line. Everything lives in the library; this only parses and exits.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = dotenvy::dotenv();
    match jupang::cli::Cli::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what was wrong (config errors name the variable).
            eprintln!("jupang: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
