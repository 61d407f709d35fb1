//! Reclaim against the real engine: expired containers stopped then deleted after the
//! grace, idle containers stopped (and busy ones not) with the warning before and the
//! reason after, and the clean-up of unused users' images with its dry run. Tiny
//! intervals and durations come from the configuration; every wait is a condition under
//! a generous limit.

mod common;

use common::*;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wm_console::config::Span;
use wm_testkit::unique;

fn in_secs(s: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(s))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn container(app: &TestApp, token: &str, name: &str) -> (StatusCode, Value) {
    app.get(&format!("/api/v1/containers/{name}"), token).await
}

async fn audited(app: &TestApp, action: &str, target: &str) -> bool {
    let (_, log) = app.get("/api/v1/admin/audit?limit=1000", &app.admin).await;
    log.as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == action && e["target"] == target)
}

async fn page(app: &TestApp, token: &str, path: &str) -> String {
    app.client
        .get(app.url(path))
        .header(COOKIE, format!("wm_session={token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_expired_container_is_stopped_then_deleted_after_the_grace() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.reclaim.interval_secs = 1;
    // Longer than a stop takes (the test image's httpd ignores SIGTERM: the engine's
    // stop waits out its time-out), so the stopped state can be seen before the delete.
    config.reclaim.expiry_grace = Span::secs(20);
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let image = test_image().await;

    // An expiry in the past, or not a date, is refused in the user's words.
    for bad in [json!("2001-01-01T00:00:00Z"), json!("next week")] {
        let (status, body) = app
            .post(
                "/api/v1/containers",
                &token,
                json!({"name": "web", "image": image, "expires_at": bad}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "invalid_expiry");
    }

    let form = page(&app, &token, "/containers/new").await;
    assert!(
        form.contains("name=\"expires_at\""),
        "the form takes an expiry"
    );

    let c = app
        .create(
            &token,
            json!({"name": "web", "image": image, "expires_at": in_secs(4)}),
        )
        .await;
    let name = c["name"].as_str().unwrap().to_string();
    assert!(
        c["expires_at"].is_string() && c["deletes_at"].is_string(),
        "{c}"
    );
    assert_eq!(c["idle_since"], Value::Null);

    let detail = page(&app, &token, &format!("/containers/{name}")).await;
    assert!(
        detail.contains(c["expires_at"].as_str().unwrap()),
        "the page shows the expiry"
    );

    eventually(60, "the expired container is stopped", || async {
        let (_, c) = container(&app, &token, &name).await;
        c["stop_reason"] == "expired" && c["status"] != "running"
    })
    .await;
    let (status, body) = app
        .post(
            &format!("/api/v1/containers/{name}/start"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "container_expired");
    let list = page(&app, &token, "/containers").await;
    assert!(
        list.contains("data-stop-reason=\"expired\""),
        "the list says why"
    );

    eventually(
        60,
        "the expired container is deleted after the grace",
        || async { container(&app, &token, &name).await.0 == StatusCode::NOT_FOUND },
    )
    .await;
    assert!(
        !app.engine_containers()
            .contains(&app.engine_name(&alice, "web")),
        "gone from the engine"
    );
    // The entry is written once the delete is done.
    eventually(30, "the stop and the delete are audited", || async {
        audited(&app, "container.reclaim_stop", &name).await
            && audited(&app, "container.reclaim_delete", &name).await
    })
    .await;
}

#[tokio::test]
async fn an_idle_container_is_stopped_with_a_warning_first_and_a_busy_one_is_not() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.reclaim.interval_secs = 1;
    config.reclaim.idle_stop_after = Some(Span::secs(4));
    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;
    let image = test_image().await;
    let idle = app
        .create(&token, json!({"name": "idle", "image": image}))
        .await["name"]
        .as_str()
        .unwrap()
        .to_string();
    let busy = app
        .create(&token, json!({"name": "busy", "image": image}))
        .await["name"]
        .as_str()
        .unwrap()
        .to_string();
    // A CPU loop in the background keeps one busy.
    let (status, out) = app
        .post(
            &format!("/api/v1/containers/{busy}/exec"),
            &token,
            json!({"cmd": "setsid sh -c 'while :; do :; done' </dev/null >/dev/null 2>&1 &"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");

    // Before the stop: idle since, the stop announced, in the API and on the pages.
    eventually(60, "the idle container is announced", || async {
        let (_, c) = container(&app, &token, &idle).await;
        c["idle_since"].is_string() && c["idle_stop_at"].is_string() && c["warning"] == true
    })
    .await;
    let list = page(&app, &token, "/containers").await;
    let detail = page(&app, &token, &format!("/containers/{idle}")).await;
    assert!(
        list.contains("data-reclaim=\"idle\"") || list.contains("data-stop-reason=\"idle\""),
        "the list warns: {list}"
    );
    assert!(
        detail.contains("data-reclaim=\"idle\"") || detail.contains("data-stop-reason=\"idle\""),
        "the page warns"
    );

    eventually(60, "the idle container is stopped", || async {
        let (_, c) = container(&app, &token, &idle).await;
        c["stop_reason"] == "idle" && c["status"] != "running"
    })
    .await;
    eventually(30, "the stop is audited", || {
        audited(&app, "container.reclaim_stop", &idle)
    })
    .await;
    let detail = page(&app, &token, &format!("/containers/{idle}")).await;
    assert!(
        detail.contains("data-stop-reason=\"idle\""),
        "the reason is shown"
    );

    // The busy one outlives several idle times.
    for _ in 0..16 {
        let (_, c) = container(&app, &token, &busy).await;
        assert_eq!(c["status"], "running", "{c}");
        assert_eq!(c["idle_since"], Value::Null, "{c}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    // Started again, the reason goes.
    let (status, c) = app
        .post(
            &format!("/api/v1/containers/{idle}/start"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["stop_reason"], Value::Null);
}

#[tokio::test]
async fn cleanup_lists_then_removes_old_unused_images_and_never_one_in_use() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.reclaim.image_max_age = Some(Span::secs(1));
    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;
    let image = test_image().await;
    let mut refs = Vec::new();
    for name in ["unused", "used"] {
        // A label of its own: two builds never share an image.
        let (status, lines) = app
            .build(
                &token,
                &format!("{name}:1"),
                &format!("FROM {image}\nLABEL whalemountain.build={}\n", unique(name)),
            )
            .await;
        let last = lines.last().unwrap();
        assert!(status.is_success() && last["status"] == "done", "{lines:?}");
        refs.push(last["image"]["ref"].as_str().unwrap().to_string());
    }
    let (unused, used) = (refs[0].clone(), refs[1].clone());
    app.create(&token, json!({"name": "app", "image": used}))
        .await;
    // Stopped, it still uses its image.
    let (status, _) = app
        .post(
            &format!(
                "/api/v1/containers/{}/stop",
                app.create(&token, json!({"name": "app2", "image": used}))
                    .await["name"]
                    .as_str()
                    .unwrap()
            ),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = app.get("/api/v1/admin/cleanup", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "administrators only");
    let listed = |report: &Value| -> Vec<String> {
        report["images"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["references"].as_array().unwrap().clone())
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    eventually(60, "the unused image is old enough", || async {
        let (status, report) = app.get("/api/v1/admin/cleanup", &app.admin).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        listed(&report).contains(&unused)
    })
    .await;
    let (_, dry) = app.get("/api/v1/admin/cleanup", &app.admin).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        listed(&dry),
        [unused.as_str()],
        "only the unused one: {dry}"
    );
    assert!(dry["bytes"].as_i64().unwrap() > 0);
    let (_, images) = app.get("/api/v1/images", &token).await;
    assert!(
        images.to_string().contains(&unused),
        "a dry run removes nothing"
    );

    let (status, run) = app
        .post("/api/v1/admin/cleanup", &app.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["dry_run"], false);
    assert_eq!(listed(&run), [unused.as_str()], "{run}");
    assert_eq!(run["images"][0]["removed"], true, "{run}");
    // The list follows the engine's image events.
    eventually(60, "the removed image leaves the list", || async {
        let (_, images) = app.get("/api/v1/images", &token).await;
        let refs: Vec<&str> = images
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["ref"].as_str().unwrap())
            .collect();
        assert!(refs.contains(&used.as_str()), "{refs:?}");
        !refs.contains(&unused.as_str())
    })
    .await;
    assert!(audited(&app, "image.cleanup", &unused).await);

    // The admin page and the hosts' API show the images' disk.
    let (_, hosts) = app.get("/api/v1/admin/hosts", &app.admin).await;
    let disk = &hosts[0]["images"];
    assert!(
        disk["count"].as_i64().unwrap() >= 1 && disk["bytes"].as_i64().unwrap() > 0,
        "{hosts}"
    );
    assert!(disk["user_count"].as_i64().unwrap() >= 1, "{hosts}");
    let admin_page = page(&app, &app.admin, "/admin").await;
    assert!(
        admin_page.contains("data-image-disk="),
        "the admin page shows it"
    );
}

#[tokio::test]
async fn the_owner_sets_and_removes_an_expiry_from_the_container_page() {
    let app = spawn_app().await;
    let (_, token) = app.student().await;
    let c = app
        .create(&token, json!({"name": "web", "image": test_image().await}))
        .await;
    let name = c["name"].as_str().unwrap().to_string();
    let cookie = format!("wm_session={token}");
    let post = |value: String| {
        let (app, cookie, name, token) = (&app, cookie.clone(), name.clone(), token.clone());
        async move {
            let html = page(app, &token, &format!("/containers/{name}")).await;
            let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
            let csrf = html[at..at + 64].to_string();
            app.client
                .post(app.url(&format!("/containers/{name}/expiry")))
                .header(COOKIE, cookie)
                .form(&[("csrf", csrf), ("expires_at", value)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let later = in_secs(3600);
    assert!(post(later.clone()).await.is_success());
    let (_, c) = container(&app, &token, &name).await;
    assert_eq!(c["expires_at"], later.as_str());
    assert_eq!(post("tomorrow".into()).await, StatusCode::BAD_REQUEST);
    assert!(post(String::new()).await.is_success());
    let (_, c) = container(&app, &token, &name).await;
    assert_eq!(c["expires_at"], Value::Null);
}
