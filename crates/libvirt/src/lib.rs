//! The VM backend: libvirt's system daemon, reached by running `virsh` (no C bindings to
//! build), with disks made and checked by `qemu-img`.
//!
//! Layout under the storage directory, every name a parsed user or short name:
//! `images/<owner>/<name>` (uploaded images, checked by [`image::inspect`]) and
//! `vms/<owner>/<name>/` (the VM's own overlay `disk.qcow2`, its serial socket and
//! transcript). The directories are `0711` so that QEMU, running as libvirt's own user,
//! can reach the files libvirt labels for it, and nobody can list them.
//!
//! Domains are named `<instance>.<owner>.<name>` and carry our metadata ([`xml::NS`]), so
//! [`Libvirt::list`] finds them again after any restart.

pub mod image;
mod xml;

pub use xml::NS;

use async_trait::async_trait;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use wm_backend::ports::PortPool;
use wm_backend::vm::{DiskInfo, Forward, FoundVm, VmBackend, VmImageKey, VmSpec, VmState};
use wm_backend::{BackendError, Terminal, TerminalInput, TerminalOutput, Why};
use wm_domain::ContainerKey;

/// Where and how this host runs VMs.
#[derive(Clone)]
pub struct LibvirtSettings {
    /// `qemu:///system`.
    pub uri: String,
    /// `kvm`, or `qemu` for software emulation.
    pub domain_type: String,
    /// Where images and VM disks live.
    pub storage_dir: PathBuf,
    /// The installation's name, first part of every domain's name.
    pub instance: String,
    /// The host address forwarded ports listen on.
    pub publish_address: String,
    /// Where forwarded ports are lent from: the pool of the host's containers, so that a
    /// VM and a container never get one port.
    pub ports: Arc<PortPool>,
}

/// The default domain type: `kvm` where `/dev/kvm` exists, else `qemu`.
pub fn default_domain_type() -> &'static str {
    if Path::new("/dev/kvm").exists() {
        "kvm"
    } else {
        "qemu"
    }
}

/// One libvirt host.
pub struct Libvirt {
    settings: LibvirtSettings,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How many times a define tries other host ports when some are held by another program.
const PORT_ATTEMPTS: usize = 8;

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(e.to_string().into())
}

fn io(what: &str, e: std::io::Error) -> BackendError {
    BackendError::Engine(format!("{what}: {e}"))
}

impl Libvirt {
    pub fn new(settings: LibvirtSettings) -> Self {
        Self { settings }
    }

    /// Whether the daemon answers; the error says why not.
    pub async fn check(&self) -> Result<(), BackendError> {
        self.virsh(&["version"]).await.map(|_| ())
    }

    fn domain(&self, key: &ContainerKey) -> String {
        format!(
            "{}.{}.{}",
            self.settings.instance,
            key.owner.as_str(),
            key.short.as_str()
        )
    }

    fn image_path(&self, key: &VmImageKey) -> PathBuf {
        self.settings
            .storage_dir
            .join("images")
            .join(key.owner.as_str())
            .join(key.name.as_str())
    }

    fn vm_dir(&self, key: &ContainerKey) -> PathBuf {
        self.settings
            .storage_dir
            .join("vms")
            .join(key.owner.as_str())
            .join(key.short.as_str())
    }

