//! Several Docker hosts: `wm console` in front of `wm agent docker` processes, all real
//! binaries on loopback, against this machine's one Docker engine. Each agent has its own
//! host id, port range and `wm.instance` label, so on the shared engine each sees only
//! its own containers, as it would on a host of its own.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "agent-token-for-the-tests-0123456789";
const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A running `wm` process, killed when dropped.
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
    wm_testkit::wait_until_listening(&mut child, 30);
    Proc { child }
}

/// One docker agent: its id, port range, instance label and configuration.
struct Agent {
    id: String,
    instance: String,
    range: (u16, u16),
    port: u16,
    config: PathBuf,
    env: Vec<(String, String)>,
    proc: Option<Proc>,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(id: &str, first_port: u16, labels: &str, extra: &[(&str, &str)]) -> Agent {
        wm_testkit::ensure_test_image();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!("[docker.labels]\n\"{}\" = \"1\"\n", wm_testkit::TEST_LABEL),
        )
        .unwrap();
        let instance = wm_testkit::unique("ag");
        let range = (first_port, first_port + 49);
        let mut env: Vec<(String, String)> = [
            ("WM_AGENT_TOKEN", TOKEN.to_string()),
            ("WM_HOST_ID", id.to_string()),
            ("WM_INSTANCE", instance.clone()),
            ("WM_PORT_RANGE", format!("{}-{}", range.0, range.1)),
            ("WM_PUBLISH_ADDRESS", "127.0.0.1".to_string()),
            ("WM_HOST_LABELS", labels.to_string()),
            // No VMs unless a test asks (the extra variables come after and win).
            ("WM_VM", "false".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut a = Agent {
            id: id.into(),
            instance,
            range,
            port: wm_testkit::free_port(),
            config,
            env,
            proc: None,
            _dir: dir,
        };
        a.resume();
        a
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        self.proc = None;
    }

    /// Starts the agent again on the same port.
    fn resume(&mut self) {
        let config = self.config.display().to_string();
        self.proc = Some(start(
            &["agent", "docker", "--config", &config],
            self.port,
            &self.env,
        ));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.proc = None;
        wm_testkit::remove_labelled("wm.instance", &self.instance);
    }
}

/// `wm console` in front of some agents.
struct Console {
    proc: Option<Proc>,
    data: tempfile::TempDir,
    env: Vec<(String, String)>,
    port: u16,
    http: Client,
    admin: String,
}

impl Console {
    async fn start(agents: &[&Agent], extra: &[(&str, &str)]) -> Console {
        let list: Vec<String> = agents
            .iter()
            .map(|a| format!("{}={}", a.id, a.url()))
            .collect();
        let mut env: Vec<(String, String)> = [
            ("WM_AGENTS", list.join(" ")),
            ("WM_AGENT_TOKEN", TOKEN.to_string()),
            ("WM_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("WM_HOST_CHECK_INTERVAL_SECS", "1".to_string()),
            ("WM_RECONCILE_INTERVAL_SECS", "2".to_string()),
            ("WM_MEMORY_LIMIT", "64m".to_string()),
            ("WM_CPU_LIMIT", "0.5".to_string()),
            ("WM_PIDS_LIMIT", "64".to_string()),
            ("WM_LOGIN_RATE_LIMIT", "0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let data = tempfile::tempdir().unwrap();
        env.push(("WM_DATA_DIR".into(), data.path().display().to_string()));
        let mut c = Console {
            proc: None,
            data,
            env,
            port: wm_testkit::free_port(),
            // No kept connections: a restarted console is a new process on the same port.
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            admin: String::new(),
        };
        c.restart().await;
        c
    }

    async fn restart(&mut self) {
        self.proc = None;
        self.proc = Some(start(&["console"], self.port, &self.env));
        self.admin = self.login("admin", ADMIN_PASSWORD).await;
    }

    fn data(&self) -> &Path {
        self.data.path()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("http://127.0.0.1:{}{path}", self.port))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn login(&self, user: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/login",
                "",
                Some(json!({"username": user, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// A new student, logged in, with no quota (these tests make many containers each).
    async fn student(&self) -> (String, String) {
        let name = wm_testkit::unique("s");
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/admin/users",
                &self.admin,
                Some(json!({"name": name, "password": "student-password", "role": "student"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let no_limit = json!({"containers": -1, "running": -1, "cpus": -1, "memory": -1,
            "gpus": -1, "ports": -1, "builds": -1, "storage": -1});
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/api/v1/admin/users/{name}/quota"),
                &self.admin,
                Some(no_limit),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = self.login(&name, "student-password").await;
        (name, token)
    }

    async fn create(&self, token: &str, body: Value) -> Value {
        let (status, c) = self
            .call(Method::POST, "/api/v1/containers", token, Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        c
    }

    async fn hosts(&self) -> HashMap<String, Value> {
        let (status, hosts) = self
            .call(Method::GET, "/api/v1/admin/hosts", &self.admin, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{hosts}");
        hosts
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["id"].as_str().unwrap().to_string(), h.clone()))
            .collect()
    }

    /// Waits until every one of `hosts` has reported `bytes` of committed memory.
    async fn wait_until_committed(&self, hosts: &[&str], bytes: u64) {
        for _ in 0..100 {
            let seen = self.hosts().await;
            if hosts
                .iter()
                .all(|h| seen[*h]["memory_committed"].as_u64() == Some(bytes))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the hosts never reported {bytes} bytes committed: {:?}",
            self.hosts().await
        );
    }

    /// Waits until the console sees `host` as `status` (`up` or `down`).
    async fn wait_host(&self, host: &str, status: &str) {
        for _ in 0..100 {
            if self.hosts().await[host]["status"] == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "host {host} never became {status}: {:?}",
            self.hosts().await
        );
    }
}

fn host_port(c: &Value) -> u16 {
    c["ports"][0]["host"].as_u64().unwrap() as u16
}

#[tokio::test]
async fn placement_spreads_requires_labels_and_respects_drains() {
    let h1 = Agent::start("h1", 41000, "", &[]);
    let h2 = Agent::start("h2", 41100, "", &[]);
    let h3 = Agent::start("h3", 41200, "gpu", &[]);
    let console = Console::start(&[&h1, &h2, &h3], &[]).await;
    let image = wm_testkit::TEST_IMAGE;

    // Fewest containers first, ties by id: h1, h2, h3, then h1 again (once every host
    // has reported the memory its container holds; free memory breaks ties before ids).
    let mut placed = Vec::new();
    for i in 0..4 {
        if i == 3 {
            console
                .wait_until_committed(&["h1", "h2", "h3"], 64 << 20)
                .await;
        }
        let (_, token) = console.student().await;
        let c = console
            .create(
                &token,
                json!({"name": format!("c{i}"), "image": image, "ports": "80"}),
            )
            .await;
        placed.push(c);
    }
    let hosts: Vec<&str> = placed.iter().map(|c| c["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["h1", "h2", "h3", "h1"]);
    for c in &placed {
        let agent = [&h1, &h2, &h3]
            .into_iter()
            .find(|a| c["host"] == a.id.as_str())
            .unwrap();
        let port = host_port(c);
        assert!(
            (agent.range.0..=agent.range.1).contains(&port),
            "{port} is from {}'s own range",
            agent.id
        );
        // The link goes to the host's address (here the agent's, from WM_AGENTS).
        assert_eq!(c["address"], "127.0.0.1");
        assert_eq!(c["status"], "running");
    }
    let ports: HashSet<u16> = placed.iter().map(host_port).collect();
    assert_eq!(ports.len(), 4, "no host port twice");
    // The container really answers on the port its host lent.
    let body = reqwest::get(format!("http://127.0.0.1:{}/", host_port(&placed[1])))
        .await
        .unwrap()
        .status();
    assert!(body.is_success() || body == StatusCode::NOT_FOUND, "{body}");

    // A label the request requires.
    let (_, token) = console.student().await;
    let gpu = console
        .create(
            &token,
            json!({"name": "g", "image": image, "requires": "gpu"}),
        )
        .await;
    assert_eq!(gpu["host"], "h3");
    let (status, body) = console
        .call(
            Method::POST,
            "/api/v1/containers",
            &token,
            Some(json!({"name": "t", "image": image, "requires": ["tpu"]})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("tpu"));
    let (status, body) = console
        .call(
            Method::POST,
            "/api/v1/containers",
            &token,
            Some(json!({"name": "t", "image": image, "requires": "no/such label"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Drained hosts get nothing new; they keep what they have.
    for h in ["h1", "h2"] {
        let (status, view) = console
            .call(
                Method::PATCH,
                &format!("/api/v1/admin/hosts/{h}"),
                &console.admin,
                Some(json!({"drained": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["drained"], true);
    }
    let c = console
        .create(&token, json!({"name": "d", "image": image}))
        .await;
    assert_eq!(
        c["host"], "h3",
        "h3 has the most containers but is the only one left"
    );
    let hosts = console.hosts().await;
    assert_eq!(hosts["h1"]["containers"], 2);
    assert_eq!(hosts["h3"]["containers"], 3);
    assert_eq!(hosts["h3"]["labels"], json!(["gpu"]));
    assert_eq!(
        console
            .call(
                Method::PATCH,
                "/api/v1/admin/hosts/nope",
                &console.admin,
                Some(json!({"drained": true}))
            )
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, token) = console.student().await;
    assert_eq!(
        console
            .call(Method::GET, "/api/v1/admin/hosts", &token, None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_killed_agent_is_routed_around_and_reconciled_when_it_returns() {
    let mut h1 = Agent::start("h1", 41300, "", &[]);
    let h2 = Agent::start("h2", 41400, "", &[]);
    let console = Console::start(&[&h1, &h2], &[]).await;
    let image = wm_testkit::TEST_IMAGE;
    let (owner, token) = console.student().await;
    let on_h1 = console
        .create(&token, json!({"name": "a", "image": image, "ports": [80]}))
        .await;
    assert_eq!(on_h1["host"], "h1");
    let name = on_h1["name"].as_str().unwrap().to_string();
    // The engine's name for it: `<instance>.<owner>.<short name>`.
    let engine_name = format!("{}.{owner}.a", h1.instance);
    assert!(wm_testkit::inspect("container", &engine_name).is_some());

    h1.kill();
    console.wait_host("h1", "down").await;
    // Its container is still there, as unknown; calls on it answer 503.
    let (status, c) = console
        .call(
            Method::GET,
            &format!("/api/v1/containers/{name}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "unknown");
    let (status, list) = console
        .call(Method::GET, "/api/v1/containers", &token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["status"], "unknown");
    for (method, path) in [
        (Method::POST, format!("/api/v1/containers/{name}/stop")),
        (Method::POST, format!("/api/v1/containers/{name}/exec")),
        (Method::DELETE, format!("/api/v1/containers/{name}")),
    ] {
        let (status, body) = console
            .call(method, &path, &token, Some(json!({"cmd": "true"})))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("h1"),
            "{body}"
        );
    }
    // New containers go to the host that answers.
    let on_h2 = console
        .create(&token, json!({"name": "b", "image": image, "ports": [80]}))
        .await;
    assert_eq!(on_h2["host"], "h2");
    let (_, health) = console.call(Method::GET, "/healthz", "", None).await;
    assert_eq!(health["docker"]["reachable"], false, "{health}");
    assert!(health["docker"]["error"].as_str().unwrap().contains("h1"));

    // While the agent is away, the container stops on its engine.
    let out = wm_testkit::docker(&["stop", "-t", "1", &engine_name]);
    assert!(out.status.success());
    h1.resume();
    console.wait_host("h1", "up").await;
    let mut status = Value::Null;
    for _ in 0..50 {
        let (_, c) = console
            .call(
                Method::GET,
                &format!("/api/v1/containers/{name}"),
                &token,
                None,
            )
            .await;
        status = c["status"].clone();
        if status == "exited" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "exited", "reconciled from the engine");
    let (_, list) = console
        .call(Method::GET, "/api/v1/containers", &token, None)
        .await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "nothing lost or duplicated: {list}");
    assert_eq!(list[0]["ports"], on_h1["ports"], "its port is kept");
    // And the container is usable again through its agent.
    let (status, c) = console
        .call(
            Method::POST,
            &format!("/api/v1/containers/{name}/start"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "running");
    assert_eq!(host_port(&c), host_port(&on_h1));
    let (status, _) = console
        .call(
            Method::DELETE,
            &format!("/api/v1/containers/{name}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(wm_testkit::inspect("container", &engine_name).is_none());
}

#[tokio::test]
async fn a_console_restart_loses_nothing() {
    let h1 = Agent::start("h1", 41500, "", &[]);
    let h2 = Agent::start("h2", 41600, "", &[]);
    let mut console = Console::start(&[&h1, &h2], &[]).await;
    let image = wm_testkit::TEST_IMAGE;
    let (alice, _) = console.student().await;
    let token = console.login(&alice, "student-password").await;
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(
            console
                .create(
                    &token,
                    json!({"name": format!("c{i}"), "image": image, "ports": "80 8080"}),
                )
                .await,
        );
    }
    console.restart().await;
    let token = console.login(&alice, "student-password").await;
    let (status, after) = console
        .call(Method::GET, "/api/v1/containers", &token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = after.as_array().unwrap();
    assert_eq!(after.len(), 3);
    for (b, a) in before.iter().zip(after) {
        for field in ["name", "host", "ports", "image", "status"] {
            assert_eq!(a[field], b[field], "{field} of {}", b["name"]);
        }
    }
    // The agents' port pools know what they lent: new ports are new.
    let c = console
        .create(
            &token,
            json!({"name": "new", "image": image, "ports": "80"}),
        )
        .await;
    let used: HashSet<u64> = before
        .iter()
        .flat_map(|c| {
            c["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["host"].as_u64().unwrap())
        })
        .collect();
    assert!(!used.contains(&(host_port(&c) as u64)));
    assert!(console.data().join("wm.db").exists());
}

#[tokio::test]
async fn agents_refuse_requests_without_the_right_token() {
    let h1 = Agent::start("h1", 41700, "", &[]);
    let http = Client::new();
    let url = h1.url();
    let health: Value = http
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok", "host": "h1"}));
    for token in [None, Some("wrong"), Some(&TOKEN[1..])] {
        for (method, path) in [
            (Method::GET, "/v1/containers"),
            (Method::POST, "/v1/containers"),
            (Method::GET, "/v1/info"),
            (Method::DELETE, "/v1/images?ref=busybox"),
            (Method::GET, "/v1/no/such/endpoint"),
        ] {
            let mut req = http.request(method, format!("{url}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{path} with {token:?}"
            );
        }
    }
    // With the token: the agent's own answers, and bad input is refused.
    let ok = http
        .get(format!("{url}/v1/containers"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let bad = http
        .get(format!("{url}/v1/containers/..%2Fetc"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error(), "{}", bad.status());

    // A console with the wrong token sees the host as down, and says why.
    let console = Console::start(&[&h1], &[("WM_AGENT_TOKEN", "another-token-0123456789")]).await;
    let (_, health) = console.call(Method::GET, "/healthz", "", None).await;
    assert_eq!(health["hosts"][0]["reachable"], false, "{health}");
    assert!(
        health["hosts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("refused the console's agent token"),
        "{health}"
    );
}

#[tokio::test]
async fn agents_over_mutual_tls() {
    let certs = tempfile::tempdir().unwrap();
    wm_testkit::make_certificates(certs.path());
    let file = |n: &str| certs.path().join(n).display().to_string();
    let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
    let h1 = Agent::start(
        "h1",
        41800,
        "",
        &[
            ("WM_AGENT_TLS_CERT", &cert),
            ("WM_AGENT_TLS_KEY", &key),
            ("WM_AGENT_TLS_CLIENT_CA", &ca),
        ],
    );
    let https = format!("https://127.0.0.1:{}", h1.port);
    let (client_cert, client_key) = (file("client.pem"), file("client.key"));
    // The agent list of the extra variables replaces the (empty) one from the list.
    let console = Console::start(
        &[],
        &[
            ("WM_AGENTS", &format!("h1={https}")),
            ("WM_AGENTS_CA", &ca),
            ("WM_AGENTS_CLIENT_CERT", &client_cert),
            ("WM_AGENTS_CLIENT_KEY", &client_key),
        ],
    )
    .await;
    console.wait_host("h1", "up").await;
    let (alice, token) = console.student().await;
    let c = console
        .create(
            &token,
            json!({"name": "tls", "image": wm_testkit::TEST_IMAGE, "ports": "80"}),
        )
        .await;
    assert_eq!(c["host"], "h1");
    assert_eq!(c["status"], "running");

    // An interactive session crosses the agent's mutual TLS too.
    {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::Message;
        let url = format!(
            "ws://127.0.0.1:{}/api/v1/containers/{alice}-tls/terminal",
            console.port
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("the session opens");
        ws.send(Message::Binary(b"echo $((6*7))\n".to_vec().into()))
            .await
            .unwrap();
        let mut seen = String::new();
        let answered = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Binary(b) = msg {
                    seen.push_str(&String::from_utf8_lossy(&b));
                }
                if seen.contains("42") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(answered, Ok(true), "{seen}");
    }

    // A client that opens a connection and never says a word holds up nobody else's
    // handshake (it would be dropped only after 10 s).
    let _stalled = std::net::TcpStream::connect(("127.0.0.1", h1.port)).unwrap();
    let identity = reqwest::Identity::from_pem(
        &[
            std::fs::read(&client_cert).unwrap(),
            std::fs::read(&client_key).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let with_cert = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .identity(identity)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let health = with_cert
        .get(format!("{https}/healthz"))
        .send()
        .await
        .expect("answered while another client stalls its handshake");
    assert_eq!(health.status(), StatusCode::OK);

    // Without a client certificate, no connection at all.
    let ca_pem = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let no_cert = Client::builder()
        .add_root_certificate(ca_pem)
        .build()
        .unwrap();
    assert!(no_cert
        .get(format!("{https}/healthz"))
        .send()
        .await
        .is_err());
    // Plain HTTP to the TLS port gets nothing either.
    assert!(Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", h1.port))
        .bearer_auth(TOKEN)
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn an_idle_container_behind_an_agent_is_stopped_for_it() {
    let h1 = Agent::start("h1", 41800, "", &[]);
    let console = Console::start(
        &[&h1],
        &[
            ("WM_RECLAIM_INTERVAL_SECS", "1"),
            ("WM_IDLE_STOP_AFTER", "3s"),
        ],
    )
    .await;
    let (alice, _) = console.student().await;
    let token = console.login(&alice, "student-password").await;
    let c = console
        .create(
            &token,
            json!({"name": "idle", "image": wm_testkit::TEST_IMAGE}),
        )
        .await;
    let name = c["name"].as_str().unwrap().to_string();
    // Its activity is sampled through the agent; the engine's stop takes its time-out.
    for _ in 0..600 {
        let (_, c) = console
            .call(
                Method::GET,
                &format!("/api/v1/containers/{name}"),
                &token,
                None,
            )
            .await;
        if c["stop_reason"] == "idle" && c["status"] != "running" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the idle container behind the agent was never stopped");
}

#[tokio::test]
async fn images_built_through_an_agent_are_scanned_there() {
    let h1 = Agent::start("h1", 41900, "", &[]);
    // ClamAV with one signature, for the EICAR test file (freshclam cannot fetch any here).
    let db = tempfile::tempdir().unwrap();
    let hex: String = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        db.path().join("test.ndb"),
        format!("Eicar-Test-Signature:0:*:{hex}\n"),
    )
    .unwrap();
    let db_path = db.path().display().to_string();
    let console = Console::start(&[&h1], &[("WM_SCAN_CLAMAV_DATABASE", &db_path)]).await;
    let (alice, token) = console.student().await;
    let eicar = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    for (name, run, want) in [
        ("clean:1", "true".to_string(), "clean"),
        (
            "eicar:1",
            format!("printf '%s' '{eicar}' > /e.txt"),
            "flagged",
        ),
    ] {
        let form = reqwest::multipart::Form::new().text("name", name).text(
            "dockerfile",
            format!("FROM {}\nRUN {run}\n", wm_testkit::TEST_IMAGE),
        );
        let text = console
            .http
            .post(format!(
                "http://127.0.0.1:{}/api/v1/images/build",
                console.port
            ))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["status"], "done", "{text}");
        assert_eq!(last["image"]["scan"]["status"], want, "{text}");
        assert!(text.contains("scanning with clamav"), "{text}");
    }
    let (status, body) = console
        .call(
            Method::POST,
            "/api/v1/containers",
            &token,
            Some(json!({"name": "web", "image": format!("wm/{alice}/eicar:1")})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "image_quarantined");
    // The containers the file systems were exported from are gone.
    let left = wm_testkit::docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=wm.instance={}", h1.instance),
        "--filter",
        "label=wm.kind=image-scan",
    ]);
    assert!(left.stdout.is_empty(), "scan containers left behind");
    for r in ["clean:1", "eicar:1"] {
        wm_testkit::docker(&["rmi", "-f", &format!("wm/{alice}/{r}")]);
    }
}

/// A real agent on a machine with libvirt lends VMs through the same protocol and says so;
/// the console keeps a new VM image on it, never on the agent without VMs, and removes it
/// there.
#[tokio::test]
async fn an_agent_with_libvirt_lends_vms_beside_its_containers() {
    if !wm_testkit::libvirt_answers() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libvirt's system daemon does not answer (scripts/test starts it)"
        );
        return;
    }
    struct Storage(PathBuf);
    impl Drop for Storage {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let storage = Storage(Path::new("/var/lib/libvirt/images").join(wm_testkit::unique("agvm")));
    let storage_env = storage.0.display().to_string();
    let plain = Agent::start("plain", 42000, "", &[]);
    let vms = Agent::start(
        "vmhost",
        42100,
        "",
        &[
            ("WM_VM", "true"),
            ("WM_VM_DOMAIN_TYPE", "qemu"),
            ("WM_VM_STORAGE_DIR", &storage_env),
        ],
    );
    let console = Console::start(&[&plain, &vms], &[]).await;
    for (agent, lends) in [(&plain, false), (&vms, true)] {
        let info: Value = console
            .http
            .get(format!("{}/v1/info", agent.url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["vms"], lends, "{}: {info}", agent.id);
    }
    let (alice, token) = console.student().await;
    let form = reqwest::multipart::Form::new().text("name", "blank").part(
        "file",
        reqwest::multipart::Part::bytes(vec![0u8; 1 << 20]).file_name("disk"),
    );
    let resp = console
        .http
        .post(format!(
            "http://127.0.0.1:{}/api/v1/vm-images",
            console.port
        ))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let image: Value = resp.json().await.unwrap();
    assert_eq!(image["host"], "vmhost", "{image}");
    assert_eq!(image["format"], "raw", "{image}");
    let kept = storage.0.join("images").join(&alice).join("blank");
    assert!(kept.exists(), "kept by the agent's host");
    // Nothing of the upload is left in the agent's spool.
    let spool = storage.0.join("incoming");
    assert!(std::fs::read_dir(&spool).map_or(true, |mut d| d.next().is_none()));
    let (status, body) = console
        .call(Method::DELETE, "/api/v1/vm-images/blank", &token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(!kept.exists());
}
