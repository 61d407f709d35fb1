//! The docker backend's own policy: where the engine is, which capabilities and mounts
//! containers may have, and the ceilings on their limits.

use crate::gpus::{GpuDecl, GpuDiscovery};
use crate::storage::{StorageKind, StorageSettings};
use serde::Deserialize;
use wm_backend::ports::PortRange;
use wm_backend::Limits;

/// Capabilities a container may ever be given: Docker's default set without `NET_RAW`
/// (raw sockets allow spoofing on the shared bridge) and `MKNOD`. The configured
/// `cap_add` must be a subset.
pub const CAPABILITY_CEILING: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Host paths that are never mounted, whatever the configuration says: the engine's
/// socket and the host's system directories.
const FORBIDDEN_MOUNT_SOURCES: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib/docker",
    "/var/run",
];

/// A host directory mounted into every container. `{owner}` in `source` is replaced by the
/// container owner's name, e.g. `/srv/homes/{owner}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountRule {
    pub source: String,
    pub target: String,
    #[serde(default = "yes")]
    pub read_only: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSettings {
    /// `unix:///var/run/docker.sock` (default) or `tcp://host:port`.
    pub host: String,
    /// The name of this host as users see it: `Container.host`, and the host part of the
    /// links to published ports unless `address` is set (`WM_HOST_ID`, or `WM_HOST_NAME`).
    /// Default: this machine's host name.
    pub host_name: String,
    /// The address users reach this host's published ports at (`WM_HOST_ADDRESS`), e.g.
    /// `blade3.ie.example.org`. Unset, `wm serve` uses this machine's primary IPv4 address
    /// and an agent the host of its URL; the console is never browsed under it.
    pub address: Option<String>,
    /// What this host offers that a container or a role may require, e.g. `gpu`
    /// (`WM_HOST_LABELS`, space-separated).
    #[serde(deserialize_with = "words")]
    pub host_labels: Vec<String>,
    /// Host ports lent to containers (`WM_PORT_RANGE`, e.g. `40000-40999`); default: the
    /// kernel's ephemeral range.
    pub port_range: Option<PortRange>,
    /// An IPv4 network the per-user networks get their subnets from (`WM_NETWORK_POOL`,
    /// e.g. `10.201.0.0/16`); default: Docker's own pools, which hold about 30 networks.
    pub network_pool: Option<String>,
    /// Prefix length of each user network's subnet from the pool (`WM_NETWORK_PREFIX`).
    pub network_prefix: u8,
    /// Labels every object as `wm.instance=<instance>`, so that two installations sharing
    /// one engine never touch each other's containers. Also prefixes network names.
    pub instance: String,
    /// The address published ports listen on.
    pub publish_address: String,
    /// Capabilities added after `CapDrop: ALL`; a subset of [`CAPABILITY_CEILING`].
    pub cap_add: Vec<String>,
    pub mounts: Vec<MountRule>,
    /// No container may ask for more than these.
    pub max_limits: Limits,
    /// Seconds to wait for the engine on ordinary calls.
    pub call_timeout_secs: u64,
    /// Rotation size of each container's log file (Docker's `max-size`), e.g. `10m`.
    pub log_max_size: String,
    /// Extra labels on every container and network, e.g. for the host's monitoring. The
    /// `wm.*` keys are ours and may not be set here.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The cgroup under which each build gets one of its own with the process limit
    /// (`WM_BUILD_CGROUP_PARENT`): `/sys/fs/cgroup/pids/<this>/<build>` (cgroup v1) or
    /// `/sys/fs/cgroup/<this>/<build>` (v2), on the engine's machine. The engine must use
    /// the cgroupfs driver; a build is refused when the cgroup cannot be made.
    pub build_cgroup_parent: String,
    /// Registries and URLs on the host's own network (loopback, link-local, this machine's
    /// addresses and container networks) that pulls, builds and CI runners may still
    /// reach, by name: `host` or `host:port` (`WM_EGRESS_ALLOWED`, space-separated). See
    /// [`crate::egress`].
    #[serde(deserialize_with = "words")]
    pub egress_allowed: Vec<String>,
    /// GPUs declared by hand (`[[docker.gpus]]`, or `WM_GPUS` in the compact form of
    /// [`crate::gpus::parse_compact`]): device-node GPUs (AMD, Intel), NVIDIA GPUs named by
    /// UUID without `nvidia-smi`, or the share and name of a GPU `nvidia-smi` finds.
    #[serde(deserialize_with = "crate::gpus::decls")]
    pub gpus: Vec<GpuDecl>,
    /// Whether NVIDIA GPUs are found with `nvidia-smi` (`WM_GPU_DISCOVERY`: `auto`, the
    /// default, or `off`).
    pub gpu_discovery: GpuDiscovery,
    /// The only directories a declared GPU's device nodes may be in (`WM_GPU_DEVICE_DIRS`,
    /// space-separated; default `/dev`), so a wrong setting cannot give containers other
    /// host files. Tests add a temporary directory of stand-in nodes.
    #[serde(deserialize_with = "words")]
    pub gpu_device_dirs: Vec<String>,
    /// Each user's storage on this host (`[docker.storage]`, `WM_STORAGE*`).
    pub storage: StorageSettings,
}

