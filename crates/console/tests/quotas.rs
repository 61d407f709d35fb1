//! Quotas against the real engine: a burst of creates gets exactly the quota, starts are
//! counted too, a container's CPU and memory are what it asked within the quota, and
//! refusals name the quota and the use in both languages.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use wm_testkit::inspect;

/// A console whose students may hold 3 containers, 2 of them running, 1 CPU and 256 MiB.
async fn with_student_quota() -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.quotas.insert(
        wm_domain::Role::Student,
        wm_console::config::QuotaSettings {
            containers: Some(3),
            running: Some(2),
            cpus: Some(1.0),
            memory: Some("256m".into()),
            ..wm_console::config::QuotaSettings::unlimited()
        },
    );
    spawn_with(config, data).await
}

#[tokio::test]
async fn twenty_creates_at_once_get_exactly_the_quota() {
    let app = with_student_quota().await;
    let (alice, token) = app.student().await;
    // Override this one user: 3 running as well, so that containers are what binds.
    let (status, q) = app
        .call(
            Method::PUT,
            &format!("/api/v1/admin/users/{alice}/quota"),
            Some(&app.admin),
            Some(json!({"running": 3, "cpus": 4, "memory": 1073741824})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(q["quota"]["containers"], 3);
    assert_eq!(q["quota"]["running"], 3);
    assert_eq!(q["overrides"]["containers"], serde_json::Value::Null);
    let image = test_image().await;
    let creates = (0..20).map(|i| {
        let (app, token) = (&app, &token);
        async move {
            app.call(
                Method::POST,
                "/api/v1/containers",
                Some(token),
                Some(json!({"name": format!("c{i}"), "image": image, "ports": [80]})),
            )
            .await
        }
    });
    let answers = futures::future::join_all(creates).await;
    let made: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .collect();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .collect();
    assert_eq!(made.len(), 3, "{answers:?}");
    assert_eq!(refused.len(), 17, "{answers:?}");
    for (_, body) in &refused {
        assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
        let m = body["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("quota of containers") && m.contains("3 containers in use of 3 containers"),
            "{m}"
        );
    }
    // Nothing of the refused ones on the engine, and the use as the API tells it.
    let ours: Vec<String> = app
        .engine_containers()
        .into_iter()
        .filter(|n| n.contains(&format!(".{alice}.")))
        .collect();
    assert_eq!(ours.len(), 3, "{ours:?}");
    let (_, me) = app.get("/api/v1/me", &token).await;
    assert_eq!(me["usage"]["containers"], 3, "{me}");
    assert_eq!(me["usage"]["running"], 3);
    assert_eq!(me["usage"]["ports"], 3);
    assert_eq!(me["quota"]["containers"], 3);
    // Counted in the metrics by kind.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("wm_quota_refusals_total{kind=\"containers\"} 17"),
        "{metrics}"
    );
    // An administrator sees the same.
    let (_, all) = app.get("/api/v1/admin/quotas", &app.admin).await;
    let row = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"] == alice.as_str())
        .unwrap();
    assert_eq!(row["usage"]["containers"], 3);
    assert_eq!(row["role"], "student");
    // Back to the role's quota: 2 running, so 3 running is over it; a create is refused
    // for its running container.
    let (status, q) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/users/{alice}/quota"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(q["quota"]["running"], 2);
    for (_, c) in &made {
        app.delete(
            &format!("/api/v1/containers/{}", c["name"].as_str().unwrap()),
            &token,
        )
        .await;
    }
}

#[tokio::test]
async fn a_start_over_the_running_quota_is_refused_and_changes_nothing() {
    let app = with_student_quota().await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    for n in ["a", "b"] {
        app.create(&token, json!({"name": n, "image": image})).await;
    }
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "c", "image": image}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quota of running: 2 running containers in use of 2"),
        "{body}"
    );
    // Stop one: now a third may be made, but then neither stopped one may start.
    let (status, _) = app
        .post(
            &format!("/api/v1/containers/{alice}-a/stop"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.create(&token, json!({"name": "c", "image": image}))
        .await;
    let (status, body) = app
        .post(
            &format!("/api/v1/containers/{alice}-a/start"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    let (_, c) = app
        .get(&format!("/api/v1/containers/{alice}-a"), &token)
        .await;
    assert_eq!(c["status"], "exited", "{c}");
    // A fourth container is over the quota of containers, stopped ones included.
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "d", "image": image}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("quota of containers"));
    for n in ["a", "b", "c"] {
        app.delete(&format!("/api/v1/containers/{alice}-{n}"), &token)
            .await;
    }
}

#[tokio::test]
async fn a_container_gets_the_cpu_and_memory_it_asks_within_the_quota() {
    let app = with_student_quota().await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    let c = app
        .create(
            &token,
            json!({"name": "big", "image": image, "cpus": 0.25, "memory": "200m"}),
        )
        .await;
    assert_eq!(c["cpus"], 0.25);
    assert_eq!(c["memory"], 200 << 20);
    let engine = inspect("container", &app.engine_name(&alice, "big")).unwrap();
    assert_eq!(engine["HostConfig"]["NanoCpus"], 250_000_000);
    assert_eq!(engine["HostConfig"]["Memory"], 200 << 20);
    // Above the quota for one container: a 400 naming the field, nothing made.
    for (body, field) in [
        (json!({"name": "x", "image": image, "cpus": 2}), "cpus"),
        (
            json!({"name": "x", "image": image, "memory": "1g"}),
            "memory",
        ),
        (
            json!({"name": "x", "image": image, "memory": "1k"}),
            "memory",
        ),
        (json!({"name": "x", "image": image, "cpus": -1}), "cpus"),
        (
            json!({"name": "x", "image": image, "memory": [1]}),
            "memory",
        ),
        (json!({"name": "x", "image": image, "gpus": 99}), "gpus"),
    ] {
        let (status, e) = app.post("/api/v1/containers", &token, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} {e}");
        assert_eq!(e["error"]["field"], field, "{e}");
    }
    // The memory quota is 256 MiB in all: 200 are held, 64 more (the default) would be over.
    let (status, e) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "y", "image": image}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    let m = e["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("quota of memory: 200 MiB in use of 256 MiB, and this needs 64 MiB more"),
        "{m}"
    );
    // GPUs: this host has none, and the student's quota allows one.
    let (status, e) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "z", "image": image, "gpus": 1, "memory": "16m"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 free GPU"),
        "{e}"
    );
    app.delete(&format!("/api/v1/containers/{alice}-big"), &token)
        .await;
}

