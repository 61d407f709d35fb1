//! Every message a user can see exists in English and Japanese (issue 21, point 2): the
//! explanation under a refusal's heading is in the reader's language too, keyed by the
//! error's code, field and reason, on the web pages (a real headless Chromium) and in the
//! API's answers under `Accept-Language: ja`, whose `code`, `field`, `reason` and `params`
//! stay the same in every language. Screenshots go to `<target>/screenshots/`.

mod common;

use common::browser::*;
use common::*;
use reqwest::header::ACCEPT_LANGUAGE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use wm_testkit::browser::Browser;

const LANGUAGES: [(&str, &str); 2] = [("en", "en-US,en"), ("ja", "ja,en;q=0.5")];

/// A call of the API in `lang` (an `Accept-Language`): the status and the error.
async fn ask(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    lang: &str,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header(ACCEPT_LANGUAGE, lang);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    (status, body["error"].clone())
}

/// The same refusal in English and in Japanese: the same status and keys (`code`,
/// `field`, `reason`, `params`), the English message as it was, a Japanese message that
/// has `ja` in it and no English left.
async fn in_both(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    english: &str,
    ja: &str,
) -> Value {
    let (en_status, en) = ask(app, method.clone(), path, token, body.clone(), "en").await;
    let (ja_status, jp) = ask(app, method, path, token, body, "ja").await;
    assert_eq!(en_status, ja_status, "{en} {jp}");
    assert!(en_status.is_client_error(), "{en_status} {en}");
    for key in ["code", "field", "reason", "params"] {
        assert_eq!(en[key], jp[key], "{key}: {en} {jp}");
    }
    assert!(en["reason"].is_string(), "every refusal has its key: {en}");
    let en_message = en["message"].as_str().unwrap();
    let ja_message = jp["message"].as_str().unwrap();
    assert!(en_message.contains(english), "{en_message}");
    assert!(ja_message.contains(ja), "{ja_message}");
    assert!(!ja_message.contains(english), "English left: {ja_message}");
    en
}

#[tokio::test]
async fn a_wrong_join_code_is_explained_in_the_readers_language() {
    let app = spawn_app().await;
    let (student, st) = app.student().await;
    let (_, course) = app
        .post(
            "/api/v1/courses",
            &app.user("tc", "teacher").await.1,
            json!({"name": "演習A"}),
        )
        .await;
    let id = course["id"].as_str().unwrap().to_string();

    for (lang, accept) in LANGUAGES {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &student, "password-123").await;
        b.goto(&app.url("/courses")).await;
        b.find(&format!("html[lang={lang}]")).await;
        b.fill("#join-code", "WRONG-CODE2").await;
        b.click("form[action='/courses/join'] button[type=submit]")
            .await;
        let said = b.text("div.error").await;
        let (heading, detail) = if lang == "en" {
            (
                "That join code is not valid.",
                "This join code is not valid: check it with your teacher.",
            )
        } else {
            (
                "参加コードが正しくありません。",
                "入力された参加コードで参加できるコースはありません。",
            )
        };
        assert!(said.contains(heading) && said.contains(detail), "{said}");
        let shown_in = b.find(&format!("div.error p.detail[lang={lang}]")).await;
        assert_eq!(b.element_text(&shown_in).await, detail);
        shot(&b, &format!("lang-join-code-{lang}")).await;
    }
    let (_, c) = app.get(&format!("/api/v1/courses/{id}"), &st).await;
    assert_eq!(c["error"]["code"], "not_found", "still not a member: {c}");

    let e = in_both(
        &app,
        Method::POST,
        "/api/v1/courses/join",
        &st,
        Some(json!({"code": "WRONG-CODE2"})),
        "this join code is not valid: check it with your teacher",
        "参加コードが正しくありません。担当教員に確認してください。（入力された参加コードで参加できるコースはありません。）",
    )
    .await;
    assert_eq!(
        (&e["code"], &e["field"], &e["reason"]),
        (&json!("invalid_join_code"), &json!("code"), &json!("wrong"))
    );
}

