//! A class starts: N students each create a container at the same moment, through
//! `wm console` with two `wm agent docker` hosts, side by side with the same N creates
//! sent straight to the Docker Engine API (a network per student, then create and start
//! with the same hardening and one published port). Reports, for both: how many
//! succeeded, how many distinct host ports they got, the total time and its ratio, and
//! the p50 and p95 of one create.
//!
//! `cargo bench -p wm --bench burst` (N from `WM_BENCH_N`, default 100). The real
//! binaries run on loopback against this machine's engine; the two agents have their own
//! host ids, port ranges and `wm.instance` labels. Everything made is removed at the end.
//! Both sides wait as long for an answer (`WM_BENCH_WAIT_SECS`, default 300 s plus 2 s a
//! student): a ratio of runs cut off by different timeouts would mean nothing.

use bollard::container::{Config, CreateContainerOptions};
use bollard::models::{HostConfig, Ipam, IpamConfig, PortBinding};
use bollard::network::CreateNetworkOptions;
use bollard::Docker;
use futures::future::join_all;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "agent-token-for-the-benchmark-0123456789";
const PASSWORD: &str = "bench-admin-password";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], port: u16, env: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wm"));
    cmd.args(args)
        .env("WM_LISTEN", format!("127.0.0.1:{port}"))
        .env("WM_LOG", "warn")
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().expect("wm starts"))
}

