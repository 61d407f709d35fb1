//! Images against the real engine and a real local registry: the catalog, sharing from
//! both sides, builds (also failing ones), pulls (also of a missing image), removal.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use wm_testkit::{docker, inspect, unique, Registry};

async fn pull(app: &TestApp, token: &str, image: &str) -> (StatusCode, Vec<Value>) {
    let resp = app
        .client
        .post(app.url("/api/v1/images/pull"))
        .bearer_auth(token)
        .json(&json!({"image": image}))
        .send()
        .await
        .unwrap();
    ndjson(resp).await
}

async fn catalog(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, list) = app.get("/api/v1/images", token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

fn find<'a>(list: &'a [Value], reference: &str) -> Option<&'a Value> {
    list.iter().find(|i| i["ref"] == reference)
}

#[tokio::test]
async fn builds_are_private_until_shared() {
    let app = spawn_app().await;
    let (alice, alice_t) = app.student().await;
    let (bob, bob_t) = app.student().await;
    let image = test_image().await;
    let reference = format!("wm/{alice}/web:1");
    let _cleanup = RemoveImages(vec![reference.clone()]);

    let (status, lines) = app
        .build(
            &alice_t,
            "web:1",
            &format!("FROM {image}\nRUN echo built by alice > /www/index.html\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        lines.iter().any(|l| l["stream"]
            .as_str()
            .is_some_and(|s| s.starts_with("Step 1/"))),
        "the build log streams: {lines:?}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "done", "{last}");
    assert_eq!(last["image"]["ref"], reference.as_str());
    assert_eq!(last["image"]["owner"], alice.as_str());
    assert_eq!(last["image"]["kind"], "own");
    assert_eq!(last["image"]["shared"], false);
    let labels = &inspect("image", &reference).unwrap()["Config"]["Labels"];
    assert_eq!(labels["wm.owner"], alice.as_str());

    // Public images show for everyone; alice's only for alice.
    let bobs = catalog(&app, &bob_t).await;
    assert_eq!(find(&bobs, image).unwrap()["kind"], "public");
    assert!(find(&bobs, image).unwrap()["owner"].is_null());
    assert!(find(&bobs, &reference).is_none(), "private to alice");
    assert!(find(&catalog(&app, &alice_t).await, &reference).is_some());
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &bob_t,
            json!({"name": "borrow", "image": reference}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "image_not_found");
    // Bob can neither change nor remove it: it does not exist for him.
    let path = format!("/api/v1/images/{}", encode_ref(&reference));
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&bob_t),
            Some(json!({"shared": true})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path, &bob_t).await.0, StatusCode::NOT_FOUND);

    // Shared: bob sees it with its description, and may start containers from it.
    let (status, patched) = app
        .call(
            Method::PATCH,
            &path,
            Some(&alice_t),
            Some(json!({"shared": true, "description": "serves a page"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["shared"], true);
    let bobs = catalog(&app, &bob_t).await;
    let seen = find(&bobs, &reference).expect("shared with bob");
    assert_eq!(seen["kind"], "shared");
    assert_eq!(seen["description"], "serves a page");
    assert_eq!(seen["owner"], alice.as_str());
    app.create(&bob_t, json!({"name": "borrow", "image": reference}))
        .await;
    // Bob still may not change it.
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&bob_t),
            Some(json!({"shared": false})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Un-sharing stops new containers, not running ones.
    app.call(
        Method::PATCH,
        &path,
        Some(&alice_t),
        Some(json!({"shared": false})),
    )
    .await;
    assert!(find(&catalog(&app, &bob_t).await, &reference).is_none());
    let (status, _) = app
        .post(
            "/api/v1/containers",
            &bob_t,
            json!({"name": "again", "image": reference}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, c) = app
        .get(&format!("/api/v1/containers/{bob}-borrow"), &bob_t)
        .await;
    assert_eq!(c["status"], "running");

    // A container uses it: 409; after the container goes, the owner may remove it.
    let (status, body) = app.delete(&path, &alice_t).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    app.delete(&format!("/api/v1/containers/{bob}-borrow"), &bob_t)
        .await;
    assert_eq!(app.delete(&path, &alice_t).await.0, StatusCode::NO_CONTENT);
    assert!(inspect("image", &reference).is_none());
    assert!(find(&catalog(&app, &alice_t).await, &reference).is_none());

    // Public images are removed only by an admin.
    let public = format!("wm-test-public-{}:1", unique(""));
    let _public = RemoveImages(vec![public.clone()]);
    assert!(docker(&["tag", image, &public]).status.success());
    app.call(
        Method::POST,
        "/api/v1/admin/reconcile",
        Some(&app.admin),
        None,
    )
    .await;
    let public_path = format!("/api/v1/images/{}", encode_ref(&public));
    let (status, body) = app.delete(&public_path, &alice_t).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        app.delete(&public_path, &app.admin).await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_failed_build_ends_with_its_error_and_registers_nothing() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    let reference = format!("wm/{alice}/broken:latest");
    let _cleanup = RemoveImages(vec![reference.clone()]);
    let (status, lines) = app
        .build(
            &token,
            "broken",
            &format!("FROM {image}\nRUN echo about to fail && exit 7\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "error", "{lines:?}");
    assert_eq!(last["error"]["code"], "build_failed");
    assert!(
        last["error"]["message"].as_str().unwrap().contains("7"),
        "{last}"
    );
    assert!(lines.iter().any(|l| l["stream"]
        .as_str()
        .is_some_and(|s| s.contains("about to fail"))));
    assert!(inspect("image", &reference).is_none());
    assert!(find(&catalog(&app, &token).await, &reference).is_none());
    // No intermediate container is left behind.
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--format",
        "{{.Command}}",
    ]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("about to fail"));
}

#[tokio::test]
async fn a_build_over_its_time_limit_is_stopped() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.build_timeout_secs = 2;
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let reference = format!("wm/{alice}/slow:latest");
    let _cleanup = RemoveImages(vec![reference.clone()]);
    let started = std::time::Instant::now();
    let (_, lines) = app
        .build(
            &token,
            "slow",
            &format!("FROM {}\nRUN sleep 60\n", test_image().await),
        )
        .await;
    let last = lines.last().unwrap();
    assert_eq!(last["error"]["code"], "timeout", "{lines:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // Dropping the build's stream cancels it on the engine: no image, and no
    // intermediate container keeps sleeping.
    let (app_ref, token_ref, reference_ref) = (&app, &token, &reference);
    eventually(20, "the cancelled build's container goes", || async move {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            "status=running",
            "--format",
            "{{.Command}}",
        ]);
        !String::from_utf8_lossy(&out.stdout).contains("sleep 60")
    })
    .await;
    assert!(inspect("image", reference_ref).is_none());
    assert!(find(&catalog(app_ref, token_ref).await, reference_ref).is_none());
}

#[tokio::test]
async fn builds_from_a_context_with_build_arguments() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let reference = format!("wm/{alice}/ctx:2");
    let _cleanup = RemoveImages(vec![reference.clone()]);
    // A gzipped context with a Dockerfile and a file it copies.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {}\nARG GREETING=unset\nCOPY page.html /www/index.html\nRUN echo $GREETING > /greeting\n",
            test_image().await
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("page.html"), "from the context\n").unwrap();
    let tgz = dir.path().join("ctx.tar.gz");
    let ok = std::process::Command::new("tar")
        .args(["-czf"])
        .arg(&tgz)
        .args(["-C"])
        .arg(dir.path())
        .args(["Dockerfile", "page.html"])
        .status()
        .unwrap();
    assert!(ok.success());
    let form = reqwest::multipart::Form::new()
        .text("name", "ctx:2")
        .text("buildarg", "GREETING=hello from an argument")
        .part(
            "context",
            reqwest::multipart::Part::bytes(std::fs::read(&tgz).unwrap()).file_name("ctx.tar.gz"),
        );
    let resp = app
        .client
        .post(app.url("/api/v1/images/build"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (_, lines) = ndjson(resp).await;
    assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
    let c = app
        .create(&token, json!({"name": "ctx", "image": reference}))
        .await;
    let (_, out) = app
        .post(
            &format!("/api/v1/containers/{}/exec", c["name"].as_str().unwrap()),
            &token,
            json!({"cmd": "cat /www/index.html /greeting"}),
        )
        .await;
    assert_eq!(out["stdout"], "from the context\nhello from an argument\n");

    // A token of scope build may build, and nothing else.
    let (_, created) = app
        .post(
            "/api/v1/tokens",
            &token,
            json!({"name": "ci", "scope": "build"}),
        )
        .await;
    let ci = created["token"].as_str().unwrap();
    let (status, lines) = app
        .build(ci, "ctx:2", &format!("FROM {}\n", test_image().await))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lines.last().unwrap()["status"], "done");
    assert_eq!(app.get("/api/v1/images", ci).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_builds_are_refused_before_anything_runs() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.build_context_max_bytes = 64 * 1024;
    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;
    let send = |form: reqwest::multipart::Form| {
        app.client
            .post(app.url("/api/v1/images/build"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    let dockerfile = "FROM scratch\n";
    let cases: Vec<(reqwest::multipart::Form, StatusCode, &str)> = vec![
        (
            reqwest::multipart::Form::new().text("dockerfile", dockerfile),
            StatusCode::BAD_REQUEST,
            "no name",
        ),
        (
            reqwest::multipart::Form::new()
                .text("name", "Web")
                .text("dockerfile", dockerfile),
            StatusCode::BAD_REQUEST,
            "capitals",
        ),
        (
            reqwest::multipart::Form::new()
                .text("name", "bob/web")
                .text("dockerfile", dockerfile),
            StatusCode::BAD_REQUEST,
            "another namespace",
        ),
        (
            reqwest::multipart::Form::new().text("name", "web"),
            StatusCode::BAD_REQUEST,
            "no dockerfile",
        ),
        (
            reqwest::multipart::Form::new()
                .text("name", "web")
                .text("dockerfile", "  "),
            StatusCode::BAD_REQUEST,
            "empty dockerfile",
        ),
        (
            reqwest::multipart::Form::new()
                .text("name", "web")
                .text("dockerfile", dockerfile)
                .text("buildarg", "=x"),
            StatusCode::BAD_REQUEST,
            "bad build arg",
        ),
        (
            reqwest::multipart::Form::new()
                .text("name", "web")
                .text("dockerfile", dockerfile)
                .text("extra", "x"),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            reqwest::multipart::Form::new().text("name", "web").part(
                "context",
                reqwest::multipart::Part::bytes(b"not a tar".to_vec()).file_name("x"),
            ),
            StatusCode::BAD_REQUEST,
            "not a tar",
        ),
        (
            reqwest::multipart::Form::new().text("name", "web").part(
                "context",
                reqwest::multipart::Part::bytes(vec![0u8; 100 * 1024]).file_name("big.tar"),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
    ];
    for (form, want, why) in cases {
        let r = send(form).await.unwrap();
        assert_eq!(r.status(), want, "{why}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].as_str().is_some(), "{why}: {body}");
    }
    let r = app
        .client
        .post(app.url("/api/v1/images/build"))
        .bearer_auth(&token)
        .json(&json!({"name": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn pulls_from_a_registry_with_progress() {
    let registry = Registry::start();
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.registries_allowed = Some(format!("{} docker.io", registry.host()));
    // The registry is on loopback: allowed by name, as an administrator would.
    config.docker.egress_allowed = vec![registry.host()];
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let remote = registry.push(test_image().await, &format!("course/tool-{}:1", unique("")));
    let _cleanup = RemoveImages(vec![remote.clone()]);

    let (status, lines) = pull(&app, &token, &remote).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        lines
            .iter()
            .any(|l| l["layer"].is_string() && l["status"] == "pulling"),
        "layer progress: {lines:?}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "done", "{lines:?}");
    assert_eq!(last["image"]["ref"], remote.as_str());
    assert_eq!(last["image"]["kind"], "public", "pulled images are public");
    let c = app
        .create(&token, json!({"name": "pulled", "image": remote}))
        .await;
    assert_eq!(c["owner"], alice.as_str());

    // A missing image ends with an error line.
    let missing = format!("{}/course/missing:1", registry.host());
    let (status, lines) = pull(&app, &token, &missing).await;
    assert_eq!(status, StatusCode::OK);
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "error", "{lines:?}");
    assert_eq!(last["error"]["code"], "pull_failed");
    assert!(inspect("image", &missing).is_none());

    // Refused before anything is pulled.
    for (image, want) in [
        ("registry.example.org/x:1", StatusCode::FORBIDDEN),
        ("wm/someone/web:1", StatusCode::FORBIDDEN),
        ("Not A Ref", StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = pull(&app, &token, image).await;
        assert_eq!(status, want, "{image}: {body:?}");
    }
    let (_, log) = app.get("/api/v1/admin/audit?limit=100", &app.admin).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "image.pull"
                && e["target"] == remote.as_str()
                && e["result"] == 200
                && e["detail"].is_null()),
        "{log}"
    );
}

#[tokio::test]
async fn pulls_use_the_configured_registry_login() {
    let registry = Registry::start_with_login("course", "registry-password");
    let remote = registry.push_as(
        test_image().await,
        &format!("course/private-{}:1", unique("")),
        Some(("course", "registry-password")),
    );
    let _cleanup = RemoveImages(vec![remote.clone()]);

    // Without the login the registry refuses: an error line, nothing pulled.
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.docker.egress_allowed = vec![registry.host()];
    let anonymous = spawn_with(config, data).await;
    let (_, token) = anonymous.student().await;
    let (_, lines) = pull(&anonymous, &token, &remote).await;
    assert_eq!(lines.last().unwrap()["status"], "error", "{lines:?}");
    assert!(inspect("image", &remote).is_none());

    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.docker.egress_allowed = vec![registry.host()];
    config.registries = vec![wm_console::config::RegistryCredentials {
        host: registry.host(),
        username: "course".into(),
        password: wm_console::config::Secret::new("registry-password"),
    }];
    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;
    let (_, lines) = pull(&app, &token, &remote).await;
    assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
}

#[tokio::test]
async fn the_catalog_follows_the_engine() {
    let app = spawn_app().await;
    let (_, token) = app.student().await;
    catalog(&app, &token).await;
    // Tagged behind the console's back: shows within seconds, without a reconcile.
    let tag = format!("wm-test-event-{}:1", unique(""));
    let _cleanup = RemoveImages(vec![tag.clone()]);
    assert!(docker(&["tag", test_image().await, &tag]).status.success());
    let (app_ref, token_ref, tag_ref) = (&app, &token, &tag);
    eventually(10, "a new image shows in the catalog", || async move {
        find(&catalog(app_ref, token_ref).await, tag_ref).is_some()
    })
    .await;
    assert!(docker(&["rmi", &tag]).status.success());
    eventually(10, "a removed image leaves the catalog", || async move {
        find(&catalog(app_ref, token_ref).await, tag_ref).is_none()
    })
    .await;
}

/// A registry-like listener on loopback that answers every request with a 404 whose body,
/// in the registry API's error format (which the engine quotes in its errors), carries
/// `marker`.
async fn echoing_registry(marker: &str) -> (u16, AbortOnDrop) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = format!(
        r#"{{"errors":[{{"code":"MANIFEST_UNKNOWN","message":"{marker}","detail":"{marker}"}}]}}"#
    );
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 65536 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                if !seen.starts_with(b"HEAD ") {
                    let _ = conn.write_all(body.as_bytes()).await;
                }
                let _ = conn.shutdown().await;
            });
        }
    });
    (port, AbortOnDrop(task))
}

#[tokio::test]
async fn pulls_from_the_hosts_own_network_are_refused() {
    // A real registry on loopback, holding an image: without an allow list, the engine is
    // never sent there, however the address is spelled.
    let registry = Registry::start();
    let remote = registry.push(test_image().await, &format!("course/own-{}:1", unique("")));
    let _cleanup = RemoveImages(vec![remote.clone()]);
    let port = registry.host().rsplit_once(':').unwrap().1.to_string();
    let app = spawn_app().await;
    let (_, token) = app.student().await;

    let path = remote.split_once('/').unwrap().1;
    for image in [
        remote.clone(),
        format!("localhost:{port}/{path}"),
        format!("2130706433:{port}/{path}"),
        format!("0x7f.1:{port}/{path}"),
        format!("127.1:{port}/{path}"),
        "169.254.169.254/latest/meta-data:1".to_string(),
    ] {
        let (status, body) = pull(&app, &token, &image).await;
        assert!(status.is_client_error(), "{image}: {status} {body:?}");
        if status == StatusCode::FORBIDDEN {
            let message = body[0]["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("not allowed") && message.contains("WM_EGRESS_ALLOWED"),
                "{image}: {message}"
            );
        }
    }
    let (status, body) = pull(&app, &token, &remote).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body:?}");
    assert!(inspect("image", &remote).is_none(), "nothing was pulled");

    // The docker backend refuses by itself: asked straight through its agent, as a
    // compromised console would.
    let engine = wm_docker::DockerEngine::new(app.config.docker.clone());
    let agent_token = "egress-agent-token-0123456789abcdef";
    let (agent_url, _agent) = common::agent(std::sync::Arc::new(engine), None, agent_token);
    let resp = app
        .client
        .post(format!("{agent_url}/v1/images/pull"))
        .bearer_auth(agent_token)
        .json(&json!({"image": remote, "auth": null}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(
        status.is_client_error(),
        "the agent pulled: {status} {text}"
    );
    assert!(text.contains("not allowed"), "{text}");
    assert!(inspect("image", &remote).is_none(), "nothing was pulled");
}

#[tokio::test]
async fn engine_texts_of_pulls_never_reach_users() {
    let marker = format!("MARKER-{}", unique("remote"));
    let (port, _registry) = echoing_registry(&marker).await;
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.docker.egress_allowed = vec![format!("127.0.0.1:{port}")];
    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;

    let image = format!("127.0.0.1:{port}/course/{}:1", unique("echo"));
    let resp = app
        .client
        .post(app.url("/api/v1/images/pull"))
        .bearer_auth(&token)
        .json(&json!({ "image": image }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains(&marker),
        "the remote's answer reached the user: {text}"
    );
    assert_eq!(status, StatusCode::OK, "{text}");
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "error", "{text}");
    assert_eq!(last["error"]["code"], "pull_failed");
    assert_eq!(last["error"]["reason"], "not_found", "{last}");
    let message = last["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("could not pull {image}: the image was not found")),
        "{message}"
    );
    assert!(inspect("image", &image).is_none());

    // Nor in what the administrators' audit view shows.
    let (_, log) = app.get("/api/v1/admin/audit?limit=100", &app.admin).await;
    assert!(!log.to_string().contains(&marker), "{log}");
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "image.pull"
                && e["target"] == image.as_str()
                && e["result"] == 500),
        "the failed pull is audited: {log}"
    );
}

#[tokio::test]
async fn build_errors_never_quote_what_a_fetch_answered() {
    let marker = format!("MARKER-{}", unique("body"));
    let (port, _remote) = echoing_registry(&marker).await;
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.docker.egress_allowed = vec![format!("127.0.0.1:{port}")];
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let _cleanup = RemoveImages(vec![
        format!("wm/{alice}/fetch:1"),
        format!("wm/{alice}/base:1"),
    ]);

    let image = test_image().await;
    let (status, lines) = app
        .build(
            &token,
            "fetch:1",
            &format!("FROM {image}\nADD http://127.0.0.1:{port}/file /file\n"),
        )
        .await;
    let said = format!("{lines:?}");
    assert!(
        !said.contains(&marker),
        "the fetched body reached the user: {said}"
    );
    assert_eq!(status, StatusCode::OK, "{said}");
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "error", "{said}");
    assert_eq!(last["error"]["code"], "build_failed");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "fetching http://127.0.0.1:{port}/file answered HTTP 404"
            )),
        "{last}"
    );

    // A base image from a registry that answers with its own text: a build never pulls
    // (the base must be on the host), so the registry is not even asked.
    let (status, lines) = app
        .build(
            &token,
            "base:1",
            &format!("FROM 127.0.0.1:{port}/course/base:1\nRUN true\n"),
        )
        .await;
    let said = format!("{lines:?}");
    assert!(
        !said.contains(&marker),
        "the registry's text reached the user: {said}"
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "{said}");
    assert_eq!(lines[0]["error"]["code"], "image_not_found", "{said}");
}

