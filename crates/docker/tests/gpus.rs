//! GPUs against the real Docker engine, on a machine without a GPU: device-node GPUs are
//! stand-in character devices (`mknod` of null and zero) in a temporary directory, and an
//! NVIDIA GPU's device request is checked on a container that is created, not started
//! (the engine has no nvidia runtime).
//!
//! Everything carries `whalemountain.test=1` and the test's own `wm.instance`; the
//! [`Host`] guard removes it when dropped, also when the test fails.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use wm_backend::{
    BackendError, ContainerBackend, ContainerSpec, ContainerState, ExecRequest, GpuKind, Limits,
};
use wm_docker::{DockerEngine, DockerSettings, GpuDecl, GpuDiscovery};
use wm_domain::{ContainerKey, ContainerName, ContainerStatus, ImageRef, ShortName, UserName};

/// A GPU to declare: its id, its stand-in nodes (major, minor) and its share.
type TestGpu<'a> = (&'a str, &'a [(u32, u32)], u32);

/// A docker host of the test's own (instance label), with GPUs declared over stand-in
/// device nodes; removes what it made when dropped.
struct Host {
    settings: DockerSettings,
    engine: Arc<DockerEngine>,
    dir: tempfile::TempDir,
    owner: UserName,
}

impl Host {
    /// `gpus`: (id, nodes as (major, minor), share) for device GPUs, or (id, [], share)
    /// for an NVIDIA GPU given by its UUID.
    fn new(gpus: &[TestGpu]) -> Host {
        wm_testkit::ensure_test_image();
        let dir = tempfile::tempdir().unwrap();
        let mut settings = DockerSettings {
            instance: wm_testkit::unique("gpu"),
            publish_address: "127.0.0.1".into(),
            gpu_discovery: GpuDiscovery::Off,
            gpu_device_dirs: vec!["/dev".into(), dir.path().display().to_string()],
            ..Default::default()
        };
        settings
            .labels
            .insert(wm_testkit::TEST_LABEL.into(), "1".into());
        for (id, nodes, share) in gpus {
            let devices = nodes
                .iter()
                .map(|&(major, minor)| {
                    let path = dir.path().join(wm_testkit::unique("wmgpu"));
                    mknod(&path, major, minor);
                    path.display().to_string()
                })
                .collect::<Vec<_>>();
            settings.gpus.push(GpuDecl {
                id: id.to_string(),
                name: None,
                nvidia: devices.is_empty(),
                devices,
                uuid: None,
                share: *share,
            });
        }
        settings.validate().expect("the test's settings are valid");
        Host {
            engine: Arc::new(DockerEngine::new(settings.clone())),
            settings,
            dir,
            owner: UserName::parse(&wm_testkit::unique("u")).unwrap(),
        }
    }

    fn spec(&self, short: &str, gpus: &[&str]) -> ContainerSpec {
        let short_name = ShortName::parse(short).unwrap();
        ContainerSpec {
            name: ContainerName::new(&self.owner, &short_name).unwrap(),
            owner: self.owner.clone(),
            short_name,
            image: ImageRef::parse(wm_testkit::TEST_IMAGE).unwrap(),
            env: Vec::new(),
            ports: Vec::new(),
            limits: Limits {
                memory_bytes: 64 << 20,
                nano_cpus: 500_000_000,
                pids: 64,
            },
            gpus: gpus.iter().map(ToString::to_string).collect(),
        }
    }

    fn key(&self, short: &str) -> ContainerKey {
        ContainerKey::new(&self.owner, &ShortName::parse(short).unwrap()).unwrap()
    }

    /// The device paths of a declared GPU.
    fn nodes(&self, id: &str) -> Vec<String> {
        self.settings
            .gpus
            .iter()
            .find(|g| g.id == id)
            .unwrap()
            .devices
            .clone()
    }

