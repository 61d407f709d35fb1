//! The use cases against in-memory hosts ([`MemoryBackend`]) and a SQLite file: the rules
//! of ownership, placement, pulls, failures and reconcile, with no Docker engine.
//! The integration tests in `tests/` run the same rules against the real engine.

use super::accounts::Caller;
use super::audit::Audit;
use super::cleanup::Cleanup;
use super::containers::{Containers, CreateContainer, Sessions};
use super::images::{Catalog, Images, Scans};
use super::quotas::Quotas;
use super::reclaim::Reclaimer;
use super::reconcile::Reconciler;
use super::sif::SifCache;
use super::Error;
use crate::config::Config;
use crate::hosts::{Host, Hosts};
use crate::metrics::Metrics;
use serde_json::json;
use std::sync::Arc;
use wm_backend::memory::{MemoryBackend, Op};
use wm_backend::{ContainerBackend, ImageInfo};
use wm_domain::{Backend, ContainerKey, ContainerStatus, Role, Scope, ShortName, UserName};
use wm_store::{Store, User, UserSource};

/// The registry the tests pull from: allowed by name, so no name is resolved.
const REGISTRY: &str = "registry.test:5000";

/// An installation with in-memory hosts.
struct World {
    _dir: tempfile::TempDir,
    store: Store,
    backends: Vec<Arc<MemoryBackend>>,
    hosts: Arc<Hosts>,
    containers: Arc<Containers>,
    reconciler: Reconciler,
    reclaimer: Reclaimer,
    cleanup: Cleanup,
}

impl World {
    async fn new(backends: Vec<MemoryBackend>) -> Self {
        Self::configured(backends, |_| {}).await
    }

    /// An installation whose settings `tweak` changes first.
    async fn configured(backends: Vec<MemoryBackend>, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::connect(&format!("sqlite://{}/wm.db", dir.path().display()))
            .await
            .expect("the database opens");
        let mut config = Config::default();
        config.docker.egress_allowed = vec![REGISTRY.to_string()];
        // No quota: these tests are about the other rules.
        config
            .quotas
            .insert(Role::Student, crate::config::QuotaSettings::unlimited());
        tweak(&mut config);
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::new(false, false));
        let backends: Vec<Arc<MemoryBackend>> = backends.into_iter().map(Arc::new).collect();
        let hosts = Arc::new(Hosts::new(
            backends
                .iter()
                .map(|b| {
                    let b: Arc<dyn ContainerBackend> = b.clone();
                    Host::new(b, "192.0.2.1".into(), metrics.clone())
                })
                .collect(),
            store.clone(),
        ));
        let audit = Audit::new(store.clone());
        let catalog = Arc::new(Catalog::new(hosts.clone()));
        let quotas = Arc::new(Quotas::new(
            store.clone(),
            hosts.clone(),
            config.clone(),
            metrics.clone(),
        ));
        // The memory hosts' images have no files: scanning is the integration tests' part.
        let scans = Arc::new(Scans::new(
            crate::config::ScanSettings {
                command: crate::config::Scanner::Off,
                ..Default::default()
            },
            dir.path().join("scans"),
            metrics.clone(),
        ));
        let images = Arc::new(Images::new(
            store.clone(),
            hosts.clone(),
            catalog.clone(),
            config.clone(),
            audit.clone(),
            quotas.clone(),
            scans,
        ));
        let containers = Arc::new(Containers::new(
            store.clone(),
            hosts.clone(),
            None,
            images.clone(),
            quotas,
            config.clone(),
            Sessions::new(config.terminal_max_sessions, Default::default()),
        ));
        let reclaimer = Reclaimer::new(
            store.clone(),
            hosts.clone(),
            containers.clone(),
            audit.clone(),
            metrics.clone(),
            config.reclaim.clone(),
        );
        let sif = SifCache::open(
            dir.path().join("sif-cache"),
            config.sif_cache_max_bytes,
            hosts.clone(),
            images,
            metrics.clone(),
        )
        .expect("the SIF cache opens");
        let cleanup = Cleanup::new(
            store.clone(),
            hosts.clone(),
            Arc::new(sif),
            audit.clone(),
            metrics,
            config.reclaim.clone(),
        );
        let reconciler = Reconciler::new(
            store.clone(),
            hosts.clone(),
            containers.clone(),
            catalog,
            audit,
            config.default_limits(),
        );
        Self {
            _dir: dir,
            store,
            backends,
            hosts,
            containers,
            reconciler,
            reclaimer,
            cleanup,
        }
    }

    /// A person with an account, as a caller with a full-scope token.
    async fn person(&self, name: &str, role: Role) -> Caller {
        let name = UserName::parse(name).expect("a valid name");
        self.store
            .insert_user(&User {
                name: name.clone(),
                display_name: None,
                role,
                source: UserSource::Local,
                password_hash: None,
                uid_number: None,
                created_at: 0,
                disabled: false,
            })
            .await
            .expect("the account is stored");
        Caller {
            name,
            role,
            scope: Scope::All,
            token_hash: String::new(),
        }
    }

    async fn create(
        &self,
        caller: &Caller,
        name: &str,
        image: &str,
    ) -> Result<super::containers::Container, Error> {
        let req: CreateContainer = serde_json::from_value(json!({
            "name": name, "image": image, "ports": [80]
        }))
        .expect("a valid request");
        self.containers.create(caller, req).await
    }
}