#[tokio::test]
async fn an_expiry_in_the_past_is_refused_in_the_readers_language() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, token) = app.student().await;
    app.create(&token, json!({"name": "ex", "image": image}))
        .await;
    let full = format!("{alice}-ex");
    let past = "2020-01-01T00:00:00+09:00";

    for (lang, accept) in LANGUAGES {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url(&format!("/containers/{full}"))).await;
        b.find(&format!("html[lang={lang}]")).await;
        b.fill("#expires_at", past).await;
        b.click("#expiry button[type=submit]").await;
        let said = b.text("#expiry-error").await;
        let detail = if lang == "en" {
            "Expires_at must be in the future."
        } else {
            "指定された日時はすでに過ぎています。"
        };
        assert!(said.contains(detail), "{said}");
        if lang == "ja" {
            assert!(!said.contains("future"), "{said}");
        }
        // The date stays in the field, to be corrected.
        let field = b.find("#expires_at").await;
        assert_eq!(b.attr(&field, "value").await.as_deref(), Some(past));
        shot(&b, &format!("lang-expiry-past-{lang}")).await;
    }
    let (_, c) = app.get(&format!("/api/v1/containers/{full}"), &token).await;
    assert_eq!(c["expires_at"], Value::Null, "nothing changed: {c}");

    let path = format!("/api/v1/containers/{full}");
    let e = in_both(
        &app,
        Method::PATCH,
        &path,
        &token,
        Some(json!({"expires_at": past})),
        "expires_at must be in the future",
        "指定された日時はすでに過ぎています。",
    )
    .await;
    assert_eq!(e["code"], "invalid_expiry");
    in_both(
        &app,
        Method::PATCH,
        &path,
        &token,
        Some(json!({"expires_at": "next tuesday"})),
        "is not a date and time like",
        "有効期限「next tuesday」は 2026-03-31T23:59:00+09:00 のような日時ではありません。",
    )
    .await;
}

#[tokio::test]
async fn a_storage_path_refusal_is_explained_in_the_readers_language() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    for (lang, accept) in LANGUAGES {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url("/files?path=/notes/../../other")).await;
        b.find(&format!("html[lang={lang}]")).await;
        let said = b.text("div.error").await;
        let detail = if lang == "en" {
            "Path may not contain '..'."
        } else {
            "パスに「..」は使えません。"
        };
        assert!(said.contains(detail), "{said}");
        b.find("a#back").await;
        shot(&b, &format!("lang-storage-path-{lang}")).await;
    }
    let e = in_both(
        &app,
        Method::GET,
        "/api/v1/storage/files?path=/notes/../../other",
        &token,
        None,
        "path may not contain '..'",
        "パスに「..」は使えません。",
    )
    .await;
    assert_eq!(
        (&e["field"], &e["reason"]),
        (&json!("path"), &json!("dotdot"))
    );
    in_both(
        &app,
        Method::DELETE,
        "/api/v1/storage/files?path=/",
        &token,
        None,
        "the root of your storage cannot be deleted",
        "ストレージの最上位は削除できません。中身を削除してください。",
    )
    .await;
}

/// A refusal that the host writes (here: a path that is not in the user's storage) is said
/// by its key, wholly in Japanese: no English sentence of the host's inside the Japanese
/// one, on the page and in the API.
#[tokio::test]
async fn a_hosts_refusal_is_said_wholly_in_the_readers_language() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let english = "nope does not exist in your storage";
    let japanese = "あなたのストレージに「nope」がありません。";
    for (lang, accept) in LANGUAGES {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url("/files?path=/nope")).await;
        b.find(&format!("html[lang={lang}]")).await;
        let said = b.text("div.error").await;
        if lang == "en" {
            assert!(said.contains("does not exist in your storage"), "{said}");
        } else {
            assert!(said.contains(japanese), "{said}");
            for word in ["does not exist", "storage", "your"] {
                assert!(!said.contains(word), "English left: {said}");
            }
        }
        shot(&b, &format!("lang-host-refusal-{lang}")).await;
    }
    let e = in_both(
        &app,
        Method::GET,
        "/api/v1/storage/files?path=/nope",
        &token,
        None,
        english,
        japanese,
    )
    .await;
    assert_eq!(
        (&e["code"], &e["reason"], &e["params"]),
        (
            &json!("file_not_found"),
            &json!("storage_missing"),
            &json!({"path": "nope"})
        )
    );
}

