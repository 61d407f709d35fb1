//! The host's GPUs: the inventory (NVIDIA GPUs found with `nvidia-smi`, and GPUs declared
//! in the settings), how a container is given one, and the pool that keeps a GPU from
//! being given to more containers than its `share`.
//!
//! The pool works as the port pool does ([`crate::ports`]): it is rebuilt from the
//! `wm.gpus` labels of the engine's containers (every scan does), so a restarted agent
//! still knows which GPUs are held, and between two scans it remembers the creates in
//! flight and those that finished after the scan's list was asked for.

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wm_backend::{Gpu, GpuKind};

/// Most containers that may share one GPU.
pub const MAX_SHARE: u32 = 64;
/// How long one `nvidia-smi` answer is used: GPUs do not come and go.
const DISCOVERY_TTL: Duration = Duration::from_secs(60);
/// Longest wait for `nvidia-smi`.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the host looks for NVIDIA GPUs with `nvidia-smi` (`WM_GPU_DISCOVERY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuDiscovery {
    /// Runs `nvidia-smi` when it is on `PATH`.
    #[default]
    Auto,
    /// Only the declared GPUs.
    Off,
}

/// A GPU declared in the host's settings (`[[docker.gpus]]`, or one word of `WM_GPUS`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuDecl {
    /// `[A-Za-z0-9._-]{1,64}`; an NVIDIA GPU's UUID (`GPU-...`) for `nvidia = true`.
    pub id: String,
    /// What people call it; default: the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Device nodes given to the container (AMD: `/dev/dri/renderD128` and `/dev/kfd`).
    #[serde(default)]
    pub devices: Vec<String>,
    /// An NVIDIA GPU given by a device request (by `uuid`, else by `id`), without
    /// `nvidia-smi`.
    #[serde(default)]
    pub nvidia: bool,
    /// The NVIDIA GPU's UUID (`GPU-...`) when `id` is a name of the site's choosing.
    #[serde(default)]
    pub uuid: Option<String>,
    /// How many containers may hold it at once (1..=64; 1 is exclusive): `shared` in the
    /// file.
    #[serde(default = "one", rename = "shared", alias = "share")]
    pub share: u32,
}

fn one() -> u32 {
    1
}

/// The declared GPUs, as an array of tables (the file) or as one string in the compact
/// form of `WM_GPUS` (see [`parse_compact`]).
pub(crate) fn decls<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<GpuDecl>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Compact(String),
        Tables(Vec<GpuDecl>),
    }
    match Form::deserialize(d)? {
        Form::Compact(s) => parse_compact(&s).map_err(serde::de::Error::custom),
        Form::Tables(v) => Ok(v),
    }
}

/// `WM_GPUS`: GPUs separated by spaces, each `<id>[=<device>+<device>...][:share=N][:name=X]`.
/// With devices it is a device-node GPU; without, an NVIDIA GPU named by its UUID (or, for
/// a GPU `nvidia-smi` finds, only its share and name). Example:
/// `card0=/dev/dri/renderD128+/dev/kfd:share=2 GPU-0d4b...:share=1`.
pub fn parse_compact(s: &str) -> Result<Vec<GpuDecl>, String> {
    s.split_whitespace()
        .map(|word| {
            let mut parts = word.split(':');
            let head = parts.next().unwrap_or_default();
            let (id, devices) = match head.split_once('=') {
                Some((id, devs)) => (
                    id,
                    devs.split('+').map(String::from).collect::<Vec<String>>(),
                ),
                None => (head, Vec::new()),
            };
            if devices.iter().any(String::is_empty) {
                return Err(format!("GPU {word:?}: an empty device path"));
            }
            let mut decl = GpuDecl {
                id: id.to_string(),
                name: None,
                nvidia: devices.is_empty(),
                devices,
                uuid: None,
                share: 1,
            };
            for option in parts {
                match option.split_once('=') {
                    Some(("share", n)) => {
                        decl.share = n
                            .parse()
                            .map_err(|_| format!("GPU {word:?}: share {n:?} is not a number"))?;
                    }
                    Some(("name", n)) if !n.is_empty() => decl.name = Some(n.to_string()),
                    _ => {
                        return Err(format!(
                            "GPU {word:?}: {option:?} is not share=N or name=X \
                             (the form is id[=device+device][:share=N][:name=X])"
                        ))
                    }
                }
            }
            Ok(decl)
        })
        .collect()
}