#[tokio::test]
async fn quotas_are_set_only_by_administrators_with_valid_numbers() {
    let app = with_student_quota().await;
    let (alice, token) = app.student().await;
    let path = format!("/api/v1/admin/users/{alice}/quota");
    let (status, _) = app
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"containers": 99})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for bad in [
        json!({"containers": -2}),
        json!({"cpus": "many"}),
        json!({"cpus": 1e9}),
        json!({"unknown": 1}),
    ] {
        let (status, e) = app
            .call(Method::PUT, &path, Some(&app.admin), Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} {e}");
    }
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/admin/users/nobody-here/quota",
            Some(&app.admin),
            Some(json!({"containers": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, me) = app.get("/api/v1/me", &token).await;
    assert_eq!(me["quota"]["containers"], 3, "nothing changed: {me}");
    // The administrator reads one user's quota; the user cannot.
    let (status, one) = app.get(&path, &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["quota"]["containers"], 3, "{one}");
    assert!(one["usage"]["storage"].is_number(), "{one}");
    assert_eq!(app.get(&path, &token).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_pages_show_the_quota_and_refuse_in_the_readers_language() {
    let app = with_student_quota().await;
    let (alice, token) = app.user("q", "student").await;
    let password = "password-123";
    let image = test_image().await;
    // 3 containers of 3, 2 of them running of 2.
    for n in ["a", "b"] {
        app.create(&token, json!({"name": n, "image": image, "memory": "16m"}))
            .await;
    }
    let (status, _) = app
        .post(
            &format!("/api/v1/containers/{alice}-a/stop"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.create(
        &token,
        json!({"name": "c", "image": image, "memory": "16m"}),
    )
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = post_login_form(&app, &client, &alice, password).await;
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = |path: &str, lang: &str| {
        client
            .get(app.url(path))
            .header(reqwest::header::COOKIE, &cookie)
            .header(reqwest::header::ACCEPT_LANGUAGE, lang)
            .send()
    };
    let html = page("/containers", "en")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"quota\""), "{html}");
    assert!(html.contains("Your quota"));
    let ja = page("/containers", "ja")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ja.contains("あなたの割り当て"), "{ja}");
    // The form of a fourth is refused with the quota and the use, in Japanese.
    let form = page("/containers/new", "ja")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = form.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &form[at..at + 64];
    let refused = client
        .post(app.url("/containers/new"))
        .header(reqwest::header::COOKIE, &cookie)
        .header(reqwest::header::ACCEPT_LANGUAGE, "ja")
        .form(&[("csrf", csrf), ("name", "d"), ("image", image)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body = refused.text().await.unwrap();
    assert!(body.contains("割り当ての上限を超えています"), "{body}");
    assert!(
        body.contains("コンテナの割り当てを超えます（使用中 3 / 上限 3、さらに 1 が必要です）"),
        "{body}"
    );
    for n in ["a", "b", "c"] {
        app.delete(&format!("/api/v1/containers/{alice}-{n}"), &token)
            .await;
    }
}
