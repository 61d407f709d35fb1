//! Each user's storage, against the real engine: mounted at /data in every container of
//! theirs, outliving them, managed through the API without a container, confined to the
//! user, counted against their storage quota; and files downloaded from containers.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use wm_testkit::inspect;

async fn exec(app: &TestApp, token: &str, container: &str, cmd: &str) -> Value {
    let (status, out) = app
        .post(
            &format!("/api/v1/containers/{container}/exec"),
            token,
            json!({"cmd": cmd}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out
}

async fn upload(
    app: &TestApp,
    token: &str,
    dir: &str,
    files: &[(&str, Vec<u8>)],
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new().text("path", dir.to_string());
    for (name, bytes) in files {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
        );
    }
    app.post_form("/api/v1/storage/files", token, form).await
}

async fn raw(
    app: &TestApp,
    token: &str,
    path: &str,
) -> (StatusCode, Vec<u8>, reqwest::header::HeaderMap) {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, r.bytes().await.unwrap().to_vec(), headers)
}

#[tokio::test]
async fn storage_outlives_containers_and_is_only_its_owners() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let (_, bob) = app.student().await;
    let image = test_image().await;
    app.create(&token, json!({"name": "a", "image": image}))
        .await;
    let out = exec(
        &app,
        &token,
        &format!("{alice}-a"),
        "echo hello > /data/notes.txt",
    )
    .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let (status, _) = app
        .delete(&format!("/api/v1/containers/{alice}-a"), &token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The volume is kept, labelled as hers, and the next container finds the file.
    let volume = format!("{}-{alice}-data", app.instance);
    let v = inspect("volume", &volume).expect("the volume outlives the container");
    assert_eq!(v["Labels"]["wm.owner"], alice.as_str());
    app.create(&token, json!({"name": "b", "image": image}))
        .await;
    let out = exec(&app, &token, &format!("{alice}-b"), "cat /data/notes.txt").await;
    assert_eq!(out["stdout"], "hello\n", "{out}");
    // Without a container, through the API.
    let (status, bytes, headers) = raw(&app, &token, "/api/v1/storage/files?path=/notes.txt").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, b"hello\n");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("notes.txt"));
    let (status, overview) = app.get("/api/v1/storage", &token).await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["mount_path"], "/data");
    assert_eq!(overview["used"], 6, "{overview}");
    assert!(
        overview["quota"].is_null(),
        "the tests' quotas are unlimited"
    );
    let (_, me) = app.get("/api/v1/me", &token).await;
    assert_eq!(me["usage"]["storage"], 6, "{me}");
    // Bob's storage is his own: empty, and hers is not reachable through it.
    let (status, listing) = app.get("/api/v1/storage/files?path=/", &bob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listing, json!([]));
    let (status, e) = app.get("/api/v1/storage/files?path=/notes.txt", &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(e["error"]["code"], "file_not_found");
    let (status, _) = app
        .get(
            &format!("/api/v1/storage/files?path=/../{alice}/notes.txt"),
            &bob,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Deleting her storage is refused while a container of hers uses it; after, it goes.
    let path = format!("/api/v1/admin/users/{alice}/storage");
    let (status, e) = app.delete(&path, &app.admin).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    let (status, volumes) = app.get(&path, &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(volumes[0]["used"], 6, "{volumes}");
    app.delete(&format!("/api/v1/containers/{alice}-b"), &token)
        .await;
    let (status, e) = app.delete(&path, &app.admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{e}");
    assert!(inspect("volume", &volume).is_none());
    let (_, overview) = app.get("/api/v1/storage", &token).await;
    assert_eq!(overview["used"], 0, "{overview}");
}

#[tokio::test]
async fn files_are_listed_uploaded_downloaded_and_deleted_within_the_storage() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let (status, written) = upload(
        &app,
        &token,
        "/docs/2026",
        &[
            ("a.txt", b"alpha".to_vec()),
            ("日本語.txt", b"nihongo".to_vec()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{written}");
    assert_eq!(
        written["written"],
        json!(["/docs/2026/a.txt", "/docs/2026/日本語.txt"])
    );
    let (status, listing) = app
        .get("/api/v1/storage/files?path=/docs/2026", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    let names: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "日本語.txt"]);
    assert_eq!(listing[0]["type"], "file");
    assert_eq!(listing[0]["size"], 5);
    assert!(listing[0]["modified"].as_str().unwrap().ends_with('Z'));
    let (_, root) = app.get("/api/v1/storage/files", &token).await;
    assert_eq!(root[0]["name"], "docs");
    assert_eq!(root[0]["type"], "dir");
    // Replacing a file replaces it whole.
    upload(&app, &token, "docs/2026", &[("a.txt", b"a".to_vec())]).await;
    let (_, bytes, _) = raw(&app, &token, "/api/v1/storage/files?path=docs/2026/a.txt").await;
    assert_eq!(bytes, b"a");
    // A container sees what the API wrote.
    let image = test_image().await;
    app.create(&token, json!({"name": "c", "image": image}))
        .await;
    let out = exec(
        &app,
        &token,
        &format!("{alice}-c"),
        "cat /data/docs/2026/a.txt",
    )
    .await;
    assert_eq!(out["stdout"], "a");
    // Links a container makes are listed, never followed, whatever they point at.
    let out = exec(
        &app,
        &token,
        &format!("{alice}-c"),
        "ln -s / /data/root && ln -s /etc/passwd /data/pw && mkfifo /data/fifo",
    )
    .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let (_, root) = app.get("/api/v1/storage/files?path=/", &token).await;
    let kind = |n: &str| {
        root.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .map(|e| e["type"].clone())
    };
    assert_eq!(kind("root"), Some(json!("symlink")));
    assert_eq!(kind("pw"), Some(json!("symlink")));
    assert_eq!(kind("fifo"), Some(json!("other")));
    for path in ["/root/etc/passwd", "/pw", "/root", "/fifo"] {
        let (status, body, _) =
            raw(&app, &token, &format!("/api/v1/storage/files?path={path}")).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            !String::from_utf8_lossy(&body).contains("root:x:0:0"),
            "{path}"
        );
    }
    let (status, _) = upload(&app, &token, "/root/tmp", &[("planted", b"x".to_vec())]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!std::path::Path::new("/tmp/planted").exists());
    let (status, _) = app
        .delete("/api/v1/storage/files?path=/root/tmp", &token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Removing a link removes the link, not what it points at.
    let (status, _) = app.delete("/api/v1/storage/files?path=/pw", &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(std::path::Path::new("/etc/passwd").exists());
    // Bad input changes nothing.
    for (dir, name) in [("/a/../..", "x"), ("/", "../x"), ("/", "a/../../x")] {
        let (status, e) = upload(&app, &token, dir, &[(name, b"x".to_vec())]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{dir} {name}: {e}");
    }
    let (status, e) = app.delete("/api/v1/storage/files?path=/", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    let (status, _) = app.delete("/api/v1/storage/files?path=/nope", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get("/api/v1/storage/files?path=/docs&host=nowhere", &token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A folder goes with everything in it.
    let (status, _) = app.delete("/api/v1/storage/files?path=/docs", &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let out = exec(&app, &token, &format!("{alice}-c"), "ls /data").await;
    assert!(!out["stdout"].as_str().unwrap().contains("docs"), "{out}");
}

#[tokio::test]
async fn over_the_storage_quota_writes_and_new_containers_are_refused() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let (status, q) = app
        .call(
            Method::PUT,
            &format!("/api/v1/admin/users/{alice}/quota"),
            Some(&app.admin),
            Some(json!({"storage": 1000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    let (status, _) = upload(&app, &token, "/", &[("a", vec![b'a'; 800])]).await;
    assert_eq!(status, StatusCode::CREATED);
    // 800 + 300 > 1000: refused whole, nothing written.
    let (status, e) = upload(
        &app,
        &token,
        "/",
        &[("b", vec![b'b'; 150]), ("c", vec![b'c'; 150])],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"]["code"], "quota_exceeded");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("storage"),
        "{e}"
    );
    let (_, root) = app.get("/api/v1/storage/files", &token).await;
    assert_eq!(root.as_array().unwrap().len(), 1, "{root}");
    // A container may fill it past the quota (the engine does not stop it); then no new
    // container starts until it is freed.
    let image = test_image().await;
    app.create(&token, json!({"name": "w", "image": image}))
        .await;
    let out = exec(
        &app,
        &token,
        &format!("{alice}-w"),
        "dd if=/dev/zero of=/data/big bs=1000 count=2",
    )
    .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    // Also once the container that wrote is gone: a create measures where the user's
    // containers are and where one was removed since the last measurement.
    let (status, _) = app
        .delete(&format!("/api/v1/containers/{alice}-w"), &token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, e) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "x", "image": image}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"]["code"], "quota_exceeded");
    let (_, me) = app.get("/api/v1/me", &token).await;
    assert_eq!(me["usage"]["storage"], 2800, "{me}");
    assert_eq!(me["quota"]["storage"], 1000, "{me}");
    // Freed, it starts.
    let (status, _) = app.delete("/api/v1/storage/files?path=/big", &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.create(&token, json!({"name": "x", "image": image}))
        .await;
}

#[tokio::test]
async fn files_download_from_a_container() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let (_, bob) = app.student().await;
    let image = test_image().await;
    app.create(&token, json!({"name": "d", "image": image}))
        .await;
    let name = format!("{alice}-d");
    exec(
        &app,
        &token,
        &name,
        "mkdir -p /srv/out && printf 'result 42' > /srv/out/r.txt",
    )
    .await;
    let (status, bytes, headers) = raw(
        &app,
        &token,
        &format!("/api/v1/containers/{name}/files?path=/srv/out/r.txt"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, b"result 42");
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["content-length"], "9");
    // A directory comes as a tar archive with everything in it.
    let (status, bytes, headers) = raw(
        &app,
        &token,
        &format!("/api/v1/containers/{name}/files?path=/srv/out"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-tar");
    let mut archive = tar::Archive::new(&bytes[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"out/r.txt".to_string()), "{names:?}");
    // Missing, relative, climbing: refused in words; another user's: missing.
    let (status, e) = app
        .get(
            &format!("/api/v1/containers/{name}/files?path=/nope"),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    for bad in ["srv", "/srv/../etc", ""] {
        let (status, _) = app
            .get(
                &format!("/api/v1/containers/{name}/files?path={bad}"),
                &token,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _) = app
        .get(
            &format!("/api/v1/containers/{name}/files?path=/srv/out/r.txt"),
            &bob,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn directory_storage_is_made_on_first_use_and_its_failures_say_what_failed() {
    // Storage in directories under a root, as a department's home directories.
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.docker.storage.kind = wm_docker::storage::StorageKind::Directory;
    config.docker.storage.root = Some(root.path().display().to_string());
    config.docker.storage.owner = wm_docker::storage::OwnerRule::Fixed;
    config.docker.storage.uid = 1234;
    config.docker.storage.gid = 2345;
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    app.create(&token, json!({"name": "h", "image": image}))
        .await;
    let dir = root.path().join(&alice);
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&dir).expect("made on first use");
    assert_eq!((meta.uid(), meta.gid()), (1234, 2345));
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    exec(
        &app,
        &token,
        &format!("{alice}-h"),
        "echo x > /data/from-container",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(dir.join("from-container")).unwrap(),
        "x\n"
    );
    upload(&app, &token, "/in", &[("f", b"y".to_vec())]).await;
    let meta = std::fs::metadata(dir.join("in/f")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (1234, 2345),
        "written as the storage's owner"
    );
    app.delete(&format!("/api/v1/containers/{alice}-h"), &token)
        .await;
    assert!(
        dir.join("from-container").exists(),
        "kept after the container"
    );

    // A root that is gone: the create says the storage failed, not a name clash, and
    // records nothing.
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.docker.storage.kind = wm_docker::storage::StorageKind::Directory;
    config.docker.storage.root = Some(root.path().join("missing").display().to_string());
    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "h", "image": image}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("storage could not be prepared") && !m.contains("already"),
        "{m}"
    );
    assert!(
        !m.contains(&root.path().display().to_string()),
        "no host path: {m}"
    );
    let (_, list) = app.get("/api/v1/containers", &token).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn the_files_page_lists_uploads_and_deletes_in_the_readers_language() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    upload(&app, &token, "/notes", &[("week1.txt", b"w1".to_vec())]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = post_login_form(&app, &client, &alice, "password-123").await;
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = |path: String, lang: &'static str| {
        let req = client
            .get(app.url(&path))
            .header(reqwest::header::COOKIE, &cookie)
            .header(reqwest::header::ACCEPT_LANGUAGE, lang);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let root = page("/files".into(), "en").await;
    assert!(root.contains("id=\"mount-path\">/data<"), "{root}");
    assert!(root.contains("href=\"/files?path=%2Fnotes\""), "{root}");
    let folder = page("/files?path=/notes".into(), "ja").await;
    assert!(folder.contains("このフォルダにアップロード"), "{folder}");
    assert!(folder.contains("week1.txt"), "{folder}");
    assert!(
        folder.contains("href=\"/api/v1/storage/files?path=%2Fnotes%2Fweek1.txt\""),
        "{folder}"
    );
    // The download link works with the page's session.
    let file = client
        .get(app.url("/api/v1/storage/files?path=%2Fnotes%2Fweek1.txt"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.bytes().await.unwrap().as_ref(), b"w1");
    let at = folder.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = folder[at..at + 64].to_string();
    // Upload into the folder through the page's form, token first.
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("path", "/notes")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"w2".to_vec()).file_name("week2.txt"),
        );
    let r = client
        .post(app.url("/files/upload"))
        .header(reqwest::header::COOKIE, &cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(page("/files?path=/notes".into(), "en")
        .await
        .contains("week2.txt"));
    // Without the token: refused, nothing written.
    let form = reqwest::multipart::Form::new().text("path", "/notes").part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("planted.txt"),
    );
    let r = client
        .post(app.url("/files/upload"))
        .header(reqwest::header::COOKIE, &cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (status, _) = app
        .get("/api/v1/storage/files?path=/notes/planted.txt", &token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Delete the folder from the page.
    let r = client
        .post(app.url("/files/delete"))
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("path", "/notes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/files?path=%2F&notice=file-deleted"
    );
    let root = page("/files?path=%2F&notice=file-deleted".into(), "en").await;
    assert!(root.contains("This folder is empty."), "{root}");
    assert!(root.contains("It was deleted."), "{root}");
}
