//! The installation as a whole: its health, its metrics, and the administration of its
//! container hosts.

use super::accounts::Admin;
use super::Error;
use crate::hosts::{GatedCluster, Hosts};
pub(crate) use crate::hosts::{HostView, ImageDisk};
use crate::metrics::Metrics;
use crate::util::now;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;
use wm_store::Store;

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Health {
    /// `ok` when the database answers; `degraded` otherwise.
    pub(crate) status: String,
    pub(crate) database: String,
    /// All container hosts together: reachable when every one answers.
    pub(crate) docker: EngineHealth,
    /// Each container host.
    pub(crate) hosts: Vec<EngineHealth>,
    /// `null` when no Kubernetes cluster is configured.
    pub(crate) kubernetes: Option<KubeHealth>,
    /// `null` when no directory is configured.
    pub(crate) ldap: Option<DirectoryHealth>,
    /// Whether this console runs the periodic work (reconcile, reclaim, clean-up): one
    /// console of an installation does at a time.
    pub(crate) leader: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct DirectoryHealth {
    pub(crate) reachable: bool,
    pub(crate) url: String,
    pub(crate) error: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct EngineHealth {
    pub(crate) reachable: bool,
    pub(crate) host: String,
    pub(crate) version: Option<String>,
    pub(crate) error: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct KubeHealth {
    pub(crate) reachable: bool,
    /// The API server's version.
    pub(crate) version: Option<String>,
    pub(crate) error: Option<String>,
}

/// Whether this console leads the periodic work now (`crate::workers` decides): in the
/// health answer, and the `wm_console_leader` metric.
pub(crate) struct Leading {
    now: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Leading {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            now: AtomicBool::new(false),
            metrics,
        }
    }

    pub(crate) fn get(&self) -> bool {
        self.now.load(Ordering::SeqCst)
    }

    pub(crate) fn set(&self, leading: bool) {
        self.now.store(leading, Ordering::SeqCst);
        self.metrics.console_leader.set(i64::from(leading));
    }
}

/// Health, metrics and host administration.
pub(crate) struct System {
    store: Store,
    hosts: Arc<Hosts>,
    cluster: Option<Arc<GatedCluster>>,
    directory: Option<Arc<wm_ldap::Directory>>,
    metrics: Arc<Metrics>,
    leading: Arc<Leading>,
}

impl System {
    pub(crate) fn new(
        store: Store,
        hosts: Arc<Hosts>,
        cluster: Option<Arc<GatedCluster>>,
        directory: Option<Arc<wm_ldap::Directory>>,
        metrics: Arc<Metrics>,
        leading: Arc<Leading>,
    ) -> Self {
        Self {
            store,
            hosts,
            cluster,
            directory,
            metrics,
            leading,
        }
    }

    /// The addresses links to published ports use, one per host: the console is not
    /// served under them (see `crate::http::origin`).
    pub(crate) fn link_addresses(&self) -> Vec<String> {
        self.hosts.all().iter().map(|h| h.address()).collect()
    }

    /// Checks the directory (bounded by its time-out) and records the result in the
    /// metrics.
    async fn directory_health(&self) -> Option<DirectoryHealth> {
        let dir = self.directory.as_ref()?;
        let r = dir.check().await;
        self.metrics.directory_up.set(i64::from(r.is_ok()));
        Some(DirectoryHealth {
            reachable: r.is_ok(),
            url: dir.url().to_string(),
            error: r.err().map(|e| e.to_string()),
        })
    }

    /// The cluster's health; `None` without a cluster.
    async fn cluster_health(&self) -> Option<KubeHealth> {
        let r = self.cluster.as_ref()?.check().await;
        Some(match r {
            Ok(version) => KubeHealth {
                reachable: true,
                version: Some(version),
                error: None,
            },
            Err(e) => KubeHealth {
                reachable: false,
                version: None,
                error: Some(e.to_string()),
            },
        })
    }

    /// Checks the database, every host, the directory and the cluster, all at once.
    pub(crate) async fn health(&self) -> Health {
        let (db, _, ldap, kubernetes) = tokio::join!(
            self.store.ping(),
            self.hosts.check_all(),
            self.directory_health(),
            self.cluster_health()
        );
        let hosts: Vec<EngineHealth> = self
            .hosts
            .all()
            .iter()
            .map(|h| {
                let info = h.info().filter(|_| h.usable());
                EngineHealth {
                    reachable: info.is_some(),
                    host: h.id.clone(),
                    version: info.map(|i| i.version),
                    error: h.error().map(|w| w.text),
                }
            })
            .collect();
        let down: Vec<String> = hosts
            .iter()
            .filter(|h| !h.reachable)
            .map(|h| format!("{}: {}", h.host, h.error.as_deref().unwrap_or("no answer")))
            .collect();
        let docker = EngineHealth {
            reachable: down.is_empty(),
            host: hosts
                .iter()
                .map(|h| h.host.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            version: hosts.iter().find_map(|h| h.version.clone()),
            error: (!down.is_empty()).then(|| down.join("; ")),
        };
        let db_ok = db.is_ok();
        Health {
            status: if db_ok { "ok" } else { "degraded" }.into(),
            database: if db_ok {
                "ok".into()
            } else {
                "unreachable".into()
            },
            docker,
            hosts,
            kubernetes,
            ldap,
            leader: self.leading.get(),
        }
    }

    /// The metrics in the OpenMetrics text format, with every host, the directory and
    /// the cluster checked now.
    pub(crate) async fn metrics_text(&self) -> String {
        if let Ok(counts) = self.store.count_containers_by_status().await {
            self.metrics.set_container_counts(&counts);
        }
        if let Ok(leases) = self.store.gpu_leases(None).await {
            let mut per_host: Vec<(String, i64)> = Vec::new();
            for l in leases {
                match per_host.last_mut() {
                    Some((h, n)) if *h == l.host => *n += 1,
                    _ => per_host.push((l.host, 1)),
                }
            }
            self.metrics.set_gpus_allocated(&per_host);
        }
        tokio::join!(
            self.hosts.check_all(),
            self.directory_health(),
            self.cluster_health()
        );
        self.metrics.encode()
    }

    /// Checks every host and the cluster; answers the hosts that came back.
    pub(crate) async fn check_hosts(&self) -> Vec<Arc<crate::hosts::Host>> {
        self.cluster_health().await;
        let back = self.hosts.check_all().await;
        self.hosts.report_up(&self.metrics);
        back
    }

    /// The container hosts, their health, how many containers each holds, and the disk
    /// their images take (asked of every host at once).
    pub(crate) async fn hosts(&self, _admin: &Admin) -> Result<Vec<HostView>, Error> {
        let mut views = self.hosts.views().await?;
        let disks = futures::future::join_all(views.iter().map(|v| async move {
            let backend = self.hosts.reach(&v.id).ok()?;
            let images = backend.images().await.ok()?;
            let mut d = ImageDisk::default();
            for i in images {
                d.count += 1;
                d.bytes += i.size;
                if i.owner.is_some() {
                    d.user_count += 1;
                    d.user_bytes += i.size;
                }
            }
            Some(d)
        }))
        .await;
        for (v, d) in views.iter_mut().zip(disks) {
            v.images = d;
        }
        Ok(views)
    }

    /// The hosts whose links to published ports point at an address that users' computers
    /// likely cannot reach, as far as the console can tell by resolving it itself (at most
    /// two seconds per host, all at once).
    pub(crate) async fn link_warnings(&self, _admin: &Admin) -> Vec<LinkWarning> {
        let hosts = self.hosts.all();
        futures::future::join_all(hosts.iter().map(|h| async move {
            let address = h.address();
            let host = crate::util::host_without_port(&address);
            let resolved: Vec<IpAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::net::lookup_host((host.as_str(), 0)),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .unwrap_or_default(),
            };
            link_doubt(&host, &resolved).map(|doubt| LinkWarning {
                host: h.id.clone(),
                address,
                doubt,
            })
        }))
        .await
        .into_iter()
        .flatten()
        .collect()
    }

    /// Drains a host (it keeps its containers but gets no new ones), or puts it back.
    pub(crate) async fn drain(
        &self,
        _admin: &Admin,
        id: &str,
        drained: bool,
    ) -> Result<HostView, Error> {
        if !self.hosts.has(id) {
            let id: String = id.chars().take(64).collect();
            return Err(Error::missing(
                "not_found",
                "host",
                [("name", id.clone())],
                format!("host {id}"),
            ));
        }
        self.store.set_host_drained(id, drained, now()).await?;
        tracing::info!(host = id, drained, "host placement changed");
        Ok(self
            .hosts
            .views()
            .await?
            .into_iter()
            .find(|h| h.id == id)
            .expect("the host exists"))
    }
}

/// Why users' computers may not reach a host's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkDoubt {
    /// The address is, or its name resolves only to, the machine itself (loopback).
    Loopback,
    /// The name does not resolve, not even from the console.
    Unresolved,
    /// A name without a domain (`vm`): it resolves here, and perhaps nowhere else.
    ShortName,
}

/// A host whose links look unreachable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkWarning {
    pub(crate) host: String,
    pub(crate) address: String,
    pub(crate) doubt: LinkDoubt,
}