#[tokio::test]
async fn a_conflict_says_what_is_in_the_way_in_the_readers_language() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (bob, bob_t) = app.student().await;
    app.create(&bob_t, json!({"name": "keep", "image": image}))
        .await;

    // An administrator deletes an account whose containers are still there.
    for (lang, accept) in LANGUAGES {
        let b = Browser::start(accept).await;
        log_in(&b, &app, "admin", ADMIN_PASSWORD).await;
        b.goto(&app.url(&format!("/admin/users/{bob}"))).await;
        b.find(&format!("html[lang={lang}]")).await;
        b.click("section[aria-labelledby=delete-h] button[type=submit]")
            .await;
        b.find("#confirm-question").await;
        b.click("div.actions button.danger").await;
        let said = b.text("div.error").await;
        let (heading, detail) = if lang == "en" {
            (
                "This conflicts with the current state.",
                // The name keeps its case at the start of the sentence.
                format!("{bob} has 1 containers; delete them first"),
            )
        } else {
            (
                "現在の状態と矛盾するため実行できません。",
                format!("{bob} さんにはコンテナが1個あります。先にそれらを削除するか、コンテナも削除するよう指定してください。"),
            )
        };
        assert!(said.contains(heading) && said.contains(&detail), "{said}");
        shot(&b, &format!("lang-conflict-{lang}")).await;
    }
    let (status, _) = app.get("/api/v1/me", &bob_t).await;
    assert_eq!(status, StatusCode::OK, "bob's account is still there");

    // A name taken already, through the API: the name is a param, in both sentences.
    let e = in_both(
        &app,
        Method::POST,
        "/api/v1/containers",
        &bob_t,
        Some(json!({"name": "keep", "image": image})),
        "you already have a container named keep",
        "現在の状態と矛盾するため実行できません。（keep という名前のコンテナはすでにあります。）",
    )
    .await;
    assert_eq!(
        (&e["code"], &e["reason"], &e["params"]),
        (
            &json!("conflict"),
            &json!("container_taken"),
            &json!({"name": "keep"})
        )
    );
    // Another user's container is not found, in the same words as a missing one.
    let (_, eve_t) = app.student().await;
    in_both(
        &app,
        Method::DELETE,
        &format!("/api/v1/containers/{bob}-keep"),
        &eve_t,
        None,
        &format!("container {bob}-keep not found"),
        &format!("コンテナ {bob}-keep が見つかりません。"),
    )
    .await;
}

/// A refused build form, in `lang`: the status and the error.
async fn build_in(
    app: &TestApp,
    token: &str,
    fields: &[(&str, &str)],
    lang: &str,
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let resp = app
        .client
        .post(app.url("/api/v1/images/build"))
        .bearer_auth(token)
        .header(ACCEPT_LANGUAGE, lang)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    (status, body["error"].clone())
}

