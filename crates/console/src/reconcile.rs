//! Keeps the database true to the hosts, at start, periodically, and when a host that was
//! down answers again. A host that does not answer is left alone: its containers keep
//! their records (and show as `unknown`) until it is back.
//!
//! - A container in the database that the host no longer has is marked `gone` and its
//!   ports are released (the record stays until its owner deletes it).
//! - A container of ours on the host that the database does not know (a crash between
//!   creating it and recording it, or a restored database) is adopted when its labels
//!   name a known user and a valid name, and reported otherwise; it is never duplicated.
//! - Statuses are brought up to date, and the image catalog is read again.

use crate::hosts::Host;
use crate::state::AppState;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Mutex;
use utoipa::ToSchema;
use wm_backend::{BackendError, ContainerState};
use wm_domain::{Backend, ContainerKey, ContainerStatus, ShortName, UserName};
use wm_store::ContainerRecord;

/// A `creating` record older than this without a container on the host is left over
/// from a crash in the middle of a create.
const STALE_CREATE_SECS: i64 = 300;

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ReconcileReport {
    /// Full names marked `gone`.
    pub gone: Vec<String>,
    /// Full names adopted into the database.
    pub adopted: Vec<String>,
    /// Containers with our labels that could not be adopted, and why.
    pub unknown: Vec<String>,
    /// How many statuses changed.
    pub updated: usize,
}

/// Names already reported, so the log says it once, not every interval.
static REPORTED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// At most this many names are remembered; past it the set starts again, and a
/// container still there is reported once more.
const REPORTED_MAX: usize = 4096;

/// Reconciles every host that answers and the cluster, then reads the image catalog
/// again; fails only when no host answers.
pub async fn reconcile(state: &AppState) -> Result<ReconcileReport, crate::error::ApiError> {
    let mut report = ReconcileReport::default();
    for host in state.hosts.usable() {
        match reconcile_host(state, &host).await {
            Ok(r) => {
                report.gone.extend(r.gone);
                report.adopted.extend(r.adopted);
                report.unknown.extend(r.unknown);
                report.updated += r.updated;
            }
            Err(e) => tracing::debug!(host = %host.id, error = %e, "reconcile skipped a host"),
        }
    }
    match crate::kube::reconcile(state).await {
        Ok(n) => report.updated += n,
        Err(e) => tracing::debug!(error = %e, "reconcile skipped the cluster"),
    }
    // The event streams keep the image catalog fresh; this catches what a lost event
    // missed. With no host answering, this is the error.
    state.catalog.refresh(state).await?;
    Ok(report)
}

/// Brings the records of one host's containers in line with what the host has.
pub async fn reconcile_host(
    state: &AppState,
    h: &Host,
) -> Result<ReconcileReport, crate::error::ApiError> {
    let mut report = ReconcileReport::default();
    let host = h.id.clone();
    let on_host = h.backend.list().await?;
    let records: Vec<ContainerRecord> = state
        .store
        .containers(None)
        .await?
        .into_iter()
        .filter(|r| r.backend == Backend::Docker && r.host == host)
        .collect();
    let now = crate::now();

    for r in &records {
        // A create in flight is left alone; one that stayed `creating` for long was cut
        // short by a crash and is settled like any other.
        let in_flight =
            r.status == ContainerStatus::Creating && now - r.created_at < STALE_CREATE_SECS;
        match on_host.iter().find(|s| is_of(s, r)) {
            Some(s) => {
                if !in_flight && r.status != s.state {
                    state
                        .store
                        .set_container_status(&r.key(), s.state, None)
                        .await?;
                    report.updated += 1;
                }
            }
            None if r.status == ContainerStatus::Gone || in_flight => {}
            None => {
                state.store.mark_container_gone(&r.key()).await?;
                tracing::warn!(container = %r.name, "container is gone from its host");
                report.gone.push(r.name.to_string());
            }
        }
    }

    for s in &on_host {
        if records.iter().any(|r| is_of(s, r)) {
            continue;
        }
        match adopt(state, h, s).await {
            Ok(()) => {
                tracing::info!(container = %s.name, "adopted a container the database did not know");
                crate::audit::record(
                    state,
                    None,
                    "reconcile: adopt".into(),
                    Some(s.name.clone()),
                    200,
                    None,
                )
                .await;
                report.adopted.push(s.name.clone());
            }
            Err(why) => {
                let first_time = {
                    let mut reported = REPORTED.lock().expect("not poisoned");
                    let reported = reported.get_or_insert_with(HashSet::new);
                    if reported.len() >= REPORTED_MAX {
                        reported.clear();
                    }
                    reported.insert(s.name.clone())
                };
                if first_time {
                    tracing::warn!(container = %s.name, %why, "container with our labels cannot be adopted");
                    crate::audit::record(
                        state,
                        None,
                        "reconcile: unknown container".into(),
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

/// Whether `s`, found on a host, is the record's container: by the owner and short name
/// its labels carry, whatever name the engine has for it.
fn is_of(s: &ContainerState, r: &ContainerRecord) -> bool {
    s.owner == r.owner.as_str() && s.short_name == r.short_name.as_str()
}

/// Records a container found on the host, if its labels make sense. Its owner and short
/// name come from its labels (`wm.owner`, `wm.name`), whatever the engine calls it: a
/// container of an earlier version (named `<owner>-<short>`) is adopted as well.
async fn adopt(state: &AppState, h: &Host, found: &ContainerState) -> Result<(), String> {
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
    if state
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
    };
    state
        .store
        .insert_container(&record)
        .await
        .map_err(|e| e.to_string())?;
    for p in &st.ports {
        let leased = state
            .store
            .lease_port(host, p.host, &key, p.guest)
            .await
            .map_err(|e| e.to_string())?;
        if !leased {
            tracing::warn!(container = %name, port = p.host, "adopted container publishes a port leased to another container");
        }
    }
    Ok(())
}

/// Reconciles every `interval` until the process ends. An unreachable host is logged
/// and tried again next time.
pub async fn run_periodically(state: AppState, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match reconcile(&state).await {
            Ok(r) if !r.gone.is_empty() || !r.adopted.is_empty() => {
                tracing::info!(gone = ?r.gone, adopted = ?r.adopted, updated = r.updated, "reconciled")
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "reconcile skipped"),
        }
        if let Err(e) = state.store.purge_expired_tokens(crate::now()).await {
            tracing::warn!(error = ?e, "could not purge expired tokens");
        }
    }
}
