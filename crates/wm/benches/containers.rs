//! Creating and starting N containers through our API, side by side with doing the same
//! directly through the Docker Engine API, in one run; reports both, their ratio (goal:
//! under 1.10) and the memory of our server.
//!
//! `cargo bench -p wm --bench containers` (N from `WM_BENCH_N`, default 20). It starts the
//! real `wm serve` binary on loopback with its own SQLite file, and removes every
//! container and network it made.

use bollard::container::{Config, CreateContainerOptions};
use bollard::models::{HostConfig, PortBinding};
use bollard::network::CreateNetworkOptions;
use bollard::Docker;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-admin-password";

struct Server {
    child: Child,
    base: String,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn total(v: &[Duration]) -> Duration {
    v.iter().sum()
}

async fn start_server(instance: &str) -> Server {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("wm.toml");
    std::fs::write(
        &config,
        format!(
            "[docker]\nlabels = {{ \"{}\" = \"1\" }}\n",
            wm_testkit::TEST_LABEL
        ),
    )
    .unwrap();
    let port = wm_testkit::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_wm"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("WM_LISTEN", format!("127.0.0.1:{port}"))
        .env("WM_DATA_DIR", data.path())
        .env("WM_ADMIN_PASSWORD", PASSWORD)
        .env("WM_INSTANCE", instance)
        .env("WM_PUBLISH_ADDRESS", "127.0.0.1")
        .env("WM_PORT_RANGE", "47000-47999")
        .env("WM_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("wm starts");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _data: data,
    };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("wm serve did not answer within 10 s");
}

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {v}");
    v
}

/// The same container, made directly: the owner's network once, then create and start
/// with the hardening and a published port.
async fn direct_create(docker: &Docker, name: &str, network: &str, instance: &str) {
    // The console's own defaults, so both sides ask the engine for the same container.
    let defaults = wm_console::Config::default();
    let limits = defaults.default_limits();
    let host_config = HostConfig {
        privileged: Some(false),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(defaults.docker.cap_add),
        security_opt: Some(vec!["no-new-privileges:true".into()]),
        memory: Some(limits.memory_bytes),
        memory_swap: Some(limits.memory_bytes),
        nano_cpus: Some(limits.nano_cpus),
        pids_limit: Some(limits.pids),
        network_mode: Some(network.into()),
        port_bindings: Some(HashMap::from([(
            "80/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(wm_testkit::free_port().to_string()),
            }]),
        )])),
        ..Default::default()
    };
    let config = Config {
        image: Some(wm_testkit::TEST_IMAGE.to_string()),
        labels: Some(HashMap::from([
            ("wm.instance".to_string(), instance.to_string()),
            (wm_testkit::TEST_LABEL.to_string(), "1".to_string()),
        ])),
        exposed_ports: Some(HashMap::from([("80/tcp".to_string(), HashMap::new())])),
        host_config: Some(host_config),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptions {
                name,
                platform: None,
            }),
            config,
        )
        .await
        .unwrap();
    docker.start_container::<String>(name, None).await.unwrap();
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("WM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    tokio::task::spawn_blocking(wm_testkit::ensure_test_image)
        .await
        .unwrap();
    let instance = wm_testkit::unique("bench");
    let server = start_server(&instance).await;
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let login = post(
        &client,
        format!("{}/api/v1/login", server.base),
        None,
        json!({"username": "admin", "password": PASSWORD}),
    )
    .await;
    let admin = login["token"].as_str().unwrap().to_string();
    let student = wm_testkit::unique("b");
    post(
        &client,
        format!("{}/api/v1/admin/users", server.base),
        Some(&admin),
        json!({"name": student, "password": "bench-password", "role": "student"}),
    )
    .await;
    let token = post(
        &client,
        format!("{}/api/v1/login", server.base),
        None,
        json!({"username": student, "password": "bench-password"}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let rss_idle = memory_kib(pid, "VmRSS:");

    let docker = Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let direct_net = format!("{instance}-direct");
    docker
        .create_network(CreateNetworkOptions {
            name: direct_net.clone(),
            labels: HashMap::from([
                ("wm.instance".to_string(), instance.clone()),
                (wm_testkit::TEST_LABEL.to_string(), "1".to_string()),
            ]),
            ..Default::default()
        })
        .await
        .unwrap();

    // One of each first, so neither side pays for a cold start.
    let api_create = |name: String| {
        let (client, url, token) = (
            client.clone(),
            format!("{}/api/v1/containers", server.base),
            token.clone(),
        );
        async move {
            post(
                &client,
                url,
                Some(&token),
                json!({"name": name, "image": wm_testkit::TEST_IMAGE, "ports": [80]}),
            )
            .await;
        }
    };
    api_create("warm".into()).await;
    direct_create(&docker, &format!("{instance}-warm"), &direct_net, &instance).await;

    let (mut ours, mut direct) = (Vec::new(), Vec::new());
    for i in 0..n {
        // Alternate which goes first, so drift on the engine hits both alike.
        let run_ours = || async {
            let t = Instant::now();
            api_create(format!("c{i}")).await;
            t.elapsed()
        };
        let run_direct = || async {
            let t = Instant::now();
            direct_create(&docker, &format!("{instance}-d{i}"), &direct_net, &instance).await;
            t.elapsed()
        };
        if i % 2 == 0 {
            ours.push(run_ours().await);
            direct.push(run_direct().await);
        } else {
            direct.push(run_direct().await);
            ours.push(run_ours().await);
        }
    }
    let rss = memory_kib(pid, "VmRSS:");
    let hwm = memory_kib(pid, "VmHWM:");

    let ratio = total(&ours).as_secs_f64() / total(&direct).as_secs_f64();
    println!("\ncreate + start of {n} containers (busybox httpd, one published port each)");
    println!("{:<28}{:>12}{:>14}", "", "total", "median");
    println!(
        "{:<28}{:>10.0}ms{:>12.1}ms",
        "whalemountain API",
        total(&ours).as_secs_f64() * 1e3,
        median(ours.clone()).as_secs_f64() * 1e3
    );
    println!(
        "{:<28}{:>10.0}ms{:>12.1}ms",
        "Docker Engine API directly",
        total(&direct).as_secs_f64() * 1e3,
        median(direct.clone()).as_secs_f64() * 1e3
    );
    println!("ratio (ours / direct): {ratio:.3}  (goal: under 1.10)");
    println!(
        "wm serve memory: RSS {:.1} MiB idle, {:.1} MiB after, peak {:.1} MiB",
        rss_idle as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );

    drop(server);
    wm_testkit::remove_labelled("wm.instance", &instance);
}