impl Default for DockerSettings {
    fn default() -> Self {
        Self {
            host: "unix:///var/run/docker.sock".into(),
            host_name: local_host_name(),
            address: None,
            host_labels: Vec::new(),
            port_range: None,
            network_pool: None,
            network_prefix: 26,
            instance: "wm".into(),
            publish_address: "0.0.0.0".into(),
            cap_add: [
                "CHOWN",
                "DAC_OVERRIDE",
                "FOWNER",
                "FSETID",
                "KILL",
                "NET_BIND_SERVICE",
                "SETGID",
                "SETUID",
            ]
            .map(String::from)
            .to_vec(),
            mounts: Vec::new(),
            max_limits: Limits {
                memory_bytes: 8 << 30,
                nano_cpus: 4_000_000_000,
                pids: 4096,
            },
            call_timeout_secs: 30,
            log_max_size: "10m".into(),
            labels: Default::default(),
            build_cgroup_parent: "wm-builds".into(),
            egress_allowed: Vec::new(),
            gpus: Vec::new(),
            gpu_discovery: GpuDiscovery::Auto,
            gpu_device_dirs: vec!["/dev".into()],
            storage: StorageSettings::default(),
        }
    }
}

fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A list given as one space-separated string (a variable) or as an array (the file).
fn words<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Words {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Words::deserialize(d)? {
        Words::One(s) => s.split_whitespace().map(String::from).collect(),
        Words::Many(v) => v,
    })
}

impl DockerSettings {
    pub fn port_range(&self) -> PortRange {
        self.port_range.unwrap_or_else(PortRange::ephemeral)
    }

