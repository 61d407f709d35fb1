//! Containers lent on the Kubernetes cluster, and the kubeconfigs of users' namespaces.
//!
//! The cluster is reached through a [`Cluster`]: in-process (`[kube]` settings) or a
//! kubernetes agent (`WM_KUBE_AGENT`). Its containers are recorded like Docker ones, with
//! `backend = kubernetes` and `host = kubernetes`; their ports are not host ports but the
//! Service's, reached through the Ingress at `url`. The cluster and the Docker hosts fail
//! independently: every cluster call is bounded by the cluster's own time-out.
//!
//! A create is recorded first (the name is reserved) with a creation id. If the cluster
//! fails half-way, the record stays `creating`: the same request again carries the same id
//! and completes what was made, and any other request for the name is a 409.

use crate::auth::Caller;
use crate::containers::{view, Container, OwnedContainer};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use wm_backend::BackendError;
use wm_domain::{Backend, ContainerKey, ContainerStatus, EnvVar, GuestPort, ImageRef, ShortName};
use wm_kube::{Cluster, KubeContainer, KubeContainerSpec, KubeState};
use wm_store::ContainerRecord;

/// `Container.backend` and `Container.host` of the cluster's containers.
pub const BACKEND: Backend = Backend::Kubernetes;

/// A `creating` record this old with nothing in the cluster was cut short and not
/// retried.
const STALE_CREATE_SECS: i64 = 300;

/// The cluster behind a gate: once a call finds it unreachable, calls answer at once
/// until a health check (every `WM_HOST_CHECK_INTERVAL_SECS`) finds it again, so pages
/// with kubernetes containers do not wait out the cluster's time-out on every load.
pub struct Gated {
    inner: Arc<dyn Cluster>,
    down: std::sync::Mutex<Option<String>>,
}

impl Gated {
    pub fn new(inner: Arc<dyn Cluster>) -> Self {
        Self {
            inner,
            down: std::sync::Mutex::new(None),
        }
    }

    fn open(&self) -> Result<&Arc<dyn Cluster>, BackendError> {
        match self.down.lock().expect("not poisoned").as_ref() {
            Some(why) => Err(BackendError::Unavailable(why.clone())),
            None => Ok(&self.inner),
        }
    }

    fn saw<T>(&self, r: Result<T, BackendError>) -> Result<T, BackendError> {
        if let Err(BackendError::Unavailable(why)) = &r {
            *self.down.lock().expect("not poisoned") = Some(why.clone());
        }
        r
    }
}

#[async_trait::async_trait]
impl Cluster for Gated {
    /// Always asks the cluster, and opens or closes the gate by its answer.
    async fn health(&self) -> Result<String, BackendError> {
        let r = self.inner.health().await;
        if r.is_ok() {
            *self.down.lock().expect("not poisoned") = None;
        }
        self.saw(r)
    }
    async fn ensure_user(
        &self,
        user: &wm_domain::UserName,
        role: wm_domain::Role,
    ) -> Result<(), BackendError> {
        self.saw(self.open()?.ensure_user(user, role).await)
    }
    async fn create(&self, spec: &KubeContainerSpec) -> Result<KubeContainer, BackendError> {
        self.saw(self.open()?.create(spec).await)
    }
    async fn inspect(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        self.saw(self.open()?.inspect(name).await)
    }
    async fn list(&self) -> Result<Vec<KubeContainer>, BackendError> {
        self.saw(self.open()?.list().await)
    }
    async fn start(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        self.saw(self.open()?.start(name).await)
    }
    async fn stop(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        self.saw(self.open()?.stop(name).await)
    }
    async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError> {
        self.saw(self.open()?.remove(name).await)
    }
    async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<String, BackendError> {
        self.saw(self.open()?.logs(name, tail).await)
    }
    async fn kubeconfig(
        &self,
        user: &wm_domain::UserName,
        role: wm_domain::Role,
    ) -> Result<String, BackendError> {
        self.saw(self.open()?.kubeconfig(user, role).await)
    }
}

/// The cluster, or 400 when this installation lends none.
fn cluster(state: &AppState) -> Result<&Arc<dyn Cluster>, ApiError> {
    state.cluster.as_ref().ok_or_else(|| ApiError::Invalid {
        code: "backend_unavailable",
        message: "the kubernetes backend is not enabled on this installation".into(),
        field: Some("backend"),
    })
}

fn status_of(s: KubeState) -> ContainerStatus {
    match s {
        KubeState::Running => ContainerStatus::Running,
        KubeState::Pending => ContainerStatus::Pending,
        KubeState::Stopped => ContainerStatus::Stopped,
        KubeState::Failed => ContainerStatus::Failed,
    }
}

