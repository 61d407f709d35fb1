//! The interface between the console and whatever runs containers.
//!
//! Requests and answers are plain serializable data, so the same interface can be served
//! in-process (`wm serve`) or by a docker agent on another host over HTTP. Nothing in a
//! [`ContainerSpec`] can ask for privileges: hardening is the backend's own policy, not a
//! request field, so a compromised console cannot weaken it.

// An in-memory host for tests and benchmarks (feature `memory`, off by default).
#[cfg(feature = "memory")]
pub mod memory;
pub mod ports;
pub mod vm;
pub mod why;

pub use why::Why;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use wm_domain::{
    ContainerKey, ContainerName, ContainerStatus, EnvVar, GuestPort, ImageRef, ShortName, UserName,
};

/// Resource limits of one container. The backend refuses limits above its own ceilings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: i64,
    /// CPU time in billionths of a CPU (Docker's `NanoCpus`): 1_000_000_000 is one core.
    pub nano_cpus: i64,
    pub pids: i64,
}

/// A guest port and the host port it is published on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    pub guest: GuestPort,
    pub host: u16,
}

/// Everything needed to create and start one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: ContainerName,
    pub owner: UserName,
    pub short_name: ShortName,
    pub image: ImageRef,
    pub env: Vec<EnvVar>,
    /// Guest ports to publish; the host picks a free host port for each from its own
    /// range (the answer's `ports` says which).
    pub ports: Vec<GuestPort>,
    pub limits: Limits,
    /// The ids (from the host's [`HostInfo::gpus`]) of the GPUs the container is given;
    /// the console chooses them.
    #[serde(default)]
    pub gpus: Vec<String>,
}

impl ContainerSpec {
    /// The container's identity.
    pub fn key(&self) -> ContainerKey {
        ContainerKey {
            owner: self.owner.clone(),
            short: self.short_name.clone(),
        }
    }
}

/// A container of ours as found on a host: enough to reconcile the console's database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    /// The engine's name for it (which depends on the version that made it: look
    /// containers up by `owner` and `short_name`, never by this).
    pub name: String,
    /// The `wm.owner` label.
    pub owner: String,
    /// The `wm.name` label: the short name.
    #[serde(default)]
    pub short_name: String,
    pub image: String,
    /// One of the states an engine reports: created, running, paused, restarting,
    /// exited or dead.
    pub state: ContainerStatus,
    pub ports: Vec<PortBinding>,
    pub env: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// The ids of the GPUs it was given (its `wm.gpus` label).
    #[serde(default)]
    pub gpus: Vec<String>,
}

/// An image as a host knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageInfo {
    pub id: String,
    pub tags: Vec<String>,
    /// The `wm.owner` label, when the image is this installation's (its `wm.instance`).
    pub owner: Option<String>,
    pub size: i64,
    pub created_at: i64,
    /// The `ONBUILD` triggers a build `FROM` this image runs (as `docker inspect` shows
    /// them), for the build's checks. Filled by [`ContainerBackend::image`] only.
    #[serde(default)]
    pub on_build: Vec<String>,
    /// Marked as somebody's without being this installation's: another installation's
    /// `wm.instance`, or an owner label (`wm.owner`, `wm.managed`, `wm.name`) without our
    /// instance. Such an image is nobody's to use here, whatever its name.
    #[serde(default)]
    pub foreign: bool,
}

/// One sample of a container's activity counters, all cumulative since it started: two
/// samples taken some time apart tell how busy it was in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// CPU time used, in nanoseconds.
    pub cpu_nanos: u64,
    /// Bytes received on its networks.
    pub rx_bytes: u64,
    /// Bytes sent on its networks.
    pub tx_bytes: u64,
    /// Memory in use now (not cumulative), when the host says; an older agent does not.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// A command to run in a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub timeout_secs: u64,
    /// Output beyond this many bytes per stream is dropped and `truncated` is set.
    pub max_output_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecOutput {
    /// `None` when the command did not finish within the time limit.
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub truncated: bool,
}

/// An interactive session's start: a command under a terminal of this size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TerminalRequest {
    /// `None`: the image's `bash` when it has one, else `sh`.
    pub cmd: Option<Vec<String>>,
    pub cols: u16,
    pub rows: u16,
}

/// What a session's client sends: keyboard input, or a new window size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TerminalInput {
    Data { data: Vec<u8> },
    Resize { cols: u16, rows: u16 },
}

/// What a session sends back: terminal output, then once its exit status (`None` when
/// the engine does not know it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TerminalOutput {
    Data { data: Vec<u8> },
    Exit { code: Option<i64> },
}

