//! Virtual machines over the agent protocol: `wm agent docker` on a host with libvirt
//! serves its [`VmBackend`] beside the containers (same token, same TLS), and the console
//! speaks to it through [`RemoteVms`], itself a `VmBackend`.
//!
//! - `PUT /v1/vm-images/{owner}/{name}`: the image's bytes, streamed to a file under the
//!   host's spool directory (at most [`BodyLimits::vm_image`](crate::BodyLimits) bytes),
//!   then checked by the host; answers [`DiskInfo`]. `DELETE` removes it.
//! - `POST /v1/vms` a [`VmSpec`] (no XML: the host generates the domain) answers the
//!   forwards the host lent; `GET /v1/vms` the host's domains of ours.
//! - `/v1/vms/{owner}/{name}`: `GET` the state, `DELETE` undefines; `POST .../start`,
//!   `POST .../destroy`, `GET .../xml`, `GET .../transcript?max_bytes=N`, and
//!   `GET .../console` (a WebSocket with the protocol of the containers' terminal).
//!
//! A host whose agent lends no VMs says so in `HostInfo.vms` and answers these with 503.

use crate::client::{path_segment, Transport};
use crate::server::{bad_request, carry_terminal, Failure, Shared};
use crate::AgentEndpoint;
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use wm_backend::vm::{DiskInfo, Forward, FoundVm, VmBackend, VmImageKey, VmSpec, VmState};
use wm_backend::{BackendError, Terminal, Why};
use wm_domain::{ContainerKey, ShortName, UserName};

