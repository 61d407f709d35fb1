//! Keeps the database true to the hosts, at start, periodically, and when a host that was
//! down answers again. A host that does not answer is left alone: its containers keep
//! their records (and show as `unknown`) until it is back.
//!
//! - A container in the database that the host no longer has is marked `gone` and its
//!   ports are released (the record stays until its owner deletes it).
//! - A container of ours on the host that the database does not know (a crash between
//!   creating it and recording it, or a restored database) is adopted when its labels
//!   name a known user and a valid name, and reported otherwise; it is never duplicated.
//! - A create whose console died (or that stayed `creating` for long) is settled from
//!   the host: its status, engine id and ports recorded when the host made it, `gone`
//!   when not.
//! - Statuses are brought up to date, and the image catalog is read again.

use super::audit::Audit;
use super::containers::Containers;
use super::images::Catalog;
use super::Error;
use crate::hosts::{Host, Hosts};
use crate::util::now;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use utoipa::ToSchema;
use wm_backend::{BackendError, ContainerState};
use wm_domain::{Backend, ContainerKey, ContainerStatus, ShortName, UserName};
use wm_store::{ContainerRecord, Store};

/// A `creating` record older than this without a container on the host is left over
/// from a crash in the middle of a create.
const STALE_CREATE_SECS: i64 = 300;

/// At most this many unadoptable names are remembered; past it the set starts again, and
/// a container still there is reported once more.
const REPORTED_MAX: usize = 4096;

#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct ReconcileReport {
    /// Full names marked `gone`.
    pub(crate) gone: Vec<String>,
    /// Full names adopted into the database.
    pub(crate) adopted: Vec<String>,
    /// Containers with our labels that could not be adopted, and why.
    pub(crate) unknown: Vec<String>,
    /// How many statuses changed.
    pub(crate) updated: usize,
}

/// Keeps the database true to the hosts.
pub(crate) struct Reconciler {
    store: Store,
    hosts: Arc<Hosts>,
    containers: Arc<Containers>,
    catalog: Arc<Catalog>,
    audit: Audit,
    /// What an adopted container is recorded with, since the engine does not say.
    default_limits: wm_backend::Limits,
    /// Names already reported, so the log says it once, not every interval.
    reported: Mutex<HashSet<String>>,
}

impl Reconciler {
    pub(crate) fn new(
        store: Store,
        hosts: Arc<Hosts>,
        containers: Arc<Containers>,
        catalog: Arc<Catalog>,
        audit: Audit,
        default_limits: wm_backend::Limits,
    ) -> Self {
        Self {
            default_limits,
            store,
            hosts,
            containers,
            catalog,
            audit,
            reported: Mutex::new(HashSet::new()),
        }
    }

    /// Removes the expired session tokens.
    pub(crate) async fn purge_expired_tokens(&self) {
        if let Err(e) = self.store.purge_expired_tokens(now()).await {
            tracing::warn!(error = ?e, "could not purge expired tokens");
        }
    }

    /// Reconciles every host that answers and the cluster, then reads the image catalog
    /// again; fails only when no host answers.
    pub(crate) async fn reconcile(&self) -> Result<ReconcileReport, Error> {
        let mut report = ReconcileReport::default();
        for host in self.hosts.usable() {
            match self.reconcile_host(&host).await {
                Ok(r) => {
                    report.gone.extend(r.gone);
                    report.adopted.extend(r.adopted);
                    report.unknown.extend(r.unknown);
                    report.updated += r.updated;
                }
                Err(e) => tracing::debug!(host = %host.id, error = %e, "reconcile skipped a host"),
            }
        }
        match self.containers.reconcile_cluster().await {
            Ok(n) => report.updated += n,
            Err(e) => tracing::debug!(error = %e, "reconcile skipped the cluster"),
        }
        // The event streams keep the image catalog fresh; this catches what a lost event
        // missed. With no host answering, this is the error.
        self.catalog.refresh().await?;
        Ok(report)
    }

