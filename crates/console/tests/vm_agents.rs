//! Virtual machines on a host other than the console's: `wm console` in front of two docker
//! agents, one of which lends VMs from the real libvirt system daemon (QEMU software
//! emulation here). The image and its VM go to the host that lends VMs; the guest boots,
//! prints its marker, answers on its forwarded port and on its serial console through the
//! agent. Its forwarded port comes from that host's pool of container ports, also after
//! the agent restarted; the console restarted while the VM runs finds it running. Another
//! user finds none of it.
//!
//! Every domain is named `<instance>.<owner>.<name>` with the test's own instance, under
//! the test's own storage directory; [`Cleanup`] removes them, also when the test fails.

mod common;

use common::ws::{open, read_until_within, type_in};
use common::{agent_on, eventually, spawn_with_agents, test_config, test_image, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wm_console::config::Config;
use wm_docker::{DockerEngine, PortRange};

/// Removes the test's domains and disks when dropped.
struct Cleanup {
    instance: String,
    storage: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        wm_testkit::remove_vms(&self.instance, &self.storage);
    }
}

const TOKEN: &str = "vm-agent-token-0123456789abcdef";

/// The docker settings of agent `id`: the console's, with its own host name, labels and
/// port range.
fn agent_docker(config: &Config, id: &str, labels: &[&str], range: PortRange) -> DockerEngine {
    let mut docker = config.docker.clone();
    docker.host_name = id.to_string();
    docker.host_labels = labels.iter().map(|l| l.to_string()).collect();
    docker.port_range = Some(range);
    DockerEngine::new(docker)
}

/// The VM side of an agent on this machine, as `wm agent docker` makes it.
async fn vm_agent(config: &Config, engine: &DockerEngine) -> wm_agent::VmAgent {
    let libvirt = wm_console::app::local_libvirt(config, engine.port_pool())
        .await
        .expect("libvirt answers")
        .expect("VMs are on");
    use wm_backend::vm::VmBackend;
    libvirt.list().await.expect("libvirt lists");
    wm_agent::VmAgent {
        backend: Arc::new(libvirt),
        spool_dir: config.vm.storage_dir.join("incoming"),
    }
}

