//! Typed, layered configuration: defaults, then a TOML file, then `WM_*` variables.
//!
//! Every variable maps to one key of the file (the table in [`ENV_KEYS`]), so both layers
//! go through the same deserialisation and the same validation, and an error names the
//! setting in the form the user gave it.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use wm_agent::AgentEndpoint;
use wm_backend::Limits;
use wm_docker::DockerSettings;
use wm_domain::Role;
use wm_kube::KubeSettings;
use wm_ldap::LdapSettings;

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Default limits of every container.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Memory, e.g. `512m`, `2g` or a number of bytes.
    pub memory: String,
    /// CPUs, e.g. `1` or `0.5`.
    pub cpus: f64,
    /// Processes and threads.
    pub pids: i64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            memory: "1g".into(),
            cpus: 1.0,
            pids: 512,
        }
    }
}

impl LimitSettings {
    pub(crate) fn to_limits(&self) -> Result<Limits, String> {
        let memory_bytes = parse_size(&self.memory).ok_or_else(|| {
            format!(
                "memory limit {:?} is not a size like 512m or 2g",
                self.memory
            )
        })?;
        if !(self.cpus.is_finite() && self.cpus > 0.0) {
            return Err(format!("cpu limit {} must be above 0", self.cpus));
        }
        if self.pids < 1 {
            return Err(format!("pids limit {} must be at least 1", self.pids));
        }
        Ok(Limits {
            memory_bytes,
            nano_cpus: (self.cpus * 1e9).round() as i64,
            pids: self.pids,
        })
    }
}

/// `512m`, `2g`, `64k`, or plain bytes (binary units).
pub(crate) fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, shift) = match s.char_indices().last()? {
        (i, 'k') => (&s[..i], 10),
        (i, 'm') => (&s[..i], 20),
        (i, 'g') => (&s[..i], 30),
        (i, 't') => (&s[..i], 40),
        _ => (s, 0),
    };
    let n: i64 = num.parse().ok()?;
    (n > 0).then_some(n)?.checked_mul(1 << shift)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port of the console (`WM_LISTEN`).
    pub listen: SocketAddr,
    /// Where the SQLite database and other state live (`WM_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: `wm.db` in the data directory
    /// (`WM_DATABASE_URL`).
    pub database_url: Option<Secret>,
    /// Sets the local `admin` account's password at every start (`WM_ADMIN_PASSWORD`, or
    /// `WM_ADMIN_PASSWORD_FILE` naming a file that holds it).
    pub admin_password: Option<Secret>,
    pub admin_password_file: Option<PathBuf>,
    /// The key that seals secrets stored in the database, such as CI runner tokens
    /// (`WM_SECRET_KEY_FILE`); default `<data_dir>/secret.key`, made on first start.
    pub secret_key_file: Option<PathBuf>,
    /// Most guest ports one container may publish (`WM_MAX_PORTS`).
    pub max_ports: usize,
    /// Default limits of each container (`WM_MEMORY_LIMIT`, `WM_CPU_LIMIT`, `WM_PIDS_LIMIT`).
    pub limits: LimitSettings,
    /// How long a login lasts, in hours (`WM_SESSION_HOURS`).
    pub session_hours: u64,
    /// The console is reached over HTTPS (`WM_SECURE_COOKIES`); set it when a TLS proxy
    /// is in front. Implied by an `https://` public URL. The session cookie is then
    /// `__Host-` prefixed and `Secure`, and answers carry `Strict-Transport-Security`.
    pub secure_cookies: bool,
    /// Failed login attempts allowed per minute for one user name from one client address
    /// (`WM_LOGIN_RATE_LIMIT`); `0` turns every login limit off.
    pub login_rate_limit: u32,
    /// Failed login attempts allowed per minute for one user name from all addresses
    /// together (`WM_LOGIN_USER_RATE_LIMIT`): guessing spread over many addresses.
    pub login_user_rate_limit: u32,
    /// Distinct user names that may fail to log in from one client address in a minute
    /// (`WM_LOGIN_ADDRESS_RATE_LIMIT`): a password spray.
    pub login_address_rate_limit: u32,
    /// Reverse proxies whose `X-Forwarded-For`/`Forwarded` headers are believed, as
    /// space-separated addresses or CIDRs (`WM_TRUSTED_PROXIES`); none by default.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Files one upload may hold (`WM_UPLOAD_MAX_FILES`); every multipart form is held
    /// to this many parts, plus a few fields.
    pub upload_max_files: usize,
    /// Temporary upload files the whole server holds at once (`WM_UPLOAD_MAX_OPEN_FILES`);
    /// an upload that finds none free for a few seconds answers 503.
    pub upload_max_open_files: usize,
    /// The connections the server accepts: timeouts and a cap (`WM_HEADER_READ_TIMEOUT_SECS`,
    /// `WM_IDLE_TIMEOUT_SECS`, `WM_MAX_CONNECTIONS`).
    pub http: HttpSettings,
    /// Longest an exec may run, in seconds (`WM_EXEC_TIMEOUT_SECS`).
    pub exec_timeout_secs: u64,
    /// Most bytes of stdout and of stderr an exec returns (`WM_EXEC_MAX_OUTPUT`).
    pub exec_max_output: usize,
    /// Most interactive terminal sessions one user may have open at once
    /// (`WM_TERMINAL_MAX_SESSIONS`).
    pub terminal_max_sessions: usize,
    /// Largest file upload, in bytes (`WM_UPLOAD_MAX_BYTES`).
    pub upload_max_bytes: usize,
    /// Seconds between reconciles of the database with the hosts
    /// (`WM_RECONCILE_INTERVAL_SECS`).
    pub reconcile_interval_secs: u64,
    /// Idle and expired containers, image and SIF clean-up (`WM_RECLAIM_*`, `WM_IDLE_*`,
    /// `WM_EXPIRY_GRACE`, `WM_IMAGE_MAX_AGE`, `WM_SIF_CACHE_MAX_AGE`,
    /// `WM_CLEANUP_INTERVAL_SECS`).
    pub reclaim: ReclaimSettings,
    /// The Docker host (`WM_DOCKER_HOST`, `WM_HOST_NAME`, `WM_INSTANCE`,
    /// `WM_PUBLISH_ADDRESS`).
    pub docker: DockerSettings,
    /// The department directory (`WM_LDAP_*`); local accounts only when unset.
    pub ldap: Option<LdapSettings>,
    /// Images built here are `<image_prefix>/<user>/<name>:<tag>` (`WM_IMAGE_PREFIX`).
    pub image_prefix: String,
    /// Registries pulls may come from, space-separated hosts (`docker.io`,
    /// `registry.example.org:5000`); any when unset (`WM_REGISTRIES_ALLOWED`).
    pub registries_allowed: Option<String>,
    /// Credentials per registry (file only: `[[registries]]`).
    pub registries: Vec<RegistryCredentials>,
    /// Largest build context, in bytes (`WM_BUILD_CONTEXT_MAX_BYTES`).
    pub build_context_max_bytes: usize,
    /// Longest a build may run, in seconds (`WM_BUILD_TIMEOUT_SECS`).
    pub build_timeout_secs: u64,
    /// Largest build context once unpacked (a gzipped one is counted while it expands),
    /// in bytes (`WM_BUILD_CONTEXT_MAX_UNPACKED_BYTES`).
    pub build_context_max_unpacked_bytes: u64,
    /// Largest image a build may produce, in bytes; a bigger one is removed and the build
    /// fails (`WM_BUILD_IMAGE_MAX_BYTES`).
    pub build_image_max_bytes: u64,
    /// Size cap of the SIF cache in `<data_dir>/sif-cache` (`WM_SIF_CACHE_MAX_BYTES`).
    pub sif_cache_max_bytes: u64,
    /// The console's canonical address, as browsers and CI jobs reach it, e.g.
    /// `https://wm.ie.example.org` (`WM_PUBLIC_URL`); default: the address the request
    /// came to. Its host may not be any host's link address (see `origin.rs`).
    pub public_url: Option<String>,
    /// GitLab Runner image of the per-user runners (`WM_CI_RUNNER_IMAGE`).
    pub ci_runner_image: String,
    /// The image the generated pipeline's job runs in; it needs `tar` and `curl`
    /// (`WM_CI_JOB_IMAGE`).
    pub ci_job_image: String,
    /// Images jobs may use, space-separated, `*` as in GitLab's `allowed_images`
    /// (`WM_CI_ALLOWED_IMAGES`); default: the job image.
    pub ci_allowed_images: Option<String>,
    /// Service images (`services:` in `.gitlab-ci.yml`) jobs may start, space-separated,
    /// `*` as in GitLab's `allowed_services` (`WM_CI_ALLOWED_SERVICES`); default: none at
    /// all.
    pub ci_allowed_services: Option<String>,
    /// The docker agents `wm console` lends from (`WM_AGENTS`:
    /// `h1=http://blade1:8081 h2=http://blade2:8081`, or `[[agents]]` tables with `id` and
    /// `url`). Empty for `wm serve`, which uses the local engine in-process.
    #[serde(deserialize_with = "agent_list")]
    pub agents: Vec<AgentEndpoint>,
    /// How the console reaches its agents over HTTPS (`WM_AGENTS_CA`,
    /// `WM_AGENTS_CLIENT_CERT`, `WM_AGENTS_CLIENT_KEY`).
    pub agents_tls: AgentsTls,
    /// The agent's side (`wm agent docker`): its token and TLS.
    pub agent: AgentSettings,
    /// Seconds between health checks of the hosts (`WM_HOST_CHECK_INTERVAL_SECS`).
    pub host_check_interval_secs: u64,
    /// Host labels a role's containers require, e.g. `teacher = ["gpu"]` (file only:
    /// `[role_host_labels]`).
    pub role_host_labels: std::collections::BTreeMap<Role, Vec<String>>,
    /// The Kubernetes backend, in-process (`[kube]`, `WM_KUBECONFIG`, `WM_KUBE_*`): off
    /// unless one of its settings is given.
    pub kube: Option<KubeSettings>,
    /// A kubernetes agent to use instead of reaching the cluster in-process
    /// (`WM_KUBE_AGENT=http://host:8082`); it shares the agent token.
    pub kube_agent: Option<String>,
    /// Each role's quota (`[quotas.student]`, ...; file only): what a user may hold at
    /// once. Administrators override it per user.
    #[serde(alias = "quota")]
    pub quotas: std::collections::BTreeMap<Role, QuotaSettings>,
    /// How far placement may commit a host's memory with the limits of its live
    /// containers (`WM_MEMORY_OVERCOMMIT`): 1.0 never beyond the host's memory.
    pub memory_overcommit: f64,
    /// How pulled and built images are scanned before anyone may start them (`[scan]`,
    /// `WM_SCAN_*`).
    pub scan: ScanSettings,
    /// Virtual machines on libvirt (`[vm]`, `[[vm.templates]]`, `WM_VM_*`).
    pub vm: VmSettings,
}

