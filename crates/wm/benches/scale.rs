//! A department at full size: one `wm console` (the real binary, its own process) in
//! front of 50 simulated docker hosts (`wm_agent::simulated`: the real agent routes over
//! loopback in front of in-memory hosts, in this process) holding 100 containers each,
//! with 10,000 users in its store.
//!
//! Reports:
//! - p50 and p99 of list (a student's own), get, create and delete through the API, with
//!   the hosts full and `WM_BENCH_CONCURRENCY` requests at a time;
//! - requests per second of a student's list and of the administrators' list of every
//!   container, once the store holds `WM_BENCH_ROWS` (10,000) containers;
//! - the console's resident memory (VmRSS) idle, with the hosts full and with all the rows,
//!   and per 1,000 containers;
//! - after the console is killed (SIGKILL) and started again on the same store: the time
//!   until it answers, and until it lists every container running on the host that holds it
//!   and lends a new one.
//!
//! The users and their sessions are written straight into the store before the console
//! starts (10,000 logins would measure password hashing); every container is made through
//! the API.
//!
//! `cargo bench -p wm --bench scale`. Sizes: `WM_BENCH_HOSTS` (50), `WM_BENCH_PER_HOST`
//! (100), `WM_BENCH_USERS` (10000), `WM_BENCH_ROWS` (10000, at most the users),
//! `WM_BENCH_SAMPLES` (1000 requests per measured operation), `WM_BENCH_CONCURRENCY` (16).

use futures::stream::{self, StreamExt};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wm_agent::simulated::SimulatedAgent;
use wm_backend::memory::MemoryBackend;
use wm_backend::ContainerBackend;
use wm_domain::{Role, Scope, UserName};
use wm_store::{Store, Token, TokenKind, User, UserSource};

const TOKEN: &str = "agent-token-for-the-scale-benchmark-0123";
const PASSWORD: &str = "bench-admin-password";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Console {
    child: Child,
    base: String,
}

