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
    /// Bring up the whole stack (Envoy, router, control plane, local or Kubernetes backend) and supervise it.
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
            let _telemetry = whisk_telemetry::init_tracing(
                "whisk-controlplane",
                args.telemetry.log_json,
                args.telemetry.otlp(),
            )
            .context("setting up logs and traces")?;
            whisk_controlplane::up::run(args).await?;
        }
        Command::Controlplane(args) => {
            let _telemetry = whisk_telemetry::init_tracing(
                "whisk-controlplane",
                args.telemetry.log_json,
                args.telemetry.otlp(),
            )
            .context("setting up logs and traces")?;
            let config = args.into_config()?;
            let stop = whisk_controlplane::shutdown_signal();
            let handle = whisk_controlplane::start(config)
                .await
                .context("starting the control plane")?;
            println!("WHISK_CONTROLPLANE_GRPC {}", handle.grpc_addr());
            println!("WHISK_CONTROLPLANE_HTTP {}", handle.http_addr());
            stop.await;
            handle.shutdown().await;
        }
        Command::Admin(args) => {
            let out = run_admin(args).await?;
            println!("{out}");
        }
    }
    Ok(())
}