fn id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Checks the declared GPUs and the directories their device nodes may be in. With
/// `check_nodes` (the engine is on this machine), every device path must be a character
/// device whose real path is in one of `device_dirs`.
pub(crate) fn validate(
    decls: &[GpuDecl],
    device_dirs: &[String],
    check_nodes: bool,
) -> Result<(), String> {
    for dir in device_dirs {
        if !dir.starts_with('/') || dir.trim_end_matches('/').is_empty() || has_dots(dir) {
            return Err(format!(
                "GPU device directory {dir:?} must be an absolute directory other than /"
            ));
        }
    }
    let mut seen = HashSet::new();
    for d in decls {
        if !id_ok(&d.id) {
            return Err(format!(
                "GPU id {:?} must be 1 to 64 letters, digits, '.', '_' or '-'",
                d.id
            ));
        }
        if !seen.insert(d.id.as_str()) {
            return Err(format!("GPU {} is declared twice", d.id));
        }
        if !(1..=MAX_SHARE).contains(&d.share) {
            return Err(format!(
                "GPU {}: share {} must be 1 to {MAX_SHARE}",
                d.id, d.share
            ));
        }
        if let Some(name) = &d.name {
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err(format!(
                    "GPU {}: name {name:?} must be 1 to 128 characters",
                    d.id
                ));
            }
        }
        if let Some(uuid) = &d.uuid {
            if !d.nvidia || !id_ok(uuid) {
                return Err(format!(
                    "GPU {}: uuid {uuid:?} is for nvidia = true, and is letters, digits, '.', '_' and '-'",
                    d.id
                ));
            }
        }
        match (d.nvidia, d.devices.is_empty()) {
            (true, false) => {
                return Err(format!(
                    "GPU {}: either nvidia = true or devices, not both",
                    d.id
                ))
            }
            (false, true) => {
                return Err(format!(
                    "GPU {}: give its device nodes (devices) or set nvidia = true",
                    d.id
                ))
            }
            _ => {}
        }
        for path in &d.devices {
            validate_device(&d.id, path, device_dirs, check_nodes)?;
        }
    }
    Ok(())
}

fn has_dots(p: &str) -> bool {
    p.split('/').any(|c| c == ".." || c == ".")
}

fn under(path: &Path, dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| path.starts_with(d) && path != d)
}

fn validate_device(id: &str, path: &str, dirs: &[String], check_nodes: bool) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let allowed = || {
        format!(
            "GPU {id}: device {path:?} must be an absolute path in {} (docker.gpu_device_dirs)",
            dirs.join(", ")
        )
    };
    if !path.starts_with('/') || has_dots(path) || path.contains(',') || path.contains(':') {
        return Err(allowed());
    }
    let plain: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
    if !under(Path::new(path), &plain) {
        return Err(allowed());
    }
    if !check_nodes {
        return Ok(());
    }
    // A symbolic link (`/dev/dri/by-path/...`) is followed, and must stay in the directories.
    let real = std::fs::canonicalize(path)
        .map_err(|e| format!("GPU {id}: device {path:?} cannot be found: {e}"))?;
    let real_dirs: Vec<PathBuf> = plain
        .iter()
        .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()))
        .collect();
    if !under(&real, &real_dirs) {
        return Err(format!(
            "GPU {id}: device {path:?} leads to {}, outside {}",
            real.display(),
            dirs.join(", ")
        ));
    }
    let meta = std::fs::metadata(&real)
        .map_err(|e| format!("GPU {id}: device {path:?} cannot be read: {e}"))?;
    if !meta.file_type().is_char_device() {
        return Err(format!(
            "GPU {id}: {path:?} is not a character device; only device nodes are given to containers"
        ));
    }
    Ok(())
}