    async fn virsh(&self, args: &[&str]) -> Result<String, BackendError> {
        let out = tokio::time::timeout(
            CALL_TIMEOUT,
            tokio::process::Command::new("virsh")
                .arg("-q")
                .arg("-c")
                .arg(&self.settings.uri)
                .args(args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| unavailable("virsh did not answer in time"))?
        .map_err(|e| unavailable(format!("cannot run virsh: {e}")))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if err.contains("Domain not found") || err.contains("failed to get domain") {
            return Err(BackendError::NoSuchContainer);
        }
        if err.contains("failed to connect") || err.contains("Failed to connect") {
            return Err(unavailable(err));
        }
        Err(BackendError::Engine(format!("virsh {}: {err}", args[0])))
    }

    /// Makes `dir` and its parents up to the storage directory, each `0711`.
    async fn make_dir(&self, dir: &Path) -> Result<(), BackendError> {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io("cannot make a VM directory", e))?;
        let mut d = dir;
        loop {
            tokio::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))
                .await
                .map_err(|e| io("cannot set a VM directory's mode", e))?;
            if d == self.settings.storage_dir {
                break;
            }
            match d.parent() {
                Some(p) if p.starts_with(&self.settings.storage_dir) => d = p,
                _ => break,
            }
        }
        Ok(())
    }

    /// `count` ports from the pool for the domain `name` that no other program holds now
    /// (those found held are skipped for a while, as for containers).
    fn lend_free(&self, name: &str, count: usize) -> Result<Vec<u16>, BackendError> {
        let pool = &self.settings.ports;
        for _ in 0..PORT_ATTEMPTS {
            let ports = pool
                .lend_kept(name, count)
                .map_err(BackendError::Exhausted)?;
            let held: Vec<u16> = ports
                .iter()
                .copied()
                .filter(|p| {
                    std::net::TcpListener::bind(format!("{}:{p}", self.settings.publish_address))
                        .is_err()
                })
                .collect();
            if held.is_empty() {
                return Ok(ports);
            }
            tracing::info!(
                domain = name,
                ?held,
                "host ports held by another program; trying others"
            );
            pool.release(name);
            pool.mark_busy(&held);
        }
        Err(BackendError::Unavailable(wm_backend::why::ports_held()))
    }

    /// The VM's disk and domain, with these forwards; on failure nothing is left.
    async fn define_with(
        &self,
        spec: &VmSpec,
        name: &str,
        forwards: &[Forward],
    ) -> Result<(), BackendError> {
        let image = self.image_path(&spec.image);
        let dir = self.vm_dir(&spec.key);
        self.make_dir(&dir).await?;
        let disk = dir.join("disk.qcow2");
        let _ = tokio::fs::remove_file(&disk).await;
        // The backing format is given, never probed: a raw image stays raw.
        self.qemu_img(&[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-F".as_ref(),
            spec.image_format.as_str().as_ref(),
            "-b".as_ref(),
            image.as_os_str(),
            disk.as_os_str(),
        ])
        .await?;
        let (disk_s, sock, log) = (
            disk.display().to_string(),
            dir.join("serial.sock").display().to_string(),
            dir.join("console.log").display().to_string(),
        );
        let xml = xml::domain_xml(
            spec,
            &xml::HostPart {
                domain_name: name,
                domain_type: &self.settings.domain_type,
                instance: &self.settings.instance,
                disk: &disk_s,
                serial_socket: &sock,
                serial_log: &log,
                publish_address: &self.settings.publish_address,
                forwards,
            },
        );
        let file = dir.join("domain.xml");
        tokio::fs::write(&file, xml)
            .await
            .map_err(|e| io("cannot write the domain", e))?;
        let defined = self.virsh(&["define", &file.display().to_string()]).await;
        let _ = tokio::fs::remove_file(&file).await;
        if let Err(e) = defined {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e);
        }
        Ok(())
    }

    async fn qemu_img(&self, args: &[&std::ffi::OsStr]) -> Result<(), BackendError> {
        let out = tokio::process::Command::new("qemu-img")
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| unavailable(format!("cannot run qemu-img: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(BackendError::Engine(format!(
                "qemu-img: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

#[async_trait]
impl VmBackend for Libvirt {
    async fn import_image(&self, key: &VmImageKey, file: &Path) -> Result<DiskInfo, BackendError> {
        let info = image::inspect(file).await.map_err(|e| match e {
            image::ImageError::Refused(m) => BackendError::Refused(m),
            image::ImageError::Tool(m) => BackendError::Engine(m),
        })?;
        let dest = self.image_path(key);
        let dir = dest.parent().expect("under the storage directory");
        self.make_dir(dir).await?;
        if tokio::fs::rename(file, &dest).await.is_err() {
            // Another file system: copy, then drop the upload.
            tokio::fs::copy(file, &dest)
                .await
                .map_err(|e| io("cannot keep the image", e))?;
            let _ = tokio::fs::remove_file(file).await;
        }
        Ok(info)
    }

    async fn remove_image(&self, key: &VmImageKey) -> Result<(), BackendError> {
        match tokio::fs::remove_file(self.image_path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove the image", e)),
        }
    }

    async fn define(&self, spec: &VmSpec) -> Result<Vec<Forward>, BackendError> {
        let image = self.image_path(&spec.image);
        if !image.exists() {
            return Err(BackendError::NoSuchImage(format!(
                "{}/{}",
                spec.image.owner.as_str(),
                spec.image.name.as_str()
            )));
        }
        let name = self.domain(&spec.key);
        let forwards: Vec<Forward> = self
            .lend_free(&name, spec.ports.len())?
            .into_iter()
            .zip(&spec.ports)
            .map(|(host, guest)| Forward {
                guest: *guest,
                host,
            })
            .collect();
        let defined = self.define_with(spec, &name, &forwards).await;
        if defined.is_err() {
            self.settings.ports.release(&name);
        }
        defined.map(|()| forwards)
    }

    async fn start(&self, key: &ContainerKey) -> Result<(), BackendError> {
        if self.state(key).await? == VmState::Running {
            return Ok(());
        }
        self.virsh(&["start", &self.domain(key)]).await.map(|_| ())
    }

    async fn destroy(&self, key: &ContainerKey) -> Result<(), BackendError> {
        match self.state(key).await? {
            VmState::Shutoff | VmState::Gone => Ok(()),
            _ => self
                .virsh(&["destroy", &self.domain(key)])
                .await
                .map(|_| ()),
        }
    }

    async fn undefine(&self, key: &ContainerKey) -> Result<(), BackendError> {
        match self.destroy(key).await {
            Ok(()) | Err(BackendError::NoSuchContainer) => {}
            Err(e) => return Err(e),
        }
        match self.virsh(&["undefine", &self.domain(key)]).await {
            Ok(_) | Err(BackendError::NoSuchContainer) => {}
            Err(e) => return Err(e),
        }
        self.settings.ports.release(&self.domain(key));
        match tokio::fs::remove_dir_all(self.vm_dir(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove the VM's disk", e)),
        }
    }

    async fn state(&self, key: &ContainerKey) -> Result<VmState, BackendError> {
        match self.virsh(&["domstate", &self.domain(key)]).await {
            Ok(s) => Ok(parse_state(&s)),
            Err(BackendError::NoSuchContainer) => Ok(VmState::Gone),
            Err(e) => Err(e),
        }
    }

    async fn dumpxml(&self, key: &ContainerKey) -> Result<String, BackendError> {
        self.virsh(&["dumpxml", &self.domain(key)]).await
    }

    async fn list(&self) -> Result<Vec<FoundVm>, BackendError> {
        let names = self.virsh(&["list", "--all", "--name"]).await?;
        let prefix = format!("{}.", self.settings.instance);
        let mut found = Vec::new();
        for name in names
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(&prefix))
        {
            let xml = match self.virsh(&["dumpxml", "--inactive", name]).await {
                Ok(x) => x,
                Err(BackendError::NoSuchContainer) => continue,
                Err(e) => return Err(e),
            };
            let Some(meta) = xml::read_meta(&xml) else {
                continue;
            };
            if meta.instance != self.settings.instance {
                continue;
            }
            let held: Vec<u16> = meta.forwards.iter().map(|f| f.host).collect();
            self.settings.ports.keep(name, &held);
            let state = self.state(&meta.key).await?;
            found.push(FoundVm {
                key: meta.key,
                template: meta.template,
                image: meta.image,
                state,
                forwards: meta.forwards,
            });
        }
        Ok(found)
    }

    async fn console(&self, key: &ContainerKey) -> Result<Terminal, BackendError> {
        if self.state(key).await? != VmState::Running {
            return Err(BackendError::Refused(Why::new(
                "vm_not_running",
                [],
                "the VM is not running",
            )));
        }
        let socket = self.vm_dir(key).join("serial.sock");
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|e| {
                BackendError::Refused(Why::new(
                    "serial_unreachable",
                    [],
                    format!("the serial console cannot be reached now ({})", e.kind()),
                ))
            })?;
        Ok(pump_serial(stream))
    }

    async fn transcript(
        &self,
        key: &ContainerKey,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let path = self.vm_dir(key).join("console.log");
        let mut f = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("cannot read the transcript", e)),
        };
        let len = f
            .metadata()
            .await
            .map_err(|e| io("cannot read the transcript", e))?
            .len();
        if len > max_bytes {
            f.seek(std::io::SeekFrom::Start(len - max_bytes))
                .await
                .map_err(|e| io("cannot read the transcript", e))?;
        }
        let mut buf = Vec::new();
        f.take(max_bytes)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| io("cannot read the transcript", e))?;
        Ok(buf)
    }
}