/// Virtual machines: where libvirt is, where disks live, and the administrators'
/// templates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VmSettings {
    /// Offer VMs (`WM_VM`): `true`, `false`, or unset for "when libvirt answers at start".
    pub enabled: Option<bool>,
    /// libvirt's URI (`WM_VM_URI`); its system daemon.
    pub uri: String,
    /// `kvm`, or `qemu` for software emulation (`WM_VM_DOMAIN_TYPE`); default `kvm` where
    /// `/dev/kvm` exists, else `qemu`.
    pub domain_type: Option<String>,
    /// Where uploaded images and VM disks live (`WM_VM_STORAGE_DIR`); every directory on
    /// the way must be searchable by libvirt's QEMU user.
    pub storage_dir: std::path::PathBuf,
    /// Largest image upload, in bytes (`WM_VM_IMAGE_MAX_BYTES`).
    pub image_max_bytes: u64,
    /// Most bytes of the serial transcript one request returns.
    pub transcript_max_bytes: u64,
    /// What users may define VMs from (file only: `[[vm.templates]]`).
    pub templates: Vec<VmTemplateSettings>,
}

impl Default for VmSettings {
    fn default() -> Self {
        Self {
            enabled: None,
            uri: "qemu:///system".into(),
            domain_type: None,
            storage_dir: "/var/lib/libvirt/images/whalemountain".into(),
            image_max_bytes: 8 << 30,
            transcript_max_bytes: 1 << 20,
            templates: vec![VmTemplateSettings {
                name: "small".into(),
                vcpus: 1,
                memory: "512m".into(),
                nic: wm_backend::vm::NicModel::Virtio,
                disk_bus: wm_backend::vm::DiskBus::Virtio,
                description: None,
            }],
        }
    }
}

/// One template: a VM's size and devices.
#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmTemplateSettings {
    pub name: String,
    pub vcpus: u32,
    /// A size like `"256m"`.
    pub memory: String,
    /// `virtio` (default) or `e1000`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub nic: wm_backend::vm::NicModel,
    /// `virtio` (default) or `sata`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub disk_bus: wm_backend::vm::DiskBus,
    #[serde(default)]
    pub description: Option<String>,
}

impl VmSettings {
    fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.domain_type {
            if t != "kvm" && t != "qemu" {
                return Err(format!("vm.domain_type {t:?} must be kvm or qemu"));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.templates {
            if t.name.is_empty()
                || t.name.len() > 63
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(format!(
                    "vm.templates: name {:?} must be 1 to 63 letters, digits, '-' or '.'",
                    t.name
                ));
            }
            if !seen.insert(&t.name) {
                return Err(format!("vm.templates: {} is named twice", t.name));
            }
            if !(1..=64).contains(&t.vcpus) {
                return Err(format!("vm.templates {}: vcpus must be 1 to 64", t.name));
            }
            if parse_size(&t.memory).is_none_or(|m| m < 16 << 20) {
                return Err(format!(
                    "vm.templates {}: memory {:?} must be a size like 256m, at least 16m",
                    t.name, t.memory
                ));
            }
        }
        Ok(())
    }

    /// The domain type in force.
    pub fn domain_type(&self) -> String {
        self.domain_type
            .clone()
            .unwrap_or_else(|| wm_libvirt::default_domain_type().to_string())
    }
}

/// How pulled and built images are scanned.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSettings {
    /// `clamav` (the default), `off`, or a command (`WM_SCAN_COMMAND`; a list in the file,
    /// or one line split at spaces) that takes the image's file system as `{dir}` (a
    /// directory) or `{tar}` (a tar file) and exits 0 when clean, 1 when it found
    /// something (its output lines are the findings), anything else on failure.
    #[serde(deserialize_with = "scanner")]
    pub command: Scanner,
    /// The directory of ClamAV's signatures (`WM_SCAN_CLAMAV_DATABASE`), where `freshclam`
    /// keeps them: `/var/lib/clamav`.
    pub clamav_database: PathBuf,
    /// Longest one scan may take, export included (`WM_SCAN_TIMEOUT_SECS`).
    pub timeout_secs: u64,
    /// The largest file system scanned, in bytes (`WM_SCAN_MAX_BYTES`): a bigger one is a
    /// scan `error`, not `clean`.
    pub max_bytes: u64,
    /// Scans run at once (`WM_SCAN_CONCURRENCY`); more wait their turn, `pending`.
    pub concurrency: usize,
}

impl Default for ScanSettings {
    fn default() -> Self {
        Self {
            command: Scanner::ClamAv,
            clamav_database: PathBuf::from("/var/lib/clamav"),
            timeout_secs: 600,
            max_bytes: 8 << 30,
            concurrency: 2,
        }
    }
}

