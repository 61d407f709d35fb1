//! The console's background work, started and stopped in one place: the periodic
//! reconcile, the health checks of the hosts and the cluster, and one follower of each
//! host's image events. Every later periodic job goes here too.

mod health;
mod image_events;
mod reconcile;

use crate::hosts::Hosts;
use crate::service::images::Catalog;
use crate::service::reconcile::Reconciler;
use crate::service::system::System;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// What the workers use.
pub(crate) struct Deps {
    pub(crate) hosts: Arc<Hosts>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) reconciler: Arc<Reconciler>,
    pub(crate) system: Arc<System>,
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
                deps.reconcile_interval,
            )),
            tokio::spawn(health::run(
                deps.system.clone(),
                deps.reconciler.clone(),
                deps.check_interval,
            )),
        ];
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
