//! The reclaim of idle and expired containers, and the clean-up of images and SIF files,
//! each on its own interval: the leader's.
//!
//! Safe on two consoles at once: stopping a stopped container and deleting a deleted one
//! or a removed image are refused or no-ops, logged and audited twice at worst. A new
//! leader's reclaim starts without CPU samples (they live in memory), so it takes a
//! baseline first: idle containers are stopped one pass later, never sooner.

use crate::service::cleanup::Cleanup;
use crate::service::reclaim::Reclaimer;
use crate::util::now_millis;
use std::sync::Arc;
use std::time::Duration;

/// One reclaim pass every `interval` until stopped. A pass that cannot read the database
/// is logged and tried again next time.
pub(super) async fn run(reclaimer: Arc<Reclaimer>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match reclaimer.pass(now_millis()).await {
            Ok(r) if !r.is_empty() => tracing::info!(
                stopped_idle = ?r.stopped_idle,
                stopped_expired = ?r.stopped_expired,
                deleted = ?r.deleted,
                deferred = r.deferred,
                "reclaimed"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reclaim pass skipped"),
        }
    }
}

/// One clean-up every `interval` until stopped; the first after one interval, not at
/// start.
pub(super) async fn clean_up(cleanup: Arc<Cleanup>, interval: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = cleanup.run().await {
            tracing::warn!(error = %e, "clean-up skipped");
        }
    }
}
