//! The console: the only service users talk to.
//!
//! It authenticates callers, owns the database, checks ownership on every operation,
//! places containers on hosts, and serves the REST API v1. Container hosts are reached
//! only through [`wm_backend::ContainerBackend`], in-process or through an agent.

pub mod api;
pub mod app;
mod audit;
pub mod auth;
pub mod build_context;
pub mod ci;
pub mod config;
pub mod containers;
pub mod error;
pub mod export;
mod extract;
pub mod hosts;
pub mod images;
pub mod kube;
pub mod metrics;
pub mod origin;
mod permissions;
mod ratelimit;
pub mod reconcile;
pub mod sealed;
pub mod serve;
pub mod state;
mod web;

pub use app::{build, build_with_agents, Application, StartError};
pub use config::Config;

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix microseconds now (orders the audit log).
pub(crate) fn now_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// Unix seconds as RFC 3339.
pub(crate) fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A random identifier for rows that need one.
pub(crate) fn new_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}
