//! The console as a newcomer meets it (issue 21, items 1–5), in a real headless Chromium in
//! English and Japanese: a refused form stays on its page with the input kept; refused
//! input is explained in the reader's language (the API's too); an upload may create its
//! directory and is checked against the size limit before it is sent; an image is deleted
//! only after a confirmation that says how many of other users' containers keep it; a
//! failed pull or build stops and says why once. Screenshots go to
//! `<target>/screenshots/`.

mod common;

use common::browser::*;
use common::*;
use reqwest::header::{ACCEPT_LANGUAGE, COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wm_testkit::browser::Browser;

/// A file of `bytes` bytes in a new temporary directory (kept while the guard lives).
fn file_of(name: &str, bytes: usize) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, vec![b'x'; bytes]).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

/// What a command prints in the container, through the API.
async fn run(app: &TestApp, token: &str, container: &str, cmd: &str) -> Value {
    let (status, out) = app
        .post(
            &format!("/api/v1/containers/{container}/exec"),
            token,
            json!({ "cmd": cmd }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out
}

#[tokio::test]
async fn an_upload_to_a_missing_directory_stays_on_the_page_and_may_create_it() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.upload_max_bytes = 1024 * 1024;
    let app = spawn_with(config, data).await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    app.create(&alice_t, json!({"name": "up", "image": image}))
        .await;
    let full = format!("{alice}-up");
    let (_tmp, small) = file_of("hello.txt", 12);
    let (_big, big) = file_of("big.bin", 2 * 1024 * 1024);

    for (lang, accept) in [("en", "en-US,en"), ("ja", "ja,en;q=0.5")] {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url(&format!("/containers/{full}"))).await;
        b.find(&format!("html[lang={lang}]")).await;
        // The limit is told beside the field, before anything is sent.
        let hint = b.text("#file-hint").await;
        let limit = if lang == "en" {
            "At most 1 MiB in all."
        } else {
            "合計 1 MiB まで。"
        };
        assert!(hint.contains(limit), "{hint}");

        // Too large: the page says so at once and sends nothing.
        b.fill("#file", &big).await;
        let said = b.text("#file-size-error").await;
        let too_large = if lang == "en" {
            "more than the limit of 1 MiB"
        } else {
            "上限の 1 MiB を超えています"
        };
        assert!(said.contains(too_large) && said.contains("2 MiB"), "{said}");
        b.click("#upload button[type=submit]").await;
        assert!(
            b.url().await.ends_with(&format!("/containers/{full}")),
            "the form was not sent: {}",
            b.url().await
        );
        shot(&b, &format!("upload-too-large-{lang}")).await;

        // A directory the image does not have: refused on the page, the input kept.
        let dir = format!("/data-{lang}/new");
        b.goto(&app.url(&format!("/containers/{full}"))).await;
        b.fill("#path", &dir).await;
        b.fill("#file", &small).await;
        b.click("#upload button[type=submit]").await;
        let alert = b.text("#upload-error").await;
        let missing = if lang == "en" {
            format!("The directory {dir} does not exist in the container")
        } else {
            format!("ディレクトリ {dir} はコンテナにありません")
        };
        assert!(alert.contains(&missing), "{alert}");
        assert!(
            !alert.contains("conflicts") && !alert.contains("矛盾"),
            "{alert}"
        );
        let path = b.find("#path[aria-invalid=true]").await;
        assert_eq!(b.attr(&path, "value").await.as_deref(), Some(dir.as_str()));
        // Still the container's page, with its way on: every section is there.
        b.find("#exec").await;
        shot(&b, &format!("upload-missing-dir-{lang}")).await;

        // Asked to, the server makes the directory and writes into it.
        b.click("#create").await;
        b.fill("#file", &small).await;
        b.click("#upload button[type=submit]").await;
        b.find("p.notice").await;
        let out = run(
            &app,
            &alice_t,
            &full,
            &format!("ls -ld {dir} && cat {dir}/hello.txt"),
        )
        .await;
        assert_eq!(out["exit_code"], 0, "{out}");
        assert!(
            out["stdout"].as_str().unwrap().contains("xxxxxxxxxxxx"),
            "{out}"
        );
    }
}

