//! The console's front door against clients that abuse it: multipart floods, slow and idle
//! connections, invented methods and paths for the metrics, open redirects, login
//! guessing and sprays (with and without a trusted proxy), and the security headers of
//! every answer.

mod common;

use common::*;
use reqwest::header::{COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Descriptors open in this process, where the console runs.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A multipart body of `parts` one-byte files, written by hand: no client library
/// would send so many parts for us.
fn flood_body(boundary: &str, parts: usize) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n/tmp\r\n")
            .as_bytes(),
    );
    for i in 0..parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f{i}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\nx\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test]
async fn a_flood_of_upload_parts_is_refused_while_others_upload() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    let (bob, bob_t) = app.student().await;
    app.create(&alice_t, json!({"name": "flood", "image": image}))
        .await;
    app.create(&bob_t, json!({"name": "files", "image": image}))
        .await;
    let fds_before = open_fds();

    let boundary = "wmfloodboundary";
    let flood = app
        .client
        .post(app.url(&format!("/api/v1/containers/{alice}-flood/files")))
        .bearer_auth(&alice_t)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(flood_body(boundary, 20_000))
        .send();
    let form = reqwest::multipart::Form::new().text("path", "/tmp").part(
        "file",
        reqwest::multipart::Part::bytes(b"bob's file\n".to_vec()).file_name("bob.txt"),
    );
    let normal = app
        .client
        .post(app.url(&format!("/api/v1/containers/{bob}-files/files")))
        .bearer_auth(&bob_t)
        .multipart(form)
        .send();
    let (flood, normal) = tokio::join!(flood, normal);

    // The flood is refused, clearly, and wrote nothing.
    let flood = flood.expect("the console answers the flood");
    let status = flood.status();
    let body: Value = flood.json().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "too_many_files", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 64 files"),
        "{body}"
    );
    let (_, out) = app
        .post(
            &format!("/api/v1/containers/{alice}-flood/exec"),
            &alice_t,
            json!({"cmd": ["ls", "/tmp"]}),
        )
        .await;
    assert_eq!(out["stdout"], "", "nothing of the flood was written: {out}");

    // Bob's upload, at the same time, went through.
    let normal = normal.expect("the console answers bob");
    assert_eq!(normal.status(), StatusCode::CREATED);
    let (_, out) = app
        .post(
            &format!("/api/v1/containers/{bob}-files/exec"),
            &bob_t,
            json!({"cmd": ["cat", "/tmp/bob.txt"]}),
        )
        .await;
    assert_eq!(out["stdout"], "bob's file\n", "{out}");

    // The host is up and the server did not pile up descriptors.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["docker"]["reachable"], true, "{health}");
    let fds_after = open_fds();
    assert!(
        fds_after < fds_before + 100,
        "descriptors went from {fds_before} to {fds_after}"
    );

    // Exactly the limit of files is still an upload.
    let mut form = reqwest::multipart::Form::new().text("path", "/tmp");
    for i in 0..64 {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(vec![b'x']).file_name(format!("f{i}")),
        );
    }
    let r = app
        .client
        .post(app.url(&format!("/api/v1/containers/{bob}-files/files")))
        .bearer_auth(&bob_t)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_server_without_free_upload_files_answers_busy_not_500() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.upload_max_open_files = 1;
    let app = spawn_with(config, data).await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    app.create(&alice_t, json!({"name": "busy", "image": image}))
        .await;
    // One file and the archive need two temporary files; the server has one.
    let form = reqwest::multipart::Form::new().text("path", "/tmp").part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x"),
    );
    let r = app
        .client
        .post(app.url(&format!("/api/v1/containers/{alice}-busy/files")))
        .bearer_auth(&alice_t)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "busy", "{body}");
}