impl Console {
    /// `wm console` on a new port over `data`, answering.
    async fn start(data: &std::path::Path, agents: &str) -> (Self, Duration) {
        let port = wm_testkit::free_port();
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_wm"))
            .arg("console")
            .env("WM_LISTEN", format!("127.0.0.1:{port}"))
            .env("WM_LOG", "warn")
            .env("WM_DATA_DIR", data)
            .env("WM_AGENTS", agents)
            .env("WM_AGENT_TOKEN", TOKEN)
            .env("WM_ADMIN_PASSWORD", PASSWORD)
            .env("WM_LOGIN_RATE_LIMIT", "0")
            .env("WM_MEMORY_LIMIT", "64m")
            .stdout(Stdio::null())
            .spawn()
            .expect("wm starts");
        let console = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..1200 {
            if reqwest::get(format!("{}/healthz", console.base))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return (console, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the console did not answer within 30 s");
    }

    /// Its resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    async fn call(
        &self,
        client: &Client,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("the console answers");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_of(i: usize) -> String {
    format!("scale-session-{i:05}-0123456789abcdef0123456789")
}

fn user_of(i: usize) -> String {
    format!("u{i:05}")
}

/// The users and a session each, straight into the store.
async fn seed(data: &std::path::Path, users: usize) {
    let store = Store::connect(&format!("sqlite://{}", data.join("wm.db").display()))
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    stream::iter(0..users)
        .for_each_concurrent(8, |i| {
            let store = store.clone();
            async move {
                let name = UserName::parse(&user_of(i)).unwrap();
                store
                    .insert_user(&User {
                        name: name.clone(),
                        display_name: None,
                        role: Role::Student,
                        source: UserSource::Local,
                        password_hash: None,
                        uid_number: None,
                        created_at: now,
                        disabled: false,
                    })
                    .await
                    .unwrap();
                store
                    .insert_token(&Token {
                        hash: hex::encode(Sha256::digest(token_of(i).as_bytes())),
                        id: format!("t{i:05}"),
                        user: name,
                        kind: TokenKind::Session,
                        name: None,
                        scope: Scope::All,
                        created_at: now,
                        expires_at: Some(now + 86_400),
                        last_used_at: Some(now),
                    })
                    .await
                    .unwrap();
            }
        })
        .await;
    store.close().await;
}

/// Runs `f(i)` for `i` in `range`, `concurrency` at a time; each answer's time, and the
/// wall time of all.
async fn timed<F, Fut>(
    range: std::ops::Range<usize>,
    concurrency: usize,
    f: F,
) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let times = stream::iter(range)
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    (times, start.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn latency(what: &str, mut times: Vec<Duration>, wall: Duration) {
    times.sort();
    let n = times.len();
    println!(
        "  {what:<28}{n:>7}{:>10.2}ms{:>10.2}ms{:>10.0}/s",
        ms(times[(n - 1) / 2]),
        ms(times[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1]),
        n as f64 / wall.as_secs_f64()
    );
}

/// Containers `c` for users `range`, through the API.
async fn fill(console: &Console, client: &Client, range: std::ops::Range<usize>, c: usize) {
    let (_, wall) = timed(range.clone(), c, |i| async move {
        let (status, body) = console
            .call(
                client,
                Method::POST,
                "/api/v1/containers",
                &token_of(i),
                Some(json!({"name": "c", "image": wm_testkit::TEST_IMAGE, "ports": [80]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    })
    .await;
    println!(
        "  filled {} containers in {:.1} s ({:.0} creates/s)",
        range.len(),
        wall.as_secs_f64(),
        range.len() as f64 / wall.as_secs_f64()
    );
}

/// Whether the console lists every one of the `rows` containers, running, on a host that
/// holds it, and the hosts hold nothing else.
async fn consistent(
    console: &Console,
    client: &Client,
    admin: &str,
    agents: &[SimulatedAgent],
    rows: usize,
) -> bool {
    let (status, listed) = console
        .call(
            client,
            Method::GET,
            "/api/v1/containers?all=true",
            admin,
            None,
        )
        .await;
    let Some(listed) = listed.as_array().filter(|_| status == StatusCode::OK) else {
        return false;
    };
    let mut held = std::collections::HashSet::new();
    for a in agents {
        for c in a.host.list().await.unwrap() {
            held.insert((a.id.clone(), format!("{}-{}", c.owner, c.short_name)));
        }
    }
    listed.len() == rows
        && held.len() == rows
        && listed.iter().all(|c| {
            c["status"] == "running"
                && held.contains(&(
                    c["host"].as_str().unwrap_or_default().to_string(),
                    c["name"].as_str().unwrap_or_default().to_string(),
                ))
        })
}

#[tokio::main]
async fn main() {
    let hosts = env("WM_BENCH_HOSTS", 50);
    let per_host = env("WM_BENCH_PER_HOST", 100);
    let users = env("WM_BENCH_USERS", 10_000);
    let rows = env("WM_BENCH_ROWS", 10_000).min(users);
    let samples = env("WM_BENCH_SAMPLES", 1000);
    let c = env("WM_BENCH_CONCURRENCY", 16);
    let full = (hosts * per_host).min(rows);
    assert!(
        samples < users - full,
        "more samples than users without a container"
    );
    println!(
        "scale: {hosts} simulated hosts, {full} containers on them, {users} users, \
         then {rows} containers; {c} requests at a time"
    );

    let mut agents = Vec::new();
    for i in 0..hosts {
        let host = MemoryBackend::new(format!("sim{i:02}"))
            .with_tag(wm_testkit::TEST_IMAGE)
            .with_memory_total(4 << 40)
            .with_port_range(20000, 29999);
        agents.push(SimulatedAgent::start(host, TOKEN).await.unwrap());
    }
    let list: Vec<String> = agents.iter().map(SimulatedAgent::endpoint).collect();
    let list = list.join(" ");
    let data = tempfile::tempdir().unwrap();
    let t = Instant::now();
    seed(data.path(), users).await;
    println!(
        "  seeded {users} users and sessions in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let client = &Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let (console, _) = Console::start(data.path(), &list).await;
    let (_, login) = console
        .call(
            client,
            Method::POST,
            "/api/v1/login",
            "",
            Some(json!({"username": "admin", "password": PASSWORD})),
        )
        .await;
    let admin = login["token"].as_str().unwrap().to_string();
    let admin = admin.as_str();
    // A first request, so idle means ready.
    console
        .call(
            client,
            Method::GET,
            "/api/v1/containers",
            &token_of(0),
            None,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = console.rss_kib();

    fill(&console, client, 0..full, c).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_full = console.rss_kib();

    println!("\nwith {full} containers on {hosts} hosts and {users} users:");
    println!(
        "  {:<28}{:>7}{:>12}{:>12}{:>12}",
        "operation", "n", "p50", "p99", "rate"
    );
    let con = &console;
    // Users spread over the table, not in insertion order.
    let owner = |i: usize| (i * 7919) % full;
    let (times, wall) = timed(0..samples, c, |i| async move {
        let (status, body) = con
            .call(
                client,
                Method::GET,
                "/api/v1/containers",
                &token_of(owner(i)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_array().map(Vec::len), Some(1));
    })
    .await;
    latency("GET /containers (own)", times, wall);
    let (times, wall) = timed(0..samples, c, |i| async move {
        let o = owner(i);
        let (status, body) = con
            .call(
                client,
                Method::GET,
                &format!("/api/v1/containers/{}-c", user_of(o)),
                &token_of(o),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    })
    .await;
    latency("GET /containers/{name}", times, wall);
    // Creates and deletes by users who have none yet; the hosts are back as they were.
    let spare = full..full + samples;
    let (times, wall) = timed(spare.clone(), c, |i| async move {
        let (status, body) = con
            .call(
                client,
                Method::POST,
                "/api/v1/containers",
                &token_of(i),
                Some(json!({"name": "x", "image": wm_testkit::TEST_IMAGE, "ports": [80]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    })
    .await;
    latency("POST /containers", times, wall);
    let (times, wall) = timed(spare, c, |i| async move {
        let (status, body) = con
            .call(
                client,
                Method::DELETE,
                &format!("/api/v1/containers/{}-x", user_of(i)),
                &token_of(i),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    })
    .await;
    latency("DELETE /containers/{name}", times, wall);

    println!("\nwith {rows} containers in the store:");
    fill(con, client, full..rows, c).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_rows = console.rss_kib();
    let (times, wall) = timed(0..samples, c, |i| async move {
        let (status, _) = con
            .call(
                client,
                Method::GET,
                "/api/v1/containers",
                &token_of((i * 7919) % rows),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    })
    .await;
    latency("GET /containers (own)", times, wall);
    let (times, wall) = timed(0..(samples / 20).max(5), c.min(4), |_| async move {
        let (status, body) = con
            .call(
                client,
                Method::GET,
                "/api/v1/containers?all=true",
                admin,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_array().map(Vec::len), Some(rows));
    })
    .await;
    latency("GET /containers?all=true", times, wall);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("\nconsole memory (VmRSS):");
    println!(
        "  idle, {users} users, no container: {:.1} MiB",
        mib(rss_idle)
    );
    println!(
        "  {full} containers: {:.1} MiB; {rows} containers: {:.1} MiB; per 1,000 containers: {:.2} MiB",
        mib(rss_full),
        mib(rss_rows),
        mib(rss_rows.saturating_sub(rss_idle)) / (rows as f64 / 1000.0)
    );

    // Killed, and started again on the same store and hosts.
    drop(console);
    let (console, answering) = Console::start(data.path(), &list).await;
    let t = Instant::now();
    while !consistent(&console, client, admin, &agents, rows).await {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "not consistent within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spare = token_of(users - 1);
    loop {
        let (status, body) = console
            .call(
                client,
                Method::POST,
                "/api/v1/containers",
                &spare,
                Some(json!({"name": "y", "image": wm_testkit::TEST_IMAGE})),
            )
            .await;
        if status == StatusCode::CREATED {
            break;
        }
        assert!(status.is_server_error(), "{status} {body}");
        assert!(t.elapsed() < Duration::from_secs(120), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let consistent_after = answering + t.elapsed();
    println!("\nrestart (SIGKILL, then the same store and hosts):");
    println!(
        "  answering after {:.0} ms; consistent (every container listed, running, on the host \
         that holds it, and a new one lent) after {:.0} ms",
        ms(answering),
        ms(consistent_after)
    );
}
