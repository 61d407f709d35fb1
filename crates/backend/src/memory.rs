//! An in-memory container host, **for tests and benchmarks only**.
//!
//! [`MemoryBackend`] implements [`ContainerBackend`] without any engine: containers,
//! images, networks and runners are entries in a map behind one [`std::sync::Mutex`]. It
//! lets the console's use cases be unit-tested without Docker and lets scale benchmarks
//! measure the console alone. It is compiled only with the `memory` cargo feature, which
//! is off by default and which no production crate enables: nothing a user runs can
//! reach it.
//!
//! It answers as a real host does (see [`ContainerBackend`]'s documentation and the
//! docker backend):
//! - containers are keyed by [`ContainerKey`]; `create` makes and starts one, lends a
//!   distinct host port from its range to each guest port and answers
//!   [`BackendError::Exhausted`] when the range has too few left, leaving nothing behind
//!   (as the docker backend does: [`BackendError::Unavailable`] would mark the whole host
//!   down in the console);
//! - `create` of a name that exists answers [`BackendError::NameTaken`], of an image the
//!   host does not have [`BackendError::NoSuchImage`] (so the console's pull path runs);
//! - `exec` on a stopped container is [`BackendError::Refused`], as the engine's 409 is;
//! - images are found by tag (`busybox` is `busybox:latest` is
//!   `docker.io/library/busybox:latest`), by id (`sha256:<hex>`) or by a unique prefix of
//!   the id's hex; `remove_image` untags, and refuses to remove the last reference of an
//!   image a container or runner uses;
//! - `create` gives the [`ContainerSpec::gpus`] from the host's inventory
//!   ([`MemoryBackend::with_gpus`]): an id the host does not have (or one asked twice) is
//!   [`BackendError::Policy`], a GPU that would be held by more containers than its
//!   `share` is [`BackendError::Exhausted`] (stopped containers hold theirs, as on the
//!   docker backend), and nothing is left behind; `remove` frees them;
//! - the owner's network is made on demand (`create`, `build`, `put_runner`) and
//!   `remove_network_if_unused` removes it when none of their containers or runner is left.
//!
//! What it does not model: `exec` runs nothing (its output is the command's words joined
//! by spaces, or what [`MemoryBackend::set_exec_output`] says); `upload` only records the
//! archive; `save_image` streams a few bytes that are not a real docker archive, and
//! `image_filesystem` an empty tar (an image without files); pulls
//! and builds happen at once when called (the progress stream only reports them), and a
//! build ignores its context except for its size; `list` leaves `env` empty, as the
//! engine's listing does (`inspect` fills it).
//!
//! Test knobs: builder methods (`with_*`) to set the host up, setters to change it while
//! a test runs ([`MemoryBackend::set_unavailable`], [`MemoryBackend::fail_next`], ...),
//! and readers of what the console asked ([`MemoryBackend::calls`],
//! [`MemoryBackend::execs`], [`MemoryBackend::uploads`], [`MemoryBackend::networks`]).

use crate::{
    why, Activity, BackendError, BuildRequest, ByteStream, ContainerBackend, ContainerSpec,
    ContainerState, ExecOutput, ExecRequest, FileEntry, FileKind, Gpu, HostInfo, ImageInfo, Limits,
    PortBinding, Progress, ProgressStream, RegistryAuth, RunnerSpec, RunnerState, StoragePath,
    Terminal, TerminalInput, TerminalOutput, TerminalRequest,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use wm_domain::{ContainerKey, ContainerStatus, ImageRef, UserName};

/// The default range of host ports lent to containers (inclusive).
pub const DEFAULT_PORT_RANGE: (u16, u16) = (40000, 40999);

/// The default memory of the host: 16 GiB.
pub const DEFAULT_MEMORY_TOTAL: i64 = 16 << 30;

/// The size a pulled image is given.
const PULLED_IMAGE_SIZE: i64 = 4 << 20;

/// Which operation of [`ContainerBackend`] a test asks about or makes fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Info,
    Image,
    Create,
    Start,
    Stop,
    Remove,
    RemoveNetworkIfUnused,
    Inspect,
    List,
    Exec,
    Upload,
    Logs,
    Activity,
    Images,
    RemoveImage,
    Pull,
    Build,
    SaveImage,
    ImageFilesystem,
    PutRunner,
    Runner,
    RemoveRunner,
    ImageEvents,
    Download,
    Storage,
}

/// One call the backend received, in order: the operation and what it was about (the
/// container key `<owner>-<short>`, the image reference, the owner; empty for `info`,
/// `list`, `images` and `image_events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    pub subject: String,
}

/// One `upload` that reached a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub container: ContainerKey,
    pub dir: String,
    /// The archive's bytes, as streamed.
    pub tar: Bytes,
}

struct Container {
    /// Creation order, for `list`.
    seq: u64,
    id: String,
    image: String,
    image_id: String,
    state: ContainerStatus,
    ports: Vec<PortBinding>,
    env: Vec<String>,
    memory: i64,
    created_at: i64,
    logs: Vec<String>,
    /// The ids of the GPUs it holds.
    gpus: Vec<String>,
    /// Its activity counters, as [`MemoryBackend::add_activity`] moved them.
    activity: Activity,
}

struct Image {
    /// `on_build` is kept; `images()` clears it as the engine's listing does.
    info: ImageInfo,
    /// `name@sha256:...` references it was pulled by.
    digests: Vec<String>,
}

struct Runner {
    spec: RunnerSpec,
    id: String,
    image_id: String,
    state: ContainerStatus,
}

struct State {
    // Configuration.
    labels: Vec<String>,
    address: Option<String>,
    memory_total: i64,
    ports: (u16, u16),
    gpus: Vec<Gpu>,
    max_limits: Option<Limits>,
    exec_output: Option<ExecOutput>,
    unavailable: Option<String>,
    failures: Vec<(Op, BackendError)>,
    stream_failures: Vec<(Op, BackendError)>,
    // The host.
    counter: u64,
    containers: HashMap<ContainerKey, Container>,
    used_ports: BTreeSet<u16>,
    images: Vec<Image>,
    networks: BTreeSet<UserName>,
    runners: HashMap<UserName, Runner>,
    subscribers: Vec<UnboundedSender<Result<(), BackendError>>>,
    // What was asked.
    calls: Vec<Call>,
    execs: Vec<(ContainerKey, ExecRequest)>,
    uploads: Vec<Upload>,
    /// Each owner's storage: files by their path (directories are implied).
    storage: HashMap<UserName, BTreeMap<String, (Bytes, i64)>>,
}

/// An in-memory container host for tests and benchmarks; see the [module](self) docs.
pub struct MemoryBackend {
    host_name: String,
    state: Mutex<State>,
}