/// The record as the API shows it, with what the cluster says of it when it answered.
pub fn show(state: &AppState, r: &ContainerRecord, found: Option<&KubeContainer>) -> Container {
    let mut c = view(state, r);
    if let Some(k) = found {
        c.ports = k
            .ports
            .iter()
            .map(|&guest| crate::containers::Port { guest, host: None })
            .collect();
        c.url = k.url.clone();
        c.address = k
            .url
            .as_deref()
            .and_then(|u| u.strip_prefix("http://"))
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_default();
    } else if !matches!(r.status, ContainerStatus::Creating | ContainerStatus::Gone) {
        c.status = ContainerStatus::Unknown;
    }
    c
}

/// Creates the container on the cluster (see the module's documentation for retries).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    short: ShortName,
    image: ImageRef,
    env: Vec<EnvVar>,
    ports: Vec<GuestPort>,
) -> Result<Container, ApiError> {
    let cluster = cluster(state)?.clone();
    let key = ContainerKey::new(&caller.name, &short)?;
    let name = key.full_name();
    let conflict = || ApiError::Conflict(format!("you already have a container named {short}"));
    let mut record = match state.store.container(&key).await? {
        // The same request again after the cluster failed half-way: complete it.
        Some(r)
            if r.backend == BACKEND
                && r.status == ContainerStatus::Creating
                && r.image == image.as_str()
                && r.engine_id.is_some() =>
        {
            r
        }
        Some(_) => return Err(conflict()),
        None => {
            let r = ContainerRecord {
                name: name.clone(),
                owner: caller.name.clone(),
                short_name: short.clone(),
                image: image.to_string(),
                backend: BACKEND,
                host: BACKEND.as_str().into(),
                status: ContainerStatus::Creating,
                env: env.iter().map(ToString::to_string).collect(),
                engine_id: Some(crate::new_id()),
                created_at: crate::now(),
                ports: Vec::new(),
            };
            state
                .store
                .insert_container(&r)
                .await
                .map_err(|e| match e {
                    wm_store::StoreError::Conflict(_) => conflict(),
                    other => other.into(),
                })?;
            r
        }
    };
    let spec = KubeContainerSpec {
        owner: caller.name.clone(),
        short_name: short,
        name: name.clone(),
        image,
        env,
        ports,
        creation_id: record.engine_id.clone().expect("set above"),
        role: caller.role,
    };
    match cluster.create(&spec).await {
        Ok(k) => {
            let status = status_of(k.state);
            state
                .store
                .set_container_status(&key, status, None)
                .await?;
            record.status = status;
            Ok(show(state, &record, Some(&k)))
        }
        Err(BackendError::Unavailable(why)) => Err(ApiError::Unavailable(format!(
            "the cluster did not finish creating {name} ({why}); send the same request again to complete it, or delete it"
        ))),
        Err(e) => {
            state.store.delete_container(&key).await?;
            Err(match e {
                BackendError::NameTaken(_) => ApiError::Conflict(format!(
                    "the cluster already has objects named {name} that whalemountain did not make for this request; ask an administrator"
                )),
                other => other.into(),
            })
        }
    }
}

/// Brings the records of the cluster's containers up to date from one list, and shows
/// them; with the cluster unreachable they show as `unknown`.
pub async fn refresh(
    state: &AppState,
    records: &mut [ContainerRecord],
) -> Result<Vec<Option<KubeContainer>>, ApiError> {
    let found = match &state.cluster {
        Some(c) if records.iter().any(|r| r.backend == BACKEND) => c.list().await.ok(),
        _ => None,
    };
    let mut out = Vec::with_capacity(records.len());
    for r in records.iter_mut() {
        let k = match &found {
            Some(list) if r.backend == BACKEND => {
                let k = list.iter().find(|k| is_of(k, r)).cloned();
                settle(state, r, k.as_ref()).await?;
                k
            }
            _ => None,
        };
        out.push(k);
    }
    Ok(out)
}

/// Records what the cluster says of a container: its state, or that it is gone. A
/// create still in flight is left alone.
async fn settle(
    state: &AppState,
    r: &mut ContainerRecord,
    found: Option<&KubeContainer>,
) -> Result<(), ApiError> {
    let now = match found {
        Some(k) => status_of(k.state),
        None if r.status == ContainerStatus::Creating => return Ok(()),
        None => ContainerStatus::Gone,
    };
    if now != r.status {
        crate::containers::set_status(state, r, now).await?;
    }
    Ok(())
}

pub async fn get(state: &AppState, c: OwnedContainer) -> Result<Container, ApiError> {
    let mut record = c.into_record();
    let Some(cluster) = &state.cluster else {
        return Ok(show(state, &record, None));
    };
    match cluster.inspect(&record.key()).await {
        Ok(k) => {
            settle(state, &mut record, Some(&k)).await?;
            Ok(show(state, &record, Some(&k)))
        }
        Err(BackendError::NoSuchContainer) => {
            settle(state, &mut record, None).await?;
            Ok(show(state, &record, None))
        }
        Err(BackendError::Unavailable(_)) => Ok(show(state, &record, None)),
        Err(e) => Err(e.into()),
    }
}

