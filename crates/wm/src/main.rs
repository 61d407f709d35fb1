//! `wm`: the whalemountain binary: the services, and the command-line client.

mod client;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "wm",
    version,
    about = "whalemountain: containers lent to a department's students and teachers",
    after_help = "Exit codes of the client commands: 0 ok, 1 error, 2 usage or invalid input, \
        3 not logged in, 4 not found, 5 refused (permission, conflict, quota); \
        `wm exec` exits with the command's code (124 when the server stopped it at its time limit).\n\n\
        Example session:\n  wm login --url https://wm.example.org --user alice\n  \
        wm run web --image nginx -p 80\n  wm exec web -- nginx -v\n  wm cp site.html web:/usr/share/nginx/html/\n  wm rm web"
)]
struct Cli {
    #[command(flatten)]
    target: client::Target,
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
    /// Run the console alone, lending from the docker agents listed in `WM_AGENTS`.
    Console {
        /// A TOML configuration file; `WM_*` variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Write a consistent copy of the installation's store to FILE, also while it runs
    /// (SQLite: `VACUUM INTO`; PostgreSQL: `pg_dump`'s custom format).
    #[command(after_help = "Example:\n  wm backup /var/backups/wm/wm-$(date +%F).db")]
    Backup {
        file: PathBuf,
        /// The installation's TOML configuration file; `WM_*` variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Replace the store of an installation that is not running with a copy `wm backup`
    /// wrote. Its migrations are applied at the next start if it is older.
    #[command(
        after_help = "Example:\n  systemctl stop wm-serve && wm restore wm-2026-12-01.db && systemctl start wm-serve"
    )]
    Restore {
        file: PathBuf,
        /// The installation's TOML configuration file; `WM_*` variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Copy every row of a store (the SQLite file of a one-machine installation) into an
    /// empty PostgreSQL database, to run several consoles on it. Stop the installation
    /// first; point `WM_DATABASE_URL` at the new database afterwards.
    #[command(
        name = "migrate-store",
        after_help = "Example:\n  systemctl stop wm-serve\n  wm migrate-store --from sqlite:///var/lib/wm/wm.db --to postgres://wm:secret@db.example.org/wm"
    )]
    MigrateStore {
        /// The store to copy: `sqlite://<file>` (or `postgres://...`).
        #[arg(long)]
        from: String,
        /// The empty PostgreSQL database to copy into: `postgres://...`.
        #[arg(long)]
        to: String,
    },
    /// Run an agent: the narrow, authenticated API of one container host.
    Agent {
        #[command(subcommand)]
        kind: AgentKind,
    },
    /// Tools of the Kubernetes backend.
    Kube {
        #[command(subcommand)]
        command: KubeCommand,
    },
    #[command(flatten)]
    Client(client::ClientCommand),
    /// Print a shell's completion script for `wm`.
    #[command(
        after_help = "Example:\n  wm completions bash > ~/.local/share/bash-completion/completions/wm"
    )]
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum AgentKind {
    /// Serve this host's Docker engine to the console (`WM_AGENT_TOKEN`, `WM_HOST_ID`,
    /// `WM_PORT_RANGE`, `WM_LISTEN`).
    Docker {
        /// A TOML configuration file; `WM_*` variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Serve the Kubernetes backend to the console (`WM_AGENT_TOKEN`, `WM_KUBECONFIG` or
    /// the in-cluster account, `WM_KUBE_*`, `WM_LISTEN`).
    Kubernetes {
        /// A TOML configuration file; `WM_*` variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Every TLS client in the process (the directory's, later registries') uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Client(command) => client::run(cli.target, command).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "wm", &mut std::io::stdout());
            std::process::ExitCode::SUCCESS
        }
        command => match service(command).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e:?}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

/// The services and tools that run on the installation's machines.
async fn service(command: Command) -> anyhow::Result<()> {
    init_logs()?;
    match command {
        Command::Serve { config } => console(config, false).await,
        Command::Console { config } => console(config, true).await,
        Command::Agent {
            kind: AgentKind::Docker { config },
        } => docker_agent(config).await,
        Command::Agent {
            kind: AgentKind::Kubernetes { config },
        } => kubernetes_agent(config).await,
        Command::Kube { command } => command.run(),
        Command::Backup { file, config } => {
            let config = wm_console::Config::load(config.as_deref(), std::env::vars())?;
            wm_store::backup(&config.database_url(), &file).await?;
            tracing::info!(file = %file.display(), "backup written");
            Ok(())
        }
        Command::Restore { file, config } => {
            let config = wm_console::Config::load(config.as_deref(), std::env::vars())?;
            // Held while the database is replaced: no console may start meanwhile.
            let _lock = wm_console::app::lock_installation(&config)?;
            wm_store::restore(&config.database_url(), &file).await?;
            tracing::info!(file = %file.display(), "restored; start the installation again");
            Ok(())
        }
        Command::MigrateStore { from, to } => {
            if let Some(file) = wm_store::sqlite_file(&from).filter(|f| !f.exists()) {
                anyhow::bail!("no SQLite database at {}", file.display());
            }
            for (table, rows) in wm_store::copy_store(&from, &to).await? {
                tracing::info!(table, rows, "copied");
            }
            tracing::info!(
                "copied; set WM_DATABASE_URL to the new database and start the consoles"
            );
            Ok(())
        }
        Command::Client(_) | Command::Completions { .. } => unreachable!("handled in main"),
    }
}

/// Logs on standard error: `WM_LOG` filters (default `info`), `WM_LOG_FORMAT` is `text`
/// (default: colours only for a person at a terminal, never in a file or the journal) or
/// `json` (one JSON object a line, for a log collector).
fn init_logs() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WM_LOG")
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log reader that went away (a closed pipe) must not take the service down:
        // the default reports a failed write with eprintln!, which panics then.
        .log_internal_errors(false);
    match std::env::var("WM_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().with_current_span(false).init(),
        Ok("text") | Ok("") | Err(_) => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        Ok(other) => anyhow::bail!("WM_LOG_FORMAT is `text` or `json`, not {other:?}"),
    }
    Ok(())
}

