//! The Kubernetes cluster behind the one gate of [`super::gate`]: once a call finds it
//! unreachable, calls answer at once until a health check finds it again, so pages with
//! kubernetes containers do not wait out the cluster's time-out on every load.

use super::gate::Gate;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use wm_backend::BackendError;
use wm_domain::{ContainerKey, Role, UserName};
use wm_kube::{Cluster, KubeContainer, KubeContainerSpec};

/// How long a health check waits for the cluster.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct GatedCluster {
    inner: Arc<dyn Cluster>,
    gate: Gate<String>,
    metrics: Arc<Metrics>,
}

impl GatedCluster {
    pub(crate) fn new(inner: Arc<dyn Cluster>, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            gate: Gate::new("kubernetes"),
            metrics,
        }
    }

    /// Asks the cluster how it is (bounded in time), opens or closes the gate by its
    /// answer, and records it in the metrics. Answers the API server's version.
    pub(crate) async fn check(&self) -> Result<String, BackendError> {
        let r = match tokio::time::timeout(CHECK_TIMEOUT, self.inner.health()).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Unavailable(
                format!("no answer within {} seconds", CHECK_TIMEOUT.as_secs()).into(),
            )),
        };
        match &r {
            Ok(version) => {
                self.gate.up(version.clone());
            }
            Err(e) => self.gate.failed(e),
        }
        self.metrics.kubernetes_up.set(i64::from(r.is_ok()));
        r
    }

    fn open(&self) -> Result<&Arc<dyn Cluster>, BackendError> {
        self.gate.pass().map(|()| &self.inner)
    }

    fn saw<T>(&self, r: Result<T, BackendError>) -> Result<T, BackendError> {
        if let Err(e) = &r {
            self.gate.saw(e);
        }
        r
    }

    pub(crate) async fn create(
        &self,
        spec: &KubeContainerSpec,
    ) -> Result<KubeContainer, BackendError> {
        self.saw(self.open()?.create(spec).await)
    }
    pub(crate) async fn inspect(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        self.saw(self.open()?.inspect(name).await)
    }
    pub(crate) async fn list(&self) -> Result<Vec<KubeContainer>, BackendError> {
        self.saw(self.open()?.list().await)
    }
    pub(crate) async fn start(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        self.saw(self.open()?.start(name).await)
    }
    pub(crate) async fn stop(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        self.saw(self.open()?.stop(name).await)
    }
    pub(crate) async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError> {
        self.saw(self.open()?.remove(name).await)
    }
    pub(crate) async fn logs(
        &self,
        name: &ContainerKey,
        tail: u32,
    ) -> Result<String, BackendError> {
        self.saw(self.open()?.logs(name, tail).await)
    }
    pub(crate) async fn kubeconfig(
        &self,
        user: &UserName,
        role: Role,
        courses: &[String],
    ) -> Result<String, BackendError> {
        self.saw(self.open()?.kubeconfig(user, role, courses).await)
    }
}
