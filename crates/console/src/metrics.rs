//! Prometheus metrics: request counts and latencies, containers by status, and the
//! latency of every call to a container host (timed by `hosts`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HostLabels {
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub host: String,
    pub op: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub status: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub(crate) struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub engine_call_seconds: Family<CallLabels, Histogram, fn() -> Histogram>,
    pub containers: Family<StatusLabels, Gauge>,
    pub hosts_up: Family<HostLabels, Gauge>,
    pub directory_logins: Family<OutcomeLabels, Counter>,
    pub directory_up: Gauge,
    pub kubernetes_up: Gauge,
    pub sif_conversions: Family<OutcomeLabels, Counter>,
    pub(crate) gpus_allocated: Family<HostLabels, Gauge>,
    pub(crate) quota_refusals: Family<QuotaLabels, Counter>,
    pub(crate) reclaim_actions: Family<ReclaimLabels, Counter>,
    pub(crate) cleanup_removed: Family<CleanupLabels, Counter>,
    pub(crate) cleanup_freed_bytes: Family<CleanupLabels, Counter>,
    pub(crate) image_scans: Family<ScanLabels, Counter>,
    pub(crate) image_scan_seconds: Histogram,
    pub(crate) terminal_sessions: Gauge,
    /// 1 while this console leads the periodic work (see `crate::workers::leader`).
    pub(crate) console_leader: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ScanLabels {
    /// `clean`, `flagged` or `error`.
    pub(crate) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReclaimLabels {
    /// `stop_idle`, `stop_expired` or `delete_expired`.
    pub(crate) action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CleanupLabels {
    /// `image` or `sif`.
    pub(crate) kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QuotaLabels {
    pub(crate) kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub outcome: &'static str,
}

impl Metrics {
    /// The metrics of an installation; those of the directory and of Kubernetes only when
    /// that part is configured (an alert on `wm_ldap_up == 0` must not fire where there is
    /// no directory).
    pub(crate) fn new(directory: bool, kubernetes: bool) -> Self {
        let mut registry = Registry::with_prefix("wm");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route",
            request_seconds.clone(),
        );
        let engine_call_seconds: Family<CallLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "docker_call_duration_seconds",
            "Time of calls to the Docker host, by operation and outcome",
            engine_call_seconds.clone(),
        );
        let containers = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "containers",
            "Containers in the database, by status",
            containers.clone(),
        );
        let hosts_up = Family::<HostLabels, Gauge>::default();
        registry.register(
            "docker_up",
            "1 when the container host answered the last check, by host",
            hosts_up.clone(),
        );
        let directory_logins = Family::<OutcomeLabels, Counter>::default();
        let directory_up = Gauge::default();
        if directory {
            registry.register(
                "ldap_logins",
                "Logins checked against the directory, by outcome (ok, invalid, unavailable, refused)",
                directory_logins.clone(),
            );
            registry.register(
                "ldap_up",
                "1 when the directory answered the last login or check",
                directory_up.clone(),
            );
        }
        let kubernetes_up = Gauge::default();
        if kubernetes {
            registry.register(
                "kubernetes_up",
                "1 when the Kubernetes API answered the last check",
                kubernetes_up.clone(),
            );
        }
        let sif_conversions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sif_conversions",
            "Images converted to SIF (cache misses), by outcome",
            sif_conversions.clone(),
        );
        let terminal_sessions = Gauge::default();
        registry.register(
            "terminal_sessions",
            "Interactive terminal sessions open now",
            terminal_sessions.clone(),
        );
        let gpus_allocated = Family::<HostLabels, Gauge>::default();
        registry.register(
            "gpus_allocated",
            "GPU places held by containers, by host",
            gpus_allocated.clone(),
        );
        let quota_refusals = Family::<QuotaLabels, Counter>::default();
        registry.register(
            "quota_refusals",
            "Requests refused for being over a quota, by kind (containers, running, cpus, memory, gpus, ports, builds, storage)",
            quota_refusals.clone(),
        );
        let reclaim_actions = Family::<ReclaimLabels, Counter>::default();
        registry.register(
            "reclaim_actions",
            "Containers the reclaim worker stopped or deleted, by action (stop_idle, stop_expired, delete_expired)",
            reclaim_actions.clone(),
        );
        let cleanup_removed = Family::<CleanupLabels, Counter>::default();
        registry.register(
            "cleanup_removed",
            "Images and SIF files removed by the clean-up, by kind (image, sif)",
            cleanup_removed.clone(),
        );
        let cleanup_freed_bytes = Family::<CleanupLabels, Counter>::default();
        registry.register(
            "cleanup_freed_bytes",
            "Bytes the clean-up freed, by kind (image, sif)",
            cleanup_freed_bytes.clone(),
        );
        let image_scans = Family::<ScanLabels, Counter>::default();
        registry.register(
            "image_scans",
            "Images scanned after a pull or build, by result (clean, flagged, error)",
            image_scans.clone(),
        );
        // 0.1 s to about 55 min.
        let image_scan_seconds = Histogram::new(exponential_buckets(0.1, 2.0, 16));
        registry.register(
            "image_scan_duration_seconds",
            "Time to scan one image, export included",
            image_scan_seconds.clone(),
        );
        let console_leader = Gauge::default();
        registry.register(
            "console_leader",
            "1 while this console runs the periodic work (reconcile, reclaim, clean-up), else 0",
            console_leader.clone(),
        );
        Self {
            console_leader,
            reclaim_actions,
            cleanup_removed,
            cleanup_freed_bytes,
            image_scans,
            image_scan_seconds,
            terminal_sessions,
            gpus_allocated,
            quota_refusals,
            sif_conversions,
            directory_logins,
            directory_up,
            kubernetes_up,
            registry,
            requests,
            request_seconds,
            engine_call_seconds,
            containers,
            hosts_up,
        }
    }
}

impl Metrics {
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub(crate) fn host_up(&self, host: &str, up: bool) {
        self.hosts_up
            .get_or_create(&HostLabels {
                host: host.to_string(),
            })
            .set(i64::from(up));
    }

    pub(crate) fn set_gpus_allocated(&self, per_host: &[(String, i64)]) {
        self.gpus_allocated.clear();
        for (host, n) in per_host {
            self.gpus_allocated
                .get_or_create(&HostLabels { host: host.clone() })
                .set(*n);
        }
    }

    pub(crate) fn set_container_counts(&self, counts: &[(wm_domain::ContainerStatus, i64)]) {
        self.containers.clear();
        for (status, n) in counts {
            self.containers
                .get_or_create(&StatusLabels {
                    status: status.as_str().to_string(),
                })
                .set(*n);
        }
    }
}