/// Whether a link's `host` (a name or an IP address), which resolves to `resolved` from the
/// console, looks unreachable for users' computers.
fn link_doubt(host: &str, resolved: &[IpAddr]) -> Option<LinkDoubt> {
    let is_ip = host.parse::<IpAddr>().is_ok();
    if resolved.is_empty() {
        Some(LinkDoubt::Unresolved)
    } else if resolved
        .iter()
        .all(|ip| ip.is_loopback() || ip.is_unspecified())
    {
        Some(LinkDoubt::Loopback)
    } else if !is_ip && !host.contains('.') {
        Some(LinkDoubt::ShortName)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_that_look_unreachable() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(link_doubt("192.0.2.2", &[ip("192.0.2.2")]), None);
        assert_eq!(link_doubt("blade1.example.org", &[ip("192.0.2.7")]), None);
        assert_eq!(
            link_doubt("127.0.0.1", &[ip("127.0.0.1")]),
            Some(LinkDoubt::Loopback)
        );
        assert_eq!(link_doubt("::1", &[ip("::1")]), Some(LinkDoubt::Loopback));
        assert_eq!(
            link_doubt("vm", &[ip("127.0.1.1")]),
            Some(LinkDoubt::Loopback)
        );
        assert_eq!(link_doubt("vm", &[]), Some(LinkDoubt::Unresolved));
        assert_eq!(
            link_doubt("nowhere.example.org", &[]),
            Some(LinkDoubt::Unresolved)
        );
        assert_eq!(
            link_doubt("blade1", &[ip("192.0.2.7")]),
            Some(LinkDoubt::ShortName)
        );
        // A name that also resolves to the loopback is not only the machine itself.
        assert_eq!(
            link_doubt("wm.example.org", &[ip("127.0.0.1"), ip("192.0.2.2")]),
            None
        );
    }
}