async fn console(file: Option<PathBuf>, with_agents: bool) -> anyhow::Result<()> {
    let config = wm_console::Config::load(file.as_deref(), std::env::vars())?;
    let listen = config.listen;
    if !with_agents && !config.agents.is_empty() {
        tracing::warn!(
            "WM_AGENTS is for `wm console`; `wm serve` lends from the local engine only"
        );
    }
    let app = if with_agents {
        wm_console::build_with_agents(config).await
    } else {
        wm_console::build(config).await
    }
    .context("whalemountain could not start")?;
    tracing::info!(
        "whalemountain listening on {}://{}:{}",
        app.scheme(),
        listen.ip(),
        app.port()
    );
    // Browsers send the console's cookies to every port of its name, so the console is not
    // served under the names the links to containers' ports use.
    let links = app.link_addresses();
    tracing::info!(
        links = %links.join(" "),
        public_url = app.public_url().unwrap_or("(unset)"),
        "links to containers' ports use these addresses; browse the console under another name (WM_PUBLIC_URL)"
    );
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn docker_agent(file: Option<PathBuf>) -> anyhow::Result<()> {
    let config = wm_console::Config::load(file.as_deref(), std::env::vars())?;
    let token = wm_agent::AgentToken::new(config.agent_token()?);
    let tls = config.agent_server_tls()?;
    let engine = Arc::new(wm_docker::DockerEngine::new(config.docker.clone()));
    let vms = match wm_console::app::local_libvirt(&config, engine.port_pool()).await? {
        Some(libvirt) => {
            use wm_backend::vm::VmBackend;
            // The forwards of the domains defined before a restart go back to the pool
            // before any container can be lent one of them.
            let found = libvirt.list().await?;
            tracing::info!(vms = found.len(), "lending virtual machines from libvirt");
            Some(wm_agent::VmAgent {
                backend: Arc::new(libvirt),
                spool_dir: config.vm.storage_dir.join("incoming"),
            })
        }
        None => None,
    };
    let limits = wm_agent::BodyLimits {
        upload: config.upload_max_bytes + (1 << 20),
        // The console sends a context unpacked (with its Dockerfile pinned).
        build_context: config
            .build_context_max_bytes
            .max(usize::try_from(config.build_context_max_unpacked_bytes).unwrap_or(usize::MAX))
            .saturating_add(1 << 20),
        vm_image: usize::try_from(config.vm.image_max_bytes).unwrap_or(usize::MAX),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(
        host = %config.docker.host_name,
        ports = %config.docker.port_range(),
        "docker agent listening on {}://{}",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?
    );
    let router = wm_agent::router(engine, vms, token, limits);
    wm_agent::serve(listener, router, tls, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

#[derive(Subcommand)]
enum KubeCommand {
    /// Print, as multi-document YAML, every object the Kubernetes backend applies for a
    /// user and, with --container, for one of their containers.
    Manifests {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "student")]
        role: String,
        /// The container's short name.
        #[arg(long, requires = "image")]
        container: Option<String>,
        #[arg(long, requires = "container")]
        image: Option<String>,
        /// Guest ports, space-separated ("80 8080"); the first gets the Ingress.
        #[arg(long, requires = "container", default_value = "")]
        ports: String,
        /// Environment, space-separated `KEY=value` pairs, quoted as in a shell
        /// (`MSG="hello world"`).
        #[arg(long, requires = "container", default_value = "")]
        env: String,
        /// The creation id written on the container's objects.
        #[arg(long, default_value = "manual")]
        creation_id: String,
        /// The configuration whose `[kube]` settings (and `WM_KUBE_*` variables) decide
        /// the objects, as for the console.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

impl KubeCommand {
    fn run(self) -> anyhow::Result<()> {
        use wm_domain::{
            parse_env_string, parse_port_list, ContainerName, GuestPort, ImageRef, Role, ShortName,
            UserName,
        };
        let KubeCommand::Manifests {
            user,
            role,
            container,
            image,
            ports,
            env,
            creation_id,
            config,
        } = self;
        let config = wm_console::Config::load(config.as_deref(), std::env::vars())?;
        let settings = config.kube.unwrap_or_default();
        let parsed = || -> Result<_, wm_domain::ParseError> {
            let owner = UserName::parse(&user)?;
            let role = Role::parse(&role)?;
            let spec = match (container, image) {
                (Some(short), Some(image)) => {
                    let short_name = ShortName::parse(&short)?;
                    let ports = ports
                        .split_whitespace()
                        .map(GuestPort::parse)
                        .collect::<Result<Vec<_>, _>>()?;
                    Some(wm_kube::KubeContainerSpec {
                        name: ContainerName::new(&owner, &short_name)?,
                        owner: owner.clone(),
                        short_name,
                        image: ImageRef::parse(&image)?,
                        env: parse_env_string(&env)?,
                        ports: parse_port_list(ports, usize::from(u16::MAX))?,
                        creation_id,
                        role,
                        gpus: 0,
                        courses: Vec::new(),
                    })
                }
                _ => None,
            };
            Ok((owner, role, spec))
        };
        // Named as the option the value came from.
        let (owner, role, spec) = parsed().map_err(|e| {
            let option = match e.field {
                "name" => "container",
                "username" => "user",
                other => other,
            };
            anyhow::anyhow!("--{option}: {}", e.message)
        })?;
        print!(
            "{}",
            wm_kube::render_manifests(&settings, &owner, role, spec.as_ref())?
        );
        Ok(())
    }
}

async fn kubernetes_agent(file: Option<PathBuf>) -> anyhow::Result<()> {
    let config = wm_console::Config::load(file.as_deref(), std::env::vars())?;
    let token = wm_agent::AgentToken::new(config.agent_token()?);
    let tls = config.agent_server_tls()?;
    let settings = config.kube.clone().unwrap_or_default();
    settings
        .validate()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let kube = wm_kube::Kube::new(settings).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(
        "kubernetes agent listening on {}://{}",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?
    );
    let router = wm_agent::kube::router(Arc::new(kube), token);
    wm_agent::serve(listener, router, tls, shutdown_signal()).await?;
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
