//! Shared by the console's integration tests: a console per test on port 0 with its own
//! SQLite file and its own `wm.instance` label, the real Docker engine, and a busybox test
//! image built locally (no registry is needed).
//!
//! Everything a test creates on the engine carries `whalemountain.test=1` and the test's
//! instance label; dropping the [`TestApp`] removes it, also when the test fails.

#![allow(dead_code)] // each test file uses a different part

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use wm_console::config::{Config, Secret};
use wm_docker::PortRange;

use wm_testkit::{docker, unique};

pub mod browser;
pub mod vm;
pub mod ws;

/// A task that is aborted when this is dropped, also when the test fails.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A real docker agent (`wm agent docker`'s routes) on `listener`, in front of `engine`
/// and, when given, a VM host, on a runtime of its own: dropping the answer ends it as the
/// end of its process would, its open connections included.
pub struct AgentRuntime {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for AgentRuntime {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn agent_on(
    listener: std::net::TcpListener,
    engine: std::sync::Arc<wm_docker::DockerEngine>,
    vms: Option<wm_agent::VmAgent>,
    token: &str,
) -> AgentRuntime {
    let router = wm_agent::router(
        engine,
        vms,
        wm_agent::AgentToken::new(token),
        wm_agent::BodyLimits {
            upload: 1 << 20,
            build_context: 1 << 20,
            vm_image: 256 << 20,
        },
    );
    listener.set_nonblocking(true).unwrap();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = wm_agent::serve(listener, router, None, std::future::pending()).await;
        });
        let _ = stopped.recv();
        rt.shutdown_background();
    });
    AgentRuntime {
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// [`agent_on`] a new loopback port; its URL.
pub fn agent(
    engine: std::sync::Arc<wm_docker::DockerEngine>,
    vms: Option<wm_agent::VmAgent>,
    token: &str,
) -> (String, AgentRuntime) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (url, agent_on(listener, engine, vms, token))
}

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// The busybox test image, built once per test process.
pub async fn test_image() -> &'static str {
    tokio::task::spawn_blocking(wm_testkit::ensure_test_image)
        .await
        .unwrap()
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub instance: String,
    pub config: Config,
    pub data: tempfile::TempDir,
    pub admin: String,
    server: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A fresh configuration: its own data directory, instance label and a random window of
