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
    wm_with(&["serve"], data, env)
}

/// `wm ARGS` for the installation in `data`.
fn wm_with(args: &[&str], data: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wm"));
    cmd.args(args)
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

/// Runs `wm ARGS` to its end; answers whether it succeeded and what it said.
fn run(args: &[&str], data: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = wm_with(args, data, env).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Logs in as admin and creates the local account `name`.
async fn add_user(base: &str, name: &str) {
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": "admin", "password": "admin-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let made = client
        .post(format!("{base}/api/v1/admin/users"))
        .bearer_auth(login["token"].as_str().expect("a token"))
        .json(&json!({"name": name, "password": "password-123", "role": "student"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
}

/// Backup while running, a restore refused while running, a restore after the stop that
/// brings back the state of the backup, and a database of a newer wm refused at start
/// and by restore, all on the embedded SQLite.
#[tokio::test]
async fn backup_restore_and_a_newer_schema() {
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("WM_DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ("WM_ADMIN_PASSWORD", "admin-password"),
    ];
    let first = serve(data.path(), &env);
    add_user(&first.base, "before").await;
    let backup = data.path().join("backup.db");
    let (ok, said) = run(&["backup", backup.to_str().unwrap()], data.path(), &env);
    assert!(ok && backup.is_file(), "{said}");
    // Not over an existing file, and not under a running console.
    let (ok, said) = run(&["backup", backup.to_str().unwrap()], data.path(), &env);
    assert!(!ok && said.contains("exists already"), "{said}");
    let (ok, said) = run(&["restore", backup.to_str().unwrap()], data.path(), &env);
    assert!(!ok && said.contains("already runs"), "{said}");
    // A second console on the same SQLite file is refused the same way.
    let (ok, said) = run(
        &["serve"],
        data.path(),
        &[env[0], env[1], ("WM_LISTEN", "127.0.0.1:0")],
    );
    assert!(!ok && said.contains("already runs"), "{said}");
    add_user(&first.base, "after").await;
    drop(first);

    let (ok, said) = run(&["restore", backup.to_str().unwrap()], data.path(), &env);
    assert!(ok, "{said}");
    let second = serve(data.path(), &env);
    assert_eq!(login(&second.base, "before", "password-123").await, 200);
    assert_eq!(login(&second.base, "after", "password-123").await, 401);
    drop(second);

    // A migration this binary does not know: written by a newer wm.
    let db = data.path().join("wm.db");
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1])\n\
        c.execute(\"INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99999, 'future', 1, x'00', 0)\")\n\
        c.commit()\n";
    let py = Command::new("python3")
        .args(["-c", script, db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let (ok, said) = run(&["serve"], data.path(), &env);
    assert!(!ok && said.contains("newer than this wm knows"), "{said}");
    let newer = data.path().join("newer.db");
    let (ok, said) = run(&["backup", newer.to_str().unwrap()], data.path(), &env);
    assert!(ok, "{said}");
    let (ok, said) = run(&["restore", newer.to_str().unwrap()], data.path(), &env);
    assert!(!ok && said.contains("newer than this wm knows"), "{said}");
}

/// The same on PostgreSQL: `pg_dump` while the console runs, `pg_restore` after.
#[tokio::test]
async fn backup_and_restore_on_postgresql() {
    let admin_url = std::env::var("WM_TEST_POSTGRES_URL")
        .expect("WM_TEST_POSTGRES_URL (scripts/test starts PostgreSQL and sets it)");
    let name = format!("wm_test_{}", wm_testkit::unique("b").replace('-', "_"));
    let created = Command::new("psql")
        .args([
            admin_url.as_str(),
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let url = admin_url.replace("/postgres", &format!("/{name}"));
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("WM_DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ("WM_ADMIN_PASSWORD", "admin-password"),
        ("WM_DATABASE_URL", url.as_str()),
    ];
    let first = serve(data.path(), &env);
    add_user(&first.base, "before").await;
    let backup = data.path().join("backup.pgdump");
    let (ok, said) = run(&["backup", backup.to_str().unwrap()], data.path(), &env);
    assert!(ok && backup.is_file(), "{said}");
    add_user(&first.base, "after").await;
    drop(first);
    let (ok, said) = run(&["restore", backup.to_str().unwrap()], data.path(), &env);
    assert!(ok, "{said}");
    let second = serve(data.path(), &env);
    assert_eq!(login(&second.base, "before", "password-123").await, 200);
    assert_eq!(login(&second.base, "after", "password-123").await, 401);
    drop(second);
    let _ = Command::new("psql")
        .args([admin_url.as_str(), "-qc", &format!("DROP DATABASE {name}")])
        .output();
}

/// A start that fails for a busy port makes no admin account and prints no password; the
/// next start does, after it listens.
#[test]
fn a_busy_port_makes_no_account() {
    let data = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let env = [("WM_DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let (ok, said) = run(
        &["serve"],
        data.path(),
        &[env[0], ("WM_LISTEN", addr.as_str())],
    );
    assert!(!ok && said.contains("cannot listen"), "{said}");
    assert!(!said.contains("Created the local account"), "{said}");
    drop(busy);
    let s = serve(data.path(), &env);
    assert!(printed_password(&s.startup).is_some(), "{}", s.startup);
}

/// HTTPS served by the console itself, a renewed certificate taken without a restart, and
/// JSON log lines.
#[tokio::test]
async fn the_console_serves_https_and_reloads_its_certificate() {
    let data = tempfile::tempdir().unwrap();
    let (old, new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    wm_testkit::make_certificates(old.path());
    wm_testkit::make_certificates(new.path());
    let live = data.path().join("tls");
    std::fs::create_dir(&live).unwrap();
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    std::fs::copy(old.path().join("server.pem"), &cert).unwrap();
    std::fs::copy(old.path().join("server.key"), &key).unwrap();
    let s = serve(
        data.path(),
        &[
            ("WM_DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ("WM_ADMIN_PASSWORD", "admin-password"),
            ("WM_TLS_CERT", cert.to_str().unwrap()),
            ("WM_TLS_KEY", key.to_str().unwrap()),
            ("WM_LOG_FORMAT", "json"),
        ],
    );
    for line in s.startup.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(s.startup.contains("listening on https://"), "{}", s.startup);
    let https = s.base.replacen("http://", "https://", 1);
    let trusting = |ca: &std::path::Path| {
        let pem = std::fs::read(ca).unwrap();
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    };
    let (old_ca, new_ca) = (old.path().join("ca.pem"), new.path().join("ca.pem"));
    let health = |client: reqwest::Client| {
        let url = format!("{https}/healthz");
        async move {
            client
                .get(url)
                .send()
                .await
                .map(|r| r.status().is_success())
        }
    };
    assert!(health(trusting(&old_ca)).await.unwrap());
    assert!(
        health(trusting(&new_ca)).await.is_err(),
        "a certificate of another CA"
    );
    // Plain HTTP on the TLS port gets nowhere.
    assert!(reqwest::get(format!("{}/healthz", s.base)).await.is_err());
    // Renewed in place: new connections get the new certificate.
    std::fs::copy(new.path().join("server.key"), &key).unwrap();
    std::fs::copy(new.path().join("server.pem"), &cert).unwrap();
    let mut renewed = false;
    for _ in 0..50 {
        if let Ok(true) = health(trusting(&new_ca)).await {
            renewed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(renewed, "the renewed certificate was never served");
    assert!(health(trusting(&old_ca)).await.is_err());
    // The session cookie is Secure and __Host- prefixed behind the console's own TLS.
    let login = trusting(&new_ca)
        .post(format!("{https}/api/v1/login"))
        .json(&json!({"username": "admin", "password": "admin-password"}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("__Host-") && cookie.contains("Secure"),
        "{cookie}"
    );
}