fn parse_state(s: &str) -> VmState {
    match s.trim() {
        "running" => VmState::Running,
        "paused" => VmState::Paused,
        "shut off" => VmState::Shutoff,
        "crashed" => VmState::Crashed,
        _ => VmState::Other,
    }
}

/// The serial socket as a terminal: bytes both ways; a serial line has no window size, so
/// resizes are dropped. The session ends when the client drops its input or QEMU closes.
fn pump_serial(stream: tokio::net::UnixStream) -> Terminal {
    let (input_tx, mut input_rx) = futures::channel::mpsc::channel::<TerminalInput>(16);
    let (out_tx, out_rx) =
        futures::channel::mpsc::channel::<Result<TerminalOutput, BackendError>>(16);
    let (mut reader, mut writer) = stream.into_split();
    tokio::spawn(async move {
        let mut out_tx = out_tx;
        let mut buf = vec![0u8; 8192];
        loop {
            tokio::select! {
                n = reader.read(&mut buf) => match n {
                    Ok(0) | Err(_) => {
                        let _ = futures::SinkExt::send(&mut out_tx, Ok(TerminalOutput::Exit { code: None })).await;
                        break;
                    }
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        if futures::SinkExt::send(&mut out_tx, Ok(TerminalOutput::Data { data })).await.is_err() {
                            break;
                        }
                    }
                },
                input = input_rx.next() => match input {
                    Some(TerminalInput::Data { data }) => {
                        if writer.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                    Some(TerminalInput::Resize { .. }) => {}
                    None => break,
                },
            }
        }
    });
    Terminal {
        input: input_tx,
        output: out_rx.boxed(),
    }
}