/// A running interactive session. Dropping `input` ends it: every process it started is
/// killed. `output` ends after its [`TerminalOutput::Exit`], or with an error.
pub struct Terminal {
    pub input: futures::channel::mpsc::Sender<TerminalInput>,
    pub output: BoxStream<'static, Result<TerminalOutput, BackendError>>,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Terminal")
    }
}

/// Credentials for one registry.
#[derive(Clone, Serialize, Deserialize)]
pub struct RegistryAuth {
    pub server: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One step of a long operation (pull, build).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Progress {
    /// A layer being downloaded or extracted.
    Layer {
        id: String,
        status: String,
        current: Option<i64>,
        total: Option<i64>,
    },
    /// A status line without a layer ("Pulling from library/busybox", "Digest: ...").
    Status { status: String },
    /// Output of a build step.
    Log { line: String },
}

pub type ProgressStream = BoxStream<'static, Result<Progress, BackendError>>;

/// An image build: the whole policy (tag, labels, limits) is decided by the caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRequest {
    /// The full reference the result is tagged with.
    pub tag: ImageRef,
    pub owner: UserName,
    pub build_args: Vec<(String, String)>,
    /// Memory, CPU and processes of each `RUN` step, as for a container.
    pub limits: Limits,
    /// The largest result: a bigger image is removed and the build ends with an error.
    #[serde(default)]
    pub max_image_bytes: Option<i64>,
}

/// A user's CI runner: a GitLab Runner container with a generated configuration.
#[derive(Clone, Serialize, Deserialize)]
pub struct RunnerSpec {
    pub owner: UserName,
    pub image: String,
    /// The runner's `config.toml`; it holds the runner token.
    pub config_toml: String,
    pub limits: Limits,
}

impl std::fmt::Debug for RunnerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerSpec")
            .field("owner", &self.owner)
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunnerState {
    pub id: String,
    pub image: String,
    /// One of the states an engine reports: created, running, paused, restarting,
    /// exited or dead.
    pub state: ContainerStatus,
}

/// What a host reports of itself: for `/healthz`, the admin page and placement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostInfo {
    pub version: String,
    pub api_version: String,
    /// Where users reach the host's published ports (a host name or address), when the
    /// host is configured with one; otherwise the console uses the address it reaches
    /// the host at.
    pub address: Option<String>,
    /// What the host offers that a container or a role may require (`gpu`, ...).
    pub labels: Vec<String>,
    /// The host's memory, in bytes.
    pub memory_total: i64,
    /// The memory limits of its running lent containers, summed, in bytes.
    pub memory_committed: i64,
    /// Lent containers running on it.
    pub containers_running: u64,
    /// The GPUs it lends: discovered with `nvidia-smi`, or declared in its settings.
    #[serde(default)]
    pub gpus: Vec<Gpu>,
    /// Where every container finds its owner's storage on this host (`/data`); `None`
    /// when the host keeps no storage for users.
    #[serde(default)]
    pub storage_path: Option<String>,
    /// Whether the host lends virtual machines too (its agent serves libvirt).
    #[serde(default)]
    pub vms: bool,
}

/// What a path in a user's storage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    /// Made by a container; listed, never followed.
    Symlink,
    /// Anything else (a socket, a FIFO): listed, never read.
    Other,
}

/// One entry of a directory in a user's storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FileKind,
    /// Bytes (0 for anything but a file).
    pub size: i64,
    /// Unix seconds.
    pub modified: i64,
}

/// A path in a user's storage, as [`ContainerBackend::storage_stat`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StoragePath {
    /// A directory and its entries, by name; `truncated` when there were more than the
    /// host lists at once.
    Dir {
        entries: Vec<FileEntry>,
        truncated: bool,
    },
    File {
        size: i64,
        modified: i64,
    },
}

/// One GPU of a host, as its inventory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// Stable on the host: an NVIDIA GPU's UUID (`GPU-...`), or the id a declared GPU is
    /// given in the host's configuration.
    pub id: String,
    /// What people call it (`NVIDIA A100-SXM4-40GB`, `AMD Radeon ...`).
    pub name: String,
    /// Its memory in bytes, when known.
    pub memory_bytes: Option<i64>,
    /// How a container is given it.
    pub kind: GpuKind,
    /// How many containers may hold it at once: 1 is exclusive.
    pub share: u32,
}

/// How a GPU is given to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GpuKind {
    /// An NVIDIA device request naming the GPU by UUID (never by `count`, which gives
    /// every container the first GPU).
    Nvidia,
    /// Device nodes mapped into the container (AMD: `/dev/kfd` and `/dev/dri/renderD*`;
    /// Intel: `/dev/dri/renderD*`).
    Devices { paths: Vec<String> },
}

