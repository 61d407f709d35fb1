//! Reclaiming what containers hold: an expired container is stopped, then deleted after
//! the grace period; a running Docker container idle for `WM_IDLE_STOP_AFTER` is
//! stopped. One pass looks at every container; at most `WM_RECLAIM_MAX_ACTIONS` stops and
//! deletions happen in one pass (the rest wait for the next), and each is audited.
//!
//! Idle means, between two passes: no exec through the console, CPU below
//! `WM_IDLE_CPU_PERCENT` of one CPU, and network traffic (received and sent, which is
//! where the published ports' traffic shows) below `WM_IDLE_NETWORK_BYTES` a minute. The
//! samples live in memory: after a restart the first pass only takes a baseline, while
//! `idle_since` is kept in the database.
//!
//! Deletion goes through the same use case as a user's delete, so ports, GPUs and the
//! owner's network are released as usual; it never touches the owner's storage.

use super::audit::Audit;
use super::containers::{Containers, OwnedContainer};
use super::Error;
use crate::config::ReclaimSettings;
use crate::hosts::Hosts;
use crate::metrics::{Metrics, ReclaimLabels};
use crate::util::rfc3339;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wm_backend::{Activity, BackendError};
use wm_domain::{Backend, ContainerKey, ContainerStatus, StopReason};
use wm_store::{ContainerRecord, Store};

/// One sample of a container's counters, at a time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sample {
    pub(super) at_ms: i64,
    pub(super) activity: Activity,
}

/// What two samples say of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It did something.
    Busy,
    /// Nothing worth counting since at least this time (Unix seconds).
    Idle { since: i64 },
    /// No earlier sample to compare with (first look, or its counters restarted).
    Unknown,
}