fn image(tag: &str, owner: Option<&str>) -> ImageInfo {
    ImageInfo {
        id: String::new(),
        tags: vec![tag.to_string()],
        owner: owner.map(String::from),
        size: 1,
        created_at: 0,
        on_build: Vec::new(),
        foreign: false,
    }
}

fn is_not_found<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::NotFound { .. }))
}

#[tokio::test]
async fn another_users_container_answers_like_a_missing_one() {
    let w = World::new(vec![MemoryBackend::new("h1").with_tag("busybox:latest")]).await;
    let alice = w.person("alice", Role::Student).await;
    let bob = w.person("bob", Role::Student).await;
    let admin = w.person("root", Role::Admin).await;
    let c = w.create(&alice, "web", "busybox").await.expect("created");
    assert_eq!(c.name, "alice-web");
    assert_eq!(c.status, ContainerStatus::Running);

    let theirs = w.containers.load(&bob, "alice-web", None).await;
    let missing = w.containers.load(&bob, "alice-nothing", None).await;
    assert!(is_not_found(&theirs) && is_not_found(&missing));
    assert_eq!(
        theirs.err().map(|e| e.to_string()),
        Some("container alice-web not found".into())
    );
    // Naming the owner does not help anyone but an admin.
    assert!(is_not_found(
        &w.containers.load(&bob, "alice-web", Some("alice")).await
    ));
    assert!(w.containers.list(&bob, true).await.unwrap().is_empty());
    // An admin may act on it, and sees everyone's with `all`.
    assert!(w.containers.load(&admin, "alice-web", None).await.is_ok());
    assert_eq!(w.containers.list(&admin, true).await.unwrap().len(), 1);
    assert!(w.containers.list(&admin, false).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_full_name_two_owners_share_needs_the_owner_from_an_admin() {
    let w = World::new(vec![MemoryBackend::new("h1").with_tag("busybox:latest")]).await;
    let ab_c = w.person("ab-c", Role::Student).await;
    let ab = w.person("ab", Role::Student).await;
    let admin = w.person("root", Role::Admin).await;
    w.create(&ab_c, "web", "busybox").await.expect("created");
    w.create(&ab, "c-web", "busybox").await.expect("created");
    // Each owner gets their own by the shared full name.
    let mine = w.containers.load(&ab, "ab-c-web", None).await.unwrap();
    assert_eq!(mine.record().owner.as_str(), "ab");
    let mine = w.containers.load(&ab_c, "ab-c-web", None).await.unwrap();
    assert_eq!(mine.record().owner.as_str(), "ab-c");
    assert!(matches!(
        w.containers.load(&admin, "ab-c-web", None).await,
        Err(Error::Ambiguous(_))
    ));
    let picked = w
        .containers
        .load(&admin, "ab-c-web", Some("ab-c"))
        .await
        .unwrap();
    assert_eq!(picked.record().short_name.as_str(), "web");
}

#[tokio::test]
async fn a_build_token_may_not_touch_containers() {
    let w = World::new(vec![MemoryBackend::new("h1").with_tag("busybox:latest")]).await;
    let mut alice = w.person("alice", Role::Student).await;
    w.create(&alice, "web", "busybox").await.expect("created");
    alice.scope = Scope::Build;
    assert!(matches!(
        w.create(&alice, "db", "busybox").await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        w.containers.load(&alice, "alice-web", None).await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        w.containers.list(&alice, false).await,
        Err(Error::Forbidden(_))
    ));
}

#[tokio::test]
async fn private_images_are_their_owners_and_shared_ones_everyones() {
    let w = World::new(vec![MemoryBackend::new("h1")
        .with_image(image("wm/alice/tool:1", Some("alice")))
        .with_image(image("wm/alice/shared:1", Some("alice")))])
    .await;
    let alice = w.person("alice", Role::Student).await;
    let bob = w.person("bob", Role::Student).await;
    w.store
        .set_image_meta(&wm_store::ImageMeta {
            reference: "wm/alice/shared:1".into(),
            owner: alice.name.clone(),
            description: String::new(),
            shared: true,
            updated_at: 0,
        })
        .await
        .unwrap();
    let refused = w.create(&bob, "x", "wm/alice/tool:1").await;
    assert!(
        matches!(
            &refused,
            Err(Error::NotFound {
                code: "image_not_found",
                ..
            })
        ),
        "{refused:?}"
    );
    // The same answer as an image that does not exist at all.
    let missing = w.create(&bob, "y", "wm/alice/nothing:1").await;
    assert_eq!(
        refused.err().map(|e| e.code()),
        missing.err().map(|e| e.code())
    );
    assert!(w.create(&bob, "z", "wm/alice/shared:1").await.is_ok());
    assert!(w.create(&alice, "t", "wm/alice/tool:1").await.is_ok());
    // Nothing of bob's refused creates was left behind.
    assert_eq!(w.containers.list(&bob, false).await.unwrap().len(), 1);
    assert_eq!(w.backends[0].count(Op::Create), 2);
}

#[tokio::test]
async fn a_burst_spreads_over_the_hosts_and_a_drained_host_gets_none() {
    let w = World::new(vec![
        MemoryBackend::new("h1").with_tag("busybox:latest"),
        MemoryBackend::new("h2").with_tag("busybox:latest"),
        MemoryBackend::new("h3").with_tag("busybox:latest"),
    ])
    .await;
    let alice = w.person("alice", Role::Student).await;
    w.store.set_host_drained("h3", true, 0).await.unwrap();
    let creates = (0..6).map(|i| {
        let (w, alice) = (&w, &alice);
        async move { w.create(alice, &format!("c{i}"), "busybox").await }
    });
    for r in futures::future::join_all(creates).await {
        r.expect("created");
    }
    assert_eq!(w.backends[0].count(Op::Create), 3);
    assert_eq!(w.backends[1].count(Op::Create), 3);
    assert_eq!(w.backends[2].count(Op::Create), 0);
}

#[tokio::test]
async fn required_labels_pick_the_host() {
    let w = World::new(vec![
        MemoryBackend::new("cpu").with_tag("busybox:latest"),
        MemoryBackend::new("gpu")
            .with_tag("busybox:latest")
            .with_labels(["gpu"]),
    ])
    .await;
    w.hosts.check_all().await;
    let alice = w.person("alice", Role::Student).await;
    let req: CreateContainer =
        serde_json::from_value(json!({"name": "train", "image": "busybox", "requires": "gpu"}))
            .unwrap();
    let c = w.containers.create(&alice, req).await.expect("created");
    assert_eq!(c.host, "gpu");
    let req: CreateContainer =
        serde_json::from_value(json!({"name": "x", "image": "busybox", "requires": "tpu"}))
            .unwrap();
    assert!(matches!(
        w.containers.create(&alice, req).await,
        Err(Error::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_public_image_is_pulled_onto_the_chosen_host_first() {
    let reference = format!("{REGISTRY}/tools/x:1");
    let w = World::new(vec![
        MemoryBackend::new("h1").with_tag(&reference),
        MemoryBackend::new("h2"),
    ])
    .await;
    let alice = w.person("alice", Role::Student).await;
    // h1 has the image: it is chosen although both are empty.
    assert_eq!(w.create(&alice, "a", &reference).await.unwrap().host, "h1");
    w.store.set_host_drained("h1", true, 0).await.unwrap();
    let c = w.create(&alice, "b", &reference).await.expect("created");
    assert_eq!(c.host, "h2");
    assert_eq!(w.backends[1].count(Op::Pull), 1, "pulled onto h2 first");
    assert_eq!(w.backends[0].count(Op::Pull), 0);
}

#[tokio::test]
async fn a_failed_create_leaves_no_record_and_no_network() {
    let w = World::new(vec![MemoryBackend::new("h1").with_tag("busybox:latest")]).await;
    let alice = w.person("alice", Role::Student).await;
    w.backends[0].fail_next(
        Op::Create,
        wm_backend::BackendError::Refused("OCI runtime create failed: exec format error".into()),
    );
    let e = w.create(&alice, "web", "busybox").await.unwrap_err();
    assert_eq!(e.code(), "container_start_failed");
    assert!(!e.to_string().contains("OCI"), "{e}");
    assert!(w.containers.list(&alice, false).await.unwrap().is_empty());
    assert!(w.backends[0].networks().is_empty());
    // The name is free again.
    assert!(w.create(&alice, "web", "busybox").await.is_ok());
}

#[tokio::test]
async fn a_host_that_does_not_answer_shows_unknown_and_is_not_called() {
    let w = World::new(vec![MemoryBackend::new("h1").with_tag("busybox:latest")]).await;
    let alice = w.person("alice", Role::Student).await;
    w.create(&alice, "web", "busybox").await.expect("created");
    w.backends[0].set_unavailable(Some("connection refused".into()));
    w.hosts.check_all().await;
    w.backends[0].clear_calls();
    let list = w.containers.list(&alice, false).await.unwrap();
    assert_eq!(list[0].status, ContainerStatus::Unknown);
    let c = w.containers.load(&alice, "alice-web", None).await.unwrap();
    assert!(matches!(
        w.containers.stop(c).await,
        Err(Error::Unavailable(_))
    ));
    assert!(
        w.backends[0].calls().is_empty(),
        "a host known to be down is not asked: {:?}",
        w.backends[0].calls()
    );
    assert!(matches!(
        w.create(&alice, "db", "busybox").await,
        Err(Error::Unavailable(_))
    ));
    // Back: the record was kept, and the container is running as before.
    w.backends[0].set_unavailable(None);
    w.hosts.check_all().await;
    let list = w.containers.list(&alice, false).await.unwrap();
    assert_eq!(list[0].status, ContainerStatus::Running);
}

#[tokio::test]
async fn delete_removes_the_owners_network_with_the_last_container() {
    let w = World::new(vec![MemoryBackend::new("h1").with_tag("busybox:latest")]).await;
    let alice = w.person("alice", Role::Student).await;
    w.create(&alice, "a", "busybox").await.unwrap();
    w.create(&alice, "b", "busybox").await.unwrap();
    let owner = alice.name.clone();
    assert_eq!(w.backends[0].networks(), vec![owner.clone()]);
    let a = w.containers.load(&alice, "alice-a", None).await.unwrap();
    w.containers.delete(a).await.unwrap();
    assert_eq!(w.backends[0].networks(), vec![owner]);
    let b = w.containers.load(&alice, "alice-b", None).await.unwrap();
    w.containers.delete(b).await.unwrap();
    assert!(w.backends[0].networks().is_empty());
    assert!(w.containers.list(&alice, false).await.unwrap().is_empty());
}

#[tokio::test]
async fn exec_on_a_stopped_container_is_a_state_conflict_in_our_words() {
    let w = World::new(vec![MemoryBackend::new("h1").with_tag("busybox:latest")]).await;
    let alice = w.person("alice", Role::Student).await;
    w.create(&alice, "web", "busybox").await.unwrap();
    let c = w.containers.load(&alice, "alice-web", None).await.unwrap();
    let ran = w.containers.exec(&c, json!(["echo", "hi"])).await.unwrap();
    assert_eq!((ran.exit_code, ran.stdout.as_str()), (Some(0), "echo hi\n"));
    let stopped = w.containers.stop(c).await.unwrap();
    assert_eq!(stopped.status, ContainerStatus::Exited);
    let c = w.containers.load(&alice, "alice-web", None).await.unwrap();
    let e = w.containers.exec(&c, json!("echo hi")).await.unwrap_err();
    assert_eq!(e.code(), "container_state");
    // A bad command is refused before the host is asked.
    let before = w.backends[0].count(Op::Exec);
    assert!(matches!(
        w.containers.exec(&c, json!([])).await,
        Err(Error::Invalid {
            field: Some("cmd"),
            ..
        })
    ));
    assert_eq!(w.backends[0].count(Op::Exec), before);
}

#[tokio::test]
async fn reconcile_marks_the_vanished_gone_and_adopts_the_unrecorded() {
    let w = World::new(vec![MemoryBackend::new("h1").with_tag("busybox:latest")]).await;
    let alice = w.person("alice", Role::Student).await;
    w.create(&alice, "web", "busybox").await.unwrap();
    let key = |short: &str| ContainerKey {
        owner: alice.name.clone(),
        short: ShortName::parse(short).unwrap(),
    };
    // Removed behind the console's back.
    w.backends[0].remove(&key("web")).await.unwrap();
    // Made on the host with our labels but never recorded (a crash between the two).
    let spec = wm_backend::ContainerSpec {
        name: key("lost").full_name(),
        owner: alice.name.clone(),
        short_name: ShortName::parse("lost").unwrap(),
        image: wm_domain::ImageRef::parse("busybox").unwrap(),
        env: Vec::new(),
        ports: Vec::new(),
        limits: Config::default().default_limits(),
        gpus: Vec::new(),
    };
    w.backends[0].create(&spec).await.unwrap();
    let report = w.reconciler.reconcile().await.unwrap();
    assert_eq!(report.gone, ["alice-web"]);
    assert_eq!(report.adopted, ["alice-lost"]);
    let list = w.containers.list(&alice, false).await.unwrap();
    let status = |n: &str| list.iter().find(|c| c.name == n).map(|c| c.status);
    assert_eq!(status("alice-web"), Some(ContainerStatus::Gone));
    assert_eq!(status("alice-lost"), Some(ContainerStatus::Running));
    assert!(list.iter().all(|c| c.backend == Backend::Docker));
    // Again: nothing more to do, nothing duplicated.
    let again = w.reconciler.reconcile().await.unwrap();
    assert!(again.gone.is_empty() && again.adopted.is_empty());
    assert_eq!(w.containers.list(&alice, false).await.unwrap().len(), 2);
}

#[tokio::test]
async fn uploads_reach_the_container_as_one_archive_of_regular_files() {
    let w = World::new(vec![MemoryBackend::new("h1").with_tag("busybox:latest")]).await;
    let alice = w.person("alice", Role::Student).await;
    w.create(&alice, "web", "busybox").await.unwrap();
    let c = w.containers.load(&alice, "alice-web", None).await.unwrap();
    let temp = w.containers.temp_files();
    let mut files = Vec::new();
    for (name, body) in [("a.txt", "hello"), ("sub/b.txt", "world")] {
        let chunks = futures::stream::iter([Ok(bytes::Bytes::from(body))]);
        files.push((
            name.to_string(),
            temp.spool(chunks, |_| Ok(())).await.unwrap(),
        ));
    }
    let written = w
        .containers
        .upload(&c, "/srv//www/", files, false)
        .await
        .unwrap();
    assert_eq!(written.written, ["/srv/www/a.txt", "/srv/www/sub/b.txt"]);
    let uploads = w.backends[0].uploads_to(&c.key());
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].0, "/srv/www");
    let mut archive = tar::Archive::new(std::io::Cursor::new(uploads[0].1.to_vec()));
    let entries: Vec<(String, bool)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type().is_file(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [("a.txt".to_string(), true), ("sub/b.txt".to_string(), true)]
    );
    // A name that climbs out is refused before the host is asked.
    let chunks = futures::stream::iter([Ok(bytes::Bytes::from("x"))]);
    let bad = vec![(
        "../x".to_string(),
        temp.spool(chunks, |_| Ok(())).await.unwrap(),
    )];
    assert!(matches!(
        w.containers.upload(&c, "/tmp", bad, false).await,
        Err(Error::Invalid {
            code: "invalid_file_name",
            ..
        })
    ));
    assert_eq!(w.backends[0].uploads_to(&c.key()).len(), 1);
}

fn gpu(id: &str, share: u32) -> wm_backend::Gpu {
    wm_backend::Gpu {
        id: id.into(),
        name: "test GPU".into(),
        memory_bytes: None,
        kind: wm_backend::GpuKind::Nvidia,
        share,
    }
}

async fn create_with_gpus(
    w: &World,
    caller: &Caller,
    name: &str,
    gpus: u32,
) -> Result<super::containers::Container, Error> {
    let req: CreateContainer =
        serde_json::from_value(json!({"name": name, "image": "busybox", "gpus": gpus})).unwrap();
    w.containers.create(caller, req).await
}

#[tokio::test]
async fn a_burst_for_gpus_gets_each_exclusive_gpu_once() {
    let w = World::new(vec![
        MemoryBackend::new("h1")
            .with_tag("busybox:latest")
            .with_gpus(vec![gpu("h1-a", 1)]),
        MemoryBackend::new("h2")
            .with_tag("busybox:latest")
            .with_gpus(vec![gpu("h2-a", 1), gpu("h2-b", 2)]),
    ])
    .await;
    w.hosts.check_all().await;
    let mut people = Vec::new();
    for i in 0..6 {
        people.push(w.person(&format!("p{i}"), Role::Student).await);
    }
    // 4 places in all: h1-a, h2-a, and h2-b twice.
    let creates = people.iter().map(|p| create_with_gpus(&w, p, "train", 1));
    let answers = futures::future::join_all(creates).await;
    let made: Vec<_> = answers.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(made.len(), 4, "{answers:?}");
    for r in &answers {
        if let Err(e) = r {
            assert!(
                matches!(e, Error::Unavailable(m) if m.message().contains("1 free GPU")),
                "{e}"
            );
        }
    }
    let mut given: Vec<String> = made.iter().flat_map(|c| c.gpus.clone()).collect();
    given.sort();
    assert_eq!(given, ["h1-a", "h2-a", "h2-b", "h2-b"]);
    // The hosts were given what the console chose.
    for b in &w.backends {
        for c in b.list().await.unwrap() {
            let record = made.iter().find(|m| m.owner == c.owner).unwrap();
            assert_eq!(c.gpus, record.gpus);
        }
    }
    // Two GPUs in one container are two different ones.
    let more = w.person("q", Role::Student).await;
    let holder = made.iter().find(|c| c.gpus == ["h1-a"]).unwrap();
    let owner = people
        .iter()
        .find(|p| p.name.as_str() == holder.owner)
        .unwrap();
    let c = w.containers.load(owner, &holder.name, None).await.unwrap();
    w.containers.delete(c).await.unwrap();
    assert!(
        create_with_gpus(&w, &more, "two", 2).await.is_err(),
        "no host has two free"
    );
    let one = create_with_gpus(&w, &more, "one", 1).await.unwrap();
    assert_eq!(one.gpus, ["h1-a"], "freed with its container");
}

#[tokio::test]
async fn placement_never_commits_a_hosts_memory_beyond_it() {
    let w = World::new(vec![MemoryBackend::new("h1")
        .with_tag("busybox:latest")
        .with_memory_total(3 << 30)])
    .await;
    w.hosts.check_all().await;
    let alice = w.person("alice", Role::Student).await;
    // The default is 1 GiB a container: three fit, the fourth does not, in any order.
    let creates = (0..5).map(|i| {
        let (w, alice) = (&w, &alice);
        async move { w.create(alice, &format!("m{i}"), "busybox").await }
    });
    let answers = futures::future::join_all(creates).await;
    assert_eq!(
        answers.iter().filter(|r| r.is_ok()).count(),
        3,
        "{answers:?}"
    );
    assert!(answers
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, Error::Unavailable(m) if m.message().contains("memory"))));
    assert_eq!(w.backends[0].count(Op::Create), 3);
}

// ---- Reclaim: expiry and idleness; clean-up of images ----

fn in_secs(from_now: i64) -> String {
    crate::util::rfc3339(crate::util::now() + from_now)
}

async fn create_expiring(
    w: &World,
    caller: &Caller,
    name: &str,
    expires_at: &str,
) -> Result<super::containers::Container, Error> {
    let req: CreateContainer = serde_json::from_value(json!({
        "name": name, "image": "busybox", "expires_at": expires_at
    }))
    .expect("a valid request");
    w.containers.create(caller, req).await
}

async fn audit_actions(w: &World) -> Vec<(String, Option<String>)> {
    w.store
        .audit_log(100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.target))
        .collect()
}

#[tokio::test]
async fn an_expired_container_is_stopped_then_deleted_after_the_grace() {
    let w = World::configured(
        vec![MemoryBackend::new("h1").with_tag("busybox:latest")],
        |c| c.reclaim.expiry_grace = crate::config::Span::secs(3600),
    )
    .await;
    let alice = w.person("alice", Role::Student).await;
    let c = create_expiring(&w, &alice, "web", &in_secs(600))
        .await
        .expect("created");
    let expires = c.expires_at.clone().expect("an expiry");
    assert!(c.deletes_at.is_some() && !c.expired);
    let now_ms = crate::util::now_millis();

    assert!(w.reclaimer.pass(now_ms).await.unwrap().is_empty());
    let at_expiry = now_ms + 601_000;
    let r = w.reclaimer.pass(at_expiry).await.unwrap();
    assert_eq!(r.stopped_expired, ["alice-web"]);
    let key = ContainerKey::new(
        &UserName::parse("alice").unwrap(),
        &ShortName::parse("web").unwrap(),
    )
    .unwrap();
    let rec = w.store.container(&key).await.unwrap().unwrap();
    assert_eq!(rec.stop_reason, Some(wm_domain::StopReason::Expired));
    assert!(!rec.status.is_live());
    // Stopped once: the next pass leaves it alone until the grace ends.
    assert!(w.reclaimer.pass(at_expiry + 1000).await.unwrap().is_empty());

    let r = w.reclaimer.pass(at_expiry + 3_600_000).await.unwrap();
    assert_eq!(r.deleted, ["alice-web"]);
    assert!(w.store.container(&key).await.unwrap().is_none());
    assert!(
        w.backends[0].inspect(&key).await.is_err(),
        "gone from its host"
    );
    let actions = audit_actions(&w).await;
    for verb in ["container.reclaim_stop", "container.reclaim_delete"] {
        assert!(
            actions
                .iter()
                .any(|(a, t)| a == verb && t.as_deref() == Some("alice-web")),
            "{verb} audited: {actions:?} (expired at {expires})"
        );
    }
}

#[tokio::test]
async fn an_expired_container_cannot_be_started_and_expiry_is_validated() {
    let w = World::new(vec![MemoryBackend::new("h1").with_tag("busybox:latest")]).await;
    let alice = w.person("alice", Role::Student).await;
    let admin = w.person("root", Role::Admin).await;
    for bad in ["yesterday", "2001-01-01T00:00:00Z"] {
        let e = create_expiring(&w, &alice, "web", bad).await.unwrap_err();
        assert_eq!(e.code(), "invalid_expiry", "{bad}");
    }
    create_expiring(&w, &alice, "web", &in_secs(3600))
        .await
        .expect("created");
    let patch = |t: serde_json::Value| {
        serde_json::from_value::<super::containers::ContainerPatch>(json!({ "expires_at": t }))
            .unwrap()
    };
    // The owner changes their own expiry; an administrator sets one the owner may bring
    // earlier but not postpone or remove.
    let c = w.containers.load(&alice, "alice-web", None).await.unwrap();
    let later = in_secs(7200);
    let shown = w
        .containers
        .set_expiry(&alice, c, patch(json!(later)))
        .await
        .unwrap();
    assert_eq!(shown.expires_at.as_deref(), Some(later.as_str()));
    let c = w.containers.load(&admin, "alice-web", None).await.unwrap();
    w.containers
        .set_expiry(&admin, c, patch(json!(in_secs(1800))))
        .await
        .unwrap();
    let c = w.containers.load(&alice, "alice-web", None).await.unwrap();
    let refused = w
        .containers
        .set_expiry(&alice, c, patch(json!(in_secs(9000))))
        .await;
    assert!(matches!(refused, Err(Error::Forbidden(_))));
    let c = w.containers.load(&alice, "alice-web", None).await.unwrap();
    let refused = w.containers.set_expiry(&alice, c, patch(json!(null))).await;
    assert!(matches!(refused, Err(Error::Forbidden(_))));
    let c = w.containers.load(&alice, "alice-web", None).await.unwrap();
    w.containers
        .set_expiry(&alice, c, patch(json!(in_secs(900))))
        .await
        .expect("earlier is allowed");

    // Expired and stopped: a start is refused until the expiry is extended. (The use
    // cases read the real clock: the expiry is put in the past behind their back.)
    let key = ContainerKey::new(
        &UserName::parse("alice").unwrap(),
        &ShortName::parse("web").unwrap(),
    )
    .unwrap();
    w.store
        .set_container_expiry(&key, Some(crate::util::now() - 1), Some("root"))
        .await
        .unwrap();
    let r = w.reclaimer.pass(crate::util::now_millis()).await.unwrap();
    assert_eq!(r.stopped_expired, ["alice-web"]);
    let c = w.containers.load(&alice, "alice-web", None).await.unwrap();
    let e = w.containers.start(c).await.unwrap_err();
    assert_eq!(e.code(), "container_expired");
    let shown = w.containers.list(&alice, false).await.unwrap().remove(0);
    assert_eq!(shown.stop_reason, Some(wm_domain::StopReason::Expired));
}

#[tokio::test]
async fn an_idle_container_is_stopped_and_a_busy_one_is_not() {
    let w = World::configured(
        vec![MemoryBackend::new("h1").with_tag("busybox:latest")],
        |c| {
            c.reclaim.idle_stop_after = Some(crate::config::Span::secs(600));
            c.reclaim.idle_warning = crate::config::Span::secs(900);
        },
    )
    .await;
    let alice = w.person("alice", Role::Student).await;
    for name in ["idle", "busy", "used"] {
        w.create(&alice, name, "busybox").await.expect("created");
    }
    let key = |s: &str| {
        ContainerKey::new(
            &UserName::parse("alice").unwrap(),
            &ShortName::parse(s).unwrap(),
        )
        .unwrap()
    };
    let busy = wm_backend::Activity {
        cpu_nanos: 30_000_000_000,
        rx_bytes: 0,
        tx_bytes: 0,
        memory_bytes: None,
    };
    // A command through the console is activity: it is written down.
    let used = w.containers.load(&alice, "alice-used", None).await.unwrap();
    w.containers.exec(&used, json!("true")).await.unwrap();
    let touched = w.store.container(&key("used")).await.unwrap().unwrap();
    assert!(touched.last_activity_at.unwrap() >= crate::util::now() - 60);
    // The passes below run on a clock of their own: the exec is written as of it.
    let used_key = key("used");
    let exec_at = |t: i64| w.store.touch_container(&used_key, (t - 30_000) / 1000);
    let t0 = crate::util::now_millis();
    assert!(w.reclaimer.pass(t0).await.unwrap().is_empty(), "a baseline");
    let mut t = t0;
    for _ in 0..9 {
        t += 60_000;
        w.backends[0].add_activity(&key("busy"), busy).unwrap();
        exec_at(t).await.unwrap();
        let r = w.reclaimer.pass(t).await.unwrap();
        assert!(r.stopped_idle.is_empty(), "not yet: {r:?}");
    }
    // Idle since the baseline, with the stop announced.
    let shown = w.containers.list(&alice, false).await.unwrap();
    let idle = shown.iter().find(|c| c.name == "alice-idle").unwrap();
    assert!(idle.idle_since.is_some() && idle.idle_stop_at.is_some() && idle.warning);
    for other in ["alice-busy", "alice-used"] {
        let c = shown.iter().find(|c| c.name == other).unwrap();
        assert!(c.idle_since.is_none() && !c.warning, "{other}");
    }

    w.backends[0].add_activity(&key("busy"), busy).unwrap();
    exec_at(t + 60_000).await.unwrap();
    let r = w.reclaimer.pass(t + 60_000).await.unwrap();
    assert_eq!(r.stopped_idle, ["alice-idle"]);
    let rec = w.store.container(&key("idle")).await.unwrap().unwrap();
    assert_eq!(rec.stop_reason, Some(wm_domain::StopReason::Idle));
    assert!(audit_actions(&w)
        .await
        .iter()
        .any(|(a, t)| a == "container.reclaim_stop" && t.as_deref() == Some("alice-idle")));

    // Started again, the reason goes and it is watched afresh.
    let c = w.containers.load(&alice, "alice-idle", None).await.unwrap();
    let started = w.containers.start(c).await.unwrap();
    assert_eq!(started.stop_reason, None);
    assert_eq!(started.idle_since, None);
}

#[tokio::test]
async fn a_pass_acts_on_at_most_max_actions_containers() {
    let w = World::configured(
        vec![MemoryBackend::new("h1").with_tag("busybox:latest")],
        |c| c.reclaim.max_actions = 1,
    )
    .await;
    let alice = w.person("alice", Role::Student).await;
    for name in ["a", "b"] {
        create_expiring(&w, &alice, name, &in_secs(60))
            .await
            .expect("created");
    }
    let t = crate::util::now_millis() + 61_000;
    let r = w.reclaimer.pass(t).await.unwrap();
    assert_eq!((r.stopped_expired.len(), r.deferred), (1, 1));
    let r = w.reclaimer.pass(t + 1000).await.unwrap();
    assert_eq!((r.stopped_expired.len(), r.deferred), (1, 0));
}

#[tokio::test]
async fn cleanup_removes_old_unused_users_images_only() {
    let old = |tag: &str, owner: Option<&str>| image(tag, owner);
    let w = World::configured(
        vec![MemoryBackend::new("h1")
            .with_tag("busybox:latest")
            .with_image(old("wm/alice/unused:1", Some("alice")))
            .with_image(old("wm/alice/used:1", Some("alice")))
            .with_image(old("wm/alice/shared:1", Some("alice")))
            .with_image(old("ubuntu:22.04", None))
            .with_image(ImageInfo {
                created_at: crate::util::now(),
                ..old("wm/alice/new:1", Some("alice"))
            })],
        |c| c.reclaim.image_max_age = Some(crate::config::Span::secs(86400)),
    )
    .await;
    let alice = w.person("alice", Role::Student).await;
    let admin = w.person("root", Role::Admin).await;
    w.create(&alice, "app", "wm/alice/used:1")
        .await
        .expect("created");
    w.store
        .set_image_meta(&wm_store::ImageMeta {
            reference: "wm/alice/shared:1".into(),
            owner: UserName::parse("alice").unwrap(),
            description: String::new(),
            shared: true,
            updated_at: 0,
        })
        .await
        .unwrap();
    let admin = super::accounts::Admin::check(&admin).unwrap();
    let dry = w.cleanup.report(&admin).await.unwrap();
    let listed: Vec<&str> = dry
        .images
        .iter()
        .flat_map(|i| i.references.iter().map(String::as_str))
        .collect();
    assert_eq!(listed, ["wm/alice/unused:1"]);
    assert!(dry.dry_run && !dry.images[0].removed);
    assert!(w.backends[0]
        .image("wm/alice/unused:1")
        .await
        .unwrap()
        .is_some());

    let run = w.cleanup.run_now(&admin).await.unwrap();
    assert!(run.images[0].removed && run.errors.is_empty(), "{run:?}");
    let left: Vec<String> = w.backends[0]
        .images()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|i| i.tags)
        .collect();
    assert!(!left.iter().any(|t| t == "wm/alice/unused:1"));
    for kept in [
        "wm/alice/used:1",
        "wm/alice/shared:1",
        "ubuntu:22.04",
        "wm/alice/new:1",
    ] {
        assert!(left.iter().any(|t| t == kept), "{kept} kept: {left:?}");
    }
}
