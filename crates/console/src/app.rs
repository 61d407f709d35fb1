//! The composition root: the only module that sees every layer. It opens the database,
//! makes the first admin account, puts the hosts, the use cases, the HTTP service and the
//! workers together, and runs them.

use crate::config::Config;
use crate::hosts::{GatedCluster, Host, Hosts};
use crate::http::Http;
use crate::metrics::Metrics;
use crate::service::accounts::Accounts;
use crate::service::audit::Audit;
use crate::service::ci::Ci;
use crate::service::cleanup::Cleanup;
use crate::service::containers::{Containers, Sessions};
use crate::service::courses::Courses;
use crate::service::images::{Catalog, Images, Scans};
use crate::service::quotas::Quotas;
use crate::service::ratelimit::{Attempts, LoginLimiter, LoginLimits};
use crate::service::reclaim::Reclaimer;
use crate::service::reconcile::Reconciler;
use crate::service::sif::SifCache;
use crate::service::storage::Storage;
use crate::service::system::Leading;
use crate::service::system::System;
use crate::service::users::Users;
use crate::service::vms::{VmHost, Vms};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wm_backend::ContainerBackend;
use wm_docker::DockerEngine;
use wm_store::Store;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] crate::sealed::SealError),
    #[error("cannot open the database")]
    Store(#[from] wm_store::StoreError),
    #[error("another wm already runs on the data directory {0} (its SQLite database takes one process): stop it first")]
    Running(String),
    #[error("cannot set up the admin account")]
    Admin(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("directory settings: {0}")]
    Directory(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A console ready to serve, bound to its port.
pub struct Application {
    /// Held while the console runs (see [`lock_installation`]).
    _lock: Option<std::fs::File>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    config: Arc<Config>,
    system: Arc<System>,
    workers: crate::workers::Deps,
}

/// An installation on SQLite is one process: `<data dir>/wm.lock`, locked while a console
/// runs there (and while `wm restore` replaces its database), so that a second `wm serve`
/// or a restore under a running console is refused rather than corrupting it. PostgreSQL
/// installations may run several consoles: nothing is locked.
pub fn lock_installation(config: &Config) -> Result<Option<std::fs::File>, StartError> {
    use std::os::unix::fs::OpenOptionsExt;
    if wm_store::sqlite_file(&config.database_url()).is_none() {
        return Ok(None);
    }
    crate::permissions::private_dir(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let path = config.data_dir.join("wm.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| StartError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StartError::Running(config.data_dir.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(source)) => Err(StartError::DataDir {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Builds the console of `wm serve`: the local Docker engine, in-process, and libvirt on
/// this machine when it lends VMs (see [`local_libvirt`]).
pub async fn build(config: Config) -> Result<Application, StartError> {
    let engine = Arc::new(DockerEngine::new(config.docker.clone()));
    let vm_hosts = local_libvirt(&config, engine.port_pool())
        .await?
        .map(|libvirt| VmHost {
            backend: Arc::new(libvirt),
            id: config.docker.host_name.clone(),
            local: true,
        })
        .into_iter()
        .collect();
    let address = match &config.docker.address {
        Some(a) => a.clone(),
        None => default_link_address(&config.docker.host_name),
    };
    build_with(
        config,
        vec![(engine as Arc<dyn ContainerBackend>, address)],
        vm_hosts,
    )
    .await
}

/// Where `wm serve`'s links to published ports point unless `WM_HOST_ADDRESS` says: this
/// machine's primary IPv4 address, which students' PCs can reach and which is not the name
/// the console is normally browsed under (see `crate::origin`); the host name only when the
/// machine has no address another machine could reach.
///
/// The primary address is the source address of the default route, found by connecting a
/// UDP socket: that only asks the kernel for a route and sends nothing. Without a default
/// route it is the first of the machine's own addresses that is neither loopback,
/// link-local nor on a container network (read from `/proc`).
///
/// The console's own name (the `Host` of a request) is never used: browsers would send its
/// session cookie to every container's port there (see `crate::http::origin`).
pub fn default_link_address(host_name: &str) -> String {
    let probe = || -> std::io::Result<std::net::IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("203.0.113.1:9")?;
        Ok(s.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_loopback() && !ip.is_unspecified() => ip.to_string(),
        _ => wm_docker::egress::HostNetwork::read()
            .reachable_v4()
            .map_or_else(|| host_name.to_string(), |ip| ip.to_string()),
    }
}

/// Builds the console of `wm console`: the docker agents of `WM_AGENTS`, no local engine.
pub async fn build_with_agents(config: Config) -> Result<Application, StartError> {
    if config.agents.is_empty() {
        return Err(crate::config::ConfigError::new(
            "wm console needs its agents in WM_AGENTS (h1=http://host1:8081 ...)",
        )
        .into());
    }
    let token = config.agent_token()?;
    let tls = config.agents_client_tls()?;
    let timeout = Duration::from_secs(config.docker.call_timeout_secs);
    let mut hosts: Vec<(Arc<dyn ContainerBackend>, String)> = Vec::new();
    let mut vm_hosts = Vec::new();
    for a in &config.agents {
        let remote = wm_agent::RemoteBackend::new(a, token, tls.clone(), timeout)
            .map_err(crate::config::ConfigError::new)?;
        hosts.push((Arc::new(remote), a.host().unwrap_or_else(|| a.id.clone())));
        // Each agent may lend VMs: it says so in its info (`WM_VM=false` here turns them
        // off for the whole console).
        if config.vm.enabled != Some(false) {
            let vms = wm_agent::RemoteVms::new(a, token, tls.clone(), timeout)
                .map_err(crate::config::ConfigError::new)?;
            vm_hosts.push(VmHost {
                backend: Arc::new(vms),
                id: a.id.clone(),
                local: false,
            });
        }
    }
    build_with(config, hosts, vm_hosts).await
}

/// Builds the console around the given container hosts, each with the address its
/// published ports are reached at unless the host names one: what `build` and
/// `build_with_agents` do with the local engine or the agents, and what the scale
/// benchmarks do with in-memory hosts.
pub async fn build_with_hosts(
    config: Config,
    backends: Vec<(Arc<dyn ContainerBackend>, String)>,
) -> Result<Application, StartError> {
    build_with(config, backends, Vec::new()).await
}

async fn build_with(
    config: Config,
    backends: Vec<(Arc<dyn ContainerBackend>, String)>,
    vm_hosts: Vec<VmHost>,
) -> Result<Application, StartError> {
    let addresses: Vec<String> = backends.iter().map(|(_, a)| a.clone()).collect();
    config.check_public_url(&addresses)?;
    crate::permissions::private_dir(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let lock = lock_installation(&config)?;
    let sealer = crate::sealed::Sealer::from_key_file(&config.secret_key_path())?;
    let database_url = config.database_url();
    let sqlite = crate::permissions::sqlite_path(&database_url).map(std::path::Path::to_path_buf);
    if let Some(db) = &sqlite {
        crate::permissions::sqlite_files(db).map_err(|source| StartError::DataDir {
            path: db.display().to_string(),
            source,
        })?;
    }
    let store = Store::connect(&database_url).await?;
    if let Some(db) = &sqlite {
        // The -wal and -shm that opening made, in case the file was looser before.
        crate::permissions::sqlite_files(db).map_err(|source| StartError::DataDir {
            path: db.display().to_string(),
            source,
        })?;
    }
    sealer.seal_plain_ci_tokens(&store).await?;
    // A scan the last run did not finish holds its image back until a new pull, build or
    // an administrator decides (see `service::images::scan`).
    let interrupted = store
        .fail_pending_image_scans(
            "the scan was interrupted by a restart of the console",
            crate::util::now(),
        )
        .await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "scans left unfinished by the last run are now errors"
        );
    }
    let metrics = Arc::new(Metrics::new(
        config.ldap.is_some(),
        config.kube.is_some() || config.kube_agent.is_some(),
    ));
    let directory = match &config.ldap {
        Some(settings) => Some(Arc::new(
            wm_ldap::Directory::new(settings.clone()).map_err(StartError::Directory)?,
        )),
        None => None,
    };
    let login_limits = LoginLimits {
        pair: config.login_rate_limit,
        user: config.login_user_rate_limit,
        address: config.login_address_rate_limit,
    };
    let accounts = Arc::new(Accounts::new(
        store.clone(),
        directory.clone(),
        LoginLimiter::new(store.clone(), Attempts::Logins, login_limits),
        metrics.clone(),
        config.session_hours * 3600,
    ));
    let hosts = Arc::new(Hosts::new(
        backends
            .into_iter()
            .map(|(b, address)| Host::new(b, address, metrics.clone()))
            .collect(),
        store.clone(),
    ));
    let tls = config.console_tls()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let cluster = cluster(&config)
        .await?
        .map(|c| Arc::new(GatedCluster::new(c, metrics.clone())));
    let config = Arc::new(config);
    let audit = Audit::new(store.clone());
    let catalog = Arc::new(Catalog::new(hosts.clone()));
    let quotas = Arc::new(Quotas::new(
        store.clone(),
        hosts.clone(),
        config.clone(),
        metrics.clone(),
    ));
    let images = Arc::new(Images::new(
        store.clone(),
        hosts.clone(),
        catalog.clone(),
        config.clone(),
        audit.clone(),
        quotas.clone(),
        Arc::new(Scans::new(
            config.scan.clone(),
            config.data_dir.join("scans"),
            metrics.clone(),
        )),
    ));
    // Containers' terminals and VMs' serial consoles count together per user.
    let sessions = Sessions::new(
        config.terminal_max_sessions,
        metrics.terminal_sessions.clone(),
    );
    let containers = Arc::new(Containers::new(
        store.clone(),
        hosts.clone(),
        cluster.clone(),
        images.clone(),
        quotas.clone(),
        config.clone(),
        sessions.clone(),
    ));
    let vms = Arc::new(Vms::new(
        store.clone(),
        vm_hosts,
        hosts.clone(),
        config.clone(),
        quotas.clone(),
        sessions,
    ));
    let sif_dir = config.data_dir.join("sif-cache");
    let sif = SifCache::open(
        sif_dir.clone(),
        config.sif_cache_max_bytes,
        hosts.clone(),
        images.clone(),
        metrics.clone(),
    )
    .map_err(|source| StartError::DataDir {
        path: sif_dir.display().to_string(),
        source,
    })?;
    let sif = Arc::new(sif);
    let reclaimer = Arc::new(Reclaimer::new(
        store.clone(),
        hosts.clone(),
        containers.clone(),
        audit.clone(),
        metrics.clone(),
        config.reclaim.clone(),
    ));
    let cleanup = Arc::new(Cleanup::new(
        store.clone(),
        hosts.clone(),
        sif.clone(),
        audit.clone(),
        metrics.clone(),
        config.reclaim.clone(),
    ));
    let reconciler = Arc::new(Reconciler::new(
        store.clone(),
        hosts.clone(),
        containers.clone(),
        catalog.clone(),
        audit.clone(),
        config.default_limits(),
    ));
    let leading = Arc::new(Leading::new(metrics.clone()));
    let system = Arc::new(System::new(
        store.clone(),
        hosts.clone(),
        cluster,
        directory,
        metrics.clone(),
        leading.clone(),
    ));
    let storage = Arc::new(Storage::new(store.clone(), hosts.clone(), quotas.clone()));
    // Join codes are limited as logins are: a wrong code counts as a failed login of the
    // caller's name from their address.
    let courses = Arc::new(Courses::new(
        store.clone(),
        LoginLimiter::new(store.clone(), Attempts::JoinCodes, login_limits),
    ));
    let users = Arc::new(Users::new(
        store.clone(),
        containers.clone(),
        images.clone(),
        storage.clone(),
    ));
    let leader_store = store.clone();
    let ci = Arc::new(Ci::new(
        store,
        hosts.clone(),
        Arc::new(sealer),
        config.clone(),
    ));
    // Last, once nothing else can fail and the port is ours (the listener is bound): a
    // start that fails makes no account and prints no password.
    let generated = accounts
        .ensure_admin(config.admin_password.as_ref().map(|p| p.expose()))
        .await
        .map_err(|e| StartError::Admin(Box::new(e)))?;
    if let Some(pw) = generated {
        eprintln!(
            "\nCreated the local account 'admin' with the password\n\n    {pw}\n\n\
             It is shown only this once. Set WM_ADMIN_PASSWORD to choose another.\n"
        );
    }
    let router = crate::http::router(Http {
        config: config.clone(),
        metrics,
        accounts,
        containers,
        images,
        sif,
        cleanup: cleanup.clone(),
        ci,
        reconciler: reconciler.clone(),
        system: system.clone(),
        storage,
        quotas,
        courses,
        users,
        vms: vms.clone(),
        audit,
    });
    let workers = crate::workers::Deps {
        hosts,
        catalog,
        reconciler,
        vms,
        system: system.clone(),
        reclaimer,
        cleanup: (config.reclaim.image_max_age.is_some() || config.reclaim.sif_max_age.is_some())
            .then_some(cleanup),
        reclaim_interval: Duration::from_secs(config.reclaim.interval_secs),
        cleanup_interval: Duration::from_secs(config.reclaim.cleanup_interval_secs),
        reconcile_interval: Duration::from_secs(config.reconcile_interval_secs),
        check_interval: Duration::from_secs(config.host_check_interval_secs),
        store: leader_store,
        leading,
    };
    Ok(Application {
        _lock: lock,
        listener,
        tls,
        router,
        config,
        system,
        workers,
    })
}

/// Libvirt on this machine, for `wm serve` and `wm agent docker`: when `vm.enabled` is
/// set (and then it must answer), or, left unset, when libvirt answers. Its forwarded
/// ports are lent from `ports`, the pool of the machine's containers.
///
/// # Errors
/// When `vm.enabled` is set and libvirt does not answer.
pub async fn local_libvirt(
    config: &Config,
    ports: Arc<wm_backend::ports::PortPool>,
) -> Result<Option<wm_libvirt::Libvirt>, StartError> {
    let auto = config.vm.enabled.is_none();
    if config.vm.enabled == Some(false) {
        return Ok(None);
    }
    let libvirt = wm_libvirt::Libvirt::new(wm_libvirt::LibvirtSettings {
        uri: config.vm.uri.clone(),
        domain_type: config.vm.domain_type(),
        storage_dir: config.vm.storage_dir.clone(),
        instance: config.docker.instance.clone(),
        publish_address: config.docker.publish_address.clone(),
        ports,
    });
    match libvirt.check().await {
        Ok(()) => Ok(Some(libvirt)),
        Err(e) if auto => {
            tracing::info!(error = %e, "no virtual machines: libvirt does not answer");
            Ok(None)
        }
        Err(e) => Err(crate::config::ConfigError::new(format!(
            "vm.enabled is set but libvirt at {} does not answer: {e}",
            config.vm.uri
        ))
        .into()),
    }
}

/// The cluster of the configuration: a kubernetes agent, the cluster in-process, or none.
async fn cluster(config: &Config) -> Result<Option<Arc<dyn wm_kube::Cluster>>, StartError> {
    if let Some(url) = &config.kube_agent {
        let remote = wm_agent::kube::RemoteCluster::new(
            url,
            config.agent_token()?,
            config.agents_client_tls()?,
            Duration::from_secs(config.docker.call_timeout_secs),
        )
        .map_err(crate::config::ConfigError::new)?;
        return Ok(Some(Arc::new(remote)));
    }
    match &config.kube {
        Some(settings) => {
            let kube = wm_kube::Kube::new(settings.clone())
                .await
                .map_err(|e| crate::config::ConfigError::new(format!("kube: {e}")))?;
            Ok(Some(Arc::new(kube)))
        }
        None => Ok(None),
    }
}

impl Application {
    /// The port actually bound (the configured one, or the one chosen for port 0).
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
            .port()
    }

    /// `https` when the console serves TLS itself, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The addresses links to containers' published ports use, one per host.
    pub fn link_addresses(&self) -> Vec<String> {
        self.system.link_addresses()
    }

    /// The console's canonical URL, when one is configured.
    pub fn public_url(&self) -> Option<&str> {
        self.config.public_url.as_deref()
    }

    /// Serves until `shutdown` completes, with the workers running beside (see
    /// `crate::workers`).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let workers = crate::workers::Workers::start(self.workers).await;
        // The peer address feeds the per-address login limit.
        let served = crate::http::serve::serve(
            self.listener,
            self.router,
            crate::http::serve::ServeLimits::from_config(&self.config.http),
            self.tls,
            shutdown,
        )
        .await;
        workers.stop();
        served
    }
}
