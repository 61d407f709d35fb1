//! `wm`: the whalemountain binary.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "wm",
    version,
    about = "whalemountain: containers lent to a department's students and teachers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the console with the local Docker engine and a SQLite file: the embedded
    /// default, nothing else to install.
    Serve {
        /// A TOML configuration file; `WM_*` variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Every TLS client in the process (the directory's, later registries') uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WM_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve { config } => serve(config).await,
    }
}

async fn serve(file: Option<PathBuf>) -> anyhow::Result<()> {
    let config = wm_console::Config::load(file.as_deref(), std::env::vars())?;
    let listen = config.listen;
    let app = wm_console::build(config)
        .await
        .context("whalemountain could not start")?;
    tracing::info!(
        "whalemountain listening on http://{}:{}",
        listen.ip(),
        app.port()
    );
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