/// A console with small connection limits, so the tests of them are quick.
async fn spawn_limited(max_connections: usize) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.http.header_read_timeout_secs = 1;
    config.http.idle_timeout_secs = 2;
    config.http.max_connections = max_connections;
    spawn_with(config, data).await
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn a_client_dripping_its_headers_is_disconnected() {
    let app = spawn_limited(64).await;
    let stream = TcpStream::connect(addr(&app)).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    // Sixty header bytes at one a second would take a minute to finish.
    let drip = tokio::spawn(async move {
        wr.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .ok()?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for _ in 0..60 {
            tick.tick().await;
            wr.write_all(b"a").await.ok()?;
        }
        wr.write_all(b"\r\n\r\n").await.ok()
    });
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                // Whatever it answers, it must not be the health of a finished request.
                Ok(n) => assert!(
                    !String::from_utf8_lossy(&buf[..n]).contains("200 OK"),
                    "the slow request was served"
                ),
            }
        }
    })
    .await;
    assert_eq!(
        closed,
        Ok(true),
        "the connection was still open after 30 s of dripping"
    );
    drip.abort();
    // Others are served as before.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_body_that_stalls_ends_after_the_idle_time() {
    let app = spawn_limited(64).await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    // A body announced at 100 bytes, of which 10 come.
    stream
        .write_all(
            b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\"",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the stalled request still held its connection after 30 s"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
}

#[tokio::test]
async fn idle_connections_over_the_cap_wait_and_healthz_answers_when_they_time_out() {
    let mut app = spawn_limited(4).await;
    // Fill the cap with sockets that never send a byte (plain sockets: their state is
    // read without waiting, by the system call itself).
    let idle: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            let s = std::net::TcpStream::connect(addr(&app)).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let is_closed = |mut s: &std::net::TcpStream| {
        use std::io::Read;
        let mut b = [0u8; 16];
        match s.read(&mut b) {
            Ok(0) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    };
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let r = fresh.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // It was answered only once idle connections had been closed to make room.
    let closed = idle.iter().filter(|s| is_closed(s)).count();
    assert!(
        closed >= 1,
        "healthz was served while the cap was full of idle connections"
    );
    // Every idle one is closed in the end.
    eventually(30, "every idle connection is closed", || {
        let all = idle.iter().all(&is_closed);
        async move { all }
    })
    .await;
    // A kept-alive connection does not hold up a graceful shutdown.
    let keep = reqwest::Client::new();
    let r = keep.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(30), app.stop_server())
        .await
        .expect("the server shuts down with a kept-alive connection open");
    assert!(TcpStream::connect(addr(&app)).await.is_err());
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metrics_series() {
    let app = spawn_app().await;
    let series = |text: &str, label: &str| -> BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(&format!("{label}=\"")))
            .map(|(_, rest)| rest.split('"').next().unwrap().to_string())
            .collect()
    };
    // Every standard path once, so the series we expect exist before we measure.
    for m in ["GET", "POST", "BREW"] {
        let _ = app
            .client
            .request(
                Method::from_bytes(m.as_bytes()).unwrap(),
                app.url("/nowhere"),
            )
            .send()
            .await
            .unwrap();
    }
    let before = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..2000 {
        let method = Method::from_bytes(format!("X{i}M").as_bytes()).unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        let path = if i % 2 == 0 {
            format!("/api/v1/{id}")
        } else {
            format!("/{id}/{i}")
        };
        sent.push(id);
        let r = app.client.request(method, app.url(&path)).send().await;
        assert!(r.is_ok(), "request {i} got no answer");
    }
    let after = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let methods = series(&after, "method");
    assert!(
        methods.len() <= 10,
        "{} method values, e.g. {:?}",
        methods.len(),
        methods.iter().take(12).collect::<Vec<_>>()
    );
    assert!(methods.contains("other"), "{methods:?}");
    assert!(!methods.iter().any(|m| m.starts_with('X')), "{methods:?}");
    let routes = series(&after, "route");
    assert!(
        sent.iter().all(|p| !after.contains(p.as_str())),
        "a path became a route label: {routes:?}"
    );
    assert!(routes.len() <= 20, "route values: {routes:?}");
    // Same series, bigger counts: the body barely grows.
    assert!(
        after.len() < before.len() + 8 * 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
}

#[tokio::test]
async fn the_language_switch_goes_back_only_to_this_site() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let back = |target: &'static str| {
        let url = app.url(&format!("/language?to=ja&back={target}"));
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{target}");
            r.headers()[LOCATION].to_str().unwrap().to_string()
        }
    };
    assert_eq!(
        back("%2Fimages%3Fnotice%3Dsaved").await,
        "/images?notice=saved"
    );
    for bad in [
        "%2F%09%2Fevil.example%3A8080%2F",
        "/%09/evil.example:8080/",
        "%2F%2Fevil.example%2F",
        "%2F%5Cevil.example%2F",
        "%2F%0A%2Fevil.example%2F",
        "%2F%2509%2Fevil.example%2F",
        "%2F%252F%2Fevil.example",
        "https%3A%2F%2Fevil.example%2F",
        "%2F%20%2Fevil.example",
    ] {
        assert_eq!(back(bad).await, "/", "{bad}");
    }
}