    async fn sh(&self, short: &str, script: &str) -> (Option<i64>, String) {
        let out = self
            .engine
            .exec(
                &self.key(short),
                &ExecRequest {
                    cmd: vec!["sh".into(), "-c".into(), script.into()],
                    timeout_secs: 20,
                    max_output_bytes: 1 << 16,
                },
            )
            .await
            .unwrap();
        (out.exit_code, format!("{}{}", out.stdout, out.stderr))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        wm_testkit::remove_labelled("wm.instance", &self.settings.instance);
        let _ = &self.dir;
    }
}

fn mknod(path: &PathBuf, major: u32, minor: u32) {
    let out = std::process::Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .output()
        .expect("mknod runs");
    assert!(
        out.status.success(),
        "mknod {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn basename(path: &str) -> String {
    path.rsplit('/').next().unwrap().to_string()
}

fn ours(states: &[ContainerState], short: &str) -> Option<ContainerState> {
    states.iter().find(|c| c.short_name == short).cloned()
}

#[tokio::test]
async fn each_container_gets_its_own_device_node_and_can_write_to_it() {
    // null (1:3) and zero (1:5) stand in for two GPUs' render nodes.
    let host = Host::new(&[("card0", &[(1, 3)], 1), ("card1", &[(1, 5)], 1)]);
    let info = host.engine.info().await.unwrap();
    let ids: Vec<&str> = info.gpus.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["card0", "card1"]);
    assert_eq!(
        info.gpus[0].kind,
        GpuKind::Devices {
            paths: host.nodes("card0")
        }
    );
    let (node0, node1) = (
        basename(&host.nodes("card0")[0]),
        basename(&host.nodes("card1")[0]),
    );

    let a = host
        .engine
        .create(&host.spec("a", &["card0"]))
        .await
        .unwrap();
    let b = host
        .engine
        .create(&host.spec("b", &["card1"]))
        .await
        .unwrap();
    assert_eq!(a.state, ContainerStatus::Running);
    assert_eq!(a.gpus, ["card0"]);
    assert_eq!(b.gpus, ["card1"]);

    let (code, ls) = host.sh("a", "ls /dev").await;
    assert_eq!(code, Some(0), "{ls}");
    assert!(
        ls.split_whitespace().any(|n| n == node0),
        "a sees its node: {ls}"
    );
    assert!(!ls.contains(&node1), "a does not see b's node: {ls}");
    let (code, ls) = host.sh("b", "ls /dev").await;
    assert_eq!(code, Some(0), "{ls}");
    assert!(
        ls.split_whitespace().any(|n| n == node1),
        "b sees its node: {ls}"
    );
    assert!(!ls.contains(&node0), "b does not see a's node: {ls}");

    // Read and written (cgroup `rw`): a write to null, a read of zero.
    let (code, out) = host
        .sh("a", &format!("echo hello > /dev/{node0} && echo written"))
        .await;
    assert_eq!((code, out.trim()), (Some(0), "written"), "{out}");
    let (code, out) = host
        .sh(
            "b",
            &format!("dd if=/dev/{node1} bs=16 count=1 2>/dev/null | wc -c && echo x > /dev/{node1} && echo written"),
        )
        .await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["16", "written"]
    );
    // The other's node cannot be made: no MKNOD in the container.
    let (code, out) = host.sh("a", &format!("mknod /tmp/{node1} c 1 5")).await;
    assert_ne!(code, Some(0), "mknod worked in the container: {out}");

    // The engine's own record: the node mapped rw (never `m`), no device request.
    let engine_name = wm_docker::container_name(&host.settings.instance, &host.key("a"));
    let inspected = wm_testkit::inspect("container", &engine_name).unwrap();
    let hc = &inspected["HostConfig"];
    assert_eq!(hc["Devices"].as_array().unwrap().len(), 1, "{hc}");
    assert_eq!(
        hc["Devices"][0]["PathOnHost"],
        host.nodes("card0")[0].as_str()
    );
    assert_eq!(
        hc["Devices"][0]["PathInContainer"],
        format!("/dev/{node0}").as_str()
    );
    assert_eq!(hc["Devices"][0]["CgroupPermissions"], "rw");
    assert!(
        hc["DeviceRequests"].as_array().is_none_or(|r| r.is_empty()),
        "{hc}"
    );
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["CapDrop"][0], "ALL");
    assert_eq!(inspected["Config"]["Labels"]["wm.gpus"], "card0");

    // Read back from the labels.
    let listed = host.engine.list().await.unwrap();
    assert_eq!(ours(&listed, "a").unwrap().gpus, ["card0"]);
    assert_eq!(ours(&listed, "b").unwrap().gpus, ["card1"]);
    assert_eq!(
        host.engine.inspect(&host.key("b")).await.unwrap().gpus,
        ["card1"]
    );

    // Removing a frees its GPU.
    let again = host.engine.create(&host.spec("c", &["card0"])).await;
    assert!(
        matches!(again, Err(BackendError::Exhausted(_))),
        "{again:?}"
    );
    host.engine.remove(&host.key("a")).await.unwrap();
    let c = host
        .engine
        .create(&host.spec("c", &["card0"]))
        .await
        .unwrap();
    assert_eq!(c.gpus, ["card0"]);
}

