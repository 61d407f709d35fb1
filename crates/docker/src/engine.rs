//! [`DockerEngine`]: the Docker Engine API client behind [`ContainerBackend`].

use crate::build::{post_build, BuildCgroup};
use crate::egress::EgressError;
use crate::gpus::{self, Discovery, GpuDiscovery, GpuPool, Taken};
use crate::labels;
use crate::pull_error::PullFailure;
use crate::settings::DockerSettings;
use crate::storage::{self, StorageKind};
use crate::subnets::Cidr;
use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::container::{
    Config, CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions, LogOutput,
    LogsOptions, RemoveContainerOptions, StatsOptions, StopContainerOptions,
    UploadToContainerOptions,
};
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::image::{CreateImageOptions, ListImagesOptions, RemoveImageOptions};
use bollard::models::{
    BuildInfo, ContainerInspectResponse, ContainerStateStatusEnum, DeviceMapping, DeviceRequest,
    HostConfig, HostConfigLogConfig, Ipam, IpamConfig, Mount, MountTypeEnum, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::network::{CreateNetworkOptions, InspectNetworkOptions};
use bollard::system::EventsOptions;
use bollard::volume::{CreateVolumeOptions, RemoveVolumeOptions};
use bollard::Docker;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, RwLock};
use wm_backend::ports::PortPool;
use wm_backend::{
    why, Activity, BackendError, BuildRequest, ByteStream, ContainerBackend, ContainerSpec,
    ContainerState, ExecOutput, ExecRequest, Gpu, GpuKind, HostInfo, ImageInfo, PortBinding,
    Progress, ProgressStream, RegistryAuth, RunnerSpec, RunnerState, StoragePath, Terminal,
    TerminalInput, TerminalOutput, TerminalRequest, Why,
};
use wm_domain::{ContainerKey, ContainerStatus, GuestPort, ImageRef, UserName};

/// `wm.kind` of a CI runner.
const RUNNER_KIND: &str = "ci-runner";
/// `wm.kind` of the never-started container an image's file system is exported from.
const SCAN_KIND: &str = "image-scan";
/// A scan container older than this is one a crash left behind.
const STALE_SCAN_SECS: i64 = 6 * 3600;

/// Most bytes of log output one call returns.
const MAX_LOG_BYTES: usize = 4 << 20;
/// Seconds `stop` gives a container before it is killed.
const STOP_GRACE_SECS: i64 = 10;
/// Creates tried with other host ports when the first ones turn out to be held.
const PORT_ATTEMPTS: usize = 5;

/// A Docker Engine, reached lazily: the engine may be down when we start, and every call
/// answers [`BackendError::Unavailable`] quickly until it is back.
pub struct DockerEngine {
    settings: DockerSettings,
    client: RwLock<Option<Docker>>,
    timeout: Duration,
    /// One lock per owner around creating and removing their network, so concurrent
    /// creates do not make several networks of one name (the engine does not prevent
    /// it) and a removal does not pull the network from under a create.
    network_locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Around choosing a subnet from the pool and creating the network with it, so two
    /// owners' networks never pick the same one.
    subnet_lock: Mutex<()>,
    ports: Arc<PortPool>,
    /// Which containers hold which GPUs, kept as the port pool is.
    gpu_pool: GpuPool,
    /// `nvidia-smi`'s last answer.
    discovery: Discovery,
    /// Builds running per owner: their network stays while one runs.
    builds: Arc<std::sync::Mutex<HashMap<String, usize>>>,
}

impl DockerEngine {
    /// Does not contact the engine; the first call does.
    pub fn new(settings: DockerSettings) -> Self {
        let timeout = Duration::from_secs(settings.call_timeout_secs);
        Self {
            ports: Arc::new(PortPool::new(settings.port_range())),
            gpu_pool: GpuPool::default(),
            discovery: Discovery::default(),
            settings,
            client: RwLock::new(None),
            timeout,
            network_locks: Default::default(),
            subnet_lock: Mutex::new(()),
            builds: Default::default(),
        }
    }

    pub fn settings(&self) -> &DockerSettings {
        &self.settings
    }

    /// The host's port pool, for a VM host on the same machine to lend its forwards from.
    pub fn port_pool(&self) -> Arc<PortPool> {
        self.ports.clone()
    }

    /// The host's GPUs: those `nvidia-smi` finds (unless discovery is off), with the
    /// declared ones over them.
    pub async fn gpus(&self) -> Vec<Gpu> {
        let found = match self.settings.gpu_discovery {
            GpuDiscovery::Auto => self.discovery.nvidia().await,
            GpuDiscovery::Off => Vec::new(),
        };
        gpus::inventory(found, &self.settings.gpus)
    }

    /// The inventory's GPUs the spec asks for.
    ///
    /// # Errors
    /// [`BackendError::Policy`] for an id the host does not have, or one asked twice.
    async fn gpus_of(&self, spec: &ContainerSpec) -> Result<Vec<Gpu>, BackendError> {
        if spec.gpus.is_empty() {
            return Ok(Vec::new());
        }
        let inventory = self.gpus().await;
        let mut out: Vec<Gpu> = Vec::with_capacity(spec.gpus.len());
        for id in &spec.gpus {
            if out.iter().any(|g| &g.id == id) {
                return Err(BackendError::Policy(why::gpu_twice(id)));
            }
            let gpu = inventory.iter().find(|g| &g.id == id).ok_or_else(|| {
                let known: Vec<&str> = inventory.iter().map(|g| g.id.as_str()).collect();
                BackendError::Policy(why::no_gpu(id, &known))
            })?;
            out.push(gpu.clone());
        }
        Ok(out)
    }

    /// The engine's configuration of the container `spec` describes, with these host
    /// ports: the hardened host configuration, its GPUs, its labels. What [`create`]
    /// sends; public so that tests can check it against the engine without starting it.
    ///
    /// [`create`]: ContainerBackend::create
    ///
    /// # Errors
    /// As for `create`: [`BackendError::Policy`] for GPUs the host does not have.
    pub async fn container_config(
        &self,
        spec: &ContainerSpec,
        ports: &[PortBinding],
    ) -> Result<Config<String>, BackendError> {
        let gpus = self.gpus_of(spec).await?;
        Ok(self.config_for(spec, ports, &gpus))
    }

    fn config_for(
        &self,
        spec: &ContainerSpec,
        ports: &[PortBinding],
        gpus: &[Gpu],
    ) -> Config<String> {
        let mut labels = self.our_labels(&spec.owner);
        labels.insert(labels::NAME.into(), spec.short_name.as_str().into());
        labels.insert(labels::PORTS.into(), ports_label(ports));
        labels.insert(labels::MEMORY.into(), spec.limits.memory_bytes.to_string());
        if !gpus.is_empty() {
            let ids: Vec<String> = gpus.iter().map(|g| g.id.clone()).collect();
            labels.insert(labels::GPUS.into(), gpus::label(&ids));
        }
        Config {
            image: Some(spec.image.to_string()),
            hostname: Some(spec.short_name.as_str().to_string()),
            env: Some(spec.env.iter().map(ToString::to_string).collect()),
            labels: Some(labels),
            exposed_ports: Some(
                ports
                    .iter()
                    .map(|p| (port_key(p.guest), HashMap::new()))
                    .collect(),
            ),
            host_config: Some(self.host_config(spec, ports, gpus)),
            ..Default::default()
        }
    }

