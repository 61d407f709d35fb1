//! The periodic reconcile of containers and VMs, and the purge of expired sessions with
//! it: the leader's.
//!
//! Safe on two consoles at once: both write the status each host reports (the same
//! words); a container both try to adopt is recorded once, the primary key refusing the
//! second (which logs it as not adoptable, once); marking gone and purging are
//! idempotent; VMs are never adopted or removed, only their states written.

use crate::service::reconcile::Reconciler;
use crate::service::vms::Vms;
use std::sync::Arc;
use std::time::Duration;

/// Reconciles every `interval` until stopped, the first time at once. An unreachable host
/// is logged and tried again next time.
pub(super) async fn run(reconciler: Arc<Reconciler>, vms: Arc<Vms>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match reconciler.reconcile().await {
            Ok(r) if !r.gone.is_empty() || !r.adopted.is_empty() => {
                tracing::info!(gone = ?r.gone, adopted = ?r.adopted, updated = r.updated, "reconciled")
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "reconcile skipped"),
        }
        if let Err(e) = vms.reconcile().await {
            tracing::warn!(error = %e, "the VMs could not be reconciled");
        }
        reconciler.purge_expired_tokens().await;
    }
}