/// Where a device node appears in the container: at the same path, or for a node outside
/// `/dev` (a test's stand-in) at `/dev/<its name>`.
pub fn container_path(host_path: &str) -> String {
    if host_path.starts_with("/dev/") {
        host_path.to_string()
    } else {
        let name = Path::new(host_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("/dev/{name}")
    }
}

/// The GPUs in `nvidia-smi --query-gpu=index,uuid,name,memory.total
/// --format=csv,noheader,nounits` output (memory in MiB). Lines that are not a GPU
/// (warnings, headers, `[N/A]` memory) are skipped or read as far as they go.
pub fn parse_nvidia_smi(csv: &str) -> Vec<Gpu> {
    csv.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [index, uuid, name @ .., memory] = fields.as_slice() else {
                return None;
            };
            index.parse::<u32>().ok()?;
            if !uuid.starts_with("GPU-") || !id_ok(uuid) || name.is_empty() {
                return None;
            }
            // A name with a comma in it comes in several fields.
            let name = name.join(",");
            if name.is_empty() {
                return None;
            }
            let memory_bytes = memory
                .parse::<i64>()
                .ok()
                .filter(|m| *m > 0)
                .map(|mib| mib << 20);
            Some(Gpu {
                id: uuid.to_string(),
                name,
                memory_bytes,
                kind: GpuKind::Nvidia,
                share: 1,
            })
        })
        .collect()
}

/// The host's inventory: the discovered GPUs with the declared ones over them (a declared
/// entry with a discovered GPU's id sets its share and name), then the other declared GPUs.
pub fn inventory(discovered: Vec<Gpu>, declared: &[GpuDecl]) -> Vec<Gpu> {
    let mut out: Vec<Gpu> = discovered;
    for d in declared {
        if let Some(g) = out.iter_mut().find(|g| g.id == d.id) {
            g.share = d.share;
            if let Some(n) = &d.name {
                g.name = n.clone();
            }
            continue;
        }
        out.push(Gpu {
            id: d.id.clone(),
            name: d.name.clone().unwrap_or_else(|| d.id.clone()),
            memory_bytes: None,
            kind: if d.nvidia {
                GpuKind::Nvidia
            } else {
                GpuKind::Devices {
                    paths: d.devices.clone(),
                }
            },
            share: d.share,
        });
    }
    out
}

/// `nvidia-smi`'s answer, kept for [`DISCOVERY_TTL`].
#[derive(Default)]
pub(crate) struct Discovery {
    cached: tokio::sync::Mutex<Option<(Instant, Vec<Gpu>)>>,
}

impl Discovery {
    /// The NVIDIA GPUs `nvidia-smi` lists: none when it is not installed or fails.
    pub(crate) async fn nvidia(&self) -> Vec<Gpu> {
        // Held while `nvidia-smi` runs: health checks arriving together run it once.
        let mut cached = self.cached.lock().await;
        if let Some((at, gpus)) = cached.as_ref() {
            if at.elapsed() < DISCOVERY_TTL {
                return gpus.clone();
            }
        }
        let gpus = run_nvidia_smi().await;
        *cached = Some((Instant::now(), gpus.clone()));
        gpus
    }
}

async fn run_nvidia_smi() -> Vec<Gpu> {
    let mut cmd = tokio::process::Command::new("nvidia-smi");
    cmd.args([
        "--query-gpu=index,uuid,name,memory.total",
        "--format=csv,noheader,nounits",
    ])
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    match tokio::time::timeout(DISCOVERY_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => {
            parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
        }
        Ok(Ok(out)) => {
            tracing::warn!(
                status = %out.status,
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "nvidia-smi failed; no NVIDIA GPU is lent until it works"
            );
            Vec::new()
        }
        // Not installed: a host without NVIDIA GPUs.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "nvidia-smi could not be run");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("nvidia-smi did not answer within 10 seconds");
            Vec::new()
        }
    }
}

/// The `wm.gpus` label of a container given these GPUs.
pub(crate) fn label(ids: &[String]) -> String {
    ids.join(",")
}

