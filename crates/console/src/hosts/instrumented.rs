//! Every call to a host, timed and watched.

use super::gate::Gate;
use crate::metrics::{CallLabels, Metrics};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use wm_backend::{
    Activity, BackendError, BuildRequest, ByteStream, ContainerBackend, ContainerSpec,
    ContainerState, ExecOutput, ExecRequest, HostInfo, ImageInfo, ProgressStream, RegistryAuth,
    RunnerSpec, RunnerState, StoragePath, Terminal, TerminalRequest,
};
use wm_domain::{ContainerKey, ImageRef, UserName};

/// A host's backend that times every call into `wm_docker_call_duration_seconds` and
/// tells the host's health when a call finds the host unreachable.
pub(super) struct InstrumentedBackend {
    inner: Arc<dyn ContainerBackend>,
    metrics: Arc<Metrics>,
    health: Arc<Gate<HostInfo>>,
}

impl InstrumentedBackend {
    pub(super) fn new(
        inner: Arc<dyn ContainerBackend>,
        metrics: Arc<Metrics>,
        health: Arc<Gate<HostInfo>>,
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
            self.health.saw(e);
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
    async fn activity(&self, name: &ContainerKey) -> Result<Activity, BackendError> {
        self.timed("activity", self.inner.activity(name)).await
    }
    async fn list(&self) -> Result<Vec<ContainerState>, BackendError> {
        self.timed("list", self.inner.list()).await
    }
    async fn list_of(&self, owner: &UserName) -> Result<Vec<ContainerState>, BackendError> {
        self.timed("list_of", self.inner.list_of(owner)).await
    }
    async fn exec(
        &self,
        name: &ContainerKey,
        req: &ExecRequest,
    ) -> Result<ExecOutput, BackendError> {
        self.timed("exec", self.inner.exec(name, req)).await
    }
    async fn terminal(
        &self,
        name: &ContainerKey,
        req: &TerminalRequest,
    ) -> Result<Terminal, BackendError> {
        self.timed("terminal", self.inner.terminal(name, req)).await
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
    async fn download(&self, name: &ContainerKey, path: &str) -> Result<ByteStream, BackendError> {
        self.timed("download", self.inner.download(name, path))
            .await
    }
    async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<Bytes, BackendError> {
        self.timed("logs", self.inner.logs(name, tail)).await
    }
    async fn follow_logs(
        &self,
        name: &ContainerKey,
        tail: u32,
    ) -> Result<ByteStream, BackendError> {
        self.timed("follow_logs", self.inner.follow_logs(name, tail))
            .await
    }
    async fn storage_usage(&self, owner: &UserName) -> Result<i64, BackendError> {
        self.timed("storage_usage", self.inner.storage_usage(owner))
            .await
    }
    async fn storage_stat(
        &self,
        owner: &UserName,
        path: &str,
    ) -> Result<StoragePath, BackendError> {
        self.timed("storage_stat", self.inner.storage_stat(owner, path))
            .await
    }
    async fn storage_read(&self, owner: &UserName, path: &str) -> Result<ByteStream, BackendError> {
        self.timed("storage_read", self.inner.storage_read(owner, path))
            .await
    }
    async fn storage_write(
        &self,
        owner: &UserName,
        path: &str,
        body: ByteStream,
    ) -> Result<i64, BackendError> {
        self.timed("storage_write", self.inner.storage_write(owner, path, body))
            .await
    }
    async fn storage_remove(&self, owner: &UserName, path: &str) -> Result<(), BackendError> {
        self.timed("storage_remove", self.inner.storage_remove(owner, path))
            .await
    }
    async fn storage_delete(&self, owner: &UserName) -> Result<(), BackendError> {
        self.timed("storage_delete", self.inner.storage_delete(owner))
            .await
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
    async fn image_filesystem(&self, reference: &str) -> Result<ByteStream, BackendError> {
        self.timed("image_filesystem", self.inner.image_filesystem(reference))
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