/// What scans images.
#[derive(Debug, Clone, PartialEq)]
pub enum Scanner {
    /// Nothing: images carry no scan and are usable at once.
    Off,
    /// `clamscan` over the image's file system, with [`ScanSettings::clamav_database`].
    ClamAv,
    /// A site's command; one of its words holds `{dir}` or `{tar}`.
    Command(Vec<String>),
}

impl Scanner {
    /// `clamav`, `off`, or the words of a command.
    pub fn parse(words: Vec<String>) -> Result<Self, String> {
        match words.as_slice() {
            [w] if w == "clamav" => Ok(Scanner::ClamAv),
            [w] if w == "off" => Ok(Scanner::Off),
            [] => Err("the scan command is empty: say clamav, off, or a command".into()),
            _ if words
                .iter()
                .any(|w| w.contains("{dir}") || w.contains("{tar}")) =>
            {
                Ok(Scanner::Command(words))
            }
            _ => Err(format!(
                "the scan command {:?} must take the image as {{dir}} or {{tar}}",
                words.join(" ")
            )),
        }
    }
}

fn scanner<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Scanner, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Words {
        Line(String),
        Items(Vec<String>),
    }
    let words = match Words::deserialize(d)? {
        Words::Line(s) => s.split_whitespace().map(str::to_string).collect(),
        Words::Items(v) => v,
    };
    Scanner::parse(words).map_err(serde::de::Error::custom)
}

/// A role's quota as the file sets it: a setting left out keeps the role's default
/// ([`QuotaSettings::role`]), `-1` (or `"-1"`) makes it unlimited.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSettings {
    /// Containers, stopped ones included.
    pub containers: Option<i64>,
    /// Containers running at once.
    pub running: Option<i64>,
    /// CPUs of the running containers, summed (`2`, `0.5`); also a container's maximum.
    pub cpus: Option<f64>,
    /// Memory of the running containers, summed (`4g`); also a container's maximum.
    pub memory: Option<String>,
    /// GPUs held at once.
    pub gpus: Option<i64>,
    /// Host ports held at once.
    pub ports: Option<i64>,
    /// Image builds at once.
    pub builds: Option<i64>,
    /// Bytes of storage (volumes).
    pub storage: Option<String>,
}

impl QuotaSettings {
    /// The default quota of a role: a student gets a class's worth (the report's VM
    /// default was 1 core and 1 GB per machine), a teacher more, an administrator no
    /// limit.
    pub(crate) fn role(role: Role) -> Self {
        match role {
            Role::Student => Self {
                containers: Some(5),
                running: Some(3),
                cpus: Some(2.0),
                memory: Some("4g".into()),
                gpus: Some(1),
                ports: Some(16),
                builds: Some(2),
                storage: Some("10g".into()),
            },
            Role::Teacher => Self {
                containers: Some(20),
                running: Some(10),
                cpus: Some(8.0),
                memory: Some("16g".into()),
                gpus: Some(2),
                ports: Some(64),
                builds: Some(4),
                storage: Some("50g".into()),
            },
            Role::Admin => Self::default(),
        }
    }

    /// No limit on anything: for installations (and tests) that want none.
    pub fn unlimited() -> Self {
        Self {
            containers: Some(-1),
            running: Some(-1),
            cpus: Some(-1.0),
            memory: Some("-1".into()),
            gpus: Some(-1),
            ports: Some(-1),
            builds: Some(-1),
            storage: Some("-1".into()),
        }
    }

    /// This quota with the settings `over` gives in place of its own.
    fn overlaid(self, over: &QuotaSettings) -> Self {
        Self {
            containers: over.containers.or(self.containers),
            running: over.running.or(self.running),
            cpus: over.cpus.or(self.cpus),
            memory: over.memory.clone().or(self.memory),
            gpus: over.gpus.or(self.gpus),
            ports: over.ports.or(self.ports),
            builds: over.builds.or(self.builds),
            storage: over.storage.clone().or(self.storage),
        }
    }

    /// The quota in numbers; `None` is unlimited.
    pub(crate) fn to_quota(&self) -> Result<RoleQuota, String> {
        let count = |what: &str, v: Option<i64>| match v {
            None | Some(-1) => Ok(None),
            Some(n) if n >= 0 => Ok(Some(n)),
            Some(n) => Err(format!("{what} {n} must be 0 or more, or -1 for no limit")),
        };
        let size = |what: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
            None | Some("-1") => Ok(None),
            Some("0") => Ok(Some(0)),
            Some(t) => parse_size(t)
                .map(Some)
                .ok_or_else(|| format!("{what} {t:?} is not a size like 512m or 4g")),
        };
        let cpus = match self.cpus {
            None => None,
            Some(-1.0) => None,
            Some(c) if c.is_finite() && c >= 0.0 => Some((c * 1e9).round() as i64),
            Some(c) => return Err(format!("cpus {c} must be 0 or more, or -1 for no limit")),
        };
        Ok(RoleQuota {
            containers: count("containers", self.containers)?,
            running: count("running", self.running)?,
            nano_cpus: cpus,
            memory_bytes: size("memory", &self.memory)?,
            gpus: count("gpus", self.gpus)?,
            ports: count("ports", self.ports)?,
            builds: count("builds", self.builds)?,
            storage_bytes: size("storage", &self.storage)?,
        })
    }
}

/// A quota in numbers; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RoleQuota {
    pub(crate) containers: Option<i64>,
    pub(crate) running: Option<i64>,
    pub(crate) nano_cpus: Option<i64>,
    pub(crate) memory_bytes: Option<i64>,
    pub(crate) gpus: Option<i64>,
    pub(crate) ports: Option<i64>,
    pub(crate) builds: Option<i64>,
    pub(crate) storage_bytes: Option<i64>,
}

/// A length of time as people write it: `90s`, `15m`, `4h`, `7d`, `2w`, or a number of
/// seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(std::time::Duration);

impl Span {
    pub fn secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    /// # Errors
    /// When `s` is not a positive whole number with one of the units `s`, `m`, `h`, `d`, `w`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (num, unit) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
            _ => (t, 's'),
        };
        let mult = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => 0,
        };
        num.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0 && mult > 0)
            .and_then(|n| n.checked_mul(mult))
            .filter(|n| *n <= 100 * 365 * 86400)
            .map(Self::secs)
            .ok_or_else(|| format!("{s:?} is not a length of time like 90s, 15m, 4h or 7d"))
    }

    /// In whole seconds.
    pub(crate) fn as_secs(self) -> i64 {
        self.0.as_secs() as i64
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) if n > 0 => Ok(Span::secs(n)),
            Raw::Secs(_) => Err(serde::de::Error::custom("a length of time must be above 0")),
            Raw::Text(t) => Span::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Reclaiming idle and expired containers, and cleaning up images and SIF files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReclaimSettings {
    /// Seconds between passes of the reclaim worker (`WM_RECLAIM_INTERVAL_SECS`).
    pub interval_secs: u64,
    /// A running container idle this long is stopped (`WM_IDLE_STOP_AFTER`); off when unset.
    pub idle_stop_after: Option<Span>,
    /// Below this share of one CPU between two passes a container counts as idle
    /// (`WM_IDLE_CPU_PERCENT`).
    pub idle_cpu_percent: f64,
    /// Network bytes (received and sent) per minute below which a container counts as
    /// idle (`WM_IDLE_NETWORK_BYTES`).
    pub idle_network_bytes: u64,
    /// How long before an idle stop the console warns (`WM_IDLE_WARNING`).
    pub idle_warning: Span,
    /// How long an expired container is kept, stopped, before it is deleted
    /// (`WM_EXPIRY_GRACE`).
    pub expiry_grace: Span,
    /// Most stops and deletions of one pass; the rest wait for the next
    /// (`WM_RECLAIM_MAX_ACTIONS`).
    pub max_actions: usize,
    /// Users' images older than this that no container uses are removed
    /// (`WM_IMAGE_MAX_AGE`); off when unset.
    pub image_max_age: Option<Span>,
    /// SIF files not used for this long are removed from the cache (`WM_SIF_CACHE_MAX_AGE`);
    /// off when unset (the size cap still applies).
    pub sif_max_age: Option<Span>,
    /// Seconds between clean-ups of images and SIF files (`WM_CLEANUP_INTERVAL_SECS`).
    pub cleanup_interval_secs: u64,
}

