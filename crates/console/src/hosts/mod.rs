//! The container hosts the console lends from, their health, and where a new container
//! goes.
//!
//! `wm serve` has one host, the local engine in-process; `wm console` has one per agent
//! in `WM_AGENTS`. Each host is checked every `WM_HOST_CHECK_INTERVAL_SECS`: while a host
//! does not answer, its containers show as `unknown` (their records stay), calls on them
//! answer 503 at once, and new containers go elsewhere. When it answers again it is
//! reconciled from its labels before anything else is asked of it.
//!
//! # Placement
//! A new container goes to a host that is up, not drained, carries every label the
//! request and the owner's role require, has as many GPUs with a free place as it asks,
//! and has room for its memory: the limits of the host's live containers as the console
//! recorded them (creates in flight included) never go past the host's memory times
//! `WM_MEMORY_OVERCOMMIT`. Among those, a host that has the image if any does; then the
//! fewest running containers (so that a burst spreads at once instead of waiting for the
//! next check), then the most free memory, then the id. The GPUs are different ones, the
//! least held first; their places are leased in the database with the container's record.

mod cluster;
mod gate;
mod instrumented;

pub(crate) use cluster::GatedCluster;

use crate::metrics::Metrics;
use gate::Gate;
use instrumented::InstrumentedBackend;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;
use wm_backend::{BackendError, ContainerBackend, HostInfo, Why};
use wm_store::{Store, StoreError};

/// Why the hosts cannot serve a call now.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostsError {
    /// No host (or not the one asked for) can be used now; the sentence says why, and
    /// `reason` with `params` keys it for the console's other languages.
    #[error("{message}")]
    Unavailable {
        reason: &'static str,
        params: Vec<(&'static str, String)>,
        message: String,
    },
    /// The host `host` is down, for the reason `why` (a backend's sentence, keyed when
    /// the backend said it).
    #[error("{message}")]
    Down {
        host: String,
        why: Why,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a health check waits for a host.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// One container host.
pub(crate) struct Host {
    pub(crate) id: String,
    pub(crate) backend: Arc<dyn ContainerBackend>,
    /// Where users reach published ports when the host does not say.
    fallback_address: String,
    health: Arc<Gate<HostInfo>>,
    /// Turns for creates on the host ([`CREATES_AT_ONCE`]).
    creates: Arc<tokio::sync::Semaphore>,
}

/// At most this many containers are being created on one host at once; more creates wait
/// their turn in the console. An engine works through a class starting at once one
/// network and container at a time: sent all together, the last ones ran past the call
/// timeout and the host was counted as down while it was only busy.
const CREATES_AT_ONCE: usize = 8;

impl Host {
    /// A host around `backend`, whose calls are timed into `metrics`.
    pub(crate) fn new(
        backend: Arc<dyn ContainerBackend>,
        fallback_address: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        let id = backend.host_name().to_string();
        let health = Arc::new(Gate::new(format!("host {id}")));
        Self {
            id,
            backend: Arc::new(InstrumentedBackend::new(backend, metrics, health.clone())),
            fallback_address,
            health,
            creates: Arc::new(tokio::sync::Semaphore::new(CREATES_AT_ONCE)),
        }
    }

    /// Waits for a turn to create a container on the host; the turn ends when the answer
    /// is dropped.
    pub(crate) async fn create_turn(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.creates
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Whether calls may go to the host: up, or not checked yet.
    pub(crate) fn usable(&self) -> bool {
        self.health.is_open()
    }

    pub(crate) fn info(&self) -> Option<HostInfo> {
        self.health.read().info
    }

    pub(crate) fn error(&self) -> Option<Why> {
        self.health.read().error
    }

    /// Where users reach the host's published ports.
    pub(crate) fn address(&self) -> String {
        self.info()
            .and_then(|i| i.address)
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| self.fallback_address.clone())
    }

    pub(crate) fn labels(&self) -> Vec<String> {
        self.info().map(|i| i.labels).unwrap_or_default()
    }

    /// Asks the host how it is. Returns whether it came back up with this check.
    pub(crate) async fn check(&self) -> bool {
        let answer = match tokio::time::timeout(CHECK_TIMEOUT, self.backend.info()).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Unavailable(
                format!("no answer within {} seconds", CHECK_TIMEOUT.as_secs()).into(),
            )),
        };
        match answer {
            Ok(info) => self.health.up(info),
            Err(e) => {
                self.health.failed(&e);
                false
            }
        }
    }
}

