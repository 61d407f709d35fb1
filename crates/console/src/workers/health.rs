//! The health checks of the hosts and the cluster.

use crate::service::reconcile::Reconciler;
use crate::service::system::{Leading, System};
use std::sync::Arc;
use std::time::Duration;

/// Checks every host and the cluster every `interval`, on every console (each keeps its
/// own view of which answer); a host that comes back is reconciled at once by the
/// leader.
pub(super) async fn run(
    system: Arc<System>,
    reconciler: Arc<Reconciler>,
    leading: Arc<Leading>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let back = system.check_hosts().await;
        if !leading.get() {
            continue;
        }
        for host in back {
            match reconciler.reconcile_host(&host).await {
                Ok(r) => {
                    tracing::info!(host = %host.id, gone = ?r.gone, adopted = ?r.adopted, updated = r.updated, "reconciled a host that came back")
                }
                Err(e) => tracing::warn!(host = %host.id, error = %e, "could not reconcile"),
            }
        }
    }
}