    /// The client, connected and with its API version negotiated (Docker 20.10 speaks
    /// 1.41, older than this library's default).
    async fn docker(&self) -> Result<Docker, BackendError> {
        if let Some(d) = self.client.read().await.as_ref() {
            return Ok(d.clone());
        }
        let mut slot = self.client.write().await;
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let host = &self.settings.host;
        // Long operations (exec, uploads) have their own limits; this one only guards
        // against a wedged connection.
        let transport_timeout = 600;
        let client = if host.starts_with("unix://") {
            Docker::connect_with_unix(host, transport_timeout, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(host, transport_timeout, bollard::API_DEFAULT_VERSION)
        }
        .map_err(unavailable)?;
        let negotiated = tokio::time::timeout(self.timeout, client.negotiate_version())
            .await
            .map_err(|_| self.timed_out())?
            .map_err(unavailable)?;
        *slot = Some(negotiated.clone());
        Ok(negotiated)
    }

    fn timed_out(&self) -> BackendError {
        BackendError::Unavailable(Why::new(
            "engine_timeout",
            [("seconds", self.timeout.as_secs().to_string())],
            format!(
                "the Docker engine did not answer within {} seconds",
                self.timeout.as_secs()
            ),
        ))
    }

    /// Runs one engine call under the call time-out. A connection failure forgets the
    /// client, so that a restarted engine is negotiated with again.
    async fn call<T, F>(&self, fut: F) -> Result<T, BackendError>
    where
        F: Future<Output = Result<T, DockerError>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(self.timed_out()),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let err = classify(e);
                if matches!(err, BackendError::Unavailable(_)) {
                    *self.client.write().await = None;
                }
                Err(err)
            }
        }
    }

    /// The engine's name for a lent container, `<instance>.<owner>.<short name>`: one
    /// name per (instance, owner, short name), see [`crate::container_name`].
    fn container_name(&self, key: &ContainerKey) -> String {
        crate::container_name(&self.settings.instance, key)
    }

    /// The container of `key`, if the engine has one of ours: under its name, or under
    /// the `<owner>-<short name>` of versions before it (kept for containers they made).
    /// Its labels decide, never its name alone: the container must be ours and carry
    /// the key's owner and short name.
    async fn find(&self, key: &ContainerKey) -> Result<ContainerInspectResponse, BackendError> {
        let docker = self.docker().await?;
        for name in [self.container_name(key), key.full_name().to_string()] {
            match self.call(docker.inspect_container(&name, None)).await {
                Ok(r) => {
                    let labels = r
                        .config
                        .as_ref()
                        .and_then(|c| c.labels.as_ref())
                        .cloned()
                        .unwrap_or_default();
                    if self.is_ours(&labels)
                        && !labels.contains_key(labels::KIND)
                        && labels.get(labels::OWNER).map(String::as_str) == Some(key.owner.as_str())
                        && labels.get(labels::NAME).map(String::as_str) == Some(key.short.as_str())
                    {
                        return Ok(r);
                    }
                }
                Err(BackendError::NoSuchContainer) => {}
                Err(e) => return Err(e),
            }
        }
        Err(BackendError::NoSuchContainer)
    }

    fn runner_name(&self, owner: &UserName) -> String {
        crate::runner_name(&self.settings.instance, owner)
    }

    /// The ids of the owner's runners, found by their labels (whatever name the version
    /// that made them gave them): none or one, unless a crash left one behind.
    async fn runner_ids(&self, owner: &UserName) -> Result<Vec<String>, BackendError> {
        let docker = self.docker().await?;
        let found = self
            .labelled(
                &docker,
                vec![
                    format!("{}=true", labels::MANAGED),
                    format!("{}={}", labels::INSTANCE, self.settings.instance),
                    format!("{}={}", labels::KIND, RUNNER_KIND),
                    format!("{}={}", labels::OWNER, owner),
                ],
            )
            .await?;
        Ok(found.into_iter().filter_map(|c| c.id).collect())
    }

    /// Every container, running or not, that carries all of `labels` (`key=value`).
    async fn labelled(
        &self,
        docker: &Docker,
        labels: Vec<String>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, BackendError> {
        let filters = HashMap::from([("label".to_string(), labels)]);
        self.call(docker.list_containers(Some(ListContainersOptions {
            all: true,
            filters,
            ..Default::default()
        })))
        .await
    }

    fn network_name(&self, owner: &UserName) -> String {
        crate::network_name(&self.settings.instance, owner)
    }

    /// The owner's named volume: `<instance>-<owner>-data`.
    fn volume_name(&self, owner: &UserName) -> String {
        format!("{}-{owner}-data", self.settings.instance)
    }

    /// The mount of the owner's storage, when the host keeps storage.
    fn storage_mount(&self, owner: &UserName) -> Option<Mount> {
        let s = &self.settings.storage;
        let (typ, source) = match s.kind {
            StorageKind::Off => return None,
            StorageKind::Volume => (MountTypeEnum::VOLUME, self.volume_name(owner)),
            StorageKind::Directory => (
                MountTypeEnum::BIND,
                storage::directory_of(s.root.as_deref()?, owner.as_str())
                    .to_string_lossy()
                    .into_owned(),
            ),
        };
        Some(Mount {
            source: Some(source),
            target: Some(s.path.clone()),
            typ: Some(typ),
            read_only: Some(false),
            ..Default::default()
        })
    }

    /// The host directory of the owner's storage, made first when `make`; `None` when it
    /// does not exist (and `make` is false).
    ///
    /// # Errors
    /// [`BackendError::Storage`], saying what failed, when it cannot be made or is not ours.
    async fn storage_dir(
        &self,
        owner: &UserName,
        make: bool,
    ) -> Result<Option<PathBuf>, BackendError> {
        let s = &self.settings.storage;
        match s.kind {
            StorageKind::Off => Err(BackendError::Storage(Why::new(
                "storage_off",
                [],
                "this host keeps no storage for users",
            ))),
            StorageKind::Directory => {
                let root = s.root.clone().unwrap_or_default();
                let dir = storage::directory_of(&root, owner.as_str());
                if make {
                    let ids = storage::owner_ids(s, owner.as_str()).await;
                    let o = owner.to_string();
                    tokio::task::spawn_blocking(move || storage::ensure_directory(&root, &o, ids))
                        .await
                        .map_err(|e| BackendError::Engine(e.to_string()))??;
                } else if !dir.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                    return Ok(None);
                }
                Ok(Some(dir))
            }
            StorageKind::Volume => {
                let docker = self.docker().await?;
                let name = self.volume_name(owner);
                let volume = match self.call(docker.inspect_volume(&name)).await {
                    Ok(v) => v,
                    Err(BackendError::Refused(m))
                        if m.to_ascii_lowercase().contains("no such volume") =>
                    {
                        if !make {
                            return Ok(None);
                        }
                        let mut labels = self.our_labels(owner);
                        labels.insert(labels::KIND.into(), "storage".into());
                        self.call(docker.create_volume(CreateVolumeOptions {
                            name: name.clone(),
                            driver: "local".into(),
                            driver_opts: HashMap::new(),
                            labels,
                        }))
                        .await
                        .map_err(|e| {
                            tracing::warn!(volume = name, error = %e, "a user's volume cannot be made");
                            BackendError::Storage(Why::new(
                                "volume_failed",
                                [],
                                format!("your storage could not be prepared: the host could not make its volume ({e}); tell an administrator"),
                            ))
                        })?
                    }
                    Err(e) => return Err(e),
                };
                if !self.is_ours(&volume.labels)
                    || volume.labels.get(labels::OWNER).map(String::as_str) != Some(owner.as_str())
                {
                    return Err(BackendError::Storage(Why::new(
                        "volume_foreign",
                        [],
                        "your storage could not be prepared: the host has a volume of its name that is not this installation's; tell an administrator",
                    )));
                }
                Ok(Some(PathBuf::from(volume.mountpoint)))
            }
        }
    }

    /// The owner's storage, opened for file operations (made first when `make`).
    async fn storage_root(
        &self,
        owner: &UserName,
        make: bool,
    ) -> Result<Option<rustix::fd::OwnedFd>, BackendError> {
        let Some(dir) = self.storage_dir(owner, make).await? else {
            return Ok(None);
        };
        blocking(move || storage::open_root(&dir)).await.map(Some)
    }

    /// Who owns what the console writes into the owner's storage.
    async fn storage_ids(&self, owner: &UserName) -> (u32, u32) {
        let s = &self.settings.storage;
        match s.kind {
            StorageKind::Directory => storage::owner_ids(s, owner.as_str()).await,
            _ => (s.uid, s.gid),
        }
    }

    fn our_labels(&self, owner: &UserName) -> HashMap<String, String> {
        let mut l: HashMap<String, String> = self.settings.labels.clone().into_iter().collect();
        l.extend([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::OWNER.to_string(), owner.to_string()),
            (labels::INSTANCE.to_string(), self.settings.instance.clone()),
        ]);
        l
    }

    /// An image's owner. The label counts only when it is ours: an image built elsewhere
    /// with a stray `wm.owner` label is not thereby anyone's private image.
    fn owner_of(&self, labels: &HashMap<String, String>) -> Option<String> {
        if labels.get(labels::INSTANCE) == Some(&self.settings.instance) {
            labels.get(labels::OWNER).cloned()
        } else {
            None
        }
    }

    /// Whether the labels mark the image as somebody's without it being one of this
    /// installation's users' ([`ImageInfo::foreign`]).
    fn foreign(&self, labels: &HashMap<String, String>) -> bool {
        let ours = labels.get(labels::INSTANCE) == Some(&self.settings.instance);
        let other_instance = labels.contains_key(labels::INSTANCE) && !ours;
        let owner_mark = [labels::OWNER, labels::MANAGED, labels::NAME]
            .iter()
            .any(|k| labels.contains_key(*k));
        other_instance || (owner_mark && self.owner_of(labels).is_none())
    }

    fn is_ours(&self, labels: &HashMap<String, String>) -> bool {
        labels.get(labels::MANAGED).map(String::as_str) == Some("true")
            && labels.get(labels::INSTANCE) == Some(&self.settings.instance)
    }

    /// Whether a network with these labels is `owner`'s of this installation.
    fn is_network_of(&self, labels: &HashMap<String, String>, owner: &UserName) -> bool {
        self.is_ours(labels)
            && labels.get(labels::OWNER).map(String::as_str) == Some(owner.as_str())
    }

    fn network_lock(&self, owner: &UserName) -> Arc<Mutex<()>> {
        let mut locks = self.network_locks.lock().expect("not poisoned");
        // A lock only the map holds guards nothing: dropping it keeps the map as small as
        // the owners being served now. Locks are cloned only under this mutex, so none
        // can be handed out while it goes.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(owner.to_string()).or_default().clone()
    }

    /// Creates the owner's network unless it exists. Call with the owner's network lock.
    async fn ensure_network(&self, docker: &Docker, owner: &UserName) -> Result<(), BackendError> {
        let name = self.network_name(owner);
        match self
            .call(docker.inspect_network(&name, None::<InspectNetworkOptions<String>>))
            .await
        {
            Ok(n) => {
                // Another installation's network may have this name (its instance and
                // owner making the same `<instance>-<owner>`): never join it.
                return if self.is_network_of(&n.labels.unwrap_or_default(), owner) {
                    Ok(())
                } else {
                    Err(BackendError::NameTaken(name))
                };
            }
            Err(BackendError::Refused(_)) | Err(BackendError::NoSuchContainer) => {}
            Err(e) => return Err(e),
        }
        // With a pool, the subnet is chosen and taken under one lock.
        let (_subnet_guard, ipam) = match &self.settings.network_pool {
            Some(pool) => {
                let guard = self.subnet_lock.lock().await;
                let subnet = self.free_subnet(docker, pool).await?;
                let ipam = Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet),
                        ..Default::default()
                    }]),
                    ..Default::default()
                };
                (Some(guard), ipam)
            }
            None => (None, Ipam::default()),
        };
        let created = self
            .call(docker.create_network(CreateNetworkOptions {
                name: name.clone(),
                driver: "bridge".to_string(),
                check_duplicate: true,
                labels: self.our_labels(owner),
                ipam,
                ..Default::default()
            }))
            .await;
        match created {
            Ok(_) => Ok(()),
            // Two creates for the same owner at once: the other one made it.
            Err(BackendError::NameTaken(_)) => Ok(()),
            Err(BackendError::Refused(m)) if m.contains("already exists") => Ok(()),
            Err(BackendError::Refused(Why { text: m, .. }) | BackendError::Engine(m))
                if m.contains("non-overlapping") =>
            {
                Err(BackendError::Exhausted(Why::new(
                    "no_address_range",
                    [],
                    "this host's Docker has no address range left for another user's network; \
                     an administrator must set WM_NETWORK_POOL (or Docker's default-address-pools)",
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// The first subnet of the pool that no network on the engine overlaps.
    async fn free_subnet(&self, docker: &Docker, pool: &str) -> Result<String, BackendError> {
        let pool = Cidr::parse(pool).map_err(|m| BackendError::Policy(m.into()))?;
        let networks = self.call(docker.list_networks::<String>(None)).await?;
        let taken: Vec<Cidr> = networks
            .iter()
            .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
            .flatten()
            .filter_map(|c| Cidr::parse(c.subnet.as_deref()?).ok())
            .collect();
        pool.first_free(self.settings.network_prefix, &taken)
            .map(|c| c.to_string())
            .ok_or_else(|| {
                BackendError::Exhausted(Why::new(
                    "network_pool_full",
                    [
                        ("pool", pool.to_string()),
                        ("prefix", self.settings.network_prefix.to_string()),
                    ],
                    format!(
                        "the network pool {pool} has no /{} subnet left for another user's network; ask an administrator",
                        self.settings.network_prefix
                    ),
                ))
            })
    }

    /// The hardened host configuration: the whole security policy is here.
    fn host_config(&self, spec: &ContainerSpec, ports: &[PortBinding], gpus: &[Gpu]) -> HostConfig {
        let s = &self.settings;
        let port_bindings = ports
            .iter()
            .map(|p| {
                (
                    port_key(p.guest),
                    Some(vec![bollard::models::PortBinding {
                        host_ip: Some(s.publish_address.clone()),
                        host_port: Some(p.host.to_string()),
                    }]),
                )
            })
            .collect();
        let mounts = s
            .mounts
            .iter()
            .map(|m| Mount {
                source: Some(m.source.replace("{owner}", spec.owner.as_str())),
                target: Some(m.target.clone()),
                typ: Some(MountTypeEnum::BIND),
                read_only: Some(m.read_only),
                ..Default::default()
            })
            .chain(self.storage_mount(&spec.owner))
            .collect();
        // Device nodes read and written, never made (`m`): the container has no MKNOD.
        let devices = gpus
            .iter()
            .filter_map(|g| match &g.kind {
                GpuKind::Devices { paths } => Some(paths),
                GpuKind::Nvidia => None,
            })
            .flatten()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|path| DeviceMapping {
                path_on_host: Some(path.clone()),
                path_in_container: Some(gpus::container_path(path)),
                cgroup_permissions: Some("rw".into()),
            })
            .collect();
        // NVIDIA GPUs by UUID, never by `count` (which gives every container the first
        // GPUs, whatever the others hold).
        let nvidia: Vec<String> = gpus
            .iter()
            .filter(|g| g.kind == GpuKind::Nvidia)
            .map(|g| {
                s.gpus
                    .iter()
                    .find(|d| d.id == g.id)
                    .and_then(|d| d.uuid.clone())
                    .unwrap_or_else(|| g.id.clone())
            })
            .collect();
        let device_requests = if nvidia.is_empty() {
            Vec::new()
        } else {
            vec![DeviceRequest {
                driver: Some("nvidia".into()),
                count: None,
                device_ids: Some(nvidia),
                capabilities: Some(vec![vec!["gpu".into()]]),
                options: None,
            }]
        };
        HostConfig {
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(s.cap_add.clone()),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            memory: Some(spec.limits.memory_bytes),
            // Equal to memory: no swap on top of the limit.
            memory_swap: Some(spec.limits.memory_bytes),
            nano_cpus: Some(spec.limits.nano_cpus),
            pids_limit: Some(spec.limits.pids),
            network_mode: Some(self.network_name(&spec.owner)),
            ipc_mode: Some("private".into()),
            pid_mode: Some(String::new()),
            port_bindings: Some(port_bindings),
            mounts: Some(mounts),
            binds: Some(Vec::new()),
            devices: Some(devices),
            device_requests: Some(device_requests),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), s.log_max_size.clone()),
                    ("max-file".to_string(), "2".to_string()),
                ])),
            }),
            ..Default::default()
        }
    }

    fn check_policy(&self, spec: &ContainerSpec) -> Result<(), BackendError> {
        let max = &self.settings.max_limits;
        let l = &spec.limits;
        if l.memory_bytes <= 0 || l.memory_bytes > max.memory_bytes {
            return Err(BackendError::Policy(why::memory_limit(max.memory_bytes)));
        }
        if l.nano_cpus <= 0 || l.nano_cpus > max.nano_cpus {
            return Err(BackendError::Policy(why::cpu_limit(max.nano_cpus)));
        }
        if l.pids <= 0 || l.pids > max.pids {
            return Err(BackendError::Policy(why::pids_limit(max.pids)));
        }
        if spec.name != spec.key().full_name() {
            return Err(BackendError::Policy(why::container_name()));
        }
        Ok(())
    }

    /// On a local engine, a host port that something already listens on is found before
    /// Docker is asked; the engine's own refusal covers remote hosts and races.
    async fn ports_held_locally(&self, ports: &[PortBinding]) -> Vec<u16> {
        if !self.settings.host.starts_with("unix://") {
            return Vec::new();
        }
        let mut held = Vec::new();
        for p in ports {
            let addr = format!("{}:{}", self.settings.publish_address, p.host);
            if tokio::net::TcpListener::bind(&addr).await.is_err() {
                held.push(p.host);
            }
        }
        held
    }

    /// The lent containers of this installation on the engine (of `owner` only, when
    /// given), with their memory limits.
    async fn lent(
        &self,
        docker: &Docker,
        owner: Option<&UserName>,
    ) -> Result<Vec<(ContainerState, i64)>, BackendError> {
        let mut filter = vec![
            format!("{}=true", labels::MANAGED),
            format!("{}={}", labels::INSTANCE, self.settings.instance),
        ];
        if let Some(o) = owner {
            filter.push(format!("{}={o}", labels::OWNER));
        }
        let found = self.labelled(docker, filter).await?;
        Ok(found.into_iter().filter(is_lent).map(lent_state).collect())
    }

    /// Every lent container of this installation on the engine, with its memory limit;
    /// rebuilds the port pool from what it finds.
    async fn scan(&self) -> Result<Vec<(ContainerState, i64)>, BackendError> {
        let docker = self.docker().await?;
        let began = self.ports.begin_scan();
        let gpus_began = self.gpu_pool.begin_scan();
        let ours = self.lent(&docker, None).await?;
        self.ports.rebuild(
            began,
            ours.iter()
                .flat_map(|(c, _)| c.ports.iter().map(|p| (p.host, c.name.clone()))),
        );
        self.gpu_pool.rebuild(
            gpus_began,
            ours.iter().map(|(c, _)| (c.name.clone(), c.gpus.clone())),
        );
        Ok(ours)
    }

    /// One try at creating and starting the container with these host ports.
    async fn create_with(
        &self,
        spec: &ContainerSpec,
        ports: &[PortBinding],
        gpus: &[Gpu],
    ) -> Result<ContainerState, Attempt> {
        let docker = self.docker().await?;
        let lock = self.network_lock(&spec.owner);
        let network_guard = lock.lock().await;
        self.ensure_network(&docker, &spec.owner).await?;
        let config = self.config_for(spec, ports, gpus);
        let engine_name = self.container_name(&spec.key());
        let options = CreateContainerOptions {
            name: engine_name.clone(),
            platform: None,
        };
        match self
            .call(docker.create_container(Some(options), config))
            .await
        {
            Ok(_) => {}
            Err(BackendError::NoSuchImage(_)) => {
                return Err(BackendError::NoSuchImage(spec.image.to_string()).into())
            }
            Err(e) => return Err(e.into()),
        }
        drop(network_guard);
        if let Err(e) = self
            .call(docker.start_container::<String>(&engine_name, None))
            .await
        {
            // Leave nothing behind: the next try uses other ports.
            let _ = self.remove_container(&engine_name).await;
            let message = e.to_string();
            return Err(match ports_in_message(&message, ports) {
                Some(ports) => Attempt::PortsHeld(ports),
                None => Attempt::Failed(e),
            });
        }
        Ok(self.inspect(&spec.key()).await?)
    }

    /// Creates and starts the container, with other host ports when the first ones turn
    /// out to be held by another program.
    async fn create_on_ports(
        &self,
        spec: &ContainerSpec,
        name: &str,
        gpus: &[Gpu],
    ) -> Result<ContainerState, BackendError> {
        for _ in 0..PORT_ATTEMPTS {
            let hosts = self
                .ports
                .lend(name, spec.ports.len())
                .map_err(BackendError::Exhausted)?;
            let bindings: Vec<PortBinding> = spec
                .ports
                .iter()
                .zip(hosts)
                .map(|(&guest, host)| PortBinding { guest, host })
                .collect();
            let held = self.ports_held_locally(&bindings).await;
            let outcome = if held.is_empty() {
                self.create_with(spec, &bindings, gpus).await
            } else {
                Err(Attempt::PortsHeld(held))
            };
            match outcome {
                Ok(st) => {
                    self.ports.settle(name);
                    return Ok(st);
                }
                Err(Attempt::PortsHeld(held)) => {
                    tracing::info!(
                        container = name,
                        ?held,
                        "host ports held by another program; trying others"
                    );
                    self.ports.release(name);
                    self.ports.mark_busy(&held);
                }
                Err(Attempt::Failed(e)) => {
                    self.ports.release(name);
                    return Err(e);
                }
            }
        }
        Err(BackendError::Unavailable(why::ports_held()))
    }

    /// Removes the container from the engine; one already gone is not an error.
    async fn remove_container(&self, name: &str) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.call(docker.remove_container(name, Some(opts))).await {
            Ok(()) | Err(BackendError::NoSuchContainer) => Ok(()),
            // "removal already in progress"
            Err(BackendError::Refused(m)) if m.contains("already in progress") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn state_from_inspect(
        &self,
        r: ContainerInspectResponse,
    ) -> Result<ContainerState, BackendError> {
        let config = r.config.unwrap_or_default();
        let labels = config.labels.unwrap_or_default();
        if !self.is_ours(&labels) || labels.contains_key(labels::KIND) {
            return Err(BackendError::NoSuchContainer);
        }
        let state = r
            .state
            .and_then(|s| s.status)
            .map_or(ContainerStatus::Dead, |s| match s {
                ContainerStateStatusEnum::CREATED => ContainerStatus::Created,
                ContainerStateStatusEnum::RUNNING => ContainerStatus::Running,
                ContainerStateStatusEnum::PAUSED => ContainerStatus::Paused,
                ContainerStateStatusEnum::RESTARTING => ContainerStatus::Restarting,
                ContainerStateStatusEnum::EXITED => ContainerStatus::Exited,
                _ => ContainerStatus::Dead,
            });
        let ports = r
            .host_config
            .and_then(|h| h.port_bindings)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(key, bindings)| {
                let guest = key.strip_suffix("/tcp")?.parse::<i64>().ok()?;
                let host = bindings?.first()?.host_port.as_ref()?.parse::<u16>().ok()?;
                Some(PortBinding {
                    guest: GuestPort::new(guest).ok()?,
                    host,
                })
            })
            .collect();
        let created_at = r
            .created
            .as_deref()
            .and_then(|c| {
                time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
            })
            .map_or(0, |t| t.unix_timestamp());
        Ok(ContainerState {
            id: r.id.unwrap_or_default(),
            name: r
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            owner: labels.get(labels::OWNER).cloned().unwrap_or_default(),
            short_name: labels.get(labels::NAME).cloned().unwrap_or_default(),
            image: config.image.unwrap_or_default(),
            state,
            ports,
            env: config.env.unwrap_or_default(),
            created_at,
            gpus: labels
                .get(labels::GPUS)
                .map(|l| gpus::from_label(l))
                .unwrap_or_default(),
        })
    }
}