#[tokio::test]
async fn a_gpu_is_never_given_past_its_share_also_after_a_restart() {
    let host = Host::new(&[("solo", &[(1, 3)], 1), ("pair", &[(1, 5)], 2)]);
    // A burst of creates for one exclusive GPU: exactly one gets it.
    let tries: Vec<_> = (0..6)
        .map(|i| {
            let engine = host.engine.clone();
            let spec = host.spec(&format!("burst{i}"), &["solo"]);
            tokio::spawn(async move { engine.create(&spec).await })
        })
        .collect();
    let mut won = Vec::new();
    for (i, t) in tries.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(st) => won.push(st.short_name),
            Err(BackendError::Exhausted(m)) => {
                assert!(
                    m.starts_with("GPU solo is in use by 1 container "),
                    "{i}: {m}"
                )
            }
            Err(e) => panic!("{i}: {e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let listed = host.engine.list().await.unwrap();
    assert_eq!(
        listed.len(),
        1,
        "the refused creates left nothing: {listed:?}"
    );

    // A shared GPU: two at once, not three.
    host.engine
        .create(&host.spec("p1", &["pair"]))
        .await
        .unwrap();
    host.engine
        .create(&host.spec("p2", &["pair"]))
        .await
        .unwrap();
    let third = host.engine.create(&host.spec("p3", &["pair"])).await;
    match third {
        Err(BackendError::Exhausted(m)) => assert!(
            m.starts_with("GPU pair is in use by 2 containers (it may be shared by 2)"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // A GPU the host does not have, or one asked twice: refused by policy, nothing made.
    for gpus in [&["nope"][..], &["pair", "pair"][..]] {
        let r = host.engine.create(&host.spec("bad", gpus)).await;
        assert!(matches!(r, Err(BackendError::Policy(_))), "{gpus:?}: {r:?}");
    }
    assert!(ours(&host.engine.list().await.unwrap(), "bad").is_none());

    // A restarted agent: a new engine knows the holders from the labels alone.
    let restarted = DockerEngine::new(host.settings.clone());
    for (short, gpu) in [("r1", "solo"), ("r2", "pair")] {
        let r = restarted.create(&host.spec(short, &[gpu])).await;
        assert!(matches!(r, Err(BackendError::Exhausted(_))), "{gpu}: {r:?}");
    }
    restarted.remove(&host.key(&won[0].clone())).await.unwrap();
    restarted.remove(&host.key("p1")).await.unwrap();
    let r1 = restarted.create(&host.spec("r1", &["solo"])).await.unwrap();
    let r2 = restarted.create(&host.spec("r2", &["pair"])).await.unwrap();
    assert_eq!(
        (r1.gpus, r2.gpus),
        (vec!["solo".to_string()], vec!["pair".to_string()])
    );
    let holders: HashSet<String> = restarted
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| !c.gpus.is_empty())
        .map(|c| c.short_name)
        .collect();
    assert_eq!(
        holders,
        HashSet::from(["p2".into(), "r1".into(), "r2".into()])
    );
}

#[tokio::test]
async fn nvidia_gpus_are_asked_for_by_uuid_never_by_count() {
    let (u1, u2) = (
        format!("GPU-{}", uuid::Uuid::new_v4()),
        format!("GPU-{}", uuid::Uuid::new_v4()),
    );
    let host = Host::new(&[(&u1, &[], 1), (&u2, &[], 1)]);
    let info = host.engine.info().await.unwrap();
    assert!(info.gpus.iter().all(|g| g.kind == GpuKind::Nvidia));
    let spec = host.spec("cuda", &[&u1, &u2]);

    // This engine has no nvidia runtime: the start fails, and nothing is left behind,
    // the GPUs included (a second try fails the same way, not for want of GPUs).
    for _ in 0..2 {
        match host.engine.create(&spec).await {
            Err(
                BackendError::Engine(m) | BackendError::Refused(wm_backend::Why { text: m, .. }),
            ) => {
                assert!(m.contains("nvidia") || m.contains("device driver"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(host.engine.list().await.unwrap().is_empty());
    }

    // The request the engine gets, created (not started) through the engine's API.
    let config = host.engine.container_config(&spec, &[]).await.unwrap();
    let name = format!("{}.shape", host.settings.instance);
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    docker
        .create_container(
            Some(bollard::container::CreateContainerOptions {
                name: name.clone(),
                platform: None,
            }),
            config,
        )
        .await
        .expect("the engine takes the configuration");
    let inspected = wm_testkit::inspect("container", &name).unwrap();
    let hc = &inspected["HostConfig"];
    let requests = hc["DeviceRequests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{hc}");
    let r = &requests[0];
    assert_eq!(r["Driver"], "nvidia");
    assert_eq!(r["DeviceIDs"], serde_json::json!([u1, u2]));
    assert_eq!(r["Capabilities"], serde_json::json!([["gpu"]]));
    assert_eq!(r["Count"], 0, "never a count: {r}");
    assert!(hc["Devices"].as_array().is_none_or(|d| d.is_empty()));
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["CapDrop"][0], "ALL");
    assert_eq!(
        inspected["Config"]["Labels"]["wm.gpus"],
        format!("{u1},{u2}").as_str()
    );
    assert_eq!(inspected["Config"]["Labels"][wm_testkit::TEST_LABEL], "1");
}

#[tokio::test]
async fn an_nvidia_gpu_named_by_the_site_is_asked_for_by_its_uuid() {
    let mut host = Host::new(&[]);
    let uuid = format!("GPU-{}", uuid::Uuid::new_v4());
    host.settings.gpus.push(GpuDecl {
        id: "a100-left".into(),
        name: None,
        devices: Vec::new(),
        nvidia: true,
        uuid: Some(uuid.clone()),
        share: 1,
    });
    host.settings.validate().unwrap();
    let engine = DockerEngine::new(host.settings.clone());
    let info = engine.info().await.unwrap();
    assert_eq!(info.gpus[0].id, "a100-left", "people see the site's name");
    let config = engine
        .container_config(&host.spec("cuda", &["a100-left"]), &[])
        .await
        .unwrap();
    let requests = config.host_config.unwrap().device_requests.unwrap();
    assert_eq!(
        requests[0].device_ids,
        Some(vec![uuid]),
        "the engine gets the UUID"
    );
    assert_eq!(
        config.labels.unwrap()["wm.gpus"],
        "a100-left",
        "the container is labelled with the site's name"
    );
}
