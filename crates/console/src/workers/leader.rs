//! Which console runs the periodic work that acts on the installation (reconcile,
//! reclaim, clean-up): the one holding the database's leader lease
//! ([`wm_store::LeaderLease`]).
//!
//! On PostgreSQL every console tries to take the lease every [`TRY_EVERY`]; the one that
//! holds it starts the work, and checks its lease's connection as often. When that
//! connection breaks (the database restarted, the network failed) it stops the work at
//! once and goes back to trying; when the leader dies, its connection closes, the
//! database frees the lease, and another console takes it at its next try. On SQLite the
//! one process leads from the start.
//!
//! Between a leader losing its connection and noticing, another console may already
//! lead: every leader's job is safe to run on two consoles at once for a moment (each
//! says why in its module).

use crate::service::system::Leading;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use wm_store::{LeaderLease, Store};

/// How often a console tries to take the lease, and the leader checks it.
const TRY_EVERY: Duration = Duration::from_secs(2);

/// The leader's jobs while they run; dropping it stops them.
struct Jobs(Vec<JoinHandle<()>>);

impl Drop for Jobs {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Leads when the lease is this console's, running the jobs `start` starts, until
/// stopped (aborting this stops them too).
pub(super) async fn run(
    store: Store,
    leading: Arc<Leading>,
    start: impl Fn() -> Vec<JoinHandle<()>> + Send,
) {
    if !store.is_postgres() {
        let _jobs = Jobs(start());
        leading.set(true);
        tracing::info!("this console leads the periodic work (SQLite: one console)");
        return std::future::pending().await;
    }
    let mut lease: Option<LeaderLease> = None;
    let mut jobs: Option<Jobs> = None;
    // Logged once per outage, not at every try.
    let mut reported = false;
    loop {
        match lease.as_mut() {
            None => match store.leader_lease().await {
                Ok(l) => {
                    lease = l;
                    reported = false;
                }
                Err(e) if !reported => {
                    tracing::warn!(error = %e, "cannot reach the database for the leader lease; trying again");
                    reported = true;
                }
                Err(_) => {}
            },
            Some(l) if jobs.is_none() => match l.try_take().await {
                Ok(true) => {
                    jobs = Some(Jobs(start()));
                    leading.set(true);
                    tracing::info!("this console leads the periodic work");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the leader lease's connection broke");
                    lease = None;
                }
            },
            Some(l) => {
                if let Err(e) = l.check().await {
                    jobs = None;
                    leading.set(false);
                    lease = None;
                    tracing::warn!(error = %e, "the leader lease's connection broke: this console stopped leading the periodic work");
                }
            }
        }
        tokio::time::sleep(TRY_EVERY).await;
    }
}
