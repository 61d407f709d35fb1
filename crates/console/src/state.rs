//! What every request handler shares.

use crate::config::Config;
use crate::hosts::Hosts;
use crate::metrics::Metrics;
use std::sync::Arc;
use wm_store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The container hosts: the local engine, or the agents.
    pub hosts: Arc<Hosts>,
    /// The Kubernetes cluster, when one is configured.
    pub cluster: Option<Arc<dyn wm_kube::Cluster>>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// The department directory, when one is configured.
    pub directory: Option<Arc<wm_ldap::Directory>>,
    pub catalog: Arc<crate::images::Catalog>,
    pub sif_cache: Arc<crate::export::SifCache>,
    pub login_limiter: Arc<crate::ratelimit::LoginLimiter>,
    /// One permit per temporary upload file the server holds, across all requests.
    pub upload_files: Arc<tokio::sync::Semaphore>,
    /// Seals secrets stored in the database (CI runner tokens).
    pub sealer: Arc<crate::sealed::Sealer>,
}