pub async fn start_or_stop(
    state: &AppState,
    c: OwnedContainer,
    start: bool,
) -> Result<Container, ApiError> {
    let cluster = cluster(state)?;
    let mut record = c.into_record();
    let k = if start {
        cluster.start(&record.key()).await
    } else {
        cluster.stop(&record.key()).await
    }
    .map_err(|e| match e {
        BackendError::NoSuchContainer => ApiError::Conflict(format!(
            "container {} is gone from the cluster; delete it",
            record.name
        )),
        other => other.into(),
    })?;
    settle(state, &mut record, Some(&k)).await?;
    Ok(show(state, &record, Some(&k)))
}

/// Removes the container's objects, waiting until they are gone, then its record.
pub async fn delete(state: &AppState, c: OwnedContainer) -> Result<(), ApiError> {
    if c.record().status != ContainerStatus::Gone {
        cluster(state)?.remove(&c.key()).await?;
    }
    state.store.delete_container(&c.key()).await?;
    Ok(())
}

pub async fn logs(
    state: &AppState,
    c: &OwnedContainer,
    tail: u32,
) -> Result<bytes::Bytes, ApiError> {
    Ok(cluster(state)?.logs(&c.key(), tail).await?.into())
}

/// Whether the cluster's `k` is the record's container: the same owner as well as the
/// same full name, which two owners' containers may share.
fn is_of(k: &KubeContainer, r: &ContainerRecord) -> bool {
    k.owner == r.owner.as_str() && k.name == r.name.as_str()
}

/// What the API does not do for the cluster's containers, and what to use instead.
pub fn unsupported(what: &str, kubectl: &str) -> ApiError {
    ApiError::Invalid {
        code: "unsupported_for_backend",
        message: format!(
            "{what} is not offered for kubernetes containers; use `{kubectl}` with the kubeconfig from GET /api/v1/kubeconfig"
        ),
        field: None,
    }
}

/// Marks the cluster's containers gone or updates their status, for the reconcile.
pub async fn reconcile(state: &AppState) -> Result<usize, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Ok(0);
    };
    let mut records: Vec<ContainerRecord> = state
        .store
        .containers(None)
        .await?
        .into_iter()
        .filter(|r| r.backend == BACKEND && r.status != ContainerStatus::Gone)
        .collect();
    if records.is_empty() {
        return Ok(0);
    }
    let found = cluster.list().await?;
    let mut changed = 0;
    let now = crate::now();
    for r in &mut records {
        let before = r.status;
        let k = found.iter().find(|k| is_of(k, r));
        if k.is_none()
            && r.status == ContainerStatus::Creating
            && now - r.created_at > STALE_CREATE_SECS
        {
            // A create cut short long ago and never retried: nothing of it is left.
            state.store.mark_container_gone(&r.key()).await?;
            changed += 1;
            continue;
        }
        settle(state, r, k).await?;
        changed += usize::from(r.status != before);
    }
    Ok(changed)
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct KubeHealth {
    pub reachable: bool,
    /// The API server's version.
    pub version: Option<String>,
    pub error: Option<String>,
}

/// The cluster's health for `/healthz`; `None` without a cluster.
pub async fn health(state: &AppState) -> Option<KubeHealth> {
    let cluster = state.cluster.as_ref()?;
    let r = match tokio::time::timeout(Duration::from_secs(5), cluster.health()).await {
        Ok(r) => r,
        Err(_) => Err(BackendError::Unavailable(
            "no answer within 5 seconds".into(),
        )),
    };
    state.metrics.kubernetes_up.set(i64::from(r.is_ok()));
    Some(match r {
        Ok(version) => KubeHealth {
            reachable: true,
            version: Some(version),
            error: None,
        },
        Err(e) => KubeHealth {
            reachable: false,
            version: None,
            error: Some(e.to_string()),
        },
    })
}

#[utoipa::path(get, path = "/api/v1/kubeconfig",
    responses((status = 200, content_type = "text/yaml", description = "a kubeconfig for the caller's namespace, with a token of limited lifetime"),
        (status = 400, body = crate::api::ErrorBody, description = "the kubernetes backend is not enabled"),
        (status = 503, body = crate::api::ErrorBody)))]
/// A kubeconfig for the caller's own namespace.
pub async fn kubeconfig(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require_full_scope()?;
    let yaml = cluster(&state)?
        .kubeconfig(&caller.name, caller.role)
        .await?;
    Ok(([(CONTENT_TYPE, "text/yaml; charset=utf-8")], yaml).into_response())
}
