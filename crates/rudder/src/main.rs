//! The `rudder` binary: argument parsing and wiring; the components live in the library crates.

mod agent;
mod auth;
mod dashboard;
mod failover;
mod image;
mod limits;
mod node;
mod security;
mod server;
mod simulate;
mod snapshot;
mod token;

use clap::{Parser, Subcommand};

// The API server allocates and frees many short-lived JSON trees per request; under glibc's
// allocator a quarter of the server's CPU went to malloc/free (scheduler benchmark profile).
// `--features system-alloc` keeps the system allocator so heap profilers that hook malloc
// (heaptrack, valgrind) see every allocation.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "rudder",
    version,
    about = "A Kubernetes-compatible orchestrator in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the control plane (store, API server) and a node agent on this machine.
    Server(Box<server::ServerArgs>),
    /// Joins this machine to a cluster as a node (with a token from `rudder token create`).
    Agent(Box<agent::AgentArgs>),
    /// Manages bootstrap tokens for joining nodes.
    Token(token::TokenArgs),
    /// Manages the node's image store.
    Image(image::ImageArgs),
    /// The web dashboard: `rudder dashboard token` prints an administrator's sign-in token.
    Dashboard(dashboard::DashboardArgs),
    /// Backs up and restores the embedded store (`save`, `restore`, `status`).
    Snapshot(snapshot::SnapshotArgs),
}

fn main() -> anyhow::Result<()> {
    // The embedded runtime re-executes this binary as the monitor of each sandbox and container;
    // that mode takes raw arguments and must not parse or log like the CLI.
    let mut argv = std::env::args_os();
    if argv.nth(1).is_some_and(|a| a == "shim") {
        std::process::exit(rudder_runtime::embedded::shim_main(argv.collect()));
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUDDER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Server(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(server::run(*args)),
        Command::Agent(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(agent::run(*args)),
        Command::Token(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(token::run(args)),
        Command::Dashboard(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(dashboard::run(args)),
        Command::Snapshot(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(snapshot::run(args)),
        Command::Image(args) => image::run(args),
    }
}
