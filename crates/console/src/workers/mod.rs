//! The console's background work, started and stopped in one place: the periodic
//! reconcile, the health checks of the hosts and the cluster, one follower of each
//! host's image events, the reclaim of idle and expired containers, and the clean-up of
//! images and SIF files. Every later periodic job goes here too.

mod health;
mod image_events;
mod reclaim;
mod reconcile;

use crate::hosts::Hosts;
use crate::service::cleanup::Cleanup;
use crate::service::images::Catalog;
use crate::service::reclaim::Reclaimer;
use crate::service::reconcile::Reconciler;
use crate::service::system::System;
use crate::service::vms::Vms;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

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
}

/// The running workers; [`Workers::stop`] ends them all.
pub(crate) struct Workers {
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Checks every host once (so that the first reconcile knows which answer), then
    /// starts every worker.
    pub(crate) async fn start(deps: Deps) -> Self {
        deps.system.check_hosts().await;
        let mut tasks = vec![
            tokio::spawn(reconcile::run(
                deps.reconciler.clone(),
                deps.vms.clone(),
                deps.reconcile_interval,
            )),
            tokio::spawn(health::run(
                deps.system.clone(),
                deps.reconciler.clone(),
                deps.check_interval,
            )),
        ];
        tasks.push(tokio::spawn(reclaim::run(
            deps.reclaimer.clone(),
            deps.reclaim_interval,
        )));
        if let Some(cleanup) = deps.cleanup {
            tasks.push(tokio::spawn(reclaim::clean_up(
                cleanup,
                deps.cleanup_interval,
            )));
        }
        for host in deps.hosts.all() {
            tasks.push(tokio::spawn(image_events::follow(
                deps.catalog.clone(),
                host.clone(),
            )));
        }
        Self { tasks }
    }

    pub(crate) fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}