#[tokio::test]
async fn a_refused_build_is_explained_in_the_readers_language() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (_, token) = app.student().await;
    let from = format!("FROM {image}\n");
    let long = "a".repeat(260);
    for (fields, english, ja, reason) in [
        (
            vec![("name", long.as_str()), ("dockerfile", from.as_str())],
            "is not a valid image reference: it is longer than 255 characters",
            "イメージ名「",
            "image_too_long",
        ),
        (
            vec![
                ("name", "x:1"),
                ("dockerfile", from.as_str()),
                ("buildarg", "WM_BUILD_OWNER=me"),
            ],
            "the build argument WM_BUILD_OWNER is set by the console",
            "ビルド引数 WM_BUILD_OWNER はコンソールが設定するため、指定できません。",
            "reserved",
        ),
        (
            vec![("name", "x:1"), ("dockerfile", "RUN true\n")],
            "Dockerfile line 1",
            "Dockerfile の1行目に誤りがあります（",
            "line",
        ),
    ] {
        let (en_status, en) = build_in(&app, &token, &fields, "en").await;
        let (ja_status, jp) = build_in(&app, &token, &fields, "ja").await;
        assert_eq!(
            (en_status, ja_status),
            (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST)
        );
        assert_eq!(en["reason"], reason, "{en}");
        for key in ["code", "field", "reason", "params"] {
            assert_eq!(en[key], jp[key], "{key}: {en} {jp}");
        }
        let (en, jp) = (
            en["message"].as_str().unwrap(),
            jp["message"].as_str().unwrap(),
        );
        assert!(en.contains(english), "{en}");
        assert!(jp.contains(ja), "{jp}");
    }
}

/// A console lending VMs (libvirt), whose domains and disks go when it is dropped.
struct VmApp {
    app: TestApp,
    storage: PathBuf,
}

impl Drop for VmApp {
    fn drop(&mut self) {
        wm_testkit::remove_vms(&self.app.instance, &self.storage);
    }
}

#[tokio::test]
async fn a_refused_vm_is_explained_in_the_readers_language() {
    if !wm_testkit::libvirt_answers() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libvirt's system daemon does not answer (scripts/test starts it)"
        );
        eprintln!("skipped: libvirt's system daemon does not answer");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    let storage = Path::new("/var/lib/libvirt/images").join(&config.docker.instance);
    config.vm.enabled = Some(true);
    config.vm.domain_type = Some("qemu".into());
    config.vm.storage_dir = storage.clone();
    config.vm.templates = vec![wm_console::config::VmTemplateSettings {
        name: "tiny".into(),
        vcpus: 1,
        memory: "192m".into(),
        nic: wm_backend::vm::NicModel::E1000,
        disk_bus: wm_backend::vm::DiskBus::Virtio,
        description: None,
    }];
    let vms = VmApp {
        app: spawn_with(config, data).await,
        storage,
    };
    let app = &vms.app;
    let (_, token) = app.student().await;

    let e = in_both(
        app,
        Method::POST,
        "/api/v1/vms",
        &token,
        Some(json!({"name": "bad name", "template": "tiny", "image": "disk"})),
        "the VM name \"bad name\" contains ' '",
        "VM の名前「bad name」に使えない文字「 」があります。",
    )
    .await;
    assert_eq!(
        (&e["field"], &e["reason"]),
        (&json!("name"), &json!("vm_bad_char"))
    );
    assert!(
        !e["message"].as_str().unwrap().contains("container"),
        "a VM's name is not a container's: {e}"
    );
    let e = in_both(
        app,
        Method::POST,
        "/api/v1/vms",
        &token,
        Some(json!({"name": "box", "template": "tiny", "image": "nodisk"})),
        "VM image \"nodisk\" not found",
        "VM イメージ nodisk が見つかりません。",
    )
    .await;
    assert_eq!(
        (&e["code"], &e["reason"], &e["params"]),
        (
            &json!("image_not_found"),
            &json!("vm_image"),
            &json!({"name": "nodisk"})
        )
    );
    in_both(
        app,
        Method::POST,
        "/api/v1/vms",
        &token,
        Some(json!({"name": "box", "template": "huge", "image": "nodisk"})),
        "VM template \"huge\" not found",
        "VM テンプレート huge が見つかりません。",
    )
    .await;
    let (_, listed) = app.get("/api/v1/vms", &token).await;
    assert_eq!(listed, json!([]), "nothing was defined");
}

