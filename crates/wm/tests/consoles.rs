//! Several consoles on one PostgreSQL database: three real `wm console` processes on
//! loopback in front of two real `wm agent docker` processes (on this machine's one
//! Docker engine, each with its own port range and `wm.instance` label), as behind a load
//! balancer that sends each request to any console.
//!
//! A burst of creates goes round-robin over the consoles; in its middle the leading
//! console is killed with SIGKILL and another is restarted. Every create must succeed or
//! get a retryable error (connection refused or reset, or a 503), retried on another
//! console; in the end each container exists once, on the engine and in the API, with
//! host ports of its own, and another console leads and runs the periodic work.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "agent-token-for-the-tests-0123456789";
const ADMIN_PASSWORD: &str = "admin-password-for-tests";
const STUDENT_PASSWORD: &str = "student-password";
/// Failed logins of one name from one address allowed in a minute.
const LOGIN_LIMIT: usize = 3;
const USERS: usize = 4;
const PER_USER: usize = 12;

/// A running `wm` process, killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `wm <args>` with only `env` (and `PATH`), and waits until it listens.
fn start(args: &[&str], port: u16, env: &[(String, String)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wm"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WM_LOG", "info")
        .env("WM_LISTEN", format!("127.0.0.1:{port}"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wm_testkit::wait_until_listening(&mut child, 60);
    Proc { child }
}

/// A fresh PostgreSQL database, dropped with the guard (also when the test fails).
struct Database {
    admin_url: String,
    name: String,
}

impl Database {
    fn create() -> Database {
        let admin_url = std::env::var("WM_TEST_POSTGRES_URL")
            .expect("WM_TEST_POSTGRES_URL (scripts/test starts PostgreSQL and sets it)");
        let name = format!("wm_test_{}", wm_testkit::unique("c").replace('-', "_"));
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        Database { admin_url, name }
    }

    fn url(&self) -> String {
        let base = self.admin_url.rsplit_once('/').unwrap().0;
        format!("{base}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin_url.as_str(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-qc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One docker agent; its containers are removed with it.
struct Agent {
    id: String,
    instance: String,
    port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(id: &str, first_port: u16) -> Agent {
        wm_testkit::ensure_test_image();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!("[docker.labels]\n\"{}\" = \"1\"\n", wm_testkit::TEST_LABEL),
        )
        .unwrap();
        let instance = wm_testkit::unique("ag");
        let env: Vec<(String, String)> = [
            ("WM_AGENT_TOKEN", TOKEN.to_string()),
            ("WM_HOST_ID", id.to_string()),
            ("WM_INSTANCE", instance.clone()),
            ("WM_PORT_RANGE", format!("{first_port}-{}", first_port + 99)),
            ("WM_PUBLISH_ADDRESS", "127.0.0.1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let port = wm_testkit::free_port();
        let proc = start(
            &["agent", "docker", "--config", &config.display().to_string()],
            port,
            &env,
        );
        Agent {
            id: id.into(),
            instance,
            port,
            _proc: proc,
            _dir: dir,
        }
    }

    /// `owner/name` of each container the engine has of this agent.
    fn containers(&self) -> Vec<String> {
        let out = wm_testkit::docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=wm.instance={}", self.instance),
            "--format",
            "{{.Label \"wm.owner\"}}/{{.Label \"wm.name\"}}",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        wm_testkit::remove_labelled("wm.instance", &self.instance);
    }
}

/// One `wm console` process; all share the database and the secret key.
struct Console {
    port: u16,
    env: Vec<(String, String)>,
    proc: Option<Proc>,
    _data: tempfile::TempDir,
}

impl Console {
    fn start(agents: &[&Agent], db: &Database, key: &std::path::Path) -> Console {
        let list: Vec<String> = agents
            .iter()
            .map(|a| format!("{}=http://127.0.0.1:{}", a.id, a.port))
            .collect();
        let data = tempfile::tempdir().unwrap();
        let env: Vec<(String, String)> = [
            ("WM_AGENTS", list.join(" ")),
            ("WM_AGENT_TOKEN", TOKEN.to_string()),
            ("WM_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("WM_DATABASE_URL", db.url()),
            ("WM_SECRET_KEY_FILE", key.display().to_string()),
            ("WM_DATA_DIR", data.path().display().to_string()),
            ("WM_HOST_CHECK_INTERVAL_SECS", "1".to_string()),
            ("WM_RECONCILE_INTERVAL_SECS", "1".to_string()),
            ("WM_MEMORY_LIMIT", "32m".to_string()),
            ("WM_CPU_LIMIT", "0.1".to_string()),
            ("WM_PIDS_LIMIT", "32".to_string()),
            ("WM_LOGIN_RATE_LIMIT", LOGIN_LIMIT.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let port = wm_testkit::free_port();
        let proc = Some(start(&["console"], port, &env));
        Console {
            port,
            env,
            proc,
            _data: data,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no clean-up of any kind, as a crashed machine.
    fn kill(&mut self) {
        self.proc = None;
    }

    /// Stops the console with SIGTERM, waits for it, and starts it again on its port.
    fn restart(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let pid = p.child.id().to_string();
            assert!(Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success());
            let _ = p.child.wait();
        }
        self.proc = Some(start(&["console"], self.port, &self.env));
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        // No kept connections: a restarted console is a new process on the same port.
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A call to the API at `base`; the error is the transport's (refused, reset).
async fn call(
    http: &Client,
    base: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let mut req = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn ok(http: &Client, base: &str, method: Method, path: &str, token: &str) -> Value {
    let (status, body) = call(http, base, method, path, token, None).await.unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn login(http: &Client, base: &str, user: &str, password: &str) -> (StatusCode, Value) {
    call(
        http,
        base,
        Method::POST,
        "/api/v1/login",
        "",
        Some(json!({"username": user, "password": password})),
    )
    .await
    .unwrap()
}

/// Creates a student with no quota through `base`; answers their name.
async fn student(http: &Client, base: &str, admin: &str) -> String {
    let name = wm_testkit::unique("s");
    let (status, body) = call(
        http,
        base,
        Method::POST,
        "/api/v1/admin/users",
        admin,
        Some(json!({"name": name, "password": STUDENT_PASSWORD, "role": "student"})),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let no_limit = json!({"containers": -1, "running": -1, "cpus": -1, "memory": -1,
        "gpus": -1, "ports": -1, "builds": -1, "storage": -1});
    let (status, body) = call(
        http,
        base,
        Method::PUT,
        &format!("/api/v1/admin/users/{name}/quota"),
        admin,
        Some(no_limit),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    name
}

/// Which of `bases` lead (`/healthz`'s `leader`); a console that does not answer does not.
async fn leaders(http: &Client, bases: &[String]) -> Vec<usize> {
    let mut leading = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        if let Ok(resp) = http.get(format!("{base}/healthz")).send().await {
            let health: Value = resp.json().await.unwrap();
            if health["leader"] == true {
                leading.push(i);
            }
        }
    }
    leading
}

/// Polls until exactly one of `bases` leads; answers which. At most 120 polls.
async fn one_leader(http: &Client, bases: &[String]) -> usize {
    let mut seen = Vec::new();
    for _ in 0..120 {
        seen = leaders(http, bases).await;
        if seen.len() == 1 {
            return seen[0];
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("never exactly one leader among {bases:?}: {seen:?}");
}

/// What became of one create.
#[derive(Debug)]
enum Outcome {
    /// 201 at the first console that answered.
    Created,
    /// A 409 after a retryable error: the interrupted attempt had made it.
    MadeBefore,
    /// Anything else (the status and answer): a failure of the test.
    Refused(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_consoles_share_one_database_through_kills_and_restarts() {
    let db = Database::create();
    let h1 = Agent::start("h1", 44500);
    let h2 = Agent::start("h2", 44700);
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("secret.key");
    // One after the other: the first migrates the database (the others would wait).
    let mut consoles: Vec<Console> = (0..3)
        .map(|_| Console::start(&[&h1, &h2], &db, &key))
        .collect();
    let bases: Vec<String> = consoles.iter().map(Console::base).collect();
    let http = client();

    // One leader, whichever.
    let first_leader = one_leader(&http, &bases).await;

    // A session made on one console is good on the others.
    let (status, body) = login(&http, &bases[0], "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin = body["token"].as_str().unwrap().to_string();
    let users: Vec<String> = {
        let mut users = Vec::new();
        for i in 0..USERS {
            users.push(student(&http, &bases[i % 3], &admin).await);
        }
        users
    };
    let mut tokens = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let (status, body) = login(&http, &bases[(i + 1) % 3], u, STUDENT_PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens.push(body["token"].as_str().unwrap().to_string());
    }
    for (i, t) in tokens.iter().enumerate() {
        let me = ok(&http, &bases[(i + 2) % 3], Method::GET, "/api/v1/me", t).await;
        assert_eq!(me["name"], users[i].as_str(), "{me}");
    }
    web_session_crosses_consoles(&http, &bases, &users[0]).await;

    // Failed logins count on every console: one failure on each, then even the right
    // password is refused, on any console.
    let locked = student(&http, &bases[0], &admin).await;
    for base in &bases {
        let (status, body) = login(&http, base, &locked, "wrong-password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    for base in &bases {
        let (status, body) = login(&http, base, &locked, STUDENT_PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }

    // The burst: every user's containers, round-robin over the consoles, six at a time.
    let jobs: Vec<(usize, String)> = (0..USERS * PER_USER)
        .map(|i| (i % USERS, format!("c{}", i / USERS)))
        .collect();
    let total = jobs.len();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<Mutex<Vec<(usize, String, Outcome)>>> = Arc::default();
    let retried = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (jobs, next, done, outcomes, retried) = (
            jobs.clone(),
            next.clone(),
            done.clone(),
            outcomes.clone(),
            retried.clone(),
        );
        let (bases, tokens, http) = (bases.clone(), tokens.clone(), http.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((user, name)) = jobs.get(i).cloned() else {
                    return;
                };
                let body = json!({"name": name, "image": wm_testkit::TEST_IMAGE, "ports": "80"});
                let mut console = i % 3;
                let mut interrupted = false;
                let outcome = loop {
                    let answer = call(
                        &http,
                        &bases[console],
                        Method::POST,
                        "/api/v1/containers",
                        &tokens[user],
                        Some(body.clone()),
                    )
                    .await;
                    match answer {
                        Ok((StatusCode::CREATED, _)) => break Outcome::Created,
                        Ok((StatusCode::CONFLICT, _)) if interrupted => break Outcome::MadeBefore,
                        Ok((StatusCode::SERVICE_UNAVAILABLE, _)) | Err(_) => {
                            interrupted = true;
                            retried.fetch_add(1, Ordering::SeqCst);
                            console = (console + 1) % 3;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Ok((status, body)) => break Outcome::Refused(format!("{status} {body}")),
                    }
                };
                outcomes.lock().unwrap().push((user, name, outcome));
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // A third of the way: the leader dies. Two thirds: another console restarts.
    while done.load(Ordering::SeqCst) < total / 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consoles[first_leader].kill();
    let restarted = (first_leader + 1) % 3;
    while done.load(Ordering::SeqCst) < 2 * total / 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::block_in_place(|| consoles[restarted].restart());
    for w in workers {
        w.await.unwrap();
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let refused: Vec<String> = outcomes
        .iter()
        .filter_map(|(u, n, o)| match o {
            Outcome::Refused(why) => Some(format!("{}/{n}: {why}", users[*u])),
            _ => None,
        })
        .collect();
    assert!(refused.is_empty(), "creates refused: {refused:?}");
    assert_eq!(outcomes.len(), total);

    // Another console leads now, within a bounded number of polls.
    let alive: Vec<String> = (0..3)
        .filter(|i| *i != first_leader)
        .map(|i| bases[i].clone())
        .collect();
    let new_leader = one_leader(&http, &alive).await;
    assert!(leaders(&http, &bases).await.len() == 1);

    // Creates cut short by the kill are settled by the new leader's reconcile: every
    // container runs, within a bounded number of polls.
    let mut lists = Vec::new();
    for _ in 0..120 {
        lists.clear();
        for (i, t) in tokens.iter().enumerate() {
            lists.push(ok(&http, &alive[i % 2], Method::GET, "/api/v1/containers", t).await);
        }
        let settled = lists.iter().all(|l| {
            l.as_array()
                .unwrap()
                .iter()
                .all(|c| c["status"] == "running")
        });
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Each container once in the API, running, with a host port of its own.
    let mut ports = HashSet::new();
    let mut in_api = HashSet::new();
    for list in &lists {
        for c in list.as_array().unwrap() {
            let name = c["name"].as_str().unwrap().to_string();
            let owner = c["owner"].as_str().unwrap().to_string();
            assert!(in_api.insert((owner, name.clone())), "{name} listed twice");
            assert_eq!(c["status"], "running", "{c}");
            let published = c["ports"].as_array().unwrap();
            assert_eq!(published.len(), 1, "{c}");
            for p in published {
                let host_port = p["host"].as_u64().unwrap();
                assert!(ports.insert(host_port), "host port {host_port} lent twice");
            }
        }
    }
    let wanted: HashSet<(String, String)> = jobs
        .iter()
        .map(|(u, n)| (users[*u].clone(), n.clone()))
        .collect();
    // The API names them in full, `<owner>-<name>`.
    let full: HashSet<(String, String)> = wanted
        .iter()
        .map(|(u, n)| (u.clone(), format!("{u}-{n}")))
        .collect();
    assert_eq!(in_api, full);
    // ... and once on the engine.
    let mut on_engine = HashMap::<String, usize>::new();
    for c in h1.containers().into_iter().chain(h2.containers()) {
        *on_engine.entry(c).or_default() += 1;
    }
    for (u, n) in &wanted {
        assert_eq!(
            on_engine.get(&format!("{u}/{n}")),
            Some(&1),
            "{u}/{n} on the engine: {on_engine:?}"
        );
    }
    assert_eq!(on_engine.len(), wanted.len(), "{on_engine:?}");

    // The new leader's workers run: a container removed behind the consoles' back is
    // marked gone by its reconcile.
    let victim = format!("{}-c0", users[0]);
    let id = wm_testkit::docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=wm.owner={}", users[0]),
        "--filter",
        "label=wm.name=c0",
    ]);
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
    assert!(!id.is_empty(), "{victim} has no container on the engine");
    assert!(wm_testkit::docker(&["rm", "-f", &id]).status.success());
    let leader_base = &alive[new_leader];
    let mut status = Value::Null;
    for _ in 0..120 {
        let c = ok(
            &http,
            leader_base,
            Method::GET,
            &format!("/api/v1/containers/{victim}"),
            &tokens[0],
        )
        .await;
        status = c["status"].clone();
        if status == "gone" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status, "gone", "the reconcile never saw {victim} go");
    eprintln!(
        "{} creates, {} retried after a refused or reset connection or a 503, {} made by an interrupted attempt",
        total,
        retried.load(Ordering::SeqCst),
        outcomes
            .iter()
            .filter(|(_, _, o)| matches!(o, Outcome::MadeBefore))
            .count()
    );
}

/// The web login's form cookie from one console, its post to a second, and the session
/// cookie it sets good on a third: no console keeps anything of a session to itself.
async fn web_session_crosses_consoles(http: &Client, bases: &[String], user: &str) {
    // Pages are not served under the hosts' link address (127.0.0.1 here).
    let bases: Vec<String> = bases
        .iter()
        .map(|b| b.replace("127.0.0.1", "localhost"))
        .collect();
    let form = http
        .get(format!("{}/login", bases[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let login_cookie = cookie(&form, "wm_login");
    let page = form.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the form's csrf field")
        .to_string();
    let posted = http
        .post(format!("{}/login", bases[1]))
        .header("Cookie", format!("wm_login={login_cookie}"))
        .header("Origin", &bases[1])
        .form(&[
            ("username", user),
            ("password", STUDENT_PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    let session = cookie(&posted, "wm_session");
    let page = http
        .get(format!("{}/containers", bases[2]))
        .header("Cookie", format!("wm_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains(user));
}

/// The value of the cookie `name` a response sets.
fn cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie set"))
        .to_string()
}