fn unix_time(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|c| {
            time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
        })
        .map_or(0, |t| t.unix_timestamp())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("maps of strings serialize")
}

/// Removes a build's result when it is larger than `max` bytes.
async fn check_image_size(docker: &Docker, tag: &str, max: i64) -> Result<(), BackendError> {
    let size = docker
        .inspect_image(tag)
        .await
        .map_err(classify)?
        .size
        .unwrap_or_default();
    if size <= max {
        return Ok(());
    }
    let opts = RemoveImageOptions {
        force: false,
        noprune: false,
    };
    if let Err(e) = docker.remove_image(tag, Some(opts), None).await {
        tracing::warn!(error = %e, tag, "an oversized build result could not be removed");
    }
    Err(BackendError::Refused(why::build_too_large(size, max)))
}

/// The last line of an error a pull or build reported in its stream.
fn stream_error(
    error: Option<String>,
    detail: Option<bollard::models::ErrorDetail>,
) -> Option<String> {
    error.or_else(|| detail.and_then(|d| d.message))
}

fn port_key(p: GuestPort) -> String {
    format!("{}/tcp", p.get())
}

fn unavailable(e: DockerError) -> BackendError {
    BackendError::Unavailable(e.to_string().into())
}

/// Sorts an engine error into what the console can act on. Status-specific meanings
/// (404 for a container versus an image) are refined by the callers.
/// Runs file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Engine(e.to_string()))?
}