/// Why a backend call failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BackendError {
    /// The engine cannot be reached or did not answer in time.
    #[error("the container engine is unavailable: {0}")]
    Unavailable(Why),
    #[error("no such container")]
    NoSuchContainer,
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// A path that does not exist, or is not what the call needs (in the user's storage or
    /// in a container).
    #[error("{0}")]
    NoSuchFile(Why),
    /// The host is up but has no room: no free host port left in its range.
    #[error("{0}")]
    Exhausted(Why),
    /// A container (or a network) of that name, not ours to use, already exists on the host.
    #[error("{0} already exists on the host")]
    NameTaken(String),
    /// A user's storage could not be prepared or used; the message says what failed, in
    /// words for the user (no host paths).
    #[error("{0}")]
    Storage(Why),
    /// The request breaks the backend's own policy (limits above its ceilings, ...).
    #[error("refused by the host's policy: {0}")]
    Policy(Why),
    /// The engine refused the request for a reason the user can act on: the engine's
    /// text, or the backend's own sentence (with its key).
    #[error("{0}")]
    Refused(Why),
    #[error("container engine error: {0}")]
    Engine(String),
}

impl BackendError {
    /// The sentence it carries for the user, when it carries one.
    pub fn why(&self) -> Option<&Why> {
        match self {
            BackendError::Unavailable(w)
            | BackendError::NoSuchFile(w)
            | BackendError::Exhausted(w)
            | BackendError::Storage(w)
            | BackendError::Policy(w)
            | BackendError::Refused(w) => Some(w),
            BackendError::NoSuchContainer
            | BackendError::NoSuchImage(_)
            | BackendError::NameTaken(_)
            | BackendError::Engine(_) => None,
        }
    }
}

pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// The operations the console needs from a container host, and nothing more.
///
/// # Guarantees
/// Every object created carries the labels `wm.managed`, `wm.owner`, `wm.name` and
/// `wm.instance` (a scan's container, which is nobody's, `wm.managed`, `wm.instance` and
/// `wm.kind`); `remove` and `remove_network_if_unused` may be repeated.
#[async_trait]
pub trait ContainerBackend: Send + Sync {
    /// Which host this is (`Container.host`).
    fn host_name(&self) -> &str;
    async fn info(&self) -> Result<HostInfo, BackendError>;
    /// The image by reference or id, or `None` when the host does not have it.
    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, BackendError>;
    /// Creates the container in its owner's network (made on demand), with a host port
    /// from the host's range for each guest port, and starts it.
    ///
    /// # Errors
    /// [`BackendError::Exhausted`] when the host's range has no free port left, or a GPU of
    /// `spec.gpus` is held by as many containers as its share; [`BackendError::Policy`] for
    /// a GPU the host does not have. Nothing is left behind.
    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerState, BackendError>;
    async fn start(&self, name: &ContainerKey) -> Result<ContainerState, BackendError>;
    async fn stop(&self, name: &ContainerKey) -> Result<ContainerState, BackendError>;
    /// Removes the container; a container that is already gone is not an error.
    async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError>;
    /// Removes the owner's network when no container is left in it.
    async fn remove_network_if_unused(&self, owner: &UserName) -> Result<(), BackendError>;
    async fn inspect(&self, name: &ContainerKey) -> Result<ContainerState, BackendError>;
    /// A one-shot sample of the container's activity counters (CPU time, network bytes).
    ///
    /// # Errors
    /// [`BackendError::NoSuchContainer`] when the host does not have it.
    async fn activity(&self, name: &ContainerKey) -> Result<Activity, BackendError>;
    /// Every container of this installation on the host.
    async fn list(&self) -> Result<Vec<ContainerState>, BackendError>;
    /// The containers of one owner on the host: what [`list`](Self::list) answers for
    /// them, without the others' (one student's list need not carry the whole host's).
    async fn list_of(&self, owner: &UserName) -> Result<Vec<ContainerState>, BackendError> {
        let mut all = self.list().await?;
        all.retain(|c| c.owner == owner.as_str());
        Ok(all)
    }
    async fn exec(
        &self,
        name: &ContainerKey,
        req: &ExecRequest,
    ) -> Result<ExecOutput, BackendError>;
    /// Starts an interactive session (a TTY) in the running container, as its user and
    /// with no more privileges than the container has.
    async fn terminal(
        &self,
        name: &ContainerKey,
        req: &TerminalRequest,
    ) -> Result<Terminal, BackendError>;
    /// Extracts a tar archive into `dir`, which must exist in the container.
    ///
    /// # Errors
    /// [`BackendError::NoSuchFile`] when `dir` does not exist or is not a directory.
    async fn upload(
        &self,
        name: &ContainerKey,
        dir: &str,
        tar: ByteStream,
    ) -> Result<(), BackendError>;
    /// A tar archive of `path` in the container (a file, or a directory with everything
    /// in it), as the engine reads it: symbolic links resolve inside the container.
    ///
    /// # Errors
    /// [`BackendError::NoSuchFile`] when the path does not exist.
    async fn download(&self, name: &ContainerKey, path: &str) -> Result<ByteStream, BackendError>;
    /// The last `tail` lines of the container's output, stdout and stderr interleaved.
    async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<Bytes, BackendError>;
    /// The last `tail` lines, then what the container writes until it stops (or the
    /// stream is dropped).
    async fn follow_logs(&self, name: &ContainerKey, tail: u32)
        -> Result<ByteStream, BackendError>;
    /// Every tagged image on the host.
    async fn images(&self) -> Result<Vec<ImageInfo>, BackendError>;
    /// Removes one reference (the image goes with its last reference). Never forced.
    ///
    /// # Errors
    /// [`BackendError::Refused`] while a container uses it.
    async fn remove_image(&self, reference: &ImageRef) -> Result<(), BackendError>;
    /// Pulls an image; the stream ends with the pull, or with its error.
    async fn pull(
        &self,
        image: &ImageRef,
        auth: Option<RegistryAuth>,
    ) -> Result<ProgressStream, BackendError>;
    /// Builds from a context (a tar, optionally gzipped, with a `Dockerfile`). The result is
    /// tagged only when the build succeeds; dropping the stream cancels the build.
    async fn build(
        &self,
        req: &BuildRequest,
        context: Bytes,
    ) -> Result<ProgressStream, BackendError>;
    /// `docker save` of one image: a docker-archive tar, streamed.
    ///
    /// # Errors
    /// [`BackendError::NoSuchImage`] when the host does not have it.
    async fn save_image(&self, reference: &str) -> Result<ByteStream, BackendError>;
    /// The flattened file system of an image, as a tar stream: what a container from it
    /// would see, for a scanner. Nothing of the image runs: the host makes a container
    /// that is never started (labelled `wm.kind=image-scan`, no network, no capabilities),
    /// exports it, and removes it when the stream ends or is dropped.
    ///
    /// # Errors
    /// [`BackendError::NoSuchImage`] when the host does not have it.
    async fn image_filesystem(&self, reference: &str) -> Result<ByteStream, BackendError>;
    /// Starts the owner's runner with `spec`, replacing the one they had.
    async fn put_runner(&self, spec: &RunnerSpec) -> Result<RunnerState, BackendError>;
    /// The owner's runner, if they have one.
    async fn runner(&self, owner: &UserName) -> Result<Option<RunnerState>, BackendError>;
    /// Removes the owner's runner; none is not an error.
    async fn remove_runner(&self, owner: &UserName) -> Result<(), BackendError>;
    /// Bytes in the owner's storage on this host (0 before it is first used).
    ///
    /// Every `storage_*` path is relative to the storage's root (`""` is the root): no
    /// symbolic link in it is followed and nothing outside the storage is reached, whatever
    /// a container made in it.
    async fn storage_usage(&self, owner: &UserName) -> Result<i64, BackendError>;
    /// A directory's entries, or a file's size.
    ///
    /// # Errors
    /// [`BackendError::NoSuchFile`] for a path that does not exist or goes through a
    /// symbolic link.
    async fn storage_stat(&self, owner: &UserName, path: &str)
        -> Result<StoragePath, BackendError>;
    /// A file's bytes.
    async fn storage_read(&self, owner: &UserName, path: &str) -> Result<ByteStream, BackendError>;
    /// Writes a file (replacing one of that name), making its missing directories;
    /// answers the bytes written. A stream that fails leaves no file behind.
    async fn storage_write(
        &self,
        owner: &UserName,
        path: &str,
        body: ByteStream,
    ) -> Result<i64, BackendError>;
    /// Removes a file, a symbolic link (not what it points to) or a directory with
    /// everything in it. Never the root.
    async fn storage_remove(&self, owner: &UserName, path: &str) -> Result<(), BackendError>;
    /// Removes the owner's storage on this host with everything in it; none is not an
    /// error.
    ///
    /// # Errors
    /// [`BackendError::Refused`] while a container uses it.
    async fn storage_delete(&self, owner: &UserName) -> Result<(), BackendError>;
    /// A stream that yields whenever an image is pulled, built, tagged, untagged or removed
    /// on the host.
    async fn image_events(
        &self,
    ) -> Result<BoxStream<'static, Result<(), BackendError>>, BackendError>;
}
