//! The Kubernetes backend's own policy: how to reach the cluster, what the objects look
//! like (domain, classes, volume) and how much each role may use.
//!
//! The console maps its variables onto these fields: `WM_KUBECONFIG` → `kubeconfig`,
//! `WM_KUBE_DOMAIN` → `domain`, `WM_KUBE_INGRESS_CLASS` → `ingress_class`,
//! `WM_KUBE_STORAGE_CLASS` → `storage_class`, and `[kube]` in the TOML file for the rest.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use wm_domain::Role;

/// CPU and memory as Kubernetes quantities (`500m`, `2`; `512Mi`, `4Gi`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
}

impl Resources {
    fn new(cpu: &str, memory: &str) -> Self {
        Self {
            cpu: cpu.into(),
            memory: memory.into(),
        }
    }
}

/// What one role gets. `default` is each container's request and limit; `max` is the
/// ceiling of one container (LimitRange) and also of the whole namespace at once
/// (ResourceQuota), so a student can run one big container or several small ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleResources {
    pub default: Resources,
    pub max: Resources,
    /// The most NVIDIA GPUs (`nvidia.com/gpu`) the role's namespace may request at once
    /// (ResourceQuota), which is also the most one container may ask for; default 0:
    /// none.
    #[serde(default)]
    pub max_gpus: u32,
}

/// The most GPUs a role may be given.
pub const MAX_GPUS: u32 = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesByRole {
    pub student: RoleResources,
    pub teacher: RoleResources,
    pub admin: RoleResources,
}

impl Default for ResourcesByRole {
    fn default() -> Self {
        let r = |dc, dm, mc, mm| RoleResources {
            default: Resources::new(dc, dm),
            max: Resources::new(mc, mm),
            max_gpus: 0,
        };
        Self {
            student: r("500m", "512Mi", "2", "4Gi"),
            teacher: r("1", "1Gi", "4", "8Gi"),
            admin: r("1", "1Gi", "8", "16Gi"),
        }
    }
}