fn classify(e: DockerError) -> BackendError {
    match e {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            404 if message.contains("No such container") => BackendError::NoSuchContainer,
            404 if message.contains("No such image") => BackendError::NoSuchImage(message),
            409 if message.contains("is already in use") => BackendError::NameTaken(message),
            400..=499 => BackendError::Refused(message.into()),
            _ => BackendError::Engine(message),
        },
        DockerError::RequestTimeoutError
        | DockerError::SocketNotFoundError(_)
        | DockerError::IOError { .. }
        | DockerError::HyperResponseError { .. }
        | DockerError::HyperLegacyError { .. } => unavailable(e),
        // A pull or build that failed mid-way: the message is the engine's reason (a
        // failing RUN step, a missing manifest), for the user to read.
        DockerError::DockerStreamError { error } => BackendError::Refused(error.into()),
        other => BackendError::Engine(other.to_string()),
    }
}

/// The runner's `config.toml` with every runner's jobs (`[runners.docker] network_mode`)
/// on `network`.
fn runner_config_on_network(config_toml: &str, network: &str) -> Result<String, BackendError> {
    let invalid =
        |why: String| BackendError::Policy(format!("the runner configuration {why}").into());
    let mut config: toml::Table = config_toml
        .parse()
        .map_err(|e| invalid(format!("is not valid TOML: {e}")))?;
    let runners = config
        .get_mut("runners")
        .and_then(toml::Value::as_array_mut)
        .ok_or_else(|| invalid("has no [[runners]]".into()))?;
    for runner in runners {
        let runner = runner
            .as_table_mut()
            .ok_or_else(|| invalid("has a runner that is not a table".into()))?;
        let docker = runner
            .entry("docker")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .ok_or_else(|| invalid("has a [runners.docker] that is not a table".into()))?;
        docker.insert("network_mode".into(), toml::Value::String(network.into()));
    }
    toml::to_string(&config).map_err(|e| invalid(format!("cannot be written: {e}")))
}

/// A pull the egress rule refuses, as the backend's error.
fn pull_refused(image: &str, e: EgressError) -> BackendError {
    match e {
        EgressError::Forbidden { host, reason } => BackendError::Policy(Why::new(
            "egress",
            [("registry", host.clone()), ("near", reason.code().to_string())],
            format!(
                "pulls from {host} are not allowed: {reason}; an administrator can allow a registry on the host's own network by name (WM_EGRESS_ALLOWED)"
            ),
        )),
        EgressError::Unresolvable(_) => {
            BackendError::Refused(PullFailure::Unreachable.message(image).into())
        }
        EgressError::Invalid(m) => BackendError::Policy(m.into()),
    }
}

/// How one try at a create ended, when it did not succeed.
enum Attempt {
    /// These host ports are held by another program: try others.
    PortsHeld(Vec<u16>),
    Failed(BackendError),
}

impl From<BackendError> for Attempt {
    fn from(e: BackendError) -> Self {
        Attempt::Failed(e)
    }
}

