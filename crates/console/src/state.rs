//! What every request handler shares.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::ports::PortAllocator;
use std::sync::Arc;
use wm_backend::ContainerBackend;
use wm_store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub backend: Arc<dyn ContainerBackend>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub ports: Arc<PortAllocator>,
    /// The department directory, when one is configured.
    pub directory: Option<Arc<wm_ldap::Directory>>,
    pub catalog: Arc<crate::images::Catalog>,
    pub sif_cache: Arc<crate::export::SifCache>,
    pub login_limiter: Arc<crate::ratelimit::LoginLimiter>,
}
