//! The use cases: every rule of the console, each behind a type that is given what it
//! uses (the store, the hosts, the settings) and nothing else. They know no HTTP and
//! return their own [`Error`]; `crate::http` is one caller, the background workers
//! another, unit tests a third.
//!
//! - [`accounts`]: logins, sessions, tokens, accounts; the [`accounts::Caller`] every other
//!   use case is given, and the [`accounts::Admin`] proof the administrators' ones ask for.
//! - [`containers`]: lending containers, one entry point over the Docker hosts and the
//!   cluster.
//! - [`images`]: who may use which image, sharing, pulls and builds.
//! - [`sif`]: exports and the SIF cache.
//! - [`ci`]: each user's GitLab runner.
//! - [`storage`]: each user's storage and its files.
//! - [`reconcile`]: the database kept true to the hosts.
//! - [`reclaim`]: idle and expired containers stopped and deleted; [`cleanup`]: unused
//!   users' images and SIF files removed.
//! - [`courses`]: courses, their members, and what their teachers may see and do.
//! - [`users`]: administrators' account management: roles, disabling, deletion.
//! - [`system`]: health, metrics, host administration; [`audit`]: the audit log.

pub(crate) mod accounts;
pub(crate) mod audit;
pub(crate) mod ci;
pub(crate) mod cleanup;
pub(crate) mod containers;
pub(crate) mod courses;
pub(crate) mod error;
pub(crate) mod images;
pub(crate) mod quotas;
pub(crate) mod ratelimit;
pub(crate) mod reclaim;
pub(crate) mod reconcile;
pub(crate) mod said;
pub(crate) mod sif;
pub(crate) mod storage;
pub(crate) mod system;
pub(crate) mod users;
pub(crate) mod vms;

pub(crate) use error::{engine_refusal, human_bytes, trim_number, Error, QuotaKind, Refusal};

#[cfg(test)]
mod tests;