impl Default for ReclaimSettings {
    fn default() -> Self {
        Self {
            interval_secs: 60,
            idle_stop_after: None,
            idle_cpu_percent: 2.0,
            idle_network_bytes: 16 << 10,
            idle_warning: Span::secs(15 * 60),
            expiry_grace: Span::secs(7 * 86400),
            max_actions: 20,
            image_max_age: None,
            sif_max_age: None,
            cleanup_interval_secs: 3600,
        }
    }
}

impl ReclaimSettings {
    fn validate(&self) -> Result<(), String> {
        if self.interval_secs == 0 || self.cleanup_interval_secs == 0 {
            return Err(
                "reclaim.interval_secs and reclaim.cleanup_interval_secs must be at least 1".into(),
            );
        }
        if !(self.idle_cpu_percent.is_finite()
            && (0.0..=100_000.0).contains(&self.idle_cpu_percent))
        {
            return Err(format!(
                "reclaim.idle_cpu_percent {} must be a percentage of one CPU from 0",
                self.idle_cpu_percent
            ));
        }
        if self.max_actions == 0 {
            return Err("reclaim.max_actions must be at least 1".into());
        }
        Ok(())
    }
}

/// Limits on the console's connections, against clients that hold them open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Seconds a client has to send a request's head (line and headers), counted from
    /// the moment the server waits for one: a kept-alive connection that starts no new
    /// request within it is closed too.
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may go without a byte, or an answer without being read,
    /// before the connection is closed.
    pub idle_timeout_secs: u64,
    /// Connections served at once; further ones wait in the listen queue until one ends.
    pub max_connections: usize,
    /// The console serves HTTPS itself with this certificate chain (PEM;
    /// `WM_TLS_CERT`) and key (`WM_TLS_KEY`), read again when the files change.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 4096,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Space-separated addresses or CIDRs (`10.0.0.1 10.1.0.0/16`), or a list of them.
fn cidr_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Line(String),
        Items(Vec<String>),
    }
    let items: Vec<String> = match List::deserialize(d)? {
        List::Line(s) => s.split_whitespace().map(str::to_string).collect(),
        List::Items(v) => v,
    };
    items
        .iter()
        .map(|s| parse_cidr(s).map_err(serde::de::Error::custom))
        .collect()
}

/// An address (`10.0.0.1`, a network of one) or a CIDR (`10.0.0.0/8`).
pub fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("trusted proxy {s:?} is not an address or a CIDR like 10.0.0.0/8"))
}

/// The shared agent token and, for `wm agent`, its HTTPS settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    /// The secret the console and its agents share (`WM_AGENT_TOKEN`, or
    /// `WM_AGENT_TOKEN_FILE` naming a file that holds it).
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// The agent's certificate and key, PEM (`WM_AGENT_TLS_CERT`, `WM_AGENT_TLS_KEY`):
    /// the agent serves HTTPS when both are set.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Require client certificates from this CA (`WM_AGENT_TLS_CLIENT_CA`): mutual TLS.
    pub tls_client_ca: Option<PathBuf>,
}

/// The console's TLS towards `https://` agents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsTls {
    /// The CA the agents' certificates come from, PEM.
    pub ca: Option<PathBuf>,
    /// The console's client certificate and key, for agents that require one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

fn agent_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<AgentEndpoint>, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        id: String,
        url: String,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Agents {
        Line(String),
        Tables(Vec<Entry>),
    }
    let list = match Agents::deserialize(d)? {
        Agents::Line(s) => AgentEndpoint::parse_list(&s).map_err(serde::de::Error::custom)?,
        Agents::Tables(t) => t
            .into_iter()
            .map(|e| AgentEndpoint {
                id: e.id,
                url: e.url,
            })
            .collect(),
    };
    Ok(list)
}

/// A registry login used for pulls from that registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredentials {
    /// As in image references: `registry.example.org:5000`, or `docker.io`.
    pub host: String,
    pub username: String,
    pub password: Secret,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".parse().expect("valid address"),
            data_dir: PathBuf::from("data"),
            database_url: None,
            admin_password: None,
            admin_password_file: None,
            secret_key_file: None,
            max_ports: 8,
            limits: LimitSettings::default(),
            session_hours: 24 * 7,
            secure_cookies: false,
            login_rate_limit: 10,
            login_user_rate_limit: 50,
            login_address_rate_limit: 50,
            trusted_proxies: Vec::new(),
            upload_max_files: 64,
            upload_max_open_files: 512,
            http: HttpSettings::default(),
            exec_timeout_secs: 60,
            exec_max_output: 1 << 20,
            terminal_max_sessions: 8,
            upload_max_bytes: 256 << 20,
            reconcile_interval_secs: 30,
            reclaim: ReclaimSettings::default(),
            docker: DockerSettings::default(),
            ldap: None,
            image_prefix: "wm".into(),
            registries_allowed: None,
            registries: Vec::new(),
            build_context_max_bytes: 64 << 20,
            build_timeout_secs: 1800,
            build_context_max_unpacked_bytes: 256 << 20,
            build_image_max_bytes: 4 << 30,
            sif_cache_max_bytes: 10 << 30,
            public_url: None,
            ci_runner_image: "gitlab/gitlab-runner:alpine".into(),
            ci_job_image: "curlimages/curl:latest".into(),
            ci_allowed_images: None,
            ci_allowed_services: None,
            agents: Vec::new(),
            agents_tls: AgentsTls::default(),
            agent: AgentSettings::default(),
            host_check_interval_secs: 5,
            role_host_labels: Default::default(),
            kube: None,
            kube_agent: None,
            quotas: Default::default(),
            memory_overcommit: 1.0,
            scan: ScanSettings::default(),
            vm: VmSettings::default(),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
}