    /// Where users reach this host's published ports.
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or(&self.host_name)
    }

    /// The rule for every destination the engine is sent to on a user's behalf.
    pub fn egress_rule(&self) -> crate::egress::EgressRule {
        crate::egress::EgressRule::new(self.egress_allowed.clone())
    }

    /// Checks the settings; the message names the setting and what is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if let Some(bad) = self.host_labels.iter().find(|l| !label_ok(l)) {
            return Err(format!(
                "host label {bad:?} must be 1 to 63 letters, digits, '-', '_' or '.'"
            ));
        }
        if let Some(pool) = &self.network_pool {
            let cidr =
                crate::subnets::Cidr::parse(pool).map_err(|e| format!("network pool: {e}"))?;
            if self.network_prefix < cidr.prefix() || !(16..=29).contains(&self.network_prefix) {
                return Err(format!(
                    "network prefix /{} must be 16..29 and within the pool {pool}",
                    self.network_prefix
                ));
            }
        }
        if !label_ok(&self.host_name) {
            return Err(format!(
                "host name {:?} must be 1 to 63 letters, digits, '-', '_' or '.'",
                self.host_name
            ));
        }
        if !(self.host.starts_with("unix://")
            || self.host.starts_with("tcp://")
            || self.host.starts_with("http://"))
        {
            return Err(format!(
                "docker host {:?} must start with unix://, tcp:// or http://",
                self.host
            ));
        }
        let instance_ok = !self.instance.is_empty()
            && self.instance.len() <= 16
            && self.instance.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .instance
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !instance_ok {
            return Err(format!(
                "instance {:?} must be 1 to 16 lowercase letters, digits or '-', starting with a letter",
                self.instance
            ));
        }
        if self.publish_address.parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "publish address {:?} is not an IP address",
                self.publish_address
            ));
        }
        for cap in &self.cap_add {
            if !CAPABILITY_CEILING.contains(&cap.as_str()) {
                return Err(format!(
                    "capability {cap:?} may not be added; allowed: {}",
                    CAPABILITY_CEILING.join(", ")
                ));
            }
        }
        self.storage.validate(FORBIDDEN_MOUNT_SOURCES)?;
        for m in &self.mounts {
            validate_mount(m)?;
            if self.storage.kind != StorageKind::Off
                && m.target.trim_end_matches('/') == self.storage.path.trim_end_matches('/')
            {
                return Err(format!(
                    "mount {} -> {}: that is where users' storage is mounted (storage.path); choose another target or storage.path",
                    m.source, m.target
                ));
            }
        }
        let l = &self.max_limits;
        if l.memory_bytes < 4 << 20 || l.nano_cpus < 10_000_000 || l.pids < 8 {
            return Err(
                "max limits must allow at least 4 MiB of memory, 0.01 CPU and 8 processes".into(),
            );
        }
        if let Some(k) = self.labels.keys().find(|k| k.starts_with("wm.")) {
            return Err(format!(
                "label {k:?}: the wm.* labels are set by whalemountain itself"
            ));
        }
        if !label_ok(&self.build_cgroup_parent) || self.build_cgroup_parent.starts_with('.') {
            return Err(format!(
                "build cgroup parent {:?} must be 1 to 63 letters, digits, '-', '_' or '.', not starting with '.'",
                self.build_cgroup_parent
            ));
        }
        for entry in &self.egress_allowed {
            crate::egress::EgressRule::validate_entry(entry)
                .map_err(|e| format!("egress allowed: {e}"))?;
        }
        if self.call_timeout_secs == 0 {
            return Err("the docker call timeout must be at least one second".into());
        }
        // The device nodes are on the engine's machine: they can be looked at only when
        // that is this one.
        crate::gpus::validate(
            &self.gpus,
            &self.gpu_device_dirs,
            self.host.starts_with("unix://"),
        )
        .map_err(|e| format!("gpus: {e}"))?;
        Ok(())
    }
}

