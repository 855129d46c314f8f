//! `jupang`: the command line. The server lives in the library, the seeder and the load
//! generator in their own crates (tools/); this parses, dispatches and exits.
#![forbid(unsafe_code)]

mod cli;

use clap::Parser;

/// mimalloc instead of glibc's malloc: a request allocates and frees many small buffers across
/// the runtime's threads, and glibc spent ~20% of the coupon hot path's CPU in malloc/free
/// (BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = dotenvy::dotenv();
    match cli::Cli::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what was wrong (config errors name the variable).
            eprintln!("jupang: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
