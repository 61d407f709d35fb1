//! A class at full size starts at once: 200 students each send 3 creates at the same
//! moment, every tenth asking for a GPU, through the console's API onto 4 in-memory hosts
//! (`wm_backend::memory::MemoryBackend`: 24 GiB and 2 exclusive GPUs each), first with
//! quotas off and then with each student's quota at 2 containers, side by side in one
//! process.
//!
//! Checks, for both runs, on what the hosts hold afterwards: no host's memory committed
//! beyond it, no GPU held by more containers than its share, no host port lent twice, and
//! with quotas no student over 2 containers. Reports accepted and refused creates by
//! reason, the wall time, the p50 and p95 of one create, and the ratio of the two runs.
//!
//! `cargo bench -p wm-console --bench quota_burst` (students from `WM_BENCH_N`, default 200).

use futures::future::join_all;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wm_backend::memory::MemoryBackend;
use wm_backend::{ContainerBackend, Gpu, GpuKind};
use wm_console::config::{Config, QuotaSettings, Secret};
use wm_domain::Role;

const HOSTS: usize = 4;
const GPUS_PER_HOST: usize = 2;
const CREATES_PER_STUDENT: usize = 3;
const PASSWORD: &str = "bench-password-1";

struct Run {
    accepted: usize,
    refused: BTreeMap<String, usize>,
    wall: Duration,
    times: Vec<Duration>,
}

fn host(i: usize) -> MemoryBackend {
    let gpus = (0..GPUS_PER_HOST)
        .map(|g| Gpu {
            id: format!("h{i}-gpu{g}"),
            name: "bench GPU".into(),
            memory_bytes: None,
            kind: GpuKind::Nvidia,
            share: 1,
        })
        .collect();
    MemoryBackend::new(format!("h{i}"))
        .with_tag("busybox:latest")
        .with_memory_total(24 << 30)
        .with_port_range(40000, 44999)
        .with_gpus(gpus)
}

async fn run(students: usize, quotas: bool) -> Run {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::load(
        None,
        [
            ("WM_LISTEN", "127.0.0.1:0".to_string()),
            ("WM_DATA_DIR", data.path().display().to_string()),
            ("WM_MEMORY_LIMIT", "256m".to_string()),
            ("WM_CPU_LIMIT", "0.25".to_string()),
            ("WM_LOGIN_RATE_LIMIT", "0".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap();
    config.admin_password = Some(Secret::new(PASSWORD));
    let unlimited = QuotaSettings::unlimited();
    let quota = if quotas {
        QuotaSettings {
            containers: Some(2),
            running: Some(2),
            cpus: Some(1.0),
            memory: Some("1g".into()),
            gpus: Some(1),
            ports: Some(4),
            ..unlimited.clone()
        }
    } else {
        unlimited
    };
    config.quotas.insert(Role::Student, quota);
    let backends: Vec<Arc<MemoryBackend>> = (0..HOSTS).map(|i| Arc::new(host(i))).collect();
    let app = wm_console::app::build_with_hosts(
        config,
        backends
            .iter()
            .map(|b| {
                (
                    b.clone() as Arc<dyn ContainerBackend>,
                    "192.0.2.1".to_string(),
                )
            })
            .collect(),
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let login = |user: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r: Value = client
                .post(format!("{base}/api/v1/login"))
                .json(&json!({"username": user, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["token"].as_str().unwrap().to_string()
        }
    };
    let admin = login("admin".into()).await;
    let mut tokens = Vec::new();
    for i in 0..students {
        let name = format!("s{i:03}");
        let r = client
            .post(format!("{base}/api/v1/admin/users"))
            .bearer_auth(&admin)
            .json(&json!({"name": name, "password": PASSWORD, "role": "student"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        tokens.push(login(name).await);
    }
    let start = Instant::now();
    let creates = tokens
        .iter()
        .enumerate()
        .flat_map(|(i, token)| (0..CREATES_PER_STUDENT).map(move |n| (i, n, token)));
    let answers = join_all(creates.map(|(i, n, token)| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let mut body = json!({"name": format!("c{n}"), "image": "busybox", "ports": [80]});
            if i % 10 == 0 {
                body["gpus"] = json!(1);
            }
            let t = Instant::now();
            let r = client
                .post(format!("{base}/api/v1/containers"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            (status, v, t.elapsed())
        }
    }))
    .await;
    let wall = start.elapsed();
    let mut refused = BTreeMap::new();
    let mut accepted = 0;
    let mut times = Vec::new();
    for (status, v, t) in &answers {
        times.push(*t);
        if status.is_success() {
            accepted += 1;
        } else {
            *refused
                .entry(format!(
                    "{} {}",
                    status.as_u16(),
                    v["error"]["code"].as_str().unwrap_or("?")
                ))
                .or_insert(0) += 1;
        }
    }
    // What the hosts hold: never past their memory, their GPUs' shares, or one port each.
    let mut per_owner: HashMap<String, usize> = HashMap::new();
    for b in &backends {
        let listed = b.list().await.unwrap();
        let info = b.info().await.unwrap();
        let memory: i64 = (listed.len() as i64) * (256 << 20);
        assert!(
            memory <= info.memory_total,
            "{} holds {memory} bytes of limits on {}",
            b.host_name(),
            info.memory_total
        );
        let mut gpu_holders: HashMap<String, usize> = HashMap::new();
        for c in &listed {
            *per_owner.entry(c.owner.clone()).or_default() += 1;
            for g in &c.gpus {
                *gpu_holders.entry(g.clone()).or_default() += 1;
            }
        }
        assert!(
            gpu_holders.values().all(|n| *n <= 1),
            "a GPU given twice on {}: {gpu_holders:?}",
            b.host_name()
        );
        let ports = b.used_ports();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            ports.len(),
            unique.len(),
            "a port lent twice on {}",
            b.host_name()
        );
    }
    if quotas {
        assert!(per_owner.values().all(|n| *n <= 2), "{per_owner:?}");
    }
    assert_eq!(
        per_owner.values().sum::<usize>(),
        accepted,
        "every accepted create is on a host, and nothing else"
    );
    let _ = stop.send(());
    let _ = server.await;
    Run {
        accepted,
        refused,
        wall,
        times,
    }
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    times[((times.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, r: &mut Run) {
    let p50 = percentile(&mut r.times, 0.5);
    let p95 = percentile(&mut r.times, 0.95);
    println!(
        "{what:<12} accepted {:>4}  wall {:>8.2}s  p50 {:>8.1}ms  p95 {:>8.1}ms  refused {:?}",
        r.accepted,
        r.wall.as_secs_f64(),
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        r.refused
    );
}

#[tokio::main]
async fn main() {
    let students: usize = std::env::var("WM_BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    println!(
        "{students} students x {CREATES_PER_STUDENT} creates at once, every tenth asking for a GPU; \
         {HOSTS} in-memory hosts of 24 GiB and {GPUS_PER_HOST} exclusive GPUs; containers of 256 MiB"
    );
    let mut off = run(students, false).await;
    report("quotas off", &mut off);
    let mut on = run(students, true).await;
    report("quotas on", &mut on);
    println!(
        "time with quotas / without: {:.2}; no memory overcommitted, no GPU or port given twice",
        on.wall.as_secs_f64() / off.wall.as_secs_f64()
    );
}
