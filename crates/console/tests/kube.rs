//! Containers on the Kubernetes backend through the console's API, against the stand-in
//! API server of `wm_testkit::kube_apiserver` (no real cluster can run here), in-process
//! and through a kubernetes agent; and the two backends failing independently.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use wm_testkit::kube_apiserver::KubeApiServer;

/// A console whose cluster is the stand-in.
async fn with_cluster(server: &KubeApiServer) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.kube = Some(kube_settings(server, data.path()));
    spawn_with(config, data).await
}

/// The stand-in, as `kubectl` with `token` would reach it.
async fn as_user(server: &KubeApiServer, token: &str, path: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{}{path}", server.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

fn yaml_value<'a>(yaml: &'a str, key: &str) -> &'a str {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("{key} missing from:\n{yaml}"))
        .trim_matches('"')
}

#[tokio::test]
async fn a_kubernetes_container_from_create_to_delete() {
    let server = KubeApiServer::start().await;
    let app = with_cluster(&server).await;
    let (alice, token) = app.student().await;
    let c = app
        .create(
            &token,
            json!({"name": "web", "image": "nginx:1.27", "ports": "80 8080", "env": "A=1", "backend": "kubernetes"}),
        )
        .await;
    let name = format!("{alice}-web");
    assert_eq!(c["name"], name);
    assert_eq!(c["backend"], "kubernetes");
    assert_eq!(c["host"], "kubernetes");
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(
        c["ports"],
        json!([{"guest": 80, "host": null}, {"guest": 8080, "host": null}])
    );
    assert_eq!(
        c["url"],
        format!("http://web.{alice}.ie.example.org/"),
        "the first port gets the Ingress"
    );
    assert!(c["env"].as_array().unwrap().contains(&json!("A=1")));
    // The three objects, in the user's own namespace, with our labels.
    for plural in ["deployments", "services", "ingresses"] {
        let o = server
            .object(plural, &alice, &name)
            .unwrap_or_else(|| panic!("{plural}/{name}"));
        assert_eq!(o["metadata"]["labels"]["wm.owner"], alice.as_str(), "{o}");
    }

    let (status, got) = app.get(&format!("/api/v1/containers/{name}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["url"], c["url"]);
    let (_, list) = app.get("/api/v1/containers", &token).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["status"], "running");

    // The same name again is a conflict; so is the name on the other backend.
    for (backend, image) in [("kubernetes", "nginx:1.27"), ("docker", test_image().await)] {
        let (status, body) = app
            .post(
                "/api/v1/containers",
                &token,
                json!({"name": "web", "image": image, "backend": backend}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend}: {body}");
    }
    // What the API leaves to kubectl, it says so.
    let (status, body) = app
        .post(
            &format!("/api/v1/containers/{name}/exec"),
            &token,
            json!({"cmd": "ls"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_for_backend");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("kubectl exec"));
    // Nor a terminal (asked as a WebSocket handshake), nor followed logs.
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/containers/{name}/terminal")))
        .bearer_auth(&token)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_for_backend", "{body}");
    let (status, body) = app
        .get(
            &format!("/api/v1/containers/{name}/logs?follow=true"),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_for_backend");

    let (status, stopped) = app
        .post(
            &format!("/api/v1/containers/{name}/stop"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    let (_, started) = app
        .post(
            &format!("/api/v1/containers/{name}/start"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(started["status"], "running");
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/containers/{name}/logs?tail=10"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Another student sees nothing of it and can do nothing to it.
    let (_, other) = app.student().await;
    assert_eq!(
        app.get(&format!("/api/v1/containers/{name}"), &other)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/v1/containers/{name}"), &other)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert!(server.object("deployments", &alice, &name).is_some());

    let (status, _) = app
        .delete(&format!("/api/v1/containers/{name}"), &token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for plural in ["deployments", "services", "ingresses"] {
        assert!(
            server.object(plural, &alice, &name).is_none(),
            "{plural} gone when the delete answers"
        );
    }
    let (_, list) = app.get("/api/v1/containers", &token).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn bad_input_and_foreign_objects_are_refused_and_change_nothing() {
    let server = KubeApiServer::start().await;
    let app = with_cluster(&server).await;
    let (alice, token) = app.student().await;
    for (body, field) in [
        (
            json!({"name": "Bad_Name", "image": "nginx", "backend": "kubernetes"}),
            "name",
        ),
        (
            json!({"name": "x", "image": "lower/UPPER", "backend": "kubernetes"}),
            "image",
        ),
        (
            json!({"name": "x", "image": "nginx", "ports": "0", "backend": "kubernetes"}),
            "ports",
        ),
        (
            json!({"name": "x", "image": "nginx", "env": "=1", "backend": "kubernetes"}),
            "env",
        ),
        (
            json!({"name": "x", "image": "nginx", "backend": "kubernetes", "requires": "gpu"}),
            "requires",
        ),
    ] {
        let (status, resp) = app.post("/api/v1/containers", &token, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
        assert_eq!(resp["error"]["field"], field, "{resp}");
    }
    assert!(
        server.object("namespaces", "", &alice).is_none(),
        "nothing was made for refused requests"
    );

    // A Deployment of that name made by someone else in the namespace is not ours to
    // take over.
    let (status, _) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "first", "image": "nginx", "backend": "kubernetes"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let foreign = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("{alice}-web"), "namespace": alice},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}},
                              "spec": {"containers": [{"name": "x", "image": "busybox"}]}}}
    });
    let made = reqwest::Client::new()
        .post(format!(
            "{}/apis/apps/v1/namespaces/{alice}/deployments",
            server.url()
        ))
        .bearer_auth(server.admin_token())
        .json(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "web", "image": "nginx", "backend": "kubernetes"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, list) = app.get("/api/v1/containers", &token).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [format!("{alice}-first")],
        "no record of the refused one"
    );
    let d = server
        .object("deployments", &alice, &format!("{alice}-web"))
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );
}

#[tokio::test]
async fn a_kubeconfig_acts_in_its_owners_namespace_only() {
    let server = KubeApiServer::start().await;
    let app = with_cluster(&server).await;
    let (alice, alice_token) = app.student().await;
    let (bob, bob_token) = app.student().await;
    let resp = app
        .client
        .get(app.url("/api/v1/kubeconfig"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/yaml"));
    let yaml = resp.text().await.unwrap();
    assert_eq!(yaml_value(&yaml, "namespace"), alice);
    assert_eq!(yaml_value(&yaml, "server"), server.url());
    let token = yaml_value(&yaml, "token").to_string();
    // Bob's namespace exists too.
    let (status, _) = app.get("/api/v1/kubeconfig", &bob_token).await;
    assert_eq!(status, StatusCode::OK);

    assert_eq!(
        as_user(&server, &token, &format!("/api/v1/namespaces/{alice}/pods")).await,
        StatusCode::OK
    );
    assert_eq!(
        as_user(
            &server,
            &token,
            &format!("/apis/apps/v1/namespaces/{alice}/deployments")
        )
        .await,
        StatusCode::OK
    );
    for path in [
        format!("/api/v1/namespaces/{bob}/pods"),
        format!("/api/v1/namespaces/{alice}/secrets"),
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{alice}/roles"),
        "/api/v1/namespaces".to_string(),
    ] {
        assert_eq!(
            as_user(&server, &token, &path).await,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
}

#[tokio::test]
async fn with_the_cluster_down_docker_lending_goes_on() {
    // A cluster that is not there: a port nothing listens on.
    let closed = wm_testkit::free_port();
    let data = tempfile::tempdir().unwrap();
    let kubeconfig = data.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{closed}\n\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
             current-context: c\n"
        ),
    )
    .unwrap();
    let mut config = test_config(data.path());
    config.kube = Some(wm_kube::KubeSettings {
        kubeconfig: Some(kubeconfig),
        call_timeout_secs: 2,
        connect_timeout_secs: 2,
        ..Default::default()
    });
    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "k", "image": "nginx", "backend": "kubernetes"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach the Kubernetes API"),
        "{body}"
    );
    assert_eq!(
        app.get("/api/v1/kubeconfig", &token).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (_, health) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health["kubernetes"]["reachable"], false, "{health}");
    assert_eq!(health["docker"]["reachable"], true, "{health}");
    // Docker is not held up.
    let c = app
        .create(
            &token,
            json!({"name": "d", "image": test_image().await, "ports": "80"}),
        )
        .await;
    assert_eq!(c["status"], "running");
    let (status, list) = app.get("/api/v1/containers", &token).await;
    assert_eq!(status, StatusCode::OK);
    // The half-made kubernetes container waits for a retry; the docker one runs.
    let statuses: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["backend"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(statuses.contains(&("docker", "running")), "{list}");
    assert!(statuses.contains(&("kubernetes", "creating")), "{list}");
}

#[tokio::test]
async fn with_docker_down_kubernetes_lending_goes_on() {
    let server = KubeApiServer::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.docker.host = "unix:///nonexistent/docker.sock".into();
    config.kube = Some(kube_settings(&server, data.path()));
    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;
    let c = app
        .create(
            &token,
            json!({"name": "k", "image": "nginx", "ports": [80], "backend": "kubernetes"}),
        )
        .await;
    assert_eq!(c["status"], "running");
    let (_, health) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health["kubernetes"]["reachable"], true, "{health}");
    assert_eq!(health["docker"]["reachable"], false, "{health}");
}

#[tokio::test]
async fn through_a_kubernetes_agent() {
    let server = KubeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kube = wm_kube::Kube::new(kube_settings(&server, dir.path()))
        .await
        .unwrap();
    let agent_token = "kubernetes-agent-token-0123456789";
    let router = wm_agent::kube::router(Arc::new(kube), wm_agent::AgentToken::new(agent_token));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_url = format!("http://{}", listener.local_addr().unwrap());
    let agent = tokio::spawn(wm_agent::serve(
        listener,
        router,
        None,
        std::future::pending(),
    ));

    // Without the token, nothing.
    let unauthorized = reqwest::get(format!("{agent_url}/v1/kube/containers"))
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);

    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.kube_agent = Some(agent_url);
    config.agent.token = Some(wm_console::config::Secret::new(agent_token));
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let c = app
        .create(
            &token,
            json!({"name": "web", "image": "nginx", "ports": "80", "backend": "kubernetes"}),
        )
        .await;
    assert_eq!(c["status"], "running");
    assert!(server
        .object("deployments", &alice, &format!("{alice}-web"))
        .is_some());
    let (status, yaml) = app
        .call(Method::GET, "/api/v1/kubeconfig", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let yaml = yaml.as_str().unwrap();
    assert_eq!(yaml_value(yaml, "namespace"), alice);
    let (status, _) = app
        .delete(&format!("/api/v1/containers/{alice}-web"), &token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(server
        .object("deployments", &alice, &format!("{alice}-web"))
        .is_none());
    let (_, health) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health["kubernetes"]["reachable"], true, "{health}");
    agent.abort();
}

#[tokio::test]
async fn without_a_cluster_kubernetes_is_refused_clearly() {
    let app = spawn_app().await;
    let (_, token) = app.student().await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "k", "image": "nginx", "backend": "kubernetes"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "backend_unavailable");
    let (status, body) = app.get("/api/v1/kubeconfig", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "backend_unavailable");
    let (_, health) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health["kubernetes"], Value::Null);
}

/// A TCP forwarder in front of the stand-in that can be cut and restored, as a cluster
/// that goes away and comes back on the same address.
struct Cut {
    port: u16,
    target: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Cut {
    async fn new(target: &str) -> Cut {
        let port = wm_testkit::free_port();
        let mut c = Cut {
            port,
            target: target.trim_start_matches("http://").to_string(),
            task: None,
        };
        c.restore().await;
        c
    }

    async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                let target = target.clone();
                links.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the port and every connection through it (dropping the task drops the
    /// listener and the links it holds).
    async fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

#[tokio::test]
async fn a_cluster_that_goes_away_and_comes_back() {
    let server = KubeApiServer::start().await;
    let mut cut = Cut::new(server.url()).await;
    let data = tempfile::tempdir().unwrap();
    let kubeconfig = data.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        server
            .admin_kubeconfig()
            .replace(server.url(), &format!("http://127.0.0.1:{}", cut.port)),
    )
    .unwrap();
    let mut config = test_config(data.path());
    config.host_check_interval_secs = 1;
    config.kube = Some(wm_kube::KubeSettings {
        kubeconfig: Some(kubeconfig),
        instance: wm_testkit::unique("k"),
        call_timeout_secs: 2,
        connect_timeout_secs: 2,
        ..Default::default()
    });
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let name = format!("{alice}-web");
    app.create(
        &token,
        json!({"name": "web", "image": "nginx", "ports": "80", "backend": "kubernetes"}),
    )
    .await;

    cut.cut().await;
    // Its record stays; it shows as unknown, and what needs the cluster answers 503.
    eventually(10, "the container shown as unknown", || async {
        let (_, c) = app.get(&format!("/api/v1/containers/{name}"), &token).await;
        c["status"] == "unknown"
    })
    .await;
    let (status, body) = app
        .post(
            &format!("/api/v1/containers/{name}/stop"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (_, health) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health["kubernetes"]["reachable"], false, "{health}");
    // Docker lending is not held up.
    let c = app
        .create(&token, json!({"name": "d", "image": test_image().await}))
        .await;
    assert_eq!(c["status"], "running");

    cut.restore().await;
    eventually(10, "the container running again", || async {
        let (_, c) = app.get(&format!("/api/v1/containers/{name}"), &token).await;
        c["status"] == "running"
    })
    .await;
    let c = app
        .create(
            &token,
            json!({"name": "again", "image": "nginx", "backend": "kubernetes"}),
        )
        .await;
    assert_eq!(c["status"], "running");
}

#[tokio::test]
async fn an_expired_kubernetes_container_is_stopped_then_deleted() {
    let server = KubeApiServer::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.kube = Some(kube_settings(&server, data.path()));
    config.reclaim.interval_secs = 1;
    config.reclaim.expiry_grace = wm_console::config::Span::secs(4);
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::seconds(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    app.create(
        &token,
        json!({"name": "web", "image": "nginx:1.27", "backend": "kubernetes", "expires_at": expires}),
    )
    .await;
    let name = format!("{alice}-web");
    eventually(60, "the expired container is stopped", || async {
        let (_, c) = app.get(&format!("/api/v1/containers/{name}"), &token).await;
        c["stop_reason"] == "expired" && c["status"] == "stopped"
    })
    .await;
    eventually(60, "the expired container is deleted", || async {
        app.get(&format!("/api/v1/containers/{name}"), &token)
            .await
            .0
            == StatusCode::NOT_FOUND
    })
    .await;
    assert!(server.object("deployments", &alice, &name).is_none());
}
