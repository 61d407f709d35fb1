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

use super::{set_status, Container, OwnedContainer, Port};
use crate::hosts::GatedCluster;
use crate::service::accounts::Caller;
use crate::service::images::Images;
use crate::service::Error;
use crate::util::{new_id, now};
use std::sync::Arc;
use wm_backend::BackendError;
use wm_domain::{Backend, ContainerKey, ContainerStatus};
use wm_kube::{KubeContainer, KubeContainerSpec, KubeState};
use wm_store::{ContainerRecord, Store};

/// `Container.backend` and `Container.host` of the cluster's containers.
const BACKEND: Backend = Backend::Kubernetes;

/// A `creating` record this old with nothing in the cluster was cut short and not
/// retried.
const STALE_CREATE_SECS: i64 = 300;

/// The containers of the cluster, when one is configured.
pub(super) struct OnCluster {
    store: Store,
    cluster: Option<Arc<GatedCluster>>,
    images: Arc<Images>,
}

impl OnCluster {
    pub(super) fn new(
        store: Store,
        cluster: Option<Arc<GatedCluster>>,
        images: Arc<Images>,
    ) -> Self {
        Self {
            store,
            cluster,
            images,
        }
    }

    /// Whether this installation lends containers on a cluster.
    pub(super) fn enabled(&self) -> bool {
        self.cluster.is_some()
    }

    /// The cluster, or 400 when this installation lends none.
    fn cluster(&self) -> Result<&Arc<GatedCluster>, Error> {
        self.cluster.as_ref().ok_or_else(|| {
            Error::refused(
                "backend_unavailable",
                Some("backend"),
                "kubernetes_off",
                [],
                "the kubernetes backend is not enabled on this installation",
            )
        })
    }