/// Each variable and the key of the file it sets.
const ENV_KEYS: &[(&str, &[&str], Kind)] = &[
    ("WM_LISTEN", &["listen"], Kind::Str),
    ("WM_VM", &["vm", "enabled"], Kind::Bool),
    ("WM_VM_URI", &["vm", "uri"], Kind::Str),
    ("WM_VM_DOMAIN_TYPE", &["vm", "domain_type"], Kind::Str),
    ("WM_VM_STORAGE_DIR", &["vm", "storage_dir"], Kind::Str),
    (
        "WM_VM_IMAGE_MAX_BYTES",
        &["vm", "image_max_bytes"],
        Kind::Int,
    ),
    ("WM_DATA_DIR", &["data_dir"], Kind::Str),
    ("WM_DATABASE_URL", &["database_url"], Kind::Str),
    ("WM_ADMIN_PASSWORD", &["admin_password"], Kind::Str),
    (
        "WM_ADMIN_PASSWORD_FILE",
        &["admin_password_file"],
        Kind::Str,
    ),
    ("WM_SECRET_KEY_FILE", &["secret_key_file"], Kind::Str),
    ("WM_PORT_RANGE", &["docker", "port_range"], Kind::Str),
    ("WM_MAX_PORTS", &["max_ports"], Kind::Int),
    ("WM_MEMORY_LIMIT", &["limits", "memory"], Kind::Str),
    ("WM_CPU_LIMIT", &["limits", "cpus"], Kind::Float),
    ("WM_MEMORY_OVERCOMMIT", &["memory_overcommit"], Kind::Float),
    ("WM_PIDS_LIMIT", &["limits", "pids"], Kind::Int),
    ("WM_SESSION_HOURS", &["session_hours"], Kind::Int),
    ("WM_SECURE_COOKIES", &["secure_cookies"], Kind::Bool),
    ("WM_LOGIN_RATE_LIMIT", &["login_rate_limit"], Kind::Int),
    (
        "WM_LOGIN_USER_RATE_LIMIT",
        &["login_user_rate_limit"],
        Kind::Int,
    ),
    (
        "WM_LOGIN_ADDRESS_RATE_LIMIT",
        &["login_address_rate_limit"],
        Kind::Int,
    ),
    ("WM_TRUSTED_PROXIES", &["trusted_proxies"], Kind::Str),
    ("WM_TLS_CERT", &["http", "tls_cert"], Kind::Str),
    ("WM_TLS_KEY", &["http", "tls_key"], Kind::Str),
    ("WM_UPLOAD_MAX_FILES", &["upload_max_files"], Kind::Int),
    (
        "WM_UPLOAD_MAX_OPEN_FILES",
        &["upload_max_open_files"],
        Kind::Int,
    ),
    (
        "WM_HEADER_READ_TIMEOUT_SECS",
        &["http", "header_read_timeout_secs"],
        Kind::Int,
    ),
    (
        "WM_IDLE_TIMEOUT_SECS",
        &["http", "idle_timeout_secs"],
        Kind::Int,
    ),
    (
        "WM_MAX_CONNECTIONS",
        &["http", "max_connections"],
        Kind::Int,
    ),
    ("WM_EXEC_TIMEOUT_SECS", &["exec_timeout_secs"], Kind::Int),
    ("WM_EXEC_MAX_OUTPUT", &["exec_max_output"], Kind::Int),
    (
        "WM_TERMINAL_MAX_SESSIONS",
        &["terminal_max_sessions"],
        Kind::Int,
    ),
    ("WM_UPLOAD_MAX_BYTES", &["upload_max_bytes"], Kind::Int),
    (
        "WM_RECONCILE_INTERVAL_SECS",
        &["reconcile_interval_secs"],
        Kind::Int,
    ),
    (
        "WM_RECLAIM_INTERVAL_SECS",
        &["reclaim", "interval_secs"],
        Kind::Int,
    ),
    (
        "WM_IDLE_STOP_AFTER",
        &["reclaim", "idle_stop_after"],
        Kind::Str,
    ),
    (
        "WM_IDLE_CPU_PERCENT",
        &["reclaim", "idle_cpu_percent"],
        Kind::Float,
    ),
    (
        "WM_IDLE_NETWORK_BYTES",
        &["reclaim", "idle_network_bytes"],
        Kind::Int,
    ),
    ("WM_IDLE_WARNING", &["reclaim", "idle_warning"], Kind::Str),
    ("WM_EXPIRY_GRACE", &["reclaim", "expiry_grace"], Kind::Str),
    (
        "WM_RECLAIM_MAX_ACTIONS",
        &["reclaim", "max_actions"],
        Kind::Int,
    ),
    ("WM_IMAGE_MAX_AGE", &["reclaim", "image_max_age"], Kind::Str),
    (
        "WM_SIF_CACHE_MAX_AGE",
        &["reclaim", "sif_max_age"],
        Kind::Str,
    ),
    (
        "WM_CLEANUP_INTERVAL_SECS",
        &["reclaim", "cleanup_interval_secs"],
        Kind::Int,
    ),
    ("WM_DOCKER_HOST", &["docker", "host"], Kind::Str),
    ("WM_HOST_NAME", &["docker", "host_name"], Kind::Str),
    ("WM_HOST_ID", &["docker", "host_name"], Kind::Str),
    ("WM_HOST_ADDRESS", &["docker", "address"], Kind::Str),
    ("WM_HOST_LABELS", &["docker", "host_labels"], Kind::Str),
    ("WM_GPUS", &["docker", "gpus"], Kind::Str),
    ("WM_GPU_DISCOVERY", &["docker", "gpu_discovery"], Kind::Str),
    (
        "WM_GPU_DEVICE_DIRS",
        &["docker", "gpu_device_dirs"],
        Kind::Str,
    ),
    (
        "WM_EGRESS_ALLOWED",
        &["docker", "egress_allowed"],
        Kind::Str,
    ),
    ("WM_STORAGE", &["docker", "storage", "kind"], Kind::Str),
    ("WM_STORAGE_PATH", &["docker", "storage", "path"], Kind::Str),
    ("WM_STORAGE_ROOT", &["docker", "storage", "root"], Kind::Str),
    (
        "WM_STORAGE_OWNER",
        &["docker", "storage", "owner"],
        Kind::Str,
    ),
    ("WM_STORAGE_UID", &["docker", "storage", "uid"], Kind::Int),
    ("WM_STORAGE_GID", &["docker", "storage", "gid"], Kind::Int),
    ("WM_NETWORK_POOL", &["docker", "network_pool"], Kind::Str),
    (
        "WM_NETWORK_PREFIX",
        &["docker", "network_prefix"],
        Kind::Int,
    ),
    ("WM_INSTANCE", &["docker", "instance"], Kind::Str),
    (
        "WM_PUBLISH_ADDRESS",
        &["docker", "publish_address"],
        Kind::Str,
    ),
    ("WM_LDAP_URL", &["ldap", "url"], Kind::Str),
    ("WM_LDAP_BASE_DN", &["ldap", "base_dn"], Kind::Str),
    ("WM_LDAP_USER_FILTER", &["ldap", "user_filter"], Kind::Str),
    ("WM_LDAP_BIND_DN", &["ldap", "bind_dn"], Kind::Str),
    (
        "WM_LDAP_BIND_PASSWORD",
        &["ldap", "bind_password"],
        Kind::Str,
    ),
    (
        "WM_LDAP_BIND_PASSWORD_FILE",
        &["ldap", "bind_password_file"],
        Kind::Str,
    ),
    (
        "WM_LDAP_GROUP_BASE_DN",
        &["ldap", "group_base_dn"],
        Kind::Str,
    ),
    (
        "WM_LDAP_TEACHER_GROUP",
        &["ldap", "teacher_group"],
        Kind::Str,
    ),
    ("WM_LDAP_ADMIN_GROUP", &["ldap", "admin_group"], Kind::Str),
    ("WM_LDAP_STARTTLS", &["ldap", "starttls"], Kind::Bool),
    ("WM_LDAP_CA_FILE", &["ldap", "ca_file"], Kind::Str),
    ("WM_LDAP_TIMEOUT_SECS", &["ldap", "timeout_secs"], Kind::Int),
    ("WM_IMAGE_PREFIX", &["image_prefix"], Kind::Str),
    ("WM_REGISTRIES_ALLOWED", &["registries_allowed"], Kind::Str),
    (
        "WM_BUILD_CONTEXT_MAX_BYTES",
        &["build_context_max_bytes"],
        Kind::Int,
    ),
    ("WM_BUILD_TIMEOUT_SECS", &["build_timeout_secs"], Kind::Int),
    (
        "WM_BUILD_CONTEXT_MAX_UNPACKED_BYTES",
        &["build_context_max_unpacked_bytes"],
        Kind::Int,
    ),
    (
        "WM_BUILD_IMAGE_MAX_BYTES",
        &["build_image_max_bytes"],
        Kind::Int,
    ),
    (
        "WM_BUILD_CGROUP_PARENT",
        &["docker", "build_cgroup_parent"],
        Kind::Str,
    ),
    (
        "WM_SIF_CACHE_MAX_BYTES",
        &["sif_cache_max_bytes"],
        Kind::Int,
    ),
    ("WM_PUBLIC_URL", &["public_url"], Kind::Str),
    ("WM_CI_RUNNER_IMAGE", &["ci_runner_image"], Kind::Str),
    ("WM_CI_JOB_IMAGE", &["ci_job_image"], Kind::Str),
    ("WM_CI_ALLOWED_IMAGES", &["ci_allowed_images"], Kind::Str),
    (
        "WM_CI_ALLOWED_SERVICES",
        &["ci_allowed_services"],
        Kind::Str,
    ),
    ("WM_AGENTS", &["agents"], Kind::Str),
    ("WM_AGENTS_CA", &["agents_tls", "ca"], Kind::Str),
    (
        "WM_AGENTS_CLIENT_CERT",
        &["agents_tls", "client_cert"],
        Kind::Str,
    ),
    (
        "WM_AGENTS_CLIENT_KEY",
        &["agents_tls", "client_key"],
        Kind::Str,
    ),
    ("WM_AGENT_TOKEN", &["agent", "token"], Kind::Str),
    ("WM_AGENT_TOKEN_FILE", &["agent", "token_file"], Kind::Str),
    ("WM_AGENT_TLS_CERT", &["agent", "tls_cert"], Kind::Str),
    ("WM_AGENT_TLS_KEY", &["agent", "tls_key"], Kind::Str),
    (
        "WM_AGENT_TLS_CLIENT_CA",
        &["agent", "tls_client_ca"],
        Kind::Str,
    ),
    ("WM_KUBECONFIG", &["kube", "kubeconfig"], Kind::Str),
    ("WM_KUBE_CONTEXT", &["kube", "context"], Kind::Str),
    ("WM_KUBE_DOMAIN", &["kube", "domain"], Kind::Str),
    (
        "WM_KUBE_INGRESS_CLASS",
        &["kube", "ingress_class"],
        Kind::Str,
    ),
    (
        "WM_KUBE_STORAGE_CLASS",
        &["kube", "storage_class"],
        Kind::Str,
    ),
    ("WM_KUBE_VOLUME_SIZE", &["kube", "volume_size"], Kind::Str),
    (
        "WM_KUBE_TOKEN_EXPIRY_SECS",
        &["kube", "token_expiry_secs"],
        Kind::Int,
    ),
    (
        "WM_KUBE_LONG_LIVED_TOKENS",
        &["kube", "long_lived_tokens"],
        Kind::Bool,
    ),
    (
        "WM_KUBE_INGRESS_NAMESPACE",
        &["kube", "ingress_namespace"],
        Kind::Str,
    ),
    (
        "WM_KUBE_PUBLIC_SERVER",
        &["kube", "public_server"],
        Kind::Str,
    ),
    (
        "WM_KUBE_CALL_TIMEOUT_SECS",
        &["kube", "call_timeout_secs"],
        Kind::Int,
    ),
    ("WM_KUBE_INSTANCE", &["kube", "instance"], Kind::Str),
    ("WM_KUBE_AGENT", &["kube_agent"], Kind::Str),
    (
        "WM_HOST_CHECK_INTERVAL_SECS",
        &["host_check_interval_secs"],
        Kind::Int,
    ),
    ("WM_SCAN_COMMAND", &["scan", "command"], Kind::Str),
    (
        "WM_SCAN_CLAMAV_DATABASE",
        &["scan", "clamav_database"],
        Kind::Str,
    ),
    ("WM_SCAN_TIMEOUT_SECS", &["scan", "timeout_secs"], Kind::Int),
    ("WM_SCAN_MAX_BYTES", &["scan", "max_bytes"], Kind::Int),
    ("WM_SCAN_CONCURRENCY", &["scan", "concurrency"], Kind::Int),
];

