//! The docker backend: the only code that talks to a Docker Engine.
//!
//! It implements [`wm_backend::ContainerBackend`] with the operations the console needs and
//! applies the hardening itself (no privileges, `CapDrop: ALL` plus a short allow-list,
//! `no-new-privileges`, limits, private namespaces, only configured mounts), so no caller
//! can start a container that breaks the host's policy.

mod build;
pub mod egress;
mod engine;
pub mod gpus;
pub mod pull_error;
mod settings;
pub mod storage;
mod subnets;

pub use engine::DockerEngine;
pub use gpus::{GpuDecl, GpuDiscovery};
pub use settings::{DockerSettings, MountRule, CAPABILITY_CEILING};
pub use wm_backend::ports::PortRange;

use wm_domain::{ContainerKey, UserName};

/// The engine's name for a lent container: `<instance>.<owner>.<short name>`.
///
/// One name per (instance, owner, short name), whatever the user names: an instance
/// holds no `.` (so it ends at the first one), a short name holds none (so it starts
/// after the last one), and the owner is what is between. The full name
/// `<owner>-<short name>` is not: `ab-c` + `web` and `ab` + `c-web` are both `ab-c-web`.
/// Versions before this one used that; their containers are still found by it (with
/// their labels checked), see `DockerEngine::find`.
pub fn container_name(instance: &str, key: &ContainerKey) -> String {
    format!("{instance}.{}.{}", key.owner.as_str(), key.short.as_str())
}

/// The engine's name for a user's CI runner: `<instance>_ci.<owner>`. An instance holds
/// no `_`, so this is never a lent container's name (whose first part is an instance),
/// and one owner's runner never another's. Runners are found by their labels, so those
/// of earlier versions (`<instance>-ci-<owner>`) are found too.
pub fn runner_name(instance: &str, owner: &UserName) -> String {
    format!("{instance}_ci.{}", owner.as_str())
}

/// The name of a user's network: `<instance>-<owner>`, one per owner within an
/// installation. Installations sharing an engine could make the same name
/// (`wm` + `a-b`, `wm-a` + `b`): an existing network of that name is used only when its
/// labels say it is this owner's of this installation.
pub fn network_name(instance: &str, owner: &UserName) -> String {
    format!("{instance}-{}", owner.as_str())
}

/// Label keys on every object we create.
pub mod labels {
    pub const MANAGED: &str = "wm.managed";
    pub const OWNER: &str = "wm.owner";
    pub const NAME: &str = "wm.name";
    pub const INSTANCE: &str = "wm.instance";
    /// `ci-runner` on a user's CI runner, which is not one of their lent containers.
    pub const KIND: &str = "wm.kind";
    /// The host ports a container was given, `guest:host` pairs separated by spaces: a
    /// stopped container's bindings are not in the engine's container list, and the
    /// host's port pool is rebuilt from this after a restart.
    pub const PORTS: &str = "wm.ports";
    /// The container's memory limit in bytes, for the host's committed-memory figure.
    pub const MEMORY: &str = "wm.memory";
    /// The ids of the GPUs a container was given, separated by commas: the host's GPU
    /// pool is rebuilt from this.
    pub const GPUS: &str = "wm.gpus";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use wm_domain::ShortName;

    fn key(owner: &str, short: &str) -> ContainerKey {
        ContainerKey::new(
            &UserName::parse(owner).unwrap(),
            &ShortName::parse(short).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn engine_names_are_one_per_owner_and_short_name() {
        // Owners with '-', '.', '_' and short names with '-', in every combination that
        // makes the same full name.
        let owners = [
            "ab", "ab-c", "ab.c", "ab_c", "a", "a.b.c", "wm", "wm-ci", "c-web",
        ];
        let shorts = ["web", "c-web", "c", "b-c-web", "ci-ab", "x1"];
        let mut containers = HashSet::new();
        let mut full = HashSet::new();
        for instance in ["wm", "wm-a"] {
            for o in owners {
                for s in shorts {
                    let k = key(o, s);
                    let name = container_name(instance, &k);
                    assert!(containers.insert(name.clone()), "{name} twice");
                    full.insert((instance, k.full_name().to_string()));
                    // Docker's rule for container names.
                    assert!(name.starts_with(|c: char| c.is_ascii_alphanumeric()));
                    assert!(name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
                }
            }
        }
        assert!(
            full.len() < containers.len(),
            "the full names do collide; the engine names must not"
        );
        let mut runners = HashSet::new();
        for instance in ["wm", "wm-a", "wm-ci"] {
            for o in owners {
                let r = runner_name(instance, &UserName::parse(o).unwrap());
                assert!(!containers.contains(&r), "runner {r} is a container's name");
                assert!(runners.insert(r.clone()), "{r} twice");
            }
        }
        assert_eq!(container_name("wm", &key("ab-c", "web")), "wm.ab-c.web");
        assert_eq!(container_name("wm", &key("ab", "c-web")), "wm.ab.c-web");
        assert_eq!(
            runner_name("wm", &UserName::parse("ab").unwrap()),
            "wm_ci.ab"
        );
    }
}