// --- builds read only what their owner may use, and are confined like containers ---------

fn log_text(lines: &[Value]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the RUN steps of a build printed, line by line (not the steps themselves).
fn output_lines(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l["stream"].as_str())
        .filter(|s| !s.starts_with("Step "))
        .flat_map(|s| s.lines().map(|l| l.trim().to_string()))
        .collect()
}

/// A gzipped context of these files.
fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    {
        let mut b = tar::Builder::new(&mut gz);
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.finish().unwrap();
    }
    gz.finish().unwrap()
}

#[tokio::test]
async fn a_build_reads_no_image_its_owner_may_not_use() {
    let app = spawn_app().await;
    let (alice, alice_t) = app.student().await;
    let (bob, bob_t) = app.student().await;
    let image = test_image().await;
    let secret_text = unique("TOPSECRET-");
    let secret = format!("wm/{alice}/secret:latest");
    let trigger = format!("wm/{bob}/trigger:1");
    let _cleanup = RemoveImages(vec![
        secret.clone(),
        trigger.clone(),
        format!("wm/{bob}/peek:latest"),
    ]);
    let (_, lines) = app
        .build(
            &alice_t,
            "secret",
            &format!("FROM {image}\nRUN echo {secret_text} > /secret\n"),
        )
        .await;
    assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
    let id = inspect("image", &secret).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let short = id.trim_start_matches("sha256:")[..12].to_string();

    // What a missing image answers.
    let missing = format!("wm/{alice}/missing");
    let (status, body) = app
        .build(&bob_t, "peek", &format!("FROM {missing}\n"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body:?}");
    assert_eq!(body[0]["error"]["code"], "image_not_found");
    let missing_message = body[0]["error"]["message"].as_str().unwrap().to_string();
    assert!(missing_message.contains("pull"), "{missing_message}");
    let like_missing = |status: StatusCode, body: &[Value], named: &str, why: &str| {
        assert_eq!(status, StatusCode::NOT_FOUND, "{why}: {body:?}");
        assert_eq!(body[0]["error"]["code"], "image_not_found", "{why}");
        assert_eq!(
            body[0]["error"]["message"],
            missing_message.replace(&missing, named),
            "{why}"
        );
    };

    let mut seen = Vec::new();
    let cases = [
        (
            format!("FROM wm/{alice}/secret\nRUN cat /secret\n"),
            format!("wm/{alice}/secret"),
            "by name",
        ),
        (
            format!("FROM {secret}\nRUN cat /secret\n"),
            secret.clone(),
            "by tag",
        ),
        (
            format!("FROM {id}\nRUN cat /secret\n"),
            id.clone(),
            "by full id",
        ),
        (
            format!("FROM {short}\nRUN cat /secret\n"),
            short.clone(),
            "by short id",
        ),
        (
            format!("FROM {secret} AS base\nFROM {image}\nFROM base\nRUN cat /secret\n"),
            secret.clone(),
            "through a stage alias",
        ),
        (
            format!("FROM {image}\nCOPY --from={secret} /secret /s\nRUN cat /s\n"),
            secret.clone(),
            "by COPY --from",
        ),
    ];
    for (dockerfile, named, why) in cases {
        let (status, body) = app.build(&bob_t, "peek", &dockerfile).await;
        like_missing(status, &body, &named, why);
        seen.extend(body);
    }
    // Through a global ARG set by a build argument.
    let form = reqwest::multipart::Form::new()
        .text("name", "peek")
        .text("buildarg", format!("BASE={secret}"))
        .text(
            "dockerfile",
            format!("ARG BASE={image}\nFROM ${{BASE}}\nRUN cat /secret\n"),
        );
    let (status, body) = app.build_form(&bob_t, form).await;
    like_missing(status, &body, &secret, "through a build argument");
    seen.extend(body);
    // In a context archive.
    let form = reqwest::multipart::Form::new().text("name", "peek").part(
        "context",
        reqwest::multipart::Part::bytes(tgz(&[(
            "Dockerfile",
            format!("FROM {short}\nRUN cat /secret\n").as_bytes(),
        )]))
        .file_name("ctx.tar.gz"),
    );
    let (status, body) = app.build_form(&bob_t, form).await;
    like_missing(status, &body, &short, "in a context");
    seen.extend(body);
    assert!(inspect("image", &format!("wm/{bob}/peek:latest")).is_none());

    // Shared: bob may build from it, and the build reads the very image checked.
    let path = format!("/api/v1/images/{}", encode_ref(&secret));
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&alice_t),
            Some(json!({"shared": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, lines) = app
        .build(&bob_t, "peek", &format!("FROM {secret}\nRUN cat /secret\n"))
        .await;
    assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
    let log = log_text(&lines);
    assert!(
        log.contains(&format!("FROM {id}")),
        "pinned to the id: {log}"
    );
    assert!(log.contains(&secret_text), "{log}");
    // A base of bob's whose ONBUILD reads alice's image, made while she shared it...
    let (_, lines) = app
        .build(
            &bob_t,
            "trigger:1",
            &format!("FROM {image}\nONBUILD COPY --from={secret} /secret /s\n"),
        )
        .await;
    assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
    // ...runs it in a child build only while she still does.
    app.call(
        Method::PATCH,
        &path,
        Some(&alice_t),
        Some(json!({"shared": false})),
    )
    .await;
    let (status, body) = app
        .build(&bob_t, "peek", &format!("FROM {trigger}\nRUN cat /s\n"))
        .await;
    like_missing(status, &body, &id, "through an ONBUILD of the base image");
    seen.extend(body);
    let (status, body) = app
        .build(&bob_t, "peek", &format!("FROM {secret}\nRUN cat /secret\n"))
        .await;
    like_missing(status, &body, &secret, "after un-sharing");
    seen.extend(body);
    assert!(
        !log_text(&seen).contains(&secret_text),
        "no refused build shows the secret"
    );
    // RUN --mount is BuildKit's: refused rather than run unchecked.
    let (status, _) = app
        .build(
            &bob_t,
            "peek",
            &format!("FROM {image}\nRUN --mount=type=bind,from={secret},target=/m cat /m/secret\n"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The engine's id of a lent container, found by its labels.
fn engine_id(app: &TestApp, owner: &str, short: &str) -> String {
    let out = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=wm.instance={}", app.instance),
        "--filter",
        &format!("label=wm.owner={owner}"),
        "--filter",
        &format!("label=wm.name={short}"),
    ]);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!id.is_empty(), "{owner}'s {short} is on the engine");
    id
}

/// The IPv4 address of a container on its (only) network.
fn container_ip(name: &str) -> String {
    let c = inspect("container", name).unwrap();
    let nets = c["NetworkSettings"]["Networks"].as_object().unwrap();
    nets.values().next().unwrap()["IPAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn builds_are_confined_like_containers() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.build_image_max_bytes = 4 << 20;
    config.build_context_max_unpacked_bytes = 1 << 20;
    let app = spawn_with(config, data).await;
    let (alice, alice_t) = app.student().await;
    let (bob, bob_t) = app.student().await;
    let image = test_image().await;
    let _cleanup = RemoveImages(
        ["limits", "forks", "net", "big"]
            .iter()
            .map(|n| format!("wm/{alice}/{n}:latest"))
            .collect(),
    );

    // Memory (without swap beyond it) and CPU as a container's (64m, 0.5 CPU here).
    let (_, lines) = app
        .build(
            &alice_t,
            "limits",
            &format!(
                "FROM {image}\nRUN echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) swap=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null || echo none)\n"
            ),
        )
        .await;
    let log = log_text(&lines);
    assert_eq!(lines.last().unwrap()["status"], "done", "{log}");
    assert!(log.contains("quota=50000 "), "{log}");
    assert!(log.contains(&format!("memory={} ", 64 << 20)), "{log}");
    assert!(
        !log.contains("swap=-1") && !log.contains("swap=9223372036854"),
        "{log}"
    );

    // Processes: the limit (64 here) holds for RUN steps too.
    let (_, lines) = app
        .build(
            &alice_t,
            "forks",
            &format!(
                "FROM {image}\nRUN i=0; while [ $i -lt 300 ]; do sleep 600 & i=$((i+1)); echo \"started $i\"; done; echo all-started\n"
            ),
        )
        .await;
    let log = log_text(&lines);
    let output = output_lines(&lines);
    let started = output
        .iter()
        .filter_map(|l| l.strip_prefix("started ")?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    assert!(started > 0, "{log}");
    assert!(started <= 64, "{started} processes started: {log}");
    assert!(!output.iter().any(|l| l == "all-started"), "{log}");
    assert_eq!(lines.last().unwrap()["status"], "error", "{log}");

    // Network: the owner's own, which reaches their containers and nobody else's.
    app.create(&alice_t, json!({"name": "mine", "image": image}))
        .await;
    app.create(&bob_t, json!({"name": "theirs", "image": image}))
        .await;
    // A stand-in for a CI runner or job on the default bridge.
    let runner = unique("wm-test-runner-");
    let out = docker(&[
        "run",
        "-d",
        "--name",
        &runner,
        "--label",
        "whalemountain.test=1",
        "--label",
        &format!("wm.instance={}", app.instance),
        image,
    ]);
    assert!(out.status.success(), "{out:?}");
    let own_ip = container_ip(&engine_id(&app, &alice, "mine"));
    let other_ips = [
        container_ip(&engine_id(&app, &bob, "theirs")),
        container_ip(&runner),
    ];
    let (_, lines) = app
        .build(
            &alice_t,
            "net",
            &format!(
                "FROM {image}\nRUN get() {{ printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 $1 80 | grep -q 'hello from'; }}; get {own_ip} && echo own-reached; for ip in {} {}; do if get $ip; then echo REACHED-$ip; else echo blocked-$ip; fi; done\n",
                other_ips[0], other_ips[1]
            ),
        )
        .await;
    let log = log_text(&lines);
    assert_eq!(lines.last().unwrap()["status"], "done", "{log}");
    let output = output_lines(&lines);
    assert!(output.iter().any(|l| l == "own-reached"), "{log}");
    for ip in &other_ips {
        assert!(output.contains(&format!("blocked-{ip}")), "{ip}: {log}");
    }
    assert!(!output.iter().any(|l| l.starts_with("REACHED-")), "{log}");

    // The result's size: over the limit, the image goes and the build fails.
    let (_, lines) = app
        .build(
            &alice_t,
            "big",
            &format!("FROM {image}\nRUN dd if=/dev/zero of=/big bs=1024 count=6144\n"),
        )
        .await;
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "error", "{lines:?}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("WM_BUILD_IMAGE_MAX_BYTES"),
        "{last}"
    );
    assert!(inspect("image", &format!("wm/{alice}/big:latest")).is_none());

    // The unpacked context: a small gzip that expands past the limit is refused.
    let zeros = vec![0u8; 2 << 20];
    let form = reqwest::multipart::Form::new().text("name", "bomb").part(
        "context",
        reqwest::multipart::Part::bytes(tgz(&[
            ("Dockerfile", format!("FROM {image}\n").as_bytes()),
            ("zeros", &zeros),
        ]))
        .file_name("ctx.tar.gz"),
    );
    let (status, body) = app.build_form(&alice_t, form).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body:?}");
    assert_eq!(body[0]["error"]["code"], "payload_too_large");
    assert!(
        body[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("WM_BUILD_CONTEXT_MAX_UNPACKED_BYTES"),
        "{body:?}"
    );
}

#[tokio::test]
async fn a_build_fetches_nothing_from_the_hosts_own_network() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // A tiny listener on loopback that counts who connects.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    let _listener = AbortOnDrop(tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    }));
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let _cleanup = RemoveImages(vec![format!("wm/{alice}/fetch:latest")]);
    let image = test_image().await;
    for dockerfile in [
        format!("FROM {image}\nADD http://127.0.0.1:{port}/x /x\n"),
        format!("FROM {image}\nADD http://localhost:{port}/x /x\n"),
        format!("FROM {image}\nARG H=127.0.0.1\nADD [\"http://${{H}}:{port}/x\", \"/x\"]\n"),
        format!("FROM {image}\nADD http://169.254.169.254/latest/meta-data/ /m\n"),
        format!("FROM {image}\nONBUILD ADD http://127.0.0.1:{port}/x /x\n"),
    ] {
        let (status, body) = app.build(&token, "fetch", &dockerfile).await;
        assert!(status.is_client_error(), "{dockerfile}: {status} {body:?}");
        let message = body[0]["error"]["message"].as_str().unwrap();
        assert!(message.contains("ADD "), "{dockerfile}: {message}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the engine was never sent to the listener"
    );
    assert!(inspect("image", &format!("wm/{alice}/fetch:latest")).is_none());
}

#[tokio::test]
async fn a_build_whose_process_limit_cannot_be_set_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    // A file of the pids hierarchy, where no cgroup can be made.
    config.docker.build_cgroup_parent = "cgroup.procs".into();
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let _cleanup = RemoveImages(vec![format!("wm/{alice}/unlimited:latest")]);
    let (status, body) = app
        .build(
            &token,
            "unlimited",
            &format!("FROM {}\nRUN true\n", test_image().await),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    assert_eq!(body[0]["error"]["code"], "unavailable");
    assert!(
        body[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("WM_BUILD_CGROUP_PARENT"),
        "{body:?}"
    );
    assert!(inspect("image", &format!("wm/{alice}/unlimited:latest")).is_none());
}

/// The engine's layer cache is shared by every user of a host: without the owner in the
/// cache key, a classmate writing the same `RUN` line would get the first user's output
/// (whatever that step fetched with a secret of theirs).
#[tokio::test]
async fn a_build_never_reuses_another_users_run_step() {
    let app = spawn_app().await;
    let (alice, alice_t) = app.student().await;
    let (bob, bob_t) = app.student().await;
    let _cleanup = RemoveImages(vec![
        format!("wm/{alice}/cache:1"),
        format!("wm/{alice}/cache:2"),
        format!("wm/{bob}/cache:1"),
    ]);
    let dockerfile = format!(
        "FROM {}\nRUN cat /proc/sys/kernel/random/uuid > /secret\n",
        test_image().await
    );
    let mut secrets = Vec::new();
    for (who, token, name) in [
        (&alice, &alice_t, "cache:1"),
        (&alice, &alice_t, "cache:2"),
        (&bob, &bob_t, "cache:1"),
    ] {
        let (status, lines) = app.build(token, name, &dockerfile).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
        let short = format!("c{}", secrets.len());
        let c = app
            .create(
                token,
                json!({"name": short, "image": format!("wm/{who}/{name}")}),
            )
            .await;
        let (_, out) = app
            .post(
                &format!("/api/v1/containers/{}/exec", c["name"].as_str().unwrap()),
                token,
                json!({"cmd": "cat /secret"}),
            )
            .await;
        let secret = out["stdout"].as_str().unwrap().trim().to_string();
        assert_eq!(secret.len(), 36, "{out}");
        secrets.push(secret);
    }
    // The cache still serves its own user.
    assert_eq!(
        secrets[0], secrets[1],
        "alice's second build used her cache"
    );
    assert_ne!(
        secrets[0], secrets[2],
        "bob's build reused alice's RUN step"
    );
}
