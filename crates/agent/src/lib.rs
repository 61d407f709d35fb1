//! The agent protocol: a container host's operations over HTTP.
//!
//! `wm agent docker` serves a [`ContainerBackend`](wm_backend::ContainerBackend) with
//! [`server::router`]; the console speaks to it through [`RemoteBackend`], which is itself
//! a `ContainerBackend`, so the console cannot tell an agent from an in-process host.
//! `wm agent kubernetes` does the same for a [`Cluster`](wm_kube::Cluster) with
//! [`kube::router`] and [`kube::RemoteCluster`].
//!
//! - Everything under `/v1/` needs `Authorization: Bearer <agent token>` (compared in
//!   constant time); `/healthz` answers without it.
//! - Requests and answers are the backend's own serde types as JSON. A failure is its
//!   status and `{"error": BackendError}`, so the console gets back the very error the
//!   host gave: a sentence for the user travels as a [`wm_backend::Why`],
//!   `{"reason", "params", "text"}`, which the console says in the user's language by its
//!   key; a sentence without a key is a plain string, as agents of older versions send.
//! - Long operations (pulls, builds, image events) are NDJSON, one `{"ok": ...}` or
//!   `{"err": BackendError}` per line; downloads and uploads are raw byte streams.
//! - A host with libvirt lends virtual machines through the same agent ([`vm`]).
//! - Optionally HTTPS, and optionally mutual TLS ([`tls`]).
//! - For benchmarks and tests only (feature `simulated`): `simulated::SimulatedAgent`, the
//!   real routes in front of an in-memory host.

pub mod client;
pub mod kube;
pub mod protocol;
pub mod server;
#[cfg(feature = "simulated")]
pub mod simulated;
pub mod tls;
pub mod vm;

pub use client::{AgentEndpoint, RemoteBackend};
pub use server::{router, serve, AgentToken, BodyLimits};
pub use vm::{RemoteVms, VmAgent};