    /// The record as the API shows it, with what the cluster says of it when it answered.
    pub(super) fn show(r: &ContainerRecord, found: Option<&KubeContainer>) -> Container {
        let mut c = Container::from(r);
        if let Some(k) = found {
            c.ports = k
                .ports
                .iter()
                .map(|&guest| Port { guest, host: None })
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
    pub(super) async fn create(
        &self,
        caller: &Caller,
        new: super::NewContainer,
    ) -> Result<Container, Error> {
        let super::NewContainer {
            short,
            image,
            env,
            guests: ports,
            res,
            expires_at,
            expiry_by,
            ..
        } = new;
        let cluster = self.cluster()?;
        // The cluster pulls from the registry itself, unscanned; an image a pull or build
        // here quarantined is refused on the cluster as on the hosts.
        self.images.check_scan_on_hosts(&image).await?;
        let key = ContainerKey::new(&caller.name, &short)?;
        let name = key.full_name();
        let conflict = || {
            Error::conflict(
                "container_taken",
                [("name", short.to_string())],
                format!("you already have a container named {short}"),
            )
        };
        let mut record = match self.store.container(&key).await? {
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
                    engine_id: Some(new_id()),
                    created_at: now(),
                    ports: Vec::new(),
                    memory_bytes: res.memory_bytes,
                    nano_cpus: res.nano_cpus,
                    gpus: Vec::new(),
                    expires_at,
                    expiry_set_by: expires_at.map(|_| expiry_by.clone()),
                    last_activity_at: None,
                    idle_since: None,
                    stop_reason: None,
                };
                self.store.insert_container(&r).await.map_err(|e| match e {
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
            gpus: res.gpus as u32,
            courses: self.courses_of(caller).await?,
        };
        match cluster.create(&spec).await {
            Ok(k) => {
                let status = status_of(k.state);
                self
                    .store
                    .set_container_status(&key, status, None)
                    .await?;
                record.status = status;
                Ok(Self::show(&record, Some(&k)))
            }
            Err(BackendError::Unavailable(why)) => Err(Error::unavailable(
                "cluster_unfinished",
                [("name", name.to_string()), ("why", why.text.clone())],
                format!(
                    "the cluster did not finish creating {name} ({why}); send the same request again to complete it, or delete it"
                ),
            )),
            Err(e) => {
                self.store.delete_container(&key).await?;
                Err(match e {
                    BackendError::NameTaken(_) => Error::conflict(
                        "cluster_name_taken",
                        [("name", name.to_string())],
                        format!(
                            "the cluster already has objects named {name} that whalemountain did not make for this request; ask an administrator"
                        ),
                    ),
                    other => other.into(),
                })
            }
        }
    }

    /// Brings the records of the cluster's containers up to date from one list, and shows
    /// them; with the cluster unreachable they show as `unknown`.
    pub(super) async fn refresh(
        &self,
        records: &mut [ContainerRecord],
    ) -> Result<Vec<Option<KubeContainer>>, Error> {
        let found = match &self.cluster {
            Some(c) if records.iter().any(|r| r.backend == BACKEND) => c.list().await.ok(),
            _ => None,
        };
        let mut out = Vec::with_capacity(records.len());
        for r in records.iter_mut() {
            let k = match &found {
                Some(list) if r.backend == BACKEND => {
                    let k = list.iter().find(|k| is_of(k, r)).cloned();
                    self.settle(r, k.as_ref()).await?;
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
        &self,
        r: &mut ContainerRecord,
        found: Option<&KubeContainer>,
    ) -> Result<(), Error> {
        let now = match found {
            Some(k) => status_of(k.state),
            None if r.status == ContainerStatus::Creating => return Ok(()),
            None => ContainerStatus::Gone,
        };
        if now != r.status {
            set_status(&self.store, r, now).await?;
        }
        Ok(())
    }

    pub(super) async fn get(&self, c: OwnedContainer) -> Result<Container, Error> {
        let mut record = c.into_record();
        let Some(cluster) = &self.cluster else {
            return Ok(Self::show(&record, None));
        };
        match cluster.inspect(&record.key()).await {
            Ok(k) => {
                self.settle(&mut record, Some(&k)).await?;
                Ok(Self::show(&record, Some(&k)))
            }
            Err(BackendError::NoSuchContainer) => {
                self.settle(&mut record, None).await?;
                Ok(Self::show(&record, None))
            }
            Err(BackendError::Unavailable(_)) => Ok(Self::show(&record, None)),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn start_or_stop(
        &self,
        c: OwnedContainer,
        start: bool,
    ) -> Result<Container, Error> {
        let cluster = self.cluster()?;
        let mut record = c.into_record();
        let k = if start {
            cluster.start(&record.key()).await
        } else {
            cluster.stop(&record.key()).await
        }
        .map_err(|e| match e {
            BackendError::NoSuchContainer => Error::conflict(
                "gone_from_cluster",
                [("name", record.name.to_string())],
                format!(
                    "container {} is gone from the cluster; delete it",
                    record.name
                ),
            ),
            other => other.into(),
        })?;
        self.settle(&mut record, Some(&k)).await?;
        Ok(Self::show(&record, Some(&k)))
    }

    /// Removes the container's objects, waiting until they are gone, then its record.
    pub(super) async fn delete(&self, c: OwnedContainer) -> Result<(), Error> {
        if c.record().status != ContainerStatus::Gone {
            self.cluster()?.remove(&c.key()).await?;
        }
        self.store.delete_container(&c.key()).await?;
        Ok(())
    }

    pub(super) async fn logs(&self, c: &OwnedContainer, tail: u32) -> Result<bytes::Bytes, Error> {
        Ok(self.cluster()?.logs(&c.key(), tail).await?.into())
    }

    /// Marks the cluster's containers gone or updates their status, for the reconcile.
    pub(super) async fn reconcile(&self) -> Result<usize, Error> {
        let Some(cluster) = &self.cluster else {
            return Ok(0);
        };
        let mut records: Vec<ContainerRecord> = self
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
        let now = now();
        for r in &mut records {
            let before = r.status;
            let k = found.iter().find(|k| is_of(k, r));
            if k.is_none()
                && r.status == ContainerStatus::Creating
                && now - r.created_at > STALE_CREATE_SECS
            {
                // A create cut short long ago and never retried: nothing of it is left.
                self.store.mark_container_gone(&r.key()).await?;
                changed += 1;
                continue;
            }
            self.settle(r, k).await?;
            changed += usize::from(r.status != before);
        }
        Ok(changed)
    }

    /// A kubeconfig for the caller's own namespace.
    pub(super) async fn kubeconfig(&self, caller: &Caller) -> Result<String, Error> {
        caller.require_full_scope()?;
        let courses = self.courses_of(caller).await?;
        Ok(self
            .cluster()?
            .kubeconfig(&caller.name, caller.role, &courses)
            .await?)
    }

    /// The courses (ids) the caller is enrolled in: their namespace's course labels.
    async fn courses_of(&self, caller: &Caller) -> Result<Vec<String>, Error> {
        Ok(self
            .store
            .courses(None, Some(caller.name.as_str()))
            .await?
            .into_iter()
            .filter(|c| c.members.contains(&caller.name))
            .map(|c| c.id)
            .collect())
    }
}

fn status_of(s: KubeState) -> ContainerStatus {
    match s {
        KubeState::Running => ContainerStatus::Running,
        KubeState::Pending => ContainerStatus::Pending,
        KubeState::Stopped => ContainerStatus::Stopped,
        KubeState::Failed => ContainerStatus::Failed,
    }
}

/// Whether the cluster's `k` is the record's container: the same owner as well as the
/// same full name, which two owners' containers may share.
fn is_of(k: &KubeContainer, r: &ContainerRecord) -> bool {
    k.owner == r.owner.as_str() && k.name == r.name.as_str()
}

/// What the API does not do for the cluster's containers (`reason`: `exec`, `upload`,
/// `download`, `logs`, `terminal`; `what` says it in English), and what to use instead.
pub(super) fn unsupported(reason: &'static str, what: &str, kubectl: &str) -> Error {
    Error::refused(
        "unsupported_for_backend",
        None,
        reason,
        [("kubectl", kubectl.to_string())],
        format!(
            "{what} is not offered for kubernetes containers; use `{kubectl}` with the kubeconfig from GET /api/v1/kubeconfig"
        ),
    )
}