/// The four headers every answer carries.
fn assert_security_headers(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    let get = |name: &str| {
        h.get(name)
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "same-origin", "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    let csp = get("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = spawn_app().await;
    let (_, alice_t) = app.student().await;
    let get = |path: &str, token: Option<&str>| {
        let mut req = app.client.get(app.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let page = get("/login", None).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_security_headers(&page, "the login page");
    let page = app
        .client
        .get(app.url("/containers"))
        .header(COOKIE, format!("wm_session={alice_t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_security_headers(&page, "a logged-in page");
    let api = get("/api/v1/me", Some(&alice_t)).await.unwrap();
    assert_eq!(api.status(), StatusCode::OK);
    assert_security_headers(&api, "an API answer");
    let error = get("/api/v1/me", None).await.unwrap();
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    assert_security_headers(&error, "an API error");
    let missing = get("/api/v1/no-such-thing", None).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_security_headers(&missing, "an API 404");
    let missing = get("/no-such-page", None).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_security_headers(&missing, "a page 404");
    let asset = get("/assets/progress.js", None).await.unwrap();
    assert_security_headers(&asset, "the script");
}

async fn api_login(
    app: &TestApp,
    user: &str,
    password: &str,
    xff: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": user, "password": password}));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap()
}

/// Logs in through the web form; answers the status (303 to /containers on success).
async fn form_login(app: &TestApp, user: &str, password: &str) -> StatusCode {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = post_login_form(app, &client, user, password).await;
    if r.status() == StatusCode::SEE_OTHER {
        assert_eq!(r.headers()[LOCATION], "/containers");
    }
    r.status()
}

#[tokio::test]
async fn one_students_typos_lock_nobody_else_out_but_a_spray_is_refused() {
    let app = spawn_app().await;
    let (alice, _) = app.student().await;
    let (bob, _) = app.student().await;
    let (carol, _) = app.student().await;
    for _ in 0..10 {
        let r = api_login(&app, &alice, "wrong-password", None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Alice from here is refused, even with her password...
    let r = api_login(&app, &alice, "password-123", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...while Bob, from the same address, logs in at once, by the API and the form.
    let r = api_login(&app, &bob, "password-123", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        form_login(&app, &carol, "password-123").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        form_login(&app, &bob, "password-123").await,
        StatusCode::SEE_OTHER
    );

    // A spray of sixty names from one address is refused before its end.
    let mut refused = None;
    for i in 0..60 {
        let r = api_login(&app, &format!("spray{i}x"), "Winter2026!", None).await;
        match r.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                let wait: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&wait), "{wait}");
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["error"]["code"], "rate_limited");
                refused = Some(i);
                break;
            }
            other => panic!("spray {i}: {other}"),
        }
    }
    let refused = refused.expect("a spray of 60 names was never refused");
    assert!(refused >= 40, "refused after only {refused} names");
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_a_trusted_proxy() {
    // Behind a trusted proxy (the tests connect from 127.0.0.1), each forwarded client
    // is counted on its own.
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.trusted_proxies = vec![wm_console::config::parse_cidr("127.0.0.0/8").unwrap()];
    let proxied = spawn_with(config, data).await;
    let (alice, _) = proxied.student().await;
    for _ in 0..10 {
        let r = api_login(&proxied, &alice, "wrong", Some("203.0.113.1")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = api_login(&proxied, &alice, "password-123", Some("203.0.113.1")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // A client cannot escape by naming another address first: the proxy's entry counts.
    let r = api_login(
        &proxied,
        &alice,
        "password-123",
        Some("198.51.100.9, 203.0.113.1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = api_login(&proxied, &alice, "password-123", Some("203.0.113.2")).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "another client behind the proxy"
    );

    // Without trust, the header is the client's own word and is ignored.
    let plain = spawn_app().await;
    let (bob, _) = plain.student().await;
    for i in 0..10 {
        let r = api_login(&plain, &bob, "wrong", Some(&format!("203.0.113.{i}"))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = api_login(&plain, &bob, "password-123", Some("198.51.100.77")).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "X-Forwarded-For from an untrusted peer chose the address"
    );
}
