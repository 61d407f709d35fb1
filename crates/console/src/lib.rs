//! The console: the only service users talk to.
//!
//! It authenticates callers, owns the database, checks ownership on every operation,
//! places containers on hosts, and serves the REST API v1 and the web pages. Container
//! hosts are reached only through [`wm_backend::ContainerBackend`], in-process or through
//! an agent.
//!
//! # Layers
//! The modules form layers; each may import only the layers below it, and a test
//! (`layers::modules_import_only_the_layers_below`) reads every `use crate::` to keep it so:
//!
//! | module     | owns                                                        | may import                         |
//! |------------|-------------------------------------------------------------|------------------------------------|
//! | `app`      | the composition root: builds everything, runs it            | everything                         |
//! | `http`     | REST API and pages, one file per resource; extractors; the one mapping from errors to HTTP; the server loop | `service`, `config`, `metrics`, `util` |
//! | `workers`  | background work: reconcile, health checks, image events, reclaim and clean-up | `service`, `hosts`, `config`, `metrics`, `util` |
//! | `service`  | the use cases and their own error; knows no HTTP            | `hosts`, `config`, `metrics`, `sealed`, `permissions`, `util` |
//! | `hosts`    | the container hosts, their health, placement, the cluster gate | `config`, `metrics`, `util`     |
//! | `sealed`   | secrets sealed in the database                              | `permissions`                      |
//! | `config`, `metrics`, `permissions`, `util` | settings, the metrics registry, file modes, clocks and ids | `util` (`config` only) |

#![warn(unreachable_pub)]

pub mod app;
pub mod config;
mod hosts;
mod http;
mod metrics;
mod permissions;
mod sealed;
mod service;
mod util;
mod workers;

#[cfg(test)]
mod layers;

pub use app::{build, build_with_agents, Application, StartError};
pub use config::Config;
