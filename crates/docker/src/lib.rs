//! The docker backend: the only code that talks to a Docker Engine.
//!
//! It implements [`wm_backend::ContainerBackend`] with the operations the console needs and
//! applies the hardening itself (no privileges, `CapDrop: ALL` plus a short allow-list,
//! `no-new-privileges`, limits, private namespaces, only configured mounts), so no caller
//! can start a container that breaks the host's policy.

mod build;
pub mod egress;
mod engine;
mod ports;
pub mod pull_error;
mod settings;
mod subnets;

pub use engine::DockerEngine;
pub use settings::{DockerSettings, MountRule, PortRange, CAPABILITY_CEILING};

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
}
