//! One full name, two owners (issue 12, item 9). User names may hold `-`, so user `ab-c`'s
//! container `web` and user `ab`'s `c-web` are both `ab-c-web` to people. They are two
//! containers: both can be made, each owner sees and acts on their own only, the engine
//! names them apart, an administrator is asked whose, and containers made by earlier
//! versions (named `<owner>-<short>` on the engine) are still found and adopted.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wm_testkit::{docker, inspect, unique};

/// A student named exactly `name`; returns their token.
async fn student_named(app: &TestApp, name: &str) -> String {
    let (status, body) = app
        .post(
            "/api/v1/admin/users",
            &app.admin,
            json!({"name": name, "password": "password-123", "role": "student"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.login(name, "password-123").await
}

async fn exec(app: &TestApp, token: &str, path: &str, cmd: &str) -> (StatusCode, Value) {
    app.post(&format!("{path}/exec"), token, json!({"cmd": cmd}))
        .await
}

fn names(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["owner"].as_str().unwrap().to_string(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn one_full_name_is_two_owners_containers() {
    let app = spawn_app().await;
    let image = test_image().await;
    let ab = unique("ab");
    let abc = format!("{ab}-c");
    let (t_abc, t_ab) = (
        student_named(&app, &abc).await,
        student_named(&app, &ab).await,
    );
    let full = format!("{ab}-c-web");

    let first = app
        .create(
            &t_abc,
            json!({"name": "web", "image": image, "env": "WHO=first"}),
        )
        .await;
    assert_eq!(first["name"], full.as_str());
    assert_eq!(first["owner"], abc.as_str());
    // The second owner's container of the same full name is no conflict, and says
    // nothing of the first.
    let (status, second) = app
        .post(
            "/api/v1/containers",
            &t_ab,
            json!({"name": "c-web", "image": image, "env": "WHO=second"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["name"], full.as_str());
    assert_eq!(second["owner"], ab.as_str());
    assert_eq!(second["status"], "running");

    // A name twice for the same owner is still a conflict, for that owner only.
    let (status, again) = app
        .post(
            "/api/v1/containers",
            &t_ab,
            json!({"name": "c-web", "image": image}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("you already have a container named c-web"),
        "{again}"
    );

    // Two containers on the engine, each under a name of its own, with its own labels.
    let engine_first = format!("{}.{abc}.web", app.instance);
    let engine_second = format!("{}.{ab}.c-web", app.instance);
    for (engine, owner, short) in [(&engine_first, &abc, "web"), (&engine_second, &ab, "c-web")] {
        let i = inspect("container", engine).unwrap_or_else(|| panic!("{engine} exists"));
        assert_eq!(i["Config"]["Labels"]["wm.owner"], owner.as_str());
        assert_eq!(i["Config"]["Labels"]["wm.name"], short);
    }

    // Each owner lists their own only.
    let (_, list) = app.get("/api/v1/containers", &t_abc).await;
    assert_eq!(names(&list), [(abc.clone(), full.clone())]);
    let (_, list) = app.get("/api/v1/containers", &t_ab).await;
    assert_eq!(names(&list), [(ab.clone(), full.clone())]);

    // The same path is each caller's own container.
    let path = format!("/api/v1/containers/{full}");
    let (status, out) = exec(&app, &t_abc, &path, "echo $WHO").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["stdout"], "first\n");
    let (status, out) = exec(&app, &t_ab, &path, "echo $WHO").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["stdout"], "second\n");
    let (status, mine) = app.get(&path, &t_ab).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["owner"], ab.as_str());

    // Stopping one leaves the other running.
    let (status, stopped) = app.post(&format!("{path}/stop"), &t_ab, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "exited");
    let (_, other) = app.get(&path, &t_abc).await;
    assert_eq!(other["status"], "running", "{other}");
    assert_eq!(
        inspect("container", &engine_first).unwrap()["State"]["Running"],
        true
    );

    // An administrator is asked whose, and gets the one named by `owner`.
    let (status, ambiguous) = app.get(&path, &app.admin).await;
    assert_eq!(status, StatusCode::CONFLICT, "{ambiguous}");
    assert_eq!(ambiguous["error"]["code"], "ambiguous_name");
    assert!(
        ambiguous["error"]["message"]
            .as_str()
            .unwrap()
            .contains("?owner="),
        "{ambiguous}"
    );
    let (status, picked) = app.get(&format!("{path}?owner={ab}"), &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{picked}");
    assert_eq!(picked["owner"], ab.as_str());
    assert_eq!(picked["status"], "exited");
    let (status, _) = app
        .get(&format!("{path}?owner=nobody{}", unique("")), &app.admin)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Anyone else naming another owner finds nothing.
    let (status, _) = app.get(&format!("{path}?owner={ab}"), &t_abc).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, out) = app
        .post(
            &format!("{path}/exec?owner={ab}"),
            &t_abc,
            json!({"cmd": "true"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{out}");

    // Deleting one removes it only.
    let (status, _) = app.delete(&path, &t_abc).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(inspect("container", &engine_first).is_none());
    assert!(inspect("container", &engine_second).is_some());
    let (_, list) = app.get("/api/v1/containers", &t_ab).await;
    assert_eq!(names(&list), [(ab.clone(), full.clone())]);
    // With one left, an administrator needs no `owner`.
    let (status, only) = app.get(&path, &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{only}");
    assert_eq!(only["owner"], ab.as_str());
    let (status, _) = app.delete(&path, &t_ab).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(app.engine_containers().is_empty());
}

#[tokio::test]
async fn containers_of_earlier_versions_are_found_and_adopted() {
    let data = tempfile::tempdir().unwrap();
    let config = test_config(data.path());
    let mut first = spawn_with(config.clone(), tempfile::tempdir().unwrap()).await;
    let image = test_image().await;
    let ab = unique("ab");
    let abc = format!("{ab}-c");
    let t_abc = student_named(&first, &abc).await;
    let t_ab = student_named(&first, &ab).await;
    first.stop_server().await;
    let instance = first.instance.clone();
    // Nothing of this instance is on the engine yet, so dropping `first` removes nothing.
    drop(first);

    // A container made the way earlier versions made them: named `<owner>-<short>` on
    // the engine, with the owner and short name in its labels.
    let legacy = format!("{abc}-web");
    let out = docker(&[
        "run",
        "-d",
        "--name",
        &legacy,
        "--label",
        "wm.managed=true",
        "--label",
        &format!("wm.owner={abc}"),
        "--label",
        "wm.name=web",
        "--label",
        &format!("wm.instance={instance}"),
        "--label",
        "whalemountain.test=1",
        "-e",
        "WHO=legacy",
        image,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let app = spawn_with(config, data).await;
    assert_eq!(app.instance, instance);
    let (status, report) = app
        .post("/api/v1/admin/reconcile", &app.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let (_, list) = app.get("/api/v1/containers", &t_abc).await;
    assert_eq!(names(&list), [(abc.clone(), legacy.clone())], "{report}");
    assert_eq!(list[0]["status"], "running");

    // The other owner of the same full name makes theirs beside it, on its own name.
    let (status, theirs) = app
        .post(
            "/api/v1/containers",
            &t_ab,
            json!({"name": "c-web", "image": image, "env": "WHO=new"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let (_, list) = app.get("/api/v1/containers", &t_ab).await;
    assert_eq!(names(&list), [(ab.clone(), legacy.clone())]);

    // The old container keeps working under its old name, for its owner only.
    let path = format!("/api/v1/containers/{legacy}");
    let (status, out) = exec(&app, &t_abc, &path, "echo $WHO").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["stdout"], "legacy\n");
    let (_, out) = exec(&app, &t_ab, &path, "echo $WHO").await;
    assert_eq!(out["stdout"], "new\n");
    let (status, stopped) = app.post(&format!("{path}/stop"), &t_abc, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(
        inspect("container", &legacy).unwrap()["State"]["Running"],
        false
    );
    let (_, reconciled) = app
        .post("/api/v1/admin/reconcile", &app.admin, json!({}))
        .await;
    assert_eq!(
        reconciled["adopted"],
        json!([]),
        "adopted once: {reconciled}"
    );
    assert_eq!(reconciled["gone"], json!([]), "{reconciled}");
    let (status, _) = app.delete(&path, &t_abc).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(inspect("container", &legacy).is_none());
    let (_, theirs) = app.get(&path, &t_ab).await;
    assert_eq!(theirs["status"], "running", "{theirs}");
}

/// A network of a user's name, `<instance>-<owner>`, that is not that user's of this
/// installation (another installation on the same engine can make the same name:
/// `wm` + `a-b` and `wm-a` + `b`) is never joined: the create is refused instead.
#[tokio::test]
async fn another_installations_network_of_the_same_name_is_never_joined() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, token) = app.student().await;
    let network = format!("{}-{alice}", app.instance);
    // Another installation's network that happens to have alice's network's name.
    let out = docker(&[
        "network",
        "create",
        "--label",
        "wm.managed=true",
        "--label",
        "wm.instance=another",
        "--label",
        "wm.owner=someone",
        "--label",
        "whalemountain.test=1",
        &network,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, answer) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "web", "image": image}),
        )
        .await;
    let kept = inspect("network", &network);
    docker(&["network", "rm", &network]);
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(
        kept.expect("the failed create leaves the other network alone")["Labels"]["wm.owner"],
        "someone"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not yours"),
        "{answer}"
    );
    assert!(app.engine_containers().is_empty(), "nothing joined it");
    let (_, list) = app.get("/api/v1/containers", &token).await;
    assert_eq!(list, json!([]));
}

/// The console's pages: an administrator's links and forms say whose container they
/// mean; a full name alone that two owners share asks which, in English and Japanese.
#[tokio::test]
async fn admin_pages_say_whose_container_they_mean() {
    let app = spawn_app().await;
    let image = test_image().await;
    let ab = unique("ab");
    let abc = format!("{ab}-c");
    let t_abc = student_named(&app, &abc).await;
    let t_ab = student_named(&app, &ab).await;
    app.create(&t_abc, json!({"name": "web", "image": image}))
        .await;
    app.create(&t_ab, json!({"name": "c-web", "image": image}))
        .await;
    let full = format!("{ab}-c-web");
    let text = |v: Value| v.as_str().unwrap_or_default().to_string();

    let (status, admin) = app.get("/admin", &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    let admin = text(admin);
    for owner in [&ab, &abc] {
        assert!(
            admin.contains(&format!("href=\"/containers/{full}?owner={owner}\"")),
            "{owner} in {admin}"
        );
    }

    let (status, page) = app.get(&format!("/containers/{full}"), &app.admin).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(text(page).contains("Several users have a container of this name"));
    let ja = app
        .client
        .get(app.url(&format!("/containers/{full}")))
        .bearer_auth(&app.admin)
        .header("accept-language", "ja")
        .send()
        .await
        .unwrap();
    assert_eq!(ja.status(), StatusCode::CONFLICT);
    assert!(ja
        .text()
        .await
        .unwrap()
        .contains("この名前のコンテナを持つユーザーが複数います"));

    let (status, page) = app
        .get(&format!("/containers/{full}?owner={ab}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    let page = text(page);
    assert!(
        page.contains(&format!("action=\"/containers/{full}/exec?owner={ab}\"")),
        "{page}"
    );
    assert!(page.contains(&format!("/containers/{full}/stop?owner={ab}")));

    // The owner's own page needs no `owner`.
    let (status, page) = app.get(&format!("/containers/{full}"), &t_ab).await;
    assert_eq!(status, StatusCode::OK);
    let page = text(page);
    assert!(
        page.contains(&format!("action=\"/containers/{full}/exec\"")),
        "{page}"
    );
}