/// The GPU ids of a `wm.gpus` label.
pub(crate) fn from_label(label: &str) -> Vec<String> {
    label
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Which containers hold which GPUs.
#[derive(Default)]
pub(crate) struct GpuPool {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Container (engine name) → the GPUs it holds.
    held: HashMap<String, Vec<String>>,
    /// Containers the engine's list may not show yet: `None` while being created,
    /// `Some(t)` once created at tick `t`.
    unlisted: HashMap<String, Option<u64>>,
    clock: u64,
}

impl GpuPool {
    /// Call before asking the engine for its containers; pass the answer to
    /// [`rebuild`](Self::rebuild) with the list.
    pub(crate) fn begin_scan(&self) -> u64 {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.clock += 1;
        inner.clock
    }

    /// Replaces what the pool knows with the GPUs the engine's containers hold (listed
    /// after `began`), keeping those of creates the list may not show.
    pub(crate) fn rebuild(
        &self,
        began: u64,
        held: impl IntoIterator<Item = (String, Vec<String>)>,
    ) {
        let mut inner = self.inner.lock().expect("not poisoned");
        let inner = &mut *inner;
        inner
            .unlisted
            .retain(|_, created| created.is_none_or(|t| t > began));
        let unlisted = &inner.unlisted;
        inner.held.retain(|c, _| unlisted.contains_key(c));
        for (container, gpus) in held {
            if !gpus.is_empty() {
                inner.held.entry(container).or_insert(gpus);
            }
        }
    }

    /// Gives `gpus` to `container` (in flight until [`settle`](Self::settle) or
    /// [`release`](Self::release)), unless one of them would then be held by more
    /// containers than its share; all or none.
    ///
    /// # Errors
    /// [`Taken::Name`] when a container of that name holds GPUs already;
    /// [`Taken::Full`] with the message for the user when a GPU is at its share.
    pub(crate) fn take(&self, container: &str, gpus: &[&Gpu]) -> Result<(), Taken> {
        let mut inner = self.inner.lock().expect("not poisoned");
        if inner.held.contains_key(container) {
            return Err(Taken::Name);
        }
        for gpu in gpus {
            let holders = inner
                .held
                .values()
                .filter(|ids| ids.contains(&gpu.id))
                .count();
            if holders >= gpu.share as usize {
                return Err(Taken::Full(wm_backend::why::gpu_in_use(
                    &gpu.id, holders, gpu.share,
                )));
            }
        }
        inner.held.insert(
            container.to_string(),
            gpus.iter().map(|g| g.id.clone()).collect(),
        );
        inner.unlisted.insert(container.to_string(), None);
        Ok(())
    }

    /// The create of `container` finished.
    pub(crate) fn settle(&self, container: &str) {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.clock += 1;
        let now = inner.clock;
        if inner.held.contains_key(container) {
            inner.unlisted.insert(container.to_string(), Some(now));
        }
    }

    /// The GPUs of `container` are free again.
    pub(crate) fn release(&self, container: &str) {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.held.remove(container);
        inner.unlisted.remove(container);
    }

    /// How many containers hold each GPU.
    #[cfg(test)]
    fn holders(&self, id: &str) -> usize {
        let inner = self.inner.lock().expect("not poisoned");
        inner
            .held
            .values()
            .filter(|v| v.iter().any(|g| g == id))
            .count()
    }
}

/// Why [`GpuPool::take`] refused.
#[derive(Debug)]
pub(crate) enum Taken {
    Name,
    Full(wm_backend::Why),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_nvidia_smi_output() {
        // From an A100 node and a workstation; then odd spacing, a name with a comma,
        // memory `[N/A]`, a warning and garbage.
        let out = "\
0, GPU-0d4b2f7e-5c1a-8f3e-91b2-3c4d5e6f7a8b, NVIDIA A100-SXM4-40GB, 40960
1, GPU-1e5c3a8f-6d2b-9a4f-a2c3-4d5e6f7a8b9c, NVIDIA A100-SXM4-40GB, 40960
  2 ,GPU-2f6d4b9a-7e3c-ab5a-b3d4-5e6f7a8b9cad,   NVIDIA GeForce RTX 3090  ,24576  
3, GPU-3a7e5cab-8f4d-bc6b-c4e5-6f7a8b9cadbe, Tesla K80, with a comma, 11441
4, GPU-4b8f6dbc-9a5e-cd7c-d5f6-7a8b9cadbecf, NVIDIA T4, [N/A]
WARNING: infoROM is corrupted at gpu 0000:04:00.0
index, uuid, name, memory.total [MiB]
x, GPU-zz, bad, 1
5, not-a-uuid, Bad, 1024

";
        let gpus = parse_nvidia_smi(out);
        let ids: Vec<&str> = gpus.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "GPU-0d4b2f7e-5c1a-8f3e-91b2-3c4d5e6f7a8b",
                "GPU-1e5c3a8f-6d2b-9a4f-a2c3-4d5e6f7a8b9c",
                "GPU-2f6d4b9a-7e3c-ab5a-b3d4-5e6f7a8b9cad",
                "GPU-3a7e5cab-8f4d-bc6b-c4e5-6f7a8b9cadbe",
                "GPU-4b8f6dbc-9a5e-cd7c-d5f6-7a8b9cadbecf",
            ]
        );
        assert_eq!(gpus[0].name, "NVIDIA A100-SXM4-40GB");
        assert_eq!(gpus[0].memory_bytes, Some(40960 * 1024 * 1024));
        assert_eq!(gpus[0].kind, GpuKind::Nvidia);
        assert_eq!(gpus[0].share, 1);
        assert_eq!(gpus[2].name, "NVIDIA GeForce RTX 3090");
        assert_eq!(gpus[2].memory_bytes, Some(24576 << 20));
        assert_eq!(gpus[3].name, "Tesla K80,with a comma");
        assert_eq!(gpus[4].memory_bytes, None);
        assert!(parse_nvidia_smi("").is_empty());
        assert!(parse_nvidia_smi("No devices were found\n").is_empty());
    }

    #[test]
    fn reads_the_compact_form() {
        let d = parse_compact(
            " card0=/dev/dri/renderD128+/dev/kfd:share=2  GPU-abc:share=3:name=Big_one\nigpu=/dev/dri/renderD129 ",
        )
        .unwrap();
        assert_eq!(
            d,
            [
                GpuDecl {
                    id: "card0".into(),
                    name: None,
                    devices: vec!["/dev/dri/renderD128".into(), "/dev/kfd".into()],
                    nvidia: false,
                    uuid: None,
                    share: 2,
                },
                GpuDecl {
                    id: "GPU-abc".into(),
                    name: Some("Big_one".into()),
                    devices: vec![],
                    nvidia: true,
                    uuid: None,
                    share: 3,
                },
                GpuDecl {
                    id: "igpu".into(),
                    name: None,
                    devices: vec!["/dev/dri/renderD129".into()],
                    nvidia: false,
                    uuid: None,
                    share: 1,
                },
            ]
        );
        assert!(parse_compact("").unwrap().is_empty());
        for bad in [
            "a:share=x",
            "a:color=red",
            "a=/dev/x+",
            "a:share",
            "a=:share=1",
        ] {
            assert!(parse_compact(bad).is_err(), "{bad}");
        }
    }

    fn decl(id: &str, devices: &[&str], share: u32) -> GpuDecl {
        GpuDecl {
            id: id.into(),
            name: None,
            devices: devices.iter().map(|d| d.to_string()).collect(),
            nvidia: devices.is_empty(),
            uuid: None,
            share,
        }
    }

    #[test]
    fn validation_refuses_bad_ids_shares_and_paths() {
        let dev = ["/dev".to_string()];
        let ok = |d: GpuDecl| validate(&[d], &dev, false);
        assert!(ok(decl("card0", &["/dev/dri/renderD128", "/dev/kfd"], 1)).is_ok());
        assert!(ok(decl("GPU-0d4b2f7e-5c1a", &[], 64)).is_ok());
        assert!(ok(decl("", &[], 1)).is_err());
        assert!(ok(decl("a b", &[], 1)).is_err());
        assert!(ok(decl("a,b", &[], 1)).is_err());
        assert!(ok(decl(&"x".repeat(65), &[], 1)).is_err());
        assert!(ok(decl("g", &[], 0)).is_err());
        assert!(ok(decl("g", &[], 65)).is_err());
        for bad in [
            "dri/renderD128",
            "/etc/passwd",
            "/dev/../etc/passwd",
            "/dev",
            "/devices/x",
            "/dev/./x",
        ] {
            assert!(ok(decl("g", &[bad], 1)).is_err(), "{bad}");
        }
        let mut both = decl("g", &["/dev/kfd"], 1);
        both.nvidia = true;
        assert!(ok(both).is_err());
        let mut neither = decl("g", &[], 1);
        neither.nvidia = false;
        assert!(ok(neither).is_err());
        assert!(validate(&[decl("g", &[], 1), decl("g", &[], 2)], &dev, false).is_err());
        for dirs in [
            vec!["/".to_string()],
            vec!["tmp".into()],
            vec!["/a/../b".into()],
        ] {
            assert!(validate(&[], &dirs, false).is_err(), "{dirs:?}");
        }
    }

    #[test]
    fn validation_checks_the_nodes_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().display().to_string()];
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let escape = dir.path().join("escape");
        std::os::unix::fs::symlink("/dev/null", &escape).unwrap();
        let missing = dir.path().join("missing");
        for bad in [&file, &sub, &escape, &missing] {
            let d = decl("g", &[&bad.display().to_string()], 1);
            let e = validate(&[d], &dirs, true).unwrap_err();
            assert!(e.contains("GPU g"), "{e}");
        }
        // A real character device passes, in /dev; outside the allowed directories not.
        let dev = ["/dev".to_string()];
        assert!(validate(&[decl("g", &["/dev/null"], 1)], &dev, true).is_ok());
        assert!(validate(&[decl("g", &["/dev/null"], 1)], &dirs, true).is_err());
        // A link inside /dev to a node inside /dev is followed.
        if Path::new("/dev/stdout").exists() {
            // /dev/stdout leads to /proc/self/fd/1: outside /dev.
            assert!(validate(&[decl("g", &["/dev/stdout"], 1)], &dev, true).is_err());
        }
    }

    #[test]
    fn container_paths() {
        assert_eq!(container_path("/dev/dri/renderD128"), "/dev/dri/renderD128");
        assert_eq!(container_path("/tmp/x/gpu0"), "/dev/gpu0");
    }

    #[test]
    fn declared_gpus_go_over_discovered_ones() {
        let found =
            parse_nvidia_smi("0, GPU-aaaa, NVIDIA A100, 40960\n1, GPU-bbbb, NVIDIA A100, 40960\n");
        let mut named = decl("GPU-bbbb", &[], 4);
        named.name = Some("shared A100".into());
        let inv = inventory(
            found,
            &[
                named,
                decl("card0", &["/dev/kfd", "/dev/dri/renderD128"], 2),
                decl("GPU-cccc", &[], 1),
            ],
        );
        assert_eq!(inv.len(), 4);
        assert_eq!((inv[0].id.as_str(), inv[0].share), ("GPU-aaaa", 1));
        assert_eq!(
            (inv[1].id.as_str(), inv[1].share, inv[1].name.as_str()),
            ("GPU-bbbb", 4, "shared A100")
        );
        assert_eq!(inv[1].memory_bytes, Some(40960 << 20));
        assert_eq!(
            inv[2].kind,
            GpuKind::Devices {
                paths: vec!["/dev/kfd".into(), "/dev/dri/renderD128".into()]
            }
        );
        assert_eq!(
            (inv[3].kind.clone(), inv[3].name.as_str()),
            (GpuKind::Nvidia, "GPU-cccc")
        );
    }

    fn gpu(id: &str, share: u32) -> Gpu {
        Gpu {
            id: id.into(),
            name: id.into(),
            memory_bytes: None,
            kind: GpuKind::Nvidia,
            share,
        }
    }

    #[test]
    fn the_pool_keeps_shares_and_survives_rebuilds() {
        let pool = GpuPool::default();
        let (a, b) = (gpu("a", 1), gpu("b", 2));
        pool.take("c1", &[&a, &b]).unwrap();
        match pool.take("c2", &[&b, &a]) {
            Err(Taken::Full(m)) => assert!(m.starts_with("GPU a is in use by 1 container "), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(pool.holders("b"), 1, "a refused take holds nothing");
        pool.take("c2", &[&b]).unwrap();
        assert!(matches!(pool.take("c3", &[&b]), Err(Taken::Full(_))));
        assert!(matches!(pool.take("c1", &[]), Err(Taken::Name)));
        // A scan asked for before the creates finished does not free their GPUs.
        let began = pool.begin_scan();
        pool.settle("c1");
        pool.settle("c2");
        pool.rebuild(began, Vec::new());
        assert!(matches!(pool.take("c3", &[&a]), Err(Taken::Full(_))));
        // One asked for after shows only c1: c2 was removed behind our back.
        pool.rebuild(
            pool.begin_scan(),
            [("c1".to_string(), vec!["a".to_string(), "b".to_string()])],
        );
        assert_eq!(pool.holders("b"), 1);
        pool.release("c1");
        pool.take("c3", &[&a]).unwrap();
        // After a restart, a new pool learns from the labels alone.
        let fresh = GpuPool::default();
        fresh.rebuild(
            fresh.begin_scan(),
            [("c3".to_string(), from_label(&label(&["a".into()])))],
        );
        assert!(matches!(fresh.take("c4", &[&a]), Err(Taken::Full(_))));
    }
}