/// Every host of the installation.
pub(crate) struct Hosts {
    hosts: Vec<Arc<Host>>,
    /// Where the hosts' containers are recorded: placement counts them.
    store: Store,
    /// Placement reads the counts and records the choice under this lock (and, on
    /// PostgreSQL, the database's lock of the same name), so concurrent creates see each
    /// other's choices, also across consoles.
    placing: tokio::sync::Mutex<()>,
}

/// A host as the admin API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct HostView {
    pub id: String,
    /// `up`, `down`, or `unchecked`.
    pub status: String,
    pub drained: bool,
    pub address: String,
    pub labels: Vec<String>,
    /// Containers running on it, or being created.
    pub containers: i64,
    pub version: Option<String>,
    pub memory_total: Option<i64>,
    pub memory_committed: Option<i64>,
    /// The memory limits of its live containers as this console recorded them.
    pub memory_placed: i64,
    /// Its GPUs, and who holds each.
    pub gpus: Vec<GpuView>,
    /// The disk its tagged images take; `null` while it does not answer.
    pub images: Option<ImageDisk>,
    pub error: Option<String>,
}

/// The images of one host: how many, and their sizes summed (layers shared between
/// images count once per image, as the engine reports each image's size).
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub(crate) struct ImageDisk {
    pub(crate) count: i64,
    pub(crate) bytes: i64,
    /// Of those, the images users built here (with an owner).
    pub(crate) user_count: i64,
    pub(crate) user_bytes: i64,
}

/// One GPU of a host, as the admin API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct GpuView {
    pub(crate) id: String,
    pub(crate) name: String,
    /// How many containers may hold it at once.
    pub(crate) share: u32,
    /// The containers holding it (`<owner>/<short name>`).
    pub(crate) holders: Vec<String>,
}

