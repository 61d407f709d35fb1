//! The health checks of the hosts and the cluster.

use crate::service::reconcile::Reconciler;
use crate::service::system::System;
use std::sync::Arc;
use std::time::Duration;

/// Checks every host and the cluster every `interval`; a host that comes back is
/// reconciled at once.
pub(super) async fn run(system: Arc<System>, reconciler: Arc<Reconciler>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for host in system.check_hosts().await {
            match reconciler.reconcile_host(&host).await {
                Ok(r) => {
                    tracing::info!(host = %host.id, gone = ?r.gone, adopted = ?r.adopted, updated = r.updated, "reconciled a host that came back")
                }
                Err(e) => tracing::warn!(host = %host.id, error = %e, "could not reconcile"),
            }
        }
    }
}
