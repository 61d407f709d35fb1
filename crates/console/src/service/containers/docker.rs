//! Containers on the Docker hosts: placement, pulls before a create, and every call to
//! the container's host.

use super::{
    image_not_found, parse_cmd, set_status, Container, ExecResult, NewContainer, OwnedContainer,
};
use crate::config::Config;
use crate::hosts::{Hosts, Need};
use crate::service::accounts::Caller;
use crate::service::images::Images;
use crate::service::quotas::Admitted;
use crate::service::Error;
use crate::util::now;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use wm_backend::{
    BackendError, ByteStream, ContainerBackend, ContainerSpec, ContainerState, ExecRequest,
    PortBinding,
};
use wm_domain::{Backend, ContainerKey, ContainerStatus};
use wm_store::{ContainerRecord, PortLease, Store};

/// The containers of the Docker hosts.
pub(super) struct OnHosts {
    store: Store,
    hosts: Arc<Hosts>,
    images: Arc<Images>,
    config: Arc<Config>,
}

impl OnHosts {
    pub(super) fn new(
        store: Store,
        hosts: Arc<Hosts>,
        images: Arc<Images>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            store,
            hosts,
            images,
            config,
        }
    }

    /// The container's host; 503 at once while the host does not answer.
    fn host(&self, c: &OwnedContainer) -> Result<Arc<dyn ContainerBackend>, Error> {
        Ok(self.hosts.reach(&c.record().host)?)
    }

    /// Creates the container on a host chosen by placement (see `crate::hosts`), pulling
    /// a public image there first when it lacks it.
    pub(super) async fn create(
        &self,
        caller: &Caller,
        new: NewContainer,
        admitted: Admitted,
    ) -> Result<Container, Error> {
        let NewContainer {
            short,
            image,
            env,
            guests,
            mut required,
            res,
            expires_at,
            expiry_by,
        } = new;
        let key = ContainerKey::new(&caller.name, &short)?;
        let name = key.full_name();
        required.extend(self.config.required_labels(caller.role).iter().cloned());
        required.sort();
        required.dedup();
        let present = self.images.check_usable(caller, &image).await?;

        let mut record = ContainerRecord {
            name: name.clone(),
            owner: caller.name.clone(),
            short_name: short.clone(),
            image: image.to_string(),
            backend: Backend::Docker,
            host: String::new(),
            status: ContainerStatus::Creating,
            env: env.iter().map(ToString::to_string).collect(),
            engine_id: None,
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
        let placement = self
            .hosts
            .place(&Need {
                required: &required,
                has_image: &present,
                memory: res.memory_bytes,
                gpus: res.gpus,
                overcommit: self.config.memory_overcommit,
                only: None,
            })
            .await?;
        let host = placement.host.clone();
        record.host = host.id.clone();
        record.gpus = placement.gpus.iter().map(|(g, _)| g.clone()).collect();
        // Inserting reserves the name, and the GPU places: of two concurrent creates, one
        // gets a conflict here.
        self.store
            .insert_container_with_gpus(&record, &placement.gpus)
            .await
            .map_err(|e| match e {
                wm_store::StoreError::Conflict(what) if what.starts_with("place ") => {
                    Error::unavailable(
                        "place_taken",
                        [("what", what.clone())],
                        format!("{what} was just taken; try again"),
                    )
                }
                wm_store::StoreError::Conflict(_) => Error::conflict(
                    "container_taken",
                    [("name", short.to_string())],
                    format!("you already have a container named {short}"),
                ),
                other => other.into(),
            })?;
        drop(placement);
        // Recorded: the next check of the owner's quota counts it.
        drop(admitted);

        let spec = ContainerSpec {
            name: name.clone(),
            owner: caller.name.clone(),
            short_name: short,
            image: image.clone(),
            env,
            ports: guests,
            limits: wm_backend::Limits {
                memory_bytes: res.memory_bytes,
                nano_cpus: res.nano_cpus,
                ..self.config.default_limits()
            },
            gpus: record.gpus.clone(),
        };
        let created = async {
            if !present.contains(&host.id) {
                self.images.pull_quietly(&host, &image).await?;
            }
            let _turn = host.create_turn().await;
            Ok::<_, Error>(host.backend.create(&spec).await?)
        };
        match created.await {
            Ok(st) => {
                self.record_ports(&host.id, &key, &st.ports).await?;
                self.store
                    .set_container_status(&key, st.state, Some(&st.id))
                    .await?;
                self.store.create_ended(&key).await?;
                record.status = st.state;
                record.engine_id = Some(st.id);
                record.ports = st
                    .ports
                    .iter()
                    .map(|b| PortLease {
                        guest: b.guest,
                        host_port: b.host,
                    })
                    .collect();
                record.ports.sort_by_key(|p| p.guest);
                Ok(self.view(&record))
            }
            Err(e) => {
                if let Err(cleanup) = self.store.delete_container(&key).await {
                    tracing::error!(container = %name, error = ?cleanup, "could not remove the record of a failed create");
                }
                let _ = host.backend.remove_network_if_unused(&caller.name).await;
                Err(match e {
                    Error::NotFound {
                        code: "image_not_found",
                        ..
                    } => image_not_found(&image),
                    other => other,
                })
            }
        }
    }

    /// Writes down the host ports the host gave the container. The host lends each of its
    /// ports once; a clash here means the database holds a stale record, which is logged.
    async fn record_ports(
        &self,
        host: &str,
        name: &ContainerKey,
        ports: &[PortBinding],
    ) -> Result<(), Error> {
        for p in ports {
            if !self.store.lease_port(host, p.host, name, p.guest).await? {
                tracing::warn!(container = %name, host, port = p.host, "the database already had this host port for another container");
            }
        }
        Ok(())
    }

    /// The container as the API shows it: where its ports are reached, and `unknown` while
    /// its host does not answer.
    pub(super) fn view(&self, r: &ContainerRecord) -> Container {
        let mut c = Container::from(r);
        if let Some(h) = self.hosts.get(&r.host) {
            c.address = h.address();
            if !h.usable() && r.status != ContainerStatus::Gone {
                c.status = ContainerStatus::Unknown;
            }
        } else if r.backend == Backend::Docker && r.status != ContainerStatus::Gone {
            c.status = ContainerStatus::Unknown;
        }
        c
    }

    /// Brings the records of Docker containers up to date from one list per host, all at
    /// once; a host that does not answer leaves its containers as they were recorded (and
    /// shown as unknown).
    pub(super) async fn refresh(&self, records: &mut [ContainerRecord]) -> Result<(), Error> {
        let mut hosts: Vec<&str> = records
            .iter()
            .filter(|r| r.backend == Backend::Docker)
            .map(|r| r.host.as_str())
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        // One owner's containers (a user's own list): each host sends theirs only.
        let owner = records
            .first()
            .map(|r| &r.owner)
            .filter(|o| records.iter().all(|r| r.owner == **o));
        let lists = futures::future::join_all(hosts.iter().map(|id| async move {
            let found = match (self.hosts.reach(id), owner) {
                (Ok(b), Some(o)) => b.list_of(o).await.ok(),
                (Ok(b), None) => b.list().await.ok(),
                (Err(_), _) => None,
            };
            (*id, found)
        }))
        .await;
        // What each answering host holds, by host, owner and short name.
        let mut held: HashMap<(&str, &str, &str), ContainerStatus> = HashMap::new();
        let answered: HashSet<&str> = lists
            .iter()
            .filter_map(|(h, found)| found.as_ref().map(|_| *h))
            .collect();
        for (host, found) in &lists {
            for s in found.iter().flatten() {
                held.insert((host, &s.owner, &s.short_name), s.state);
            }
        }
        let mut changed = Vec::new();
        for (i, r) in records.iter().enumerate() {
            if r.backend != Backend::Docker
                || r.status == ContainerStatus::Creating
                || !answered.contains(r.host.as_str())
            {
                continue;
            }
            let now = held
                .get(&(r.host.as_str(), r.owner.as_str(), r.short_name.as_str()))
                .copied()
                .unwrap_or(ContainerStatus::Gone);
            if now != r.status {
                changed.push((i, now));
            }
        }
        for (i, now) in changed {
            let r = &mut records[i];
            set_status(&self.store, r, now).await?;
        }
        Ok(())
    }

    /// The container with its status as the host reports it now.
    pub(super) async fn get(&self, c: OwnedContainer) -> Result<Container, Error> {
        let mut record = c.into_record();
        if record.status == ContainerStatus::Creating {
            return Ok(self.view(&record));
        }
        let Ok(backend) = self.hosts.reach(&record.host) else {
            return Ok(self.view(&record));
        };
        let now = match backend.inspect(&record.key()).await {
            Ok(st) => st.state,
            Err(BackendError::NoSuchContainer) => ContainerStatus::Gone,
            Err(BackendError::Unavailable(_)) => return Ok(self.view(&record)),
            Err(e) => return Err(e.into()),
        };
        if now != record.status {
            set_status(&self.store, &mut record, now).await?;
        }
        Ok(self.view(&record))
    }

    async fn settle(
        &self,
        c: OwnedContainer,
        result: Result<ContainerState, BackendError>,
    ) -> Result<Container, Error> {
        let st = result.map_err(|e| match e {
            BackendError::NoSuchContainer => Error::conflict(
                "gone_from_host",
                [("name", c.name().to_string())],
                format!("container {} is gone from its host; delete it", c.name()),
            ),

            other => other.into(),
        })?;
        let mut record = c.into_record();
        self.store
            .set_container_status(&record.key(), st.state, None)
            .await?;
        record.status = st.state;
        Ok(self.view(&record))
    }

    pub(super) async fn start(&self, c: OwnedContainer) -> Result<Container, Error> {
        let r = self.host(&c)?.start(&c.key()).await;
        self.settle(c, r).await
    }

    pub(super) async fn stop(&self, c: OwnedContainer) -> Result<Container, Error> {
        let r = self.host(&c)?.stop(&c.key()).await;
        self.settle(c, r).await
    }

    /// Removes the container from its host, then its record and port leases, then the
    /// owner's network if this was their last container there. A container already gone
    /// from its host needs no answer from the host.
    pub(super) async fn delete(&self, c: OwnedContainer) -> Result<(), Error> {
        if c.record().status == ContainerStatus::Gone {
            self.store.delete_container(&c.key()).await?;
            return Ok(());
        }
        let backend = self.host(&c)?;
        backend.remove(&c.key()).await?;
        self.store.delete_container(&c.key()).await?;
        if let Err(e) = backend.remove_network_if_unused(&c.record().owner).await {
            tracing::warn!(owner = %c.record().owner, error = %e, "could not remove the owner's network");
        }
        Ok(())
    }

    pub(super) async fn exec(
        &self,
        c: &OwnedContainer,
        cmd: serde_json::Value,
    ) -> Result<ExecResult, Error> {
        let req = ExecRequest {
            cmd: parse_cmd(cmd)?,
            timeout_secs: self.config.exec_timeout_secs,
            max_output_bytes: self.config.exec_max_output,
        };
        Ok(self.host(c)?.exec(&c.key(), &req).await?.into())
    }

    pub(super) async fn upload(
        &self,
        c: &OwnedContainer,
        dir: &str,
        tar: ByteStream,
    ) -> Result<(), Error> {
        self.host(c)?.upload(&c.key(), dir, tar).await?;
        Ok(())
    }

    pub(super) async fn logs(&self, c: &OwnedContainer, tail: u32) -> Result<bytes::Bytes, Error> {
        Ok(self.host(c)?.logs(&c.key(), tail).await?)
    }

    pub(super) async fn follow_logs(
        &self,
        c: &OwnedContainer,
        tail: u32,
    ) -> Result<ByteStream, Error> {
        Ok(self.host(c)?.follow_logs(&c.key(), tail).await?)
    }

    pub(super) async fn terminal(
        &self,
        c: &OwnedContainer,
        req: &wm_backend::TerminalRequest,
    ) -> Result<wm_backend::Terminal, Error> {
        Ok(self.host(c)?.terminal(&c.key(), req).await?)
    }

    pub(super) async fn download(
        &self,
        c: &OwnedContainer,
        path: &str,
    ) -> Result<ByteStream, Error> {
        Ok(self.host(c)?.download(&c.key(), path).await?)
    }
}
