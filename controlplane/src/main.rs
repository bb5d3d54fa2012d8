//! `whisk`: a thin dispatcher over the library's subcommands (`up`, `controlplane`, `admin`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use whisk_controlplane::cli::{AdminArgs, ControlPlaneArgs, run_admin};

#[derive(Debug, Parser)]
#[command(
    name = "whisk",
    version,
    about = "OpenWhisk-compatible serverless on Envoy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring up the whole stack (Envoy, router, control plane, local backend) and supervise it.
    Up(whisk_controlplane::up::UpArgs),
    /// Run the control plane.
    Controlplane(ControlPlaneArgs),
    /// Manage identities and namespace limits of a running control plane.
    Admin(AdminArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            whisk_controlplane::up::run(args).await?;
        }
        Command::Controlplane(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            let config = args.into_config()?;
            let handle = whisk_controlplane::start(config)
                .await
                .context("starting the control plane")?;
            println!("WHISK_CONTROLPLANE_GRPC {}", handle.grpc_addr());
            println!("WHISK_CONTROLPLANE_HTTP {}", handle.http_addr());
            whisk_controlplane::shutdown_signal().await;
            handle.shutdown().await;
        }
        Command::Admin(args) => {
            let out = run_admin(args).await?;
            println!("{out}");
        }
    }
    Ok(())
}
