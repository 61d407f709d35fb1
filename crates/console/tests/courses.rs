//! Courses, account management and the audit log, through the API against the real
//! engine: a teacher sees and acts on their course's members' containers and on nothing
//! else (another student's container answers 404, like a missing one); administrators
//! change roles, reset passwords, disable and delete accounts; everyone changes their own
//! password; the audit log names actor, action, resource and address, filters, pages and
//! exports. Bad input is refused with a clear message and changes nothing.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use wm_testkit::browser::Browser;
use wm_testkit::kube_apiserver::KubeApiServer;

/// Builds a small image `name` (`repo:tag`) of the caller's from the test image.
async fn build_image(app: &TestApp, token: &str, name: &str) {
    let dockerfile = format!("FROM {}\nLABEL built={name}\n", test_image().await);
    let (status, lines) = app.build(token, name, &dockerfile).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
}

async fn call(
    app: &TestApp,
    m: Method,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.call(m, path, Some(token), Some(body)).await
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_teacher_sees_and_acts_only_on_the_members_of_their_course() {
    let app = spawn_app().await;
    let (teacher, tt) = app.user("tc", "teacher").await;
    let (_, other_teacher) = app.user("tc", "teacher").await;
    let (member, mt) = app.student().await;
    let (outsider, ot) = app.student().await;
    let image = test_image().await;

    // Students do not create courses; bad input is refused and creates nothing.
    let (status, body) = app.post("/api/v1/courses", &mt, json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "ok", "ends_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "ok", "ends_at": "next week"}),
        json!({"name": "ok", "colour": "red"}),
    ] {
        let (status, body) = app.post("/api/v1/courses", &tt, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().len() > 10,
            "{body}"
        );
    }
    let (_, none) = app.get("/api/v1/courses", &tt).await;
    assert_eq!(none, json!([]));

    let (status, course) = app
        .post(
            "/api/v1/courses",
            &tt,
            json!({"name": "Operating systems", "term": "2026 spring", "ends_at": "2099-03-31T23:59:00+09:00"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    assert_eq!(course["owner"], teacher.as_str());
    assert_eq!(course["members"], json!([]));
    let id = course["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/courses/{id}");

    // An unknown name enrols nobody.
    let (status, body) = app
        .post(
            &format!("{base}/members"),
            &tt,
            json!({"users": [member, "nobody-here"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "unknown_users");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nobody-here"));
    assert_eq!(app.get(&base, &tt).await.1["members"], json!([]));
    let (status, body) = app
        .post(&format!("{base}/members"), &tt, json!({"users": []}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = app
        .post(&format!("{base}/members"), &tt, json!({"users": [member]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["members"], json!([member]));

    // The member sees the course; nobody else but its teacher and the admins does.
    assert_eq!(app.get(&base, &mt).await.0, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/courses", &mt).await.1[0]["id"],
        id.as_str()
    );
    for t in [&ot, &other_teacher] {
        let (status, body) = app.get(&base, t).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(app.get("/api/v1/courses", t).await.1, json!([]));
    }
    assert_eq!(app.get(&base, &app.admin).await.0, StatusCode::OK);

    let mine = app
        .create(&mt, json!({"name": "lab", "image": image}))
        .await;
    let theirs = app
        .create(&ot, json!({"name": "lab", "image": image}))
        .await;
    let mine = mine["name"].as_str().unwrap().to_string();
    let theirs = theirs["name"].as_str().unwrap().to_string();
    assert_eq!(mine, format!("{member}-lab"));
    // The course's end is the container's expiry, the teacher's to move, not the member's.
    let (_, c) = app.get(&format!("/api/v1/containers/{mine}"), &mt).await;
    assert_eq!(c["expires_at"], "2099-03-31T14:59:00Z", "{c}");
    let (status, body) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/containers/{mine}"),
        &mt,
        json!({"expires_at": null}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The teacher sees the member's container, with its status, image, host and ports.
    let (status, list) = app.get(&format!("{base}/containers"), &tt).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(names(&list), std::slice::from_ref(&mine));
    assert_eq!(list[0]["status"], "running");
    assert_eq!(list[0]["owner"], member.as_str());
    assert!(list[0]["host"].is_string() && list[0]["image"].is_string());

    // Stop, logs, start: the member's container, for the teacher.
    let (status, c) = app
        .post(&format!("{base}/containers/{mine}/stop"), &tt, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_ne!(c["status"], "running");
    assert_ne!(
        app.get(&format!("/api/v1/containers/{mine}"), &mt).await.1["status"],
        "running"
    );
    let (status, _) = app
        .get(&format!("{base}/containers/{mine}/logs"), &tt)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, c) = app
        .post(&format!("{base}/containers/{mine}/start"), &tt, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "running");

    // A student outside the course: the same 404 as a container that does not exist,
    // and the container is untouched. Nor is the teacher anyone's admin elsewhere.
    let missing = format!("{outsider}-nothing");
    for path in [
        format!("{base}/containers/{theirs}/stop"),
        format!("{base}/containers/{theirs}/start"),
    ] {
        let (s1, b1) = app.post(&path, &tt, json!({})).await;
        let (s2, b2) = app
            .post(&path.replace(&theirs, &missing), &tt, json!({}))
            .await;
        assert_eq!(
            (s1, s2),
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
            "{b1}"
        );
        assert_eq!(b1["error"]["code"], b2["error"]["code"]);
    }
    let (status, _) = app
        .get(&format!("{base}/containers/{theirs}/logs"), &tt)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in [
        format!("/api/v1/containers/{theirs}"),
        format!("/api/v1/containers/{mine}"),
    ] {
        assert_eq!(app.get(&path, &tt).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, all) = app.get("/api/v1/containers?all=true", &tt).await;
    assert_eq!(all, json!([]));
    assert_eq!(
        app.get(&format!("/api/v1/containers/{theirs}"), &ot)
            .await
            .1["status"],
        "running"
    );

    // Another teacher, and the member, do not act for the course's teacher.
    let stop_mine = format!("{base}/containers/{mine}/stop");
    assert_eq!(
        app.post(&stop_mine, &other_teacher, json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(&stop_mine, &mt, json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post(
            &format!("{base}/members"),
            &mt,
            json!({"users": [outsider]})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get(&base, &tt).await.1["members"], json!([member]));

    // The teacher's acts are audited with the teacher's name and the container's.
    let (_, log) = app
        .get(
            &format!("/api/v1/admin/audit?actor={teacher}&action=container.stop"),
            &app.admin,
        )
        .await;
    let entries = log.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["target"] == mine.as_str() && e["result"] == 200),
        "{log}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["target"] == theirs.as_str() && e["result"] == 404),
        "{log}"
    );
    let (_, log) = app
        .get(
            &format!("/api/v1/admin/audit?actor={teacher}&action=container.logs"),
            &app.admin,
        )
        .await;
    assert!(
        !log.as_array().unwrap().is_empty(),
        "reads of a member's logs are audited"
    );

    // Out of the course, out of reach.
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("{base}/members/{member}"),
            Some(&tt),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["members"], json!([]));
    assert_eq!(
        app.post(&stop_mine, &tt, json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{base}/members/{member}"),
            Some(&tt),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, log) = app
        .get(
            &format!("/api/v1/admin/audit?action=course.&target={member}"),
            &app.admin,
        )
        .await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "course.unenrol"),
        "{log}"
    );
}

#[tokio::test]
async fn a_course_shares_images_with_its_members_first() {
    let app = spawn_app().await;
    let (teacher, tt) = app.user("tc", "teacher").await;
    let (member, mt) = app.student().await;
    let (_, ot) = app.student().await;
    let (_, course) = app.post("/api/v1/courses", &tt, json!({"name": "c"})).await;
    let id = course["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/api/v1/courses/{id}/members"),
        &mt,
        json!({"users": [member]}),
    )
    .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/courses/{id}/members"),
            &tt,
            json!({"users": [member]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    build_image(&app, &tt, "exercise:3").await;
    let reference = format!("wm/{teacher}/exercise:3");
    let path = format!("/api/v1/images/{}", encode_ref(&reference));

    // Only a course of one's own, and nothing changes on a refusal.
    let (_, other) = app
        .post("/api/v1/courses", &app.admin, json!({"name": "not theirs"}))
        .await;
    let (status, body) = call(
        &app,
        Method::PATCH,
        &path,
        &tt,
        json!({"courses": [id, other["id"]]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "unknown_course");
    let sees = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .any(|i| i["ref"] == reference.as_str())
    };
    assert!(!sees(&app.get("/api/v1/images", &mt).await.1));

    let (status, image) = call(
        &app,
        Method::PATCH,
        &path,
        &tt,
        json!({"courses": [id], "description": "use this for exercise 3"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{image}");
    assert_eq!(image["courses"], json!([id]));
    // The member sees it first, as the course's; others do not see it at all.
    let (_, list) = app.get("/api/v1/images", &mt).await;
    assert_eq!(list[0]["ref"], reference.as_str(), "{list}");
    assert_eq!(list[0]["kind"], "course");
    assert_eq!(list[0]["description"], "use this for exercise 3");
    assert!(!sees(&app.get("/api/v1/images", &ot).await.1));
    let c = app
        .create(&mt, json!({"name": "ex3", "image": reference}))
        .await;
    assert_eq!(c["image"], reference.as_str());
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &ot,
            json!({"name": "ex3", "image": reference}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, log) = app
        .get(
            &format!("/api/v1/admin/audit?actor={teacher}&action=image.update"),
            &app.admin,
        )
        .await;
    assert_eq!(log[0]["target"], reference.as_str(), "{log}");

    // A course's host labels are its members' containers' unless they ask otherwise.
    let label = wm_testkit::unique("lab");
    let (_, gpu) = app
        .post(
            "/api/v1/courses",
            &tt,
            json!({"name": "gpu", "host_labels": [label]}),
        )
        .await;
    assert_eq!(gpu["host_labels"], json!([label]), "{gpu}");
    let gpu_id = gpu["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/courses/{gpu_id}/members"),
        &tt,
        json!({"users": [member]}),
    )
    .await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &mt,
            json!({"name": "g", "image": test_image().await, "course": gpu_id}),
        )
        .await;
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{body}"
    );
    assert!(body.to_string().contains(&label), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &mt,
            json!({"name": "g", "image": test_image().await, "course": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "unknown_course");
    let (status, body) = app
        .post(
            "/api/v1/courses",
            &tt,
            json!({"name": "bad", "host_labels": ["no spaces!"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Unshared: gone for the member too.
    let (status, _) = call(&app, Method::PATCH, &path, &tt, json!({"courses": []})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!sees(&app.get("/api/v1/images", &mt).await.1));
}

#[tokio::test]
async fn administrators_manage_accounts_and_everyone_their_password() {
    let app = spawn_app().await;
    let (alice, at) = app.student().await;
    let user = format!("/api/v1/admin/users/{alice}");
    let c = app
        .create(&at, json!({"name": "box", "image": test_image().await}))
        .await;
    let box_name = c["name"].as_str().unwrap().to_string();

    // Bad input changes nothing.
    for bad in [
        json!({"role": "king"}),
        json!({"password": "short"}),
        json!({"disabled": "yes"}),
        json!({"colour": "red"}),
    ] {
        let (status, body) = call(&app, Method::PATCH, &user, &app.admin, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = call(
        &app,
        Method::PATCH,
        "/api/v1/admin/users/nobody-x",
        &app.admin,
        json!({"role": "teacher"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/v1/me", &at).await.1["role"], "student");
    // Students do not manage accounts.
    let (status, _) = call(&app, Method::PATCH, &user, &at, json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An administrator keeps their own access.
    let (status, body) = call(
        &app,
        Method::PATCH,
        "/api/v1/admin/users/admin",
        &app.admin,
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // A role.
    let (status, body) = call(
        &app,
        Method::PATCH,
        &user,
        &app.admin,
        json!({"role": "teacher"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "teacher");
    assert_eq!(app.get("/api/v1/me", &at).await.1["role"], "teacher");

    // Disabled: the session ends at once, the login is refused, the container stops.
    let (status, body) = call(
        &app,
        Method::PATCH,
        &user,
        &app.admin,
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["disabled"], true);
    assert_eq!(app.get("/api/v1/me", &at).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({"username": alice, "password": "password-123"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disabled"));
    let (_, c) = app
        .get(
            &format!("/api/v1/containers/{box_name}?owner={alice}"),
            &app.admin,
        )
        .await;
    assert_ne!(c["status"], "running", "{c}");

    // Enabled again, with a reset password: the old one no longer works.
    let (status, body) = call(
        &app,
        Method::PATCH,
        &user,
        &app.admin,
        json!({"disabled": false, "password": "reset-password-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["disabled"], false);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({"username": alice, "password": "password-123"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let at = app.login(&alice, "reset-password-1").await;
    let other_session = app.login(&alice, "reset-password-1").await;

    // Their sessions: listed with the current one marked, each may be ended; nobody
    // else's.
    let third = app.login(&alice, "reset-password-1").await;
    let (status, sessions) = app.get("/api/v1/sessions", &third).await;
    assert_eq!(status, StatusCode::OK, "{sessions}");
    let list = sessions.as_array().unwrap();
    assert_eq!(list.len(), 3, "{sessions}");
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let third_id = list.iter().find(|s| s["current"] == true).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, admin_sessions) = app.get("/api/v1/sessions", &app.admin).await;
    let admins = admin_sessions[0]["id"].as_str().unwrap().to_string();
    let (status, _) = app.delete(&format!("/api/v1/sessions/{admins}"), &at).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .delete(&format!("/api/v1/sessions/{third_id}"), &at)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/me", &third).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/api/v1/me", &app.admin).await.0, StatusCode::OK);

    // Their own password: the current one is asked for, a short one refused.
    let change = |current: &str, new: &str| {
        let body = json!({"current": current, "new": new});
        let (app, at) = (&app, at.clone());
        async move { call(app, Method::PUT, "/api/v1/me/password", &at, body).await }
    };
    let (status, body) = change("wrong-password", "another-pass-2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "wrong_password");
    let (status, body) = change("reset-password-1", "short").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = change("reset-password-1", "another-pass-2").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        app.get("/api/v1/me", &at).await.0,
        StatusCode::OK,
        "this session goes on"
    );
    assert_eq!(
        app.get("/api/v1/me", &other_session).await.0,
        StatusCode::UNAUTHORIZED
    );
    app.login(&alice, "another-pass-2").await;

    // Deleting: refused while they have containers, unless asked to delete them too.
    let (status, body) = app
        .call(Method::DELETE, &user, Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("containers=delete"));
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{user}?containers=maybe"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get("/api/v1/me", &at).await.0,
        StatusCode::OK,
        "a refused delete changes nothing"
    );
    build_image(&app, &at, "mine:1").await;
    let image = format!("wm/{alice}/mine:1");
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("{user}?containers=delete&images=delete&storage=delete"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(app.get("/api/v1/me", &at).await.0, StatusCode::UNAUTHORIZED);
    let (_, users) = app.get("/api/v1/admin/users", &app.admin).await;
    assert!(!names(&users).contains(&alice));
    assert!(
        !app.engine_containers()
            .contains(&app.engine_name(&alice, "box")),
        "the container is gone from the engine"
    );
    let (_, images) = app.get("/api/v1/images", &app.admin).await;
    assert!(
        !images.to_string().contains(&image),
        "the image is gone: {images}"
    );
    let (_, log) = app
        .get(&format!("/api/v1/admin/audit?target={alice}"), &app.admin)
        .await;
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["user.role", "user.disable", "user.enable", "user.delete"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

#[tokio::test]
async fn the_audit_log_filters_pages_and_exports() {
    let app = spawn_app().await;
    let (bob, bt) = app.student().await;
    for i in 0..3 {
        let (status, _) = app
            .post("/api/v1/tokens", &bt, json!({"name": format!("t{i}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // A request no route takes still names its sender.
    let (status, _) = app.post("/api/v1/no-such-thing", &bt, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, mine) = audit(&app, format!("actor={bob}")).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let actions: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "request.unmatched",
            "token.create",
            "token.create",
            "token.create",
            "session.login"
        ]
    );
    assert!(mine
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["source"] == "127.0.0.1"));

    // Pages, newest first: two, then the rest from the last `at`.
    let (_, page1) = audit(&app, format!("actor={bob}&action=token.create&limit=2")).await;
    assert_eq!(page1.as_array().unwrap().len(), 2);
    let before = page1[1]["at"].as_str().unwrap();
    let (_, page2) = audit(
        &app,
        format!(
            "actor={bob}&action=token.create&before={}",
            urlencode(before)
        ),
    )
    .await;
    assert_eq!(page2.as_array().unwrap().len(), 1);
    assert!(page2[0]["at"].as_str().unwrap() < before);
    let (_, prefix) = audit(&app, format!("actor={bob}&action=session.")).await;
    assert_eq!(prefix.as_array().unwrap().len(), 1);
    let (_, later) = audit(&app, "since=2099-01-01T00:00:00Z".into()).await;
    assert_eq!(later, json!([]));

    // Bad filters are refused with what is wrong.
    for q in ["since=yesterday", "before=1", "limit=-1", "colour=red"] {
        let (status, body) = audit(&app, q.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
    }

    // The export: JSON lines, oldest first, same fields.
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/admin/audit/export?actor={bob}")))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["action"], "session.login");
    assert_eq!(lines[4]["action"], "request.unmatched");
    for key in [
        "at", "actor", "action", "target", "result", "detail", "source",
    ] {
        assert!(lines[0].get(key).is_some(), "{key} in {}", lines[0]);
    }
    assert_eq!(
        app.get("/api/v1/admin/audit/export", &bt).await.0,
        StatusCode::FORBIDDEN
    );
}

async fn audit(app: &TestApp, q: String) -> (StatusCode, Value) {
    app.get(&format!("/api/v1/admin/audit?{q}"), &app.admin)
        .await
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn in_the_browser_a_teacher_runs_a_course_and_an_admin_disables_an_account() {
    let app = spawn_app().await;
    let (teacher, _) = app.user("tc", "teacher").await;
    let (member, mt) = app.student().await;
    let c = app
        .create(&mt, json!({"name": "lab", "image": test_image().await}))
        .await;
    let lab = c["name"].as_str().unwrap().to_string();
    let b = Browser::start("ja,en;q=0.5").await;

    // The teacher creates a course, enrols the student, and stops their container.
    log_in(&b, &app, &teacher, "password-123").await;
    b.goto(&app.url("/courses")).await;
    page_has(&b, "コースを作成").await;
    b.fill("#course-name", "演習A").await;
    b.fill("#course-term", "2026 前期").await;
    b.click("form[action='/courses'] button[type=submit]").await;
    page_has(&b, "受講者はまだいません").await;
    let course_url = b.url().await;
    b.fill("#enrol-users", &format!("{member}\nnobody-at-all"))
        .await;
    b.click("form[action$='/members'] button[type=submit]")
        .await;
    page_has(&b, "アカウントのないユーザー名").await;
    b.goto(&course_url).await;
    page_has(&b, "受講者はまだいません").await;
    b.fill("#enrol-users", &member).await;
    b.click("form[action$='/members'] button[type=submit]")
        .await;
    page_has(&b, "登録しました").await;
    let row = format!("tr[data-container='{lab}'] form[action$='/stop'] button");
    b.click(&row).await;
    page_has(&b, "停止しました").await;
    assert_ne!(
        app.get(&format!("/api/v1/containers/{lab}"), &mt).await.1["status"],
        "running"
    );
    log_out(&b).await;

    // The student sees the course, not the members' containers; changes their password.
    log_in(&b, &app, &member, "password-123").await;
    b.goto(&app.url("/courses")).await;
    page_has(&b, "演習A").await;
    b.goto(&app.url("/account")).await;
    b.fill("#current", "wrong-password").await;
    b.fill("#new", "a-new-password").await;
    b.click("form[action='/account/password'] button[type=submit]")
        .await;
    page_has(&b, "現在のパスワードが正しくありません").await;
    b.goto(&app.url("/account")).await;
    b.fill("#current", "password-123").await;
    b.fill("#new", "a-new-password").await;
    b.click("form[action='/account/password'] button[type=submit]")
        .await;
    page_has(&b, "パスワードを変更しました").await;
    log_out(&b).await;

    // The admin disables the student, after a confirmation, and finds it in the log.
    log_in(&b, &app, "admin", ADMIN_PASSWORD).await;
    b.goto(&app.url(&format!("/admin/users/{member}"))).await;
    b.click("input[name=op][value=disable] ~ button").await;
    page_has(&b, "このアカウントを今すぐ無効にしますか").await;
    assert!(
        !app.get("/api/v1/admin/users", &app.admin)
            .await
            .1
            .to_string()
            .contains("\"disabled\":true"),
        "nothing happens before the confirmation"
    );
    b.click("#main form button.danger").await;
    page_has(&b, "アカウントを変更しました").await;
    assert_eq!(app.get("/api/v1/me", &mt).await.0, StatusCode::UNAUTHORIZED);
    b.goto(&app.url(&format!("/admin/audit?actor=admin&target={member}")))
        .await;
    page_has(&b, "user.disable").await;
    let export = b
        .attr(&b.find("#audit-export").await, "href")
        .await
        .unwrap();
    assert!(export.contains(&format!("target={member}")), "{export}");
}

/// A course made by `token`'s teacher, with `members` enrolled; answers its id.
async fn course_with(app: &TestApp, token: &str, members: &[&str]) -> String {
    let (status, course) = app
        .post("/api/v1/courses", token, json!({"name": "lab course"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let id = course["id"].as_str().unwrap().to_string();
    if !members.is_empty() {
        let (status, body) = app
            .post(
                &format!("/api/v1/courses/{id}/members"),
                token,
                json!({ "users": members }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    id
}

#[tokio::test]
async fn students_join_with_the_courses_code_and_wrong_codes_tell_nothing() {
    let app = spawn_app().await;
    let (teacher, tt) = app.user("tc", "teacher").await;
    let (_, other_teacher) = app.user("tc", "teacher").await;
    let (student, st) = app.student().await;
    let (guesser, gt) = app.student().await;
    let id = course_with(&app, &tt, &[]).await;
    let base = format!("/api/v1/courses/{id}");
    let code_path = format!("{base}/join-code");
    assert_eq!(app.get(&base, &tt).await.1["join_code"], Value::Null);

    // Only the course's teacher makes its code: another teacher is told there is no such
    // course, and nothing changes.
    let (status, _) = call(&app, Method::PUT, &code_path, &other_teacher, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&base, &tt).await.1["join_code"], Value::Null);
    let (status, course) = call(&app, Method::PUT, &code_path, &tt, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{course}");
    let code = course["join_code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 11, "{code}");
    assert_eq!(&code[5..6], "-");

    // A wrong code, whatever it looks like, is the same 400 and enrols nobody.
    let join = |token: String, code: String| {
        let app = &app;
        async move {
            app.post("/api/v1/courses/join", &token, json!({ "code": code }))
                .await
        }
    };
    let mut answers = Vec::new();
    for wrong in ["nope", "AAAAA-AAAAA", "", &code[..10]] {
        let (status, body) = join(st.clone(), wrong.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{wrong}: {body}");
        assert_eq!(body["error"]["code"], "invalid_join_code");
        answers.push(body["error"]["message"].clone());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(app.get(&base, &tt).await.1["members"], json!([]));
    let (status, body) = app
        .post("/api/v1/courses/join", &st, json!({"code": code, "x": 1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The right code, however it is typed, enrols the student; they do not see the code.
    let typed = format!(" {} ", code.replace('-', "").to_lowercase());
    let (status, joined) = join(st.clone(), typed).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["id"], id.as_str());
    assert_eq!(joined["members"], json!([student]));
    assert_eq!(joined["join_code"], Value::Null);
    assert_eq!(app.get(&base, &st).await.1["join_code"], Value::Null);
    assert_eq!(join(st.clone(), code.clone()).await.0, StatusCode::OK);
    // A member does not make codes.
    let (status, _) = call(&app, Method::PUT, &code_path, &st, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A new code: the old one no longer enrols. Turned off: no code does.
    let (_, renewed) = call(&app, Method::PUT, &code_path, &tt, json!({})).await;
    let new_code = renewed["join_code"].as_str().unwrap().to_string();
    assert_ne!(new_code, code);
    assert_eq!(
        join(gt.clone(), code.clone()).await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, off) = app.delete(&code_path, &tt).await;
    assert_eq!(status, StatusCode::OK, "{off}");
    assert_eq!(off["join_code"], Value::Null);
    assert_eq!(
        join(gt.clone(), new_code.clone()).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.get(&base, &tt).await.1["members"], json!([student]));

    // Guessing is limited like logins: after the failures a login may have, even the right
    // code is refused for a while.
    let (_, renewed) = call(&app, Method::PUT, &code_path, &tt, json!({})).await;
    let code = renewed["join_code"].as_str().unwrap().to_string();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(join(gt.clone(), "BBBBB-BBBBB".into()).await.0);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let (status, body) = join(gt.clone(), code.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(app.get(&base, &tt).await.1["members"], json!([student]));

    // Audited: who joined which course; the code is never written down.
    let (_, log) = app
        .get("/api/v1/admin/audit?action=course.join", &app.admin)
        .await;
    let entries = log.as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["actor"] == student.as_str()
            && e["target"] == id.as_str()
            && e["result"] == 200),
        "{log}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["actor"] == guesser.as_str() && e["result"] == 400),
        "{log}"
    );
    assert!(!log.to_string().contains(&code[..5]), "{log}");
    let (_, log) = app
        .get(
            &format!("/api/v1/admin/audit?actor={teacher}&action=course.join_code"),
            &app.admin,
        )
        .await;
    assert!(log.as_array().unwrap().len() >= 3, "{log}");
}

#[tokio::test]
async fn a_course_names_the_images_shared_with_it_and_members_see_them_first() {
    let app = spawn_app().await;
    let (teacher, tt) = app.user("tc", "teacher").await;
    let (member, mt) = app.student().await;
    let (_, ot) = app.student().await;
    let (_, other_teacher) = app.user("tc", "teacher").await;
    let id = course_with(&app, &tt, &[&member]).await;
    build_image(&app, &tt, "ex:3").await;
    build_image(&app, &tt, "aaa:1").await;
    let reference = format!("wm/{teacher}/ex:3");
    let unnamed = format!("wm/{teacher}/aaa:1");
    for r in [&reference, &unnamed] {
        let (status, body) = call(
            &app,
            Method::PATCH,
            &format!("/api/v1/images/{}", encode_ref(r)),
            &tt,
            json!({ "courses": [id] }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let images = format!("/api/v1/courses/{id}/images");
    let note =
        json!({"image": reference, "title": "Exercise 3", "note": "use this for exercise 3"});

    // Refused: a member, another teacher, an image not shared with the course, bad text.
    assert_eq!(
        call(&app, Method::PUT, &images, &mt, note.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, Method::PUT, &images, &other_teacher, note.clone())
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = call(
        &app,
        Method::PUT,
        &images,
        &tt,
        json!({"image": test_image().await, "title": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for bad in [
        json!({"image": reference, "title": "x".repeat(101)}),
        json!({"image": reference, "note": "a\u{7}b"}),
        json!({"image": reference, "colour": "red"}),
    ] {
        let (status, body) = call(&app, Method::PUT, &images, &tt, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (_, list) = app.get(&images, &tt).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|i| i["title"].is_null()),
        "{list}"
    );

    let (status, list) = call(&app, Method::PUT, &images, &tt, note).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let named = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ref"] == reference.as_str())
        .unwrap();
    assert_eq!(named["title"], "Exercise 3");
    assert_eq!(named["note"], "use this for exercise 3");

    // The member sees the course's images first, the named one before the other, with
    // the course's name and note; outsiders see neither the list nor the images.
    let (status, theirs) = app.get(&images, &mt).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(theirs, list);
    assert_eq!(app.get(&images, &ot).await.0, StatusCode::NOT_FOUND);
    let (_, visible) = app.get("/api/v1/images", &mt).await;
    assert_eq!(visible[0]["ref"], reference.as_str(), "{visible}");
    assert_eq!(visible[0]["course_notes"][0]["course"], id.as_str());
    assert_eq!(visible[0]["course_notes"][0]["title"], "Exercise 3");
    assert_eq!(visible[1]["ref"], unnamed.as_str(), "{visible}");
    assert_eq!(visible[1]["course_notes"], json!([]));

    // The owner's sharing again keeps the name; unsharing takes it with the share.
    let path = format!("/api/v1/images/{}", encode_ref(&reference));
    call(
        &app,
        Method::PATCH,
        &path,
        &tt,
        json!({"courses": [id], "description": "d"}),
    )
    .await;
    let (_, visible) = app.get("/api/v1/images", &mt).await;
    assert_eq!(visible[0]["course_notes"][0]["title"], "Exercise 3");
    call(&app, Method::PATCH, &path, &tt, json!({"courses": []})).await;
    call(&app, Method::PATCH, &path, &tt, json!({"courses": [id]})).await;
    let (_, visible) = app.get("/api/v1/images", &mt).await;
    assert!(!visible.to_string().contains("Exercise 3"), "{visible}");

    // Emptied: the name goes.
    call(
        &app,
        Method::PUT,
        &images,
        &tt,
        json!({"image": reference, "title": "Again"}),
    )
    .await;
    let (_, list) = call(
        &app,
        Method::PUT,
        &images,
        &tt,
        json!({"image": reference, "title": "", "note": ""}),
    )
    .await;
    assert!(!list.to_string().contains("Again"), "{list}");
    let (_, log) = app
        .get(
            &format!("/api/v1/admin/audit?actor={teacher}&action=course.image"),
            &app.admin,
        )
        .await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == id.as_str() && e["result"] == 200),
        "{log}"
    );
}

#[tokio::test]
async fn a_courses_quota_comes_between_the_role_and_the_users_overrides() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.quotas.insert(
        wm_domain::Role::Student,
        wm_console::config::QuotaSettings {
            containers: Some(1),
            ..wm_console::config::QuotaSettings::unlimited()
        },
    );
    let app = spawn_with(config, data).await;
    let (_, tt) = app.user("tc", "teacher").await;
    let (member, mt) = app.student().await;
    let (_, ot) = app.student().await;
    let small = course_with(&app, &tt, &[&member]).await;
    let large = course_with(&app, &tt, &[&member]).await;
    let quota = |id: &str| format!("/api/v1/courses/{id}/quota");
    let mine = |token: String| {
        let app = &app;
        async move { app.get("/api/v1/me", &token).await.1["quota"]["containers"].clone() }
    };
    assert_eq!(mine(mt.clone()).await, 1);

    // Administrators only; bad values change nothing.
    let (status, _) = call(
        &app,
        Method::PUT,
        &quota(&small),
        &tt,
        json!({"containers": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for bad in [
        json!({"containers": -2}),
        json!({"cpus": "many"}),
        json!({"colour": 1}),
    ] {
        let (status, body) = call(&app, Method::PUT, &quota(&small), &app.admin, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = call(
        &app,
        Method::PUT,
        "/api/v1/courses/nothing-here/quota",
        &app.admin,
        json!({"containers": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(mine(mt.clone()).await, 1);

    // A course's value replaces the role's for its members, the most generous course's
    // when there are several; others keep the role's.
    let (status, c) = call(
        &app,
        Method::PUT,
        &quota(&small),
        &app.admin,
        json!({"containers": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["quota"]["containers"], 2);
    assert_eq!(c["quota"]["running"], Value::Null);
    assert_eq!(mine(mt.clone()).await, 2);
    assert_eq!(mine(ot.clone()).await, 1);
    call(
        &app,
        Method::PUT,
        &quota(&large),
        &app.admin,
        json!({"containers": 3}),
    )
    .await;
    assert_eq!(mine(mt.clone()).await, 3);
    assert_eq!(
        app.get(&format!("/api/v1/courses/{large}"), &mt).await.1["quota"]["containers"],
        3
    );
    let (_, all) = app.get("/api/v1/admin/quotas", &app.admin).await;
    let row = all
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["user"] == member.as_str())
        .unwrap();
    assert_eq!(row["quota"]["containers"], 3, "{row}");

    // Enforced: three containers, not four.
    let image = test_image().await;
    for n in ["q1", "q2", "q3"] {
        app.create(&mt, json!({"name": n, "image": image})).await;
    }
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &mt,
            json!({"name": "q4", "image": image}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");

    // The user's own override comes first; without it the courses' quota is back.
    let user_quota = format!("/api/v1/admin/users/{member}/quota");
    call(
        &app,
        Method::PUT,
        &user_quota,
        &app.admin,
        json!({"containers": 1}),
    )
    .await;
    assert_eq!(mine(mt.clone()).await, 1);
    app.delete(&user_quota, &app.admin).await;
    assert_eq!(mine(mt.clone()).await, 3);

    // No limit is the most generous of all; cleared, the role's applies again.
    call(
        &app,
        Method::PUT,
        &quota(&small),
        &app.admin,
        json!({"containers": -1}),
    )
    .await;
    assert_eq!(mine(mt.clone()).await, Value::Null);
    for id in [&small, &large] {
        let (status, c) = app.delete(&quota(id), &app.admin).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert_eq!(c["quota"], Value::Null);
    }
    assert_eq!(mine(mt.clone()).await, 1);
    // Out of the course, out of its quota.
    call(
        &app,
        Method::PUT,
        &quota(&large),
        &app.admin,
        json!({"containers": 3}),
    )
    .await;
    assert_eq!(mine(mt.clone()).await, 3);
    app.delete(&format!("/api/v1/courses/{large}/members/{member}"), &tt)
        .await;
    assert_eq!(mine(mt.clone()).await, 1);
}

#[tokio::test]
async fn a_teacher_views_a_members_container_read_only_and_nothing_outside_the_course() {
    let app = spawn_app().await;
    let (teacher, tt) = app.user("tc", "teacher").await;
    let (_, other_teacher) = app.user("tc", "teacher").await;
    let (member, mt) = app.student().await;
    let (outsider, ot) = app.student().await;
    let id = course_with(&app, &tt, &[&member]).await;
    let image = test_image().await;
    let mine = app
        .create(&mt, json!({"name": "lab", "image": image, "ports": [80]}))
        .await["name"]
        .as_str()
        .unwrap()
        .to_string();
    let theirs = app
        .create(&ot, json!({"name": "lab", "image": image}))
        .await["name"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("/api/v1/courses/{id}/containers");

    // The course's table: status, image, host, ports, age and what it uses now.
    let (status, list) = app.get(&base, &tt).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(names(&list), std::slice::from_ref(&mine));
    let row = &list[0];
    assert_eq!(row["status"], "running");
    assert_eq!(row["owner"], member.as_str());
    assert_eq!(row["ports"][0]["guest"], 80);
    assert!(row["created_at"].is_string() && row["host"].is_string());
    assert!(
        row["usage"]["cpu_seconds"].as_f64().unwrap() >= 0.0,
        "{row}"
    );
    assert!(row["usage"]["memory"].as_u64().unwrap() > 0, "{row}");

    // One container, read only.
    let (status, c) = app.get(&format!("{base}/{mine}"), &tt).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["name"], mine.as_str());
    assert_eq!(c["image"], image);
    assert!(c["usage"]["memory"].as_u64().unwrap() > 0, "{c}");
    // Stopped: shown without usage.
    app.post(&format!("{base}/{mine}/stop"), &tt, json!({}))
        .await;
    let (_, c) = app.get(&format!("{base}/{mine}"), &tt).await;
    assert_eq!(c["usage"], Value::Null, "{c}");
    app.post(&format!("{base}/{mine}/start"), &tt, json!({}))
        .await;

    // Outside the course: the same 404 as a container that does not exist, for the view
    // as for every other course path; the member is told only the teacher may; another
    // teacher does not see the course at all.
    let missing = format!("{outsider}-nothing");
    let (s1, b1) = app.get(&format!("{base}/{theirs}"), &tt).await;
    let (s2, b2) = app.get(&format!("{base}/{missing}"), &tt).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
        "{b1}"
    );
    assert_eq!(b1["error"]["code"], b2["error"]["code"]);
    assert_eq!(
        b1["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&theirs, "X"),
        b2["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&missing, "X")
    );
    assert_eq!(
        app.get(&format!("{base}/{mine}"), &other_teacher).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("{base}/{mine}"), &mt).await.0,
        StatusCode::FORBIDDEN
    );
    // Nothing reaches inside: no exec, files or terminal for the teacher, here or on the
    // owner's routes.
    for (m, path) in [
        (Method::POST, format!("{base}/{mine}/exec")),
        (Method::GET, format!("{base}/{mine}/files?path=/etc")),
        (Method::POST, format!("/api/v1/containers/{mine}/exec")),
        (
            Method::GET,
            format!("/api/v1/containers/{mine}/files?path=/etc"),
        ),
        (Method::GET, format!("/api/v1/containers/{mine}/terminal")),
    ] {
        let (status, body) = app
            .call(m.clone(), &path, Some(&tt), Some(json!({"cmd": ["true"]})))
            .await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
            "{m} {path}: {status} {body}"
        );
    }

    // Every look is audited with the teacher's name, the refused ones too.
    let (_, log) = app
        .get(
            &format!("/api/v1/admin/audit?actor={teacher}&action=container.view"),
            &app.admin,
        )
        .await;
    let entries = log.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["target"] == mine.as_str() && e["result"] == 200),
        "{log}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["target"] == theirs.as_str() && e["result"] == 404),
        "{log}"
    );
}

/// A student's namespace carries a label of each course they are enrolled in, set at the
/// create of a kubernetes container and kept in step at each later visit (here, a
/// kubeconfig); nothing else of the namespace changes. The course's (Docker) host labels
/// do not stop the create.
async fn namespaces_carry_their_courses(app: TestApp, server: &KubeApiServer) {
    let (_, tt) = app.user("tc", "teacher").await;
    let (member, mt) = app.student().await;
    // The course's host labels are the Docker hosts': its members' kubernetes containers
    // go without them.
    let (status, course) = app
        .post(
            "/api/v1/courses",
            &tt,
            json!({"name": "cluster course", "host_labels": ["gpu"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let id = course["id"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(
            &format!("/api/v1/courses/{id}/members"),
            &tt,
            json!({ "users": [member] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let label = format!("wm.course.{id}");
    let c = app
        .create(
            &mt,
            json!({"name": "web", "image": "nginx", "backend": "kubernetes"}),
        )
        .await;
    assert_eq!(c["backend"], "kubernetes", "{c}");
    let labels = || {
        server
            .object("namespaces", "", &member)
            .expect("the member's namespace")["metadata"]["labels"]
            .clone()
    };
    assert_eq!(labels()[&label], "true", "{}", labels());
    assert_eq!(labels()["wm.owner"], member.as_str());
    let (status, _) = app
        .delete(&format!("/api/v1/courses/{id}/members/{member}"), &tt)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(Method::GET, "/api/v1/kubeconfig", Some(&mt), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(labels().get(&label).is_none(), "{}", labels());
    assert_eq!(labels()["pod-security.kubernetes.io/enforce"], "baseline");
    let (status, _) = app
        .delete(&format!("/api/v1/containers/{member}-web"), &mt)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn course_members_namespaces_carry_the_courses_label() {
    let server = KubeApiServer::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.kube = Some(kube_settings(&server, data.path()));
    namespaces_carry_their_courses(spawn_with(config, data).await, &server).await;
}

#[tokio::test]
async fn course_labels_go_through_a_kubernetes_agent() {
    let server = KubeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kube = wm_kube::Kube::new(kube_settings(&server, dir.path()))
        .await
        .unwrap();
    let token = "kubernetes-agent-token-courses-0123";
    let router =
        wm_agent::kube::router(std::sync::Arc::new(kube), wm_agent::AgentToken::new(token));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_url = format!("http://{}", listener.local_addr().unwrap());
    let agent = tokio::spawn(wm_agent::serve(
        listener,
        router,
        None,
        std::future::pending(),
    ));
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.kube_agent = Some(agent_url);
    config.agent.token = Some(wm_console::config::Secret::new(token));
    namespaces_carry_their_courses(spawn_with(config, data).await, &server).await;
    agent.abort();
}