/// Judges a container from its previous and current samples and the last time it was
/// used through the console (Unix seconds).
pub(super) fn judge(
    prev: Option<Sample>,
    cur: Sample,
    last_activity_at: Option<i64>,
    settings: &ReclaimSettings,
) -> Verdict {
    let Some(prev) = prev else {
        return Verdict::Unknown;
    };
    let a = &cur.activity;
    let b = &prev.activity;
    let elapsed_ms = cur.at_ms - prev.at_ms;
    if elapsed_ms <= 0
        || a.cpu_nanos < b.cpu_nanos
        || a.rx_bytes < b.rx_bytes
        || a.tx_bytes < b.tx_bytes
    {
        return Verdict::Unknown;
    }
    if last_activity_at.is_some_and(|t| t * 1000 >= prev.at_ms) {
        return Verdict::Busy;
    }
    // CPU time over wall time, in percent of one CPU.
    let cpu_percent = (a.cpu_nanos - b.cpu_nanos) as f64 / (elapsed_ms as f64 * 1e6) * 100.0;
    let net_per_minute = ((a.rx_bytes - b.rx_bytes) + (a.tx_bytes - b.tx_bytes)) as f64 * 60_000.0
        / elapsed_ms as f64;
    if cpu_percent >= settings.idle_cpu_percent
        || net_per_minute >= settings.idle_network_bytes as f64
    {
        return Verdict::Busy;
    }
    let since = prev.at_ms.div_euclid(1000);
    Verdict::Idle {
        since: last_activity_at.map_or(since, |t| t.max(since)),
    }
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PassReport {
    /// Full names stopped for being idle.
    pub(crate) stopped_idle: Vec<String>,
    /// Full names stopped because they expired.
    pub(crate) stopped_expired: Vec<String>,
    /// Full names deleted after their grace period.
    pub(crate) deleted: Vec<String>,
    /// Actions left for the next pass (over the rate limit).
    pub(crate) deferred: usize,
}

impl PassReport {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The reclaim of idle and expired containers.
pub(crate) struct Reclaimer {
    store: Store,
    hosts: Arc<Hosts>,
    containers: Arc<Containers>,
    audit: Audit,
    metrics: Arc<Metrics>,
    settings: ReclaimSettings,
    samples: Mutex<HashMap<ContainerKey, Sample>>,
}

/// What to do with one container.
enum Action {
    Delete,
    StopExpired,
    StopIdle { since: i64 },
}

impl Reclaimer {
    pub(crate) fn new(
        store: Store,
        hosts: Arc<Hosts>,
        containers: Arc<Containers>,
        audit: Audit,
        metrics: Arc<Metrics>,
        settings: ReclaimSettings,
    ) -> Self {
        Self {
            store,
            hosts,
            containers,
            audit,
            metrics,
            settings,
            samples: Mutex::default(),
        }
    }

    /// One pass at `now_ms` (Unix milliseconds).
    ///
    /// # Errors
    /// When the database cannot be read; a container whose host does not answer is
    /// skipped until the next pass.
    pub(crate) async fn pass(&self, now_ms: i64) -> Result<PassReport, Error> {
        let now = now_ms.div_euclid(1000);
        let records = self.store.containers(None).await?;
        let mut report = PassReport::default();
        let mut actions = 0usize;
        let mut seen = Vec::with_capacity(records.len());
        for r in records {
            seen.push(r.key());
            let Some(action) = self.decide(&r, now, now_ms).await? else {
                continue;
            };
            if actions >= self.settings.max_actions {
                report.deferred += 1;
                continue;
            }
            actions += 1;
            let name = r.name.to_string();
            match self.act(r, action, now).await {
                Ok(what) => match what {
                    Done::Deleted => report.deleted.push(name),
                    Done::Stopped(StopReason::Expired) => report.stopped_expired.push(name),
                    Done::Stopped(StopReason::Idle) => report.stopped_idle.push(name),
                },
                Err(e) => {
                    tracing::warn!(container = %name, error = %e, "reclaim could not act; trying again next pass")
                }
            }
        }
        // Samples of containers that are gone go with them.
        self.samples
            .lock()
            .expect("not poisoned")
            .retain(|k, _| seen.contains(k));
        Ok(report)
    }

    /// What the container's time has come for, if anything; samples its activity on the
    /// way and keeps `idle_since` up to date.
    async fn decide(
        &self,
        r: &ContainerRecord,
        now: i64,
        now_ms: i64,
    ) -> Result<Option<Action>, Error> {
        if matches!(r.status, ContainerStatus::Creating) {
            return Ok(None);
        }
        if let Some(expires) = r.expires_at.filter(|e| *e <= now) {
            if now >= expires.saturating_add(self.settings.expiry_grace.as_secs()) {
                return Ok(Some(Action::Delete));
            }
            let live = r.status.is_live() || r.status == ContainerStatus::Pending;
            return Ok(live.then_some(Action::StopExpired));
        }
        let Some(after) = self.settings.idle_stop_after else {
            return Ok(None);
        };
        if r.backend != Backend::Docker || r.status != ContainerStatus::Running {
            self.forget(&r.key());
            if r.idle_since.is_some() {
                self.store.set_container_idle_since(&r.key(), None).await?;
            }
            return Ok(None);
        }
        let Ok(host) = self.hosts.reach(&r.host) else {
            return Ok(None);
        };
        let activity = match host.activity(&r.key()).await {
            Ok(a) => a,
            Err(BackendError::NoSuchContainer) => return Ok(None),
            Err(e) => {
                tracing::debug!(container = %r.name, error = %e, "no activity sample");
                return Ok(None);
            }
        };
        let cur = Sample {
            at_ms: now_ms,
            activity,
        };
        let prev = self
            .samples
            .lock()
            .expect("not poisoned")
            .insert(r.key(), cur);
        let idle_since = match judge(prev, cur, r.last_activity_at, &self.settings) {
            Verdict::Unknown => r.idle_since,
            Verdict::Busy => None,
            Verdict::Idle { since } => Some(r.idle_since.unwrap_or(since)),
        };
        if idle_since != r.idle_since {
            self.store
                .set_container_idle_since(&r.key(), idle_since)
                .await?;
        }
        Ok(idle_since
            .filter(|since| now - since >= after.as_secs())
            .map(|since| Action::StopIdle { since }))
    }

    fn forget(&self, key: &ContainerKey) {
        self.samples.lock().expect("not poisoned").remove(key);
    }

    async fn act(&self, r: ContainerRecord, action: Action, now: i64) -> Result<Done, Error> {
        let key = r.key();
        let name = r.name.to_string();
        let expires = r.expires_at.map(rfc3339).unwrap_or_default();
        let c = OwnedContainer::by_the_console(r);
        let (verb, label, detail, done) = match action {
            Action::Delete => {
                self.containers.delete(c).await?;
                (
                    "container.reclaim_delete",
                    "delete_expired",
                    format!(
                        "expired at {expires}; deleted after the grace period of {} s",
                        self.settings.expiry_grace.as_secs()
                    ),
                    Done::Deleted,
                )
            }
            Action::StopExpired => {
                self.containers.stop_for(c, StopReason::Expired).await?;
                (
                    "container.reclaim_stop",
                    "stop_expired",
                    format!("expired at {expires}"),
                    Done::Stopped(StopReason::Expired),
                )
            }
            Action::StopIdle { since } => {
                self.containers.stop_for(c, StopReason::Idle).await?;
                (
                    "container.reclaim_stop",
                    "stop_idle",
                    format!("idle since {} ({} s)", rfc3339(since), now - since),
                    Done::Stopped(StopReason::Idle),
                )
            }
        };
        self.forget(&key);
        self.metrics
            .reclaim_actions
            .get_or_create(&ReclaimLabels { action: label })
            .inc();
        tracing::info!(container = %name, %detail, "{verb}");
        self.audit
            .record(None, verb.into(), Some(name), 200, Some(detail))
            .await;
        Ok(done)
    }
}

enum Done {
    Deleted,
    Stopped(StopReason),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_ms: i64, cpu_nanos: u64, net: u64) -> Sample {
        Sample {
            at_ms,
            activity: Activity {
                cpu_nanos,
                rx_bytes: net,
                tx_bytes: 0,
                memory_bytes: None,
            },
        }
    }

    #[test]
    fn idle_busy_or_unknown_from_two_samples() {
        let set = ReclaimSettings::default(); // 2 % of a CPU, 16 KiB a minute
        let t0 = 1_700_000_000_000;
        // First look: nothing to compare with.
        assert_eq!(judge(None, s(t0, 0, 0), None, &set), Verdict::Unknown);
        // A minute with 0.1 s of CPU (0.17 %) and 1 KiB: idle since the first sample.
        assert_eq!(
            judge(
                Some(s(t0, 0, 0)),
                s(t0 + 60_000, 100_000_000, 1024),
                None,
                &set
            ),
            Verdict::Idle { since: t0 / 1000 }
        );
        // 3 s of CPU in a minute is 5 %: busy.
        assert_eq!(
            judge(
                Some(s(t0, 0, 0)),
                s(t0 + 60_000, 3_000_000_000, 0),
                None,
                &set
            ),
            Verdict::Busy
        );
        // 1 MiB of traffic in a minute: busy.
        assert_eq!(
            judge(Some(s(t0, 0, 0)), s(t0 + 60_000, 0, 1 << 20), None, &set),
            Verdict::Busy
        );
        // An exec since the previous sample: busy, whatever the counters say.
        assert_eq!(
            judge(
                Some(s(t0, 0, 0)),
                s(t0 + 60_000, 0, 0),
                Some(t0 / 1000 + 30),
                &set
            ),
            Verdict::Busy
        );
        // An exec before the previous sample: idle, since the later of the two.
        assert_eq!(
            judge(
                Some(s(t0, 0, 0)),
                s(t0 + 60_000, 0, 0),
                Some(t0 / 1000 - 30),
                &set
            ),
            Verdict::Idle { since: t0 / 1000 }
        );
        // Counters that went back (the container restarted): start again.
        assert_eq!(
            judge(Some(s(t0, 500, 0)), s(t0 + 60_000, 10, 0), None, &set),
            Verdict::Unknown
        );
    }
}
