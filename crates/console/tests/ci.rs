//! The per-user GitLab runner and the generated pipeline. No GitLab can run here: the
//! runner is a stand-in image (the busybox test image), which is enough to check the
//! container, its labels and its generated configuration.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::Command;
use wm_testkit::{docker, inspect};

async fn put(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PUT, "/api/v1/ci", Some(token), Some(body))
        .await
}

fn runner_config(container: &str) -> toml::Table {
    let out = docker(&["exec", container, "cat", "/etc/gitlab-runner/config.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

async fn spawn_ci_app() -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.ci_runner_image = test_image().await.to_string();
    spawn_with(config, data).await
}

#[tokio::test]
async fn a_runner_per_user_with_a_safe_configuration() {
    let app = spawn_ci_app().await;
    let (alice, token) = app.student().await;
    let (status, ci) = app.get("/api/v1/ci", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ci["configured"], false);

    let secret = "glrt-first-secret-token-1234";
    let (status, ci) = put(
        &app,
        &token,
        json!({"gitlab_url": "https://gitlab.example.org/", "token": secret}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ci}");
    assert_eq!(ci["configured"], true);
    assert_eq!(ci["gitlab_url"], "https://gitlab.example.org");
    assert_eq!(ci["token_hint"], "…1234");
    assert_eq!(ci["runner"]["state"], "running", "{ci}");
    assert!(
        !ci.to_string().contains(secret),
        "the token is never shown again"
    );

    let name = app.runner_name(&alice);
    let i = inspect("container", &name).expect("the runner exists");
    let labels = &i["Config"]["Labels"];
    assert_eq!(labels["wm.owner"], alice.as_str());
    assert_eq!(labels["wm.kind"], "ci-runner");
    assert_eq!(labels["wm.instance"], app.instance.as_str());
    let h = &i["HostConfig"];
    assert_eq!(h["Privileged"], false);
    assert_eq!(h["CapDrop"], json!(["ALL"]));
    assert_eq!(
        h["Binds"],
        json!(["/var/run/docker.sock:/var/run/docker.sock"])
    );

    let config = runner_config(&name);
    assert_eq!(config["concurrent"].as_integer(), Some(1));
    let runner = &config["runners"].as_array().unwrap()[0];
    assert_eq!(runner["executor"].as_str(), Some("docker"));
    assert_eq!(runner["url"].as_str(), Some("https://gitlab.example.org"));
    assert_eq!(runner["token"].as_str(), Some(secret));
    let jobs = &runner["docker"];
    assert_eq!(jobs["privileged"].as_bool(), Some(false));
    assert_eq!(
        jobs["volumes"].as_array().map(Vec::len),
        Some(0),
        "no host paths, no socket"
    );
    assert!(!jobs.to_string().contains("docker.sock"));
    assert_eq!(
        jobs["allowed_images"].as_array().unwrap()[0].as_str(),
        Some("curlimages/curl:latest")
    );
    // GitLab Runner reads an empty allowed_services as "any service": never written.
    // No service at all, and only the job image for runners without services_limit.
    assert_eq!(jobs["services_limit"].as_integer(), Some(0), "{jobs}");
    assert_eq!(
        jobs["allowed_services"].as_array().unwrap(),
        &vec![toml::Value::String("curlimages/curl:latest".into())]
    );
    // Jobs and the runner in alice's own network, not on the default bridge.
    let network = format!("{}-{alice}", app.instance);
    assert_eq!(jobs["network_mode"].as_str(), Some(network.as_str()));
    assert_eq!(h["NetworkMode"], network.as_str());
    assert!(inspect("network", &network).is_some());

    // Not one of alice's containers, and never adopted as one.
    let (_, list) = app.get("/api/v1/containers", &token).await;
    assert!(list.as_array().unwrap().is_empty());
    let (_, report) = app
        .post("/api/v1/admin/reconcile", &app.admin, json!({}))
        .await;
    assert_eq!(report["adopted"], json!([]), "{report}");
    assert_eq!(report["unknown"], json!([]), "{report}");

    // A new token restarts it with the new configuration.
    let before = i["Id"].as_str().unwrap().to_string();
    let (status, _) = put(
        &app,
        &token,
        json!({"gitlab_url": "https://gitlab.example.org", "token": "glrt-second-9999"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let after = inspect("container", &name).unwrap();
    assert_ne!(after["Id"].as_str().unwrap(), before);
    assert_eq!(
        runner_config(&name)["runners"].as_array().unwrap()[0]["token"].as_str(),
        Some("glrt-second-9999")
    );

    // Another user's settings are their own.
    let (_, bob_t) = app.student().await;
    let (_, bobs) = app.get("/api/v1/ci", &bob_t).await;
    assert_eq!(bobs["configured"], false);

    let (status, _) = app
        .call(Method::DELETE, "/api/v1/ci", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(inspect("container", &name).is_none());
    let (_, ci) = app.get("/api/v1/ci", &token).await;
    assert_eq!(ci["configured"], false);
}

#[tokio::test]
async fn bad_settings_change_nothing() {
    let app = spawn_ci_app().await;
    let (alice, token) = app.student().await;
    for (body, field) in [
        (
            json!({"gitlab_url": "gitlab.example.org", "token": "glrt-x"}),
            "gitlab_url",
        ),
        (
            json!({"gitlab_url": "javascript:alert(1)", "token": "glrt-x"}),
            "gitlab_url",
        ),
        (
            json!({"gitlab_url": "https://x\"\n[[runners]]", "token": "glrt-x"}),
            "gitlab_url",
        ),
        (
            json!({"gitlab_url": "https://gitlab.example.org", "token": "x\"\nprivileged = true"}),
            "token",
        ),
        (
            json!({"gitlab_url": "https://gitlab.example.org", "token": ""}),
            "token",
        ),
    ] {
        let (status, answer) = put(&app, &token, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (status, _) = put(
        &app,
        &token,
        json!({"gitlab_url": "https://g.example.org", "token": "t", "privileged": true}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(inspect("container", &app.runner_name(&alice)).is_none());

    // A runner image the host lacks: 503, nothing stored.
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.ci_runner_image = "wm-test-no-such-runner:1".into();
    let other = spawn_with(config, data).await;
    let (_, t) = other.student().await;
    let (status, body) = put(
        &other,
        &t,
        json!({"gitlab_url": "https://g.example.org", "token": "glrt-x"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (_, ci) = other.get("/api/v1/ci", &t).await;
    assert_eq!(ci["configured"], false);
}

#[tokio::test]
async fn the_generated_pipeline_builds_through_the_api() {
    let app = spawn_ci_app().await;
    let (alice, token) = app.student().await;
    let resp = app
        .client
        .get(app.url("/api/v1/ci/gitlab-ci.yml"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/yaml"));
    let yaml = resp.text().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".gitlab-ci.yml"), &yaml).unwrap();
    // A real YAML parser reads the job, as GitLab would.
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(dir.path().join(".gitlab-ci.yml"))
        .output()
        .expect("python3 runs");
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let pipeline: Value = serde_json::from_slice(&parsed.stdout).unwrap();
    let job = &pipeline["whalemountain-build"];
    assert_eq!(job["image"], "curlimages/curl:latest");
    assert!(!yaml.contains("docker.sock") && !yaml.contains("docker build"));

    // Run the job's script as the runner would, in a checkout with a Dockerfile, with a
    // token of scope build stored as WM_TOKEN.
    let (_, created) = app
        .post(
            "/api/v1/tokens",
            &token,
            json!({"name": "gitlab", "scope": "build"}),
        )
        .await;
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(
        repo.join("Dockerfile"),
        format!("FROM {}\nRUN echo from ci > /ci.txt\n", test_image().await),
    )
    .unwrap();
    let script: Vec<&str> = job["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let mut env: Vec<(String, String)> = vec![
        ("WM_TOKEN".into(), created["token"].as_str().unwrap().into()),
        ("CI_PROJECT_NAME".into(), "homework".into()),
        ("CI_COMMIT_SHORT_SHA".into(), "abc1234".into()),
    ];
    for (k, v) in job["variables"].as_object().unwrap() {
        env.push((k.clone(), v.as_str().unwrap().into()));
    }
    // On a blocking thread: the console answering the job runs on this test's runtime.
    let script = script.join("\n");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&repo)
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the job failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = format!("wm/{alice}/homework:abc1234");
    let (_, images) = app.get("/api/v1/images", &token).await;
    let built = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ref"] == reference.as_str());
    assert_eq!(
        built.expect("the image shows at once")["owner"],
        alice.as_str()
    );
    docker(&["rmi", "-f", &reference]);
}

/// A name on this machine that resolves to loopback without being called localhost: one
/// from /etc/hosts, else the machine's own name (which resolves to one of its addresses).
fn name_for_this_machine() -> String {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    for line in hosts.lines() {
        let mut f = line.split('#').next().unwrap_or("").split_whitespace();
        let Some(addr) = f.next().and_then(|a| a.parse::<std::net::IpAddr>().ok()) else {
            continue;
        };
        if let Some(name) = f.find(|n| !n.contains("localhost")) {
            if addr.is_loopback() {
                return name.to_string();
            }
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test]
async fn a_gitlab_on_the_hosts_own_network_is_refused() {
    let app = spawn_ci_app().await;
    let (alice, token) = app.student().await;
    let own = name_for_this_machine();
    for url in [
        "http://127.0.0.1:8080".to_string(),
        "https://localhost".to_string(),
        "http://169.254.169.254/latest".to_string(),
        "http://[::1]:8929".to_string(),
        "http://[::ffff:127.0.0.1]".to_string(),
        "http://2130706433".to_string(),
        "http://0x7f.1".to_string(),
        format!("https://{own}"),
    ] {
        let (status, answer) = put(
            &app,
            &token,
            json!({"gitlab_url": url, "token": "glrt-never-stored"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {answer}");
        assert_eq!(answer["error"]["field"], "gitlab_url", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("WM_EGRESS_ALLOWED"),
            "{answer}"
        );
    }
    let (_, ci) = app.get("/api/v1/ci", &token).await;
    assert_eq!(ci["configured"], false, "nothing stored: {ci}");
    assert!(inspect("container", &app.runner_name(&alice)).is_none());

    // Allowed by name, a GitLab on the host itself is the administrator's choice.
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.ci_runner_image = test_image().await.to_string();
    config.docker.egress_allowed = vec!["127.0.0.1:8929".into()];
    config.ci_allowed_services = Some("postgres:16 redis:*".into());
    let allowed = spawn_with(config, data).await;
    let (bob, bob_t) = allowed.student().await;
    let (status, answer) = put(
        &allowed,
        &bob_t,
        json!({"gitlab_url": "http://127.0.0.1:8929", "token": "glrt-allowed"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = put(
        &allowed,
        &bob_t,
        json!({"gitlab_url": "http://127.0.0.1:8930", "token": "glrt-allowed"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "only the port allowed");
    let jobs = runner_config(&allowed.runner_name(&bob))["runners"]
        .as_array()
        .unwrap()[0]["docker"]
        .clone();
    assert_eq!(
        jobs["allowed_services"].as_array().unwrap(),
        &vec![
            toml::Value::String("postgres:16".into()),
            toml::Value::String("redis:*".into())
        ]
    );
    assert_eq!(jobs["services_limit"].as_integer(), Some(2));
    let (status, _) = allowed
        .call(Method::DELETE, "/api/v1/ci", Some(&bob_t), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// Runner names cannot be taken (issue 12, item 9). Runners were `<instance>-ci-<owner>`
/// on the engine, the very name of the container `ci-<owner>` of a user named like the
/// instance: that user could keep anyone's runner from starting, or learn that it runs.
/// Containers are now `<instance>.<owner>.<short>` and runners `<instance>_ci.<owner>`.
#[tokio::test]
async fn runner_names_cannot_be_taken_by_containers() {
    let app = spawn_ci_app().await;
    let image = test_image().await;
    let squatter = app.instance.clone();
    let (status, body) = app
        .post(
            "/api/v1/admin/users",
            &app.admin,
            json!({"name": squatter, "password": "password-123", "role": "student"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let squatter_t = app.login(&squatter, "password-123").await;
    let settings = json!({"gitlab_url": "https://gitlab.example.org", "token": "glrt-squat-1234"});

    // The container first, then the runner.
    let (alice, alice_t) = app.student().await;
    app.create(
        &squatter_t,
        json!({"name": format!("ci-{alice}"), "image": image}),
    )
    .await;
    let (status, ci) = put(&app, &alice_t, settings.clone()).await;
    assert_eq!(status, StatusCode::OK, "{ci}");
    assert_eq!(ci["runner"]["state"], "running", "{ci}");

    // The runner first, then the container.
    let (bob, bob_t) = app.student().await;
    let (status, ci) = put(&app, &bob_t, settings).await;
    assert_eq!(status, StatusCode::OK, "{ci}");
    let (status, c) = app
        .post(
            "/api/v1/containers",
            &squatter_t,
            json!({"name": format!("ci-{bob}"), "image": image}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");

    for owner in [&alice, &bob] {
        let runner = inspect("container", &app.runner_name(owner)).expect("the runner");
        assert_eq!(runner["Config"]["Labels"]["wm.owner"], owner.as_str());
        assert_eq!(runner["Config"]["Labels"]["wm.kind"], "ci-runner");
        let theirs = inspect(
            "container",
            &app.engine_name(&squatter, &format!("ci-{owner}")),
        )
        .expect("the squatter's container");
        assert_eq!(theirs["Config"]["Labels"]["wm.owner"], squatter.as_str());
    }
}

/// A runner made by an earlier version, under its old name `<instance>-ci-<owner>`, is
/// still its owner's: replaced by new settings and removed with them, never left running
/// beside a new one.
#[tokio::test]
async fn runners_of_earlier_versions_are_replaced_and_removed() {
    let app = spawn_ci_app().await;
    let (alice, token) = app.student().await;
    let settings = json!({"gitlab_url": "https://gitlab.example.org", "token": "glrt-old-1234"});
    let (status, _) = put(&app, &token, settings.clone()).await;
    assert_eq!(status, StatusCode::OK);
    // What an earlier version left: the same runner under the old name.
    let old = format!("{}-ci-{alice}", app.instance);
    assert!(docker(&["rename", &app.runner_name(&alice), &old])
        .status
        .success());
    let (_, ci) = app.get("/api/v1/ci", &token).await;
    assert_eq!(
        ci["runner"]["state"], "running",
        "found by its labels: {ci}"
    );

    let (status, _) = put(&app, &token, settings).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        inspect("container", &old).is_none(),
        "the old runner is replaced"
    );
    assert!(inspect("container", &app.runner_name(&alice)).is_some());

    assert!(docker(&["rename", &app.runner_name(&alice), &old])
        .status
        .success());
    let (status, _) = app
        .call(Method::DELETE, "/api/v1/ci", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(inspect("container", &old).is_none(), "and removed");
}