/// The transport's own refusals (a body of the wrong type, a method an address does not
/// take) are said in Japanese too; English keeps its sentence.
#[tokio::test]
async fn the_transports_refusals_are_said_in_japanese() {
    let app = spawn_app().await;
    let (_, token) = app.student().await;
    for (lang, says) in [
        ("en", "send the body as JSON with Content-Type: application/json"),
        (
            "ja",
            "本文の形式が違います。JSON なら Content-Type: application/json、フォームなら multipart/form-data で送ってください。",
        ),
    ] {
        let resp = app
            .client
            .post(app.url("/api/v1/containers"))
            .bearer_auth(&token)
            .header(ACCEPT_LANGUAGE, lang)
            .body("name=x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
        assert_eq!(body["error"]["message"], says, "{body}");
    }
    let (_, ja) = ask(&app, Method::PUT, "/api/v1/me", &token, None, "ja").await;
    assert_eq!(ja["code"], "method_not_allowed", "{ja}");
    assert_eq!(
        ja["message"],
        "このアドレスはその HTTP メソッドを受け付けません。"
    );
}

/// A build through the API in `lang`: its NDJSON lines.
async fn build_lines(app: &TestApp, token: &str, dockerfile: &str, lang: &str) -> Vec<Value> {
    let form = reqwest::multipart::Form::new()
        .text("name", "big:1")
        .text("dockerfile", dockerfile.to_string());
    let resp = app
        .client
        .post(app.url("/api/v1/images/build"))
        .bearer_auth(token)
        .header(ACCEPT_LANGUAGE, lang)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, lines) = ndjson(resp).await;
    assert_eq!(status, StatusCode::OK, "{lines:?}");
    lines
}

/// A backend's keyed sentence that ends a build's stream (a result over
/// `WM_BUILD_IMAGE_MAX_BYTES`) is said in the reader's language, in the API's last line
/// (whose `code`, `reason` and `params` stay the same) and on the page.
#[tokio::test]
async fn a_build_too_large_is_said_in_the_readers_language() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.build_image_max_bytes = 1;
    let app = spawn_with(config, data).await;
    let image = test_image().await;
    let (alice, token) = app.student().await;
    let _images = RemoveImages(vec![format!("wm/{alice}/big:1")]);
    let dockerfile = format!("FROM {image}\n");
    let english = "over the limit of 1 bytes for a build's result";
    let ja = "ビルド結果の上限の1バイトを超えたため削除しました";

    let en_last = build_lines(&app, &token, &dockerfile, "en")
        .await
        .pop()
        .unwrap();
    let ja_last = build_lines(&app, &token, &dockerfile, "ja")
        .await
        .pop()
        .unwrap();
    let (en, jp) = (&en_last["error"], &ja_last["error"]);
    assert_eq!(en["code"], "build_failed", "{en_last}");
    assert_eq!(en["reason"], "build_too_large", "{en_last}");
    assert_eq!(en["params"]["max"], "1", "{en_last}");
    for key in ["code", "reason", "params"] {
        assert_eq!(en[key], jp[key], "{key}: {en} {jp}");
    }
    assert!(en["message"].as_str().unwrap().contains(english), "{en}");
    assert!(jp["message"].as_str().unwrap().contains(ja), "{jp}");
    assert!(wm_testkit::inspect("image", &format!("wm/{alice}/big:1")).is_none());

    for (lang, accept) in LANGUAGES {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url("/images")).await;
        b.find(&format!("html[lang={lang}]")).await;
        b.fill("#build-name", "big:1").await;
        b.fill("#build-dockerfile", &dockerfile).await;
        b.click("#build button[type=submit]").await;
        let said = outcome(&b, "build-progress").await;
        assert!(
            said.contains(if lang == "en" { english } else { ja }),
            "{said}"
        );
        shot(&b, &format!("build-too-large-{lang}")).await;
    }

    // Without JavaScript: the lines stream into the page, in its language.
    let cookie = format!("wm_session={token}");
    let csrf = page_token(&app, &cookie, "/images").await;
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("name", "big:1")
        .text("dockerfile", dockerfile.clone());
    let html = app
        .client
        .post(app.url("/images/build"))
        .header(reqwest::header::COOKIE, &cookie)
        .header(ACCEPT_LANGUAGE, "ja")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(ja), "{html}");
}