fn ports_label(ports: &[PortBinding]) -> String {
    ports
        .iter()
        .map(|p| format!("{}:{}", p.guest.get(), p.host))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The bindings of a `wm.ports` label; malformed pairs are skipped.
fn ports_from_label(label: &str) -> Vec<PortBinding> {
    label
        .split_whitespace()
        .filter_map(|pair| {
            let (g, h) = pair.split_once(':')?;
            Some(PortBinding {
                guest: GuestPort::new(g.parse().ok()?).ok()?,
                host: h.parse().ok()?,
            })
        })
        .collect()
}

/// Which of the requested host ports a failed start names as taken.
fn ports_in_message(message: &str, ports: &[PortBinding]) -> Option<Vec<u16>> {
    let taken =
        message.contains("port is already allocated") || message.contains("address already in use");
    if !taken {
        return None;
    }
    let named: Vec<u16> = ports
        .iter()
        .map(|p| p.host)
        .filter(|h| message.contains(&format!(":{h} ")) || message.contains(&format!(":{h}:")))
        .collect();
    Some(if named.is_empty() {
        ports.iter().map(|p| p.host).collect()
    } else {
        named
    })
}

#[async_trait]
impl ContainerBackend for DockerEngine {
    fn host_name(&self) -> &str {
        &self.settings.host_name
    }

    async fn info(&self) -> Result<HostInfo, BackendError> {
        let docker = self.docker().await?;
        let v = self.call(docker.version()).await?;
        let system = self.call(docker.info()).await?;
        let running: Vec<(ContainerState, i64)> = self
            .scan()
            .await?
            .into_iter()
            .filter(|(c, _)| c.state == ContainerStatus::Running)
            .collect();
        Ok(HostInfo {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            address: self.settings.address.clone(),
            labels: self.settings.host_labels.clone(),
            memory_total: system.mem_total.unwrap_or_default(),
            memory_committed: running.iter().map(|(_, m)| m).sum(),
            containers_running: running.len() as u64,
            gpus: self.gpus().await,
            storage_path: (self.settings.storage.kind != StorageKind::Off)
                .then(|| self.settings.storage.path.clone()),
            // Its agent says whether it lends VMs.
            vms: false,
        })
    }

    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, BackendError> {
        let docker = self.docker().await?;
        let img = match self.call(docker.inspect_image(reference)).await {
            Ok(i) => i,
            Err(BackendError::NoSuchImage(_)) | Err(BackendError::NoSuchContainer) => {
                return Ok(None)
            }
            Err(BackendError::Refused(m)) if m.contains("No such image") => return Ok(None),
            Err(e) => return Err(e),
        };
        let config = img.config.unwrap_or_default();
        let labels = config.labels.unwrap_or_default();
        Ok(Some(ImageInfo {
            on_build: config.on_build.unwrap_or_default(),
            id: img.id.unwrap_or_default(),
            tags: img.repo_tags.unwrap_or_default(),
            owner: self.owner_of(&labels),
            foreign: self.foreign(&labels),
            size: img.size.unwrap_or_default(),
            created_at: unix_time(img.created.as_deref()),
        }))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerState, BackendError> {
        self.check_policy(spec)?;
        let gpus = self.gpus_of(spec).await?;
        if self.settings.storage.kind != StorageKind::Off {
            self.storage_dir(&spec.owner, true).await?;
        }
        if !self.ports.seeded() || !gpus.is_empty() {
            // Learn which ports (and GPUs) the engine's containers hold before lending any.
            self.list().await?;
        }
        let engine_name = self.container_name(&spec.key());
        let name = engine_name.as_str();
        if !gpus.is_empty() {
            let wanted: Vec<&Gpu> = gpus.iter().collect();
            match self.gpu_pool.take(name, &wanted) {
                Ok(()) => {}
                Err(Taken::Full(m)) => return Err(BackendError::Exhausted(m)),
                Err(Taken::Name) => return Err(BackendError::NameTaken(engine_name.clone())),
            }
        }
        let created = self.create_on_ports(spec, name, &gpus).await;
        match &created {
            Ok(_) => self.gpu_pool.settle(name),
            Err(_) => self.gpu_pool.release(name),
        }
        created
    }

    async fn start(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        let docker = self.docker().await?;
        let id = self.inspect(name).await?.id;
        self.call(docker.start_container::<String>(&id, None))
            .await?;
        self.inspect(name).await
    }

    async fn stop(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        let docker = self.docker().await?;
        let id = self.inspect(name).await?.id;
        let stop = docker.stop_container(&id, Some(StopContainerOptions { t: STOP_GRACE_SECS }));
        // Stopping may take the grace period on top of the usual answer time.
        match tokio::time::timeout(
            self.timeout + Duration::from_secs(STOP_GRACE_SECS as u64),
            stop,
        )
        .await
        {
            Err(_) => return Err(self.timed_out()),
            // 304: already stopped.
            Ok(Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            })) => {}
            Ok(r) => r.map_err(classify)?,
        }
        self.inspect(name).await
    }

    async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError> {
        let found = match self.inspect(name).await {
            Ok(st) => st,
            Err(BackendError::NoSuchContainer) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.remove_container(&found.id).await?;
        // The pool knows it by the engine's name for it, whichever version made it.
        self.ports.release(&found.name);
        self.gpu_pool.release(&found.name);
        Ok(())
    }

    async fn remove_network_if_unused(&self, owner: &UserName) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let lock = self.network_lock(owner);
        let _guard = lock.lock().await;
        let left = self
            .labelled(
                &docker,
                vec![
                    format!("{}={}", labels::OWNER, owner),
                    format!("{}={}", labels::INSTANCE, self.settings.instance),
                ],
            )
            .await?;
        let lent = left.iter().filter(|c| is_lent(c));
        let building = self
            .builds
            .lock()
            .expect("not poisoned")
            .contains_key(owner.as_str());
        if lent.count() > 0 || building {
            return Ok(());
        }
        let name = self.network_name(owner);
        // Only the owner's own: another installation's network may have this name.
        match self
            .call(docker.inspect_network(&name, None::<InspectNetworkOptions<String>>))
            .await
        {
            Ok(n) if self.is_network_of(n.labels.as_ref().unwrap_or(&HashMap::new()), owner) => {}
            Ok(_) | Err(BackendError::NoSuchContainer) | Err(BackendError::Refused(_)) => {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
        match self.call(docker.remove_network(&name)).await {
            Ok(()) | Err(BackendError::NoSuchContainer) => Ok(()),
            // Gone already, or a container joined it in the meantime: both fine.
            Err(BackendError::Refused(_)) => Ok(()),
            Err(BackendError::Engine(m)) if m.contains("active endpoints") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn inspect(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        let r = self.find(name).await?;
        self.state_from_inspect(r)
    }

    async fn activity(&self, name: &ContainerKey) -> Result<Activity, BackendError> {
        let docker = self.docker().await?;
        let id = self.inspect(name).await?.id;
        // One sample, without the engine's wait for a second one (`one-shot`).
        let mut stats = docker.stats(
            &id,
            Some(StatsOptions {
                stream: false,
                one_shot: true,
            }),
        );
        let sample = self
            .call(async { stats.try_next().await })
            .await?
            .ok_or(BackendError::NoSuchContainer)?;
        let (rx_bytes, tx_bytes) = sample
            .networks
            .iter()
            .flat_map(|n| n.values())
            .fold((0u64, 0u64), |(rx, tx), n| {
                (rx.saturating_add(n.rx_bytes), tx.saturating_add(n.tx_bytes))
            });
        Ok(Activity {
            cpu_nanos: sample.cpu_stats.cpu_usage.total_usage,
            rx_bytes,
            tx_bytes,
            memory_bytes: sample.memory_stats.usage,
        })
    }

    async fn list(&self) -> Result<Vec<ContainerState>, BackendError> {
        Ok(self.scan().await?.into_iter().map(|(c, _)| c).collect())
    }

    async fn list_of(&self, owner: &UserName) -> Result<Vec<ContainerState>, BackendError> {
        let docker = self.docker().await?;
        let found = self.lent(&docker, Some(owner)).await?;
        Ok(found.into_iter().map(|(c, _)| c).collect())
    }

    async fn exec(
        &self,
        name: &ContainerKey,
        req: &ExecRequest,
    ) -> Result<ExecOutput, BackendError> {
        let docker = self.docker().await?;
        let id = self.inspect(name).await?.id;
        let mark = exec_mark();
        let created = self
            .call(docker.create_exec(
                &id,
                CreateExecOptions {
                    cmd: Some(req.cmd.clone()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    attach_stdin: Some(false),
                    tty: Some(false),
                    privileged: Some(false),
                    env: Some(vec![mark_env(&mark)]),
                    ..Default::default()
                },
            ))
            .await?;
        let started = self.call(docker.start_exec(&created.id, None)).await?;
        let StartExecResults::Attached { mut output, .. } = started else {
            return Err(BackendError::Engine("exec did not attach".into()));
        };
        let mut out = ExecOutput {
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            timed_out: false,
            truncated: false,
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let collect = async {
            while let Some(chunk) = output.next().await {
                let (buf, message) = match chunk.map_err(classify)? {
                    LogOutput::StdOut { message } => (&mut stdout, message),
                    LogOutput::StdErr { message } => (&mut stderr, message),
                    _ => continue,
                };
                let room = req.max_output_bytes.saturating_sub(buf.len());
                if message.len() > room {
                    out.truncated = true;
                }
                buf.extend_from_slice(&message[..message.len().min(room)]);
            }
            Ok::<(), BackendError>(())
        };
        match tokio::time::timeout(Duration::from_secs(req.timeout_secs), collect).await {
            Ok(r) => r?,
            Err(_) => {
                out.timed_out = true;
                kill_marked(&docker, &id, &mark).await;
            }
        }
        out.stdout = String::from_utf8_lossy(&stdout).into_owned();
        out.stderr = String::from_utf8_lossy(&stderr).into_owned();
        if !out.timed_out {
            out.exit_code = self.call(docker.inspect_exec(&created.id)).await?.exit_code;
        }
        Ok(out)
    }

    async fn terminal(
        &self,
        name: &ContainerKey,
        req: &TerminalRequest,
    ) -> Result<Terminal, BackendError> {
        let docker = self.docker().await?;
        let id = self.inspect(name).await?.id;
        let mark = exec_mark();
        let cmd = req
            .cmd
            .clone()
            .unwrap_or_else(|| ["/bin/sh", "-c", DEFAULT_SHELL].map(String::from).to_vec());
        let created = self
            .call(docker.create_exec(
                &id,
                CreateExecOptions {
                    cmd: Some(cmd),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    privileged: Some(false),
                    env: Some(vec![mark_env(&mark), "TERM=xterm-256color".to_string()]),
                    ..Default::default()
                },
            ))
            .await?;
        let exec = created.id;
        let started = self
            .call(docker.start_exec(
                &exec,
                Some(StartExecOptions {
                    detach: false,
                    tty: true,
                    output_capacity: None,
                }),
            ))
            .await?;
        let StartExecResults::Attached { output, mut input } = started else {
            return Err(BackendError::Engine("exec did not attach".into()));
        };
        let size = |cols, rows| ResizeExecOptions {
            width: cols,
            height: rows,
        };
        // The process may not have its terminal yet; a failed first resize is not fatal.
        if let Err(e) = docker.resize_exec(&exec, size(req.cols, req.rows)).await {
            tracing::debug!(error = %e, "first resize of a terminal failed");
        }
        let (tx, mut rx) = futures::channel::mpsc::channel::<TerminalInput>(16);
        let (d, e) = (docker.clone(), exec.clone());
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Some(msg) = rx.next().await {
                match msg {
                    TerminalInput::Data { data } => {
                        if input.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                    TerminalInput::Resize { cols, rows } => {
                        if let Err(err) = d.resize_exec(&e, size(cols, rows)).await {
                            tracing::debug!(error = %err, "terminal resize failed");
                        }
                    }
                }
            }
            // The client is gone: nothing the session started may outlive it.
            kill_marked(&d, &id, &mark).await;
            let _ = input.shutdown().await;
        });
        let data = output.map(|r| {
            r.map(|o| TerminalOutput::Data {
                data: o.into_bytes().to_vec(),
            })
            .map_err(classify)
        });
        let exit = futures::stream::once(async move {
            // The engine records the exit code a moment after the output ends.
            for _ in 0..100 {
                let info = docker.inspect_exec(&exec).await.map_err(classify)?;
                if info.running != Some(true) {
                    return Ok(TerminalOutput::Exit {
                        code: info.exit_code,
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(TerminalOutput::Exit { code: None })
        });
        Ok(Terminal {
            input: tx,
            output: data.chain(exit).boxed(),
        })
    }

    async fn upload(
        &self,
        name: &ContainerKey,
        dir: &str,
        tar: ByteStream,
    ) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let id = self.inspect(name).await?.id;
        // A read error ends the stream early; Docker then refuses the truncated archive.
        let body = tar
            .take_while(|r| futures::future::ready(r.is_ok()))
            .map(|r| r.unwrap_or_default());
        let opts = UploadToContainerOptions {
            path: dir.to_string(),
            no_overwrite_dir_non_dir: "true".to_string(),
        };
        match docker
            .upload_to_container_streaming(&id, Some(opts), body)
            .await
            .map_err(classify)
        {
            Ok(()) => Ok(()),
            Err(BackendError::Refused(Why { text: m, .. }) | BackendError::Engine(m))
                if m.contains("Could not find the file") || m.contains("not a directory") =>
            {
                Err(BackendError::NoSuchFile(Why::new(
                    "dir_missing",
                    [("dir", dir.to_string())],
                    format!("the directory {dir} does not exist in the container"),
                )))
            }
            Err(e) => Err(e),
        }
    }

    async fn download(&self, name: &ContainerKey, path: &str) -> Result<ByteStream, BackendError> {
        let docker = self.docker().await?;
        let id = self.inspect(name).await?.id;
        let mut stream = docker
            .download_from_container(
                &id,
                Some(DownloadFromContainerOptions {
                    path: path.to_string(),
                }),
            )
            .boxed();
        // The first chunk says whether the path is there.
        let first = match tokio::time::timeout(self.timeout, stream.next()).await {
            Err(_) => return Err(self.timed_out()),
            Ok(None) => None,
            Ok(Some(Ok(b))) => Some(b),
            Ok(Some(Err(e))) => {
                return Err(match classify(e) {
                    BackendError::Refused(m)
                        if m.contains("Could not find the file") || m.contains("no such file") =>
                    {
                        BackendError::NoSuchFile(why::path_missing(path))
                    }
                    e => e,
                })
            }
        };
        let rest = stream.map(|r| r.map_err(|e| std::io::Error::other(e.to_string())));
        Ok(futures::stream::iter(first.map(Ok)).chain(rest).boxed())
    }

    async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<Bytes, BackendError> {
        let docker = self.docker().await?;
        let id = self.inspect(name).await?.id;
        let mut stream = docker.logs(
            &id,
            Some(LogsOptions::<String> {
                stdout: true,
                stderr: true,
                tail: tail.to_string(),
                ..Default::default()
            }),
        );
        let mut buf = BytesMut::new();
        let collect = async {
            while let Some(chunk) = stream.try_next().await.map_err(classify)? {
                let bytes = chunk.into_bytes();
                let room = MAX_LOG_BYTES.saturating_sub(buf.len());
                buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
                if room <= bytes.len() {
                    break;
                }
            }
            Ok::<(), BackendError>(())
        };
        tokio::time::timeout(self.timeout, collect)
            .await
            .map_err(|_| self.timed_out())??;
        Ok(buf.freeze())
    }

    async fn follow_logs(
        &self,
        name: &ContainerKey,
        tail: u32,
    ) -> Result<ByteStream, BackendError> {
        let docker = self.docker().await?;
        let id = self.inspect(name).await?.id;
        let stream = docker.logs(
            &id,
            Some(LogsOptions::<String> {
                follow: true,
                stdout: true,
                stderr: true,
                tail: tail.to_string(),
                ..Default::default()
            }),
        );
        Ok(stream
            .map_ok(|chunk| chunk.into_bytes())
            .map_err(std::io::Error::other)
            .boxed())
    }

    async fn images(&self) -> Result<Vec<ImageInfo>, BackendError> {
        let docker = self.docker().await?;
        let found = self
            .call(docker.list_images(Some(ListImagesOptions::<String> {
                all: false,
                ..Default::default()
            })))
            .await?;
        Ok(found
            .into_iter()
            .map(|i| ImageInfo {
                owner: self.owner_of(&i.labels),
                foreign: self.foreign(&i.labels),
                tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                id: i.id,
                size: i.size,
                created_at: i.created,
                on_build: Vec::new(),
            })
            .filter(|i| !i.tags.is_empty())
            .collect())
    }

    async fn remove_image(&self, reference: &ImageRef) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let opts = RemoveImageOptions {
            force: false,
            noprune: false,
        };
        match self
            .call(docker.remove_image(reference.as_str(), Some(opts), None))
            .await
        {
            Ok(_) => Ok(()),
            Err(BackendError::NoSuchImage(_)) => {
                Err(BackendError::NoSuchImage(reference.to_string()))
            }
            Err(BackendError::Refused(m)) if m.contains("No such image") => {
                Err(BackendError::NoSuchImage(reference.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    async fn pull(
        &self,
        image: &ImageRef,
        auth: Option<RegistryAuth>,
    ) -> Result<ProgressStream, BackendError> {
        // The agent checks this itself, so a compromised console cannot bypass it.
        self.settings
            .egress_rule()
            .check_pull(image.as_str())
            .await
            .map_err(|e| pull_refused(image.as_str(), e))?;
        let docker = self.docker().await?;
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username),
            password: Some(a.password),
            serveraddress: Some(a.server),
            ..Default::default()
        });
        let opts = CreateImageOptions {
            from_image: image.to_string(),
            ..Default::default()
        };
        let reference = image.to_string();
        let stream = docker
            .create_image(Some(opts), None, credentials)
            .map(move |item| {
                // The engine's texts quote what the registry answered: users get a fixed
                // sentence, the log the text.
                let info = item.map_err(|e| match classify(e) {
                    BackendError::Unavailable(m) => BackendError::Unavailable(m),
                    other => BackendError::Refused(
                        PullFailure::from_engine(&reference, &other.to_string()).into(),
                    ),
                })?;
                if let Some(message) = stream_error(info.error, info.error_detail) {
                    return Err(BackendError::Refused(
                        PullFailure::from_engine(&reference, &message).into(),
                    ));
                }
                let status = info.status.unwrap_or_default();
                Ok(match info.id {
                    Some(id) if !id.is_empty() => Progress::Layer {
                        id,
                        status,
                        current: info.progress_detail.as_ref().and_then(|d| d.current),
                        total: info.progress_detail.as_ref().and_then(|d| d.total),
                    },
                    _ => Progress::Status { status },
                })
            });
        Ok(stream.boxed())
    }

    async fn build(
        &self,
        req: &BuildRequest,
        context: Bytes,
    ) -> Result<ProgressStream, BackendError> {
        let docker = self.docker().await?;
        let setting = "docker.build_cgroup_parent, WM_BUILD_CGROUP_PARENT";
        // The process limit is a cgroup on the engine's machine: only a local engine.
        let Some(socket) = self.settings.host.strip_prefix("unix://") else {
            return Err(BackendError::Exhausted(Why::new(
                "build_pids_socket",
                [("host", self.settings.host.to_string()), ("setting", setting.to_string())],
                format!(
                    "builds are refused: their process limit needs the engine on this machine's socket, and {} is not ({setting})",
                    self.settings.host
                ),
            )));
        };
        let system = self.call(docker.info()).await?;
        let driver = system
            .cgroup_driver
            .map(|d| d.to_string())
            .unwrap_or_default();
        let version = system
            .cgroup_version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "1".into());
        let cgroup = BuildCgroup::create(
            &self.settings.build_cgroup_parent,
            &driver,
            &version,
            req.limits.pids,
        )
        .map_err(|why| {
            BackendError::Exhausted(Why::new(
                "build_pids",
                [("why", why.to_string()), ("setting", setting.to_string())],
                format!(
                    "builds are refused until their process limit can be set: {why} ({setting})"
                ),
            ))
        })?;
        // RUN steps join the owner's own network, never the default bridge.
        let network = {
            let lock = self.network_lock(&req.owner);
            let _guard = lock.lock().await;
            if let Err(e) = self.ensure_network(&docker, &req.owner).await {
                cgroup.remove().await;
                return Err(e);
            }
            *self
                .builds
                .lock()
                .expect("not poisoned")
                .entry(req.owner.to_string())
                .or_default() += 1;
            self.network_name(&req.owner)
        };
        let mut labels = self.our_labels(&req.owner);
        labels.remove(labels::MANAGED);
        let build_args: HashMap<&str, &str> = req
            .build_args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let memory = req.limits.memory_bytes.max(0);
        // The CFS period and quota of `nano_cpus`, as the engine does for a container.
        let quota = (req.limits.nano_cpus / 10_000).max(1_000);
        let query: Vec<(&str, String)> = vec![
            ("t", req.tag.to_string()),
            ("labels", to_json(&labels)),
            ("buildargs", to_json(&build_args)),
            // Intermediate containers go, also after a failure.
            ("rm", "1".into()),
            ("forcerm", "1".into()),
            ("pull", "0".into()),
            ("memory", memory.to_string()),
            // Equal to memory: no swap on top of the limit.
            ("memswap", memory.to_string()),
            ("cpuperiod", "100000".into()),
            ("cpuquota", quota.to_string()),
            ("networkmode", network),
            ("cgroupparent", cgroup.path().to_string()),
        ];
        let api = docker.client_version();
        let api = format!("{}.{}", api.major_version, api.minor_version);
        let builds = self.builds.clone();
        let owner = req.owner.to_string();
        let done = move |cgroup: BuildCgroup| {
            let builds = builds.clone();
            let owner = owner.clone();
            async move {
                cgroup.remove().await;
                let mut b = builds.lock().expect("not poisoned");
                if let Some(n) = b.get_mut(&owner) {
                    *n -= 1;
                    if *n == 0 {
                        b.remove(&owner);
                    }
                }
            }
        };
        let mut engine = match post_build(socket, &api, &query, context).await {
            Ok(s) => s,
            Err(e) => {
                done(cgroup).await;
                return Err(e);
            }
        };
        let tag = req.tag.to_string();
        let max_image = req.max_image_bytes;
        // A task owns the engine's stream and forwards it, so the caller gets a stream of
        // its own. Dropping it ends the task and the connection, which cancels the build.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<BuildInfo, BackendError>>(64);
        tokio::spawn(async move {
            let mut failed = false;
            let mut cancelled = false;
            while let Some(item) = engine.next().await {
                failed |= item
                    .as_ref()
                    .map_or(true, |i| i.error.is_some() || i.error_detail.is_some());
                if tx.send(item).await.is_err() {
                    cancelled = true;
                    break;
                }
            }
            drop(engine);
            if !failed && !cancelled {
                if let Some(max) = max_image {
                    if let Err(e) = check_image_size(&docker, &tag, max).await {
                        let _ = tx.send(Err(e)).await;
                    }
                }
            }
            // A finished build's containers are gone already: its cgroup goes at once,
            // before the caller hears the end. A cancelled one's may take a moment.
            if !cancelled {
                done(cgroup).await;
                drop(tx);
            } else {
                drop(tx);
                done(cgroup).await;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .map(|item| {
            let info = item?;
            if let Some(message) = stream_error(info.error, info.error_detail) {
                return Err(BackendError::Refused(message.into()));
            }
            Ok(match (info.stream, info.status) {
                (Some(line), _) => Progress::Log { line },
                (None, Some(status)) => Progress::Status { status },
                (None, None) => Progress::Status {
                    status: String::new(),
                },
            })
        })
        // The engine sends empty keep-alive messages; they are noise to a reader.
        .filter(|p| {
            futures::future::ready(
                !matches!(p, Ok(Progress::Status { status }) if status.is_empty()),
            )
        });
        Ok(stream.boxed())
    }

    async fn save_image(&self, reference: &str) -> Result<ByteStream, BackendError> {
        if self.image(reference).await?.is_none() {
            return Err(BackendError::NoSuchImage(reference.to_string()));
        }
        let docker = self.docker().await?;
        Ok(docker
            .export_image(reference)
            .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())))
            .boxed())
    }

    async fn image_filesystem(&self, reference: &str) -> Result<ByteStream, BackendError> {
        let Some(image) = self.image(reference).await? else {
            return Err(BackendError::NoSuchImage(reference.to_string()));
        };
        let docker = self.docker().await?;
        self.remove_stale_scan_containers(&docker).await;
        let mut labels: HashMap<String, String> =
            self.settings.labels.clone().into_iter().collect();
        labels.extend([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::INSTANCE.to_string(), self.settings.instance.clone()),
            (labels::KIND.to_string(), SCAN_KIND.to_string()),
        ]);
        // Never started: the command is only there because the engine wants one for an
        // image without CMD or ENTRYPOINT. Hardened anyway, should anything start it.
        let config = Config {
            image: Some(image.id.clone()),
            cmd: Some(vec!["/nonexistent".to_string()]),
            entrypoint: Some(vec![]),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                privileged: Some(false),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                network_mode: Some("none".into()),
                memory: Some(64 << 20),
                pids_limit: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!(
            "{}_scan.{}",
            self.settings.instance,
            uuid::Uuid::new_v4().simple()
        );
        let created = self
            .call(docker.create_container(
                Some(CreateContainerOptions {
                    name: name.as_str(),
                    platform: None,
                }),
                config,
            ))
            .await?;
        let guard = RemoveOnDrop {
            docker: docker.clone(),
            id: created.id.clone(),
        };
        Ok(docker
            .export_container(&created.id)
            .map(move |chunk| {
                // The container goes when the stream does.
                let _ = &guard;
                chunk.map_err(|e| std::io::Error::other(e.to_string()))
            })
            .boxed())
    }

    async fn put_runner(&self, spec: &RunnerSpec) -> Result<RunnerState, BackendError> {
        self.remove_runner(&spec.owner).await?;
        if self.image(&spec.image).await?.is_none() {
            return Err(BackendError::NoSuchImage(spec.image.clone()));
        }
        let docker = self.docker().await?;
        let name = self.runner_name(&spec.owner);
        // The runner and the jobs it starts live in the owner's own network, never on the
        // default bridge with other users' runners, jobs and builds. Set here, whatever the
        // configuration says, so a compromised console cannot choose another network.
        let network = self.network_name(&spec.owner);
        let config_toml = runner_config_on_network(&spec.config_toml, &network)?;
        let lock = self.network_lock(&spec.owner);
        let network_guard = lock.lock().await;
        self.ensure_network(&docker, &spec.owner).await?;
        let mut labels = self.our_labels(&spec.owner);
        labels.insert(labels::KIND.into(), RUNNER_KIND.into());
        // The runner starts job containers, so it reaches the engine; the jobs it starts
        // get no socket and no host path (its config.toml says so).
        let binds = self
            .settings
            .host
            .strip_prefix("unix://")
            .map(|socket| vec![format!("{socket}:/var/run/docker.sock")])
            .unwrap_or_default();
        let config = Config {
            image: Some(spec.image.clone()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                privileged: Some(false),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                memory: Some(spec.limits.memory_bytes),
                memory_swap: Some(spec.limits.memory_bytes),
                nano_cpus: Some(spec.limits.nano_cpus),
                pids_limit: Some(spec.limits.pids),
                binds: Some(binds),
                network_mode: Some(network),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.call(docker.create_container(
            Some(CreateContainerOptions {
                name: name.clone(),
                platform: None,
            }),
            config,
        ))
        .await?;
        drop(network_guard);
        // `/etc/gitlab-runner/config.toml`, the directory included, for images without it.
        let mut archive = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o700);
        archive
            .append_data(&mut dir, "gitlab-runner/", std::io::empty())
            .map_err(|e| BackendError::Engine(e.to_string()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(config_toml.len() as u64);
        header.set_mode(0o600);
        archive
            .append_data(
                &mut header,
                "gitlab-runner/config.toml",
                config_toml.as_bytes(),
            )
            .map_err(|e| BackendError::Engine(e.to_string()))?;
        let archive = archive
            .into_inner()
            .map_err(|e| BackendError::Engine(e.to_string()))?;
        let uploaded = self
            .call(docker.upload_to_container(
                &name,
                Some(UploadToContainerOptions {
                    path: "/etc".to_string(),
                    ..Default::default()
                }),
                archive.into(),
            ))
            .await;
        let started = match uploaded {
            Ok(()) => {
                self.call(docker.start_container::<String>(&name, None))
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            let _ = self.remove_runner(&spec.owner).await;
            return Err(e);
        }
        self.runner(&spec.owner)
            .await?
            .ok_or_else(|| BackendError::Engine("the runner vanished after its start".into()))
    }

    async fn runner(&self, owner: &UserName) -> Result<Option<RunnerState>, BackendError> {
        let docker = self.docker().await?;
        let Some(id) = self.runner_ids(owner).await?.into_iter().next() else {
            return Ok(None);
        };
        let r = match self.call(docker.inspect_container(&id, None)).await {
            Ok(r) => r,
            Err(BackendError::NoSuchContainer) => return Ok(None),
            Err(e) => return Err(e),
        };
        let labels = r
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        if !self.is_ours(&labels)
            || labels.get(labels::KIND).map(String::as_str) != Some(RUNNER_KIND)
        {
            return Ok(None);
        }
        let image = r
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let state = match r.state.and_then(|s| s.status) {
            Some(ContainerStateStatusEnum::RUNNING) => ContainerStatus::Running,
            Some(ContainerStateStatusEnum::CREATED) => ContainerStatus::Created,
            Some(ContainerStateStatusEnum::RESTARTING) => ContainerStatus::Restarting,
            Some(ContainerStateStatusEnum::PAUSED) => ContainerStatus::Paused,
            Some(ContainerStateStatusEnum::EXITED) => ContainerStatus::Exited,
            _ => ContainerStatus::Dead,
        };
        Ok(Some(RunnerState {
            id: r.id.unwrap_or_default(),
            image,
            state,
        }))
    }

    async fn remove_runner(&self, owner: &UserName) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        for id in self.runner_ids(owner).await? {
            let opts = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            match self.call(docker.remove_container(&id, Some(opts))).await {
                Ok(()) | Err(BackendError::NoSuchContainer) => {}
                Err(e) => return Err(e),
            }
        }
        // The runner kept the owner's network; it goes with the last of their containers.
        self.remove_network_if_unused(owner).await
    }

    async fn storage_usage(&self, owner: &UserName) -> Result<i64, BackendError> {
        match self.storage_root(owner, false).await? {
            None => Ok(0),
            Some(fd) => blocking(move || storage::usage(&fd)).await,
        }
    }

    async fn storage_stat(
        &self,
        owner: &UserName,
        path: &str,
    ) -> Result<StoragePath, BackendError> {
        let rel = storage::relative(path)?;
        match self.storage_root(owner, false).await? {
            None if rel.is_empty() => Ok(StoragePath::Dir {
                entries: Vec::new(),
                truncated: false,
            }),
            None => Err(BackendError::NoSuchFile(why::storage_missing(&rel))),
            Some(fd) => blocking(move || storage::stat(&fd, &rel)).await,
        }
    }

    async fn storage_read(&self, owner: &UserName, path: &str) -> Result<ByteStream, BackendError> {
        let rel = storage::relative(path)?;
        match self.storage_root(owner, false).await? {
            None => Err(BackendError::NoSuchFile(why::storage_missing(&rel))),
            Some(fd) => blocking(move || storage::read(&fd, &rel)).await,
        }
    }

    async fn storage_write(
        &self,
        owner: &UserName,
        path: &str,
        body: ByteStream,
    ) -> Result<i64, BackendError> {
        let rel = storage::relative(path)?;
        let ids = self.storage_ids(owner).await;
        let fd = self.storage_root(owner, true).await?.ok_or_else(|| {
            BackendError::Storage(Why::new(
                "storage_unprepared",
                [],
                "your storage could not be prepared",
            ))
        })?;
        storage::write(fd, rel, ids, body).await
    }

    async fn storage_remove(&self, owner: &UserName, path: &str) -> Result<(), BackendError> {
        let rel = storage::relative(path)?;
        match self.storage_root(owner, false).await? {
            None => Err(BackendError::NoSuchFile(why::storage_missing(&rel))),
            Some(fd) => blocking(move || storage::remove(&fd, &rel)).await,
        }
    }

    async fn storage_delete(&self, owner: &UserName) -> Result<(), BackendError> {
        let in_use = self.list().await?.iter().any(|c| c.owner == owner.as_str());
        if in_use {
            return Err(BackendError::Refused(why::storage_in_use()));
        }
        let s = &self.settings.storage;
        match s.kind {
            StorageKind::Off => Ok(()),
            StorageKind::Directory => {
                let root = s.root.clone().unwrap_or_default();
                let o = owner.to_string();
                blocking(move || storage::remove_directory(&root, &o)).await
            }
            StorageKind::Volume => {
                let docker = self.docker().await?;
                let name = self.volume_name(owner);
                match self.storage_dir(owner, false).await {
                    Ok(None) => return Ok(()),
                    Ok(Some(_)) => {}
                    Err(e) => return Err(e),
                }
                match self
                    .call(docker.remove_volume(&name, Some(RemoveVolumeOptions { force: false })))
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(BackendError::Refused(m))
                        if m.to_ascii_lowercase().contains("no such volume") =>
                    {
                        Ok(())
                    }
                    Err(BackendError::Refused(m)) if m.contains("in use") => {
                        Err(BackendError::Refused(why::storage_in_use()))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    async fn image_events(
        &self,
    ) -> Result<futures::stream::BoxStream<'static, Result<(), BackendError>>, BackendError> {
        let docker = self.docker().await?;
        let opts = EventsOptions::<String> {
            filters: HashMap::from([("type".to_string(), vec!["image".to_string()])]),
            ..Default::default()
        };
        Ok(docker
            .events(Some(opts))
            .map(|e| e.map(|_| ()).map_err(classify))
            .boxed())
    }
}

/// Removes a scan's container when its export stream is dropped, however it ends.
struct RemoveOnDrop {
    docker: Docker,
    id: String,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let id = std::mem::take(&mut self.id);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(container = %id, "no runtime to remove a scan's container");
            return;
        };
        rt.spawn(async move {
            let opts = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            if let Err(e) = docker.remove_container(&id, Some(opts)).await {
                tracing::warn!(container = %id, error = %e, "could not remove a scan's container");
            }
        });
    }
}

impl DockerEngine {
    /// Removes scan containers a crash left behind (best effort: a scan must not fail
    /// for this).
    async fn remove_stale_scan_containers(&self, docker: &Docker) {
        let Ok(found) = self
            .labelled(
                docker,
                vec![
                    format!("{}=true", labels::MANAGED),
                    format!("{}={}", labels::INSTANCE, self.settings.instance),
                    format!("{}={}", labels::KIND, SCAN_KIND),
                ],
            )
            .await
        else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for c in found {
            if c.created.is_some_and(|t| now - t > STALE_SCAN_SECS) {
                if let Some(id) = c.id {
                    let _ = self.remove_container(&id).await;
                }
            }
        }
    }
}

/// Whether a container of ours is one lent to a user: a CI runner (it has a kind) is not.
/// A lent container as the engine lists it, with its memory limit.
fn lent_state(c: bollard::models::ContainerSummary) -> (ContainerState, i64) {
    let labels = c.labels.unwrap_or_default();
    let memory = labels
        .get(labels::MEMORY)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    // Containers made before the label existed: what the engine publishes.
    let ports = match labels.get(labels::PORTS) {
        Some(l) => ports_from_label(l),
        None => c
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                Some(PortBinding {
                    guest: GuestPort::new(p.private_port.into()).ok()?,
                    host: p.public_port?,
                })
            })
            .collect(),
    };
    let state = ContainerState {
        id: c.id.unwrap_or_default(),
        name: c
            .names
            .and_then(|n| n.into_iter().next())
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        owner: labels.get(labels::OWNER).cloned().unwrap_or_default(),
        short_name: labels.get(labels::NAME).cloned().unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        state: match c.state.as_deref() {
            Some("created") => ContainerStatus::Created,
            Some("running") => ContainerStatus::Running,
            Some("paused") => ContainerStatus::Paused,
            Some("restarting") => ContainerStatus::Restarting,
            Some("exited") => ContainerStatus::Exited,
            _ => ContainerStatus::Dead,
        },
        ports,
        env: Vec::new(),
        created_at: c.created.unwrap_or_default(),
        gpus: labels
            .get(labels::GPUS)
            .map(|l| gpus::from_label(l))
            .unwrap_or_default(),
    };
    (state, memory)
}

fn is_lent(c: &bollard::models::ContainerSummary) -> bool {
    c.labels
        .as_ref()
        .is_none_or(|l| !l.contains_key(labels::KIND))
}

/// An interactive session's command when none is given: the image's bash, else its sh.
const DEFAULT_SHELL: &str = "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi";

/// The environment variable that marks every process of one exec (its children inherit
/// it), so that what the exec started can be found and killed inside the container.
const EXEC_MARK: &str = "WM_EXEC";

fn exec_mark() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn mark_env(mark: &str) -> String {
    format!("{EXEC_MARK}={mark}")
}

/// Kills every process in the container that carries the exec's mark, with an exec of
/// the container's own `sh` (the engine may be on another machine than this process, and
/// process ids in the container are its own). Best effort: a failure is logged.
async fn kill_marked(docker: &Docker, container: &str, mark: &str) {
    let script = format!(
        "for d in /proc/[0-9]*; do \
         if tr '\\0' '\\n' < \"$d/environ\" 2>/dev/null | grep -qx '{}'; then \
         kill -9 \"${{d#/proc/}}\" 2>/dev/null; fi; done; true",
        mark_env(mark)
    );
    let opts = CreateExecOptions {
        cmd: Some(vec!["/bin/sh".to_string(), "-c".to_string(), script]),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        privileged: Some(false),
        ..Default::default()
    };
    let run = async {
        let created = docker.create_exec(container, opts).await?;
        if let StartExecResults::Attached { mut output, .. } =
            docker.start_exec(&created.id, None).await?
        {
            while output.next().await.is_some() {}
        }
        Ok::<(), DockerError>(())
    };
    match tokio::time::timeout(Duration::from_secs(30), run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, container, "could not end an exec's processes"),
        Err(_) => tracing::warn!(container, "ending an exec's processes timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_locks_are_kept_only_while_held() {
        let engine = DockerEngine::new(DockerSettings::default());
        let owners: Vec<UserName> = (0..100)
            .map(|i| UserName::parse(&format!("u{i}")).unwrap())
            .collect();
        let held = engine.network_lock(&owners[0]);
        for o in &owners[1..] {
            drop(engine.network_lock(o));
        }
        let again = engine.network_lock(&owners[0]);
        assert!(
            Arc::ptr_eq(&held, &again),
            "a held lock is the one handed out"
        );
        let kept = engine.network_locks.lock().unwrap().len();
        assert!(
            kept <= 2,
            "{kept} locks kept for 100 owners served one after another"
        );
    }

    #[test]
    fn runner_jobs_go_on_the_owners_network() {
        let given = "concurrent = 1\n\n[[runners]]\nname = \"r\"\n\n[runners.docker]\nimage = \"x\"\nnetwork_mode = \"host\"\n";
        let out: toml::Table = runner_config_on_network(given, "wm-alice")
            .unwrap()
            .parse()
            .unwrap();
        let docker = &out["runners"].as_array().unwrap()[0]["docker"];
        assert_eq!(docker["network_mode"].as_str(), Some("wm-alice"));
        assert_eq!(docker["image"].as_str(), Some("x"));
        assert!(runner_config_on_network("not toml [", "n").is_err());
        assert!(runner_config_on_network("concurrent = 1", "n").is_err());
    }

    #[test]
    fn finds_taken_ports_in_engine_messages() {
        let ports = [
            PortBinding {
                guest: GuestPort::new(80).unwrap(),
                host: 40001,
            },
            PortBinding {
                guest: GuestPort::new(81).unwrap(),
                host: 40002,
            },
        ];
        let m = "driver failed programming external connectivity on endpoint x: \
                 Bind for 0.0.0.0:40002 failed: port is already allocated";
        assert_eq!(ports_in_message(m, &ports), Some(vec![40002]));
        let m = "Error starting userland proxy: listen tcp4 0.0.0.0:40001: bind: address already in use";
        assert_eq!(ports_in_message(m, &ports), Some(vec![40001]));
        assert_eq!(ports_in_message("no such image", &ports), None);
    }
}
