//! The console's background work, started and stopped in one place. Every later
//! periodic job goes here too.
//!
//! Work that keeps this console's own view fresh runs on every console: the health
//! checks of the hosts and the cluster (placement and the API ask which hosts answer),
//! and one follower of each host's image events (the image catalog). Work that acts on
//! the installation runs on the leader alone (see [`leader`]): the periodic reconcile
//! (and the reconcile of a host that comes back), the reclaim of idle and expired
//! containers, and the clean-up of images and SIF files.

mod health;
mod image_events;
mod leader;
mod reclaim;
mod reconcile;

use crate::hosts::Hosts;
use crate::service::cleanup::Cleanup;
use crate::service::images::Catalog;
use crate::service::reclaim::Reclaimer;
use crate::service::reconcile::Reconciler;
use crate::service::system::Leading;
use crate::service::system::System;
use crate::service::vms::Vms;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use wm_store::Store;

/// What the workers use.
pub(crate) struct Deps {
    pub(crate) hosts: Arc<Hosts>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) reconciler: Arc<Reconciler>,
    pub(crate) vms: Arc<Vms>,
    pub(crate) system: Arc<System>,
    pub(crate) reclaimer: Arc<Reclaimer>,
    /// `None` when neither images nor SIF files have a maximum age.
    pub(crate) cleanup: Option<Arc<Cleanup>>,
    pub(crate) reclaim_interval: Duration,
    pub(crate) cleanup_interval: Duration,
    pub(crate) reconcile_interval: Duration,
    pub(crate) check_interval: Duration,
    /// Where the leader lease is.
    pub(crate) store: Store,
    pub(crate) leading: Arc<Leading>,
}

/// The running workers; [`Workers::stop`] ends them all.
pub(crate) struct Workers {
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Checks every host once (so that the first reconcile knows which answer), then
    /// starts every worker: the leader's once this console leads.
    pub(crate) async fn start(deps: Deps) -> Self {
        deps.system.check_hosts().await;
        let mut tasks = vec![tokio::spawn(health::run(
            deps.system.clone(),
            deps.reconciler.clone(),
            deps.leading.clone(),
            deps.check_interval,
        ))];
        for host in deps.hosts.all() {
            tasks.push(tokio::spawn(image_events::follow(
                deps.catalog.clone(),
                host.clone(),
            )));
        }
        let Deps {
            reconciler,
            vms,
            reclaimer,
            cleanup,
            reconcile_interval,
            reclaim_interval,
            cleanup_interval,
            ..
        } = deps;
        tasks.push(tokio::spawn(leader::run(
            deps.store,
            deps.leading,
            move || {
                let mut jobs = vec![
                    tokio::spawn(reconcile::run(
                        reconciler.clone(),
                        vms.clone(),
                        reconcile_interval,
                    )),
                    tokio::spawn(reclaim::run(reclaimer.clone(), reclaim_interval)),
                ];
                if let Some(cleanup) = &cleanup {
                    jobs.push(tokio::spawn(reclaim::clean_up(
                        cleanup.clone(),
                        cleanup_interval,
                    )));
                }
                jobs
            },
        )));
        Self { tasks }
    }

    pub(crate) fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}