fn validate_mount(m: &MountRule) -> Result<(), String> {
    let source = m.source.replace("{owner}", "owner");
    if !source.starts_with('/') || !m.target.starts_with('/') {
        return Err(format!(
            "mount {} -> {}: both paths must be absolute",
            m.source, m.target
        ));
    }
    for p in [&source, &m.target] {
        if p.split('/').any(|c| c == ".." || c == ".") {
            return Err(format!("mount path {p:?} may not contain '.' or '..'"));
        }
    }
    let trimmed = source.trim_end_matches('/');
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    if FORBIDDEN_MOUNT_SOURCES.contains(&trimmed) || source.contains("docker.sock") {
        return Err(format!("mount source {:?} is never allowed", m.source));
    }
    if m.target == "/" {
        return Err("a mount may not cover the container's root".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        DockerSettings::default().validate().unwrap();
    }

    #[test]
    fn refuses_dangerous_settings() {
        let with = |f: &dyn Fn(&mut DockerSettings)| {
            let mut s = DockerSettings::default();
            f(&mut s);
            s.validate()
        };
        assert!(with(&|s| s.cap_add.push("SYS_ADMIN".into())).is_err());
        assert!(with(&|s| s.cap_add.push("NET_RAW".into())).is_err());
        for source in [
            "/var/run/docker.sock",
            "/",
            "/etc",
            "/run/",
            "relative",
            "/srv/../etc",
        ] {
            let r = with(&|s| {
                s.mounts.push(MountRule {
                    source: source.into(),
                    target: "/mnt".into(),
                    read_only: true,
                })
            });
            assert!(r.is_err(), "{source}");
        }
        assert!(with(&|s| s.mounts.push(MountRule {
            source: "/srv/homes/{owner}".into(),
            target: "/home/me".into(),
            read_only: false,
        }))
        .is_ok());
        // Not over users' storage, unless there is none.
        let over_storage = |s: &mut DockerSettings| {
            s.mounts.push(MountRule {
                source: "/srv/shared".into(),
                target: "/data/".into(),
                read_only: true,
            })
        };
        assert!(with(&over_storage).is_err());
        assert!(with(&|s| {
            over_storage(s);
            s.storage.kind = StorageKind::Off;
        })
        .is_ok());
        assert!(with(&|s| s.host = "ssh://x".into()).is_err());
        assert!(with(&|s| s.instance = "Bad_Name".into()).is_err());
        assert!(with(&|s| s.egress_allowed = vec!["host:99999".into()]).is_err());
        assert!(with(&|s| s.egress_allowed = vec!["127.0.0.1:5000".into()]).is_ok());
        assert!(with(&|s| s.gpus = crate::gpus::parse_compact("g=/etc/passwd").unwrap()).is_err());
        assert!(
            with(&|s| s.gpus = crate::gpus::parse_compact("g=/dev/null:share=2").unwrap()).is_ok()
        );
        assert!(with(&|s| s.gpu_device_dirs = vec!["/".into()]).is_err());
    }

    #[test]
    fn gpus_from_the_file_and_from_the_variable() {
        #[derive(Deserialize)]
        struct File {
            docker: DockerSettings,
        }
        let f: File = toml::from_str(
            r#"
            [docker]
            gpu_discovery = "off"
            [[docker.gpus]]
            id = "card0"
            name = "AMD Radeon Pro W6800"
            devices = ["/dev/null", "/dev/zero"]
            shared = 2
            [[docker.gpus]]
            id = "GPU-0d4b2f7e"
            nvidia = true
            [[docker.gpus]]
            id = "a100-left"
            nvidia = true
            uuid = "GPU-77aa"
            "#,
        )
        .unwrap();
        let s = f.docker;
        assert_eq!(s.gpu_discovery, GpuDiscovery::Off);
        assert_eq!(s.gpus.len(), 3);
        assert_eq!(s.gpus[0].share, 2);
        assert_eq!(s.gpus[0].devices, ["/dev/null", "/dev/zero"]);
        assert!(s.gpus[1].nvidia);
        assert_eq!(s.gpus[1].share, 1);
        assert_eq!(s.gpus[2].uuid.as_deref(), Some("GPU-77aa"));
        s.validate().unwrap();
        // A uuid is for an NVIDIA GPU only.
        let mut bad = s.clone();
        bad.gpus[0].uuid = Some("GPU-1".into());
        assert!(bad.validate().is_err());
        let f: File = toml::from_str(
            "[docker]\ngpus = \"card0=/dev/null+/dev/zero:share=2 GPU-0d4b2f7e\"\ngpu_device_dirs = \"/dev /srv/nodes\"\n",
        )
        .unwrap();
        assert_eq!(f.docker.gpus[0].devices, ["/dev/null", "/dev/zero"]);
        assert_eq!(f.docker.gpu_device_dirs, ["/dev", "/srv/nodes"]);
        assert!(toml::from_str::<File>("[docker]\ngpus = \"a:share=x\"\n").is_err());
        assert!(toml::from_str::<File>("[docker]\ngpu_discovery = \"maybe\"\n").is_err());
    }
}