impl MemoryBackend {
    /// An empty host called `host_name`: no image, no container, ports
    /// [`DEFAULT_PORT_RANGE`], [`DEFAULT_MEMORY_TOTAL`] of memory, no labels, no address.
    pub fn new(host_name: impl Into<String>) -> Self {
        Self {
            host_name: host_name.into(),
            state: Mutex::new(State {
                labels: Vec::new(),
                address: None,
                memory_total: DEFAULT_MEMORY_TOTAL,
                ports: DEFAULT_PORT_RANGE,
                gpus: Vec::new(),
                max_limits: None,
                exec_output: None,
                unavailable: None,
                failures: Vec::new(),
                stream_failures: Vec::new(),
                counter: 0,
                containers: HashMap::new(),
                used_ports: BTreeSet::new(),
                images: Vec::new(),
                networks: BTreeSet::new(),
                runners: HashMap::new(),
                subscribers: Vec::new(),
                calls: Vec::new(),
                execs: Vec::new(),
                uploads: Vec::new(),
                storage: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its own failure.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_mut(&mut self) -> &mut State {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- Builder methods ----

    /// Seeds an image (see [`MemoryBackend::add_image`]).
    pub fn with_image(self, image: ImageInfo) -> Self {
        self.add_image(image);
        self
    }

    /// Seeds an image tagged `reference`, with no owner.
    pub fn with_tag(self, reference: &str) -> Self {
        self.add_image(ImageInfo {
            id: String::new(),
            tags: vec![reference.to_string()],
            owner: None,
            size: PULLED_IMAGE_SIZE,
            created_at: now(),
            on_build: Vec::new(),
            foreign: false,
        });
        self
    }

    /// The host's labels (`HostInfo::labels`).
    pub fn with_labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.state_mut().labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// Where users reach the host's ports (`HostInfo::address`).
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.state_mut().address = Some(address.into());
        self
    }

    /// The host's memory in bytes (`HostInfo::memory_total`).
    pub fn with_memory_total(mut self, bytes: i64) -> Self {
        self.state_mut().memory_total = bytes;
        self
    }

    /// Host ports `lo..=hi` are lent to containers.
    ///
    /// # Panics
    /// When `lo > hi`.
    pub fn with_port_range(mut self, lo: u16, hi: u16) -> Self {
        assert!(lo <= hi, "empty port range {lo}-{hi}");
        self.state_mut().ports = (lo, hi);
        self
    }

    /// The host's GPU inventory (`HostInfo::gpus`), which `create` gives from.
    pub fn with_gpus(mut self, gpus: Vec<Gpu>) -> Self {
        self.state_mut().gpus = gpus;
        self
    }

    /// The host's ceilings: `create` answers [`BackendError::Policy`] for limits that are
    /// not positive or above them, as the docker backend does. Without, any limits go.
    pub fn with_max_limits(mut self, max: Limits) -> Self {
        self.state_mut().max_limits = Some(max);
        self
    }

    // ---- Setters ----

    /// Adds an image, as if pulled or loaded; an empty `id` gets a fresh one, and tags are
    /// stored as the engine shows them (`busybox` as `busybox:latest`). A tag another
    /// image had moves to this one. Returns the image as stored.
    pub fn add_image(&self, mut image: ImageInfo) -> ImageInfo {
        let mut s = self.lock();
        if image.id.is_empty() {
            image.id = s.next_image_id();
        }
        image.tags = image.tags.iter().map(|t| familiar(t)).collect();
        s.untag_all(&image.tags);
        s.images.push(Image {
            info: image.clone(),
            digests: Vec::new(),
        });
        s.image_changed();
        image
    }

    /// `Some(why)`: every call answers [`BackendError::Unavailable`]`(why)`, like a host
    /// that went down, and open `image_events` streams end with that error. `None`: the
    /// host is back, with everything it had.
    pub fn set_unavailable(&self, why: Option<String>) {
        let mut s = self.lock();
        if let Some(why) = &why {
            for tx in s.subscribers.drain(..) {
                let _ = tx.unbounded_send(Err(BackendError::Unavailable(why.clone().into())));
            }
        }
        s.unavailable = why;
    }

    /// The next call of `op` answers `error` and changes nothing. Several queue up.
    pub fn fail_next(&self, op: Op, error: BackendError) {
        self.lock().failures.push((op, error));
    }

    /// The next [`Op::Pull`] or [`Op::Build`] is accepted but its progress stream ends
    /// with `error` and nothing is pulled or built, as when a registry or a `RUN` step
    /// fails.
    pub fn fail_next_stream(&self, op: Op, error: BackendError) {
        self.lock().stream_failures.push((op, error));
    }

    /// What every `exec` answers from now on; `None`: the default (stdout the command's
    /// words joined by spaces and a newline, exit code 0).
    pub fn set_exec_output(&self, output: Option<ExecOutput>) {
        self.lock().exec_output = output;
    }

    /// Adds a line to the container's output, for `logs`.
    ///
    /// # Errors
    /// [`BackendError::NoSuchContainer`] when it does not exist.
    pub fn add_log(&self, key: &ContainerKey, line: impl Into<String>) -> Result<(), BackendError> {
        let mut s = self.lock();
        let c = s
            .containers
            .get_mut(key)
            .ok_or(BackendError::NoSuchContainer)?;
        c.logs.push(line.into());
        Ok(())
    }

    /// Moves a container's activity counters on by `more` (CPU time and network bytes,
    /// as if it had been busy), for `activity`.
    ///
    /// # Errors
    /// [`BackendError::NoSuchContainer`] when it does not exist.
    pub fn add_activity(&self, key: &ContainerKey, more: Activity) -> Result<(), BackendError> {
        let mut s = self.lock();
        let c = s
            .containers
            .get_mut(key)
            .ok_or(BackendError::NoSuchContainer)?;
        c.activity.cpu_nanos += more.cpu_nanos;
        c.activity.rx_bytes += more.rx_bytes;
        c.activity.tx_bytes += more.tx_bytes;
        Ok(())
    }

    /// Changes a container's state behind the console's back (it crashed: `Exited`,
    /// `Dead`...). It keeps its ports.
    ///
    /// # Errors
    /// [`BackendError::NoSuchContainer`] when it does not exist.
    pub fn set_state(
        &self,
        key: &ContainerKey,
        state: ContainerStatus,
    ) -> Result<(), BackendError> {
        let mut s = self.lock();
        let c = s
            .containers
            .get_mut(key)
            .ok_or(BackendError::NoSuchContainer)?;
        c.state = state;
        Ok(())
    }

    // ---- Readers ----

    /// Every call received, in order (also those answered with an error).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// How many calls of `op` were received.
    pub fn count(&self, op: Op) -> usize {
        self.lock().calls.iter().filter(|c| c.op == op).count()
    }

    /// Forgets the calls, execs and uploads recorded so far.
    pub fn clear_calls(&self) {
        let mut s = self.lock();
        s.calls.clear();
        s.execs.clear();
        s.uploads.clear();
    }

    /// The `exec` requests that ran (not those refused), in order.
    pub fn execs(&self) -> Vec<(ContainerKey, ExecRequest)> {
        self.lock().execs.clone()
    }

    /// Every archive uploaded, in order (kept after its container is removed).
    pub fn uploads(&self) -> Vec<Upload> {
        self.lock().uploads.clone()
    }

    /// The (directory, archive) pairs uploaded into one container, in order.
    pub fn uploads_to(&self, key: &ContainerKey) -> Vec<(String, Bytes)> {
        self.lock()
            .uploads
            .iter()
            .filter(|u| &u.container == key)
            .map(|u| (u.dir.clone(), u.tar.clone()))
            .collect()
    }

    /// The owners that have a network on the host, sorted.
    pub fn networks(&self) -> Vec<UserName> {
        self.lock().networks.iter().cloned().collect()
    }

    /// The spec of the owner's runner, if they have one (its `config_toml` included).
    pub fn runner_spec(&self, owner: &UserName) -> Option<RunnerSpec> {
        self.lock().runners.get(owner).map(|r| r.spec.clone())
    }

    /// Host ports lent right now, sorted.
    pub fn used_ports(&self) -> Vec<u16> {
        self.lock().used_ports.iter().copied().collect()
    }

    /// Records the call and answers as the host would before doing anything: unavailable,
    /// or an injected failure.
    fn enter(
        &self,
        op: Op,
        subject: impl Into<String>,
    ) -> Result<MutexGuard<'_, State>, BackendError> {
        let mut s = self.lock();
        s.calls.push(Call {
            op,
            subject: subject.into(),
        });
        if let Some(why) = &s.unavailable {
            return Err(BackendError::Unavailable(why.clone().into()));
        }
        if let Some(i) = s.failures.iter().position(|(o, _)| *o == op) {
            return Err(s.failures.remove(i).1);
        }
        Ok(s)
    }
}

impl State {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// 64 hex digits, distinct for each call.
    fn next_hex(&mut self) -> String {
        let n = self.next();
        (0..4u64)
            .map(|k| format!("{:016x}", splitmix64(n.wrapping_mul(4).wrapping_add(k))))
            .collect()
    }

    fn next_image_id(&mut self) -> String {
        format!("sha256:{}", self.next_hex())
    }

    fn image_changed(&mut self) {
        self.subscribers
            .retain(|tx| tx.unbounded_send(Ok(())).is_ok());
    }

    /// Takes `tags` off every image that has them (a tag names one image).
    fn untag_all(&mut self, tags: &[String]) {
        for img in &mut self.images {
            img.info.tags.retain(|t| !tags.contains(t));
        }
    }

    /// The image `reference` names, as the engine resolves it: a tag, a digest reference,
    /// the id, or a unique prefix of the id's hex.
    fn resolve(&self, reference: &str) -> Option<usize> {
        if reference.contains('@') {
            let wanted = familiar(reference);
            return self.images.iter().position(|i| i.digests.contains(&wanted));
        }
        let tag = familiar(reference);
        if let Some(i) = self.images.iter().position(|i| i.info.tags.contains(&tag)) {
            return Some(i);
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let hex = hex.to_ascii_lowercase();
        let mut found = self
            .images
            .iter()
            .enumerate()
            .filter(|(_, i)| id_hex(&i.info.id).starts_with(&hex));
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Some(i),
            // None, or ambiguous.
            _ => None,
        }
    }

    /// Whether a container or runner uses the image with this id.
    fn user_of(&self, image_id: &str) -> Option<String> {
        self.containers
            .values()
            .find(|c| c.image_id == image_id)
            .map(|c| c.id.clone())
            .or_else(|| {
                self.runners
                    .values()
                    .find(|r| r.image_id == image_id)
                    .map(|r| r.id.clone())
            })
    }

    /// `n` free host ports from the range, lowest first.
    fn free_ports(&self, n: usize) -> Option<Vec<u16>> {
        let (lo, hi) = self.ports;
        let free: Vec<u16> = (lo..=hi)
            .filter(|p| !self.used_ports.contains(p))
            .take(n)
            .collect();
        (free.len() == n).then_some(free)
    }

    fn check_policy(&self, spec: &ContainerSpec) -> Result<(), BackendError> {
        if let Some(max) = &self.max_limits {
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
        }
        if spec.name != spec.key().full_name() {
            return Err(BackendError::Policy(why::container_name()));
        }
        Ok(())
    }

    /// Checks that the spec's GPUs are the host's and that each has room for one more
    /// container, as the docker backend does.
    fn check_gpus(&self, spec: &ContainerSpec) -> Result<(), BackendError> {
        // First whether they are the host's (policy), then whether they have room.
        let mut wanted: Vec<&Gpu> = Vec::with_capacity(spec.gpus.len());
        for id in &spec.gpus {
            if wanted.iter().any(|g| &g.id == id) {
                return Err(BackendError::Policy(why::gpu_twice(id)));
            }
            let gpu = self.gpus.iter().find(|g| &g.id == id).ok_or_else(|| {
                let known: Vec<&str> = self.gpus.iter().map(|g| g.id.as_str()).collect();
                BackendError::Policy(why::no_gpu(id, &known))
            })?;
            wanted.push(gpu);
        }
        for gpu in wanted {
            let holders = self
                .containers
                .values()
                .filter(|c| c.gpus.contains(&gpu.id))
                .count();
            if holders >= gpu.share as usize {
                return Err(BackendError::Exhausted(why::gpu_in_use(
                    &gpu.id, holders, gpu.share,
                )));
            }
        }
        Ok(())
    }

    fn container_state(&self, key: &ContainerKey) -> Result<ContainerState, BackendError> {
        let c = self
            .containers
            .get(key)
            .ok_or(BackendError::NoSuchContainer)?;
        Ok(state_of(key, c))
    }

    fn remove_network_if_unused(&mut self, owner: &UserName) {
        let used =
            self.containers.keys().any(|k| &k.owner == owner) || self.runners.contains_key(owner);
        if !used {
            self.networks.remove(owner);
        }
    }
}

fn state_of(key: &ContainerKey, c: &Container) -> ContainerState {
    ContainerState {
        id: c.id.clone(),
        name: key.full_name().to_string(),
        owner: key.owner.to_string(),
        short_name: key.short.to_string(),
        image: c.image.clone(),
        state: c.state,
        ports: c.ports.clone(),
        env: c.env.clone(),
        created_at: c.created_at,
        gpus: c.gpus.clone(),
    }
}

fn id_hex(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// The first 12 hex digits of an id, as the engine prints them.
fn short_id(id: &str) -> &str {
    let hex = id_hex(id);
    &hex[..hex.len().min(12)]
}

/// A reference as the engine shows it: Docker Hub's `docker.io/library/` and `docker.io/`
/// dropped, `:latest` when it has neither tag nor digest.
fn familiar(reference: &str) -> String {
    let r = [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ]
    .iter()
    .find_map(|p| reference.strip_prefix(p))
    .unwrap_or(reference);
    let last = r.rfind('/').map_or(0, |i| i + 1);
    if r.contains('@') || r[last..].contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// A bijection on u64 with well-spread output (SplitMix64's finaliser).
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `s` cut to at most `max` bytes on a character boundary; whether it was cut.
fn cut(mut s: String, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    (s, true)
}

fn progress(items: Vec<Result<Progress, BackendError>>) -> ProgressStream {
    stream::iter(items).boxed()
}

#[async_trait]
impl ContainerBackend for MemoryBackend {
    fn host_name(&self) -> &str {
        &self.host_name
    }

    async fn info(&self) -> Result<HostInfo, BackendError> {
        let s = self.enter(Op::Info, "")?;
        let running = s
            .containers
            .values()
            .filter(|c| c.state == ContainerStatus::Running);
        Ok(HostInfo {
            version: "memory".into(),
            api_version: "1.0".into(),
            address: s.address.clone(),
            labels: s.labels.clone(),
            memory_total: s.memory_total,
            memory_committed: running.clone().map(|c| c.memory).sum(),
            containers_running: running.count() as u64,
            gpus: s.gpus.clone(),
            storage_path: Some("/data".into()),
            vms: false,
        })
    }

    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, BackendError> {
        let s = self.enter(Op::Image, reference)?;
        Ok(s.resolve(reference).map(|i| s.images[i].info.clone()))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerState, BackendError> {
        let key = spec.key();
        let mut s = self.enter(Op::Create, key.to_string())?;
        s.check_policy(spec)?;
        let hosts = s.free_ports(spec.ports.len()).ok_or_else(|| {
            BackendError::Exhausted(why::ports_full(format!("{}-{}", s.ports.0, s.ports.1)))
        })?;
        if s.containers.contains_key(&key) {
            return Err(BackendError::NameTaken(format!(
                "the container {}",
                key.full_name()
            )));
        }
        s.check_gpus(spec)?;
        let image_id = match s.resolve(spec.image.as_str()) {
            Some(i) => s.images[i].info.id.clone(),
            None => return Err(BackendError::NoSuchImage(spec.image.to_string())),
        };
        let ports: Vec<PortBinding> = spec
            .ports
            .iter()
            .zip(hosts)
            .map(|(&guest, host)| PortBinding { guest, host })
            .collect();
        s.used_ports.extend(ports.iter().map(|p| p.host));
        s.networks.insert(spec.owner.clone());
        let seq = s.next();
        let id = s.next_hex();
        let c = Container {
            seq,
            id,
            image: spec.image.to_string(),
            image_id,
            state: ContainerStatus::Running,
            ports,
            env: spec.env.iter().map(ToString::to_string).collect(),
            memory: spec.limits.memory_bytes,
            created_at: now(),
            logs: Vec::new(),
            gpus: spec.gpus.clone(),
            activity: Activity::default(),
        };
        let state = state_of(&key, &c);
        s.containers.insert(key, c);
        Ok(state)
    }

    async fn start(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        let mut s = self.enter(Op::Start, name.to_string())?;
        let c = s
            .containers
            .get_mut(name)
            .ok_or(BackendError::NoSuchContainer)?;
        c.state = ContainerStatus::Running;
        s.container_state(name)
    }

    async fn stop(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        let mut s = self.enter(Op::Stop, name.to_string())?;
        let c = s
            .containers
            .get_mut(name)
            .ok_or(BackendError::NoSuchContainer)?;
        c.state = ContainerStatus::Exited;
        s.container_state(name)
    }

    async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError> {
        let mut s = self.enter(Op::Remove, name.to_string())?;
        if let Some(c) = s.containers.remove(name) {
            for p in &c.ports {
                s.used_ports.remove(&p.host);
            }
        }
        Ok(())
    }

    async fn remove_network_if_unused(&self, owner: &UserName) -> Result<(), BackendError> {
        let mut s = self.enter(Op::RemoveNetworkIfUnused, owner.as_str())?;
        s.remove_network_if_unused(owner);
        Ok(())
    }

    async fn inspect(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        self.enter(Op::Inspect, name.to_string())?
            .container_state(name)
    }

    async fn activity(&self, name: &ContainerKey) -> Result<Activity, BackendError> {
        let s = self.enter(Op::Activity, name.to_string())?;
        s.containers
            .get(name)
            .map(|c| c.activity)
            .ok_or(BackendError::NoSuchContainer)
    }

    async fn list(&self) -> Result<Vec<ContainerState>, BackendError> {
        let s = self.enter(Op::List, "")?;
        let mut all: Vec<(&ContainerKey, &Container)> = s.containers.iter().collect();
        all.sort_by_key(|(_, c)| c.seq);
        Ok(all
            .into_iter()
            .map(|(k, c)| ContainerState {
                // The engine's listing has no environment.
                env: Vec::new(),
                ..state_of(k, c)
            })
            .collect())
    }

    async fn exec(
        &self,
        name: &ContainerKey,
        req: &ExecRequest,
    ) -> Result<ExecOutput, BackendError> {
        let mut s = self.enter(Op::Exec, name.to_string())?;
        let c = s
            .containers
            .get(name)
            .ok_or(BackendError::NoSuchContainer)?;
        if c.state != ContainerStatus::Running {
            return Err(BackendError::Refused(
                format!("Container {} is not running", c.id).into(),
            ));
        }
        s.execs.push((name.clone(), req.clone()));
        if let Some(out) = &s.exec_output {
            return Ok(out.clone());
        }
        let (stdout, truncated) = cut(format!("{}\n", req.cmd.join(" ")), req.max_output_bytes);
        Ok(ExecOutput {
            exit_code: Some(0),
            stdout,
            stderr: String::new(),
            timed_out: false,
            truncated,
        })
    }

    /// An echo session: input comes back as output, a resize as the line
    /// `resize COLSxROWS`; it exits with code 0 when its input is dropped.
    async fn terminal(
        &self,
        name: &ContainerKey,
        _req: &TerminalRequest,
    ) -> Result<Terminal, BackendError> {
        let s = self.enter(Op::Exec, name.to_string())?;
        let c = s
            .containers
            .get(name)
            .ok_or(BackendError::NoSuchContainer)?;
        if c.state != ContainerStatus::Running {
            return Err(BackendError::Refused(
                format!("Container {} is not running", c.id).into(),
            ));
        }
        let (input, rx) = futures::channel::mpsc::channel(16);
        let echo = rx.map(|i| {
            Ok(TerminalOutput::Data {
                data: match i {
                    TerminalInput::Data { data } => data,
                    TerminalInput::Resize { cols, rows } => {
                        format!("resize {cols}x{rows}\r\n").into_bytes()
                    }
                },
            })
        });
        let exit = futures::stream::once(async { Ok(TerminalOutput::Exit { code: Some(0) }) });
        Ok(Terminal {
            input,
            output: echo.chain(exit).boxed(),
        })
    }

    async fn upload(
        &self,
        name: &ContainerKey,
        dir: &str,
        tar: ByteStream,
    ) -> Result<(), BackendError> {
        {
            let s = self.enter(Op::Upload, name.to_string())?;
            s.container_state(name)?;
        }
        let chunks: Vec<Bytes> = tar.try_collect().await.map_err(|e| {
            BackendError::Refused(format!("the archive could not be read: {e}").into())
        })?;
        let tar = Bytes::from(chunks.concat());
        let mut s = self.lock();
        // Removed while the archive streamed in.
        s.container_state(name)?;
        s.uploads.push(Upload {
            container: name.clone(),
            dir: dir.to_string(),
            tar,
        });
        Ok(())
    }

    async fn download(&self, name: &ContainerKey, path: &str) -> Result<ByteStream, BackendError> {
        let s = self.enter(Op::Download, name.to_string())?;
        s.container_state(name)?;
        // The memory host's containers hold only what was uploaded into them.
        let found = s.uploads.iter().rev().find(|u| {
            &u.container == name && (u.dir == path || path.starts_with(&format!("{}/", u.dir)))
        });
        match found {
            Some(u) => Ok(futures::stream::iter([Ok(u.tar.clone())]).boxed()),
            None => Err(BackendError::NoSuchFile(why::path_missing(path))),
        }
    }

    async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<Bytes, BackendError> {
        let s = self.enter(Op::Logs, name.to_string())?;
        let c = s
            .containers
            .get(name)
            .ok_or(BackendError::NoSuchContainer)?;
        let skip = c.logs.len().saturating_sub(tail as usize);
        let mut out = String::new();
        for line in &c.logs[skip..] {
            out.push_str(line);
            out.push('\n');
        }
        Ok(Bytes::from(out))
    }

    /// The last lines, then the stream ends (as if the container had stopped).
    async fn follow_logs(
        &self,
        name: &ContainerKey,
        tail: u32,
    ) -> Result<ByteStream, BackendError> {
        let lines = self.logs(name, tail).await?;
        Ok(futures::stream::once(async { Ok(lines) }).boxed())
    }

    async fn images(&self) -> Result<Vec<ImageInfo>, BackendError> {
        let s = self.enter(Op::Images, "")?;
        Ok(s.images
            .iter()
            .filter(|i| !i.info.tags.is_empty())
            .map(|i| ImageInfo {
                on_build: Vec::new(),
                ..i.info.clone()
            })
            .collect())
    }

    async fn remove_image(&self, reference: &ImageRef) -> Result<(), BackendError> {
        let r = reference.as_str();
        let mut s = self.enter(Op::RemoveImage, r)?;
        let i = s
            .resolve(r)
            .ok_or_else(|| BackendError::NoSuchImage(r.to_string()))?;
        let tag = familiar(r);
        let by_tag = s.images[i].info.tags.contains(&tag);
        let id = s.images[i].info.id.clone();
        if by_tag && s.images[i].info.tags.len() > 1 {
            // Only the reference goes: the image keeps its other tags.
            s.images[i].info.tags.retain(|t| *t != tag);
            s.image_changed();
            return Ok(());
        }
        if !by_tag && s.images[i].info.tags.len() > 1 {
            return Err(BackendError::Refused(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                short_id(&id)
            ).into()));
        }
        if let Some(user) = s.user_of(&id) {
            return Err(BackendError::Refused(format!(
                "conflict: unable to remove repository reference \"{r}\" (must force) - container {} is using its referenced image {}",
                short_id(&user),
                short_id(&id)
            ).into()));
        }
        s.images.remove(i);
        s.image_changed();
        Ok(())
    }

    async fn pull(
        &self,
        image: &ImageRef,
        _auth: Option<RegistryAuth>,
    ) -> Result<ProgressStream, BackendError> {
        let reference = familiar(image.as_str());
        let mut s = self.enter(Op::Pull, image.as_str())?;
        let from = Progress::Status {
            status: format!("Pulling from {}", image.path()),
        };
        if let Some(i) = s.stream_failures.iter().position(|(o, _)| *o == Op::Pull) {
            let e = s.stream_failures.remove(i).1;
            return Ok(progress(vec![Ok(from), Err(e)]));
        }
        if let Some(i) = s.resolve(&reference) {
            let id = s.images[i].info.id.clone();
            return Ok(progress(vec![
                Ok(from),
                Ok(Progress::Status {
                    status: format!("Digest: {id}"),
                }),
                Ok(Progress::Status {
                    status: format!("Status: Image is up to date for {reference}"),
                }),
            ]));
        }
        let id = s.next_image_id();
        let (tags, digests) = if reference.contains('@') {
            (Vec::new(), vec![reference.clone()])
        } else {
            (vec![reference.clone()], Vec::new())
        };
        s.images.push(Image {
            info: ImageInfo {
                id: id.clone(),
                tags,
                owner: None,
                size: PULLED_IMAGE_SIZE,
                created_at: now(),
                on_build: Vec::new(),
                foreign: false,
            },
            digests,
        });
        s.image_changed();
        let layer = short_id(&id).to_string();
        Ok(progress(vec![
            Ok(from),
            Ok(Progress::Layer {
                id: layer.clone(),
                status: "Downloading".into(),
                current: Some(PULLED_IMAGE_SIZE / 2),
                total: Some(PULLED_IMAGE_SIZE),
            }),
            Ok(Progress::Layer {
                id: layer,
                status: "Pull complete".into(),
                current: None,
                total: None,
            }),
            Ok(Progress::Status {
                status: format!("Digest: {id}"),
            }),
            Ok(Progress::Status {
                status: format!("Status: Downloaded newer image for {reference}"),
            }),
        ]))
    }

    async fn build(
        &self,
        req: &BuildRequest,
        context: Bytes,
    ) -> Result<ProgressStream, BackendError> {
        let tag = familiar(req.tag.as_str());
        let mut s = self.enter(Op::Build, req.tag.as_str())?;
        // RUN steps join the owner's network, made on demand.
        s.networks.insert(req.owner.clone());
        let step = Progress::Log {
            line: format!(
                "Step 1/1 : building {tag} from {} bytes of context\n",
                context.len()
            ),
        };
        if let Some(i) = s.stream_failures.iter().position(|(o, _)| *o == Op::Build) {
            let e = s.stream_failures.remove(i).1;
            return Ok(progress(vec![Ok(step), Err(e)]));
        }
        let size = context.len() as i64;
        if let Some(max) = req.max_image_bytes.filter(|&max| size > max) {
            return Ok(progress(vec![
                Ok(step),
                Err(BackendError::Refused(why::build_too_large(size, max))),
            ]));
        }
        let id = s.next_image_id();
        s.untag_all(std::slice::from_ref(&tag));
        s.images.push(Image {
            info: ImageInfo {
                id: id.clone(),
                tags: vec![tag.clone()],
                owner: Some(req.owner.to_string()),
                size,
                created_at: now(),
                on_build: Vec::new(),
                foreign: false,
            },
            digests: Vec::new(),
        });
        s.image_changed();
        Ok(progress(vec![
            Ok(step),
            Ok(Progress::Log {
                line: format!("Successfully built {}\n", short_id(&id)),
            }),
            Ok(Progress::Log {
                line: format!("Successfully tagged {tag}\n"),
            }),
        ]))
    }

    async fn save_image(&self, reference: &str) -> Result<ByteStream, BackendError> {
        let s = self.enter(Op::SaveImage, reference)?;
        let i = s
            .resolve(reference)
            .ok_or_else(|| BackendError::NoSuchImage(reference.to_string()))?;
        let bytes = Bytes::from(format!("memory-backend image {}\n", s.images[i].info.id));
        Ok(stream::iter([Ok(bytes)]).boxed())
    }

    async fn image_filesystem(&self, reference: &str) -> Result<ByteStream, BackendError> {
        let s = self.enter(Op::ImageFilesystem, reference)?;
        s.resolve(reference)
            .ok_or_else(|| BackendError::NoSuchImage(reference.to_string()))?;
        // Two zero blocks: the end of a tar archive that holds nothing.
        Ok(stream::iter([Ok(Bytes::from(vec![0u8; 1024]))]).boxed())
    }

    async fn put_runner(&self, spec: &RunnerSpec) -> Result<RunnerState, BackendError> {
        let mut s = self.enter(Op::PutRunner, spec.owner.as_str())?;
        s.runners.remove(&spec.owner);
        let Some(i) = s.resolve(&spec.image) else {
            s.remove_network_if_unused(&spec.owner);
            return Err(BackendError::NoSuchImage(spec.image.clone()));
        };
        let image_id = s.images[i].info.id.clone();
        s.networks.insert(spec.owner.clone());
        let id = s.next_hex();
        let state = RunnerState {
            id: id.clone(),
            image: spec.image.clone(),
            state: ContainerStatus::Running,
        };
        s.runners.insert(
            spec.owner.clone(),
            Runner {
                spec: spec.clone(),
                id,
                image_id,
                state: ContainerStatus::Running,
            },
        );
        Ok(state)
    }

    async fn runner(&self, owner: &UserName) -> Result<Option<RunnerState>, BackendError> {
        let s = self.enter(Op::Runner, owner.as_str())?;
        Ok(s.runners.get(owner).map(|r| RunnerState {
            id: r.id.clone(),
            image: r.spec.image.clone(),
            state: r.state,
        }))
    }

    async fn remove_runner(&self, owner: &UserName) -> Result<(), BackendError> {
        let mut s = self.enter(Op::RemoveRunner, owner.as_str())?;
        s.runners.remove(owner);
        // The runner kept the owner's network; it goes with the last of their containers.
        s.remove_network_if_unused(owner);
        Ok(())
    }

    async fn storage_usage(&self, owner: &UserName) -> Result<i64, BackendError> {
        let s = self.enter(Op::Storage, owner.as_str())?;
        Ok(s.storage
            .get(owner)
            .map_or(0, |files| files.values().map(|(b, _)| b.len() as i64).sum()))
    }

    async fn storage_stat(
        &self,
        owner: &UserName,
        path: &str,
    ) -> Result<StoragePath, BackendError> {
        let s = self.enter(Op::Storage, owner.as_str())?;
        let rel = memory_relative(path)?;
        let empty = BTreeMap::new();
        let files = s.storage.get(owner).unwrap_or(&empty);
        if let Some((b, at)) = files.get(&rel) {
            return Ok(StoragePath::File {
                size: b.len() as i64,
                modified: *at,
            });
        }
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let mut entries: BTreeMap<String, FileEntry> = BTreeMap::new();
        for (p, (b, at)) in files.range(prefix.clone()..) {
            let Some(rest) = p.strip_prefix(&prefix) else {
                break;
            };
            let (name, kind, size) = match rest.split_once('/') {
                Some((dir, _)) => (dir, FileKind::Dir, 0),
                None => (rest, FileKind::File, b.len() as i64),
            };
            entries.entry(name.to_string()).or_insert(FileEntry {
                name: name.to_string(),
                kind,
                size,
                modified: *at,
            });
        }
        if entries.is_empty() && !rel.is_empty() {
            return Err(BackendError::NoSuchFile(why::storage_missing(&rel)));
        }
        Ok(StoragePath::Dir {
            entries: entries.into_values().collect(),
            truncated: false,
        })
    }

    async fn storage_read(&self, owner: &UserName, path: &str) -> Result<ByteStream, BackendError> {
        let s = self.enter(Op::Storage, owner.as_str())?;
        let rel = memory_relative(path)?;
        match s.storage.get(owner).and_then(|f| f.get(&rel)) {
            Some((b, _)) => Ok(futures::stream::iter([Ok(b.clone())]).boxed()),
            None => Err(BackendError::NoSuchFile(why::storage_missing(&rel))),
        }
    }

    async fn storage_write(
        &self,
        owner: &UserName,
        path: &str,
        body: ByteStream,
    ) -> Result<i64, BackendError> {
        let rel = memory_relative(path)?;
        drop(self.enter(Op::Storage, owner.as_str())?);
        let chunks: Vec<Bytes> = body
            .try_collect()
            .await
            .map_err(|e| BackendError::Refused(why::upload_broke(&rel, e)))?;
        let bytes = Bytes::from(chunks.concat());
        let n = bytes.len() as i64;
        let mut s = self.lock();
        let files = s.storage.entry(owner.clone()).or_default();
        if files.keys().any(|p| p.starts_with(&format!("{rel}/"))) {
            return Err(BackendError::Refused(why::storage_is_dir(&rel)));
        }
        files.insert(rel, (bytes, 0));
        Ok(n)
    }

    async fn storage_remove(&self, owner: &UserName, path: &str) -> Result<(), BackendError> {
        let mut s = self.enter(Op::Storage, owner.as_str())?;
        let rel = memory_relative(path)?;
        if rel.is_empty() {
            return Err(BackendError::Policy(why::storage_root()));
        }
        let files = s.storage.entry(owner.clone()).or_default();
        let before = files.len();
        files.retain(|p, _| p != &rel && !p.starts_with(&format!("{rel}/")));
        if files.len() == before {
            return Err(BackendError::NoSuchFile(why::storage_missing(&rel)));
        }
        Ok(())
    }

    async fn storage_delete(&self, owner: &UserName) -> Result<(), BackendError> {
        let mut s = self.enter(Op::Storage, owner.as_str())?;
        if s.containers.keys().any(|k| &k.owner == owner) {
            return Err(BackendError::Refused(why::storage_in_use()));
        }
        s.storage.remove(owner);
        Ok(())
    }

    async fn image_events(
        &self,
    ) -> Result<BoxStream<'static, Result<(), BackendError>>, BackendError> {
        let mut s = self.enter(Op::ImageEvents, "")?;
        let (tx, rx) = unbounded();
        s.subscribers.push(tx);
        Ok(rx.boxed())
    }
}

/// A storage path as the docker host reads it: relative, without `.`, `..` or empty parts.
fn memory_relative(path: &str) -> Result<String, BackendError> {
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(BackendError::Policy(why::path_dotdot())),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use wm_domain::{ContainerName, GuestPort, ShortName};

    fn user(n: &str) -> UserName {
        UserName::parse(n).unwrap()
    }

    fn key(owner: &str, short: &str) -> ContainerKey {
        ContainerKey::new(&user(owner), &ShortName::parse(short).unwrap()).unwrap()
    }

    fn spec(owner: &str, short: &str, image: &str, ports: &[u16]) -> ContainerSpec {
        let owner = user(owner);
        let short_name = ShortName::parse(short).unwrap();
        ContainerSpec {
            name: ContainerName::new(&owner, &short_name).unwrap(),
            owner,
            short_name,
            image: ImageRef::parse(image).unwrap(),
            env: vec![wm_domain::EnvVar::parse("A=1").unwrap()],
            ports: ports
                .iter()
                .map(|&p| GuestPort::new(p.into()).unwrap())
                .collect(),
            limits: Limits {
                memory_bytes: 256 << 20,
                nano_cpus: 1_000_000_000,
                pids: 100,
            },
            gpus: Vec::new(),
        }
    }

    fn exec_req(cmd: &[&str]) -> ExecRequest {
        ExecRequest {
            cmd: cmd.iter().map(ToString::to_string).collect(),
            timeout_secs: 5,
            max_output_bytes: 1024,
        }
    }

    fn host() -> MemoryBackend {
        MemoryBackend::new("h1").with_tag("busybox")
    }

    #[test]
    fn a_terminal_echoes_input_and_exits_when_its_input_is_dropped() {
        use futures::SinkExt;
        let b = host();
        block_on(b.create(&spec("alice", "web", "busybox", &[]))).unwrap();
        let req = TerminalRequest {
            cmd: None,
            cols: 80,
            rows: 24,
        };
        let Terminal { mut input, output } =
            block_on(b.terminal(&key("alice", "web"), &req)).unwrap();
        block_on(async {
            input
                .send(TerminalInput::Data {
                    data: b"hi".to_vec(),
                })
                .await
                .unwrap();
            input
                .send(TerminalInput::Resize {
                    cols: 100,
                    rows: 30,
                })
                .await
                .unwrap();
        });
        drop(input);
        let out: Vec<_> = block_on(output.map(Result::unwrap).collect());
        assert_eq!(
            out,
            vec![
                TerminalOutput::Data {
                    data: b"hi".to_vec()
                },
                TerminalOutput::Data {
                    data: b"resize 100x30\r\n".to_vec()
                },
                TerminalOutput::Exit { code: Some(0) },
            ]
        );
        block_on(b.stop(&key("alice", "web"))).unwrap();
        assert!(matches!(
            block_on(b.terminal(&key("alice", "web"), &req)),
            Err(BackendError::Refused(_))
        ));
    }

    #[test]
    fn each_guest_port_gets_its_own_host_port_and_exhaustion_leaves_nothing() {
        let b = MemoryBackend::new("h1")
            .with_tag("busybox")
            .with_port_range(5000, 5004);
        let a = block_on(b.create(&spec("alice", "web", "busybox", &[80, 443]))).unwrap();
        let c = block_on(b.create(&spec("bob", "db", "busybox", &[80, 5432]))).unwrap();
        let mut hosts: Vec<u16> = a.ports.iter().chain(&c.ports).map(|p| p.host).collect();
        assert_eq!(a.ports[0].guest.get(), 80);
        assert_eq!(a.ports[1].guest.get(), 443);
        hosts.sort_unstable();
        hosts.dedup();
        assert_eq!(hosts.len(), 4, "four distinct host ports: {hosts:?}");
        assert!(hosts.iter().all(|p| (5000..=5004).contains(p)));

        // One port is left; two are asked for.
        let err = block_on(b.create(&spec("carol", "x", "busybox", &[80, 81]))).unwrap_err();
        assert!(matches!(err, BackendError::Exhausted(_)), "{err:?}");
        assert_eq!(b.used_ports().len(), 4, "no port kept by the failed create");
        assert!(matches!(
            block_on(b.inspect(&key("carol", "x"))),
            Err(BackendError::NoSuchContainer)
        ));
        assert!(
            !b.networks().contains(&user("carol")),
            "no network left behind"
        );
        assert_eq!(block_on(b.list()).unwrap().len(), 2);

        // Removing a container gives its ports back.
        block_on(b.remove(&key("alice", "web"))).unwrap();
        let d = block_on(b.create(&spec("carol", "x", "busybox", &[80, 81, 82]))).unwrap();
        let mut again: Vec<u16> = d.ports.iter().map(|p| p.host).collect();
        again.sort_unstable();
        assert!(again.iter().all(|p| !c.ports.iter().any(|q| q.host == *p)));
        assert_eq!(b.count(Op::Create), 4);
    }

    fn gpu(id: &str, share: u32) -> Gpu {
        Gpu {
            id: id.into(),
            name: format!("GPU {id}"),
            memory_bytes: Some(16 << 30),
            kind: crate::GpuKind::Nvidia,
            share,
        }
    }

    fn with_gpus(owner: &str, short: &str, gpus: &[&str]) -> ContainerSpec {
        let mut s = spec(owner, short, "busybox", &[80]);
        s.gpus = gpus.iter().map(ToString::to_string).collect();
        s
    }

    #[test]
    fn gpus_are_given_within_their_share_and_freed_by_remove() {
        let b = host().with_gpus(vec![gpu("GPU-a", 1), gpu("GPU-b", 2)]);
        let info = block_on(b.info()).unwrap();
        assert_eq!(info.gpus, vec![gpu("GPU-a", 1), gpu("GPU-b", 2)]);

        let a = block_on(b.create(&with_gpus("alice", "x", &["GPU-a", "GPU-b"]))).unwrap();
        assert_eq!(a.gpus, ["GPU-a", "GPU-b"]);
        // Stopped, it still holds them.
        block_on(b.stop(&key("alice", "x"))).unwrap();
        let err = block_on(b.create(&with_gpus("bob", "y", &["GPU-b", "GPU-a"]))).unwrap_err();
        assert_eq!(err, BackendError::Exhausted(why::gpu_in_use("GPU-a", 1, 1)));
        // Nothing left behind: no container, no port, no network, no share taken.
        assert!(matches!(
            block_on(b.inspect(&key("bob", "y"))),
            Err(BackendError::NoSuchContainer)
        ));
        assert_eq!(b.used_ports().len(), 1);
        assert!(!b.networks().contains(&user("bob")));
        let y = block_on(b.create(&with_gpus("bob", "y", &["GPU-b"]))).unwrap();
        assert_eq!(y.gpus, ["GPU-b"]);
        let err = block_on(b.create(&with_gpus("carol", "z", &["GPU-b"]))).unwrap_err();
        assert!(
            matches!(err, BackendError::Exhausted(m) if m.starts_with("GPU GPU-b is in use by 2 containers"))
        );

        for bad in [&["GPU-c"][..], &["GPU-b", "GPU-b"][..]] {
            let err = block_on(b.create(&with_gpus("carol", "z", bad))).unwrap_err();
            assert!(matches!(err, BackendError::Policy(_)), "{bad:?}: {err:?}");
        }
        assert!(matches!(
            block_on(b.inspect(&key("carol", "z"))),
            Err(BackendError::NoSuchContainer)
        ));

        let listed = block_on(b.list()).unwrap();
        let gpus_of = |short: &str| {
            listed
                .iter()
                .find(|c| c.short_name == short)
                .unwrap()
                .gpus
                .clone()
        };
        assert_eq!(gpus_of("x"), ["GPU-a", "GPU-b"]);
        assert_eq!(
            block_on(b.inspect(&key("bob", "y"))).unwrap().gpus,
            ["GPU-b"]
        );

        block_on(b.remove(&key("alice", "x"))).unwrap();
        let z = block_on(b.create(&with_gpus("carol", "z", &["GPU-a", "GPU-b"]))).unwrap();
        assert_eq!(z.gpus, ["GPU-a", "GPU-b"]);
        // Without GPUs, a container holds none.
        let plain = block_on(b.create(&spec("dave", "w", "busybox", &[]))).unwrap();
        assert!(plain.gpus.is_empty());
    }

    #[test]
    fn create_stop_start_remove() {
        let b = host();
        let k = key("alice", "web");
        let made = block_on(b.create(&spec("alice", "web", "busybox", &[80]))).unwrap();
        assert_eq!(made.state, ContainerStatus::Running);
        assert_eq!(made.name, "alice-web");
        assert_eq!(made.owner, "alice");
        assert_eq!(made.short_name, "web");
        assert_eq!(made.image, "busybox:latest");
        assert_eq!(made.env, vec!["A=1".to_string()]);
        assert_eq!(made.id.len(), 64);
        assert!(made.created_at > 1_600_000_000);

        let again = block_on(b.create(&spec("alice", "web", "busybox", &[80]))).unwrap_err();
        assert!(matches!(again, BackendError::NameTaken(_)), "{again:?}");
        let missing = block_on(b.create(&spec("alice", "db", "postgres:16", &[]))).unwrap_err();
        assert_eq!(missing, BackendError::NoSuchImage("postgres:16".into()));

        assert_eq!(block_on(b.stop(&k)).unwrap().state, ContainerStatus::Exited);
        assert_eq!(
            block_on(b.inspect(&k)).unwrap().state,
            ContainerStatus::Exited
        );
        let started = block_on(b.start(&k)).unwrap();
        assert_eq!(started.state, ContainerStatus::Running);
        assert_eq!(started.ports, made.ports, "a restart keeps the ports");

        block_on(b.remove(&k)).unwrap();
        block_on(b.remove(&k)).unwrap();
        for r in [
            block_on(b.inspect(&k)),
            block_on(b.start(&k)),
            block_on(b.stop(&k)),
        ] {
            assert_eq!(r.unwrap_err(), BackendError::NoSuchContainer);
        }
        assert!(block_on(b.list()).unwrap().is_empty());
        assert!(b.used_ports().is_empty());
    }

    #[test]
    fn exec_logs_and_upload() {
        let b = host();
        let k = key("alice", "web");
        block_on(b.create(&spec("alice", "web", "busybox", &[]))).unwrap();

        let out = block_on(b.exec(&k, &exec_req(&["echo", "hi", "there"]))).unwrap();
        assert_eq!(out.stdout, "echo hi there\n");
        assert_eq!(out.exit_code, Some(0));
        assert!(!out.truncated && !out.timed_out);
        let mut short = exec_req(&["abcdef"]);
        short.max_output_bytes = 3;
        let out = block_on(b.exec(&k, &short)).unwrap();
        assert_eq!((out.stdout.as_str(), out.truncated), ("abc", true));

        b.add_log(&k, "one").unwrap();
        b.add_log(&k, "two").unwrap();
        b.add_log(&k, "three").unwrap();
        assert_eq!(
            block_on(b.logs(&k, 2)).unwrap(),
            Bytes::from("two\nthree\n")
        );

        let tar = stream::iter([Ok(Bytes::from("ab")), Ok(Bytes::from("cd"))]).boxed();
        block_on(b.upload(&k, "/srv", tar)).unwrap();
        assert_eq!(
            b.uploads_to(&k),
            vec![("/srv".to_string(), Bytes::from("abcd"))]
        );

        block_on(b.stop(&k)).unwrap();
        let refused = block_on(b.exec(&k, &exec_req(&["true"]))).unwrap_err();
        match refused {
            BackendError::Refused(m) => {
                assert!(
                    m.starts_with("Container ") && m.ends_with(" is not running"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(b.execs().len(), 2, "the refused exec did not run");
        assert_eq!(b.count(Op::Exec), 3);

        let gone = key("alice", "nope");
        assert_eq!(
            block_on(b.exec(&gone, &exec_req(&["true"]))).unwrap_err(),
            BackendError::NoSuchContainer
        );
        assert_eq!(
            block_on(b.logs(&gone, 10)).unwrap_err(),
            BackendError::NoSuchContainer
        );
        let tar = stream::iter([Ok(Bytes::from("x"))]).boxed();
        assert_eq!(
            block_on(b.upload(&gone, "/", tar)).unwrap_err(),
            BackendError::NoSuchContainer
        );
    }

    #[test]
    fn images_by_tag_id_and_short_id() {
        let b = MemoryBackend::new("h1");
        let seeded = b.add_image(ImageInfo {
            id: String::new(),
            tags: vec![
                "busybox".into(),
                "registry.example:5000/alice/tools:1".into(),
            ],
            owner: None,
            size: 10,
            created_at: 1,
            on_build: vec!["RUN true".into()],
            foreign: false,
        });
        assert!(seeded.id.starts_with("sha256:") && seeded.id.len() == 71);
        assert_eq!(seeded.tags[0], "busybox:latest");

        let find = |r: &str| block_on(b.image(r)).unwrap().map(|i| i.id);
        let id = Some(seeded.id.clone());
        assert_eq!(find("busybox"), id);
        assert_eq!(find("busybox:latest"), id);
        assert_eq!(find("docker.io/library/busybox:latest"), id);
        assert_eq!(find("registry.example:5000/alice/tools:1"), id);
        assert_eq!(find(&seeded.id), id);
        assert_eq!(find(&seeded.id[7..19]), id, "the short id");
        assert_eq!(find(&format!("sha256:{}", &seeded.id[7..19])), id);
        assert_eq!(find("busybox:1.36"), None);
        assert_eq!(find("0123456789ab"), None);
        assert_eq!(
            block_on(b.image("busybox")).unwrap().unwrap().on_build,
            vec!["RUN true".to_string()]
        );
        let listed = block_on(b.images()).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].on_build.is_empty(), "only `image` fills on_build");

        // A pull adds an image the host did not have.
        let r = ImageRef::parse("alpine:3").unwrap();
        let steps: Vec<_> = block_on(block_on(b.pull(&r, None)).unwrap().collect::<Vec<_>>());
        assert!(steps.iter().all(Result::is_ok) && steps.len() > 1);
        let pulled = block_on(b.image("alpine:3")).unwrap().unwrap();
        assert_eq!(
            (pulled.owner, pulled.tags),
            (None, vec!["alpine:3".to_string()])
        );

        // A build tags its result with its owner.
        let req = BuildRequest {
            tag: ImageRef::parse("localhost:5000/alice/web:2").unwrap(),
            owner: user("alice"),
            build_args: Vec::new(),
            limits: Limits {
                memory_bytes: 1 << 30,
                nano_cpus: 1_000_000_000,
                pids: 100,
            },
            max_image_bytes: None,
        };
        let steps = block_on(
            block_on(b.build(&req, Bytes::from_static(b"ctx")))
                .unwrap()
                .collect::<Vec<_>>(),
        );
        assert!(steps.iter().any(
            |p| matches!(p, Ok(Progress::Log { line }) if line.contains("Successfully tagged"))
        ));
        let built = block_on(b.image("localhost:5000/alice/web:2"))
            .unwrap()
            .unwrap();
        assert_eq!(built.owner.as_deref(), Some("alice"));
        assert_eq!(block_on(b.images()).unwrap().len(), 3);
        assert!(block_on(b.save_image("alpine:3")).is_ok());
        assert!(block_on(b.image_filesystem("alpine:3")).is_ok());
        assert_eq!(
            block_on(b.image_filesystem("nope:1")).err(),
            Some(BackendError::NoSuchImage("nope:1".into()))
        );
        assert!(matches!(
            block_on(b.save_image("nope:1")),
            Err(BackendError::NoSuchImage(_))
        ));
    }

    #[test]
    fn remove_image_is_refused_while_a_container_uses_it() {
        let b = host();
        let r = ImageRef::parse("busybox").unwrap();
        let k = key("alice", "web");
        block_on(b.create(&spec("alice", "web", "busybox", &[]))).unwrap();
        block_on(b.stop(&k)).unwrap();
        let err = block_on(b.remove_image(&r)).unwrap_err();
        assert!(matches!(err, BackendError::Refused(_)), "{err:?}");
        assert!(
            block_on(b.image("busybox")).unwrap().is_some(),
            "still there"
        );

        block_on(b.remove(&k)).unwrap();
        block_on(b.remove_image(&r)).unwrap();
        assert!(block_on(b.image("busybox")).unwrap().is_none());
        assert!(block_on(b.images()).unwrap().is_empty());
        assert!(matches!(
            block_on(b.remove_image(&r)),
            Err(BackendError::NoSuchImage(_))
        ));
    }

    #[test]
    fn image_events_yield_on_changes() {
        let b = MemoryBackend::new("h1");
        let mut events = block_on(b.image_events()).unwrap();
        b.add_image(ImageInfo {
            id: String::new(),
            tags: vec!["a:1".into()],
            owner: None,
            size: 1,
            created_at: 1,
            on_build: Vec::new(),
            foreign: false,
        });
        assert_eq!(block_on(events.next()), Some(Ok(())));
        b.set_unavailable(Some("gone".into()));
        assert_eq!(
            block_on(events.next()),
            Some(Err(BackendError::Unavailable("gone".into())))
        );
        assert_eq!(
            block_on(events.next()),
            None,
            "the stream ends with the host"
        );
    }

    #[test]
    fn an_unavailable_host_answers_unavailable_until_it_is_back() {
        let b = host();
        let k = key("alice", "web");
        block_on(b.create(&spec("alice", "web", "busybox", &[80]))).unwrap();
        b.set_unavailable(Some("connection refused".into()));
        let down = BackendError::Unavailable("connection refused".into());
        assert_eq!(block_on(b.info()).unwrap_err(), down);
        assert_eq!(block_on(b.inspect(&k)).unwrap_err(), down);
        assert_eq!(block_on(b.list()).unwrap_err(), down);
        assert_eq!(block_on(b.remove(&k)).unwrap_err(), down);
        assert_eq!(block_on(b.image("busybox")).unwrap_err(), down);
        assert_eq!(
            block_on(b.create(&spec("bob", "x", "busybox", &[]))).unwrap_err(),
            down
        );
        b.set_unavailable(None);
        assert_eq!(
            block_on(b.list()).unwrap().len(),
            1,
            "nothing changed while down"
        );
        assert_eq!(b.count(Op::Create), 2, "calls are counted also when down");

        // A one-off failure of one operation.
        b.fail_next(Op::Stop, BackendError::Engine("boom".into()));
        assert_eq!(
            block_on(b.stop(&k)).unwrap_err(),
            BackendError::Engine("boom".into())
        );
        assert_eq!(block_on(b.stop(&k)).unwrap().state, ContainerStatus::Exited);
    }

    #[test]
    fn info_reports_labels_address_and_committed_memory() {
        let b = host()
            .with_labels(["gpu"])
            .with_address("h1.example")
            .with_memory_total(8 << 30);
        block_on(b.create(&spec("alice", "web", "busybox", &[]))).unwrap();
        block_on(b.create(&spec("bob", "web", "busybox", &[]))).unwrap();
        block_on(b.stop(&key("bob", "web"))).unwrap();
        let info = block_on(b.info()).unwrap();
        assert_eq!(info.labels, vec!["gpu".to_string()]);
        assert_eq!(info.address.as_deref(), Some("h1.example"));
        assert_eq!(info.memory_total, 8 << 30);
        assert_eq!(info.containers_running, 1);
        assert_eq!(info.memory_committed, 256 << 20);
        assert_eq!(b.host_name(), "h1");
    }

    #[test]
    fn networks_go_when_their_owner_has_nothing_left() {
        let b = host();
        block_on(b.create(&spec("alice", "web", "busybox", &[]))).unwrap();
        block_on(b.create(&spec("alice", "db", "busybox", &[]))).unwrap();
        block_on(b.create(&spec("bob", "web", "busybox", &[]))).unwrap();
        assert_eq!(b.networks(), vec![user("alice"), user("bob")]);

        block_on(b.remove(&key("alice", "web"))).unwrap();
        block_on(b.remove_network_if_unused(&user("alice"))).unwrap();
        assert_eq!(
            b.networks(),
            vec![user("alice"), user("bob")],
            "alice/db is left"
        );

        block_on(b.remove(&key("alice", "db"))).unwrap();
        block_on(b.remove_network_if_unused(&user("alice"))).unwrap();
        block_on(b.remove_network_if_unused(&user("alice"))).unwrap();
        assert_eq!(b.networks(), vec![user("bob")]);

        // A runner keeps its owner's network until it goes.
        let runner = RunnerSpec {
            owner: user("carol"),
            image: "busybox".into(),
            config_toml: "concurrent = 1".into(),
            limits: Limits {
                memory_bytes: 1 << 30,
                nano_cpus: 1_000_000_000,
                pids: 100,
            },
        };
        let r = block_on(b.put_runner(&runner)).unwrap();
        assert_eq!(r.state, ContainerStatus::Running);
        assert_eq!(
            block_on(b.runner(&user("carol"))).unwrap().unwrap().id,
            r.id
        );
        block_on(b.remove_network_if_unused(&user("carol"))).unwrap();
        assert!(b.networks().contains(&user("carol")));
        block_on(b.remove_runner(&user("carol"))).unwrap();
        assert!(block_on(b.runner(&user("carol"))).unwrap().is_none());
        assert_eq!(b.networks(), vec![user("bob")]);
    }
}