    /// Brings the records of one host's containers in line with what the host has.
    pub(crate) async fn reconcile_host(&self, h: &Host) -> Result<ReconcileReport, Error> {
        let mut report = ReconcileReport::default();
        let host = h.id.clone();
        let on_host = h.backend.list().await?;
        let records: Vec<ContainerRecord> = self
            .store
            .containers(None)
            .await?
            .into_iter()
            .filter(|r| r.backend == Backend::Docker && r.host == host)
            .collect();
        let now = now();
        let cut_short = self.store.creates_cut_short().await?;

        for r in &records {
            // A create in flight is left alone; one whose console is gone, or that stayed
            // `creating` for long, was cut short by a crash and is settled like any other.
            let ended = cut_short.contains(&r.key());
            let in_flight = r.status == ContainerStatus::Creating
                && !ended
                && now - r.created_at < STALE_CREATE_SECS;
            match on_host.iter().find(|s| is_of(s, r)) {
                Some(s) if ended || r.status == ContainerStatus::Gone => {
                    // Made, but not written down (or back after it was found gone): what
                    // its create would have recorded.
                    for p in &s.ports {
                        self.store
                            .lease_port(&host, p.host, &r.key(), p.guest)
                            .await?;
                    }
                    self.store
                        .set_container_status(&r.key(), s.state, Some(&s.id))
                        .await?;
                    self.store.create_ended(&r.key()).await?;
                    tracing::info!(container = %r.name, "recorded a container its create did not finish");
                    report.updated += 1;
                }
                Some(s) => {
                    if !in_flight && r.status != s.state {
                        self.store
                            .set_container_status(&r.key(), s.state, None)
                            .await?;
                        report.updated += 1;
                    }
                }
                None if r.status == ContainerStatus::Gone || in_flight => {}
                None => {
                    self.store.mark_container_gone(&r.key()).await?;
                    if ended {
                        self.store.create_ended(&r.key()).await?;
                    }
                    tracing::warn!(container = %r.name, "container is gone from its host");
                    report.gone.push(r.name.to_string());
                }
            }
        }

        for s in &on_host {
            if records.iter().any(|r| is_of(s, r)) {
                continue;
            }
            match self.adopt(h, s).await {
                Ok(()) => {
                    tracing::info!(container = %s.name, "adopted a container the database did not know");
                    self.audit
                        .record(
                            None,
                            "container.adopt".into(),
                            Some(s.name.clone()),
                            200,
                            None,
                        )
                        .await;
                    report.adopted.push(s.name.clone());
                }
                Err(why) => {
                    let first_time = {
                        let mut reported = self.reported.lock().expect("not poisoned");
                        if reported.len() >= REPORTED_MAX {
                            reported.clear();
                        }
                        reported.insert(s.name.clone())
                    };
                    if first_time {
                        tracing::warn!(container = %s.name, %why, "container with our labels cannot be adopted");
                        self.audit
                            .record(
                                None,
                                "container.unknown".into(),
                                Some(s.name.clone()),
                                409,
                                Some(why.clone()),
                            )
                            .await;
                    }
                    report.unknown.push(format!("{}: {why}", s.name));
                }
            }
        }
        Ok(report)
    }

    /// Records a container found on the host, if its labels make sense. Its owner and short
    /// name come from its labels (`wm.owner`, `wm.name`), whatever the engine calls it: a
    /// container of an earlier version (named `<owner>-<short>`) is adopted as well.
    async fn adopt(&self, h: &Host, found: &ContainerState) -> Result<(), String> {
        let host = h.id.as_str();
        let owner = UserName::parse(&found.owner).map_err(|e| format!("owner label: {e}"))?;
        let short = ShortName::parse(&found.short_name).map_err(|e| format!("name label: {e}"))?;
        let key = ContainerKey::new(&owner, &short).map_err(|e| e.to_string())?;
        let name = key.full_name();
        let st = match h.backend.inspect(&key).await {
            Ok(st) => st,
            Err(BackendError::NoSuchContainer) => {
                return Err("not found under its name: removed meanwhile, or renamed".into())
            }
            Err(e) => return Err(e.to_string()),
        };
        if st.id != found.id {
            return Err(format!(
                "another container of {owner} is named {short} on this host"
            ));
        }
        if self
            .store
            .user(owner.as_str())
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Err(format!("its owner {owner} has no account here"));
        }
        let record = ContainerRecord {
            name: name.clone(),
            owner,
            short_name: short,
            image: st.image.clone(),
            backend: Backend::Docker,
            host: host.to_string(),
            status: st.state,
            // The image's own variables (PATH, ...) are in the list too; they are what the
            // container runs with.
            env: st.env.clone(),
            engine_id: Some(st.id.clone()),
            created_at: st.created_at,
            ports: Vec::new(),
            // What the engine does not say back is taken to be the installation's default.
            memory_bytes: self.default_limits.memory_bytes,
            nano_cpus: self.default_limits.nano_cpus,
            gpus: Vec::new(),
            expires_at: None,
            expiry_set_by: None,
            last_activity_at: None,
            idle_since: None,
            stop_reason: None,
        };
        self.store
            .insert_container(&record)
            .await
            .map_err(|e| e.to_string())?;
        for p in &st.ports {
            let leased = self
                .store
                .lease_port(host, p.host, &key, p.guest)
                .await
                .map_err(|e| e.to_string())?;
            if !leased {
                tracing::warn!(container = %name, port = p.host, "adopted container publishes a port leased to another container");
            }
        }
        // Its GPUs, from its label, each in the first free place of the GPU.
        for gpu in &st.gpus {
            let mut leased = false;
            for slot in 0..64 {
                if self
                    .store
                    .lease_gpu(host, gpu, slot, &key)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    leased = true;
                    break;
                }
            }
            if !leased {
                tracing::warn!(container = %name, gpu, "adopted container holds a GPU with no free place left");
            }
        }
        Ok(())
    }
}

/// Whether `s`, found on a host, is the record's container: by the owner and short name
/// its labels carry, whatever name the engine has for it.
fn is_of(s: &ContainerState, r: &ContainerRecord) -> bool {
    s.owner == r.owner.as_str() && s.short_name == r.short_name.as_str()
}