impl Hosts {
    pub(crate) fn new(hosts: Vec<Host>, store: Store) -> Self {
        Self {
            hosts: hosts.into_iter().map(Arc::new).collect(),
            store,
            placing: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn all(&self) -> &[Arc<Host>] {
        &self.hosts
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Arc<Host>> {
        self.hosts.iter().find(|h| h.id == id)
    }

    /// The backend of the host `id`, or 503 at once while it is down.
    pub(crate) fn reach(&self, id: &str) -> Result<Arc<dyn ContainerBackend>, HostsError> {
        match self.get(id) {
            Some(h) if h.usable() => Ok(h.backend.clone()),
            Some(h) => Err(match h.error() {
                Some(why) => HostsError::Down {
                    host: id.to_string(),
                    message: format!("host {id} is unavailable ({why}); try again later"),
                    why,
                },
                None => HostsError::Unavailable {
                    reason: "host_down",
                    params: vec![("host", id.to_string())],
                    message: format!("host {id} is unavailable; try again later"),
                },
            }),
            None => Err(HostsError::Unavailable {
                reason: "host_unknown",
                params: vec![("host", id.to_string())],
                message: format!(
                    "host {id} is not among this console's hosts; ask an administrator"
                ),
            }),
        }
    }

    /// The answer when no host answers: which ones, and why.
    pub(crate) fn none_usable(&self) -> HostsError {
        let why: Vec<String> = self
            .hosts
            .iter()
            .map(|h| {
                format!(
                    "{}: {}",
                    h.id,
                    h.error().map_or_else(|| "no answer".into(), |w| w.text)
                )
            })
            .collect();
        HostsError::Unavailable {
            reason: "none_answer",
            params: vec![("why", why.join("; "))],
            message: format!(
                "no container host answers now ({}); try again later",
                why.join("; ")
            ),
        }
    }

    /// Hosts calls may go to now.
    pub(crate) fn usable(&self) -> Vec<Arc<Host>> {
        self.hosts.iter().filter(|h| h.usable()).cloned().collect()
    }

    /// Hosts calls may go to now; 503 saying why when there is none.
    pub(crate) fn answering(&self) -> Result<Vec<Arc<Host>>, HostsError> {
        let usable = self.usable();
        if usable.is_empty() {
            return Err(self.none_usable());
        }
        Ok(usable)
    }

    /// Checks every host at once; returns those that came back.
    pub(crate) async fn check_all(&self) -> Vec<Arc<Host>> {
        let checks = self
            .hosts
            .iter()
            .map(|h| async move { (h.check().await, h) });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .filter(|(back, _)| *back)
            .map(|(_, h)| h.clone())
            .collect()
    }

    pub(crate) async fn views(&self) -> Result<Vec<HostView>, HostsError> {
        let (drained, counts) = self.records().await?;
        let placed: HashMap<String, i64> =
            self.store.memory_per_host().await?.into_iter().collect();
        let leases = self.store.gpu_leases(None).await?;
        Ok(self
            .hosts
            .iter()
            .map(|h| {
                let health = h.health.read();
                HostView {
                    id: h.id.clone(),
                    status: match health.up {
                        None => "unchecked",
                        Some(true) => "up",
                        Some(false) => "down",
                    }
                    .into(),
                    drained: drained.contains(&h.id),
                    address: h.address(),
                    labels: h.labels(),
                    containers: counts.get(&h.id).copied().unwrap_or(0),
                    version: health.info.as_ref().map(|i| i.version.clone()),
                    memory_total: health.info.as_ref().map(|i| i.memory_total),
                    memory_committed: health.info.as_ref().map(|i| i.memory_committed),
                    memory_placed: placed.get(&h.id).copied().unwrap_or(0),
                    gpus: health
                        .info
                        .as_ref()
                        .map(|i| {
                            i.gpus
                                .iter()
                                .map(|g| GpuView {
                                    id: g.id.clone(),
                                    name: g.name.clone(),
                                    share: g.share,
                                    holders: leases
                                        .iter()
                                        .filter(|l| l.host == h.id && l.gpu == g.id)
                                        .map(|l| format!("{}/{}", l.owner, l.short_name))
                                        .collect(),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    images: None,
                    error: health.error.map(|w| w.text),
                }
            })
            .collect())
    }

    /// What the database says of the hosts: the drained ones, and the running containers
    /// on each.
    async fn records(&self) -> Result<(Vec<String>, HashMap<String, i64>), StoreError> {
        let drained = self.store.drained_hosts().await?;
        let counts = self
            .store
            .containers_per_host()
            .await?
            .into_iter()
            .collect();
        Ok((drained, counts))
    }

    /// The places taken of each GPU, by `(host, gpu)`.
    async fn gpu_places_taken(&self) -> Result<HashMap<(String, String), Vec<i64>>, StoreError> {
        let mut taken: HashMap<(String, String), Vec<i64>> = HashMap::new();
        for l in self.store.gpu_leases(None).await? {
            taken.entry((l.host, l.gpu)).or_default().push(l.slot);
        }
        Ok(taken)
    }

    /// The most GPUs one usable, undrained host could give a new container now.
    pub(crate) async fn most_free_gpus(&self) -> Result<usize, HostsError> {
        let (drained, _) = self.records().await?;
        let leases = self.gpu_places_taken().await?;
        Ok(self
            .hosts
            .iter()
            .filter(|h| h.usable() && !drained.contains(&h.id))
            .filter_map(|h| h.info().map(|i| free_gpus(&h.id, &i.gpus, &leases).len()))
            .max()
            .unwrap_or(0))
    }

    /// Whether the host `id` is one of these.
    pub(crate) fn has(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Notes in the metrics which hosts answered their last check.
    pub(crate) fn report_up(&self, metrics: &Metrics) {
        for h in &self.hosts {
            metrics.host_up(&h.id, h.health.read().up == Some(true));
        }
    }

    /// Chooses the host for a new container, and its GPUs. The placement lock comes
    /// with it: record the container (and its GPU places) before dropping it, so that the
    /// next placement counts them.
    pub(crate) async fn place(&self, need: &Need<'_>) -> Result<Placement<'_>, HostsError> {
        let guard = self.placing.lock().await;
        let db = self.store.lock("placement").await?;
        let (drained, counts) = self.records().await?;
        let committed: HashMap<String, i64> =
            self.store.memory_per_host().await?.into_iter().collect();
        let leases = if need.gpus > 0 {
            self.gpu_places_taken().await?
        } else {
            HashMap::new()
        };
        let candidates: Vec<Candidate> = self
            .hosts
            .iter()
            .filter(|h| h.usable() && !drained.contains(&h.id))
            .filter(|h| need.only.is_none_or(|only| only.contains(&h.id)))
            .filter(|h| {
                let labels = h.labels();
                need.required.iter().all(|r| labels.contains(r))
            })
            .map(|h| {
                let info = h.info();
                let committed = committed.get(&h.id).copied().unwrap_or(0);
                let gpus = info
                    .as_ref()
                    .map(|i| free_gpus(&h.id, &i.gpus, &leases))
                    .unwrap_or_default();
                Candidate {
                    id: h.id.clone(),
                    containers: counts.get(&h.id).copied().unwrap_or(0),
                    free_memory: info
                        .map(|i| (i.memory_total as f64 * need.overcommit) as i64 - committed),
                    has_image: need.has_image.contains(&h.id),
                    gpus,
                }
            })
            .collect();
        let (chosen, gpus) = choose(candidates, need)?;
        let host = self.get(&chosen).expect("chosen among the hosts").clone();
        Ok(Placement {
            host,
            gpus,
            _db: db,
            _guard: guard,
        })
    }
}

/// What a new container asks of its host.
pub(crate) struct Need<'a> {
    /// Labels the host must carry.
    pub(crate) required: &'a [String],
    /// The hosts that have the image: preferred.
    pub(crate) has_image: &'a [String],
    /// The container's memory limit.
    pub(crate) memory: i64,
    /// How many GPUs, each a different one.
    pub(crate) gpus: usize,
    /// How far a host's memory may be committed (1.0: never beyond it).
    pub(crate) overcommit: f64,
    /// Only these hosts may be chosen (those that lend VMs, for a VM's image); `None`:
    /// any.
    pub(crate) only: Option<&'a [String]>,
}

/// The host chosen for a new container, the GPU places it gets there (`(gpu, place)`),
/// and the placement lock until the container is recorded.
pub(crate) struct Placement<'a> {
    pub(crate) host: Arc<Host>,
    pub(crate) gpus: Vec<(String, i64)>,
    _db: wm_store::DbLock,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

struct Candidate {
    id: String,
    containers: i64,
    /// The memory placement may still commit; `None` when the host has not told yet.
    free_memory: Option<i64>,
    has_image: bool,
    /// Each GPU with a free place: its id, the free place, and how many places are taken.
    gpus: Vec<(String, i64, usize)>,
}

/// The GPUs of a host's inventory with a place free, and the first free place of each.
fn free_gpus(
    host: &str,
    inventory: &[wm_backend::Gpu],
    leases: &HashMap<(String, String), Vec<i64>>,
) -> Vec<(String, i64, usize)> {
    inventory
        .iter()
        .filter_map(|g| {
            let taken = leases
                .get(&(host.to_string(), g.id.clone()))
                .map_or(&[][..], Vec::as_slice);
            let free = (0..i64::from(g.share.max(1))).find(|s| !taken.contains(s))?;
            Some((g.id.clone(), free, taken.len()))
        })
        .collect()
}

/// The placement policy (see the module's documentation): the host, and the GPU places.
fn choose(
    mut candidates: Vec<Candidate>,
    need: &Need<'_>,
) -> Result<(String, Vec<(String, i64)>), HostsError> {
    // `reason` is `no_room`, `no_gpus` or `no_memory`, `_with` the labels asked for.
    let busy = |reason: &'static str,
                with_labels: &'static str,
                mut params: Vec<(&'static str, String)>,
                what: String| {
        let (reason, with) = if need.required.is_empty() {
            (reason, String::new())
        } else {
            params.push(("labels", need.required.join(", ")));
            (with_labels, format!(" with {}", need.required.join(", ")))
        };
        HostsError::Unavailable {
            reason,
            params,
            message: format!("no container host{with} has {what} now; try again later"),
        }
    };
    if candidates.is_empty() {
        return Err(busy(
            "no_room",
            "no_room_with",
            Vec::new(),
            "room for a new container".into(),
        ));
    }
    if need.gpus > 0 {
        candidates.retain(|c| c.gpus.len() >= need.gpus);
        if candidates.is_empty() {
            return Err(busy(
                "no_gpus",
                "no_gpus_with",
                vec![("n", need.gpus.to_string())],
                format!(
                    "{} free GPU{}",
                    need.gpus,
                    if need.gpus == 1 { "" } else { "s" }
                ),
            ));
        }
    }
    // A host known to lack the memory is never chosen: placement does not overcommit.
    candidates.retain(|c| c.free_memory.is_none_or(|f| f >= need.memory));
    if candidates.is_empty() {
        return Err(busy(
            "no_memory",
            "no_memory_with",
            vec![("mib", (need.memory >> 20).to_string())],
            format!(
                "{} MiB of memory free for a new container",
                need.memory >> 20
            ),
        ));
    }
    if candidates.iter().any(|c| c.has_image) {
        candidates.retain(|c| c.has_image);
    }
    let chosen = candidates
        .into_iter()
        .min_by(|a, b| {
            a.containers
                .cmp(&b.containers)
                .then(b.free_memory.unwrap_or(0).cmp(&a.free_memory.unwrap_or(0)))
                .then(a.id.cmp(&b.id))
        })
        .expect("not empty");
    // The least used GPUs first, so shared ones spread.
    let mut gpus = chosen.gpus;
    gpus.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.cmp(&b.0)));
    let places = gpus
        .into_iter()
        .take(need.gpus)
        .map(|(id, place, _)| (id, place))
        .collect();
    Ok((chosen.id, places))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, containers: i64, free: Option<i64>, has_image: bool) -> Candidate {
        Candidate {
            id: id.into(),
            containers,
            free_memory: free,
            has_image,
            gpus: Vec::new(),
        }
    }

    fn need(gpus: usize) -> Need<'static> {
        Need {
            required: &[],
            has_image: &[],
            memory: 100,
            gpus,
            overcommit: 1.0,
            only: None,
        }
    }

    fn chosen(c: Vec<Candidate>) -> String {
        choose(c, &need(0)).unwrap().0
    }

    #[test]
    fn fewest_containers_then_free_memory_then_id() {
        assert_eq!(
            chosen(vec![
                candidate("a", 3, Some(1000), false),
                candidate("b", 2, Some(500), false)
            ]),
            "b"
        );
        assert_eq!(
            chosen(vec![
                candidate("a", 2, Some(500), false),
                candidate("b", 2, Some(1000), false)
            ]),
            "b"
        );
        assert_eq!(
            chosen(vec![
                candidate("b", 2, Some(500), false),
                candidate("a", 2, Some(500), false)
            ]),
            "a"
        );
    }

    #[test]
    fn hosts_with_the_image_come_first_among_those_with_room() {
        assert_eq!(
            chosen(vec![
                candidate("a", 0, Some(1000), false),
                candidate("b", 5, Some(1000), true)
            ]),
            "b"
        );
        assert_eq!(
            chosen(vec![
                candidate("a", 0, Some(1000), false),
                candidate("b", 0, Some(50), true)
            ]),
            "a"
        );
        // A host that has not told its memory yet may be chosen.
        assert_eq!(
            chosen(vec![
                candidate("a", 1, Some(50), false),
                candidate("b", 2, None, false)
            ]),
            "b"
        );
    }

    #[test]
    fn memory_is_never_overcommitted() {
        let e = choose(
            vec![
                candidate("a", 1, Some(50), false),
                candidate("b", 0, Some(99), false),
            ],
            &need(0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("memory"), "{e}");
        assert!(choose(Vec::new(), &need(0)).is_err());
    }

    #[test]
    fn gpus_go_to_a_host_with_enough_free_ones_least_used_first() {
        let gpu = |id: &str, share: u32| wm_backend::Gpu {
            id: id.into(),
            name: "test".into(),
            memory_bytes: None,
            kind: wm_backend::GpuKind::Devices {
                paths: vec!["/dev/null".into()],
            },
            share,
        };
        let mut leases = HashMap::new();
        leases.insert(("h".to_string(), "g0".to_string()), vec![0]);
        leases.insert(("h".to_string(), "g1".to_string()), vec![0, 2]);
        let free = free_gpus("h", &[gpu("g0", 1), gpu("g1", 3), gpu("g2", 2)], &leases);
        // g0 is exclusive and taken; g1 has its place 1 free; g2 is untouched.
        assert_eq!(free, vec![("g1".into(), 1, 2), ("g2".into(), 0, 0)]);
        let mut one = candidate("h", 0, Some(1000), false);
        one.gpus = free.clone();
        let (host, places) = choose(vec![one], &need(1)).unwrap();
        assert_eq!((host.as_str(), places), ("h", vec![("g2".to_string(), 0)]));
        let mut two = candidate("h", 0, Some(1000), false);
        two.gpus = free;
        let (_, places) = choose(vec![two], &need(2)).unwrap();
        assert_eq!(places, vec![("g2".to_string(), 0), ("g1".to_string(), 1)]);
        let mut none = candidate("h", 0, Some(1000), false);
        none.gpus = Vec::new();
        let e = choose(vec![none], &need(1)).unwrap_err().to_string();
        assert!(e.contains("1 free GPU"), "{e}");
    }
}
