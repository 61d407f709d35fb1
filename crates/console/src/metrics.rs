//! Prometheus metrics: request counts and latencies, containers by status, and the
//! latency of every call to a container host (through [`InstrumentedBackend`]).

use crate::hosts::HealthCell;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use wm_backend::{
    BackendError, BuildRequest, ByteStream, ContainerBackend, ContainerSpec, ContainerState,
    ExecOutput, ExecRequest, HostInfo, ImageInfo, ProgressStream, RegistryAuth, RunnerSpec,
    RunnerState,
};
use wm_domain::{ContainerKey, ImageRef, UserName};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub host: String,
    pub op: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub engine_call_seconds: Family<CallLabels, Histogram, fn() -> Histogram>,
    pub containers: Family<StatusLabels, Gauge>,
    pub hosts_up: Family<HostLabels, Gauge>,
    pub directory_logins: Family<OutcomeLabels, Counter>,
    pub directory_up: Gauge,
    pub kubernetes_up: Gauge,
    pub sif_conversions: Family<OutcomeLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wm");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route",
            request_seconds.clone(),
        );
        let engine_call_seconds: Family<CallLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "docker_call_duration_seconds",
            "Time of calls to the Docker host, by operation and outcome",
            engine_call_seconds.clone(),
        );
        let containers = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "containers",
            "Containers in the database, by status",
            containers.clone(),
        );
        let hosts_up = Family::<HostLabels, Gauge>::default();
        registry.register(
            "docker_up",
            "1 when the container host answered the last check, by host",
            hosts_up.clone(),
        );
        let directory_logins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "ldap_logins",
            "Logins checked against the directory, by outcome (ok, invalid, unavailable, refused)",
            directory_logins.clone(),
        );
        let directory_up = Gauge::default();
        registry.register(
            "ldap_up",
            "1 when the directory answered the last login or check; 0 without a directory",
            directory_up.clone(),
        );
        let kubernetes_up = Gauge::default();
        registry.register(
            "kubernetes_up",
            "1 when the Kubernetes API answered the last check; 0 without a cluster",
            kubernetes_up.clone(),
        );
        let sif_conversions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sif_conversions",
            "Images converted to SIF (cache misses), by outcome",
            sif_conversions.clone(),
        );
        Self {
            sif_conversions,
            directory_logins,
            directory_up,
            kubernetes_up,
            registry,
            requests,
            request_seconds,
            engine_call_seconds,
            containers,
            hosts_up,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn host_up(&self, host: &str, up: bool) {
        self.hosts_up
            .get_or_create(&HostLabels {
                host: host.to_string(),
            })
            .set(i64::from(up));
    }

    pub fn set_container_counts(&self, counts: &[(wm_domain::ContainerStatus, i64)]) {
        self.containers.clear();
        for (status, n) in counts {
            self.containers
                .get_or_create(&StatusLabels {
                    status: status.as_str().to_string(),
                })
                .set(*n);
        }
    }
}

/// A host's backend that times every call into `wm_docker_call_duration_seconds` and
/// tells the host's health when a call finds the host unreachable.
pub struct InstrumentedBackend {
    inner: Arc<dyn ContainerBackend>,
    metrics: Arc<Metrics>,
    health: Arc<HealthCell>,
}

impl InstrumentedBackend {
    pub fn new(
        inner: Arc<dyn ContainerBackend>,
        metrics: Arc<Metrics>,
        health: Arc<HealthCell>,
    ) -> Self {
        Self {
            inner,
            metrics,
            health,
        }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let start = Instant::now();
        let r = fut.await;
        let outcome = match &r {
            Ok(_) => "ok",
            Err(BackendError::Unavailable(_)) => "unavailable",
            Err(_) => "error",
        };
        if let Err(e) = &r {
            self.health.saw(self.inner.host_name(), e);
        }
        self.metrics
            .engine_call_seconds
            .get_or_create(&CallLabels {
                host: self.inner.host_name().to_string(),
                op,
                outcome,
            })
            .observe(start.elapsed().as_secs_f64());
        r
    }
}

#[async_trait]
impl ContainerBackend for InstrumentedBackend {
    fn host_name(&self) -> &str {
        self.inner.host_name()
    }
    async fn info(&self) -> Result<HostInfo, BackendError> {
        let r = self.timed("info", self.inner.info()).await;
        self.metrics.host_up(self.inner.host_name(), r.is_ok());
        r
    }
    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, BackendError> {
        self.timed("image", self.inner.image(reference)).await
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerState, BackendError> {
        self.timed("create", self.inner.create(spec)).await
    }
    async fn start(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        self.timed("start", self.inner.start(name)).await
    }
    async fn stop(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        self.timed("stop", self.inner.stop(name)).await
    }
    async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError> {
        self.timed("remove", self.inner.remove(name)).await
    }
    async fn remove_network_if_unused(&self, owner: &UserName) -> Result<(), BackendError> {
        self.timed("remove_network", self.inner.remove_network_if_unused(owner))
            .await
    }
    async fn inspect(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        self.timed("inspect", self.inner.inspect(name)).await
    }
    async fn list(&self) -> Result<Vec<ContainerState>, BackendError> {
        self.timed("list", self.inner.list()).await
    }
    async fn exec(
        &self,
        name: &ContainerKey,
        req: &ExecRequest,
    ) -> Result<ExecOutput, BackendError> {
        self.timed("exec", self.inner.exec(name, req)).await
    }
    async fn upload(
        &self,
        name: &ContainerKey,
        dir: &str,
        tar: ByteStream,
    ) -> Result<(), BackendError> {
        self.timed("upload", self.inner.upload(name, dir, tar))
            .await
    }
    async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<Bytes, BackendError> {
        self.timed("logs", self.inner.logs(name, tail)).await
    }
    async fn images(&self) -> Result<Vec<ImageInfo>, BackendError> {
        self.timed("images", self.inner.images()).await
    }
    async fn remove_image(&self, reference: &ImageRef) -> Result<(), BackendError> {
        self.timed("remove_image", self.inner.remove_image(reference))
            .await
    }
    /// Times the start of the pull; the transfer itself is the registry's time.
    async fn pull(
        &self,
        image: &ImageRef,
        auth: Option<RegistryAuth>,
    ) -> Result<ProgressStream, BackendError> {
        self.timed("pull", self.inner.pull(image, auth)).await
    }
    async fn build(
        &self,
        req: &BuildRequest,
        context: Bytes,
    ) -> Result<ProgressStream, BackendError> {
        self.timed("build", self.inner.build(req, context)).await
    }
    async fn save_image(&self, reference: &str) -> Result<ByteStream, BackendError> {
        self.timed("save_image", self.inner.save_image(reference))
            .await
    }
    async fn put_runner(&self, spec: &RunnerSpec) -> Result<RunnerState, BackendError> {
        self.timed("put_runner", self.inner.put_runner(spec)).await
    }
    async fn runner(&self, owner: &UserName) -> Result<Option<RunnerState>, BackendError> {
        self.timed("runner", self.inner.runner(owner)).await
    }
    async fn remove_runner(&self, owner: &UserName) -> Result<(), BackendError> {
        self.timed("remove_runner", self.inner.remove_runner(owner))
            .await
    }
    async fn image_events(
        &self,
    ) -> Result<BoxStream<'static, Result<(), BackendError>>, BackendError> {
        self.inner.image_events().await
    }
}