/// A configuration that cannot be used; the message says which setting and why.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl Config {
    /// Reads the file (if any), applies `env`, and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", p.display())))?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError(format!("{}: {e}", p.display())))?
            }
            None => toml::Table::new(),
        };
        for (var, value) in env {
            let Some((_, path, kind)) = ENV_KEYS.iter().find(|(name, _, _)| *name == var) else {
                continue;
            };
            let parsed = match kind {
                Kind::Str => toml::Value::String(value.clone()),
                Kind::Int => {
                    toml::Value::Integer(value.trim().parse().map_err(|_| {
                        ConfigError(format!("{var}={value:?} is not a whole number"))
                    })?)
                }
                Kind::Float => toml::Value::Float(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| ConfigError(format!("{var}={value:?} is not a number")))?,
                ),
                Kind::Bool => toml::Value::Boolean(match value.trim() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" | "" => false,
                    _ => return Err(ConfigError(format!("{var}={value:?} is not true or false"))),
                }),
            };
            set_path(&mut table, path, parsed);
        }
        let mut config: Config = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError(e.to_string().trim().to_string()))?;
        if config.admin_password.is_none() {
            if let Some(p) = &config.admin_password_file {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ConfigError(format!("admin password file {}: {e}", p.display()))
                })?;
                config.admin_password = Some(Secret::new(text.trim_end_matches(['\n', '\r'])));
            }
        }
        if config.agent.token.is_none() {
            if let Some(p) = &config.agent.token_file {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("agent token file {}: {e}", p.display())))?;
                config.agent.token = Some(Secret::new(text.trim_end_matches(['\n', '\r'])));
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// The agent token, checked: the console with agents and every agent need one.
    pub fn agent_token(&self) -> Result<&str, ConfigError> {
        match &self.agent.token {
            Some(t) if t.expose().len() >= 16 => Ok(t.expose()),
            Some(_) => Err(ConfigError(
                "the agent token must have at least 16 characters".into(),
            )),
            None => Err(ConfigError(
                "set WM_AGENT_TOKEN (or WM_AGENT_TOKEN_FILE): the console and its agents share it"
                    .into(),
            )),
        }
    }

    /// The console's TLS client configuration for `https://` agents, if one is set.
    pub(crate) fn agents_client_tls(&self) -> Result<Option<rustls::ClientConfig>, ConfigError> {
        let t = &self.agents_tls;
        let Some(ca) = &t.ca else {
            if t.client_cert.is_some() || t.client_key.is_some() {
                return Err(ConfigError(
                    "WM_AGENTS_CLIENT_CERT and WM_AGENTS_CLIENT_KEY need WM_AGENTS_CA".into(),
                ));
            }
            return Ok(None);
        };
        let client = match (&t.client_cert, &t.client_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            (None, None) => None,
            _ => {
                return Err(ConfigError(
                    "set both WM_AGENTS_CLIENT_CERT and WM_AGENTS_CLIENT_KEY, or neither".into(),
                ))
            }
        };
        wm_agent::tls::client_config(ca, client)
            .map(Some)
            .map_err(|e| ConfigError(format!("agents TLS: {e}")))
    }

    /// The agent's TLS server configuration, if it is to serve HTTPS.
    pub fn agent_server_tls(&self) -> Result<Option<rustls::ServerConfig>, ConfigError> {
        let a = &self.agent;
        match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => wm_agent::tls::server_config(c, k, a.tls_client_ca.as_deref())
                .map(Some)
                .map_err(|e| ConfigError(format!("agent TLS: {e}"))),
            (None, None) if a.tls_client_ca.is_none() => Ok(None),
            _ => Err(ConfigError(
                "WM_AGENT_TLS_CERT and WM_AGENT_TLS_KEY go together (and WM_AGENT_TLS_CLIENT_CA needs them)"
                    .into(),
            )),
        }
    }

    /// The console's own HTTPS, when `WM_TLS_CERT` and `WM_TLS_KEY` are set.
    pub(crate) fn console_tls(&self) -> Result<Option<tokio_rustls::TlsAcceptor>, ConfigError> {
        match (&self.http.tls_cert, &self.http.tls_key) {
            (Some(c), Some(k)) => wm_agent::tls::reloading_server_config(c, k)
                .map(|c| Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(c))))
                .map_err(|e| ConfigError(format!("TLS (WM_TLS_CERT, WM_TLS_KEY): {e}"))),
            (None, None) => Ok(None),
            _ => Err(ConfigError("WM_TLS_CERT and WM_TLS_KEY go together".into())),
        }
    }

    /// Host labels the containers of `role` require.
    /// A role's quota: its default with what the file sets.
    pub(crate) fn role_quota(&self, role: Role) -> RoleQuota {
        let set = self.quotas.get(&role).cloned().unwrap_or_default();
        QuotaSettings::role(role)
            .overlaid(&set)
            .to_quota()
            .expect("validated at load")
    }

    pub(crate) fn required_labels(&self, role: Role) -> &[String] {
        self.role_host_labels
            .get(&role)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let e = |m: String| Err(ConfigError(m));
        self.limits.to_limits().map_err(ConfigError)?;
        for (role, q) in &self.quotas {
            QuotaSettings::role(*role)
                .overlaid(q)
                .to_quota()
                .map_err(|m| ConfigError(format!("quotas.{role}: {m}")))?;
        }
        if !(self.memory_overcommit.is_finite() && self.memory_overcommit > 0.0) {
            return e(format!(
                "memory_overcommit {} must be above 0 (1.0: never beyond a host's memory)",
                self.memory_overcommit
            ));
        }
        self.docker
            .validate()
            .map_err(|m| ConfigError(format!("docker: {m}")))?;
        let limits = self.limits.to_limits().map_err(ConfigError)?;
        let max = &self.docker.max_limits;
        if limits.memory_bytes > max.memory_bytes
            || limits.nano_cpus > max.nano_cpus
            || limits.pids > max.pids
        {
            return e("the default limits are above the docker host's max_limits".into());
        }
        if let Some(url) = &self.database_url {
            let u = url.expose();
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
            {
                return e("database_url must start with sqlite: or postgres://".into());
            }
        }
        if let Some(p) = &self.admin_password {
            if p.expose().chars().count() < 8 {
                return e("the admin password must have at least 8 characters".into());
            }
        }
        if let Some(ldap) = &self.ldap {
            wm_ldap::Directory::new(ldap.clone()).map_err(ConfigError)?;
        }
        if self.max_ports == 0 || self.max_ports > 64 {
            return e(format!("max_ports {} must be 1..64", self.max_ports));
        }
        if self.session_hours == 0 {
            return e("session_hours must be at least 1".into());
        }
        if self.exec_timeout_secs == 0 || self.exec_timeout_secs > 3600 {
            return e("exec_timeout_secs must be 1..3600".into());
        }
        if self.terminal_max_sessions == 0 || self.terminal_max_sessions > 1000 {
            return e("terminal_max_sessions must be 1..1000".into());
        }
        if self.exec_max_output == 0 || self.upload_max_bytes == 0 {
            return e("exec_max_output and upload_max_bytes must be above 0".into());
        }
        let prefix_ok = !self.image_prefix.is_empty()
            && self.image_prefix.len() <= 32
            && self
                .image_prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && wm_domain::ImageRef::parse(&format!("{}/x", self.image_prefix)).is_ok();
        if !prefix_ok {
            return e(format!(
                "image_prefix {:?} must be 1 to 32 lowercase letters and digits",
                self.image_prefix
            ));
        }
        if self.build_context_max_bytes == 0 || self.build_timeout_secs == 0 {
            return e("build_context_max_bytes and build_timeout_secs must be above 0".into());
        }
        if self.build_context_max_unpacked_bytes == 0
            || self.build_image_max_bytes == 0
            || self.build_image_max_bytes > i64::MAX as u64
        {
            return e(
                "build_context_max_unpacked_bytes and build_image_max_bytes must be above 0".into(),
            );
        }
        for image in [&self.ci_runner_image, &self.ci_job_image] {
            wm_domain::ImageRef::parse(image).map_err(|e| ConfigError(format!("CI image: {e}")))?;
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '\'')
            {
                return e(format!("public_url {url:?} must be an http(s) URL"));
            }
        }
        if let Some(k) = &self.kube {
            k.validate().map_err(ConfigError)?;
        }
        if let Some(url) = &self.kube_agent {
            AgentEndpoint {
                id: "kubernetes".into(),
                url: url.clone(),
            }
            .validate()
            .map_err(|e| ConfigError(format!("WM_KUBE_AGENT: {e}")))?;
        }
        if self.host_check_interval_secs == 0 {
            return e("host_check_interval_secs must be at least 1".into());
        }
        if self.scan.timeout_secs == 0 || self.scan.max_bytes == 0 || self.scan.concurrency == 0 {
            return e(
                "scan.timeout_secs, scan.max_bytes and scan.concurrency must be above 0".into(),
            );
        }
        if self.reconcile_interval_secs == 0 {
            return e("reconcile_interval_secs must be at least 1".into());
        }
        self.reclaim.validate().map_err(ConfigError)?;
        self.vm.validate().map_err(ConfigError)?;
        if self.upload_max_files == 0 || self.upload_max_open_files == 0 {
            return e("upload_max_files and upload_max_open_files must be at least 1".into());
        }
        let h = &self.http;
        if h.max_connections > 1_000_000 || self.upload_max_open_files > 1_000_000 {
            return e(
                "http.max_connections and upload_max_open_files must be at most 1000000".into(),
            );
        }
        if h.header_read_timeout_secs == 0 || h.idle_timeout_secs == 0 || h.max_connections == 0 {
            return e(
                "http.header_read_timeout_secs, http.idle_timeout_secs and http.max_connections must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// The file of the key that seals stored secrets.
    pub(crate) fn secret_key_path(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    /// Whether browsers reach the console over HTTPS: `WM_SECURE_COOKIES`, or an
    /// `https://` public URL.
    pub(crate) fn behind_tls(&self) -> bool {
        self.secure_cookies
            || self.http.tls_cert.is_some()
            || self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }

    /// The host name (or IP address, without brackets) of the public URL, lowercase.
    pub(crate) fn public_host(&self) -> Option<String> {
        let url = self.public_url.as_deref()?;
        let rest = url.split_once("://")?.1;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        Some(crate::util::host_without_port(authority))
    }

    /// Refuses a public URL whose host is where published ports are linked (`addresses`):
    /// the browser would send the console's cookies to every container.
    pub(crate) fn check_public_url(&self, addresses: &[String]) -> Result<(), ConfigError> {
        let Some(public) = self.public_host() else {
            return Ok(());
        };
        match addresses
            .iter()
            .find(|a| crate::util::host_without_port(a) == public)
        {
            Some(a) => Err(ConfigError::new(format!(
                "WM_PUBLIC_URL (public_url) has the host {public}, which is also the address \
                 links to containers' published ports use ({a}, from WM_HOST_ADDRESS / \
                 docker.address, or the host of an agent's URL in WM_AGENTS): browsers would \
                 send the console's session to every container. Serve the console under \
                 another name, or give the hosts another WM_HOST_ADDRESS"
            ))),
            None => Ok(()),
        }
    }

    /// The database URL in force: the configured one, or the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.expose().to_string(),
            None => format!("sqlite://{}", self.data_dir.join("wm.db").display()),
        }
    }

    /// The registries pulls may come from; `None` allows any.
    pub(crate) fn allowed_registries(&self) -> Option<Vec<&str>> {
        self.registries_allowed
            .as_deref()
            .map(|s| s.split_whitespace().collect())
    }

    pub fn default_limits(&self) -> Limits {
        self.limits.to_limits().expect("validated at load")
    }
}