async fn text(app: &TestApp, path: &str, token: &str) -> (StatusCode, String) {
    let resp = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn create(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.post("/api/v1/containers", token, body).await
}

#[tokio::test]
async fn a_vm_on_an_agents_host_boots_keeps_its_port_and_survives_restarts() {
    assert!(
        wm_testkit::libvirt_answers() || std::env::var("CI").as_deref() != Ok("true"),
        "libvirt's system daemon does not answer (scripts/test starts it)"
    );
    if !wm_testkit::libvirt_answers() {
        eprintln!("skipped: libvirt's system daemon does not answer");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    let storage = Path::new("/var/lib/libvirt/images").join(&config.docker.instance);
    let _cleanup = Cleanup {
        instance: config.docker.instance.clone(),
        storage: storage.clone(),
    };
    config.vm.domain_type = Some("qemu".into());
    config.vm.storage_dir = storage.clone();
    config.vm.templates = vec![wm_console::config::VmTemplateSettings {
        name: "tiny".into(),
        vcpus: 1,
        memory: "192m".into(),
        nic: wm_backend::vm::NicModel::E1000,
        disk_bus: wm_backend::vm::DiskBus::Virtio,
        description: None,
    }];
    // blade2 lends VMs and two host ports; blade1 lends no VMs and the rest of the range.
    let range = common::port_range(&config);
    let two = PortRange {
        first: range.first,
        last: range.first + 1,
    };
    let rest = PortRange {
        first: range.first + 2,
        last: range.last,
    };
    let blade1 = Arc::new(agent_docker(&config, "blade1", &[], rest));
    let blade2 = Arc::new(agent_docker(&config, "blade2", &["vmhost"], two));
    let listener1 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listener2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url1 = format!("http://{}", listener1.local_addr().unwrap());
    let addr2 = listener2.local_addr().unwrap();
    let _agent1 = agent_on(listener1, blade1, None, TOKEN);
    let vms2 = vm_agent(&config, &blade2).await;
    let agent2 = agent_on(listener2, blade2, Some(vms2), TOKEN);
    config.agents =
        wm_agent::AgentEndpoint::parse_list(&format!("blade1={url1} blade2=http://{addr2}"))
            .unwrap();
    config.agent.token = Some(wm_console::config::Secret::new(TOKEN));
    let mut app = spawn_with_agents(config.clone(), data).await;
    let (alice, token) = app.student().await;
    let (_bob, other) = app.student().await;

    let disk = tokio::task::spawn_blocking(wm_testkit::vm_test_disk)
        .await
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("name", "busybox")
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&disk).unwrap()).file_name("disk"),
        );
    let (status, image) = app.post_form("/api/v1/vm-images", &token, form).await;
    assert_eq!(status, StatusCode::CREATED, "{image}");
    assert_eq!(image["format"], "qcow2");
    assert_eq!(
        image["host"], "blade2",
        "the one host that lends VMs: {image}"
    );
    assert!(storage.join("images").join(&alice).join("busybox").exists());

    let (status, vm) = app
        .post(
            "/api/v1/vms",
            &token,
            json!({"name": "os", "template": "tiny", "image": "busybox", "ports": [80]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vm}");
    assert_eq!(vm["host"], "blade2", "{vm}");
    let name = format!("{alice}-os");
    let vm_port = vm["ports"][0]["host"].as_u64().unwrap() as u16;
    assert!(two.contains(vm_port), "from blade2's pool: {vm}");
    let (status, xml) = text(&app, &format!("/api/v1/vms/{name}/xml"), &token).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert!(xml.contains(wm_libvirt::NS), "{xml}");
    assert!(xml.contains("hostfwd=tcp:"), "{xml}");

    // Another user finds nothing of it.
    for path in [
        format!("/api/v1/vms/{name}"),
        format!("/api/v1/vms/{name}/xml"),
        format!("/api/v1/vms/{name}/console.log"),
    ] {
        let (status, body) = app.get(&path, &other).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = app.delete(&format!("/api/v1/vms/{name}"), &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, vm) = app
        .post(&format!("/api/v1/vms/{name}/start"), &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{vm}");
    eventually(240, "the guest's marker in the transcript", || async {
        let (_, log) = text(&app, &format!("/api/v1/vms/{name}/console.log"), &token).await;
        log.contains("WM-GUEST-READY")
    })
    .await;
    let page = format!("http://127.0.0.1:{vm_port}/");
    eventually(60, "the forwarded port answers", || async {
        match reqwest::get(&page).await {
            Ok(r) => r
                .text()
                .await
                .is_ok_and(|t| t.contains("whalemountain test guest")),
            Err(_) => false,
        }
    })
    .await;
    let mut ws = open(&app, &format!("/api/v1/vms/{name}/console"), &token).await;
    type_in(&mut ws, "\necho wm-$((6*7))\n").await;
    read_until_within(&mut ws, "wm-42", 60).await;
    drop(ws);

    // The agent restarts: its new pool learns the VM's port from libvirt before it lends
    // any. blade2 has two ports: a container that asks for two cannot have them, one that
    // asks for one gets the other.
    drop(agent2);
    let blade2 = Arc::new(agent_docker(&config, "blade2", &["vmhost"], two));
    let vms2 = vm_agent(&config, &blade2).await;
    let listener2 = loop {
        match std::net::TcpListener::bind(addr2) {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    };
    let _agent2 = agent_on(listener2, blade2, Some(vms2), TOKEN);
    let image_ref = test_image().await;
    eventually(60, "blade2 answers again", || async {
        let (status, vm) = app.get(&format!("/api/v1/vms/{name}"), &token).await;
        status == StatusCode::OK && vm["status"] == "running"
    })
    .await;
    let (status, body) = create(
        &app,
        &token,
        json!({"name": "two", "image": image_ref, "ports": [80, 81], "requires": "vmhost"}),
    )
    .await;
    assert!(
        !status.is_success()
            && body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("no free host port"),
        "only one port of blade2 is free: {status} {body}"
    );
    let (status, c) = create(
        &app,
        &token,
        json!({"name": "one", "image": image_ref, "ports": [80], "requires": "vmhost"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["host"], "blade2", "{c}");
    let container_port = c["ports"][0]["host"].as_u64().unwrap() as u16;
    assert!(
        two.contains(container_port) && container_port != vm_port,
        "{c}"
    );
    let (status, _) = app
        .delete(&format!("/api/v1/containers/{alice}-one"), &token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The console restarts while the VM runs: it finds it running, on blade2.
    app.stop_server().await;
    let data = std::mem::replace(&mut app.data, tempfile::tempdir().unwrap());
    let app = spawn_with_agents(app.config.clone(), data).await;
    let (status, vm) = app.get(&format!("/api/v1/vms/{name}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{vm}");
    assert_eq!(vm["status"], "running", "{vm}");
    assert_eq!(vm["host"], "blade2", "{vm}");
    let (_, log) = text(&app, &format!("/api/v1/vms/{name}/console.log"), &token).await;
    assert!(log.contains("WM-GUEST-READY"), "{log}");

    let (status, vm) = app
        .post(&format!("/api/v1/vms/{name}/destroy"), &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{vm}");
    assert_eq!(vm["status"], "shutoff");
    let (status, _) = app.delete(&format!("/api/v1/vms/{name}"), &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let domain = format!("{}.{alice}.os", app.instance);
    assert!(!wm_testkit::virsh(&["dominfo", &domain]).status.success());
    assert!(!storage.join("vms").join(&alice).join("os").exists());
    let (status, _) = app.delete("/api/v1/vm-images/busybox", &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!storage.join("images").join(&alice).join("busybox").exists());
}