/// What an agent needs to lend VMs.
pub struct VmAgent {
    pub backend: std::sync::Arc<dyn VmBackend>,
    /// Where uploads are written before the host checks them: on the file system of
    /// the host's images, so keeping one is a rename.
    pub spool_dir: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TranscriptQuery {
    max_bytes: u64,
}

fn vms(a: &crate::server::Agent) -> Result<&VmAgent, Failure> {
    a.vms.as_ref().ok_or_else(|| {
        Failure(BackendError::Unavailable(Why::new(
            "no_libvirt",
            [],
            "this host lends no virtual machines (its agent has no libvirt)",
        )))
    })
}

fn vm_key((owner, name): &(String, String)) -> Result<ContainerKey, Failure> {
    let owner = UserName::parse(owner).map_err(|e| bad_request(e.to_string()))?;
    let short = ShortName::parse(name).map_err(|e| bad_request(e.to_string()))?;
    ContainerKey::new(&owner, &short).map_err(|e| bad_request(e.to_string()))
}

fn image_key((owner, name): &(String, String)) -> Result<VmImageKey, Failure> {
    Ok(VmImageKey {
        owner: UserName::parse(owner).map_err(|e| bad_request(e.to_string()))?,
        name: ShortName::parse(name).map_err(|e| bad_request(e.to_string()))?,
    })
}

/// A spool file of this process, removed when dropped unless the host kept it.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

static SPOOLED: AtomicU64 = AtomicU64::new(0);

pub(crate) async fn import_image(
    State(a): Shared,
    UrlPath(name): UrlPath<(String, String)>,
    body: Body,
) -> Result<Json<DiskInfo>, Failure> {
    let key = image_key(&name)?;
    let v = vms(&a)?;
    let limit = a.limits.vm_image as u64;
    std::fs::create_dir_all(&v.spool_dir).map_err(|e| {
        BackendError::Storage(Why::new(
            "vm_spool",
            [],
            format!("cannot make the upload directory: {e}"),
        ))
    })?;
    let spool = Spool(v.spool_dir.join(format!(
        "{}.{}.{}.{}",
        std::process::id(),
        SPOOLED.fetch_add(1, Ordering::Relaxed),
        key.owner.as_str(),
        key.name.as_str()
    )));
    let mut file = tokio::fs::File::create(&spool.0).await.map_err(|e| {
        BackendError::Storage(Why::new(
            "vm_spool",
            [],
            format!("cannot spool the upload: {e}"),
        ))
    })?;
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.try_next().await.map_err(|e| {
        bad_request(Why::new(
            "image_upload_broke",
            [],
            format!("the upload broke off: {e}"),
        ))
    })? {
        written += chunk.len() as u64;
        if written > limit {
            return Err(bad_request(Why::new(
                "image_too_large",
                [("max", limit.to_string())],
                format!("the image is larger than this host's limit of {limit} bytes"),
            )));
        }
        file.write_all(&chunk).await.map_err(|e| {
            BackendError::Storage(Why::new(
                "vm_spool",
                [],
                format!("cannot spool the upload: {e}"),
            ))
        })?;
    }
    file.flush().await.map_err(|e| {
        BackendError::Storage(Why::new(
            "vm_spool",
            [],
            format!("cannot spool the upload: {e}"),
        ))
    })?;
    drop(file);
    Ok(Json(v.backend.import_image(&key, &spool.0).await?))
}

pub(crate) async fn remove_image(
    State(a): Shared,
    UrlPath(name): UrlPath<(String, String)>,
) -> Result<StatusCode, Failure> {
    vms(&a)?.backend.remove_image(&image_key(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn define(
    State(a): Shared,
    Json(spec): Json<VmSpec>,
) -> Result<Json<Vec<Forward>>, Failure> {
    Ok(Json(vms(&a)?.backend.define(&spec).await?))
}

pub(crate) async fn list(State(a): Shared) -> Result<Json<Vec<FoundVm>>, Failure> {
    Ok(Json(vms(&a)?.backend.list().await?))
}

pub(crate) async fn state(
    State(a): Shared,
    UrlPath(name): UrlPath<(String, String)>,
) -> Result<Json<VmState>, Failure> {
    Ok(Json(vms(&a)?.backend.state(&vm_key(&name)?).await?))
}

pub(crate) async fn undefine(
    State(a): Shared,
    UrlPath(name): UrlPath<(String, String)>,
) -> Result<StatusCode, Failure> {
    vms(&a)?.backend.undefine(&vm_key(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn start(
    State(a): Shared,
    UrlPath(name): UrlPath<(String, String)>,
) -> Result<StatusCode, Failure> {
    vms(&a)?.backend.start(&vm_key(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn destroy(
    State(a): Shared,
    UrlPath(name): UrlPath<(String, String)>,
) -> Result<StatusCode, Failure> {
    vms(&a)?.backend.destroy(&vm_key(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn dumpxml(
    State(a): Shared,
    UrlPath(name): UrlPath<(String, String)>,
) -> Result<String, Failure> {
    Ok(vms(&a)?.backend.dumpxml(&vm_key(&name)?).await?)
}

pub(crate) async fn transcript(
    State(a): Shared,
    UrlPath(name): UrlPath<(String, String)>,
    Query(q): Query<TranscriptQuery>,
) -> Result<Vec<u8>, Failure> {
    Ok(vms(&a)?
        .backend
        .transcript(&vm_key(&name)?, q.max_bytes)
        .await?)
}

pub(crate) async fn console(
    State(a): Shared,
    UrlPath(name): UrlPath<(String, String)>,
    ws: WebSocketUpgrade,
) -> Result<Response, Failure> {
    let terminal = vms(&a)?.backend.console(&vm_key(&name)?).await?;
    Ok(ws
        .max_message_size(1 << 20)
        .on_upgrade(move |socket| carry_terminal(socket, terminal))
        .into_response())
}

/// The VMs of a host reached through its agent.
pub struct RemoteVms {
    t: Transport,
}

impl RemoteVms {
    /// As [`RemoteBackend::new`](crate::RemoteBackend::new).
    pub fn new(
        endpoint: &AgentEndpoint,
        token: &str,
        tls: Option<rustls::ClientConfig>,
        call_timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            t: Transport::new(endpoint, token, tls, call_timeout)?,
        })
    }

    fn vm_path(key: &ContainerKey, rest: &str) -> String {
        format!(
            "/vms/{}/{}{rest}",
            path_segment(key.owner.as_str()),
            path_segment(key.short.as_str())
        )
    }

    fn image_path(key: &VmImageKey) -> String {
        format!(
            "/vm-images/{}/{}",
            path_segment(key.owner.as_str()),
            path_segment(key.name.as_str())
        )
    }

    async fn post(&self, path: &str) -> Result<(), BackendError> {
        self.t.no_content(self.t.http.post(self.t.url(path))).await
    }
}

#[async_trait]
impl VmBackend for RemoteVms {
    async fn import_image(&self, key: &VmImageKey, file: &Path) -> Result<DiskInfo, BackendError> {
        let f = tokio::fs::File::open(file).await.map_err(|e| {
            BackendError::Storage(Why::new(
                "vm_spool",
                [],
                format!("cannot read the upload: {e}"),
            ))
        })?;
        let len = f
            .metadata()
            .await
            .map_err(|e| {
                BackendError::Storage(Why::new(
                    "vm_spool",
                    [],
                    format!("cannot read the upload: {e}"),
                ))
            })?
            .len();
        let req = self
            .t
            .http
            .put(self.t.url(&Self::image_path(key)))
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(
                tokio_util::io::ReaderStream::new(f),
            ));
        // As long as the upload takes (bounded by its size), then the host's check.
        let info =
            self.t.send(req, None).await?.json().await.map_err(|e| {
                BackendError::Engine(format!("the VM host's answer is unreadable: {e}"))
            });
        let _ = tokio::fs::remove_file(file).await;
        info
    }

    async fn remove_image(&self, key: &VmImageKey) -> Result<(), BackendError> {
        self.t
            .no_content(self.t.http.delete(self.t.url(&Self::image_path(key))))
            .await
    }

    async fn define(&self, spec: &VmSpec) -> Result<Vec<Forward>, BackendError> {
        self.t.call(reqwest::Method::POST, "/vms", Some(spec)).await
    }

    async fn start(&self, key: &ContainerKey) -> Result<(), BackendError> {
        self.post(&Self::vm_path(key, "/start")).await
    }

    async fn destroy(&self, key: &ContainerKey) -> Result<(), BackendError> {
        self.post(&Self::vm_path(key, "/destroy")).await
    }

    async fn undefine(&self, key: &ContainerKey) -> Result<(), BackendError> {
        self.t
            .no_content(self.t.http.delete(self.t.url(&Self::vm_path(key, ""))))
            .await
    }

    async fn state(&self, key: &ContainerKey) -> Result<VmState, BackendError> {
        self.t
            .call(reqwest::Method::GET, &Self::vm_path(key, ""), None::<&()>)
            .await
    }

    async fn dumpxml(&self, key: &ContainerKey) -> Result<String, BackendError> {
        let req = self.t.http.get(self.t.url(&Self::vm_path(key, "/xml")));
        let resp = self.t.send(req, Some(self.t.timeout)).await?;
        resp.text().await.map_err(|e| self.t.unreachable(&e))
    }

    async fn list(&self) -> Result<Vec<FoundVm>, BackendError> {
        self.t.call(reqwest::Method::GET, "/vms", None::<&()>).await
    }

    async fn console(&self, key: &ContainerKey) -> Result<Terminal, BackendError> {
        let req = self.t.http.get(self.t.url(&Self::vm_path(key, "/console")));
        self.t.terminal(req).await
    }

    async fn transcript(
        &self,
        key: &ContainerKey,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let req = self
            .t
            .http
            .get(self.t.url(&Self::vm_path(key, "/transcript")))
            .query(&TranscriptQuery { max_bytes });
        let resp = self.t.send(req, Some(self.t.timeout)).await?;
        Ok(resp
            .bytes()
            .await
            .map_err(|e| self.t.unreachable(&e))?
            .to_vec())
    }
}