fn set_path(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut t = table;
    for p in parents {
        t = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("config sections are tables");
    }
    t.insert(last.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert!(c.database_url().starts_with("sqlite://"));
        assert!(c.docker.port_range().size() > 1000);
    }

    #[test]
    fn reclaim_settings_and_lengths_of_time() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.reclaim.interval_secs, 60);
        assert_eq!(
            c.reclaim.idle_stop_after, None,
            "idle stopping is off by default"
        );
        assert_eq!(c.reclaim.expiry_grace.as_secs(), 7 * 86400);
        let c = Config::load(
            None,
            env(&[
                ("WM_RECLAIM_INTERVAL_SECS", "5"),
                ("WM_IDLE_STOP_AFTER", "4h"),
                ("WM_EXPIRY_GRACE", "90"),
                ("WM_IMAGE_MAX_AGE", "30d"),
                ("WM_IDLE_CPU_PERCENT", "1.5"),
            ]),
        )
        .unwrap();
        assert_eq!(c.reclaim.interval_secs, 5);
        assert_eq!(c.reclaim.idle_stop_after, Some(Span::secs(4 * 3600)));
        assert_eq!(c.reclaim.expiry_grace, Span::secs(90));
        assert_eq!(c.reclaim.image_max_age, Some(Span::secs(30 * 86400)));
        assert_eq!(c.reclaim.idle_cpu_percent, 1.5);
        for bad in ["0", "4x", "-1h", "h", ""] {
            let e = Config::load(None, env(&[("WM_IDLE_STOP_AFTER", bad)]));
            assert!(e.is_err(), "{bad:?}");
        }
        assert_eq!(Span::parse("2w"), Ok(Span::secs(14 * 86400)));
        assert_eq!(Span::parse(" 15M "), Ok(Span::secs(900)));
    }

    #[test]
    fn the_scanner_is_clamav_unless_set_off_or_to_a_command_that_takes_the_image() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.scan.command, Scanner::ClamAv);
        assert_eq!(c.scan.clamav_database, PathBuf::from("/var/lib/clamav"));
        assert_eq!(c.scan.concurrency, 2);
        assert!(Config::load(None, env(&[("WM_SCAN_CONCURRENCY", "0")])).is_err());
        let c = Config::load(None, env(&[("WM_SCAN_COMMAND", "off")])).unwrap();
        assert_eq!(c.scan.command, Scanner::Off);
        let c = Config::load(
            None,
            env(&[("WM_SCAN_COMMAND", "trivy rootfs --exit-code 1 {dir}")]),
        )
        .unwrap();
        assert_eq!(
            c.scan.command,
            Scanner::Command(
                ["trivy", "rootfs", "--exit-code", "1", "{dir}"]
                    .map(String::from)
                    .to_vec()
            )
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wm.toml");
        std::fs::write(&file, "[scan]\ncommand = [\"grype\", \"{tar}\"]\n").unwrap();
        let c = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(
            c.scan.command,
            Scanner::Command(vec!["grype".into(), "{tar}".into()])
        );
        let err = Config::load(None, env(&[("WM_SCAN_COMMAND", "trivy rootfs /")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("{dir} or {tar}"), "{err}");
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wm.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmax_ports = 4\n[limits]\nmemory = \"256m\"\n[docker]\ninstance = \"dept\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("WM_MAX_PORTS", "6"),
                ("WM_PORT_RANGE", "40000-40999"),
                ("WM_CPU_LIMIT", "0.5"),
                ("WM_ADMIN_PASSWORD", "correct horse"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_ports, 6, "the environment wins over the file");
        assert_eq!(
            c.docker.port_range(),
            wm_docker::PortRange {
                first: 40000,
                last: 40999
            }
        );
        assert_eq!(c.default_limits().memory_bytes, 256 << 20);
        assert_eq!(c.default_limits().nano_cpus, 500_000_000);
        assert_eq!(c.docker.instance, "dept");
        assert_eq!(format!("{:?}", c.admin_password), "Some([redacted])");
    }

    #[test]
    fn egress_allowed_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wm.toml");
        std::fs::write(
            &file,
            "[docker]\negress_allowed = [\"registry.lab.local\"]\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(c.docker.egress_allowed, vec!["registry.lab.local"]);
        let c = Config::load(
            Some(&file),
            env(&[
                ("WM_EGRESS_ALLOWED", "127.0.0.1:5000 [::1]:5000"),
                ("WM_CI_ALLOWED_SERVICES", "postgres:16"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.docker.egress_allowed,
            vec!["127.0.0.1:5000", "[::1]:5000"]
        );
        assert_eq!(c.ci_allowed_services.as_deref(), Some("postgres:16"));
        let err = Config::load(None, env(&[("WM_EGRESS_ALLOWED", "host:99999")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("egress allowed"), "{err}");
    }

    #[test]
    fn clear_messages_for_bad_settings() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("WM_LISTEN", "nowhere")], "listen"),
            (&[("WM_PORT_RANGE", "50000-40000")], "port range"),
            (&[("WM_PORT_RANGE", "abc")], "port range"),
            (&[("WM_MAX_PORTS", "many")], "WM_MAX_PORTS"),
            (&[("WM_MEMORY_LIMIT", "lots")], "memory limit"),
            (&[("WM_DOCKER_HOST", "ssh://x")], "docker host"),
            (&[("WM_ADMIN_PASSWORD", "short")], "at least 8"),
            (&[("WM_DATABASE_URL", "mysql://x")], "database_url"),
            (&[("WM_SECURE_COOKIES", "maybe")], "true or false"),
            (
                &[("WM_TRUSTED_PROXIES", "10.0.0.0/8 proxy")],
                "trusted proxy",
            ),
            (&[("WM_MAX_CONNECTIONS", "0")], "max_connections"),
        ];
        for (vars, expect) in cases {
            let err = Config::load(None, env(vars)).unwrap_err().to_string();
            assert!(err.contains(expect), "{vars:?}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wm.toml");
        std::fs::write(&file, "lisen = \"x\"").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("unknown field `lisen`"), "{err}");
    }

    #[test]
    fn ldap_from_the_environment() {
        let c = Config::load(
            None,
            env(&[
                ("WM_LDAP_URL", "ldap://ldap.example.org"),
                ("WM_LDAP_BASE_DN", "ou=people,dc=example,dc=org"),
                ("WM_LDAP_TEACHER_GROUP", "teachers"),
                ("WM_LDAP_BIND_DN", "cn=search,dc=example,dc=org"),
                ("WM_LDAP_BIND_PASSWORD", "search-secret"),
            ]),
        )
        .unwrap();
        let l = c.ldap.expect("configured");
        assert_eq!(l.user_filter, "(uid={username})", "the default filter");
        assert_eq!(l.teacher_group.as_deref(), Some("teachers"));
        assert!(!format!("{l:?}").contains("search-secret"));
        let err = Config::load(None, env(&[("WM_LDAP_URL", "ldap://x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("base_dn"), "{err}");
        let err = Config::load(
            None,
            env(&[("WM_LDAP_URL", "ftp://x"), ("WM_LDAP_BASE_DN", "dc=x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ldap://"), "{err}");
    }

    #[test]
    fn admin_password_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from a file\n").unwrap();
        let c = Config::load(
            None,
            env(&[("WM_ADMIN_PASSWORD_FILE", file.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(c.admin_password.unwrap().expose(), "from a file");
    }

    #[test]
    fn trusted_proxies() {
        let c = Config::load(
            None,
            env(&[("WM_TRUSTED_PROXIES", " 10.1.2.3  192.168.0.0/16 fd00::1/64")]),
        )
        .unwrap();
        let shown: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.1.2.3/32", "192.168.0.0/16", "fd00::/64"]);
        assert!(Config::load(None, env(&[]))
            .unwrap()
            .trusted_proxies
            .is_empty());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("1gb"), Some(1 << 30));
        assert_eq!(parse_size("-1m"), None);
        assert_eq!(parse_size("m"), None);
    }
}