async fn wait_healthy(url: &str) {
    for _ in 0..200 {
        if reqwest::get(format!("{url}/healthz")).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not answer within 10 s");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn report(what: &str, times: &mut [Duration], ok: usize, ports: usize, wall: Duration) {
    times.sort();
    println!(
        "{what:>8}: {ok} succeeded, {ports} distinct host ports, all done in {:.0} ms, p50 {:.0} ms, p95 {:.0} ms",
        wall.as_secs_f64() * 1e3,
        percentile(times, 0.5).as_secs_f64() * 1e3,
        percentile(times, 0.95).as_secs_f64() * 1e3,
    );
}

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> (bool, Value) {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            (ok, resp.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (false, Value::String(e.to_string())),
    }
}

/// One student's container made directly: their network from the pool, then the
/// container with the console's default hardening and limits, started.
async fn direct_create(
    docker: &Docker,
    instance: &str,
    i: usize,
    subnet: String,
    host_port: u16,
) -> Result<(), bollard::errors::Error> {
    let labels = HashMap::from([
        ("wm.instance".to_string(), instance.to_string()),
        (wm_testkit::TEST_LABEL.to_string(), "1".to_string()),
    ]);
    let network = format!("{instance}-n{i}");
    docker
        .create_network(CreateNetworkOptions {
            name: network.clone(),
            driver: "bridge".into(),
            labels: labels.clone(),
            ipam: Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        })
        .await?;
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
        network_mode: Some(network),
        port_bindings: Some(HashMap::from([(
            "80/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(host_port.to_string()),
            }]),
        )])),
        ..Default::default()
    };
    let name = format!("{instance}-d{i}");
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: name.as_str(),
                platform: None,
            }),
            Config {
                image: Some(wm_testkit::TEST_IMAGE.to_string()),
                labels: Some(labels),
                exposed_ports: Some(HashMap::from([("80/tcp".to_string(), HashMap::new())])),
                host_config: Some(host_config),
                ..Default::default()
            },
        )
        .await?;
    docker.start_container::<String>(&name, None).await
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("WM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    // A /18 of networks per agent and for the direct creates: 1,024 students at most.
    assert!(n <= 1024, "at most 1024 students");
    let wait = Duration::from_secs(
        std::env::var("WM_BENCH_WAIT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300 + 2 * n as u64),
    );
    tokio::task::spawn_blocking(wm_testkit::ensure_test_image)
        .await
        .unwrap();
    let run = wm_testkit::unique("burst");
    let third = uuid_byte();
    let dir = tempfile::tempdir().unwrap();
    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        format!("[docker.labels]\n\"{}\" = \"1\"\n", wm_testkit::TEST_LABEL),
    )
    .unwrap();
    let agent_config = agent_config.display().to_string();

    // Two agents, each with its own ports and its own slice of addresses for networks.
    let mut agents = Vec::new();
    let mut instances = Vec::new();
    let mut list = Vec::new();
    for (k, id) in ["h1", "h2"].into_iter().enumerate() {
        let port = wm_testkit::free_port();
        let instance = format!("{run}{k}");
        let first = 44000 + k as u16 * 1000;
        agents.push(spawn(
            &["agent", "docker", "--config", &agent_config],
            port,
            &[
                ("WM_AGENT_TOKEN", TOKEN.into()),
                ("WM_HOST_ID", id.into()),
                ("WM_INSTANCE", instance.clone()),
                ("WM_PORT_RANGE", format!("{first}-{}", first + 999)),
                ("WM_PUBLISH_ADDRESS", "127.0.0.1".into()),
                (
                    "WM_NETWORK_POOL",
                    format!("10.{}.{}.0/18", 214 + k, third & 0xc0),
                ),
                ("WM_NETWORK_PREFIX", "28".into()),
            ],
        ));
        instances.push(instance);
        let url = format!("http://127.0.0.1:{port}");
        wait_healthy(&url).await;
        list.push(format!("{id}={url}"));
    }
    let console_port = wm_testkit::free_port();
    let data = tempfile::tempdir().unwrap();
    let console = spawn(
        &["console"],
        console_port,
        &[
            ("WM_AGENTS", list.join(" ")),
            ("WM_AGENT_TOKEN", TOKEN.into()),
            ("WM_ADMIN_PASSWORD", PASSWORD.into()),
            ("WM_DATA_DIR", data.path().display().to_string()),
            ("WM_LOGIN_RATE_LIMIT", "0".into()),
            // Both agents are this one machine: a class of 1,000 at the default limit
            // (512 MiB) commits 500 GiB, which placement allows only this far over.
            ("WM_MEMORY_OVERCOMMIT", "16".into()),
        ],
    );
    let base = format!("http://127.0.0.1:{console_port}");
    wait_healthy(&base).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(wait)
        .build()
        .unwrap();
    let (_, login) = post(
        &client,
        format!("{base}/api/v1/login"),
        None,
        json!({"username": "admin", "password": PASSWORD}),
    )
    .await;
    let admin = login["token"].as_str().unwrap().to_string();

    // The class: N students, each logged in.
    let mut tokens = Vec::new();
    for i in 0..n {
        let name = format!("{run}s{i}");
        post(
            &client,
            format!("{base}/api/v1/admin/users"),
            Some(&admin),
            json!({"name": name, "password": "student-password", "role": "student"}),
        )
        .await;
        let (_, l) = post(
            &client,
            format!("{base}/api/v1/login"),
            None,
            json!({"username": name, "password": "student-password"}),
        )
        .await;
        tokens.push(l["token"].as_str().unwrap().to_string());
    }

    // Everyone at once, through the console.
    let start = Instant::now();
    let answers = join_all(tokens.iter().map(|t| {
        let (client, url) = (client.clone(), format!("{base}/api/v1/containers"));
        async move {
            let t0 = Instant::now();
            let r = post(
                &client,
                url,
                Some(t),
                json!({"name": "lab", "image": wm_testkit::TEST_IMAGE, "ports": [80]}),
            )
            .await;
            (t0.elapsed(), r)
        }
    }))
    .await;
    let ours_wall = start.elapsed();
    let mut ours_times: Vec<Duration> = answers.iter().map(|(d, _)| *d).collect();
    let ok: Vec<&Value> = answers
        .iter()
        .filter(|(_, (ok, _))| *ok)
        .map(|(_, (_, v))| v)
        .collect();
    let ports: HashSet<(String, u64)> = ok
        .iter()
        .map(|c| {
            (
                c["host"].as_str().unwrap_or_default().to_string(),
                c["ports"][0]["host"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let per_host = ok.iter().fold(HashMap::<String, usize>::new(), |mut m, c| {
        *m.entry(c["host"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
        m
    });
    if let Some((_, (_, why))) = answers.iter().find(|(_, (ok, _))| !ok) {
        println!("first failure through the console: {why}");
    }

    // The engine back as it was, so the direct burst meets the same engine.
    drop(console);
    drop(agents);
    for instance in &instances {
        remove_run(instance);
    }

    // The same burst, straight to the engine.
    let docker = Docker::connect_with_unix(
        "/var/run/docker.sock",
        wait.as_secs(),
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap()
    .negotiate_version()
    .await
    .unwrap();
    let direct_instance = format!("{run}d");
    let start = Instant::now();
    let direct = join_all((0..n).map(|i| {
        let docker = docker.clone();
        let instance = direct_instance.clone();
        // A /28 each from a /18 of its own, and a port each from a range of its own.
        let subnet = format!(
            "10.216.{}.{}/28",
            (third & 0xc0) + (i / 16) as u8,
            (i % 16) * 16
        );
        async move {
            let t0 = Instant::now();
            let r = direct_create(&docker, &instance, i, subnet, 46000 + i as u16).await;
            (t0.elapsed(), r)
        }
    }))
    .await;
    let direct_wall = start.elapsed();
    let mut direct_times: Vec<Duration> = direct.iter().map(|(d, _)| *d).collect();
    let direct_ok = direct.iter().filter(|(_, r)| r.is_ok()).count();
    if let Some((_, Err(e))) = direct.iter().find(|(_, r)| r.is_err()) {
        println!("first failure straight to Docker: {e}");
    }

    println!(
        "class-start burst, N = {n}, two agents on one engine, each request waited up to {} s:",
        wait.as_secs()
    );
    report("console", &mut ours_times, ok.len(), ports.len(), ours_wall);
    report(
        "direct",
        &mut direct_times,
        direct_ok,
        direct_ok,
        direct_wall,
    );
    println!(
        "placement: {:?}; total time ratio console/direct: {:.2}",
        per_host,
        ours_wall.as_secs_f64() / direct_wall.as_secs_f64()
    );

    remove_run(&direct_instance);
}

/// Removes what a run made, as `wm_testkit::remove_labelled` does, with its containers and
/// networks removed 8 at a time: the engine takes about a second for each of a class's
/// 1,000 networks.
fn remove_run(instance: &str) {
    let filter = format!("label=wm.instance={instance}");
    for kind in [&["ps", "-aq"][..], &["network", "ls", "-q"][..]] {
        let mut args = kind.to_vec();
        args.extend(["--filter", &filter]);
        let out = wm_testkit::docker(&args);
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        let remove: &[&str] = if kind[0] == "ps" {
            &["rm", "-f"]
        } else {
            &["network", "rm"]
        };
        std::thread::scope(|s| {
            for part in ids.chunks(ids.len().div_ceil(8).max(1)) {
                s.spawn(move || {
                    for id in part {
                        let mut args = remove.to_vec();
                        args.push(id);
                        wm_testkit::docker(&args);
                    }
                });
            }
        });
    }
    // Volumes, and anything left.
    wm_testkit::remove_labelled("wm.instance", instance);
}

fn uuid_byte() -> u8 {
    let id = wm_testkit::unique("x");
    id.bytes()
        .fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b))
}