impl ResourcesByRole {
    pub fn of(&self, role: Role) -> &RoleResources {
        match role {
            Role::Student => &self.student,
            Role::Teacher => &self.teacher,
            Role::Admin => &self.admin,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeSettings {
    /// A kubeconfig file for the backend's own (administrative) access. `None`: the
    /// in-cluster service account, or whatever kube-rs infers (`KUBECONFIG`, `~/.kube`).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; `None` is its current context.
    pub context: Option<String>,
    /// Ingress hosts are `<container>.<user>.<domain>`.
    pub domain: String,
    pub ingress_class: Option<String>,
    /// Storage class of the users' volumes; `None` is the cluster's default class.
    pub storage_class: Option<String>,
    /// Size of each user's PersistentVolumeClaim (`10Gi`); `None`: no persistent volume.
    pub volume_size: Option<String>,
    /// Lifetime of the tokens in the kubeconfigs handed to users (at least 600, as the
    /// TokenRequest API requires).
    pub token_expiry_secs: u64,
    /// Hand out long-lived service-account token Secrets instead of short-lived tokens,
    /// for clusters or users that cannot refresh tokens.
    pub long_lived_tokens: bool,
    /// The ingress controller's namespace: the only one whose traffic the users'
    /// NetworkPolicy admits besides the namespace's own.
    pub ingress_namespace: String,
    /// The API server URL written into users' kubeconfigs when they reach the cluster by
    /// another address than the backend (`None`: the backend's own).
    pub public_server: Option<String>,
    /// Longest wait for one API call; past it the cluster counts as unavailable.
    pub call_timeout_secs: u64,
    /// Longest wait to establish a connection to the API server.
    pub connect_timeout_secs: u64,
    /// Longest wait for a removed container's objects to be gone.
    pub delete_timeout_secs: u64,
    /// Label value separating installations that share a cluster (`wm.instance`).
    pub instance: String,
    pub resources: ResourcesByRole,
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            domain: "localhost".into(),
            ingress_class: None,
            storage_class: None,
            volume_size: None,
            token_expiry_secs: 3600,
            long_lived_tokens: false,
            ingress_namespace: "ingress-nginx".into(),
            public_server: None,
            call_timeout_secs: 5,
            connect_timeout_secs: 5,
            delete_timeout_secs: 60,
            instance: "wm".into(),
            resources: ResourcesByRole::default(),
        }
    }
}

/// The least lifetime the TokenRequest API accepts.
pub const MIN_TOKEN_EXPIRY_SECS: u64 = 600;

impl KubeSettings {
    /// Checks every field, so a wrong setting stops the start with a message naming it
    /// instead of failing on the first container.
    pub fn validate(&self) -> Result<(), String> {
        if !is_dns_subdomain(&self.domain) {
            return Err(format!(
                "kube.domain {:?} is not a DNS name (lowercase letters, digits, '-' and '.')",
                self.domain
            ));
        }
        for (key, v) in [
            ("kube.ingress_class", &self.ingress_class),
            ("kube.storage_class", &self.storage_class),
        ] {
            if let Some(v) = v {
                if !is_dns_subdomain(v) {
                    return Err(format!("{key} {v:?} is not a valid class name"));
                }
            }
        }
        if !is_dns_label(&self.ingress_namespace) {
            return Err(format!(
                "kube.ingress_namespace {:?} is not a namespace name",
                self.ingress_namespace
            ));
        }
        if !is_label_value(&self.instance) || self.instance.is_empty() {
            return Err(format!(
                "kube.instance {:?} is not a label value (at most 63 letters, digits, '-', '_' \
                 and '.', starting and ending with a letter or digit)",
                self.instance
            ));
        }
        if let Some(size) = &self.volume_size {
            if bytes(size).is_none_or(|b| b <= 0.0) {
                return Err(format!(
                    "kube.volume_size {size:?} is not a size such as 10Gi"
                ));
            }
        }
        if let Some(server) = &self.public_server {
            if !(server.starts_with("https://") || server.starts_with("http://")) {
                return Err(format!(
                    "kube.public_server {server:?} must be an https:// (or http://) URL"
                ));
            }
        }
        if self.token_expiry_secs < MIN_TOKEN_EXPIRY_SECS {
            return Err(format!(
                "kube.token_expiry_secs must be at least {MIN_TOKEN_EXPIRY_SECS} (Kubernetes refuses shorter tokens)"
            ));
        }
        for (key, v) in [
            ("kube.call_timeout_secs", self.call_timeout_secs),
            ("kube.connect_timeout_secs", self.connect_timeout_secs),
            ("kube.delete_timeout_secs", self.delete_timeout_secs),
        ] {
            if v == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        for role in [Role::Student, Role::Teacher, Role::Admin] {
            let r = self.resources.of(role);
            let key = format!("kube.resources.{}", role.as_str());
            let mut parsed = Vec::new();
            for (which, res) in [("default", &r.default), ("max", &r.max)] {
                let cpu = cores(&res.cpu).filter(|c| *c > 0.0).ok_or_else(|| {
                    format!(
                        "{key}.{which}.cpu {:?} is not a CPU amount such as 500m or 2",
                        res.cpu
                    )
                })?;
                let mem = bytes(&res.memory).filter(|b| *b > 0.0).ok_or_else(|| {
                    format!(
                        "{key}.{which}.memory {:?} is not a memory size such as 512Mi or 4Gi",
                        res.memory
                    )
                })?;
                parsed.push((cpu, mem));
            }
            if parsed[0].0 > parsed[1].0 || parsed[0].1 > parsed[1].1 {
                return Err(format!("{key}.default is above {key}.max"));
            }
            if r.max_gpus > MAX_GPUS {
                return Err(format!("{key}.max_gpus must be 0 to {MAX_GPUS}"));
            }
        }
        Ok(())
    }
}

/// Splits a quantity into its number and suffix. Only the plain decimal forms people
/// write are accepted (`0.5`, `500m`, `4Gi`), not exponents.
fn split_quantity(s: &str) -> Option<(f64, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    Some((num.parse().ok()?, suffix))
}

/// A CPU quantity in cores.
pub(crate) fn cores(s: &str) -> Option<f64> {
    let (n, suffix) = split_quantity(s)?;
    match suffix {
        "" => Some(n),
        "m" => Some(n / 1000.0),
        _ => None,
    }
}

/// A memory or storage quantity in bytes.
pub(crate) fn bytes(s: &str) -> Option<f64> {
    let (n, suffix) = split_quantity(s)?;
    let factor = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * factor)
}

/// RFC 1123 label: what namespaces and most object names must be.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`, starting and ending
/// with an alphanumeric.
pub(crate) fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        KubeSettings::default().validate().unwrap();
    }

    #[test]
    fn quantities() {
        assert_eq!(cores("500m"), Some(0.5));
        assert_eq!(cores("2"), Some(2.0));
        assert_eq!(cores("0.25"), Some(0.25));
        assert_eq!(cores("2Gi"), None);
        assert_eq!(bytes("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(bytes("1G"), Some(1e9));
        assert_eq!(bytes("1e3"), None);
        assert_eq!(bytes(".5Gi"), None);
        assert_eq!(bytes(""), None);
    }

    #[test]
    fn wrong_settings_are_named() {
        let mut s = KubeSettings::default();
        s.resources.student.default.cpu = "3".into();
        assert!(s
            .validate()
            .unwrap_err()
            .contains("kube.resources.student.default"));

        let mut s = KubeSettings::default();
        s.resources.teacher.max.memory = "lots".into();
        assert!(s
            .validate()
            .unwrap_err()
            .contains("kube.resources.teacher.max.memory"));

        let s = KubeSettings {
            token_expiry_secs: 60,
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().contains("token_expiry_secs"));

        let s = KubeSettings {
            domain: "Example.ORG".into(),
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().contains("kube.domain"));

        let s = KubeSettings {
            volume_size: Some("10 Gi".into()),
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().contains("kube.volume_size"));

        let s = KubeSettings {
            instance: "-wm".into(),
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().contains("kube.instance"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<KubeSettings>(r#"{"domian": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("domian"), "{err}");
        let s: KubeSettings =
            serde_json::from_str(r#"{"domain": "k.example.org", "volume_size": "5Gi"}"#).unwrap();
        assert_eq!(s.domain, "k.example.org");
        assert_eq!(s.call_timeout_secs, 5);
    }

    #[test]
    fn names() {
        assert!(is_dns_label("alice"));
        assert!(is_dns_label("a-1"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label("a_b"));
        assert!(!is_dns_label("a-"));
        assert!(is_dns_subdomain("web.alice.localhost"));
        assert!(is_label_value("alice_x.y"));
        assert!(!is_label_value("alice_"));
    }
}