/// 200 host ports, so tests running side by side rarely want the same port.
pub fn test_config(data: &Path) -> Config {
    let instance = unique("t");
    let first = 40000 + (rand_u16() % 90) * 200;
    let mut c = Config::load(
        None,
        [
            ("WM_LISTEN", "127.0.0.1:0".to_string()),
            ("WM_DATA_DIR", data.display().to_string()),
            ("WM_INSTANCE", instance),
            ("WM_PORT_RANGE", format!("{first}-{}", first + 199)),
            ("WM_PUBLISH_ADDRESS", "127.0.0.1".to_string()),
            ("WM_MEMORY_LIMIT", "64m".to_string()),
            ("WM_CPU_LIMIT", "0.5".to_string()),
            ("WM_PIDS_LIMIT", "64".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap();
    c.admin_password = Some(Secret::new(ADMIN_PASSWORD));
    // No quota unless a test sets one: tests make many containers per user.
    for role in [wm_domain::Role::Student, wm_domain::Role::Teacher] {
        c.quotas
            .insert(role, wm_console::config::QuotaSettings::unlimited());
    }
    c.docker
        .labels
        .insert(wm_testkit::TEST_LABEL.into(), "1".into());
    // Images are scanned with the real ClamAV, whose signatures freshclam cannot fetch
    // here: a database of one signature, for the EICAR test file.
    c.scan.clamav_database = eicar_database(data);
    c
}

/// The EICAR test file: harmless, and what every virus scanner detects by agreement.
pub const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// A ClamAV database under `data` that knows the EICAR test file (a body signature,
/// `Eicar-Test-Signature`), and nothing else.
pub fn eicar_database(data: &Path) -> std::path::PathBuf {
    let dir = data.join("clamav");
    std::fs::create_dir_all(&dir).unwrap();
    let hex: String = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        dir.join("test.ndb"),
        format!("Eicar-Test-Signature:0:*:{hex}\n"),
    )
    .unwrap();
    dir
}

fn rand_u16() -> u16 {
    let b = uuid::Uuid::new_v4();
    u16::from_le_bytes([b.as_bytes()[0], b.as_bytes()[1]])
}

pub async fn spawn_app() -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let config = test_config(data.path());
    spawn_with(config, data).await
}

pub async fn spawn_with(config: Config, data: tempfile::TempDir) -> TestApp {
    let app = wm_console::build(config.clone())
        .await
        .expect("the console starts");
    run(app, config, data).await
}

/// A console of `wm console`: no local engine, the agents of `config.agents`.
pub async fn spawn_with_agents(config: Config, data: tempfile::TempDir) -> TestApp {
    let app = wm_console::build_with_agents(config.clone())
        .await
        .expect("the console starts");
    run(app, config, data).await
}

async fn run(app: wm_console::Application, config: Config, data: tempfile::TempDir) -> TestApp {
    test_image().await;
    let instance = config.docker.instance.clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut t = TestApp {
        base,
        client,
        instance,
        config,
        data,
        admin: String::new(),
        server,
        shutdown: Some(tx),
    };
    t.admin = t.login("admin", ADMIN_PASSWORD).await;
    t
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Any request with a bearer token (or none) and an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the console answers");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// The processes of one of the caller's containers, as `ps` in it prints them.
    pub async fn processes(&self, token: &str, container: &str) -> String {
        let (status, out) = self
            .post(
                &format!("/api/v1/containers/{container}/exec"),
                token,
                json!({"cmd": "ps"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{out}");
        out["stdout"].as_str().unwrap_or_default().to_string()
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn login(&self, user: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/login",
                None,
                Some(json!({"username": user, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login as {user}: {body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// A new student (or other role) with a unique name; returns (name, token).
    pub async fn user(&self, prefix: &str, role: &str) -> (String, String) {
        let name = unique(prefix);
        let (status, body) = self
            .post(
                "/api/v1/admin/users",
                &self.admin,
                json!({"name": name, "password": "password-123", "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = self.login(&name, "password-123").await;
        (name, token)
    }

    pub async fn student(&self) -> (String, String) {
        self.user("s", "student").await
    }

    /// Creates a container from the test image; panics unless it is created.
    pub async fn create(&self, token: &str, body: Value) -> Value {
        let (status, c) = self.post("/api/v1/containers", token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        c
    }

    /// The engine's name for `owner`'s container `short`: `<instance>.<owner>.<short>`.
    pub fn engine_name(&self, owner: &str, short: &str) -> String {
        format!("{}.{owner}.{short}", self.instance)
    }

    /// The engine's name for `owner`'s CI runner: `<instance>_ci.<owner>`.
    pub fn runner_name(&self, owner: &str) -> String {
        format!("{}_ci.{owner}", self.instance)
    }

    /// Containers of this test's instance on the engine.
    pub fn engine_containers(&self) -> Vec<String> {
        let out = docker(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=wm.instance={}", self.instance),
        ]);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    pub async fn stop_server(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        wm_testkit::remove_labelled("wm.instance", &self.instance);
    }
}

/// Waits for `f` to hold, up to `secs` seconds; panics with `what` otherwise.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

pub fn port_range(c: &Config) -> PortRange {
    c.docker.port_range()
}

/// Settings of the Kubernetes backend for the stand-in `server`, with its admin
/// kubeconfig written into `dir`, an instance label of its own and the domain
/// `ie.example.org`.
pub fn kube_settings(
    server: &wm_testkit::kube_apiserver::KubeApiServer,
    dir: &Path,
) -> wm_kube::KubeSettings {
    let kubeconfig = dir.join("admin.kubeconfig");
    std::fs::write(&kubeconfig, server.admin_kubeconfig()).unwrap();
    wm_kube::KubeSettings {
        kubeconfig: Some(kubeconfig),
        instance: unique("k"),
        domain: "ie.example.org".into(),
        ..Default::default()
    }
}

/// A reference as it goes in a path: `wm/alice/web:1` → `wm%2Falice%2Fweb%3A1`.
pub fn encode_ref(reference: &str) -> String {
    reference.replace('/', "%2F").replace(':', "%3A")
}

/// Removes the images a test made, also when it fails.
pub struct RemoveImages(pub Vec<String>);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        for r in &self.0 {
            docker(&["rmi", "-f", r]);
        }
    }
}

/// Reads an NDJSON answer into its lines; an error answer is its one JSON body.
pub async fn ndjson(resp: reqwest::Response) -> (StatusCode, Vec<Value>) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    if !status.is_success() {
        return (
            status,
            vec![serde_json::from_str(&text).unwrap_or(Value::String(text))],
        );
    }
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (status, lines)
}

impl TestApp {
    /// Builds an image from Dockerfile text through the API; answers its NDJSON lines.
    pub async fn build(
        &self,
        token: &str,
        name: &str,
        dockerfile: &str,
    ) -> (StatusCode, Vec<Value>) {
        let form = reqwest::multipart::Form::new()
            .text("name", name.to_string())
            .text("dockerfile", dockerfile.to_string());
        self.build_form(token, form).await
    }

    /// Sends any build form through the API; answers its NDJSON lines.
    /// Posts a multipart form; answers the status and the JSON (or the text) of the body.
    pub async fn post_form(
        &self,
        path: &str,
        token: &str,
        form: reqwest::multipart::Form,
    ) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn build_form(
        &self,
        token: &str,
        form: reqwest::multipart::Form,
    ) -> (StatusCode, Vec<Value>) {
        let resp = self
            .client
            .post(self.url("/api/v1/images/build"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        ndjson(resp).await
    }
}

/// Logs in through the web form with `client`: reads the login page for its cookie and
/// form token, then posts the form. Answers the post's response.
pub async fn post_login_form(
    app: &TestApp,
    client: &Client,
    user: &str,
    password: &str,
) -> reqwest::Response {
    let page = client.get(app.url("/login")).send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    client
        .post(app.url("/login"))
        .header(reqwest::header::COOKIE, cookie)
        .form(&[
            ("csrf", &html[at..at + 64]),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

/// Logs in through the login page of a real browser.
pub async fn log_in(b: &wm_testkit::browser::Browser, app: &TestApp, user: &str, password: &str) {
    b.goto(&app.url("/login")).await;
    b.fill("#username", user).await;
    b.fill("#password", password).await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.find("form[action='/logout']").await;
}

/// Logs out through the page's button.
pub async fn log_out(b: &wm_testkit::browser::Browser) {
    b.click("form[action='/logout'] button").await;
    b.find("#username").await;
}

/// Waits until the element shows `text` (a minute at most). The terminal's text is in
/// `.xterm-accessibility-tree`: xterm.js mirrors its rows there for screen readers.
pub async fn shows(b: &wm_testkit::browser::Browser, css: &str, text: &str) {
    let mut seen = String::new();
    for _ in 0..300 {
        seen = b.text(css).await;
        if seen.contains(text) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{css} never showed {text:?}: {seen:?}");
}

/// Waits until the page has `text` in its source (ten seconds at most). Unlike [`shows`],
/// it holds no element across the wait, so it follows a post's redirect to the next page.
pub async fn page_has(b: &wm_testkit::browser::Browser, text: &str) {
    for _ in 0..100 {
        if b.source().await.contains(text) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the page never had {text:?}: {}", b.url().await);
}
