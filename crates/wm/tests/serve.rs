//! `wm serve` as a newcomer meets it: the real binary, configured by `WM_*` variables.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};

struct Serve {
    child: Child,
    base: String,
    /// Everything the process wrote to stderr up to "listening".
    startup: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wm(data: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wm"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WM_DATA_DIR", data)
        .env("WM_INSTANCE", wm_testkit::unique("cli"))
        .env("WM_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts `wm serve` and waits until it says it listens.
fn serve(data: &std::path::Path, env: &[(&str, &str)]) -> Serve {
    let port = wm_testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut all = vec![("WM_LISTEN", listen.as_str())];
    all.extend_from_slice(env);
    let mut child = wm(data, &all)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let startup = wm_testkit::wait_until_listening(&mut child, 30);
    Serve {
        child,
        base: format!("http://{listen}"),
        startup,
    }
}

async fn login(base: &str, user: &str, password: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

/// The generated password, as printed on first start.
fn printed_password(startup: &str) -> Option<String> {
    let mut lines = startup.lines();
    lines.find(|l| l.contains("Created the local account 'admin'"))?;
    lines
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(String::from)
}

#[tokio::test]
async fn first_start_prints_a_generated_admin_password_once() {
    let data = tempfile::tempdir().unwrap();
    let first = serve(data.path(), &[]);
    let password = printed_password(&first.startup).expect("a generated password is printed");
    assert!(password.len() >= 16, "{password}");
    assert_eq!(login(&first.base, "admin", &password).await, 200);
    assert!(
        data.path().join("wm.db").exists(),
        "SQLite in the data directory"
    );
    drop(first);

    let second = serve(data.path(), &[]);
    assert!(
        printed_password(&second.startup).is_none(),
        "printed only once:\n{}",
        second.startup
    );
    assert!(!second.startup.contains(&password));
    assert_eq!(login(&second.base, "admin", &password).await, 200);
    drop(second);

    // WM_ADMIN_PASSWORD sets it at every start.
    let third = serve(
        data.path(),
        &[("WM_ADMIN_PASSWORD", "chosen-by-the-sysadmins")],
    );
    assert_eq!(
        login(&third.base, "admin", "chosen-by-the-sysadmins").await,
        200
    );
    assert_eq!(login(&third.base, "admin", &password).await, 401);
    assert!(
        !third.startup.contains("chosen-by-the-sysadmins"),
        "secrets are never logged"
    );
}

#[tokio::test]
async fn starts_without_docker_and_says_so() {
    let data = tempfile::tempdir().unwrap();
    let s = serve(
        data.path(),
        &[
            ("WM_DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ("WM_ADMIN_PASSWORD", "admin-password"),
        ],
    );
    let health: Value = reqwest::get(format!("{}/healthz", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["docker"]["reachable"], false, "{health}");
}

#[test]
fn a_bad_setting_stops_the_start_with_a_message_naming_it() {
    let data = tempfile::tempdir().unwrap();
    for (var, value, expect) in [
        ("WM_PORT_RANGE", "60000-50000", "port range"),
        ("WM_LISTEN", "not-an-address", "listen"),
        ("WM_MEMORY_LIMIT", "a lot", "memory limit"),
        ("WM_ADMIN_PASSWORD", "short", "admin password"),
    ] {
        let out = wm(data.path(), &[(var, value)]).output().unwrap();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{var}={value}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wm"))
        .args(["serve", "--config", "/nonexistent/wm.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/wm.toml"));
}

#[tokio::test]
async fn a_closed_log_pipe_does_not_stop_the_service() {
    let data = tempfile::tempdir().unwrap();
    let mut s = serve(
        data.path(),
        &[
            ("WM_DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ("WM_ADMIN_PASSWORD", "admin-password"),
            // Every request writes log lines.
            ("WM_LOG", "debug"),
        ],
    );
    // `serve` stopped reading the log once the service listened: its reader is gone, so
    // the pipe is closed and every later log line fails to be written.
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let answer = client
            .post(format!("{}/api/v1/login", s.base))
            .json(&json!({"username": "admin", "password": "wrong-password"}))
            .send()
            .await
            .expect("the service still answers");
        assert_eq!(answer.status(), reqwest::StatusCode::UNAUTHORIZED);
    }
    let health = client
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .expect("the service still answers");
    assert!(health.status().is_success());
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "the service ended when its log could not be written"
    );
}