#[tokio::test]
async fn an_upload_through_the_api_creates_its_directory_only_when_asked() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    let (_, bob_t) = app.student().await;
    app.create(&alice_t, json!({"name": "api", "image": image}))
        .await;
    let path = format!("/api/v1/containers/{alice}-api/files");
    let form = |create: Option<&str>| {
        let mut f = reqwest::multipart::Form::new().text("path", "/made/by/upload");
        if let Some(c) = create {
            f = f.text("create", c.to_string());
        }
        f.part(
            "file",
            reqwest::multipart::Part::bytes(b"made".to_vec()).file_name("x.txt"),
        )
    };
    let (status, body) = app.post_form(&path, &alice_t, form(None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "path", "{body}");
    assert_eq!(body["error"]["reason"], "missing", "{body}");
    assert_eq!(body["error"]["params"]["path"], "/made/by/upload", "{body}");
    // Another user's container is still a missing one, whatever the form asks.
    let (status, _) = app.post_form(&path, &bob_t, form(Some("true"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.post_form(&path, &alice_t, form(Some("true"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["written"][0], "/made/by/upload/x.txt");
    let out = run(
        &app,
        &alice_t,
        &format!("{alice}-api"),
        "cat /made/by/upload/x.txt",
    )
    .await;
    assert_eq!(out["stdout"], "made", "{out}");
    // Directories that exist keep their owner and mode: only the missing ones are made.
    let stat = "chmod 1777 /tmp && stat -c '%a %u' /tmp";
    let before = run(&app, &alice_t, &format!("{alice}-api"), stat).await;
    assert_eq!(before["stdout"], "1777 0\n", "{before}");
    let (status, _) = app
        .post_form(
            &path,
            &alice_t,
            reqwest::multipart::Form::new()
                .text("path", "/tmp/deeper/still")
                .text("create", "true")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(b"t".to_vec()).file_name("t.txt"),
                ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let out = run(
        &app,
        &alice_t,
        &format!("{alice}-api"),
        "stat -c '%a %u' /tmp && cat /tmp/deeper/still/t.txt",
    )
    .await;
    assert_eq!(out["stdout"], "1777 0\nt", "{out}");
}

#[tokio::test]
async fn refused_input_is_explained_in_the_readers_language() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (_, alice_t) = app.student().await;
    let create = |lang: &'static str| {
        app.client
            .post(app.url("/api/v1/containers"))
            .bearer_auth(&alice_t)
            .header(ACCEPT_LANGUAGE, lang)
            .json(&json!({"name": "Bad_Name", "image": image}))
            .send()
    };
    let r = create("ja").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    let e = &body["error"];
    assert_eq!(e["code"], "invalid_input", "{body}");
    assert_eq!(e["field"], "name", "{body}");
    assert_eq!(e["reason"], "bad_char", "{body}");
    assert_eq!(e["params"]["value"], "Bad_Name", "{body}");
    assert_eq!(e["params"]["char"], "B", "{body}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("コンテナ名「Bad_Name」に使えない文字「B」があります"),
        "{message}"
    );
    assert!(!message.contains("contains"), "no English left: {message}");
    // English keeps its message; the reason and parameters are there too.
    let body: Value = create("en").await.unwrap().json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "the container name \"Bad_Name\" contains 'B'; use lowercase letters, digits and '-'"
    );
    assert_eq!(body["error"]["reason"], "bad_char");

    // Every rule of the forms' fields, in Japanese.
    for (body, field, reason, says) in [
        (
            json!({"name": "web", "image": image, "ports": "http"}),
            "ports",
            "not_a_number",
            "「http」はポート番号ではありません",
        ),
        (
            json!({"name": "web", "image": image, "env": "1X=y"}),
            "env",
            "bad_key",
            "「1X」は変数名に使えません",
        ),
        (
            json!({"name": "web", "image": "Bad Image"}),
            "image",
            "path",
            "正しいイメージ参照ではありません",
        ),
        (
            json!({"name": "-web", "image": image}),
            "name",
            "bad_edge",
            "英小文字か数字で始め",
        ),
    ] {
        let r = app
            .client
            .post(app.url("/api/v1/containers"))
            .bearer_auth(&alice_t)
            .header(ACCEPT_LANGUAGE, "ja")
            .json(&body)
            .send()
            .await
            .unwrap();
        let got: Value = r.json().await.unwrap();
        assert_eq!(got["error"]["field"], field, "{got}");
        assert_eq!(got["error"]["reason"], reason, "{got}");
        assert!(
            got["error"]["message"].as_str().unwrap().contains(says),
            "{got}"
        );
    }

    // An administrator's new account with a bad name.
    let r = app
        .client
        .post(app.url("/api/v1/admin/users"))
        .bearer_auth(&app.admin)
        .header(ACCEPT_LANGUAGE, "ja")
        .json(&json!({"name": "Bob Smith", "password": "password-123", "role": "student"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["error"]["reason"], "bad_start", "{got}");
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ユーザー名「Bob Smith」は英小文字で始めてください"),
        "{got}"
    );
}

#[tokio::test]
async fn the_add_user_form_keeps_its_input_and_says_what_is_wrong() {
    let app = spawn_app().await;
    let (alice, _) = app.student().await;
    for (lang, accept) in [("en", "en-US,en"), ("ja", "ja,en;q=0.5")] {
        let b = Browser::start(accept).await;
        log_in(&b, &app, "admin", ADMIN_PASSWORD).await;
        b.goto(&app.url("/admin")).await;
        b.find(&format!("html[lang={lang}]")).await;
        b.fill("#new-name", "Bob Smith").await;
        b.fill("#new-password", "a-new-password").await;
        b.execute("document.getElementById('new-role').value = 'teacher';")
            .await;
        b.click("#add-user button[type=submit]").await;
        let alert = b.text("#add-user-error").await;
        let says = if lang == "en" {
            "The user name \"Bob Smith\" must start with a lowercase letter."
        } else {
            "ユーザー名「Bob Smith」は英小文字で始めてください。"
        };
        assert!(alert.contains(says), "{alert}");
        let name = b.find("#new-name[aria-invalid=true]").await;
        assert_eq!(b.attr(&name, "value").await.as_deref(), Some("Bob Smith"));
        let role = b
            .execute("return document.getElementById('new-role').value;")
            .await;
        assert_eq!(role, "teacher", "the role is kept");
        let password = b
            .execute("return document.getElementById('new-password').value;")
            .await;
        assert_eq!(password, "", "a password is never sent back");
        shot(&b, &format!("admin-add-user-error-{lang}")).await;

        // A name that is taken.
        b.fill("#new-name", &alice).await;
        b.fill("#new-password", "a-new-password").await;
        b.click("#add-user button[type=submit]").await;
        let says = if lang == "en" {
            "An account with this name exists already."
        } else {
            "この名前のアカウントはすでにあります。"
        };
        // The page before has an alert of this form too: wait for the new one.
        page_has(&b, says).await;
        let alert = b.text("#add-user-error").await;
        assert!(alert.contains(says), "{alert}");
        let name = b.find("#new-name").await;
        assert_eq!(
            b.attr(&name, "value").await.as_deref(),
            Some(alice.as_str())
        );
    }
    let (_, users) = app.get("/api/v1/admin/users", &app.admin).await;
    assert!(!users.to_string().contains("Bob Smith"));
}

#[tokio::test]
async fn an_error_page_has_a_way_back() {
    let app = spawn_app().await;
    let (alice, _) = app.student().await;
    for (lang, accept, says) in [("en", "en-US,en", "Back"), ("ja", "ja,en;q=0.5", "戻る")] {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url("/images")).await;
        b.find(&format!("html[lang={lang}]")).await;
        // Followed from a page of the console: back there.
        b.execute("window.location.href = '/containers/nothing-here';")
            .await;
        let back = b.find("a#back").await;
        assert_eq!(b.element_text(&back).await, says);
        assert_eq!(b.attr(&back, "href").await.as_deref(), Some("/images"));
        shot(&b, &format!("error-page-back-{lang}")).await;
        b.click_element(&back).await;
        b.find("#pull-image").await;
        // Typed in: back to the start.
        b.goto(&app.url("/containers/nothing-here")).await;
        let back = b.find("a#back").await;
        assert_eq!(b.attr(&back, "href").await.as_deref(), Some("/"));
    }
}

#[tokio::test]
async fn deleting_an_image_asks_first_and_counts_other_users_containers() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    let (bob, bob_t) = app.student().await;
    let reference = format!("wm/{alice}/lent:1");
    let _images = RemoveImages(vec![reference.clone()]);
    let (_, lines) = app
        .build(&alice_t, "lent:1", &format!("FROM {image}\n"))
        .await;
    assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
    let path = format!("/api/v1/images/{}", encode_ref(&reference));
    let r = app
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(&alice_t),
            Some(json!({"shared": true})),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    app.create(&bob_t, json!({"name": "borrow", "image": reference}))
        .await;

    let confirm = format!("/images/delete?ref={}", encode_ref(&reference));
    for (lang, accept) in [("en", "en-US,en"), ("ja", "ja,en;q=0.5")] {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url("/images")).await;
        b.find(&format!("html[lang={lang}]")).await;
        b.click(&format!("a[href='{confirm}']")).await;
        let said = b.text("#image-in-use").await;
        let (count, way) = if lang == "en" {
            (
                "A container of another user uses this image",
                "stop sharing it",
            )
        } else {
            ("ほかのユーザーのコンテナ 1 個", "共有をやめてください")
        };
        assert!(said.contains(count) && said.contains(way), "{said}");
        let page = b.text("main").await;
        assert!(!page.contains(&bob), "whose it is stays unsaid: {page}");
        assert!(!page.contains("first"), "{page}");
        let button = b.find("#delete button[type=submit]").await;
        assert_eq!(b.attr(&button, "disabled").await.as_deref(), Some("true"));
        shot(&b, &format!("image-delete-in-use-{lang}")).await;
    }

    // Posted anyway: refused on the same page, saying the same, and nothing is deleted.
    let cookie = format!("wm_session={alice_t}");
    let token = page_token(&app, &cookie, "/images").await;
    let r = app
        .client
        .post(app.url("/images/delete"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", token.as_str()), ("ref", reference.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"delete-error\""), "{html}");
    assert!(
        html.contains("A container of another user uses this image"),
        "{html}"
    );
    assert!(wm_testkit::inspect("image", &reference).is_some());

    // When bob's container has gone, the confirmation deletes it.
    app.delete(&format!("/api/v1/containers/{bob}-borrow"), &bob_t)
        .await;
    let b = Browser::start("en-US,en").await;
    log_in(&b, &app, &alice, "password-123").await;
    b.goto(&app.url(&confirm)).await;
    shot(&b, "image-delete-confirm").await;
    b.click("#delete button[type=submit]").await;
    shows(&b, "p.notice", "The image was deleted.").await;
    assert!(wm_testkit::inspect("image", &reference).is_none());
}

#[tokio::test]
async fn a_failed_pull_or_build_stops_and_says_why_once() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    let _images = RemoveImages(vec![format!("wm/{alice}/broken:1")]);
    for (lang, accept) in [("en", "en-US,en"), ("ja", "ja,en;q=0.5")] {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url("/images")).await;
        b.find(&format!("html[lang={lang}]")).await;

        // No registry can be reached from here: a clear sentence, not a resolver's error.
        b.fill("#pull-image", "example.invalid/x:1").await;
        b.click("#pull button[type=submit]").await;
        let said = outcome(&b, "pull-progress").await;
        let clear = if lang == "en" {
            "the registry example.invalid could not be reached"
        } else {
            "レジストリ example.invalid に接続できません"
        };
        assert!(said.contains(clear), "{said}");
        assert!(!said.contains("lookup") && !said.contains("dial"), "{said}");
        let stopped = b
            .execute("return document.querySelector('#pull-progress progress').hidden;")
            .await;
        assert_eq!(stopped, true, "the bar stops");
        b.find("#pull-progress.failed").await;
        let page = b.text("main").await;
        assert_eq!(page.matches(clear).count(), 1, "said once: {page}");
        shot(&b, &format!("pull-failed-{lang}")).await;

        // A build whose step fails.
        b.goto(&app.url("/images")).await;
        b.fill("#build-name", "broken:1").await;
        b.fill("#build-dockerfile", &format!("FROM {image}\nRUN exit 3\n"))
            .await;
        b.click("#build button[type=submit]").await;
        let said = outcome(&b, "build-progress").await;
        let failed = if lang == "en" {
            "Failed:"
        } else {
            "失敗しました:"
        };
        assert!(said.starts_with(failed), "{said}");
        let log = b.text("#build-progress ol").await;
        assert!(
            !log.contains(failed),
            "the failure is said once, below: {log}"
        );
        let stopped = b
            .execute("return document.querySelector('#build-progress progress').hidden;")
            .await;
        assert_eq!(stopped, true, "the bar stops");
        shot(&b, &format!("build-failed-{lang}")).await;
    }

    // Without JavaScript: the images page again, the reference kept, the sentence on it.
    let cookie = format!("wm_session={alice_t}");
    let token = page_token(&app, &cookie, "/images").await;
    let r = app
        .client
        .post(app.url("/images/pull"))
        .header(COOKIE, &cookie)
        .header(ACCEPT_LANGUAGE, "ja")
        .form(&[("csrf", token.as_str()), ("image", "example.invalid/x:1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"pull-error\""), "{html}");
    assert!(
        html.contains("レジストリ example.invalid に接続できません"),
        "{html}"
    );
    assert!(html.contains("value=\"example.invalid/x:1\""), "{html}");
}
